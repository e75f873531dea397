#!/usr/bin/env python3
"""Large records through the shared buffers (issue 13 item 5): many sessions
of one client id each get every large record intact, byte for byte the same
as every other session's copy, in order, while one session of that id reads
nothing for a while through a tiny receive buffer, so that the router's
writes to it are cut short (kws_router_short_writes_total grows) and the
rest of its queue waits in the router; a Ping it sends meanwhile is answered
after the cut frame, not inside it. Bare and kws.v1 sessions share the
buffers; a permessage-deflate session takes lws's compressing path. When
the slow session reads again it gets the same bytes as everyone."""

import asyncio
import json
import re
import socket
import sys
import urllib.request

import harness as h

KEY = "big-one"
SIZE = 96 * 1024  # bytes per record value
FAST = 8  # fast sessions of KEY, half of them kws.v1


def records_needed():
    """Enough records that the stalled session's backlog is twice what
    the kernel may let the router's socket buffer hold (tcp_wmem's maximum,
    4 MiB by default): some write to it must stop inside a frame."""
    try:
        wmem_max = int(open("/proc/sys/net/ipv4/tcp_wmem").read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 << 20
    return max(40, 2 * wmem_max // SIZE + 1)


RECORDS = records_needed()


class Client:
    """A WebSocket client of KEY that keeps every message's bytes."""

    def __init__(self, url, framed=False, deflate=False, rcvbuf=None):
        self.url, self.framed, self.deflate, self.rcvbuf = url, framed, deflate, rcvbuf
        self.bodies = []
        self.offsets = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.ws = None
        self.task = None

    async def connect(self):
        import websockets
        kw = {}
        if self.framed:
            kw["subprotocols"] = ["kws.v1"]
        if self.rcvbuf:
            # A receive buffer of a few KiB, set before connecting so TCP
            # advertises a small window: the router's writes are cut short.
            port = int(re.search(r":(\d+)/", self.url).group(1))
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            kw["sock"] = s
            kw["read_limit"] = 4096
            kw["max_queue"] = 1
        self.ws = await websockets.connect(
            self.url, extra_headers={"X-Client-Id": KEY}, max_size=None, open_timeout=10,
            compression="deflate" if self.deflate else None, **kw)
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        import websockets
        try:
            async for m in self.ws:
                await self.gate.wait()
                raw = m.encode() if isinstance(m, str) else m
                if self.framed:
                    head, _, raw = raw.partition(b"\n")
                    f = head.decode().split(" ")
                    if f[0] != "d":
                        continue  # the status line
                    self.offsets.append(int(f[2]))
                self.bodies.append(raw)
        except websockets.ConnectionClosed:
            pass

    async def close(self):
        await self.ws.close()
        await asyncio.wait_for(self.task, 10)


def short_writes(router):
    with urllib.request.urlopen(f"http://127.0.0.1:{router.admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^kws_router_short_writes_total (\S+)$", text, re.M)
    assert m, "kws_router_short_writes_total missing from /metrics"
    return float(m.group(1))


def check_body(b, i):
    """Record i of KEY as the producer wrote it: JSON of exactly SIZE bytes
    whose pad is all 'x'."""
    assert len(b) == SIZE, f"record {i}: {len(b)} bytes, want {SIZE}"
    r = json.loads(b)
    assert r["key"] == KEY and r["seq"] == i and r["tag"] == "big", f"record {i}: {r.get('seq')}"
    assert set(r["pad"]) == {"x"}, f"record {i}: damaged pad"


async def run(env):
    env.start_kafka({"deliveries": 2})
    edge = env.start_edge("edge-1")
    # A queue large enough for the stalled session's whole backlog: this
    # test is about partial writes, not the slow-client policy.
    qb = str(2 * RECORDS * (SIZE + 1024))
    router = env.start_router("router-1", [edge], ["--queue-bytes", qb, "--deflate", "on"])
    h.wait_all_owned(router)

    fast = [Client(router.ws_url, framed=i % 2 == 1) for i in range(FAST)]
    squeezed = Client(router.ws_url, framed=True, rcvbuf=4096)
    deflated = Client(router.ws_url, deflate=True)
    everyone = fast + [squeezed, deflated]
    await asyncio.gather(*(c.connect() for c in everyone))
    squeezed.gate.clear()
    await asyncio.sleep(1.0)  # every session LIVE at its edge
    before = short_writes(router)

    # Paced: the mock cluster keeps about 5 MB of a partition's log, less
    # than the backlog; the edge reads each record long before it goes.
    out = env.produce("deliveries", [KEY], RECORDS, tag="big",
                      extra=["--size", str(SIZE), "--rate", "50"])
    h.log(out.strip())
    await h.wait_until(lambda: all(len(c.bodies) >= RECORDS for c in fast + [deflated]), 60,
                       "every record at the fast sessions")
    stalled_has = len(squeezed.bodies)
    cut = short_writes(router) - before
    h.log(f"fast sessions complete; the stalled one has {stalled_has} of {RECORDS}; "
          f"writes cut short so far: {cut:.0f}")
    assert stalled_has < RECORDS, "the stalled session was not held back"
    assert cut > 0, "no write to the stalled session was cut short"
    # A Ping while the router is inside a cut frame: lws's Pong must come
    # after that frame, not inside it.
    pong = await squeezed.ws.ping(b"mid-frame")

    squeezed.gate.set()
    await h.wait_until(lambda: len(squeezed.bodies) >= RECORDS, 60, "the stalled session's records")
    await asyncio.wait_for(pong, 10)
    await asyncio.sleep(0.5)  # any extra message would show up now

    ref = fast[0].bodies
    for i, b in enumerate(ref):
        check_body(b, i)
    for c in everyone:
        assert len(c.bodies) == RECORDS, f"{len(c.bodies)} records, want {RECORDS}"
        assert c.bodies == ref, "a session's bytes differ from another's"
        if c.framed:
            assert c.offsets == sorted(c.offsets) and len(set(c.offsets)) == RECORDS
    total = short_writes(router) - before
    h.log(f"{len(everyone)} sessions of {KEY} each got {RECORDS} records of {SIZE} B, "
          f"byte for byte the same; writes cut short: {total:.0f}")
    await asyncio.gather(*(c.close() for c in everyone))
    assert edge.alive() and router.alive()


def main():
    with h.Env("large_records") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
