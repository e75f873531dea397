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
100,000): on the release build every fetch response then fills the local
queue past the bound, so the fetcher stops each time, as it does on a busy
edge with the default bound; with the default a run of this size meets it
only sometimes. Without the wake-up the client's longest gap was about 1 s."""

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

    def edge_metric(name):
        status, text = h.admin_request(edge.admin_port, "/metrics")
        return h.metric_total(text, name) or 0

    keys = ["watcher"] + [f"other-{i}" for i in range(KEYS - 1)]
    consumed_before = edge_metric("kws_edge_records_total")
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
    # The wake-ups are counted once the edge has caught up (no lag on any
    # partition): the client's records may be through long before the rest
    # of the backlog. (Not a count of records: the mock cluster keeps at most
    # 5 MiB per partition and drops older segments.)
    def caught_up():
        status, text = h.admin_request(edge.admin_port, "/metrics")
        lags = [line.rsplit(" ", 1)[1] for line in text.splitlines()
                if line.startswith("kws_edge_consumer_lag{")]
        return lags and all(float(v) == 0 for v in lags)
    await h.wait_until(caught_up, 120, "the edge catching up with the backlog")
    refills = edge_metric("kws_edge_fetch_refills_total")
    consumed = edge_metric("kws_edge_records_total") - consumed_before
    h.log(f"backlog: the client got {len(watcher.records('backlog'))} of {PER_KEY} "
          f"in {took:.2f}s; lost {lost}, duplicated {dup}, reordered {reordered}, "
          f"foreign {foreign}; longest gap between two of its records {gap * 1000:.0f} ms; "
          f"edge consumed {consumed:.0f} records, fetcher woken {refills:.0f} times")
    assert (lost, dup, reordered, foreign) == (0, 0, 0, 0)
    assert gap < RECORD_GAP_MAX_S, \
        f"the backlog paused {gap * 1000:.0f} ms (librdkafka's fetcher asleep?)"
    # Whether the queue reaches its bound depends on which side is slower:
    # on the release build the edge outruns the fetcher and the queue fills
    # at every fetch response (14-26 wake-ups a run); a sanitizer build's
    # edge may keep the queue below the bound all along, and then nothing
    # sleeps and nothing needs waking (0-4 wake-ups).
    if os.environ.get("KWS_SANITIZED") != "1":
        assert refills >= 1, "the edge's fetcher was never woken"
    await watcher.close()
    assert edge.alive() and router.alive()


def main():
    with h.Env("backlog") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
