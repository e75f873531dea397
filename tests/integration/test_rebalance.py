#!/usr/bin/env python3
"""Rebalance-proof delivery (issue 4): a continuous keyed stream (each record
carries a per-client sequence number) to many kws.v1 clients across two
routers, while, one phase at a time:
  1. a third edge joins;
  2. an edge stops gracefully;
  3. an edge is killed with SIGKILL;
  4. every edge restarts in turn (rolling restart, static membership);
  5. a router is killed and its clients reconnect to the other router with
     their positions;
  6. some clients disconnect for ten seconds and resume;
  7. a client stops reading (it is closed with 4008 and resumes; the honest
     clients lose nothing).
Each phase prints lost / duplicated / reordered and the longest gap for
clients of moved and of unmoved partitions. Connected and resumed clients
must see 0 lost, 0 duplicated, 0 reordered.

KWS_CLIENTS (default 1000) and KWS_PHASES (default 1234567) tune a run."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import harness as h

PARTITIONS = 12
CLIENTS = int(os.environ.get("KWS_CLIENTS", "1000"))
PHASES = os.environ.get("KWS_PHASES", "1234567")
RATE = max(200, CLIENTS)       # records per second, all clients together
PER_PHASE = 16                 # records per client per phase (16 s at RATE)
FLOOD = 500                    # 40 kB records for the client that stops reading


class System:
    def __init__(self, env):
        self.env = env
        self.edges = {}
        self.edge_args = {}
        self.routers = []
        self.placeholders = {}
        self.restarts = 0

    def reserve(self, name):
        self.placeholders[name] = h.Placeholder(name)
        return self.placeholders[name]

    def start_edge(self, name):
        ph = self.placeholders.get(name)
        e = self.env.start_edge(name, extra=["--instance-id", name],
                                port=ph.port if ph else None)
        self.edges[name] = e
        return e

    def restart_edge(self, name, sig=signal.SIGTERM):
        old = self.edges[name]
        old.stop(sig)
        self.restarts += 1
        p = self.env.spawn(f"{name}-restart{self.restarts}", list(old.args))
        p.url = old.url
        p.wait_for(r"listening on", 30)
        self.edges[name] = p
        return p

    def moved_partitions(self, marks):
        """Partitions that another edge took over since marks (an edge that
        restarts on the same address and takes its partitions back has not
        moved them), and partitions that had no owner for a while."""
        moved, paused = set(), set()
        for r, mark in zip(self.routers, marks):
            owners = {}
            for m in re.finditer(r"partition (\d+): owner (\S+) -> (\S+)", r.text()[mark:]):
                p = int(m.group(1))
                for edge in (m.group(2), m.group(3)):
                    if edge != "none":
                        owners.setdefault(p, set()).add(edge)
                    else:
                        paused.add(p)
            moved |= {p for p, o in owners.items() if len(o) > 1}
        return moved, paused - moved

    def marks(self):
        return [len(r.text()) for r in self.routers]


def partition_of(c):
    return c.statuses[0][1] if c.statuses else None


async def phase(sysm, clients, n, title, event, tag):
    env = sysm.env
    marks = sysm.marks()
    ids = [c.client_id for c in clients]
    t0 = time.monotonic()
    prod = subprocess.Popen([h.PRODUCE, "--bootstrap", env.kafka.bootstrap, "--topic",
                             "deliveries", "--keys", ",".join(ids), "--count", str(PER_PHASE),
                             "--rate", str(RATE), "--tag", tag],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    special = await event()
    honest = [c for c in clients if c not in special]
    loop = asyncio.get_running_loop()
    out, _ = await loop.run_in_executor(None, prod.communicate)
    assert prod.returncode == 0, out
    await h.wait_until(lambda: all(len(c.records(tag)) >= PER_PHASE for c in clients), 120,
                       f"phase {n} records")
    await asyncio.sleep(1)
    moved, paused = sysm.moved_partitions(marks)
    lost, dup, reord, foreign = h.check_streams(clients, PER_PHASE, tag)

    def gap(group):
        return max((c.longest_gap(tag) for c in group), default=0) * 1000

    gm = gap([c for c in honest if partition_of(c) in moved])
    gp = gap([c for c in honest if partition_of(c) in paused])
    gu = gap([c for c in honest if partition_of(c) not in moved | paused])
    line = (f"phase {n} ({title}): {len(clients)} clients, {PER_PHASE * len(clients)} records "
            f"in {time.monotonic() - t0:.1f}s; lost {lost}, duplicated {dup}, reordered {reord}, "
            f"foreign {foreign}; partitions moved {sorted(moved)}, paused {sorted(paused)}; "
            f"longest gap: moved {gm:.0f} ms, paused {gp:.0f} ms, unmoved {gu:.0f} ms")
    if special:
        line += f", the {len(special)} disturbed clients {gap(special):.0f} ms"
    h.log(line)
    assert (lost, dup, reord, foreign) == (0, 0, 0, 0), f"phase {n} lost records"
    return moved


async def run(env):
    env.start_kafka({"deliveries": PARTITIONS})
    sysm = System(env)
    e1 = sysm.start_edge("edge-1")
    e2 = sysm.start_edge("edge-2")
    qb = ["--queue-bytes", "256KiB", "--stall-timeout-ms", "3000"]
    e3 = sysm.reserve("edge-3")
    r1 = env.start_router("router-1", [e1, e2, e3], qb)
    r2 = env.start_router("router-2", [e1, e2, e3], qb)
    sysm.routers = [r1, r2]
    h.wait_all_owned(r1)
    h.wait_all_owned(r2)

    urls = [r1.ws_url, r2.ws_url]
    clients = [h.Collector(urls[i % 2], f"user-{i}", framed=True) for i in range(CLIENTS)]
    stop = asyncio.Event()
    t0 = time.monotonic()
    runners = [asyncio.ensure_future(c.run_resuming(urls, stop)) for c in clients]
    await h.wait_until(lambda: all(c.statuses for c in clients), 120, "every client live")
    h.log(f"{CLIENTS} kws.v1 clients connected to 2 routers in {time.monotonic() - t0:.1f}s")
    await h.warm_up(env, clients)

    async def nothing():
        return []

    async def edge_joins():
        await asyncio.sleep(4)
        sysm.start_edge("edge-3")
        return []

    async def edge_stops():
        await asyncio.sleep(4)
        sysm.edges["edge-3"].stop(signal.SIGTERM)
        return []

    async def edge_killed():
        await asyncio.sleep(4)
        sysm.edges["edge-2"].stop(signal.SIGKILL)
        return []

    async def rolling_restart():
        await asyncio.sleep(2)
        for name in list(sysm.edges):
            if not sysm.edges[name].alive():
                continue
            sysm.restart_edge(name)
            await asyncio.sleep(3)
        return []

    async def router_killed():
        await asyncio.sleep(4)
        r1.stop(signal.SIGKILL)
        return []

    away = clients[:5]

    async def clients_away():
        await asyncio.sleep(2)
        for c in away:
            c.hold = True
        await asyncio.gather(*(c.drop() for c in away))
        await asyncio.sleep(10)
        for c in away:
            c.hold = False
        return away

    stalled = clients[5]

    async def client_stalls():
        await asyncio.sleep(1)
        stalled.stall()
        # More than the kernel's socket buffers hold (several MB on loopback).
        env.produce("deliveries", [stalled.client_id], FLOOD, tag="flood",
                    extra=["--size", "40000"])
        # The router closes it with 4008; it then reads again and resumes.
        await h.wait_until(lambda: "slow client" in "".join(r.text() for r in sysm.routers
                                                           if r.alive()), 60,
                           "the router closing the stalled client")
        stalled.stall(False)
        return [stalled]

    phases = {
        "1": ("a third edge joins", edge_joins),
        "2": ("an edge stops gracefully", edge_stops),
        "3": ("an edge is killed", edge_killed),
        "4": ("rolling restart of every edge", rolling_restart),
        "5": ("a router is killed; its clients resume on the other", router_killed),
        "6": ("5 clients away for 10 s resume", clients_away),
        "7": ("a client stops reading", client_stalls),
    }
    for n in PHASES:
        title, event = phases[n]
        await phase(sysm, clients, n, title, event, f"phase{n}")
    if "7" in PHASES:
        closes = [code for code, _ in stalled.closes]
        flood = len(stalled.records("flood"))
        h.log(f"stalled client: closed with {closes}, then got all {flood} flood records "
              f"after resuming")
        assert 4008 in closes and flood == FLOOD
    resumed = [c for c in clients if c.connections > 1]
    states = {}
    for c in resumed:
        for st in c.statuses[1:]:
            states[st[0]] = states.get(st[0], 0) + 1
    h.log(f"reconnections: {sum(c.connections - 1 for c in clients)} by {len(resumed)} "
          f"clients; resume statuses {states}")
    stop.set()
    await asyncio.gather(*runners)
    await asyncio.gather(*(c.close() for c in clients))


def main():
    with h.Env("rebalance") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
