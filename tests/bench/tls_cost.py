#!/usr/bin/env python3
"""CPU cost of wss against ws on the router, measured in one run (issue 15).

Starts the mock cluster, one edge that echoes client messages into the
delivery topic (--inbound-topic), and two routers on the same edge: one
plain (ws), one with --tls-cert/--tls-key (wss, an RSA-2048 certificate made
here with openssl). For each router it measures the router process's CPU
time (every thread's, from /proc/PID/task/*/schedstat) over:

  handshakes: H connections opened one after another, each through the
              TCP, TLS (wss) and WebSocket handshakes, then closed;
  messages:   one connection sends M client messages of SIZE bytes and
              reads the M echoes back (so each message crosses the router
              both ways: client -> edge, record -> client).

Prints CPU microseconds per handshake and per message (one way counted as
one message: 2*M per run) for ws and wss, and the ratios wss/ws. The client
(Python) and the edge are not counted: only the router's CPU. Bounded: the
defaults take about a minute. Usage (from the repository root):
  KWS_BUILD=build tests/bench/tls_cost.py [H [M [SIZE]]]
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402
from test_wss import Wss, frame, make_pki, OP_BIN  # noqa: E402

def cpu_s(pid):
    """CPU time of every thread of pid (the door's included), in seconds, to
    the nanosecond (schedstat: /proc/PID/stat counts 10 ms ticks)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total / 1e9


def handshakes(router, ca, n):
    pid = router.p.pid
    t0, w0 = cpu_s(pid), time.monotonic()
    for i in range(n):
        Wss(router.port, ca, f"hs-{i % 50}").close()
    time.sleep(0.3)  # closes are served
    return cpu_s(pid) - t0, time.monotonic() - w0


def messages(router, ca, m, size, name):
    c = Wss(router.port, ca, f"msg-{name}")
    body = b"x" * size
    # Warm-up: the session is live at its edge once an echo comes back.
    c.send(frame(OP_BIN, b"warm"))
    assert c.read_until(lambda x: x.data(), 30), "no warm-up echo"
    c.frames.clear()
    pid = router.p.pid
    t0, w0 = cpu_s(pid), time.monotonic()
    sent = 0
    while sent < m:
        k = min(200, m - sent)
        c.send(b"".join(frame(OP_BIN, body) for _ in range(k)))
        sent += k
        assert c.read_until(lambda x: len(x.data()) >= sent, 60), \
            f"{name}: {len(c.data())}/{sent} echoes"
        c.frames.clear()
        c.frames.extend([(OP_BIN, b"")] * sent)  # keep the count, not the bodies
    cpu = cpu_s(pid) - t0
    wall = time.monotonic() - w0
    c.close()
    return cpu, wall


def main():
    n_hs = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    n_msg = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    with h.Env("tls-cost") as env:
        make_pki(env.dir)
        ca = os.path.join(env.dir, "ca.crt")
        env.start_kafka({"deliveries": 1})
        edge = env.start_edge("edge-0", extra=["--inbound-topic", "deliveries"])
        common = ["--handshakes-per-ip", "100000"]
        ws = env.start_router("router-ws", [edge], common)
        wss = env.start_router("router-wss", [edge], common + [
            "--tls-cert", os.path.join(env.dir, "srv1.crt"),
            "--tls-key", os.path.join(env.dir, "srv1.key")])
        h.wait_all_owned(ws, 60)
        h.wait_all_owned(wss, 60)
        out = {"load_before": os.getloadavg()[0], "handshakes": n_hs, "messages": n_msg,
               "size": size}
        for name, r, cafile in (("ws", ws, None), ("wss", wss, ca)):
            cpu, wall = handshakes(r, cafile, n_hs)
            out[f"{name}_us_per_handshake"] = cpu / n_hs * 1e6
            out[f"{name}_handshakes_per_s"] = n_hs / wall
            cpu, wall = messages(r, cafile, n_msg, size, name)
            out[f"{name}_us_per_message"] = cpu / (2 * n_msg) * 1e6
            out[f"{name}_messages_per_s"] = 2 * n_msg / wall
        out["ratio_handshake"] = out["wss_us_per_handshake"] / max(out["ws_us_per_handshake"], 1e-9)
        out["ratio_message"] = out["wss_us_per_message"] / max(out["ws_us_per_message"], 1e-9)
        out["load_after"] = os.getloadavg()[0]
        for k, v in out.items():
            h.log(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}")
        print(json.dumps(out))
        env.failed = False


if __name__ == "__main__":
    main()
