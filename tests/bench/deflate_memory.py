#!/usr/bin/env python3
"""Memory per session and bytes on the wire with and without permessage-deflate.

Starts the mock cluster, one edge that echoes client messages into the
delivery topic (--inbound-topic), and one router with --deflate on. Opens N
sessions that do not offer permessage-deflate and N that do, and reads the
router's resident memory (VmRSS) after each step:

  idle:   N sessions opened, nothing sent;
  active: each session sent one message (a 1 KiB JSON-like text) and got
          its echo back, so lws has set up the inflater and the compressor.

Prints KiB per session for each step and the bytes one echo took on the
wire (frame payload) each way. Usage (from the build's parent directory):
  KWS_BUILD=build tests/bench/deflate_memory.py [N]
"""

import os
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402
from test_ws_conformance import Raw, frame, OP_BIN, ANSWER_S  # noqa: E402

OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
MSG = (b'{"type":"order-updated","order":{"id":"%06d","status":"shipped",'
       b'"items":[{"sku":"A-100","qty":2},{"sku":"B-200","qty":1}]},"seq":%d}')


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def message(i):
    m = b""
    while len(m) < 1024:
        m += MSG % (i, len(m))
    return m[:1024]


def run(env, router, n, deflate):
    pid = router.p.pid
    base = rss_kib(pid)
    conns = [Raw(router.port, f"mem-{'d' if deflate else 'p'}-{i}", [OFFER] if deflate else [])
             for i in range(n)]
    time.sleep(0.5)
    idle = rss_kib(pid)
    wire_up = wire_down = 0
    for i, c in enumerate(conns):
        m = message(i)
        if deflate:
            co = zlib.compressobj(wbits=-15)
            body = (co.compress(m) + co.flush(zlib.Z_SYNC_FLUSH))[:-4]
            c.send(frame(OP_BIN, body, rsv=4))
            wire_up += len(body)
        else:
            c.send(frame(OP_BIN, m))
            wire_up += len(m)
    for c in conns:
        if not c.read_until(lambda x: any(f[0] == OP_BIN for f in x.frames), ANSWER_S * 4):
            raise AssertionError("an echo did not come back")
        wire_down += len([f for f in c.frames if f[0] == OP_BIN][0][1])
    time.sleep(0.5)
    active = rss_kib(pid)
    for c in conns:
        c.shut()
    time.sleep(1.0)
    return {"idle_kib": (idle - base) / n, "active_kib": (active - base) / n,
            "up_bytes": wire_up / n, "down_bytes": wire_down / n}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with h.Env("deflate-mem") as env:
        env.start_kafka({"deliveries": 1})
        edge = env.start_edge("edge-0", topic="deliveries",
                              extra=["--inbound-topic", "deliveries"])
        router = env.start_router("router", [edge], ["--deflate", os.environ.get("KWS_DEFLATE", "on"),
                                                     "--handshakes-per-ip", "100000"])
        h.wait_all_owned(router, 60)
        time.sleep(1)
        plain = run(env, router, n, False)
        defl = run(env, router, n, True)
        print(f"{n} sessions each, router RSS growth per session and one 1 KiB echo:")
        for name, r in (("no deflate", plain), ("deflate", defl)):
            print(f"  {name:10s}: idle {r['idle_kib']:6.1f} KiB, after one echo "
                  f"{r['active_kib']:6.1f} KiB; wire {r['up_bytes']:.0f} B up, "
                  f"{r['down_bytes']:.0f} B down")


if __name__ == "__main__":
    main()
