#!/usr/bin/python3
"""Router workers (issue 13 item 4), bounded (about 4 minutes). See
tests/bench/README.md, "Workers".

    tests/bench/workers.py [--build build] [--idle 3:50000] [--tput-trials 2]
                           [--storm 4000] [--storm-trials 3]
                           [--keys K] [--fan F] [--per-key N] [--size B]
                           [--deflate on|no-context-takeover]

On librdkafka's mock cluster (tests/tools/kafka-mock), with one edge:

  idle:  W:N holds N idle sessions on one router with --workers W, opened by
         client processes of at most 12,500 connections each (a process may
         hold 20,000 files here) from source addresses 127.0.0.1..16; reports
         the RSS growth per session summed over the supervisor and workers,
         and the sessions and open files of each worker.
  tput:  delivered messages a second when the router is the bottleneck
         (every record of 1,000 keys goes to 8 sessions of its key, one per
         client process; a burst of records produced as fast as the mock
         cluster takes them), --workers 1 and --workers 2 in turn in the same
         run, with the CPU seconds of every process in the window. With
         --deflate the router compresses (permessage-deflate, offered by
         every client as browsers offer it) each message once per session,
         and the clients inflate them.
  storm: N clients with an ES256 token each connect at once (a router
         restarted, its clients back): the router checks every token, so it
         is the bottleneck; --workers 1 and 2 in turn, sessions a second
         from the first connect to the last 101, and the router's CPU per
         session. A worker's door holds 4,096 handshakes: more at once get
         503 and retry after 200 ms.

The mock cluster keeps about 5 MiB per partition (12 here): a burst larger
than that loses its oldest records if the edge falls that far behind (as it
does when it holds Kafka back for a router slower than the producer), so
--keys, --per-key and --size are refused beyond 4 MiB a partition.

Every figure is a ratio of runs in the same script; the machine is shared,
so the load average is printed with each.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PER_LOADGEN = 12500
STORM_CLIENT_PROCESSES = 2
TICK = os.sysconf("SC_CLK_TCK")


def say(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def nfiles(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def loadavg():
    return os.getloadavg()[0]


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


class Proc:
    def __init__(self, work, name, args):
        self.name = name
        self.log = os.path.join(work, name + ".log")
        self._f = open(self.log, "wb")
        self.p = subprocess.Popen([str(a) for a in args], stdout=self._f,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.p.pid

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.findall(pattern, self.text())
            if m:
                return m[-1]
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}): "
                                   f"{self.text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: /{pattern}/ not within {timeout}s")

    def stop(self, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._f.close()
        return self.p.returncode


class Bench:
    def __init__(self, build):
        self.bin = {n: os.path.join(build, *p) for n, p in {
            "router": ("router", "router"), "edge": ("edge", "edge"),
            "mock": ("tests", "tools", "kafka-mock"), "produce": ("tests", "tools", "produce"),
            "loadgen": ("tests", "tools", "loadgen")}.items()}
        self.work = tempfile.mkdtemp(prefix="kws-bench-workers-")
        self.procs = []
        self.seq = 0

    def spawn(self, name, args):
        self.seq += 1
        p = Proc(self.work, f"{self.seq:02d}-{name}", args)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop(5)

    def start(self):
        self.kafka = self.spawn("kafka-mock", [self.bin["mock"], "--topic", "idle:12",
                                               "--topic", "tput:12"])
        self.bootstrap = self.kafka.wait_for(r"BOOTSTRAP (\S+)", 20)

    def edge(self, topic):
        port = free_port()
        e = self.spawn("edge-" + topic, [
            self.bin["edge"], "--bootstrap", self.bootstrap, "--topic", topic, "--group",
            "g-" + topic, "--listen", f"tcp://127.0.0.1:{port}", "--edge-id", "edge-" + topic,
            "--admin-listen", "127.0.0.1:0", "--kafka-prop", "session.timeout.ms=6000",
            "--kafka-prop", "max.poll.interval.ms=10000", "--kafka-prop",
            "heartbeat.interval.ms=500"])
        e.wait_for(r"listening on", 30)
        e.url = f"tcp://127.0.0.1:{port}"
        return e

    def router(self, name, edge, workers, max_conn, extra=()):
        port, admin = free_port(), free_port()
        r = self.spawn(name, [self.bin["router"], "--listen", f"127.0.0.1:{port}",
                              "--router-id", name, "--admin-listen", f"127.0.0.1:{admin}",
                              "--edges", edge.url, "--workers", workers,
                              "--handshakes-per-ip", 1000000, "--max-connections", max_conn,
                              "--drain-timeout-ms", 1000] + list(extra))
        r.port, r.admin, r.workers = port, admin, workers
        r.ws_url = f"ws://127.0.0.1:{port}/ws"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or r.p.poll() is not None:
                    raise RuntimeError(f"{name} not ready: {r.text()[-2000:]}")
                time.sleep(0.2)
        return r

    def pids(self, r):
        """The router's processes: the supervisor (if any) and its workers."""
        if r.workers == 1:
            return [r.pid]
        w = dict(re.findall(r"worker (\d+): started, pid (\d+)", r.text()))
        return [r.pid] + [int(p) for p in w.values()]

    def live(self, r):
        return metrics(r.admin).get('kws_router_sessions{state="live"}', 0)

    # ---- idle sessions ----
    def idle(self, workers, n):
        say(f"== idle: {n} sessions on one router with --workers {workers} (load {loadavg():.2f})")
        e = self.edge("idle")
        r = self.router(f"router-idle-{workers}", e, workers, n + 1000)
        time.sleep(1.0)
        pids = self.pids(r)
        base = sum(rss_kb(p) for p in pids)
        lgs, t0 = [], time.monotonic()
        for i in range(0, n, PER_LOADGEN):
            k = min(PER_LOADGEN, n - i)
            lgs.append(self.spawn(f"lg-idle-{i}", [
                self.bin["loadgen"], "--url", r.ws_url, "--clients", k, "--ids-from", i,
                "--prefix", "idle-", "--source-addrs", 16, "--connect-rate", 4000,
                "--progress-s", 0, "--connect-timeout-s", 120, "--duration-s", 600]))
        deadline = time.monotonic() + 180
        while self.live(r) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.live(r):.0f} of {n} sessions live")
            time.sleep(1.0)
        took = time.monotonic() - t0
        time.sleep(2.0)
        rss = sum(rss_kb(p) for p in pids)
        per_worker = []
        for p in pids[1:] if workers > 1 else pids:
            per_worker.append({"pid": p, "files": nfiles(p), "rss_mib": rss_kb(p) / 1024})
        lg_files = [nfiles(lg.pid) for lg in lgs]
        row = {"workers": workers, "sessions": n, "connect_s": round(took, 1),
               "rss_mib": round(rss / 1024, 1), "base_mib": round(base / 1024, 1),
               "kib_per_session": round((rss - base) / n, 2), "per_worker": per_worker,
               "client_processes": len(lgs), "client_files_max": max(lg_files),
               "load": round(loadavg(), 2)}
        say(f"  {n} sessions live in {took:.1f}s; router RSS {rss / 1024:.1f} MiB "
            f"(+{(rss - base) / 1024:.1f} MiB): {row['kib_per_session']} KiB/session over "
            f"{len(pids)} processes; per worker " +
            ", ".join(f"{w['files']} files, {w['rss_mib']:.0f} MiB" for w in per_worker) +
            f"; {len(lgs)} client processes, at most {max(lg_files)} files each")
        for lg in lgs:
            lg.stop(20)
        r.stop(30)
        e.stop(10)
        return row

    # ---- a reconnect storm with tokens ----
    def storm(self, edge, workers, n, trial):
        """n clients with an ES256 token each connect at once (as after a
        router restart): the router verifies every token, so it is the
        bottleneck; the clients signed theirs before their clock starts."""
        keys = os.path.join(ROOT, "tests", "unit", "keys")
        r = self.router(f"router-storm-{workers}-{trial}", edge, workers, n + 1000,
                        ["--auth", "jwt", "--jwt-keys", os.path.join(keys, "verify", "ec-a.pem"),
                         "--handshakes-waiting-per-ip", 4096])
        pids = self.pids(r)
        c0 = sum(cpu_s(p) for p in pids)
        per = -(-n // STORM_CLIENT_PROCESSES)
        lgs = []
        for i in range(0, n, per):
            k = min(per, n - i)
            lgs.append(self.spawn(f"lg-storm-{workers}-{trial}-{i}", [
                self.bin["loadgen"], "--url", r.ws_url, "--clients", k, "--ids-from",
                trial * 1000000 + workers * 100000 + i, "--prefix", "storm-", "--source-addrs",
                16, "--connect-rate", 0, "--progress-s", 0, "--connect-timeout-s", 120,
                "--duration-s", 600, "--jwt", "ES256:" + os.path.join(keys, "sign", "ec-a.pem") +
                ":ec-a", "--report", os.path.join(self.work, f"storm-{workers}-{trial}-{i}.json")]))
        # Each client process logs when all of its clients are connected
        # (the router's admin endpoint may answer 503 "busy" meanwhile).
        for lg in lgs:
            lg.wait_for(r"(\d+) of \1 clients connected in \d+ ms", 180)
        cpu = sum(cpu_s(p) for p in pids) - c0
        deadline = time.monotonic() + 60
        while True:  # every session subscribed at its edge
            try:
                live = self.live(r)
            except OSError:  # 503 "busy": the loop did not answer in time
                live = 0
            if live >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"storm: {live:.0f} of {n} sessions live")
            time.sleep(0.2)
        for lg in lgs:
            lg.stop(20)
        took, failures = [], {}
        for i in range(0, n, per):
            with open(os.path.join(self.work, f"storm-{workers}-{trial}-{i}.json")) as f:
                rep = json.load(f)
            took.append(rep["connect_ms"] / 1000)
            for k, v in rep.get("handshake_failures", {}).items():
                failures[k] = failures.get(k, 0) + v
        r.stop(30)
        secs = max(took)
        row = {"workers": workers, "trial": trial, "sessions": n, "seconds": round(secs, 2),
               "sessions_per_s": round(n / secs), "router_cpu_s": round(cpu, 2),
               "router_cpu_us_per_session": round(cpu / n * 1e6), "retried": failures,
               "load": round(loadavg(), 2)}
        say(f"  --workers {workers} (trial {trial}): {n} sessions with ES256 tokens live in "
            f"{secs:.2f}s = {n / secs:,.0f}/s; router CPU {cpu:.2f}s "
            f"({cpu / n * 1e6:.0f} us a session); refused and retried {failures or 0}; "
            f"load {loadavg():.2f}")
        return row

    # ---- throughput ----
    def tput(self, edge, workers, keys, fan, per_key, trial, size=100, deflate=None):
        r = self.router(f"router-tput-{workers}-{trial}", edge, workers, 20000,
                        ["--deflate", deflate] if deflate else [])
        ids_from = trial * 100000 + workers * 10000  # fresh keys: no old records
        prefix = f"t{trial}w{workers}-"
        lgs = [self.spawn(f"lg-tput-{workers}-{trial}-{j}", [
            self.bin["loadgen"], "--url", r.ws_url, "--clients", keys, "--ids-from", 0,
            "--prefix", prefix, "--source-addrs", 4, "--connect-rate", 5000,
            "--progress-s", 0, "--expect-per-client", per_key, "--until-idle-s", 5,
            "--report", os.path.join(self.work, f"lg-{workers}-{trial}-{j}.json")]
            + (["--deflate"] if deflate else []))
            for j in range(fan)]
        deadline = time.monotonic() + 60
        while self.live(r) < keys * fan:
            if time.monotonic() > deadline:
                raise RuntimeError(f"tput: only {self.live(r):.0f} sessions live")
            time.sleep(0.5)
        time.sleep(1.0)
        procs = {"router": self.pids(r), "edge": [edge.pid], "kafka-mock": [self.kafka.pid],
                 "clients": [lg.pid for lg in lgs]}
        m0 = metrics(r.admin)['kws_router_messages_total{direction="to_client"}']
        c0 = {k: sum(cpu_s(p) for p in v) for k, v in procs.items()}
        pr = self.spawn(f"produce-{workers}-{trial}", [
            self.bin["produce"], "--bootstrap", self.bootstrap, "--topic", "tput", "--clients",
            keys, "--prefix", prefix, "--count", per_key, "--size", size, "--rate", 0])
        t_start = time.monotonic()
        procs["producer"] = [pr.pid]
        c0["producer"] = 0.0
        want = keys * fan * per_key
        # The clients stop as soon as each has all of its records (or after
        # 5 s without any): the window is from the producer's start to the
        # last client's end, so records still in socket buffers count only
        # once read.
        t_end = time.monotonic() + 180
        ends, seen = {}, {}
        while len(ends) < len(lgs) and time.monotonic() < t_end:
            for lg in lgs:
                if lg.pid not in ends and lg.p.poll() is not None:
                    ends[lg.pid] = time.monotonic()
            for v in procs.values():
                for p in v:  # the last reading of a process that is gone stays
                    seen[p] = max(seen.get(p, 0.0), cpu_s(p))
            time.sleep(0.02)
        delivered = metrics(r.admin)['kws_router_messages_total{direction="to_client"}'] - m0
        lost = dup = got = deflated = 0
        for j, lg in enumerate(lgs):
            lg.stop(5)
            try:
                with open(os.path.join(self.work, f"lg-{workers}-{trial}-{j}.json")) as f:
                    rep = json.load(f)
                lost += rep.get("lost", 0)
                dup += rep.get("duplicated", 0)
                got += rep.get("records", 0)
                deflated += rep.get("deflated", 0)
            except (OSError, ValueError):
                pass
        secs = max(ends.values()) - t_start if ends else float("nan")
        rate = got / secs if ends else 0.0
        cpu = {k: round(sum(seen.get(p, 0.0) for p in v) - c0[k], 2) for k, v in procs.items()}
        pr.stop(30)
        r.stop(30)
        row = {"workers": workers, "trial": trial, "delivered": int(delivered), "received": got,
               "want": want, "seconds": round(secs, 2), "msgs_per_s": round(rate),
               "cpu_s": cpu, "lost": lost, "duplicated": dup, "deflated": deflated,
               "load": round(loadavg(), 2)}
        say(f"  --workers {workers} (trial {trial}): {got} of {want} messages received in "
            f"{secs:.2f}s = {rate:,.0f}/s; lost {lost}, duplicated {dup}" +
            (f", {deflated} came compressed" if deflate else "") + "; CPU s " +
            ", ".join(f"{k} {v}" for k, v in cpu.items()) + f"; load {loadavg():.2f}")
        return row


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--idle", default="3:50000",
                    help="W:N[,W:N...]: N idle sessions with --workers W ('' skips)")
    ap.add_argument("--tput-trials", type=int, default=2, help="0 skips")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--fan", type=int, default=8, help="sessions of each key (client processes)")
    ap.add_argument("--per-key", type=int, default=200)
    ap.add_argument("--size", type=int, default=100, help="bytes of each record's value")
    ap.add_argument("--deflate", choices=("on", "no-context-takeover"),
                    help="the router runs with --deflate MODE and every client offers "
                         "permessage-deflate as browsers do: each record is compressed once "
                         "per session, so the router is the bottleneck")
    ap.add_argument("--storm", default="4000", metavar="N",
                    help="N clients with ES256 tokens connecting at once, to --workers 1 and "
                         "2 in turn ('' skips)")
    ap.add_argument("--storm-trials", type=int, default=3)
    ap.add_argument("--out", default="", help="write the results as JSON here")
    a = ap.parse_args()
    per_partition = a.keys * a.per_key * (a.size + 100) / 12
    if a.tput_trials and per_partition > 4 * 1024 * 1024:
        ap.error(f"{per_partition / 2**20:.1f} MiB a partition: the mock cluster keeps about 5")
    b = Bench(os.path.abspath(a.build))
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(),
           "args": vars(a), "idle": [], "storm": [], "tput": []}
    try:
        b.start()
        for spec in [s for s in a.idle.split(",") if s]:
            w, n = (int(x) for x in spec.split(":"))
            res["idle"].append(b.idle(w, n))
        if a.storm and a.storm_trials:
            n = int(a.storm)
            say(f"== reconnect storm: {n} clients with ES256 tokens at once "
                f"(load {loadavg():.2f})")
            e = b.edge("idle")
            for t in range(a.storm_trials):
                for w in (1, 2):
                    res["storm"].append(b.storm(e, w, n, t))
            one = [r["sessions_per_s"] for r in res["storm"] if r["workers"] == 1]
            two = [r["sessions_per_s"] for r in res["storm"] if r["workers"] == 2]
            res["storm_ratio"] = round(max(two) / max(one), 2)
            say(f"  best of {a.storm_trials}: --workers 2 {max(two):,}/s vs --workers 1 "
                f"{max(one):,}/s: {res['storm_ratio']}x")
            e.stop(10)
        if a.tput_trials:
            say(f"== throughput: {a.keys} keys x {a.fan} sessions each, {a.per_key} records "
                f"a key of {a.size} B" +
                (f", permessage-deflate (--deflate {a.deflate})" if a.deflate else "") +
                f" (load {loadavg():.2f})")
            e = b.edge("tput")
            for t in range(a.tput_trials):
                for w in (1, 2):
                    row = b.tput(e, w, a.keys, a.fan, a.per_key, t, a.size, a.deflate)
                    if a.deflate and row["deflated"] < row["received"]:
                        raise RuntimeError(f"only {row['deflated']} of {row['received']} "
                                           "messages came compressed")
                    res["tput"].append(row)
            one = [r["msgs_per_s"] for r in res["tput"] if r["workers"] == 1]
            two = [r["msgs_per_s"] for r in res["tput"] if r["workers"] == 2]
            res["ratio"] = round(max(two) / max(one), 2)
            say(f"  best of {a.tput_trials}: --workers 2 {max(two):,}/s vs --workers 1 "
                f"{max(one):,}/s: {res['ratio']}x")
    finally:
        b.stop_all()
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
