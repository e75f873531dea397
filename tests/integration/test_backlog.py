#!/usr/bin/env python3
"""An edge catching up on a backlog does not pause (librdkafka 2.0.2's
fetcher sleeps up to 1 s once its local queue was full; the edge wakes it,
edge/refill.h).

Four clients, one on each partition, are live at their edge; the edge is
stopped (SIGSTOP) while 144,000 records for 48 keys, the clients' among
them, go into Kafka; then it resumes. Each client must get its 3,000
records of the backlog once and in order, with no gap of RECORD_GAP_MAX_S
between two of them: a pause of any partition shows. The edge's
kws_edge_fetch_refills_total shows that its fetcher was woken.

The edge runs with queued.min.messages=5000 (librdkafka's default is
100,000): on the release build every few fetch responses then fill the
local queue past the bound, so the fetcher stops each time, as it does on a
busy edge with the default bound; with the default a run of this size meets
it only sometimes. Without the wake-up the clients' longest gap was about
1 s; with the wake-up on a full queue only, about one run in three still had
a 1 s pause on some partition (stale records of a fetch made before a seek;
edge/refill.h, the idle rule). The backlog stays under what librdkafka's
mock cluster keeps per partition (100,000 records, 5 MiB; it drops older
segments, which the clients would see as lost records)."""

import asyncio
import os
import sys
import time

import harness as h

PARTITIONS = 4
# Kafka's murmur2 puts watcher-0..3 on partitions 2, 3, 0 and 1; the test
# checks that the four cover every partition.
WATCHERS = [f"watcher-{i}" for i in range(4)]
KEYS = WATCHERS + [f"other-{i}" for i in range(44)]
PER_KEY = 3000           # records per key: 144,000 in all, 48,000 at most in a partition
RECORD_GAP_MAX_S = 0.5   # the fetcher's own sleep was up to 1 s


async def run(env):
    env.start_kafka({"deliveries": PARTITIONS})
    edge = env.start_stoppable_edge("edge-1", ["--kafka-prop", "queued.min.messages=5000"])
    router = env.start_router("router-1", [edge])
    h.wait_all_owned(router, 90)

    # Framed: each client learns its partition from its status line.
    watchers = [h.Collector(router.ws_url, k, framed=True) for k in WATCHERS]
    for w in watchers:
        await w.connect()
    await h.warm_up(env, watchers)
    covered = {w.statuses[0][1] for w in watchers if w.statuses}
    assert covered == set(range(PARTITIONS)), f"the watchers cover partitions {covered}"

    consumed_before = h.edge_metric(edge, "kws_edge_records_total")
    h.backlog_while_stopped(env, edge, KEYS, PER_KEY)
    t1 = time.monotonic()
    await h.wait_until(lambda: all(len(w.records("backlog")) >= PER_KEY for w in watchers),
                       120, "the clients' backlog")
    took = time.monotonic() - t1
    await asyncio.sleep(0.3)  # let any duplicate show up

    lost, dup, reordered, foreign = h.check_streams(watchers, PER_KEY, "backlog")
    gaps = {w.statuses[0][1]: w.longest_gap("backlog") for w in watchers}
    gap = max(gaps.values())
    # The wake-ups are counted once the edge has caught up (no lag on any
    # partition): the clients' records may be through before the rest of
    # the backlog.
    def caught_up():
        status, text = h.admin_request(edge.admin_port, "/metrics")
        lags = [line.rsplit(" ", 1)[1] for line in text.splitlines()
                if line.startswith("kws_edge_consumer_lag{")]
        return lags and all(float(v) == 0 for v in lags)
    await h.wait_until(caught_up, 120, "the edge catching up with the backlog")
    refills = h.edge_metric(edge, "kws_edge_fetch_refills_total", reason="full")
    idle = h.edge_metric(edge, "kws_edge_fetch_refills_total", reason="idle")
    consumed = h.edge_metric(edge, "kws_edge_records_total") - consumed_before
    h.log(f"backlog: the clients got their {PER_KEY} records each in {took:.2f}s; "
          f"lost {lost}, duplicated {dup}, reordered {reordered}, foreign {foreign}; "
          f"longest gap between two records of a client, by partition: "
          + ", ".join(f"{p}: {g * 1000:.0f} ms" for p, g in sorted(gaps.items()))
          + f"; edge consumed {consumed:.0f} records, fetcher woken {refills:.0f} times "
          f"(full queue) and {idle:.0f} (idle with records in Kafka)")
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
    for w in watchers:
        await w.close()
    assert edge.alive() and router.alive()


def main():
    with h.Env("backlog") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
