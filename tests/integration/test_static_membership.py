#!/usr/bin/env python3
"""Static group membership (issue 8): restarting an edge with the same
member id (--instance-id, Kafka's group.instance.id) within the session
timeout moves no partition.

Three edges with --instance-id edge-N and session.timeout.ms=30000 consume a
12-partition topic on a real Apache Kafka broker (the mock cluster does not
implement static membership: the test skips there). Once the group is
stable, each edge in turn is stopped (SIGTERM) and started again at once with
the same arguments. After each restart:
  - the group, read with Kafka's own kafka-consumer-groups tool, has a new
    member for that instance id (the new process) and every instance id has
    exactly the partitions it had before the first restart;
  - the router's log has no "partition N: owner A -> B" with A and B
    different edges (A -> none -> A, the link dropping while the process
    restarts, is expected).
Meanwhile 50 kws.v1 clients receive a tagged stream, one phase per restart:
0 lost, 0 duplicated, 0 reordered.

KWS_CLIENTS (default 50) tunes a run."""

import asyncio
import os
import re
import signal
import sys
import time

import harness as h

PARTITIONS = 12
EDGES = ["edge-1", "edge-2", "edge-3"]
CLIENTS = int(os.environ.get("KWS_CLIENTS", "50"))
RATE = CLIENTS * 5             # records per second, all clients
AFTER = 3                      # records per client produced after a restart
GROUP = "kws-edge"
TOPIC = "deliveries"

# After harness.FAST_GROUP (librdkafka applies properties in order: the
# last wins). max.poll.interval.ms may not be below session.timeout.ms.
STATIC = ["--kafka-prop", "session.timeout.ms=30000",
          "--kafka-prop", "max.poll.interval.ms=60000"]


class Edges:
    def __init__(self, env):
        self.env = env
        self.procs = {}
        self.restarts = 0

    def start(self, name, port):
        e = self.env.start_edge(name, port=port, extra=[
            "--instance-id", name, "--admin-listen", "127.0.0.1:0"] + STATIC)
        self.procs[name] = e
        return e

    async def restart(self, name):
        """SIGTERM, then the same command line again at once (the waits run
        off the event loop, so the clients keep reading)."""
        loop = asyncio.get_running_loop()
        old = self.procs[name]
        t0 = time.monotonic()
        rc = await loop.run_in_executor(None, old.stop, signal.SIGTERM)
        self.restarts += 1
        p = self.env.spawn(f"{name}-restart{self.restarts}", list(old.args))
        p.url = old.url
        self.procs[name] = p
        await loop.run_in_executor(None, p.wait_for, r"listening on", 30)
        return rc, time.monotonic() - t0


def instance_of(member):
    """A static member's id is "<group.instance.id>-<uuid>"."""
    for name in EDGES:
        if (member["consumer_id"] or "").startswith(name + "-"):
            return name
    return None


def group_state(kafka):
    """{instance id: (consumer id, sorted partitions)} from kafka-consumer-
    groups, or None while it is not one member per edge covering every
    partition exactly once."""
    members = kafka.cluster.describe_group(GROUP)
    out = {}
    for m in members:
        iid = instance_of(m)
        if iid is None or iid in out:
            return None
        if m["assignment"] != m["target_assignment"]:
            return None
        out[iid] = (m["consumer_id"], tuple(m["assignment"].get(TOPIC, [])))
    if sorted(out) != EDGES:
        return None
    parts = [p for _, ps in out.values() for p in ps]
    if sorted(parts) != list(range(PARTITIONS)):
        return None
    return out


async def wait_group(kafka, timeout, what, pred=lambda st: True):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        loop = asyncio.get_running_loop()
        st = await loop.run_in_executor(None, group_state, kafka)
        if st is not None and pred(st):
            return st
        last = st
        await asyncio.sleep(0.5)
    raise AssertionError(f"group not {what} within {timeout}s (last: {last})")


def table(title, st):
    h.log(title)
    h.log(f"  {'instance id':<12} {'member id':<52} partitions")
    for iid in EDGES:
        cid, parts = st[iid]
        h.log(f"  {iid:<12} {cid:<52} {','.join(map(str, parts))}")


def moves(router, mark):
    """(partitions handed from one edge to another, "A -> B" lines seen)
    since mark. A partition whose owner goes A -> none -> A has not moved."""
    last = {}
    moved = set()
    lines = []
    for m in re.finditer(r"partition (\d+): owner (\S+) -> (\S+)", router.text()[mark:]):
        p, a, b = int(m.group(1)), m.group(2), m.group(3)
        lines.append(m.group(0))
        for edge in (a, b):
            if edge == "none":
                continue
            if p in last and last[p] != edge:
                moved.add(p)
            last[p] = edge
    return moved, lines


async def run(env):
    kafka = env.start_kafka({TOPIC: PARTITIONS})
    edges = Edges(env)
    ports = {name: h.free_port() for name in EDGES}
    for name in EDGES:
        edges.start(name, ports[name])
    router = env.start_router("router-1", list(edges.procs.values()),
                              ["--admin-listen", "127.0.0.1:0"])
    h.wait_all_owned(router)

    # Stable: one member per instance id, all 12 partitions assigned, and the
    # same answer twice in a row 3 s apart (the edges joined one by one).
    t0 = time.monotonic()
    before = None
    while True:
        st = await wait_group(kafka, 120, "stable")
        if before is not None and st == before:
            break
        before = st
        if time.monotonic() - t0 > 120:
            raise AssertionError("the group kept changing for 120 s")
        await asyncio.sleep(3)
    table(f"group {GROUP} stable after {time.monotonic() - t0:.1f}s, before the restarts:",
          before)
    assignment = {iid: parts for iid, (_, parts) in before.items()}

    urls = [router.ws_url]
    clients = [h.Collector(router.ws_url, f"user-{i}", framed=True) for i in range(CLIENTS)]
    stop = asyncio.Event()
    runners = [asyncio.ensure_future(c.run_resuming(urls, stop)) for c in clients]
    await h.wait_until(lambda: all(c.statuses for c in clients), 60, "every client live")
    await h.warm_up(env, clients)
    h.log(f"{CLIENTS} kws.v1 clients live")

    ids = [c.client_id for c in clients]
    loop = asyncio.get_running_loop()
    current = before
    for n, name in enumerate(EDGES, 1):
        tag = f"restart{n}"
        mark = len(router.text())
        owned_marks = len(re.findall(r"all \d+ partitions have owners", router.text()))
        # The stream runs from before the restart until every client has
        # records produced after the group and the router settled.
        stream = h.Stream(env, ids, RATE, tag, topic=TOPIC)
        try:
            await h.wait_produced_after(clients, tag, 0, 60,
                                        f"{tag}: records flowing before the restart")
            started = h.wall_ms()
            rc, took = await edges.restart(name)
            old_member = current[name][0]
            current = await wait_group(kafka, 60, f"rejoined by the new {name}",
                                       lambda st: st[name][0] != old_member)
            if "has no owner" in router.text()[mark:]:
                await loop.run_in_executor(None, router.wait_for,
                                           r"all \d+ partitions have owners", 30,
                                           owned_marks + 1)
            done = h.wall_ms()
            await h.wait_produced_after(clients, tag, done, 60,
                                        f"{tag}: records produced after the restart", AFTER)
            during = h.produced_between(clients, tag, started, done)
            total = await stream.stop()
        finally:
            stream.kill()
        counts = stream.counts()
        await h.wait_until(lambda: all(len(c.records(tag)) >= counts[c.client_id]
                                       for c in clients), 60, f"the records of {tag}")
        await asyncio.sleep(1)  # let any duplicate or stray record show up
        now = {iid: parts for iid, (_, parts) in current.items()}
        changed = sorted(iid for iid in EDGES if now[iid] != assignment[iid])
        moved, lines = moves(router, mark)
        paused = sorted({int(m) for m in re.findall(r"partition (\d+): owner \S+ -> none",
                                                    "\n".join(lines))})
        lost, dup, reord, foreign = h.check_streams(clients, counts, tag)
        h.log(f"restart {n} ({name}: SIGTERM exit {rc}, up again in {took:.1f}s; member "
              f"{old_member} -> {current[name][0]}): instance ids with other partitions "
              f"{changed}; partitions moved to another edge {sorted(moved)}, paused "
              f"{paused}; {CLIENTS} clients, {total} records, {during} of them produced "
              f"during the {(done - started) / 1000:.1f}s of the restart: lost {lost}, "
              f"duplicated {dup}, reordered {reord}, foreign {foreign}")
        assert during > 0, f"restart {n}: no record was produced during the restart"
        assert not changed, f"partitions moved in the group: {now} != {assignment}"
        assert not moved, "the router saw partitions move between edges:\n" + "\n".join(lines)
        assert (lost, dup, reord, foreign) == (0, 0, 0, 0), f"restart {n} lost records"

    table("after the restarts:", current)
    stop.set()
    await asyncio.gather(*runners)
    await asyncio.gather(*(c.close() for c in clients))
    resumed = sum(c.connections - 1 for c in clients)
    h.log(f"client reconnections: {resumed}")


def main():
    if os.environ.get("KWS_KAFKA", "mock") != "real":
        print("SKIP: static membership needs a real Kafka broker (KWS_KAFKA=real); "
              "the mock cluster does not implement it", flush=True)
        return 77
    with h.Env("static-membership") as env:
        asyncio.run(run(env))
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
