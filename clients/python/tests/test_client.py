"""The client against a fake router (tests/fake_router.py)."""

import asyncio
import os
import tempfile
import time
import unittest

from kws_client import Backoff, FileStorage, KwsClient, MemoryStorage, Position, Stopped

from .fake_router import FakeRouter

FAST = Backoff(initial_s=0.02, max_s=0.2)


def collect(c):
    got = {k: [] for k in ("status", "resume", "gap", "duplicate", "reconnecting", "stopped", "close")}
    for k in got:
        c.on(k, got[k].append)
    return got


async def take(c, n, timeout=5):
    out = []

    async def go():
        async for r in c:
            out.append((r.partition, r.offset, r.text))
            if len(out) == n:
                return
    await asyncio.wait_for(go(), timeout)
    return out


class ClientTest(unittest.IsolatedAsyncioTestCase):
    async def test_records_position_and_resume_after_1006_with_fresh_token(self):
        n = 0

        def token():
            nonlocal n
            n += 1
            return f"tok-{n}"
        async with FakeRouter() as r:
            async with KwsClient(r.url, token=token, backoff=FAST) as c:
                got = collect(c)
                s1 = await r.next()
                self.assertEqual(s1.hs["headers"]["Authorization"], "Bearer tok-1")
                self.assertEqual(s1.ws.subprotocol, "kws.v1")
                self.assertNotIn("X-Kws-Position", s1.hs["headers"])
                await s1.status("live", 2, 100)
                await s1.record(2, 100, "a")
                await s1.record(2, 105, "b")
                self.assertEqual(await take(c, 2), [(2, 100, "a"), (2, 105, "b")])
                self.assertEqual(c.position, Position(2, 106))
                s1.kill()
                s2 = await r.next()
                self.assertEqual(s2.hs["headers"]["Authorization"], "Bearer tok-2")
                self.assertEqual(s2.hs["headers"]["X-Kws-Position"], "2:106")
                await s2.status("complete", 2, 106)
                await s2.record(2, 107, "c")
                self.assertEqual(await take(c, 1), [(2, 107, "c")])
                self.assertEqual([x["complete"] for x in got["resume"]], [True])
                self.assertEqual(got["reconnecting"][0]["code"], 1006)
                self.assertEqual(got["gap"], [])

    async def test_1012_reconnects_at_once_to_the_next_router(self):
        async with FakeRouter() as a, FakeRouter() as b:
            async with KwsClient([a.url, b.url], backoff=Backoff(initial_s=5, max_s=5)) as c:
                s1 = await a.next()
                await s1.status("live", 0, 10)
                await s1.record(0, 10, "x")
                await take(c, 1)
                t0 = time.monotonic()
                await s1.close(1012, "draining")
                s2 = await b.next()
                self.assertLess(time.monotonic() - t0, 1)
                self.assertEqual(s2.hs["headers"]["X-Kws-Position"], "0:11")

    async def test_1013_pauses_and_4008_resumes_at_once(self):
        async with FakeRouter() as r:
            async with KwsClient(r.url, backoff=Backoff(initial_s=0.02, try_again_s=0.4)) as c:
                got = collect(c)
                s1 = await r.next()
                await s1.status("live", 1, 50)
                await s1.record(1, 50, "x")
                await take(c, 1)
                t0 = time.monotonic()
                await s1.close(1013)
                s2 = await r.next()
                self.assertGreaterEqual(time.monotonic() - t0, 0.38)
                self.assertEqual(s2.hs["headers"]["X-Kws-Position"], "1:51")
                await s2.status("complete", 1, 51)
                t0 = time.monotonic()
                await s2.close(4008)
                s3 = await r.next()
                self.assertLess(time.monotonic() - t0, 0.3)
                self.assertEqual(s3.hs["headers"]["X-Kws-Position"], "1:51")
                self.assertEqual([x["code"] for x in got["reconnecting"]], [1013, 4008])

    async def test_fatal_codes_stop(self):
        for code in (1007, 1009, 4001):
            async with FakeRouter() as r:
                c = KwsClient(r.url, backoff=FAST)
                got = collect(c)
                c.start()
                s1 = await r.next()
                await s1.status("live", 0, 0)
                await s1.close(code, "bad")
                with self.assertRaises(Stopped) as cm:
                    await asyncio.wait_for(take(c, 1), 5)
                self.assertEqual(cm.exception.code, code)
                self.assertEqual(c.state, "stopped")
                with self.assertRaises(Stopped):
                    await c.send("x")
                await asyncio.sleep(0.2)
                self.assertEqual(len(r.handshakes), 1, "no reconnect after a fatal code")
                self.assertEqual([e["code"] for e in got["stopped"]], [code])
                await c.close()

    async def test_refused_handshakes_back_off_and_fatal_statuses_stop(self):
        async with FakeRouter(refuse=lambda hs: (503, "draining")) as r:
            c = KwsClient(r.url, backoff=Backoff(initial_s=0.02, max_s=2, jitter=0.5))
            got = collect(c)
            c.start()
            await asyncio.sleep(1.5)
            await c.close()
            delays = [e["delay_s"] for e in got["reconnecting"]]
            self.assertTrue(4 <= len(delays) < 12, delays)
            for i, d in enumerate(delays):
                full = min(2, 0.02 * 2 ** (i + 1))
                self.assertTrue(full / 2 <= d <= full, (i, d, full))
            self.assertEqual(got["close"][0]["status"], 503)
        async with FakeRouter(refuse=lambda hs: (400, "malformed position")) as r:
            c = KwsClient(r.url, backoff=FAST)
            c.start()
            with self.assertRaises(Stopped) as cm:
                await asyncio.wait_for(take(c, 1), 5)
            self.assertEqual(cm.exception.code, 400)
            await c.close()

    async def test_token_carriers(self):
        checks = {
            "subprotocol": lambda hs: "kws.token.T0K" in hs["protocols"],
            "query": lambda hs: hs["query"].get("access_token") == "T0K",
            "cookie": lambda hs: hs["headers"].get("Cookie") == "sess=T0K",
            "header": lambda hs: hs["headers"].get("Authorization") == "Bearer T0K",
        }
        for carrier, ok in checks.items():
            async with FakeRouter(refuse=lambda hs: None if ok(hs) else (401, "missing token")) as r:
                async with KwsClient(r.url, token=lambda: "T0K", token_carrier=carrier,
                                     cookie_name="sess", position="4:77",
                                     position_in_query=carrier == "query") as c:
                    s = await r.next()
                    self.assertEqual(s.ws.subprotocol, "kws.v1", carrier)
                    if carrier == "query":
                        self.assertEqual(s.hs["query"]["position"], "4:77")
                    else:
                        self.assertEqual(s.hs["headers"]["X-Kws-Position"], "4:77")
        with self.assertRaises(ValueError):
            KwsClient("ws://x/ws", token_carrier="pigeon")

    async def test_async_token_function(self):
        async def token():
            await asyncio.sleep(0.01)
            return "async-tok"
        async with FakeRouter() as r:
            async with KwsClient(r.url, token=token, token_carrier="subprotocol"):
                s = await r.next()
                self.assertEqual(s.hs["protocols"], ["kws.v1", "kws.token.async-tok"])

    async def test_stored_position_resumes_a_new_client(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "pos.json")
        async with FakeRouter() as r:
            async with KwsClient(r.url, storage=FileStorage(path), storage_key="u1") as c:
                s1 = await r.next()
                await s1.status("live", 3, 500)
                await s1.record(3, 501, "one")
                self.assertEqual(await take(c, 1), [(3, 501, "one")])
            self.assertEqual(FileStorage(path).get("u1"), "3:502")
            async with KwsClient(r.url, storage=FileStorage(path), storage_key="u1") as c2:
                got = collect(c2)
                self.assertEqual(c2.position, Position(3, 502))
                s2 = await r.next()
                self.assertEqual(s2.hs["headers"]["X-Kws-Position"], "3:502")
                await s2.status("complete", 3, 502)
                await s2.record(3, 503, "two")
                await take(c2, 1)
                self.assertTrue(got["resume"][0]["complete"])
                c2.reset_position()
                self.assertIsNone(FileStorage(path).get("u1"))

    async def test_gaps_and_duplicates(self):
        async with FakeRouter() as r:
            store = MemoryStorage()
            async with KwsClient(r.url, position="1:40", storage=store) as c:
                got = collect(c)
                s1 = await r.next()
                await s1.status("incomplete", 1, 40)
                await s1.record(1, 60, "after retention")
                await s1.record(1, 55, "below the position")
                await s1.status("incomplete", 1, 61)
                await s1.record(2, 5, "partition count changed")
                recs = await take(c, 2)
                self.assertEqual([o for _, o, _ in recs], [60, 5])
                self.assertFalse(got["resume"][0]["complete"])
                self.assertEqual([g["reason"] for g in got["gap"]],
                                 ["incomplete-resume", "incomplete-replay", "partition-changed"])
                self.assertEqual([x["offset"] for x in got["duplicate"]], [55])
                self.assertEqual(c.position, Position(2, 6))
                self.assertEqual(store.get("kws.position"), "2:6")

    async def test_send_upstream_waits_for_a_connection(self):
        async with FakeRouter() as r:
            c = KwsClient(r.url)
            pending = asyncio.ensure_future(c.send("early"))
            await asyncio.sleep(0.05)
            self.assertFalse(pending.done())
            c.start()
            s = await r.next()
            await s.status("live", 0, 0)
            await asyncio.wait_for(pending, 5)
            await c.send(b"\x01\x02")
            await asyncio.sleep(0.1)
            self.assertEqual(s.received, ["early", b"\x01\x02"])
            s.kill()
            await asyncio.sleep(0.05)
            waiting = asyncio.ensure_future(c.send("while away"))
            await asyncio.sleep(0.05)
            await c.close()
            with self.assertRaises(ConnectionError):
                await asyncio.wait_for(waiting, 2)


if __name__ == "__main__":
    unittest.main()
