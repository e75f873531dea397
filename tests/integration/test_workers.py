#!/usr/bin/env python3
"""A router on every core (issue 13 item 4): `router --workers 2` is one
supervisor and two worker processes on one client port. Clients spread over
both workers (each worker's private metrics show sessions); every client gets
each of its records once and in order; the public admin metrics are the sum
of the workers'; the client lookup finds a session on either worker; killing
one worker makes the supervisor start it again, the other worker's clients
are undisturbed and the killed one's reconnect and resume without loss; a
drain through the admin API closes the sessions of both workers with 1012;
SIGTERM stops the supervisor and its workers within the drain timeout; a
setting only a worker checks (a missing --link-secret file) stops the router
with the worker's status instead of restarting it forever."""

import asyncio
import json
import os
import re
import resource
import signal
import sys
import time

import harness as h

TOKEN = "test-admin-token"
PARTITIONS = 6
CLIENTS = 40


http = h.admin_request


metric = h.metric_total


def workers_of(router, count=1):
    """{index: (pid, private admin port)} from the supervisor's log: the
    latest start of each worker, once it has reported its port."""
    text = router.text()
    pids = dict((int(i), int(p)) for i, p in re.findall(r"worker (\d+): started, pid (\d+)", text))
    ports = dict((int(i), int(p)) for i, p in
                 re.findall(r"worker (\d+): ready for the admin endpoint \(private port (\d+)\)",
                            text))
    return {i: (pids[i], ports.get(i)) for i in pids}


def sessions_of(port):
    return metric(http(port, "/metrics")[1], "kws_router_sessions", state="live") or 0


async def wait_ready(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http(port, "/readyz")[0] == 200:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"readyz not 200 within {timeout}s: {http(port, '/readyz')}")


def open_files_limit(pid):
    """The soft "Max open files" of a process (/proc/PID/limits)."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                v = line.split()[3]
                return resource.RLIM_INFINITY if v == "unlimited" else int(v)
    raise AssertionError(f"no open-files limit for pid {pid}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has not been reaped by its parent yet: gone for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def run(env):
    env.start_kafka({"deliveries": PARTITIONS})
    e1, e2 = env.start_edge("edge-1"), env.start_edge("edge-2")

    # A worker that cannot start: the router stops, it does not loop.
    bad = env.start_router("router-bad", [e1], ["--workers", "2", "--link-secret",
                                                "file:/nonexistent/secret"])
    t0 = time.monotonic()
    rc = await asyncio.get_running_loop().run_in_executor(None, bad.p.wait, 20)
    line = bad.wait_for(r"worker \d .*before it was up: stopping the router", 1)
    h.log(f"a worker that cannot start: router exit {rc} in {time.monotonic() - t0:.1f}s "
          f"({line!r})")
    assert rc == 1 and "restarting" not in bad.text()

    common = ["--workers", "2", "--admin-token", TOKEN, "--drain-timeout-ms", "3000"]
    r1 = env.start_router("router-1", [e1, e2], common)
    # router-2 bounds its sessions: each worker then lowers its soft limit
    # of open files to 1,000 sessions + 4,096 at the door + 500 (router.c
    # fit_file_limit; lws scans a table that long at every close).
    r2 = env.start_router("router-2", [e1, e2], common + ["--max-connections", "2000"])
    for r in (r1, r2):
        r.wait_for(r"worker 1: ready for the admin endpoint", 30)
        await wait_ready(r.admin_port)
    ours = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    want = min(ours, 1000 + 4096 + 500)
    for i, (pid, _) in workers_of(r2).items():
        soft = open_files_limit(pid)
        h.log(f"router-2 worker {i}: open files soft limit {soft} (ours {ours})")
        assert soft == want, f"worker {i} of router-2: soft limit {soft}, expected {want}"
    w = workers_of(r1)
    h.log(f"router-1: supervisor pid {r1.p.pid}, workers {w}")
    assert sorted(w) == [0, 1] and all(port for _, port in w.values())
    assert http(r1.admin_port, "/readyz")[0] == 200

    # Clients spread over both workers (the kernel's SO_REUSEPORT hash).
    ids = [f"wk-{i}" for i in range(CLIENTS)]
    clients = [h.Collector(r1.ws_url, i, framed=True) for i in ids]
    await asyncio.gather(*(c.connect() for c in clients))
    await h.warm_up(env, clients)
    per = {i: sessions_of(port) for i, (_, port) in w.items()}
    total = sessions_of(r1.admin_port)
    h.log(f"sessions per worker {per}, admin endpoint {total}")
    assert all(n > 0 for n in per.values()), f"one worker holds no session: {per}"
    assert total == sum(per.values()) == CLIENTS

    # Every record once, in order; metrics are the sum of the workers'.
    env.produce("deliveries", ids, 20, tag="a")
    await h.wait_until(lambda: all(len(c.records("a")) >= 20 for c in clients), 30, "records")
    await asyncio.sleep(0.5)
    lost, dup, reord, foreign = h.check_streams(clients, 20, "a")
    h.log(f"20 records each: lost {lost}, duplicated {dup}, reordered {reord}, foreign {foreign}")
    assert (lost, dup, reord, foreign) == (0, 0, 0, 0)
    whole = http(r1.admin_port, "/metrics")[1]
    parts = [http(port, "/metrics")[1] for _, port in w.values()]
    for name, labels in [("kws_router_messages_total", {"direction": "to_client"}),
                         ("kws_router_bytes_total", {"direction": "to_client"}),
                         ("kws_router_sessions", {"state": "live"}),
                         ("kws_router_delivery_delay_seconds_count", {}),
                         ("kws_router_edge_links", {"state": "up"})]:
        got, want = metric(whole, name, **labels), sum(metric(p, name, **labels) for p in parts)
        h.log(f"{name}{labels}: admin {got:.0f} = sum of workers {want:.0f}")
        assert got == want, (name, got, want)
    assert metric(whole, "kws_router_messages_total", direction="to_client") >= CLIENTS * 21
    assert metric(whole, "kws_router_partitions", state="owned") == PARTITIONS
    assert metric(whole, "kws_router_workers", state="up") == 2
    stats = json.loads(http(r1.admin_port, "/api/v1/stats")[1])
    h.log(f"stats: {stats}")
    assert stats["sessions"] == CLIENTS and stats["router"] == "router-1"

    # Where each client is: the lookup names its worker.
    where = {}
    for c in clients:
        info = json.loads(http(r1.admin_port, f"/api/v1/clients/{c.client_id}")[1])
        assert len(info["sessions"]) == 1, info
        where[c.client_id] = info["sessions"][0]["router"]
    assert set(where.values()) == {"router-1/w0", "router-1/w1"}, set(where.values())

    # Kill worker 1 while records flow: it is started again; worker 0's
    # clients notice nothing, worker 1's reconnect and resume.
    stop = asyncio.Event()
    runners = [asyncio.ensure_future(c.run_resuming([r1.ws_url], stop)) for c in clients]
    stream = h.Stream(env, ids, 400, "b")
    await h.wait_produced_after(clients, "b", h.wall_ms(), 30, "records before the kill")
    victim_pid = w[1][0]
    os.kill(victim_pid, signal.SIGKILL)
    t_kill = time.monotonic()
    h.log(f"killed worker 1 (pid {victim_pid})")
    r1.wait_for(r"worker 1: started, pid", 20, count=2)
    r1.wait_for(r"worker 1: ready for the admin endpoint", 20, count=2)
    await wait_ready(r1.admin_port)
    h.log(f"worker 1 back and the router ready {time.monotonic() - t_kill:.1f}s after the kill")
    since = h.wall_ms()
    await h.wait_produced_after(clients, "b", since, 60, "records after the restart")
    await stream.stop()
    counts = stream.counts()
    await h.wait_until(lambda: all(len({r["seq"] for r in c.records("b")}) >= counts[c.client_id]
                                   for c in clients), 60, "every record of the stream")
    stop.set()
    await asyncio.gather(*runners)
    lost, dup, reord, foreign = h.check_streams(clients, counts, "b")
    on0 = [c for c in clients if where[c.client_id] == "router-1/w0"]
    on1 = [c for c in clients if where[c.client_id] == "router-1/w1"]
    disturbed0 = [c.client_id for c in on0 if c.closes or c.connections != 1]
    reconnected1 = [c for c in on1 if c.connections >= 2]
    h.log(f"stream of {stream.total}: lost {lost}, duplicated {dup}, reordered {reord}, "
          f"foreign {foreign}; worker 0's {len(on0)} clients disturbed: {disturbed0}; "
          f"worker 1's {len(on1)} clients reconnected: {len(reconnected1)}")
    assert (lost, dup, reord, foreign) == (0, 0, 0, 0)
    assert not disturbed0
    assert len(reconnected1) == len(on1)
    whole = http(r1.admin_port, "/metrics")[1]
    assert metric(whole, "kws_router_worker_restarts_total") == 1
    resumes = metric(whole, "kws_router_resumes_total", result="complete")
    h.log(f"restarts 1; complete resumes {resumes:.0f}")
    assert resumes >= len(on1)
    statuses = [s for c in on1 for s in c.statuses[1:]]
    assert all(s[0] == "complete" for s in statuses), statuses

    # An edge dies: its partitions move to the other edge, and each worker
    # re-pins its own sessions there; no client notices, nothing is lost.
    conns = {c.client_id: c.connections for c in clients}
    stream = h.Stream(env, ids, 200, "c")
    await h.wait_produced_after(clients, "c", h.wall_ms(), 30, "records before the edge dies")
    moves0 = metric(http(r1.admin_port, "/metrics")[1], "kws_router_partition_moves_total")
    e2.stop(signal.SIGKILL)
    await h.wait_until(
        lambda: metric(http(r1.admin_port, "/metrics")[1], "kws_router_partition_moves_total")
        > moves0, 60, "partitions to move")
    await h.wait_produced_after(clients, "c", h.wall_ms(), 60, "records after the move")
    await stream.stop()
    counts = stream.counts()
    await h.wait_until(lambda: all(len({r["seq"] for r in c.records("c")}) >= counts[c.client_id]
                                   for c in clients), 60, "every record of the stream")
    lost, dup, reord, foreign = h.check_streams(clients, counts, "c")
    whole = http(r1.admin_port, "/metrics")[1]
    per = [metric(http(port, "/metrics")[1], "kws_router_repins_total")
           for _, port in workers_of(r1).values()]
    closed = [c.client_id for c in clients if c.close_code is not None
              or c.connections != conns[c.client_id]]
    h.log(f"edge-2 killed: stream of {stream.total}: lost {lost}, duplicated {dup}, reordered "
          f"{reord}; re-pins per worker {per}, total {metric(whole, 'kws_router_repins_total')}; "
          f"clients that reconnected {closed}")
    assert (lost, dup, reord, foreign) == (0, 0, 0, 0) and not closed
    assert all(n > 0 for n in per) and metric(whole, "kws_router_repins_total") == sum(per)

    # A drain through the admin API closes the sessions of both workers.
    w = workers_of(r1)
    st, body = http(r1.admin_port, "/api/v1/drain?deadline_ms=2000", "POST", TOKEN)
    h.log(f"drain: {st} {body.strip()}")
    assert st == 202 and json.loads(body)["sessions"] == CLIENTS
    await h.wait_until(lambda: all(c.close_code is not None for c in clients), 15, "drain")
    codes = sorted({c.close_code for c in clients})
    per = {i: sessions_of(port) for i, (_, port) in w.items()}
    st, body = http(r1.admin_port, "/readyz")
    h.log(f"after the drain: close codes {codes}, sessions per worker {per}, readyz {st} {body}")
    assert codes == [1012] and all(n == 0 for n in per.values()) and st == 503
    # A worker started again while the router drains drains too.
    os.kill(w[0][0], signal.SIGKILL)
    r1.wait_for(r"worker 0: the router is draining: so does it \(202\)", 20)
    port0 = workers_of(r1)[0][1]
    st, body = http(port0, "/readyz")
    h.log(f"worker 0 restarted during the drain: its readyz {st} {body.strip()}")
    assert st == 503 and "draining" in body

    # SIGTERM: the supervisor drains its workers (with sessions) and exits 0.
    others = [h.Collector(r2.ws_url, f"t-{i}", framed=True) for i in range(20)]
    await asyncio.gather(*(c.connect() for c in others))
    w2 = workers_of(r2)
    per = {i: sessions_of(port) for i, (_, port) in w2.items()}
    h.log(f"router-2 sessions per worker {per}")
    t0 = time.monotonic()
    rc = await asyncio.get_running_loop().run_in_executor(None, r2.stop, signal.SIGTERM, 20)
    took = time.monotonic() - t0
    await h.wait_until(lambda: all(c.close_code is not None for c in others), 10, "closes")
    codes = sorted({c.close_code for c in others})
    left = [pid for pid, _ in w2.values() if pid_alive(pid)]
    h.log(f"router-2 SIGTERM: exit {rc} in {took:.1f}s (drain timeout 3 s); client close "
          f"codes {codes}; workers left {left}")
    assert rc == 0 and took < 3 + 2 and codes == [1012] and not left
    await asyncio.gather(*(c.close() for c in clients + others))


def main():
    with h.Env("workers") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
