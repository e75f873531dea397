// kws-client: a kws.v1 client for kafka-websocket-router (browsers and Node.js).

import type { Position, SessionState, BackoffOptions } from './protocol.js';
export * from './protocol.js';

/** Where the client keeps its position between page loads or runs. */
export interface PositionStorage {
  /** Synchronous: read once, when the client is constructed. */
  get(key: string): string | null | undefined;
  /** Called after every record; may be asynchronous (not awaited; errors become 'error' events). */
  set(key: string, value: string): void | Promise<void>;
  remove(key: string): void | Promise<void>;
}

/** localStorage (or another Web Storage) as PositionStorage. */
export function webStorage(storage?: Storage): PositionStorage;
/** An in-memory PositionStorage. */
export function memoryStorage(map?: Map<string, string>): PositionStorage;

export type TokenCarrier = 'subprotocol' | 'query' | 'cookie' | 'header';

export interface KwsClientOptions {
  /** ws:// or wss:// URL of the router's /ws, or several, tried in turn. */
  url: string | string[];
  /**
   * The token, or a function called before every connect that returns a
   * fresh one (e.g. fetched from your backend). With the cookie carrier it
   * may return nothing when the backend sets the cookie itself.
   */
  token?: string | (() => string | null | undefined | Promise<string | null | undefined>);
  /**
   * How the token travels (default 'subprotocol'):
   *  - 'subprotocol': Sec-WebSocket-Protocol entry "kws.token.<token>"
   *  - 'query': ?access_token=<token> (router --token-in-query; shows up in logs)
   *  - 'cookie': a cookie named cookieName (router --token-cookie; same-site pages)
   *  - 'header': Authorization: Bearer (Node.js with `ws` only)
   */
  tokenCarrier?: TokenCarrier;
  /** Cookie name for the cookie carrier (default "kws_token"). */
  cookieName?: string;
  /**
   * Attributes of the cookie the client sets in a browser (default
   * "path=/; SameSite=Strict"; "; Secure" is added on https pages). Add
   * "domain=example.com" when the router is on another host of the same site.
   * A token callback that returns nothing leaves the cookie to your backend
   * (an HttpOnly Set-Cookie, out of reach of scripts).
   */
  cookieAttributes?: string;
  /** Where the position is presented: ?position= ('query'), X-Kws-Position ('header'); 'auto' (default): query for a native WebSocket, header with `ws`. */
  positionCarrier?: 'auto' | 'query' | 'header';
  /** Start from this position instead of the stored one. */
  position?: string | Position | null;
  /** Position storage; default localStorage in a browser, none in Node.js; null: none. */
  storage?: PositionStorage | null;
  /** Key of the position in storage (default "kws.position"); use one per user id. */
  storageKey?: string;
  /** Extra handshake headers (Node.js with `ws` only), e.g. { 'X-Client-Id': 'user-42' } with --auth none. */
  headers?: Record<string, string>;
  /** Reconnect timing. */
  backoff?: BackoffOptions;
  /** send() waits while the socket's bufferedAmount is above this (default 1 MiB). */
  highWaterMark?: number;
  /** send() rejects when more than this many bytes wait (default 1 MiB). */
  sendQueueBytes?: number;
  /** A connect that brings no session within this long is retried (default 15000 ms). */
  connectTimeoutMs?: number;
  /** The WebSocket class (default: the global one, else the `ws` package). */
  WebSocket?: unknown;
}

/** One record. */
export class KwsRecord {
  readonly partition: number;
  readonly offset: number;
  /** The value as bytes. */
  readonly data: Uint8Array;
  /** The value as UTF-8 text. */
  readonly text: string;
  /** The value parsed as JSON. */
  json<T = unknown>(): T;
  /** The position after this record. */
  readonly next: Position;
}

export interface StatusEvent {
  state: SessionState;
  partition: number;
  offset: number;
  /** True for the first status of a connection. */
  first: boolean;
  /** The position presented in this connection's handshake (first status only). */
  presented: Position | null;
  /** On 'resume': whether every record since the presented position follows. */
  complete?: boolean;
}

export interface GapEvent {
  reason: 'incomplete-resume' | 'incomplete-replay' | 'partition-changed' | 'position-not-resumed';
  from: Position;
  to: Position | null;
}

export type ClientState = 'idle' | 'connecting' | 'open' | 'waiting' | 'stopped' | 'closed';

export interface KwsEvents {
  /** A record, in order; the position has moved past it. */
  message: KwsRecord;
  /** Every status line: live, complete, incomplete. */
  status: StatusEvent;
  /** The first status after presenting a position; complete says whether nothing was lost. */
  resume: StatusEvent & { complete: boolean };
  /** Records may be missing between from and to (retention, partition count changed). */
  gap: GapEvent;
  /** A record below the position was dropped (it was delivered before). */
  duplicate: { partition: number; offset: number; position: Position };
  state: { state: ClientState; from: ClientState };
  connecting: { url: string; position: Position | null; attempt: number };
  /** extensions: what the router accepted, e.g. "permessage-deflate" ("" for none). */
  open: { url: string; protocol: string; extensions: string };
  close: { code: number; reason: string; hadSession: boolean };
  reconnecting: { code: number; reason: string; delayMs: number; why: string; attempt: number; position: Position | null };
  /** A fatal close code (1007, 1009, 4001, 4003): the client will not reconnect. */
  stopped: { code: number; reason: string; why: string };
  error: { error: unknown; where: string };
}

export class KwsClient {
  constructor(options: KwsClientOptions);
  readonly state: ClientState;
  /** The position (next offset wanted), or null before the first status. */
  readonly position: Position | null;
  /** The session state last reported by the router. */
  readonly sessionState: SessionState | null;
  readonly stopReason: { code: number; reason: string; why: string } | null;
  /** Bytes the current socket has not sent yet. */
  readonly bufferedAmount: number;
  on<K extends keyof KwsEvents>(type: K, fn: (ev: KwsEvents[K]) => void): () => void;
  off<K extends keyof KwsEvents>(type: K, fn: (ev: KwsEvents[K]) => void): void;
  /** Connects and keeps reconnecting until close() or a fatal close code. */
  start(): void;
  /** Closes for good. */
  close(code?: number, reason?: string): void;
  /** Forgets the position (and its stored copy). */
  resetPosition(): void;
  /** Sends upstream; resolves when the socket has taken the message. */
  send(data: string | ArrayBuffer | ArrayBufferView): Promise<void>;
}

/** new KwsClient(options), started. */
export function connect(options: KwsClientOptions): KwsClient;
