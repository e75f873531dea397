#!/usr/bin/env python3
"""A router's stop is bounded when an edge's name lookup hangs.

A name in --edges is resolved on libuv's thread pool, and --edges-dns on the
resolver's thread; behind a DNS server that does not answer, getaddrinfo
waits 5 s a try (glibc: twice per server), and neither lookup can be
cancelled once under way. The routers here preload tests/tools/slowdns,
whose getaddrinfo of *.slow-dns.test waits 60 s: one router with --edges
edge.slow-dns.test:9 beside a real edge (it serves a client meanwhile), one
with --edges-dns edges.slow-dns.test:9. Each is stopped with SIGTERM while
its lookup hangs, and must exit 0 within STOP_S, saying it did not wait.
Before, each waited for the lookup: 60 s here."""

import asyncio
import os
import signal
import sys
import time

import harness as h

STOP_S = 10
SHIM = os.path.join(h.BUILD, "tests", "tools", "libslowdns.so")


def shim_env():
    env = dict(os.environ, LD_PRELOAD=SHIM)
    # ASan wants its runtime first in the library list; the shim is
    # preloaded before it. The lookup left running at exit is a leak by
    # design (the process is exiting).
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0:detect_leaks=0"
    return env


def stop_within(router, what):
    t0 = time.monotonic()
    os.kill(router.p.pid, signal.SIGTERM)
    try:
        rc = router.p.wait(STOP_S)
    except Exception:
        raise AssertionError(f"{what}: still running {STOP_S} s after SIGTERM")
    took = time.monotonic() - t0
    h.log(f"{what}: exited {rc} {took:.1f}s after SIGTERM")
    assert rc == 0, f"{what}: exit status {rc}"
    return took


async def run(env):
    env.start_kafka({"deliveries": 2})
    edge = env.start_edge("edge-1")

    class Named:
        url = "tcp://edge.slow-dns.test:9"

    r1 = env.start_router("router-names", [edge, Named()], env=shim_env())
    h.wait_all_owned(r1, 60)
    c = h.Collector(r1.ws_url, "stop-bounded-0", framed=True)
    await c.connect()
    await h.warm_up(env, [c])
    await c.close()
    took1 = stop_within(r1, "--edges with a name whose lookup hangs")
    assert "not waiting for it" in r1.text(), "the router did not say it left the lookup"

    r2 = env.start_router("router-dns", [], ["--edges-dns", "edges.slow-dns.test:9"],
                          env=shim_env())
    r2.wait_for(r"WebSockets on", 30)
    time.sleep(0.5)  # the resolver's first lookup is under way
    took2 = stop_within(r2, "--edges-dns with a name whose lookup hangs")
    assert "not waiting for it" in r2.text(), "the router did not say it left the lookup"
    h.log(f"stop bounded: {took1:.1f}s and {took2:.1f}s with lookups that hang for 60 s")


def main():
    with h.Env("stop_bounded") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
