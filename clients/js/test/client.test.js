import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket as WsWebSocket } from 'ws';
import { KwsClient, memoryStorage } from '../src/index.js';
import { fakeRouter, nextEvent } from './fake-router.js';

const cleanup = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()();
});

async function router(opts) {
  const r = await fakeRouter(opts);
  cleanup.push(() => r.close());
  return r;
}

function client(options) {
  const c = new KwsClient({ backoff: { initialMs: 20, maxMs: 200 }, ...options });
  cleanup.push(() => c.close());
  return c;
}

function collect(c) {
  const got = { records: [], statuses: [], resumes: [], gaps: [], dups: [], reconnects: [] };
  c.on('message', (m) => got.records.push([m.partition, m.offset, m.text]));
  c.on('status', (s) => got.statuses.push(s.state));
  c.on('resume', (s) => got.resumes.push(s));
  c.on('gap', (g) => got.gaps.push(g));
  c.on('duplicate', (d) => got.dups.push(d));
  c.on('reconnecting', (r) => got.reconnects.push(r));
  return got;
}

test('receives records, keeps the position, presents it after 1006 with a fresh token', async () => {
  const r = await router();
  let n = 0;
  const c = client({ url: r.url, token: async () => `tok-${++n}` });
  const got = collect(c);
  c.start();
  const s1 = await r.next();
  assert.deepEqual(s1.hs.protocols, ['kws.v1', 'kws.token.tok-1']);
  assert.equal(s1.ws.protocol, 'kws.v1');
  assert.equal(s1.hs.headers['x-kws-position'], undefined, 'no position on the first connect');
  s1.status('live', 2, 100);
  s1.record(2, 100, 'a');
  s1.record(2, 105, 'b');
  await nextEvent(c, 'message', (m) => m.offset === 105);
  assert.deepEqual(c.position, { partition: 2, offset: 106 });
  s1.ws.terminate(); // like a router killed: 1006
  const s2 = await r.next();
  assert.deepEqual(s2.hs.protocols, ['kws.v1', 'kws.token.tok-2'], 'the token callback runs before each connect');
  assert.equal(s2.hs.headers['x-kws-position'], '2:106');
  s2.status('complete', 2, 106);
  s2.record(2, 107, 'c');
  await nextEvent(c, 'message', (m) => m.offset === 107);
  assert.deepEqual(got.records, [[2, 100, 'a'], [2, 105, 'b'], [2, 107, 'c']]);
  assert.equal(got.resumes.length, 1);
  assert.equal(got.resumes[0].complete, true);
  assert.deepEqual(got.resumes[0].presented, { partition: 2, offset: 106 });
  assert.equal(got.reconnects[0].code, 1006);
  assert.deepEqual(got.gaps, []);
  assert.equal(c.state, 'open');
});

test('1012 reconnects at once to the next router', async () => {
  const a = await router();
  const b = await router();
  const c = client({ url: [a.url, b.url], backoff: { initialMs: 5000, maxMs: 5000 } });
  c.start();
  const s1 = await a.next();
  s1.status('live', 0, 10);
  s1.record(0, 10, 'x');
  await nextEvent(c, 'message');
  const t0 = Date.now();
  s1.close(1012, 'draining');
  const s2 = await b.next();
  assert.ok(Date.now() - t0 < 1000, `reconnected after ${Date.now() - t0} ms`);
  assert.equal(s2.hs.headers['x-kws-position'], '0:11');
});

test('1013 waits before reconnecting; 4008 reconnects with the position', async () => {
  const r = await router();
  const c = client({ url: r.url, backoff: { tryAgainMs: 400 } });
  const got = collect(c);
  c.start();
  const s1 = await r.next();
  s1.status('live', 1, 50);
  s1.record(1, 50, 'x');
  await nextEvent(c, 'message');
  let t0 = Date.now();
  s1.close(1013);
  const s2 = await r.next();
  const waited = Date.now() - t0;
  assert.ok(waited >= 380, `1013: reconnected after only ${waited} ms`);
  assert.equal(s2.hs.headers['x-kws-position'], '1:51');
  s2.status('complete', 1, 51);
  await nextEvent(c, 'status');
  t0 = Date.now();
  s2.close(4008);
  const s3 = await r.next();
  assert.ok(Date.now() - t0 < 300, '4008 reconnects at once');
  assert.equal(s3.hs.headers['x-kws-position'], '1:51');
  assert.deepEqual(got.reconnects.map((x) => x.code), [1013, 4008]);
});

for (const code of [1007, 1009, 4001]) {
  test(`${code} stops the client and reports it`, async () => {
    const r = await router();
    const c = client({ url: r.url });
    c.start();
    const s1 = await r.next();
    s1.status('live', 0, 0);
    await nextEvent(c, 'status');
    const sendFails = c.send('queued while closing').catch((e) => e);
    s1.close(code, 'bad');
    const ev = await nextEvent(c, 'stopped');
    assert.equal(ev.code, code);
    assert.equal(c.state, 'stopped');
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(r.handshakes.length, 1, 'no reconnect after a fatal code');
    const e = await sendFails;
    assert.ok(e === undefined || e instanceof Error);
  });
}

test('failed connects back off exponentially with jitter', async () => {
  const r = await router({ accept: () => [503, 'draining'] });
  const c = client({ url: r.url, backoff: { initialMs: 20, maxMs: 2000, jitter: 0.5 } });
  const delays = [];
  c.on('reconnecting', (ev) => delays.push(ev.delayMs));
  c.start();
  await new Promise((res) => setTimeout(res, 1500));
  c.close();
  assert.ok(delays.length >= 4 && delays.length < 12, `${delays.length} attempts: ${delays}`);
  for (let i = 0; i < delays.length; i++) {
    const full = Math.min(2000, 20 * 2 ** (i + 1));
    assert.ok(delays[i] <= full && delays[i] >= full / 2, `attempt ${i}: ${delays[i]} not in [${full / 2}, ${full}]`);
  }
});

test('token carriers: query, cookie, header', async () => {
  for (const [carrier, check] of [
    ['query', (hs) => hs.url.searchParams.get('access_token') === 'T0K'],
    ['cookie', (hs) => hs.headers.cookie === 'sess=T0K'],
    ['header', (hs) => hs.headers.authorization === 'Bearer T0K'],
  ]) {
    const r = await router({ accept: (hs) => (check(hs) ? true : [401, 'missing token']) });
    const c = client({ url: r.url, token: () => 'T0K', tokenCarrier: carrier, cookieName: 'sess' });
    c.start();
    const s = await r.next();
    assert.deepEqual(s.hs.protocols, ['kws.v1'], `${carrier}: no token in the subprotocols`);
    c.close();
  }
  assert.throws(() => new KwsClient({ url: 'ws://x/ws', tokenCarrier: 'carrier-pigeon' }), TypeError);
});

test('a native (browser-like) WebSocket gets the position in the query', async () => {
  class NativeLike extends WsWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
    }
  }
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = NativeLike;
  cleanup.push(() => { globalThis.WebSocket = saved; });
  const r = await router();
  const c = client({ url: r.url + '?foo=1', position: '4:77', token: 'jwt' });
  c.start();
  const s = await r.next();
  assert.equal(s.hs.url.searchParams.get('position'), '4:77');
  assert.equal(s.hs.url.searchParams.get('foo'), '1');
  assert.equal(s.hs.headers['x-kws-position'], undefined);
  assert.deepEqual(s.hs.protocols, ['kws.v1', 'kws.token.jwt']);
  const bad = new KwsClient({ url: r.url, headers: { 'X-Client-Id': 'u' } });
  const err = nextEvent(bad, 'error');
  bad.start();
  assert.match(String((await err).error), /cannot send headers/);
  bad.close();
});

test('the stored position survives a new client (a page reload) and resumes', async () => {
  const r = await router();
  const storage = memoryStorage();
  const c1 = client({ url: r.url, storage, storageKey: 'kws.position.u1' });
  c1.start();
  const s1 = await r.next();
  s1.status('live', 3, 500);
  await nextEvent(c1, 'status');
  assert.equal(storage.get('kws.position.u1'), '3:500', 'the live position is stored at once');
  s1.textRecord(3, 501, 'one');
  await nextEvent(c1, 'message');
  c1.close();
  assert.equal(storage.get('kws.position.u1'), '3:502');

  const c2 = client({ url: r.url, storage, storageKey: 'kws.position.u1' });
  const got = collect(c2);
  assert.deepEqual(c2.position, { partition: 3, offset: 502 });
  c2.start();
  const s2 = await r.next();
  assert.equal(s2.hs.headers['x-kws-position'], '3:502');
  s2.status('complete', 3, 502);
  await nextEvent(c2, 'resume');
  assert.equal(got.resumes[0].complete, true);
  c2.resetPosition();
  assert.equal(storage.get('kws.position.u1'), null);
});

test('incomplete resumes, mid-session incomplete replays and partition changes are gaps; duplicates are dropped', async () => {
  const r = await router();
  const c = client({ url: r.url, position: '1:40' });
  const got = collect(c);
  c.start();
  const s1 = await r.next();
  s1.status('incomplete', 1, 40);
  s1.record(1, 60, 'after retention');
  s1.record(1, 55, 'below the position');
  s1.status('incomplete', 1, 61);
  s1.record(2, 5, 'partition count changed');
  await nextEvent(c, 'message', (m) => m.partition === 2);
  assert.equal(got.resumes[0].complete, false);
  assert.deepEqual(got.gaps.map((g) => g.reason), ['incomplete-resume', 'incomplete-replay', 'partition-changed']);
  assert.deepEqual(got.dups.map((d) => d.offset), [55]);
  assert.deepEqual(got.records.map((x) => x[1]), [60, 5]);
  assert.deepEqual(c.position, { partition: 2, offset: 6 });
});

test('send waits while bufferedAmount is above the high-water mark', async () => {
  const sent = [];
  let buffered = 0;
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocol = 'kws.v1';
      setTimeout(() => {
        this.onopen();
        this.onmessage({ data: new TextEncoder().encode('s live 0 0\n').buffer });
      }, 5);
    }

    get bufferedAmount() { return buffered; }

    send(d) { sent.push(d); buffered += d.length; }

    close() {}
  }
  const c = client({ url: 'ws://fake/ws', WebSocket: FakeSocket, highWaterMark: 10, sendQueueBytes: 100 });
  const early = c.send('queued-before-open'); // waits for the connection
  c.start();
  await early;
  assert.deepEqual(sent, ['queued-before-open']);
  const p1 = c.send('x');
  let p1done = false;
  p1.then(() => { p1done = true; });
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(p1done, false, 'held while bufferedAmount > highWaterMark');
  assert.equal(sent.length, 1);
  await assert.rejects(c.send('y'.repeat(100)), /send queue full/);
  buffered = 0; // the socket drained
  await p1;
  assert.deepEqual(sent, ['queued-before-open', 'x']);
});

test('upstream messages reach the router; text and binary', async () => {
  const r = await router();
  const c = client({ url: r.url });
  c.start();
  const s = await r.next();
  s.status('live', 0, 0);
  await c.send('hello');
  await c.send(new Uint8Array([1, 2, 3]));
  await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(s.received, ['hello', Buffer.from([1, 2, 3])]);
});

test('close() from a close or reconnecting listener stops reconnecting', async () => {
  for (const event of ['close', 'reconnecting', 'state']) {
    const r = await router({ accept: () => [503, 'draining'] });
    const c = client({ url: r.url, backoff: { initialMs: 10, maxMs: 10 } });
    c.on(event, (ev) => { if (event !== 'state' || ev.state === 'waiting') c.close(); });
    c.start();
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(r.handshakes.length, 1, `${event}: ${r.handshakes.length} handshakes after close()`);
    assert.equal(c.state, 'closed', event);
  }
});

test('options given as undefined keep their defaults; an async storage.get is refused', async () => {
  const r = await router();
  const c = client({ url: r.url, token: 'T', tokenCarrier: undefined, cookieName: undefined });
  c.start();
  const s = await r.next();
  assert.deepEqual(s.hs.protocols, ['kws.v1', 'kws.token.T']);
  assert.throws(() => new KwsClient({ url: r.url, storage: { get: async () => '1:2', set() {}, remove() {} } }),
    /synchronous/);
});
