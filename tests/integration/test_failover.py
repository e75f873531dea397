#!/usr/bin/env python3
"""Failover with the shipped defaults (issue 14, item 3): an edge killed with
SIGKILL leaves no LeaveGroup behind, so its partitions wait for the group's
session timeout. The edges here run without the tests' fast group settings
(harness.FAST_GROUP): the clients of the killed edge's partitions must get
records again within 15 s (the shipped 8 s session timeout and a rebalance;
librdkafka's own default, 45 s, kept them waiting longer), losing nothing."""

import asyncio
import signal
import subprocess
import sys
import time

import harness as h

PARTITIONS = 4
IDS = [f"failover-{i}" for i in range(12)]
PER_KEY = 120       # records per client
RATE = 4 * len(IDS)  # 4 a second per client: 30 s of records
LIMIT_S = 15


def partition_of(c):
    return c.statuses[0][1]


async def run(env):
    env.start_kafka({"deliveries": PARTITIONS})
    e1 = env.start_edge("edge-1", fast_group=False)
    e2 = env.start_edge("edge-2", fast_group=False)
    r = env.start_router("router-1", [e1, e2])
    h.wait_all_owned(r, 90)
    clients = [h.Collector(r.ws_url, i, framed=True) for i in IDS]
    await asyncio.gather(*(c.connect() for c in clients))
    await h.warm_up(env, clients)

    def owned_by(e):
        return {p["partition"] for p in h.http_json(e.admin_port, "/api/v1/assignment")
                ["partitions"]}

    # Both edges own partitions (the second one's join may take a rebalance).
    await h.wait_until(lambda: owned_by(e1) and owned_by(e2), 120, "both edges to own some")
    await h.warm_up(env, clients)
    owned = owned_by(e1)
    hit = [c for c in clients if partition_of(c) in owned]
    h.log(f"edge-1 owns {sorted(owned)}: {len(hit)} of {len(clients)} clients behind it")
    assert hit, "edge-1 owns no partition with clients"

    prod = subprocess.Popen([h.PRODUCE, "--bootstrap", env.kafka.bootstrap, "--topic",
                             "deliveries", "--keys", ",".join(IDS), "--count", str(PER_KEY),
                             "--rate", str(RATE), "--tag", "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    await asyncio.sleep(5)
    e1.stop(signal.SIGKILL)
    h.log("edge-1 killed (SIGKILL)")
    loop = asyncio.get_running_loop()
    out, _ = await loop.run_in_executor(None, prod.communicate)
    assert prod.returncode == 0, out
    await h.wait_until(lambda: all(len(c.records("run")) >= PER_KEY for c in clients), 120,
                       "every record")
    await asyncio.sleep(1)
    lost, dup, reord, foreign = h.check_streams(clients, PER_KEY, "run")
    outage = max(c.longest_gap("run") for c in hit)
    calm = max((c.longest_gap("run") for c in clients if c not in hit), default=0.0)
    h.log(f"longest gap: {outage:.1f} s for the killed edge's clients, {calm:.1f} s for the "
          f"others; lost {lost}, duplicated {dup}, reordered {reord}, foreign {foreign}")
    assert (lost, dup, reord, foreign) == (0, 0, 0, 0)
    assert outage < LIMIT_S, f"the killed edge's clients waited {outage:.1f} s"
    await asyncio.gather(*(c.close() for c in clients))


def main():
    with h.Env("failover") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
