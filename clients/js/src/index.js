// kws-client: a client for kafka-websocket-router's kws.v1 subprotocol, for
// browsers and Node.js. It keeps the client's position, reconnects with
// backoff and jitter presenting that position, follows the README's
// close-code policy, asks for a fresh token before every connect, can store
// the position so a page reload resumes, and paces upstream sends by the
// socket's bufferedAmount. No runtime dependency in browsers; in Node.js it
// uses the global WebSocket when there is one and the `ws` package otherwise.

import {
  SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, KwsProtocolError, parseMessage, parsePosition,
  formatPosition, closePolicy, FATAL_CODES,
} from './protocol.js';

export {
  SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, KwsProtocolError, parseMessage, parsePosition,
  formatPosition, closePolicy, FATAL_CODES,
};

const DEC = new TextDecoder('utf-8');
const ENC = new TextEncoder();
const isBrowser = typeof window !== 'undefined' && typeof document !== 'undefined';

/** One record delivered to the client. */
export class KwsRecord {
  constructor(partition, offset, body) {
    this.partition = partition;
    this.offset = offset;
    this._body = body;
  }

  /** The value as bytes (a text frame's value is encoded as UTF-8). */
  get data() {
    return typeof this._body === 'string' ? ENC.encode(this._body) : this._body;
  }

  /** The value as text (UTF-8). */
  get text() {
    return typeof this._body === 'string' ? this._body : DEC.decode(this._body);
  }

  /** The value parsed as JSON. */
  json() {
    return JSON.parse(this.text);
  }

  /** The position after this record: what a resume presents. */
  get next() {
    return { partition: this.partition, offset: this.offset + 1 };
  }
}

/** Position storage in a browser's localStorage (or any Storage). */
export function webStorage(storage = globalThis.localStorage) {
  if (!storage) throw new Error('kws: no localStorage here; pass a storage object');
  return {
    get: (key) => storage.getItem(key),
    set: (key, value) => storage.setItem(key, value),
    remove: (key) => storage.removeItem(key),
  };
}

/** Position storage in memory (a Map), e.g. for tests or Node.js. */
export function memoryStorage(map = new Map()) {
  return {
    get: (key) => (map.has(key) ? map.get(key) : null),
    set: (key, value) => { map.set(key, value); },
    remove: (key) => { map.delete(key); },
  };
}

let wsModule = null;
async function socketClass(opt) {
  if (opt) return opt;
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  if (!wsModule) {
    try {
      const m = await import(/* webpackIgnore: true */ 'ws');
      wsModule = m.WebSocket || m.default;
    } catch (e) {
      throw new Error('kws: no global WebSocket here and the "ws" package is not installed (npm install ws)');
    }
  }
  return wsModule;
}

function setQuery(url, name, value) {
  const u = new URL(url, isBrowser ? window.location.href : undefined);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  if (value === null) u.searchParams.delete(name); else u.searchParams.set(name, value);
  return u.toString();
}

/**
 * A kws.v1 client. See index.d.ts for every option and event.
 * Construct it, add listeners with on(), then call start().
 */
export class KwsClient {
  constructor(options = {}) {
    const urls = Array.isArray(options.url) ? options.url : [options.url];
    if (!urls.length || urls.some((u) => typeof u !== 'string' || !u)) {
      throw new TypeError('kws: options.url must be a URL or a non-empty array of URLs');
    }
    const carriers = ['subprotocol', 'query', 'cookie', 'header'];
    const carrier = options.tokenCarrier || 'subprotocol';
    if (!carriers.includes(carrier)) {
      throw new TypeError(`kws: tokenCarrier must be one of ${carriers.join(', ')}`);
    }
    if (options.token !== undefined && typeof options.token !== 'function' && typeof options.token !== 'string') {
      throw new TypeError('kws: options.token must be a string or a function returning one');
    }
    const pc = options.positionCarrier || 'auto';
    if (!['auto', 'query', 'header'].includes(pc)) {
      throw new TypeError('kws: positionCarrier must be auto, query or header');
    }
    this.urls = urls;
    this.options = {
      tokenCarrier: carrier,
      positionCarrier: pc,
      cookieName: 'kws_token',
      cookieAttributes: 'path=/; SameSite=Strict',
      storageKey: 'kws.position',
      highWaterMark: 1 << 20,
      sendQueueBytes: 1 << 20,
      connectTimeoutMs: 15000,
      backoff: {},
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
      tokenCarrier: carrier,
      positionCarrier: pc,
    };
    if (this.options.storage === undefined) {
      this.options.storage = isBrowser && globalThis.localStorage ? webStorage() : null;
    }
    this.state = 'idle';
    /** The position { partition, offset } (offset = next offset wanted), or null. */
    this.position = null;
    /** The last session state the router reported: live, complete or incomplete. */
    this.sessionState = null;
    /** Why the client stopped (a fatal close code), or null. */
    this.stopReason = null;
    this._listeners = new Map();
    this._ws = null;
    this._urlIndex = 0;
    this._failures = 0;
    this._timer = null;
    this._sendQueue = [];
    this._sendBytes = 0;
    this._pumping = false;
    this._presented = null;
    this._gotStatus = false;
    this._generation = 0;
    this._connectTimer = null;
    const initial = options.position !== undefined ? parsePosition(options.position) : null;
    if (options.position !== undefined && options.position !== null && !initial) {
      throw new TypeError('kws: options.position must be "partition:offset" or { partition, offset }');
    }
    this.position = initial || this._loadPosition();
  }

  /** Adds a listener; returns a function that removes it. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  /** Removes a listener. */
  off(type, fn) {
    const s = this._listeners.get(type);
    if (s) s.delete(fn);
  }

  _emit(type, ev) {
    const s = this._listeners.get(type);
    if (!s) return;
    for (const fn of [...s]) {
      try {
        fn(ev);
      } catch (e) {
        if (type !== 'error') this._emit('error', { error: e, where: `${type} listener` });
        else setTimeout(() => { throw e; });
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    const from = this.state;
    this.state = state;
    this._emit('state', { state, from });
  }

  _loadPosition() {
    const st = this.options.storage;
    if (!st) return null;
    try {
      const v = st.get(this.options.storageKey);
      if (v && typeof v.then === 'function') {
        throw new TypeError('kws: storage.get must be synchronous (load an async store yourself and pass options.position)');
      }
      return parsePosition(v);
    } catch (e) {
      if (e instanceof TypeError) throw e;
      return null; // an unreadable store: start without a position
    }
  }

  _savePosition() {
    const st = this.options.storage;
    if (!st) return;
    try {
      const r = this.position ? st.set(this.options.storageKey, formatPosition(this.position))
        : st.remove(this.options.storageKey);
      if (r && typeof r.catch === 'function') r.catch((e) => this._emit('error', { error: e, where: 'storage' }));
    } catch (e) {
      this._emit('error', { error: e, where: 'storage' });
    }
  }

  /** Forgets the position (and its stored copy): the next connect starts live. */
  resetPosition() {
    this.position = null;
    this._savePosition();
  }

  /** Connects (and keeps reconnecting until close() or a fatal close code). */
  start() {
    if (this.state !== 'idle' && this.state !== 'closed' && this.state !== 'stopped') return;
    this.stopReason = null;
    this._failures = 0;
    this._connect();
  }

  /** Closes the socket for good (code 1000); no reconnect. */
  close(code = 1000, reason = '') {
    this._generation++;
    clearTimeout(this._timer);
    clearTimeout(this._connectTimer);
    this._timer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      try { ws.close(code, reason); } catch (e) { /* already closing */ }
    }
    this._failSends(new Error('kws: client closed'));
    this._setState('closed');
  }

  /** The bytes the current socket has not sent yet (0 without a socket). */
  get bufferedAmount() {
    return this._ws ? this._ws.bufferedAmount : 0;
  }

  /**
   * Sends a message upstream (string: a text frame; bytes: a binary frame).
   * Resolves when the socket has taken it; waits while the socket's
   * bufferedAmount is above options.highWaterMark and while disconnected.
   * Rejects when more than options.sendQueueBytes are waiting, or when the
   * client is closed or stops. Upstream messages are at most once: one
   * taken by a socket that then breaks may be lost.
   */
  send(data) {
    if (this.state === 'closed' || this.state === 'stopped') {
      return Promise.reject(new Error(`kws: cannot send, the client is ${this.state}`));
    }
    const size = typeof data === 'string' ? ENC.encode(data).length : data.byteLength;
    if (size === undefined) return Promise.reject(new TypeError('kws: send takes a string or bytes'));
    if (this._sendBytes + size > this.options.sendQueueBytes) {
      return Promise.reject(new Error('kws: send queue full (options.sendQueueBytes)'));
    }
    return new Promise((resolve, reject) => {
      this._sendQueue.push({ data, size, resolve, reject });
      this._sendBytes += size;
      this._pump();
    });
  }

  _failSends(err) {
    const q = this._sendQueue;
    this._sendQueue = [];
    this._sendBytes = 0;
    for (const m of q) m.reject(err);
  }

  _pump() {
    if (this._pumping) return;
    const ws = this._ws;
    if (!ws || this.state !== 'open') return;
    while (this._sendQueue.length) {
      if (ws.bufferedAmount > this.options.highWaterMark) {
        this._pumping = true;
        setTimeout(() => { this._pumping = false; this._pump(); }, 20);
        return;
      }
      const m = this._sendQueue.shift();
      this._sendBytes -= m.size;
      try {
        ws.send(m.data);
        m.resolve();
      } catch (e) {
        m.reject(e);
      }
    }
  }

  async _token() {
    const t = this.options.token;
    if (t === undefined || t === null) return null;
    const v = typeof t === 'function' ? await t() : t;
    if (v !== null && v !== undefined && typeof v !== 'string') {
      throw new TypeError('kws: the token callback must return a string (or nothing with the cookie carrier)');
    }
    return v || null;
  }

  async _connect() {
    const gen = ++this._generation;
    this._setState('connecting');
    this._gotStatus = false;
    let ws;
    try {
      const token = await this._token();
      if (gen !== this._generation) return;
      const Ws = await socketClass(this.options.WebSocket);
      if (gen !== this._generation) return;
      let url = this.urls[this._urlIndex % this.urls.length];
      const protocols = [SUBPROTOCOL];
      const headers = { ...(this.options.headers || {}) };
      const o = this.options;
      const nativeSocket = Ws === globalThis.WebSocket;
      const posInQuery = o.positionCarrier === 'query' || (o.positionCarrier === 'auto' && nativeSocket);
      // The position goes before a query token: routers before issue 12's
      // fix missed an argument that followed one longer than their buffer.
      this._presented = this.position ? { ...this.position } : null;
      if (this._presented) {
        if (posInQuery) url = setQuery(url, 'position', formatPosition(this._presented));
        else headers['X-Kws-Position'] = formatPosition(this._presented);
      } else if (posInQuery) {
        url = setQuery(url, 'position', null);
      }
      if (token) {
        if (o.tokenCarrier === 'subprotocol') protocols.push(TOKEN_SUBPROTOCOL_PREFIX + token);
        else if (o.tokenCarrier === 'query') url = setQuery(url, 'access_token', token);
        else if (o.tokenCarrier === 'header') headers.Authorization = `Bearer ${token}`;
        else if (o.tokenCarrier === 'cookie') {
          if (isBrowser) {
            const secure = window.location.protocol === 'https:' ? '; Secure' : '';
            document.cookie = `${o.cookieName}=${token}; ${o.cookieAttributes}${secure}`;
          }
          else headers.Cookie = `${o.cookieName}=${token}`;
        }
      }
      if (nativeSocket) {
        if (Object.keys(headers).length) {
          throw new Error(`kws: this WebSocket cannot send headers (${Object.keys(headers).join(', ')}); ` +
            'use the subprotocol, query or cookie carrier');
        }
        ws = new Ws(url, protocols);
      } else {
        ws = new Ws(url, protocols, { headers });
      }
      ws.binaryType = 'arraybuffer';
      this._ws = ws;
      this._emit('connecting', { url: url.replace(/access_token=[^&]*/, 'access_token=…'), position: this._presented, attempt: this._failures });
    } catch (e) {
      if (gen !== this._generation) return;
      this._failures++;
      this._emit('error', { error: e, where: 'connect' });
      this._scheduleReconnect(1006, '');
      return;
    }
    clearTimeout(this._connectTimer);
    const connectTimer = this._connectTimer = setTimeout(() => {
      if (gen === this._generation && !this._gotStatus) {
        try { ws.close(); } catch (e) { /* ignore */ }
        this._onClose(gen, ws, 1006, 'connect timeout');
      }
    }, this.options.connectTimeoutMs);
    ws.onopen = () => {
      if (gen !== this._generation) return;
      if (ws.protocol && ws.protocol !== SUBPROTOCOL) {
        this._emit('error', { error: new KwsProtocolError(`router selected subprotocol "${ws.protocol}"`), where: 'open' });
      }
      this._setState('open');
      this._emit('open', { url: ws.url, protocol: ws.protocol, extensions: ws.extensions || '' });
      this._pump();
    };
    ws.onmessage = (ev) => {
      if (gen !== this._generation) return;
      this._onMessage(ev.data);
    };
    ws.onerror = () => { /* the close event follows; it carries the code */ };
    ws.onclose = (ev) => {
      clearTimeout(connectTimer);
      this._onClose(gen, ws, ev.code, ev.reason);
    };
  }

  _onMessage(data) {
    let m;
    try {
      m = parseMessage(data);
    } catch (e) {
      this._emit('error', { error: e, where: 'message' });
      return;
    }
    if (m.type === 's') {
      this._onStatus(m);
      return;
    }
    const p = this.position;
    if (p && m.partition === p.partition && m.offset < p.offset) {
      this._emit('duplicate', { partition: m.partition, offset: m.offset, position: { ...p } });
      return;
    }
    if (p && m.partition !== p.partition) {
      this._emit('gap', { reason: 'partition-changed', from: { ...p }, to: { partition: m.partition, offset: m.offset } });
    }
    this.position = { partition: m.partition, offset: m.offset + 1 };
    this._savePosition();
    this._emit('message', new KwsRecord(m.partition, m.offset, m.body));
  }

  _onStatus(m) {
    const first = !this._gotStatus;
    this._gotStatus = true;
    this.sessionState = m.state;
    const ev = { state: m.state, partition: m.partition, offset: m.offset, first, presented: first ? this._presented : null };
    if (first) {
      this._failures = 0;
      if (this._presented) {
        ev.complete = m.state === 'complete';
        this._emit('resume', ev);
        if (m.state !== 'complete') {
          this._emit('gap', {
            reason: m.state === 'live' ? 'position-not-resumed' : 'incomplete-resume',
            from: this._presented,
            to: { partition: m.partition, offset: m.offset },
          });
        }
      }
      if (!this.position || m.partition !== this.position.partition || (!this._presented && m.state === 'live')) {
        this.position = { partition: m.partition, offset: m.offset };
        this._savePosition();
      }
    } else if (m.state === 'incomplete') {
      this._emit('gap', { reason: 'incomplete-replay', from: { partition: m.partition, offset: m.offset }, to: null });
    }
    this._emit('status', ev);
  }

  _onClose(gen, ws, code, reason) {
    if (gen !== this._generation) return;
    if (this._ws === ws) this._ws = null;
    const hadSession = this._gotStatus;
    if (!hadSession) this._failures++;
    this._emit('close', { code, reason, hadSession });
    this._scheduleReconnect(code, reason);
  }

  _scheduleReconnect(code, reason) {
    if (this.state === 'closed') return; // close() was called by a listener
    const d = closePolicy(code, this._failures, { ...this.options.backoff });
    clearTimeout(this._connectTimer);
    if (d.action === 'stop') {
      this._generation++;
      this.stopReason = { code, reason, why: d.why };
      this._failSends(new Error(`kws: stopped: ${d.why} (${code})`));
      this._setState('stopped');
      this._emit('stopped', { ...this.stopReason });
      return;
    }
    if (code === 1012 || !this._gotStatus) this._urlIndex++;
    // The timer first: a listener below may call close(), which cancels it.
    const gen = ++this._generation;
    this._timer = setTimeout(() => {
      if (gen === this._generation) this._connect();
    }, d.delayMs);
    this._setState('waiting');
    if (this.state === 'closed') return;
    this._emit('reconnecting', { code, reason, delayMs: d.delayMs, why: d.why, attempt: this._failures, position: this.position });
  }
}

/** Shorthand: new KwsClient(options), started. */
export function connect(options) {
  const c = new KwsClient(options);
  queueMicrotask(() => c.start());
  return c;
}
