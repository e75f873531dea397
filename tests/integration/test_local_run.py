#!/usr/bin/env python3
"""The local run as a user types it (issue 14 item 1): deploy/local/run
starts the embedded Kafka, two edges, a router, the demo page and a producer;
a client with a token from the demo's development endpoint receives
client-1's records; then Ctrl-C (SIGINT to the foreground process group, as a
terminal sends it) stops everything in under 5 s with exit status 0 and
leaves no component running.

Moves only the client and demo ports (--port, --demo-port); the admin ports
are the ones README.md's curl examples use (9090 router, 9101 and 9102
edges), so nothing else may listen there while this runs."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import harness as h

STOP_BOUND_S = 5.0


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def first_record(ws_url, token):
    import websockets
    async with websockets.connect(f"{ws_url}?access_token={token}", subprotocols=["kws.v1"],
                                  open_timeout=10) as ws:
        status = await asyncio.wait_for(ws.recv(), 10)
        status = status.decode() if isinstance(status, bytes) else status
        assert status.startswith("s live "), status
        while True:
            msg = await asyncio.wait_for(ws.recv(), 15)
            msg = msg.decode() if isinstance(msg, bytes) else msg
            if msg.startswith("d "):
                return status.split("\n")[0], msg.split("\n")[0]


def main():
    for port in (9090, 9101, 9102):
        if port_open(port):
            skip(f"port {port} is taken: the local run's admin ports must be free")
    ws_port, demo_port = h.free_port(), h.free_port()
    # KWS_KAFKA means "use this cluster" to the local run; meson sets it to
    # the test's kind ("mock"): the local run must start its embedded Kafka.
    env = {k: v for k, v in os.environ.items() if k != "KWS_KAFKA"}
    p = subprocess.Popen([os.path.join(h.SOURCE, "deploy", "local", "run"), "--port", str(ws_port),
                          "--demo-port", str(demo_port)], cwd=h.SOURCE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)
    out = []
    try:
        deadline = time.monotonic() + 300
        for line in p.stdout:
            out.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        text = "".join(out)
        assert "Press Ctrl-C" in text, f"the local run did not come up:\n{text}"
        assert f"ws://127.0.0.1:{ws_port}/ws" in text, text
        assert f"http://127.0.0.1:{demo_port}/?id=client-1" in text, text
        wait_until(lambda: urllib.request.urlopen("http://127.0.0.1:9090/readyz", timeout=2).status == 200,
                   60, "the router's /readyz")
        for port in (9101, 9102):
            st = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status
            assert st == 200, (port, st)
        with urllib.request.urlopen(f"http://127.0.0.1:{demo_port}/token?id=client-1", timeout=5) as r:
            token = json.load(r)["token"]
        status, record = asyncio.run(first_record(f"ws://127.0.0.1:{ws_port}/ws", token))
        print(f"local run: {status!r}, then {record!r} for client-1")
    finally:
        t0 = time.monotonic()
        os.killpg(p.pid, signal.SIGINT)
        try:
            rest = p.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            raise AssertionError("the local run did not stop within 30 s of Ctrl-C")
        took = time.monotonic() - t0
    print(f"Ctrl-C: exit status {p.returncode} after {took:.2f} s")
    assert p.returncode == 0, f"exit status {p.returncode}:\n{rest}"
    assert took < STOP_BOUND_S, f"stopping took {took:.1f} s (bound {STOP_BOUND_S} s)"
    left = [port for port in (9090, 9101, 9102, ws_port, demo_port) if port_open(port)]
    assert not left, f"still listening after the stop: {left}"
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
