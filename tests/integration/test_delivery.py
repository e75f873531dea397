#!/usr/bin/env python3
"""End to end: N keyed records for M client ids, produced to Kafka, reach M
WebSocket clients connected through one router to two edges; each client gets
exactly its own records, once, in order, and nothing for anyone else. Two
sessions with the same id each get every record of that id."""

import asyncio
import sys

import harness as h

PARTITIONS = 4
CLIENTS = 40
RECORDS = 25  # per client id


async def run(env):
    env.start_kafka({"deliveries": PARTITIONS})
    e1 = env.start_edge("edge-1")
    e2 = env.start_edge("edge-2")
    router = env.start_router("router-1", [e1, e2])
    h.wait_all_owned(router)

    ids = [f"user-{i}" for i in range(CLIENTS)]
    clients = [h.Collector(router.ws_url, i) for i in ids]
    twin = h.Collector(router.ws_url, ids[0])  # a second session of user-0
    bystander = h.Collector(router.ws_url, "no-records-for-me")
    everyone = clients + [twin, bystander]
    await asyncio.gather(*(c.connect() for c in everyone))
    await h.warm_up(env, clients + [twin])

    out = env.produce("deliveries", ids, RECORDS, tag="main")
    h.log(out.strip())
    expected = RECORDS
    await h.wait_until(lambda: all(len(c.records("main")) >= expected for c in clients + [twin]),
                       60, "every record")
    await asyncio.sleep(0.5)  # let any duplicate or stray record show up

    lost, dup, reordered, foreign = h.check_streams(clients + [twin], RECORDS, "main")
    stray = len(bystander.messages)
    received = sum(len(c.records("main")) for c in clients + [twin])
    h.log(f"produced {RECORDS * CLIENTS} records for {CLIENTS} ids; "
          f"{len(everyone)} sessions; received {received} "
          f"(expected {RECORDS * (CLIENTS + 1)}); lost {lost}, duplicated {dup}, "
          f"reordered {reordered}, foreign {foreign}, to bystander {stray}")
    assert (lost, dup, reordered, foreign, stray) == (0, 0, 0, 0, 0)
    assert received == RECORDS * (CLIENTS + 1)
    # Records arrive as binary WebSocket messages by default.
    assert all(isinstance(m, bytes) for m in clients[0].messages)
    await asyncio.gather(*(c.close() for c in everyone))
    assert e1.alive() and e2.alive() and router.alive()


def main():
    with h.Env("delivery") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
