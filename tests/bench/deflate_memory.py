#!/usr/bin/env python3
"""Memory per session and bytes on the wire with and without permessage-deflate.

Starts the mock cluster, one edge that echoes client messages into the
delivery topic (--inbound-topic), and three routers, each fresh for one
case (so no case reuses memory another freed):

  plain:  --deflate on, clients that do not offer permessage-deflate (the
          baseline: what a session costs without it);
  on:     --deflate on, clients that offer it as browsers do
          ("permessage-deflate; client_max_window_bits");
  no-context-takeover: --deflate no-context-takeover, the same clients.

Opens N sessions on each and reads the router's resident memory (VmRSS):

  idle:   N sessions opened, nothing sent;
  active: each session sent two messages (1 KiB JSON-like texts that share
          their keys) and got their echoes back, so the inflater and the
          compressor exist (unless reset after each message); the sessions
          are idle again.

Prints KiB per session for each step, their ratio to plain, and the bytes
each echo took on the wire (frame payload) each way: the second echo shows
what a kept context saves. Usage (from the build's parent directory):
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
    if deflate:
        assert "permessage-deflate" in conns[0].head, "not negotiated"
    up = [0, 0]
    down = [0, 0]
    comps = [zlib.compressobj(wbits=-10) for _ in conns]
    for k in range(2):
        for i, c in enumerate(conns):
            m = message(i + 7 * k)
            if deflate:
                co = comps[i]
                body = (co.compress(m) + co.flush(zlib.Z_SYNC_FLUSH))[:-4]
                c.send(frame(OP_BIN, body, rsv=4))
                up[k] += len(body)
            else:
                c.send(frame(OP_BIN, m))
                up[k] += len(m)
        for c in conns:
            if not c.read_until(lambda x: len(x.messages()) > k, ANSWER_S * 4):
                raise AssertionError("an echo did not come back")
            op, payload, rsv1 = c.messages()[k]
            assert rsv1 == deflate, "echo compressed or not as negotiated"
            down[k] += len(payload)
    time.sleep(0.5)
    active = rss_kib(pid)
    for c in conns:
        c.shut()
    time.sleep(1.0)
    return {"idle_kib": (idle - base) / n, "active_kib": (active - base) / n,
            "up_bytes": [u / n for u in up], "down_bytes": [d / n for d in down]}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with h.Env("deflate-mem") as env:
        env.start_kafka({"deliveries": 1})
        edge = env.start_edge("edge-0", topic="deliveries",
                              extra=["--inbound-topic", "deliveries"])
        cases = [("plain", "on", False), ("on", "on", True),
                 ("no-context-takeover", "no-context-takeover", True)]
        routers = {name: env.start_router(f"router-{name}", [edge],
                                          ["--deflate", mode, "--handshakes-per-ip", "100000"])
                   for name, mode, _ in cases}
        for r in routers.values():
            h.wait_all_owned(r, 60)
        time.sleep(1)
        load0 = os.getloadavg()[0]
        res = {name: run(env, routers[name], n, offer) for name, _, offer in cases}
        load1 = os.getloadavg()[0]
        print(f"{n} sessions per case (load average {load0:.1f} before, {load1:.1f} after); "
              "router RSS growth per session, and each 1 KiB echo's bytes on the wire:")
        p = res["plain"]
        for name, _, _ in cases:
            r = res[name]
            print(f"  {name:20s}: idle {r['idle_kib']:5.1f} KiB, after two echoes "
                  f"{r['active_kib']:5.1f} KiB ({r['active_kib'] / p['active_kib']:.1f}x plain); "
                  f"wire up {r['up_bytes'][0]:.0f} + {r['up_bytes'][1]:.0f} B, "
                  f"down {r['down_bytes'][0]:.0f} + {r['down_bytes'][1]:.0f} B")


if __name__ == "__main__":
    main()
