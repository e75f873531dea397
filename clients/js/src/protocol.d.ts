// kws.v1 as pure functions: parsing, positions, close-code policy.

export const SUBPROTOCOL: 'kws.v1';
export const TOKEN_SUBPROTOCOL_PREFIX: 'kws.token.';

/** A position: the partition and the next offset wanted. */
export interface Position {
  partition: number;
  offset: number;
}

export type SessionState = 'live' | 'complete' | 'incomplete' | string;

export type ParsedMessage =
  | { type: 'd'; partition: number; offset: number; body: string | Uint8Array }
  | { type: 's'; state: SessionState; partition: number; offset: number };

export class KwsProtocolError extends Error {}

/** Parses one kws.v1 message; throws KwsProtocolError when it is not one. */
export function parseMessage(data: string | ArrayBuffer | ArrayBufferView): ParsedMessage;
/** "partition:offset". */
export function formatPosition(pos: Position): string;
/** The position of "p:o" or of an object, or null when malformed. */
export function parsePosition(v: string | Position | null | undefined): Position | null;

export const FATAL_CODES: Readonly<Record<number, string>>;

export interface BackoffOptions {
  /** First delay after a failure (default 250 ms). */
  initialMs?: number;
  /** Longest delay (default 30000 ms). */
  maxMs?: number;
  /** Growth per failure in a row (default 2). */
  factor?: number;
  /** Up to this fraction of a delay is taken off at random (default 0.5). */
  jitter?: number;
  /** Pause after 1013 "try again later" (default 2000 ms). */
  tryAgainMs?: number;
}

export interface CloseDecision {
  action: 'stop' | 'reconnect';
  delayMs: number;
  why: string;
}

/** What to do after a close with `code` (README "Close codes"). */
export function closePolicy(code: number, failures: number, opts?: BackoffOptions,
  random?: () => number): CloseDecision;
