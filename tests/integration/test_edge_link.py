#!/usr/bin/env python3
"""Peers on the edge's router port that never authenticate (issue 14, item 7).

With --link-secret set, 20 connections that each declare a 16 MiB frame and
send 4 MiB of it, 10 that send nothing, and a flood of 80 more must not grow
the edge's memory: a link that has not said HELLO may send 4 KiB frames at
most, must say HELLO within 5 s, and only 64 such links are kept. Each is
closed and counted in the metrics, and an honest router keeps delivering."""

import asyncio
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.request

import harness as h

KEY = "link-0"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'(kws_edge_link_errors_total\{kind="(\w+)"\}|'
                     r'kws_edge_routers_unauthenticated) (\S+)', line)
        if m:
            out[m.group(2) or "unauthenticated"] = float(m.group(3))
    return out


class Peer:
    """A raw TCP peer of the edge's router port; notes when the edge closes it."""

    def __init__(self, port, send=b""):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.t0 = time.monotonic()
        self.closed_after = None
        self.got = 0
        self.send = send
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        if self.send:
            try:
                self.s.settimeout(20)
                self.s.sendall(self.send)
            except OSError:
                pass  # closed by the edge while sending
        self.s.settimeout(30)
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    break
                self.got += len(b)
        except OSError:
            pass
        self.closed_after = time.monotonic() - self.t0

    def close(self):
        self.s.close()


async def run(env):
    env.start_kafka({"deliveries": 3})
    secret = os.path.join(env.dir, "link.secret")
    with open(secret, "w") as f:
        f.write("a-shared-link-secret-of-enough-bytes\n")
    ls = ["--link-secret", "file:" + secret]
    e = env.start_edge("edge-1", extra=ls)
    r = env.start_router("router-1", [e], ls)
    h.wait_all_owned(r)
    c = h.Collector(r.ws_url, KEY, framed=True)
    await c.connect()
    await h.warm_up(env, [c])
    port = int(e.url.rsplit(":", 1)[1])
    base = rss_kib(e.p.pid)

    # 20 peers declare a 16 MiB frame and send 4 MiB of it; 10 send nothing.
    big = [Peer(port, struct.pack(">I", 16 << 20) + b"\0" * (4 << 20)) for _ in range(20)]
    silent = [Peer(port) for _ in range(10)]
    await asyncio.sleep(2)
    grown = rss_kib(e.p.pid) - base
    h.log(f"edge RSS {base} KiB before, +{grown} KiB with 20 peers declaring 16 MiB frames "
          f"and 10 silent ones")
    env.produce("deliveries", [KEY], 5, tag="during")
    await h.wait_until(lambda: len(c.records("during")) >= 5, 20, "delivery under attack")
    await h.wait_until(lambda: all(p.closed_after is not None for p in big + silent), 15,
                       "the edge to close every peer without HELLO")
    big_t = max(p.closed_after for p in big)
    silent_t = sorted(p.closed_after for p in silent)
    h.log(f"oversized frames closed within {big_t:.1f} s; silent peers closed after "
          f"{silent_t[0]:.1f}..{silent_t[-1]:.1f} s")
    assert grown < 16 * 1024, f"the edge grew by {grown} KiB"
    assert big_t < 3, big_t
    assert 4 <= silent_t[0] and silent_t[-1] < 9, silent_t

    # A flood: only 64 links without HELLO are kept; the rest are refused.
    flood = [Peer(port) for _ in range(80)]
    await h.wait_until(lambda: sum(p.closed_after is not None for p in flood) >= 16, 5,
                       "the connections over the limit to be refused")
    refused = [p for p in flood if p.closed_after is not None and p.closed_after < 2]
    h.log(f"flood of 80 silent links: {len(refused)} refused at once")
    assert len(refused) >= 16
    env.produce("deliveries", [KEY], 5, tag="flood")
    await h.wait_until(lambda: len(c.records("flood")) >= 5, 20, "delivery during the flood")
    await h.wait_until(lambda: all(p.closed_after is not None for p in flood), 15,
                       "the flood to be closed after the HELLO deadline")
    m = metrics(e.admin_port)
    h.log(f"edge metrics: {m}")
    assert m["hello_timeout"] >= 10 + 64 - 1, m
    assert m["refused_too_many"] >= 16, m
    assert m["closed_before_hello"] >= 20 + 10, m
    assert m["unauthenticated"] == 0, m
    for p in big + silent + flood:
        p.close()
    # The honest router's link was never touched: delivery goes on.
    env.produce("deliveries", [KEY], 5, tag="after")
    await h.wait_until(lambda: len(c.records("after")) >= 5, 20, "delivery after it")
    assert "failed authentication" not in e.text()
    await c.close()


def main():
    with h.Env("edge-link") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
