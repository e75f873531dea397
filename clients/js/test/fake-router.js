// A small stand-in for the router in unit tests: a `ws` server that selects
// kws.v1, records every handshake (URL, headers, subprotocols) and lets each
// test script what the connection gets (status lines, records, close codes).

import { WebSocketServer } from 'ws';

export async function fakeRouter({ accept = () => true } = {}) {
  const handshakes = [];
  const waiters = [];
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    handleProtocols: (protocols) => (protocols.has('kws.v1') ? 'kws.v1' : false),
    verifyClient: (info, cb) => {
      const req = info.req;
      const protocols = (req.headers['sec-websocket-protocol'] || '').split(',').map((s) => s.trim()).filter(Boolean);
      const hs = { url: new URL(req.url, 'http://fake'), headers: req.headers, protocols };
      handshakes.push(hs);
      const ok = accept(hs);
      if (ok === true) cb(true); else cb(false, ok[0], ok[1]);
    },
  });
  await new Promise((r) => wss.once('listening', r));
  const conns = [];
  wss.on('connection', (ws, req) => {
    const c = {
      ws,
      hs: handshakes[handshakes.length - 1],
      received: [],
      status: (state, p, o) => ws.send(Buffer.from(`s ${state} ${p} ${o}\n`)),
      record: (p, o, body) => ws.send(Buffer.concat([Buffer.from(`d ${p} ${o}\n`), Buffer.from(body)])),
      textRecord: (p, o, body) => ws.send(`d ${p} ${o}\n${body}`),
      close: (code, reason = '') => ws.close(code, reason),
    };
    ws.on('message', (m, binary) => c.received.push(binary ? Buffer.from(m) : m.toString()));
    conns.push(c);
    const w = waiters.shift();
    if (w) w(c);
  });
  const port = wss.address().port;
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    port,
    handshakes,
    conns,
    /** The next connection (or one not yet taken). */
    next() {
      const taken = this._taken || 0;
      if (conns.length > taken) {
        this._taken = taken + 1;
        return Promise.resolve(conns[taken]);
      }
      return new Promise((r) => waiters.push((c) => { this._taken = (this._taken || 0) + 1; r(c); }));
    },
    close: () => new Promise((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => r());
    }),
  };
}

/** Resolves with the next event of this type that satisfies pred; rejects after ms. */
export function nextEvent(client, type, pred = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { off(); reject(new Error(`no "${type}" event within ${ms} ms`)); }, ms);
    const off = client.on(type, (ev) => {
      if (!pred(ev)) return;
      clearTimeout(t);
      off();
      resolve(ev);
    });
  });
}
