#!/usr/bin/env python3
"""Half-open handshakes (issue 14 item 8), at the router's front door.

1. 400 connections from one address (127.0.0.2) that send half a request
   line: at most --handshakes-waiting-per-ip of them wait; the rest are
   answered 429 at accept and counted (reason "limit"). Meanwhile a client
   from another address connects and receives its records at once.
2. The waiting ones are closed, without an answer, when --handshake-timeout-s
   (3 s here) has passed, not later; then that address may connect again.
3. A router under `prlimit --nofile` low enough that the flood exhausts its
   descriptors: accept() fails with EMFILE; the router backs off instead of
   spinning (CPU time stays low, kws_router_accept_errors_total counts it),
   its warnings are rate-limited, and once the flood is gone a client
   connects again.
"""

import asyncio
import os
import re
import socket
import sys
import time
import urllib.request

import harness as h

ATTACKERS = 400
PER_IP = 64
TIMEOUT_S = 3
HALF = b"GET /ws HT"  # half a request line


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return line
    return None


def rejected_limit(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        m = re.search(r'kws_router_handshakes_rejected_total\{reason="limit"\} (\S+)',
                      r.read().decode())
    return float(m.group(1))


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def open_half(port, n, source="127.0.0.2"):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                     source_address=(source, 0))
        s.sendall(HALF)
        socks.append(s)
    return socks


def outcomes(socks, t0, limit_s):
    """For each socket: ("answer", first line, t) or ("closed", None, t)."""
    out = []
    for s in socks:
        s.settimeout(max(0.1, limit_s - (time.monotonic() - t0)))
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            out.append(("open", None, time.monotonic() - t0))
            continue
        t = time.monotonic() - t0
        out.append(("answer", data.split(b"\r\n", 1)[0].decode(), t) if data
                   else ("closed", None, t))
    return out


async def live_client(env, router, cid, **kw):
    """Seconds until client cid (connecting with kw, e.g. local_addr) got a
    record produced after it connected."""
    import websockets
    c = h.Collector(router.ws_url, cid)
    c.ws = await websockets.connect(c.url, extra_headers=c.headers, open_timeout=5, **kw)
    c.task = asyncio.ensure_future(c._read())
    t0 = time.monotonic()
    await h.warm_up(env, [c], timeout=30)
    took = time.monotonic() - t0
    await c.close()
    return took


async def run(env):
    env.start_kafka({"deliveries": 3})
    edge = env.start_edge("edge-1")
    router = env.start_router("router-1", [edge], [
        "--handshake-timeout-s", str(TIMEOUT_S), "--handshakes-waiting-per-ip", str(PER_IP)])
    h.wait_all_owned(router)

    # 1. The flood from 127.0.0.2, and a client from 127.0.0.1 meanwhile.
    before = rejected_limit(router.admin_port)
    t0 = time.monotonic()
    socks = open_half(router.port, ATTACKERS)
    took = await live_client(env, router, "alice")
    h.log(f"{ATTACKERS} half-open connections from 127.0.0.2 open; a client from "
          f"127.0.0.1 got its records {took:.2f}s after connecting")
    res = outcomes(socks, t0, TIMEOUT_S + 4)
    refused = [r for r in res if r[0] == "answer"]
    closed = [r for r in res if r[0] == "closed"]
    still = [r for r in res if r[0] == "open"]
    h.log(f"refused at accept: {len(refused)} ({refused[0][1] if refused else '-'}); "
          f"closed silently: {len(closed)}, after "
          f"{min((r[2] for r in closed), default=0):.2f}..{max((r[2] for r in closed), default=0):.2f}s; "
          f"still open after {TIMEOUT_S + 4}s: {len(still)}")
    for s in socks:
        s.close()
    assert not still, f"{len(still)} half-open connections outlived the handshake timeout"
    assert len(closed) == PER_IP, f"{len(closed)} waited, want --handshakes-waiting-per-ip {PER_IP}"
    assert all(r[1].startswith("HTTP/1.1 429") for r in refused), refused[:3]
    assert len(refused) == ATTACKERS - PER_IP
    assert all(TIMEOUT_S - 0.5 <= r[2] <= TIMEOUT_S + 2 for r in closed), \
        f"closed after {[round(r[2], 2) for r in closed][:5]}..., want about {TIMEOUT_S}s"
    limit = rejected_limit(router.admin_port) - before
    h.log(f'kws_router_handshakes_rejected_total{{reason="limit"}} +{limit:.0f}')
    assert limit == ATTACKERS - PER_IP
    assert took < 5, "the client from another address was held up"

    # 2. That address may connect again now.
    took = await live_client(env, router, "bob", local_addr=("127.0.0.2", 0))
    h.log(f"127.0.0.2 connects again after the timeout (records in {took:.2f}s)")
    warns = re.findall(r"front door: refused", router.text())
    h.log(f"router warnings about the refusals: {len(warns)} line(s) for "
          f"{ATTACKERS - PER_IP} refusals")
    assert 1 <= len(warns) <= 3, "warnings are rate-limited (one a second)"

    # 3. Out of descriptors: a router with few of them.
    port, admin = h.free_port(), h.free_port()
    r2 = env.spawn("router-2", ["prlimit", "--nofile=64:64", h.ROUTER, "--listen",
                                f"127.0.0.1:{port}", "--router-id", "router-2",
                                "--edges", edge.url, "--admin-listen", f"127.0.0.1:{admin}",
                                "--handshake-timeout-s", str(TIMEOUT_S),
                                "--handshakes-waiting-per-ip", "4096"])
    r2.port, r2.admin_port, r2.ws_url = port, admin, f"ws://127.0.0.1:{port}/ws"
    h.wait_all_owned(r2)
    nfd = len(os.listdir(f"/proc/{r2.p.pid}/fd"))
    cpu0 = cpu_s(r2.p.pid)
    t0 = time.monotonic()
    socks = open_half(port, 150)  # the backlog holds what cannot be accepted
    await asyncio.sleep(4)
    cpu = cpu_s(r2.p.pid) - cpu0
    wall = time.monotonic() - t0
    lines = len(re.findall(r"cannot accept", r2.text()))
    h.log(f"router-2 with 64 descriptors ({nfd} in use before): 150 half-open connections; "
          f"CPU {cpu:.2f}s in {wall:.1f}s; {lines} 'cannot accept' warning line(s)")
    for s in socks:
        s.close()
    assert lines >= 1, "accept ran out of descriptors (the test's premise)"
    assert cpu < 0.5 * wall, "accept spins at EMFILE"
    assert lines <= wall + 2, "warnings are rate-limited"
    await asyncio.sleep(TIMEOUT_S + 1)
    took = await live_client(env, r2, "carol")
    errors = metric(admin, "kws_router_accept_errors_total")
    h.log(f"after the flood a client connects (records in {took:.2f}s); {errors}")
    assert errors and float(errors.split()[-1]) >= 1


def main():
    with h.Env("half-open") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
