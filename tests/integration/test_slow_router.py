#!/usr/bin/env python3
"""A router that falls behind a backlog is braked, not disconnected.

A backlog of 4 KiB records drains from Kafka faster than a router can write
it to its clients. The link's send queue on the edge is bounded (64 MiB);
when it filled, the edge closed the link, and the router resynced and had
the rest replayed from Kafka: in the bench's 4 KiB drains three link closes
a drain and half the rate. Now the edge takes no more records from Kafka
while a router's queue is past 16 MiB, until it is back to 4 MiB, while the
router reads (edge/brake.h; a router that reads nothing for 1 s is
released: tests/integration/test_slow_link.py has one that reads slowly).

Here the edge is stopped while 120 MB of records (30,000 of 4 KiB, for 20
clients) go into Kafka; it resumes, and the router is stopped (SIGSTOP) for
0.6 s right after, so that the edge meets a router reading nothing. The
kernel's socket buffers take some tens of MB and the edge's queue the rest:
without the brake the queue fills in that time and the link closes. The
clients must get their records once and in order, the link must stay up
(the edge's kws_edge_link_errors_total{kind="send_refused"} stays 0 and the
router logs no ended connection) and the edge must have held back at least
once (kws_edge_link_backlogged_total)."""

import asyncio
import os
import signal
import sys

import harness as h

PARTITIONS = 4
CLIENTS = [f"slow-router-{i}" for i in range(20)]
PER_KEY = 1500  # 30,000 records of 4 KiB: 123 MB
SIZE = 4096
ROUTER_STOP_S = 0.6  # under the edge's 1 s stall bound (edge/brake.h)


async def run(env):
    env.start_kafka({"deliveries": PARTITIONS})
    edge = env.start_stoppable_edge("edge-1")
    router = env.start_router("router-1", [edge])
    h.wait_all_owned(router, 90)

    clients = await h.framed_clients(env, router.ws_url, CLIENTS)

    h.backlog_while_stopped(env, edge, CLIENTS, PER_KEY, extra=["--size", str(SIZE)])
    # The router stops reading while the edge pours the backlog out.
    await asyncio.sleep(0.05)
    os.kill(router.p.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(ROUTER_STOP_S)
    finally:
        os.kill(router.p.pid, signal.SIGCONT)
    took, (lost, dup, reordered, foreign) = await h.receive_all(
        clients, PER_KEY, "backlog", 180, "the clients' backlog")
    held, refused, ended = h.link_trouble(edge, router)
    h.log(f"slow router: the clients got their {PER_KEY} records each {took:.2f}s after the "
          f"router resumed; lost {lost}, duplicated {dup}, reordered {reordered}, "
          f"foreign {foreign}; the edge held Kafka's records back {held:.0f} times, refused "
          f"{refused:.0f} sends; the router's link ended {ended} times")
    assert (lost, dup, reordered, foreign) == (0, 0, 0, 0)
    assert ended == 0 and refused == 0, \
        f"the edge closed the router's link ({ended} ends, {refused} sends refused)"
    # Whether the edge gets that far ahead depends on its speed: a sanitizer
    # build's edge may not fill the socket buffers within the router's stop.
    if os.environ.get("KWS_SANITIZED") != "1":
        assert held >= 1, "the edge never held back: the router was never behind"
    for c in clients:
        await c.close()
    assert edge.alive() and router.alive()


def main():
    with h.Env("slow_router") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
