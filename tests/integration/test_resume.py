#!/usr/bin/env python3
"""Positions and resume (kws.v1): every record carries its position; a
client that reconnects, to another router, presenting its position gets
exactly what it missed (status "complete") and then live records; a client
without a position starts live; the first message is the status line.
Run twice: with the edges' in-memory tail (replay from memory), and with
--tail-bytes 0, which forces every replay to read Kafka again."""

import asyncio
import sys

import harness as h

PARTITIONS = 4
IDS = [f"resumer-{i}" for i in range(12)]


async def run(env, tail_bytes):
    env.start_kafka({"deliveries": PARTITIONS})
    extra = ["--tail-bytes", str(tail_bytes)]
    e1 = env.start_edge("edge-1", extra=extra)
    e2 = env.start_edge("edge-2", extra=extra)
    r1 = env.start_router("router-1", [e1, e2])
    r2 = env.start_router("router-2", [e1, e2])
    h.wait_all_owned(r1)
    h.wait_all_owned(r2)

    clients = [h.Collector(r1.ws_url, i, framed=True) for i in IDS]
    await asyncio.gather(*(c.connect() for c in clients))
    await h.warm_up(env, clients)
    for c in clients:
        assert c.statuses and c.statuses[0][0] == "live", f"{c.client_id}: {c.statuses}"
    h.log(f"{len(clients)} kws.v1 clients live; first status {clients[0].statuses[0]}")

    env.produce("deliveries", IDS, 10, tag="before")
    await h.wait_until(lambda: all(len(c.records("before")) >= 10 for c in clients), 30,
                       "records before the disconnect")

    # Half the clients go away; records keep coming; they come back to the
    # other router with their positions.
    away = clients[: len(clients) // 2]
    await asyncio.gather(*(c.drop() for c in away))
    env.produce("deliveries", IDS, 15, tag="missed")
    await asyncio.sleep(1)
    await asyncio.gather(*(c.connect(r2.ws_url, resume=True) for c in away))
    await h.wait_until(lambda: all(len(c.records("missed")) >= 15 for c in clients), 60,
                       "the records missed while away")
    env.produce("deliveries", IDS, 5, tag="after")
    await h.wait_until(lambda: all(len(c.records("after")) >= 5 for c in clients), 30,
                       "live records after the resume")
    await asyncio.sleep(0.5)

    for tag, n in (("before", 10), ("missed", 15), ("after", 5)):
        lost, dup, reord, foreign = h.check_streams(clients, n, tag)
        h.log(f"{tag}: lost {lost}, duplicated {dup}, reordered {reord}, foreign {foreign}")
        assert (lost, dup, reord, foreign) == (0, 0, 0, 0)
    for c in away:
        st = c.statuses[-1]
        assert st[0] == "complete", f"{c.client_id}: resumed with {c.statuses}"
        offs = [o for _, o in c.offsets]
        assert offs == sorted(set(offs)), f"{c.client_id}: offsets not increasing"
    h.log(f"{len(away)} clients resumed on another router: statuses "
          f"{sorted(set(c.statuses[-1][0] for c in away))}")

    # The browser form: the position in the query (?position=), no header.
    q = clients[-1]
    await q.drop()
    env.produce("deliveries", [q.client_id], 6, tag="query")
    await asyncio.sleep(1)
    await q.connect(r2.ws_url + "?position=%d:%d" % q.position)
    await h.wait_until(lambda: len(q.records("query")) >= 6, 30,
                       "the records missed, resumed with ?position=")
    lost, dup, reord, foreign = h.check_streams([q], 6, "query")
    h.log(f"resume with ?position=: status {q.statuses[-1]}, lost {lost}, duplicated {dup}, "
          f"reordered {reord}")
    assert q.statuses[-1][0] == "complete" and (lost, dup, reord, foreign) == (0, 0, 0, 0)
    status, body = h.raw_handshake(r1.port, "/ws?position=3-12", ["X-Client-Id: x"])
    h.log(f"malformed ?position=: HTTP {status}: {body.strip()[-70:]}")
    assert status == 400 and "malformed position" in body
    # Too long (over 63 characters) or empty: refused, never ignored.
    for path, hdrs, what in (("/ws?position=1:" + "0" * 70, [], "a 72-character ?position="),
                             ("/ws", ["X-Kws-Position: "], "an empty X-Kws-Position"),
                             ("/ws?position=", [], "an empty ?position=")):
        status, body = h.raw_handshake(r1.port, path, ["X-Client-Id: x"] + hdrs)
        h.log(f"{what}: HTTP {status}: {body.strip()[-60:]}")
        assert status == 400 and "malformed position" in body

    # A position for another partition: told "incomplete", served live.
    odd = h.Collector(r1.ws_url, IDS[0], framed=True)
    p, o = clients[0].position
    odd.position = ((p + 1) % PARTITIONS, o)
    await odd.connect(resume=True)
    await h.wait_until(lambda: odd.statuses, 10, "status of the foreign position")
    h.log(f"position for another partition: {odd.statuses[0]}")
    assert odd.statuses[0][0] == "incomplete"

    # A position past the partition's end (a made-up one, or one kept from
    # before the topic was recreated): told "incomplete", then served from
    # the partition's real end, not dropped as duplicates forever.
    far = h.Collector(r2.ws_url, IDS[1], framed=True)
    p, o = clients[1].position
    far.position = (p, 1000000)
    await far.connect(resume=True)
    await h.wait_until(lambda: far.statuses, 15, "status of the position past the end")
    h.log(f"position {p}:1000000 past the end (real end {o}): {far.statuses[0]}")
    env.produce("deliveries", [IDS[1]], 3, tag="beyond")
    try:
        await h.wait_until(lambda: len(far.records("beyond")) >= 3, 20,
                           "records after a position past the end")
    finally:
        h.log(f"after it: {len(far.records('beyond'))} of 3 new records, offsets "
              f"{far.offsets[-3:]}, statuses {far.statuses}")
    assert far.statuses[0][0] == "incomplete", far.statuses
    assert [r["seq"] for r in far.records("beyond")] == [0, 1, 2]
    assert all(po[1] >= o for po in far.offsets) and far.position[1] < 1000000
    await h.wait_until(lambda: len(clients[1].records("beyond")) >= 3, 20, "the same, live")
    assert [po[1] for po in far.offsets] == [po[1] for po in clients[1].offsets[-3:]]

    # A malformed position is refused with a reason.
    status, body = h.raw_handshake(r1.port, "/ws", ["X-Client-Id: x", "X-Kws-Position: 3-12"])
    h.log(f"malformed position: HTTP {status}: {body.strip()[-70:]}")
    assert status == 400 and "malformed position" in body
    await asyncio.gather(*(c.close() for c in clients + [odd, far]))
    replays = (e1.text() + e2.text()).count("from Kafka")
    h.log(f"replays from Kafka logged by the edges: {replays}")
    if tail_bytes == "0":
        assert replays > 0, "with no tail, the resumes must have read Kafka"



def main():
    for tail in ("64MiB", "0"):
        with h.Env("resume") as env:
            h.log(f"--- edges with --tail-bytes {tail}")
            asyncio.run(run(env, tail))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
