import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage, parsePosition, formatPosition, closePolicy, KwsProtocolError } from '../src/protocol.js';

const bytes = (s) => new TextEncoder().encode(s);

test('parses d and s messages, text and binary', () => {
  assert.deepEqual(parseMessage('s live 3 1200\n'), { type: 's', state: 'live', partition: 3, offset: 1200 });
  assert.deepEqual(parseMessage('d 3 1234\n{"a":1}\nsecond line'),
    { type: 'd', partition: 3, offset: 1234, body: '{"a":1}\nsecond line' });
  const m = parseMessage(bytes('d 0 7\n\x00\x01\x02').buffer);
  assert.equal(m.type, 'd');
  assert.equal(m.offset, 7);
  assert.deepEqual([...m.body], [0, 1, 2]);
  const s = parseMessage(bytes('s incomplete 5 99\n'));
  assert.deepEqual(s, { type: 's', state: 'incomplete', partition: 5, offset: 99 });
  assert.equal(parseMessage(bytes('d 1 2\n')).body.length, 0);
});

test('refuses what is not kws.v1', () => {
  for (const bad of ['no newline', 'x 1 2\n', 'd 1\n', 'd -1 2\nv', 'd 1 2.5\n', 's live 1\n',
    'd 1 99999999999999999\n', bytes('hello'), 42]) {
    assert.throws(() => parseMessage(bad), KwsProtocolError, String(bad));
  }
});

test('positions', () => {
  assert.deepEqual(parsePosition('3:1234'), { partition: 3, offset: 1234 });
  assert.deepEqual(parsePosition({ partition: 0, offset: 0 }), { partition: 0, offset: 0 });
  for (const bad of ['', '3', '3:', ':4', '-1:2', '1:-2', 'a:b', '1:2:3', null, undefined, { partition: -1, offset: 0 }]) {
    assert.equal(parsePosition(bad), null, String(bad));
  }
  assert.equal(formatPosition({ partition: 7, offset: 42 }), '7:42');
});

test('close-code policy follows the README table', () => {
  const r = () => 0.5;
  for (const code of [1007, 1009, 4001, 4003]) assert.equal(closePolicy(code, 0, {}, r).action, 'stop');
  const drain = closePolicy(1012, 0, {}, r);
  assert.equal(drain.action, 'reconnect');
  assert.ok(drain.delayMs <= 100, `1012 reconnects at once, not after ${drain.delayMs}`);
  assert.equal(closePolicy(4008, 0, {}, r).delayMs, 0);
  assert.equal(closePolicy(1013, 0, { tryAgainMs: 3000 }, r).delayMs, 3000);
  for (const code of [1001, 1006, 4002, 1011]) {
    const d = closePolicy(code, 0, { initialMs: 200 }, r);
    assert.equal(d.action, 'reconnect');
    assert.equal(d.delayMs, 150); // 200 less half the 0.5 jitter
  }
});

test('backoff grows exponentially, is capped, and is jittered', () => {
  const o = { initialMs: 100, maxMs: 5000, factor: 2, jitter: 0.5 };
  const noJitter = [0, 1, 2, 3, 4, 5, 6, 10].map((f) => closePolicy(1006, f, o, () => 0).delayMs);
  assert.deepEqual(noJitter, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  const most = closePolicy(1006, 3, o, () => 0.999999).delayMs;
  assert.ok(most >= 400 && most < 410, `jitter takes at most half: ${most}`);
  const seen = new Set();
  for (let i = 0; i < 50; i++) seen.add(closePolicy(1006, 3, o).delayMs);
  assert.ok(seen.size > 10, 'random jitter spreads the delays');
});
