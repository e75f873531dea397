#!/usr/bin/env python3
"""Partitioner compatibility on a real Apache Kafka broker:
1. records produced by Kafka's own Java producer (the console producer, with
   keys) reach the right client through the router's default partitioner
   (murmur2);
2. records produced by a librdkafka producer with its default partitioner
   (consistent_random: crc32 of the key) reach the right client when the
   router is configured with --partitioner crc32;
3. control: a router left on murmur2 for the crc32 topic misplaces the ids
   whose partitions differ, and they receive nothing (so 1 and 2 can fail)."""

import asyncio
import json
import sys
import time

import harness as h

PARTITIONS = 6
IDS = [f"member-{i}" for i in range(24)]
PER_ID = 5


async def collect(router_url, ids):
    clients = [h.Collector(router_url, i) for i in ids]
    await asyncio.gather(*(c.connect() for c in clients))
    return clients


async def run(env):
    if env.kafka.kind != "real":
        print("SKIP: needs the real broker (Kafka's Java console producer)")
        sys.exit(77)
    k = env.kafka.cluster
    # 1. Java producer, router default (murmur2).
    e1 = env.start_edge("edge-java", topic="java-keyed", group="g-java")
    r1 = env.start_router("router-murmur2", [e1])
    h.wait_all_owned(r1)
    clients = await collect(r1.ws_url, IDS)
    await h.warm_up(env, clients, topic="java-keyed")
    records = [(i, json.dumps({"key": i, "seq": s, "tag": "java"}))
               for s in range(PER_ID) for i in IDS]
    t0 = time.monotonic()
    k.console_produce("java-keyed", records)
    h.log(f"Java console producer wrote {len(records)} keyed records in "
          f"{time.monotonic() - t0:.1f}s")
    await h.wait_until(lambda: all(len(c.records("java")) >= PER_ID for c in clients), 60,
                       "records from the Java producer")
    lost, dup, reord, foreign = h.check_streams(clients, PER_ID, "java")
    h.log(f"murmur2 router, Java producer: {len(IDS)} clients, lost {lost}, duplicated {dup}, "
          f"reordered {reord}, foreign {foreign}")
    assert (lost, dup, reord, foreign) == (0, 0, 0, 0)
    await asyncio.gather(*(c.close() for c in clients))

    # 2. librdkafka default partitioner, router --partitioner crc32.
    e2 = env.start_edge("edge-crc", topic="rd-keyed", group="g-crc")
    r2 = env.start_router("router-crc32", [e2], ["--partitioner", "crc32"])
    r3 = env.start_router("router-wrong", [e2])  # left on murmur2: the control
    h.wait_all_owned(r2)
    h.wait_all_owned(r3)
    clients = await collect(r2.ws_url, IDS)
    wrong = await collect(r3.ws_url, IDS)
    crc = ["--partitioner", "consistent_random"]
    # Warm up the crc32 clients; the control clients may never warm up.
    keys = [c.client_id for c in clients]
    for _ in range(30):
        env.produce("rd-keyed", keys, 1, tag="warmup", extra=crc)
        await asyncio.sleep(1)
        if all(c.records("warmup") for c in clients):
            break
    env.produce("rd-keyed", keys, PER_ID, tag="rdkafka", extra=crc)
    await h.wait_until(lambda: all(len(c.records("rdkafka")) >= PER_ID for c in clients), 60,
                       "records from the librdkafka producer")
    await asyncio.sleep(2)
    lost, dup, reord, foreign = h.check_streams(clients, PER_ID, "rdkafka")
    h.log(f"crc32 router, librdkafka default partitioner: {len(IDS)} clients, lost {lost}, "
          f"duplicated {dup}, reordered {reord}, foreign {foreign}")
    assert (lost, dup, reord, foreign) == (0, 0, 0, 0)
    starved = [c.client_id for c in wrong if not c.records("rdkafka")]
    fed = len(IDS) - len(starved)
    h.log(f"control, murmur2 router on crc32 data: {len(starved)} of {len(IDS)} clients got "
          f"nothing (their partitions differ), {fed} were placed right by chance")
    assert starved, "a mismatched partitioner must misplace some ids"
    await asyncio.gather(*(c.close() for c in clients + wrong))


def main():
    with h.Env("partitioners") as env:
        env.start_kafka({"java-keyed": PARTITIONS, "rd-keyed": PARTITIONS})
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
