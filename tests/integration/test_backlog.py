#!/usr/bin/env python3
"""An edge catching up on a backlog does not pause (librdkafka 2.0.2's
fetcher sleeps up to 1 s once its local queue was full; the edge wakes it,
edge/refill.h).

A client is live at its edge; the edge is stopped (SIGSTOP) while 300,000
records for 50 keys, the client's among them, go into Kafka; then it
resumes. The client must get its 6,000 records of the backlog once and in
order, with no gap of RECORD_GAP_MAX_S between two of them, and the edge's
kws_edge_fetch_refills_total shows that its fetcher was woken.

The edge runs with queued.min.messages=5000 (librdkafka's default is
100,000): every fetch response then fills the local queue past the bound, so
the fetcher stops each time, as it does on a busy edge with the default
bound; with the default a run of this size meets it only sometimes.
Without the wake-up the client's longest gap was about 1 s."""

import asyncio
import os
import signal
import sys
import time

import harness as h

PARTITIONS = 4
KEYS = 50
PER_KEY = 6000           # records per key: 300,000 in all
RECORD_GAP_MAX_S = 0.5   # the fetcher's own sleep was up to 1 s


async def run(env):
    env.start_kafka({"deliveries": PARTITIONS})
    # A longer session timeout: the edge stays in its group while stopped.
    edge = env.start_edge("edge-1", fast_group=False,
                          extra=["--kafka-prop", "queued.min.messages=5000",
                                 "--kafka-prop", "session.timeout.ms=60000",
                                 "--kafka-prop", "heartbeat.interval.ms=1000"])
    router = env.start_router("router-1", [edge])
    h.wait_all_owned(router, 90)

    watcher = h.Collector(router.ws_url, "watcher")
    await watcher.connect()
    await h.warm_up(env, [watcher])

    keys = ["watcher"] + [f"other-{i}" for i in range(KEYS - 1)]
    os.kill(edge.p.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        env.produce("deliveries", keys, PER_KEY, tag="backlog")
        h.log(f"produced {KEYS * PER_KEY} records in {time.monotonic() - t0:.1f}s "
              f"with the edge stopped")
    finally:
        os.kill(edge.p.pid, signal.SIGCONT)
    t1 = time.monotonic()
    await h.wait_until(lambda: len(watcher.records("backlog")) >= PER_KEY, 120,
                       "the client's backlog")
    took = time.monotonic() - t1
    await asyncio.sleep(0.3)  # let any duplicate show up

    lost, dup, reordered, foreign = h.check_streams([watcher], PER_KEY, "backlog")
    gap = watcher.longest_gap("backlog")
    status, text = h.admin_request(edge.admin_port, "/metrics")
    refills = h.metric_total(text, "kws_edge_fetch_refills_total") or 0
    consumed = h.metric_total(text, "kws_edge_records_total") or 0
    h.log(f"backlog: the client got {len(watcher.records('backlog'))} of {PER_KEY} "
          f"in {took:.2f}s; lost {lost}, duplicated {dup}, reordered {reordered}, "
          f"foreign {foreign}; longest gap between two of its records {gap * 1000:.0f} ms; "
          f"edge consumed {consumed:.0f} records, fetcher woken {refills:.0f} times")
    assert (lost, dup, reordered, foreign) == (0, 0, 0, 0)
    assert gap < RECORD_GAP_MAX_S, \
        f"the backlog paused {gap * 1000:.0f} ms (librdkafka's fetcher asleep?)"
    assert refills and refills >= 1, "the edge's fetcher was never woken"
    await watcher.close()
    assert edge.alive() and router.alive()


def main():
    with h.Env("backlog") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
