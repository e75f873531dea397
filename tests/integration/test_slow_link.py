#!/usr/bin/env python3
"""A router that reads slower than Kafka, but reads, paces the edge.

The router's link to the edge runs through a proxy that passes the edge's
bytes on at RATE (8 MB/s): a router busy compressing for many sessions, or
one behind a slow network. A backlog of 123 MB of 4 KiB records (20 clients,
1,500 each) drains through it. The edge holds Kafka's records back while
the link's send queue is past 16 MiB and the link takes bytes
(edge/brake.h), so the backlog waits in Kafka: the link stays up (one
connection through the proxy, no ended connection in the router's log, no
send refused by the edge), and the clients get every record once and in
order.

Until 2026-12-05 a hold lasted at most 1 s. Draining 12 MiB (from the high
mark to the low one) at 8 MB/s takes 1.6 s, so the edge consumed on, filled
the link's 64 MiB queue and closed the link; the router resynced through
the proxy and had the rest replayed from Kafka. That build fails here:
"8 ends, 203 sends refused, 9 connections".

Then the clients leave, 82 MB more go into Kafka for them, and they come
back with their positions. The edge keeps only 1 MiB of recent records
(--tail-bytes), so it replays their records from Kafka: the replay waits
while the link is backlogged too (edge/replay.c, consumer_holding). Before,
the replay consumer poured into the link at Kafka's speed, filled its queue
and had the link closed: the same checks hold after the resume."""

import asyncio
import sys

import harness as h

PARTITIONS = 4
CLIENTS = [f"slow-link-{i}" for i in range(20)]
PER_KEY = 1500  # 30,000 records of 4 KiB: 123 MB
RESUME_PER_KEY = 1000  # 20,000 records of 4 KiB: 82 MB, replayed from Kafka
SIZE = 4096
RATE = 8e6  # bytes a second from the edge to the router


async def run(env):
    env.start_kafka({"deliveries": PARTITIONS})
    edge = env.start_stoppable_edge("edge-1", ["--tail-bytes", "1MiB"])
    proxy = h.SlowProxy(int(edge.url.rsplit(":", 1)[1]), RATE)
    router = env.start_router("router-1", [proxy])
    h.wait_all_owned(router, 90)

    clients = await h.framed_clients(env, router.ws_url, CLIENTS)

    h.backlog_while_stopped(env, edge, CLIENTS, PER_KEY, extra=["--size", str(SIZE)])
    took, (lost, dup, reordered, foreign) = await h.receive_all(
        clients, PER_KEY, "backlog", 180, "the clients' backlog")
    held, refused, ended = h.link_trouble(edge, router)
    h.log(f"slow link: {proxy.passed / 1e6:.0f} MB passed at {RATE / 1e6:.0f} MB/s; the clients "
          f"got their {PER_KEY} records each in {took:.1f}s; lost {lost}, duplicated {dup}, "
          f"reordered {reordered}, foreign {foreign}; the edge held Kafka's records back "
          f"{held:.0f} times, refused {refused:.0f} sends; {proxy.connections} connections "
          f"through the proxy, the router's link ended {ended} times")
    assert (lost, dup, reordered, foreign) == (0, 0, 0, 0)
    assert held >= 1, "the edge never held back: the link was never behind"
    assert ended == 0 and refused == 0 and proxy.connections == 1, \
        f"the edge closed the slow router's link ({ended} ends, {refused:.0f} sends refused, " \
        f"{proxy.connections} connections)"

    # The clients leave; their next records go into Kafka and past the
    # edge's 1 MiB tail; they come back with their positions.
    for c in clients:
        await c.close()
    env.produce("deliveries", CLIENTS, RESUME_PER_KEY, tag="resume",
                extra=["--size", str(SIZE)])
    replays = h.edge_metric(edge, "kws_edge_replays_total", source="kafka")
    for c in clients:
        await c.connect(resume=True)
    took, (lost, dup, reordered, foreign) = await h.receive_all(
        clients, RESUME_PER_KEY, "resume", 180, "the resumed clients' records")
    replays = h.edge_metric(edge, "kws_edge_replays_total", source="kafka") - replays
    held, refused, ended = h.link_trouble(edge, router)
    h.log(f"resume: the clients got their {RESUME_PER_KEY} records each in {took:.1f}s, "
          f"{replays:.0f} replays from Kafka; lost {lost}, duplicated {dup}, reordered "
          f"{reordered}, foreign {foreign}; refused {refused:.0f} sends; {proxy.connections} "
          f"connections through the proxy, the router's link ended {ended} times")
    assert (lost, dup, reordered, foreign) == (0, 0, 0, 0)
    assert replays >= 1, "no replay from Kafka: the tail covered the positions"
    assert ended == 0 and refused == 0 and proxy.connections == 1, \
        f"the edge closed the slow router's link during the replay ({ended} ends, " \
        f"{refused:.0f} sends refused, {proxy.connections} connections)"
    for c in clients:
        await c.close()
    assert edge.alive() and router.alive()
    proxy.close()


def main():
    with h.Env("slow_link") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
