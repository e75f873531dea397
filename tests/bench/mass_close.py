#!/usr/bin/env python3
"""What the router's loop pays when N sessions end at once (issue 13).

    tests/bench/mass_close.py [--build DIR] [--sessions N] [--trials T]

One router (and one edge on librdkafka's mock cluster: Kafka plays no part
here) holds N idle sessions of loadgen, opened from 16 source addresses.
Then they all end at once, two ways, each in its own round:
  - abrupt: loadgen is killed (SIGKILL): the kernel ends every connection,
    and the router sees the end of each socket: the floor;
  - graceful: loadgen is stopped (SIGTERM): every client sends a Close
    frame, and the router answers each one and hangs up.
Reported: the router's CPU from the moment of the signal until its
kws_router_sessions gauge is 0, the time until then, and graceful /
abrupt. While that runs, the router's loop serves no one else.

With a timer of lws's per closing connection, the graceful round was
O(N^2) (lws 4.1.6 keeps one sorted list of timers and inserts by walking
it): tests/bench/README.md, "Closing many sessions at once"."""

import argparse
import os
import signal
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build-bench"))
    ap.add_argument("--sessions", type=int, default=15000)
    ap.add_argument("--trials", type=int, default=2)
    a = ap.parse_args()
    os.environ["KWS_BUILD"] = os.path.abspath(a.build)
    os.environ["KWS_SOURCE"] = SRC
    os.environ["KWS_KAFKA"] = "mock"
    sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
    import harness as h

    def cpu(pid):
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def sessions(port):
        t = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read()
        return h.metric_total(t.decode(), "kws_router_sessions") or 0

    rows = []
    with h.Env("mass-close") as env:
        env.start_kafka({"deliveries": 4})
        edge = env.start_edge("edge-1")
        r = env.start_router("router-1", [edge], ["--max-connections", "19500",
                                                  "--handshakes-per-ip", "1000000"])
        h.wait_all_owned(r)
        for trial in range(a.trials):
            for how, sig in (("abrupt", signal.SIGKILL), ("graceful", signal.SIGTERM)):
                lg = env.spawn(f"lg-{how}-{trial}", [
                    os.path.join(h.BUILD, "tests", "tools", "loadgen"), "--url", r.ws_url,
                    "--clients", str(a.sessions), "--source-addrs", "16", "--connect-rate", "5000",
                    "--duration-s", "600", "--progress-s", "0"])
                lg.wait_for(r"clients connected in", 120)
                deadline = time.monotonic() + 60
                while sessions(r.admin_port) < a.sessions and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(2.0)
                c0, t0 = cpu(r.p.pid), time.monotonic()
                os.kill(lg.p.pid, sig)
                while sessions(r.admin_port) > 0 and time.monotonic() < t0 + 120:
                    time.sleep(0.05)
                row = {"how": how, "trial": trial, "cpu_s": cpu(r.p.pid) - c0,
                       "seconds": time.monotonic() - t0, "load": os.getloadavg()[0]}
                rows.append(row)
                print(f"{how:8s} trial {trial}: {a.sessions} sessions ended: router "
                      f"{row['cpu_s']:.2f} cpu-s ({row['cpu_s'] / a.sessions * 1e6:.0f} us per "
                      f"session), all gone after {row['seconds']:.2f} s, load {row['load']:.1f}",
                      flush=True)
                lg.stop(signal.SIGKILL, 10)
                time.sleep(1.0)
    for trial in range(a.trials):
        ab = [x for x in rows if x["trial"] == trial]
        floor, g = ab[0]["cpu_s"], ab[1]["cpu_s"]
        print(f"trial {trial}: graceful / abrupt router CPU = {g:.2f} / {floor:.2f} = "
              f"{g / floor if floor else float('nan'):.2f}x")


if __name__ == "__main__":
    main()
