#!/usr/bin/env python3
"""Half-open handshakes and file exhaustion at the router's front door
(issue 14 item 8).

1. 400 connections from one address (127.0.0.2) each send half a request
   line and stop. Only --max-waiting-per-ip of them wait (the rest get 429 at
   once), an honest client from 127.0.0.1 still gets its 101 at once, and
   the waiting ones are cut after --handshake-timeout-s, not later.
2. The router runs out of files (RLIMIT_NOFILE 64) under a flood of
   connections: it does not spin on accept (its CPU over 2 s stays low), its
   log says so once, not thousands of times, and when the flood ends an
   honest client gets in again."""
import os
import socket
import sys
import time

import harness as h

PER_IP = 16
TIMEOUT_S = 2


def half_open(src, port, n):
    socks, refused = [], 0
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /ws HT")
        socks.append(s)
    # The refused ones have their answer already (or shortly).
    time.sleep(0.5)
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(4096)
            if data.startswith(b"HTTP/1.1 429"):
                refused += 1
        except BlockingIOError:
            pass
        except OSError:
            pass
    return socks, refused


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    with h.Env("half-open") as env:
        env.start_kafka({"deliveries": 2})
        edge = env.start_edge("edge-1")
        router = env.start_router("router-1", [edge], [
            "--max-waiting-per-ip", str(PER_IP), "--handshake-timeout-s", str(TIMEOUT_S),
            "--handshakes-per-ip", "100000"])
        h.wait_all_owned(router)

        t0 = time.monotonic()
        socks, refused = half_open("127.0.0.2", router.port, 400)
        print(f"half-open: 400 from 127.0.0.2, {refused} answered 429 at once")
        assert refused == 400 - PER_IP, f"{refused} refused, want {400 - PER_IP}"
        t1 = time.monotonic()
        st, body = h.raw_handshake(router.port, headers=["X-Client-Id: honest"])
        took = time.monotonic() - t1
        print(f"honest client meanwhile: HTTP {st} in {took * 1000:.0f} ms")
        assert st == 101 and took < 1.0, (st, body, took)
        # The waiting ones are cut at the timeout (allow a second of slack).
        open_after = []
        deadline = t0 + TIMEOUT_S + 1.5
        while time.monotonic() < deadline:
            time.sleep(0.2)
        for s in socks:
            s.setblocking(False)
            try:
                s.recv(4096)  # b"" or an answer: the router has closed it
            except BlockingIOError:
                open_after.append(s)
            except OSError:
                pass
        print(f"after {TIMEOUT_S + 1.5:.1f} s: {len(open_after)} still open")
        assert not open_after, f"{len(open_after)} half-open connections outlived the timeout"
        for s in socks:
            s.close()

        # 2. Out of files.
        small = env.start_router("router-small", [edge], [
            "--max-waiting-per-ip", "4096", "--handshakes-per-ip", "100000"])
        h.wait_all_owned(small)
        rc = os.system(f"prlimit --pid {small.p.pid} --nofile=64:64")
        assert rc == 0, "prlimit failed"
        flood = []
        for i in range(200):
            s = socket.socket()
            s.bind((f"127.0.0.{3 + i % 8}", 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", small.port))
            flood.append(s)
        time.sleep(0.5)
        c0 = cpu_seconds(small.p.pid)
        time.sleep(2.0)
        used = cpu_seconds(small.p.pid) - c0
        lines = small.text().count("cannot accept client connections")
        print(f"out of files: router CPU {used:.2f} s over 2 s, {lines} log line(s) about it")
        assert used < 0.5, f"the router spun at EMFILE: {used:.2f} s of CPU in 2 s"
        assert 1 <= lines <= 2, f"{lines} log lines about accept failures"
        for s in flood:
            s.close()
        ok = False
        deadline = time.monotonic() + TIMEOUT_S + 5
        while time.monotonic() < deadline and not ok:
            try:
                st, _ = h.raw_handshake(small.port, headers=["X-Client-Id: after-flood"])
                ok = st == 101
            except OSError:
                pass
            if not ok:
                time.sleep(0.5)
        print(f"after the flood: honest client {'got in' if ok else 'did not get in'}")
        assert ok
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
