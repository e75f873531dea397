#!/usr/bin/env python3
"""Kafka goes away under a running edge (issue 14, items 1 and 2).

The edge's loop never waits for Kafka: while the broker refuses connections
(killed) or hangs (SIGSTOP: connections accepted, nothing answered), /healthz
stays 200 and a client that reconnects presenting a position is answered and
replayed from memory. SIGTERM then stops the edge within
--shutdown-timeout-ms, and a second signal stops it at once."""

import asyncio
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

import harness as h

SHUTDOWN_MS = 3000
KEY = "outage-0"


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return f"no answer ({e})"


class HealthWatch:
    """Asks /healthz every 200 ms on a thread until stopped."""

    def __init__(self, port):
        self.port = port
        self.answers = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            self.answers.append(healthz(self.port))
            time.sleep(0.2)

    def done(self):
        self.stop.set()
        self.t.join()
        return self.answers


async def live_client(env, extra):
    env.start_kafka({"deliveries": 4})
    e = env.start_edge("edge-1", extra=["--shutdown-timeout-ms", str(SHUTDOWN_MS),
                                        "--metadata-timeout-ms", "2000"] + extra)
    r = env.start_router("router-1", [e])
    h.wait_all_owned(r)
    c = h.Collector(r.ws_url, KEY, framed=True)
    await c.connect()
    await h.warm_up(env, [c])
    env.produce("deliveries", [KEY], 5, tag="before")
    await h.wait_until(lambda: len(c.records("before")) >= 5, 30, "records before the outage")
    return e, r, c


def kafka_away(env, how):
    pid = env.kafka.proc.p.pid
    if how == "refused":
        env.kafka.proc.p.kill()
        env.kafka.proc.p.wait()
    else:
        os.kill(pid, signal.SIGSTOP)
    h.log(f"kafka {'killed: connections refused' if how == 'refused' else 'stopped: it hangs'}")


def kafka_cleanup(env, how):
    if how == "hangs":
        os.kill(env.kafka.proc.p.pid, signal.SIGCONT)


def stop_edge(e, signals, gap=1.0, limit=20):
    """Sends the signals `gap` apart; returns (seconds from the first, status)."""
    t0 = time.monotonic()
    for i, sig in enumerate(signals):
        if i:
            time.sleep(gap)
        if e.p.poll() is None:
            e.p.send_signal(sig)
    try:
        e.p.wait(limit)
    except Exception:
        e.p.kill()
        e.p.wait()
        return None, e.p.returncode
    return time.monotonic() - t0, e.p.returncode


async def resume_while_away(env, how):
    """Items 2 and 1: a position presented while Kafka is away, then SIGTERM."""
    e, r, c = await live_client(env, [])
    kafka_away(env, how)
    try:
        await c.drop()
        p, o = c.position
        c.position = (p, o - 3)  # the last three again: behind the live point
        hw = HealthWatch(e.admin_port)
        await c.connect(resume=True)
        try:
            await h.wait_until(lambda: len(c.records("before")) >= 8, 20,
                               "the replay of the last three records")
        finally:
            await asyncio.sleep(6)  # longer than /healthz's 5 s stall limit
            answers = hw.done()
        h.log(f"{how}: resumed at {p}:{o - 3} while Kafka was away: statuses {c.statuses}, "
              f"{len(c.records('before'))} records; /healthz answers "
              f"{sorted(set(map(str, answers)))} ({len(answers)} asked)")
        assert [x["seq"] for x in c.records("before")] == [0, 1, 2, 3, 4, 2, 3, 4]
        assert c.statuses[-1][0] == "complete", c.statuses
        assert answers and all(a == 200 for a in answers), answers
        await c.close()
        secs, rc = stop_edge(e, [signal.SIGTERM])
        h.log(f"{how}: SIGTERM with Kafka away: exited after "
              f"{'never (killed after 20 s)' if secs is None else f'{secs:.1f} s'}, status {rc}")
        assert secs is not None and secs < SHUTDOWN_MS / 1000 + 3, secs
        assert rc == 0
    finally:
        kafka_cleanup(env, how)


async def second_signal(env):
    """Item 1: a second signal ends the wait for Kafka at once."""
    e, r, c = await live_client(env, ["--shutdown-timeout-ms", "60000"])
    kafka_away(env, "hangs")
    try:
        await c.close()
        secs, rc = stop_edge(e, [signal.SIGTERM, signal.SIGTERM], gap=1.0)
        h.log(f"two SIGTERMs 1 s apart, Kafka hanging, --shutdown-timeout-ms 60000: exited "
              f"after {'never (killed after 20 s)' if secs is None else f'{secs:.1f} s'}, "
              f"status {rc}")
        assert secs is not None and secs < 3, secs
        assert "second signal" in e.text()
    finally:
        kafka_cleanup(env, "hangs")


def main():
    for how in ("refused", "hangs"):
        with h.Env("outage") as env:
            h.log(f"--- Kafka {how}")
            asyncio.run(resume_while_away(env, how))
    with h.Env("outage") as env:
        h.log("--- a second signal")
        asyncio.run(second_signal(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
