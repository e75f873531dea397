// The kws.v1 subprotocol, as pure functions (no I/O): parsing the router's
// messages, positions, and the close-code policy of the README. The client
// in index.js calls these; the unit tests call them directly.

/** The subprotocol that carries positions. */
export const SUBPROTOCOL = 'kws.v1';
/** Prefix of the subprotocol entry that carries a token (browsers). */
export const TOKEN_SUBPROTOCOL_PREFIX = 'kws.token.';

const DEC = new TextDecoder('utf-8', { fatal: false });

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function parseUint(s, what, head) {
  if (!/^[0-9]{1,16}$/.test(s)) throw new KwsProtocolError(`bad ${what} in "${head}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new KwsProtocolError(`${what} too large in "${head}"`);
  return n;
}

/** A message from the router that is not kws.v1. */
export class KwsProtocolError extends Error {
  constructor(msg) {
    super(msg);
    this.name = 'KwsProtocolError';
  }
}

/**
 * Parses one kws.v1 message (a string for text frames; ArrayBuffer or a
 * byte view for binary frames). Returns
 *   { type: 'd', partition, offset, body }   body: string or Uint8Array (a view, no copy)
 *   { type: 's', state, partition, offset }
 * Throws KwsProtocolError when the message is not kws.v1.
 */
export function parseMessage(data) {
  let head;
  let body;
  if (typeof data === 'string') {
    const nl = data.indexOf('\n');
    if (nl < 0) throw new KwsProtocolError('message without a header line');
    head = data.slice(0, nl);
    body = data.slice(nl + 1);
  } else {
    const bytes = toBytes(data);
    if (!bytes) throw new KwsProtocolError('message of unknown type');
    const nl = bytes.indexOf(10);
    if (nl < 0 || nl > 128) throw new KwsProtocolError('message without a header line');
    head = DEC.decode(bytes.subarray(0, nl));
    body = bytes.subarray(nl + 1);
  }
  const f = head.split(' ');
  if (f[0] === 'd' && f.length === 3) {
    return { type: 'd', partition: parseUint(f[1], 'partition', head),
      offset: parseUint(f[2], 'offset', head), body };
  }
  if (f[0] === 's' && f.length === 4) {
    return { type: 's', state: f[1], partition: parseUint(f[2], 'partition', head),
      offset: parseUint(f[3], 'offset', head) };
  }
  throw new KwsProtocolError(`unknown kws.v1 header "${head.slice(0, 64)}"`);
}

/** "p:o" for a position { partition, offset }. */
export function formatPosition(pos) {
  return `${pos.partition}:${pos.offset}`;
}

/** The position of "p:o" (or a { partition, offset } object), or null when malformed. */
export function parsePosition(v) {
  if (v && typeof v === 'object') {
    const { partition, offset } = v;
    return Number.isSafeInteger(partition) && partition >= 0 && Number.isSafeInteger(offset) &&
      offset >= 0 ? { partition, offset } : null;
  }
  if (typeof v !== 'string') return null;
  const m = /^([0-9]{1,10}):([0-9]{1,16})$/.exec(v.trim());
  if (!m) return null;
  const partition = Number(m[1]);
  const offset = Number(m[2]);
  return Number.isSafeInteger(offset) && partition <= 0x7fffffff ? { partition, offset } : null;
}

/** Close codes after which reconnecting cannot help (README "Close codes"). */
export const FATAL_CODES = Object.freeze({
  1007: 'a text message that is not UTF-8',
  1009: 'a message over the router\'s --max-frame-bytes',
  4001: 'upstream messages are disabled on this system',
  4003: 'the inbound topic does not exist on this system',
});

/**
 * What to do after the socket closed with `code` (README "Close codes").
 * `failures` is the number of connects in a row that ended without a
 * session (0 after a session was established); `random` is a function
 * returning [0, 1). Returns { action: 'stop' | 'reconnect', delayMs, why }.
 *   1012 draining          reconnect at once (to the next URL)
 *   1013 try again later   reconnect after opts.tryAgainMs
 *   4008 slow client       reconnect at once with the position
 *   1007, 1009, 4001, 4003 stop and report
 *   anything else (1001, 1006, 4002, ...) reconnect with exponential backoff
 * Backoff: min(maxMs, initialMs * factor^failures), minus up to jitter of it.
 */
export function closePolicy(code, failures, opts, random = Math.random) {
  const o = { initialMs: 250, maxMs: 30000, factor: 2, jitter: 0.5, tryAgainMs: 2000, ...opts };
  if (code in FATAL_CODES) return { action: 'stop', delayMs: 0, why: FATAL_CODES[code] };
  const spread = (ms) => Math.round(ms * (1 - o.jitter * random()));
  const again = (first, why) => ({
    action: 'reconnect', delayMs: failures > 0 ? spread(backoff(failures, o)) : first, why,
  });
  if (code === 1012) return again(Math.round(100 * random()), 'router draining');
  if (code === 4008) return again(0, 'slow client');
  if (code === 1013) {
    return { action: 'reconnect', delayMs: Math.max(o.tryAgainMs, spread(backoff(failures, o))),
      why: 'partition had no owner' };
  }
  return { action: 'reconnect', delayMs: spread(backoff(failures, o)), why: `closed with ${code}` };
}

function backoff(failures, o) {
  return Math.min(o.maxMs, o.initialMs * Math.pow(o.factor, Math.max(0, Math.min(failures, 30))));
}
