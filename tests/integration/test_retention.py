#!/usr/bin/env python3
"""An edge whose position fell out of Kafka's retention while it was away
resumes from the log's start once, and its other partitions do not pause.

Two partitions. The edge is stopped (SIGSTOP) while 60,000 records go to
partition 0 and 120,000 to partition 1; librdkafka's mock cluster keeps at
most 100,000 records or 5 MiB per partition and drops the oldest segments,
so the edge's position on partition 1 is gone when it resumes. librdkafka
then resets it to the log's start (auto.offset.reset earliest, after a
failed fetch and a 500 ms backoff). The edge's fetcher wake-ups (refill.h)
seek every partition: they must seek partition 1 to the log's start too,
not back to the lost position, which would fail and reset again, 500 ms
each time, for as long as partition 0's records keep the wake-ups coming.

Checks, as a client would see them: the client on partition 0 gets all its
records once, in order, without a gap of RECORD_GAP_MAX_S; the client on
partition 1 gets an unbroken run of its newest records, once and in order
(its oldest are gone from Kafka); and the edge's log shows partition 1 reset
once."""

import asyncio
import os
import re
import sys
import time

import harness as h

# Kafka's murmur2 puts these keys on partition 0 and 1 of 2.
KEPT = ["a0", "a4", "a5", "a6", "a7", "a8"]                  # 60,000 records
TRIMMED = ["a1", "a2", "a3", "b1", "b3", "b6", "b7", "b10",
           "b11", "b15", "b17", "b19"]                        # 120,000 records
PER_KEY = 10000
RECORD_GAP_MAX_S = 0.5


async def run(env):
    env.start_kafka({"deliveries": 2})
    edge = env.start_stoppable_edge("edge-1", ["--kafka-prop", "queued.min.messages=5000"])
    router = env.start_router("router-1", [edge])
    h.wait_all_owned(router, 90)
    kept = h.Collector(router.ws_url, KEPT[0], framed=True)
    trimmed = h.Collector(router.ws_url, TRIMMED[0], framed=True)
    for c in (kept, trimmed):
        await c.connect()
    await h.warm_up(env, [kept, trimmed])
    assert (kept.statuses[0][1], trimmed.statuses[0][1]) == (0, 1), \
        f"partitions {kept.statuses[0][1]}, {trimmed.statuses[0][1]}"

    h.backlog_while_stopped(env, edge, KEPT + TRIMMED, PER_KEY)
    t1 = time.monotonic()
    await h.wait_until(lambda: len(kept.records("backlog")) >= PER_KEY and
                       any(r["seq"] == PER_KEY - 1 for r in trimmed.records("backlog")),
                       120, "both clients' newest records")
    took = time.monotonic() - t1
    await asyncio.sleep(0.3)  # let any duplicate show up

    lost, dup, reordered, foreign = h.check_streams([kept], PER_KEY, "backlog")
    seqs = [r["seq"] for r in trimmed.records("backlog")]
    first = seqs[0] if seqs else None
    resets = len(re.findall(r"deliveries \[1\]: offset reset", edge.text()))
    h.log(f"retention: partition 0's client got {len(kept.records('backlog'))} of {PER_KEY} "
          f"(lost {lost}, duplicated {dup}, reordered {reordered}, foreign {foreign}, "
          f"longest gap {kept.longest_gap('backlog') * 1000:.0f} ms); partition 1's client "
          f"got {len(seqs)}, seq {first} to {seqs[-1] if seqs else None}; partition 1 reset "
          f"{resets} times; {took:.2f}s")
    assert (lost, dup, reordered, foreign) == (0, 0, 0, 0)
    assert kept.longest_gap("backlog") < RECORD_GAP_MAX_S
    assert first is not None and first > 0, "nothing of partition 1 was dropped: no test"
    assert seqs == list(range(first, PER_KEY)), \
        "partition 1's client: not an unbroken run of its newest records"
    assert resets == 1, f"partition 1 was reset {resets} times (sought back to a lost position?)"
    for c in (kept, trimmed):
        await c.close()
    assert edge.alive() and router.alive()


def main():
    with h.Env("retention") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
