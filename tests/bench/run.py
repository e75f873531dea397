#!/usr/bin/python3
"""Benchmark suite of kafka-websocket-router (issue 5). See tests/bench/README.md.

    tests/bench/run.py            # full run, about 15-20 minutes
    tests/bench/run.py --quick    # smoke test, about 3 minutes

On a real Apache Kafka broker (tests/kafka/kafkafix.py), with the build in
build-bench/ (built here if needed), it measures, each figure next to a floor
measured in the same run:

  a. idle memory per session: router vs wsfloor (bare libwebsockets)
  b. end-to-end latency at fixed rates: router path vs kfloor (bare consumer)
  c. highest sustained delivered rate, CPU per million records, syscalls per
     message: end to end vs kfloor, WebSocket leg vs wsfloor
  d. the pause of moved and unmoved partitions' clients when an edge joins,
     vs two kfloor consumers doing the same join

and writes tests/bench/report.md, report.json and PNG plots. Every load loop
is bounded; every child process is stopped on exit.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ next to report.py
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "kafka"))

# One router process unless a section asks for more (tests/bench/workers.py):
# the figures of sections a-d are those of one worker.
os.environ.setdefault("ROUTER_WORKERS", "1")
PARTITIONS = 12
# The consumer-group settings the integration tests give the edges
# (tests/integration/harness.py FAST_GROUP); kfloor gets the same.
FAST_GROUP = ["session.timeout.ms=6000", "max.poll.interval.ms=10000",
              "heartbeat.interval.ms=500"]

# What the issue asks for (issue 5).
TARGETS = {
    "mem_ratio": 1.3,          # idle memory per session <= 1.3x WebSocket floor
    "e2e_ratio": 0.5,          # end-to-end throughput >= 0.5x Kafka floor
    "ws_ratio": 0.8,           # WebSocket leg >= 0.8x WebSocket floor
    "syscalls": 1.2,           # <= 1.2 syscalls per delivered message at saturation
    "hop_p99_ms": 1.0,         # router+link hop <= 1 ms at p99
    "hop_p999_ms": 5.0,        # ... and <= 5 ms at p99.9
}
# A step of the rate ladder is "sustained" when everything arrived, p99 stayed
# under this, and the producer kept its schedule.
P99_LIMIT_MS = 1000
# Section a also measures the cost of a record with N sessions connected:
# BUSY_RECORDS records at BUSY_RATE/s. On the router they take one whole
# keepalive interval (its default --ping-interval-s, 30 s), so every session
# is pinged once in the window at every session count: a shorter window
# caught the ping wave of some sessions at one count and none at another
# (0.95x-1.25x of the same build). wsfloor pings no one: WSFLOOR_BUSY_RECORDS.
BUSY_RATE = 1000
PING_INTERVAL_S = 30
BUSY_RECORDS = BUSY_RATE * PING_INTERVAL_S
WSFLOOR_BUSY_RECORDS = 5000
# "Unmoved partitions do not pause": their clients' longest gap while an edge
# joins is at most this much over their longest gap in a control window.
PAUSE_SLACK_MS = 100

PROFILES = {
    "full": {
        "mem_counts": [1000, 5000, 18000],
        "lat_rates": [1000, 5000], "lat_clients": 1000, "lat_probe": 50, "lat_s": 20,
        "ladder": {100: [5000, 10000, 20000, 30000, 40000, 60000, 80000],
                   4096: [2000, 5000, 10000, 15000, 20000, 30000]},
        "ladder_clients": 1000, "step_s": 8, "retry": True,
        "wsfloor_count": {100: 1000, 4096: 150},
        "drain_count": {100: 300, 4096: 144}, "trials": 2,
        "join_clients": 300, "join_rate": 3000, "join_window_s": 10, "join_trials": 2,
        "budget_s": 22 * 60,
    },
    "quick": {
        "mem_counts": [1000, 5000],
        "lat_rates": [1000, 5000], "lat_clients": 1000, "lat_probe": 50, "lat_s": 5,
        "ladder": {100: [10000], 4096: [3000]},
        "ladder_clients": 1000, "step_s": 4, "retry": False,
        "wsfloor_count": {100: 300, 4096: 50},
        "drain_count": {100: 100, 4096: 5}, "trials": 1,
        "join_clients": 200, "join_rate": 2000, "join_window_s": 5, "join_trials": 1,
        "budget_s": 6 * 60,
    },
}

T0 = time.monotonic()


def say(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime+stime of every thread of pid, in seconds (0 if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def minflt(pid):
    """Minor page faults of every thread of pid so far (0 if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])
    except (OSError, IndexError, ValueError):
        return 0


def thread_cpu(pid):
    """{thread name: cpu seconds} summed over threads of the same name."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                raw = f.read()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        name = re.sub(r"\d+$", "#", name)
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    i = max(0, min(len(sorted_vals) - 1, int(q * len(sorted_vals) + 0.999999) - 1))
    return sorted_vals[i]


# ---- processes -------------------------------------------------------------

class Proc:
    """A child whose stdout+stderr go to a log file in the work dir."""

    def __init__(self, bench, name, args, env=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.log_path = os.path.join(bench.work, "%s.log" % name)
        self._log = open(self.log_path, "wb")
        self.p = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)
        self.pid = self.p.pid
        self.t_start = time.monotonic()
        bench.procs.append(self)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=30, count=1):
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            found = rx.findall(self.text())
            if len(found) >= count:
                return found[-1]
            if self.p.poll() is not None:
                raise RuntimeError("%s exited (%s) while waiting for /%s/; log %s"
                                   % (self.name, self.p.returncode, pattern, self.log_path))
            if time.monotonic() > deadline:
                raise RuntimeError("%s: /%s/ not seen within %ss; log %s"
                                   % (self.name, pattern, timeout, self.log_path))
            time.sleep(0.02)

    def alive(self):
        return self.p.poll() is None

    def send(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout):
        """Waits up to timeout; True if it exited."""
        try:
            self.p.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            if not self.wait(timeout):
                self.p.kill()
                self.p.wait()
        if not self._log.closed:
            self._log.close()
        return self.p.returncode


def perf_works():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0 and "raw_syscalls" in r.stderr


SYSCALLS = ["poll", "ppoll", "epoll_wait", "epoll_pwait", "read", "write", "readv", "writev",
            "sendto", "recvfrom", "sendmsg", "recvmsg", "futex", "clock_nanosleep",
            "nanosleep", "clock_gettime", "getrusage", "mmap", "munmap", "brk", "madvise",
            "ioctl", "accept4", "close"]


class SyscallCounter:
    """Counts the syscalls of every thread of a process over a window, with
    perf stat (in-kernel counters: tracepoints raw_syscalls:sys_enter and
    syscalls:sys_enter_<name>), or strace -c -f as the fallback. Use:
    c = SyscallCounter(pid, tool); c.start(); ...; c.stop() -> dict."""

    def __init__(self, bench, pid, tool):
        self.bench, self.pid, self.tool = bench, pid, tool
        self.p = None

    def events(self):
        have = set(os.listdir("/sys/kernel/tracing/events/syscalls")) \
            if os.path.isdir("/sys/kernel/tracing/events/syscalls") else set()
        return ",".join(["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + s for s in SYSCALLS
                                                      if "sys_enter_" + s in have])

    def start(self):
        out = os.path.join(self.bench.work, "sc-%d-%d.txt" % (self.pid, int(time.monotonic() * 1000)))
        self.out = out
        if self.tool == "perf":
            args = ["perf", "stat", "-x,", "--per-thread", "-o", out, "-e", self.events(),
                    "-p", str(self.pid)]
        elif self.tool == "strace":
            args = ["strace", "-c", "-f", "-q", "-o", out, "-p", str(self.pid)]
        else:
            return
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL)
        self.t0 = time.monotonic()
        time.sleep(0.15)  # let it attach

    def wrap(self, args):
        """The command line that runs args under the counter (whole life)."""
        self.out = os.path.join(self.bench.work, "sc-wrap-%d.txt" % int(time.monotonic() * 1000))
        self.t0 = time.monotonic()
        if self.tool == "perf":
            return ["perf", "stat", "-x,", "-o", self.out, "-e", self.events(), "--"] + args
        if self.tool == "strace":
            return ["strace", "-c", "-f", "-q", "-o", self.out, "--"] + args
        return args

    def stop(self):
        if self.p:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.parse()

    def parse(self):
        try:
            text = open(self.out).read()
        except (OSError, AttributeError):
            return None
        res = {"total": 0, "by_syscall": {}, "by_thread": {}, "tool": self.tool,
               "seconds": time.monotonic() - self.t0}
        if self.tool == "perf":
            for line in text.splitlines():
                parts = line.split(",")
                if len(parts) < 3 or line.startswith("#"):
                    continue
                if parts[0].strip().isdigit():      # no thread column (wrapped)
                    thread, n, ev = "", int(parts[0]), parts[2]
                elif len(parts) >= 4 and parts[1].strip().isdigit():
                    thread = re.sub(r"\d+$", "#", re.sub(r"-\d+$", "", parts[0]))
                    n, ev = int(parts[1]), parts[3]
                else:
                    continue
                if ev == "raw_syscalls:sys_enter":
                    res["total"] += n
                    if thread:
                        res["by_thread"][thread] = res["by_thread"].get(thread, 0) + n
                elif ev.startswith("syscalls:sys_enter_"):
                    name = ev[len("syscalls:sys_enter_"):]
                    res["by_syscall"][name] = res["by_syscall"].get(name, 0) + n
        else:
            for line in text.splitlines():
                m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
                if m and m.group(2) != "total":
                    res["by_syscall"][m.group(2)] = int(m.group(1))
            res["total"] = sum(res["by_syscall"].values())
        return res


def syscall_costs(pid, seconds):
    """perf trace -s over a window: per syscall name, calls and mean
    microseconds per call, summed over threads (a sample: perf trace costs
    more than perf stat, so it runs in its own window)."""
    if not shutil.which("perf"):
        return None
    try:
        r = subprocess.run(["perf", "trace", "-s", "-p", str(pid), "--", "sleep", str(seconds)],
                           capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        return None
    out = {}
    for line in (r.stdout + r.stderr).splitlines():
        m = re.match(r"\s+(\w+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+([\d.]+)", line)
        if m:
            name, calls, total_ms = m.group(1), int(m.group(2)), float(m.group(4))
            c, t = out.get(name, (0, 0.0))
            out[name] = (c + calls, t + total_ms)
    return {k: {"calls": c, "mean_us": 1000.0 * t / c if c else 0.0, "total_ms": t}
            for k, (c, t) in out.items()} or None


def metrics(port):
    """Prometheus text of an admin endpoint as {"name{labels}": value}."""
    if not port:
        return {}
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, val = line.rpartition(" ")
        try:
            out[key] = float(val)
        except ValueError:
            pass
    return out


def msum(m, prefix, **labels):
    total = 0.0
    for k, v in m.items():
        if k == prefix or k.startswith(prefix + "{"):
            if all('%s="%s"' % (a, b) in k for a, b in labels.items()):
                total += v
    return total


def hist_quantiles(m0, m1, name, qs=(0.5, 0.99)):
    """Quantiles (in the histogram's unit) of what a Prometheus histogram
    observed between two scrapes, interpolated linearly inside a bucket;
    {} if nothing was observed."""
    b0, b1 = {}, {}
    for m, b in ((m0, b0), (m1, b1)):
        for k, v in m.items():
            if k.startswith(name + "_bucket{") and 'le="' in k:
                le = k.split('le="', 1)[1].split('"', 1)[0]
                b[float("inf") if le == "+Inf" else float(le)] = v
    bounds = sorted(b1)
    cum = [b1[x] - b0.get(x, 0) for x in bounds]
    if not cum or not cum[-1]:
        return {}
    out = {"count": cum[-1]}
    for q in qs:
        want, lo, prev = q * cum[-1], 0.0, 0.0
        for x, c in zip(bounds, cum):
            if c >= want:
                hi = x if x != float("inf") else lo
                out["p%g" % (q * 100)] = lo + (hi - lo) * ((want - prev) / max(1e-9, c - prev))
                break
            lo, prev = x, c
    return out


# ---- the benchmark ---------------------------------------------------------

# The options a caller that builds its own argparse.Namespace (heap.py) may
# leave out, with main()'s defaults.
OPTIONAL_ARGS = {"drain_count": None, "drains_only": False, "ladder_only": False,
                 "base_build": None, "base_traced": False, "stages": False,
                 "stages_rates": "1000,5000,20000,30000", "stages_size": 100,
                 "stages_every": 16, "stages_perf": False, "no_syscalls": False,
                 "syscalls_in_steps": False, "trace_in_steps": False, "no_same_floor": False,
                 "perf_drain": None, "cold_drain": False}


class Bench:
    def __init__(self, args):
        for k, v in OPTIONAL_ARGS.items():
            if not hasattr(args, k):
                setattr(args, k, v)
        self.args = args
        self.quick = args.quick
        self.P = dict(PROFILES["quick" if args.quick else "full"])
        if args.ladder:   # e.g. "100:20000,40000;4096:5000"
            self.P["ladder"] = {}
            for part in args.ladder.split(";"):
                size, _, rates = part.partition(":")
                self.P["ladder"][int(size)] = [int(x) for x in rates.split(",") if x]
        if args.drain_count:   # e.g. "4096:48"
            self.P["drain_count"] = dict(self.P["drain_count"])
            for part in args.drain_count.split(","):
                size, _, n = part.partition(":")
                self.P["drain_count"][int(size)] = int(n)
        if args.mem_counts:   # e.g. "1000,18000"
            self.P["mem_counts"] = [int(x) for x in args.mem_counts.split(",") if x]
        self.build = os.path.abspath(args.build)
        self.out = os.path.abspath(args.out)
        self.work = tempfile.mkdtemp(prefix="kws-bench-")
        self.procs = []
        self.res = {"mode": "quick" if args.quick else "full", "started": time.strftime(
            "%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info()}
        self.bin = {
            "edge": os.path.join(self.build, "edge", "edge"),
            "router": os.path.join(self.build, "router", "router"),
            "produce": os.path.join(self.build, "tests", "tools", "produce"),
            "loadgen": os.path.join(self.build, "tests", "tools", "loadgen"),
            "kfloor": os.path.join(self.build, "tests", "bench", "kfloor"),
            "linkfloor": os.path.join(self.build, "tests", "bench", "linkfloor"),
            "wsfloor": os.path.join(self.build, "tests", "bench", "wsfloor"),
            "wsprobe": os.path.join(self.build, "tests", "bench", "wsprobe"),
        }
        self.base_bin = None
        if args.base_build:
            bb = os.path.abspath(args.base_build)
            self.base_bin = {"edge": os.path.join(bb, "edge", "edge"),
                             "router": os.path.join(bb, "router", "router")}
        self.sc_tool = "perf" if perf_works() else ("strace" if shutil.which("strace") else None)
        self.res["syscall_tool"] = self.sc_tool
        self.kafka = None
        # --preload: a what-if diagnostic (e.g. build-bench/tests/bench/libnodelay.so)
        self.env_under_test = None
        if args.preload:
            self.env_under_test = dict(os.environ, LD_PRELOAD=os.path.abspath(args.preload))
            self.res["preload"] = os.path.basename(args.preload)
        # --stages: every process of the path writes stage timestamps
        # (common/stages.h), the tools too; perf stays off unless asked.
        self.tool_env = None
        if args.stages:
            self.stage_prefix = os.path.join(self.work, "stages", "st")
            os.makedirs(os.path.dirname(self.stage_prefix))
            senv = {"KWS_STAGES": self.stage_prefix, "KWS_STAGES_EVERY": str(args.stages_every)}
            self.env_under_test = dict(self.env_under_test or os.environ, **senv)
            self.tool_env = dict(os.environ, **senv)
            if not args.stages_perf:
                self.sc_tool = None
                self.res["syscall_tool"] = None
        if args.no_syscalls:
            self.sc_tool = None
            self.res["syscall_tool"] = None
        self.nonce = "%x" % (int(time.time()) & 0xffffff)

    def over_budget(self):
        return time.monotonic() - T0 > self.P["budget_s"]

    # -- components --
    def start_edge(self, name, topic, group, port=None, props=(), bins=None):
        port = port or free_port()
        admin = free_port()
        args = [(bins or self.bin)["edge"], "--bootstrap", self.kafka.bootstrap, "--topic", topic,
                "--group", group, "--listen", "tcp://127.0.0.1:%d" % port, "--edge-id", name,
                "--admin-listen", "127.0.0.1:%d" % admin]
        for kv in FAST_GROUP + list(props):
            args += ["--kafka-prop", kv]
        e = Proc(self, name, args, self.env_under_test)
        e.url = "tcp://127.0.0.1:%d" % port
        e.admin = admin
        e.wait_for(r"listening on", 30)
        return e

    def start_router(self, name, edge_urls, bins=None):
        port, admin = free_port(), free_port()
        # Section a holds 18,000 sessions opened at 5,000/s from 16 source
        # addresses: above the router's default admission limits.
        args = [(bins or self.bin)["router"], "--listen", "127.0.0.1:%d" % port, "--router-id", name,
                "--admin-listen", "127.0.0.1:%d" % admin, "--handshakes-per-ip", 1000000,
                "--max-connections", 19500]
        for u in edge_urls:
            args += ["--edges", u]
        r = Proc(self, name, args, self.env_under_test)
        r.port, r.admin = port, admin
        r.ws_url = "ws://127.0.0.1:%d/ws" % port
        # The edge and topic of a router started for one edge (the ladder).
        r.edge, r.topic = getattr(self, "edge", None), "bench"
        r.wait_for(r"all \d+ partitions have owners", 60)
        return r

    def start_wsfloor(self, name, extra=()):
        port = free_port()
        w = Proc(self, name, [self.bin["wsfloor"], "--listen", "127.0.0.1:%d" % port,
                              "--partitions", PARTITIONS, "--exit-after-s", 900] + list(extra))
        w.wait_for(r"^LISTENING", 10)
        w.ws_url = "ws://127.0.0.1:%d/ws" % port
        return w

    def loadgen(self, name, url, clients, ids_from=0, extra=()):
        args = [self.bin["loadgen"], "--url", url, "--clients", clients, "--ids-from", ids_from,
                "--source-addrs", 16, "--connect-rate", 5000, "--progress-s", 0,
                "--connect-timeout-s", 60] + list(extra)
        return Proc(self, name, args, self.tool_env)

    def produce(self, name, topic, rate, size, tag, clients, count=None, forever=False):
        args = [self.bin["produce"], "--bootstrap", self.kafka.bootstrap, "--topic", topic,
                "--clients", clients, "--rate", rate, "--size", size, "--tag", tag]
        args += ["--forever"] if forever else ["--count", count]
        return Proc(self, name, args, self.tool_env)

    def produce_backlog(self, name, topic, size, tag, clients, count):
        """Writes count records per client as fast as the producer goes and
        waits for it (stopped after 180 s)."""
        pr = self.produce(name, topic, 0, size, tag, clients, count=count)
        if not pr.wait(180):
            pr.stop(signal.SIGTERM, 40)
        return pr

    def kfloor(self, name, topic, group, tag, extra=()):
        args = [self.bin["kfloor"], "--bootstrap", self.kafka.bootstrap, "--topic", topic,
                "--group", group, "--tag", tag] + list(extra)
        for kv in FAST_GROUP:
            args += ["--kafka-prop", kv]
        return Proc(self, name, args)

    def wait_sessions_live(self, router, n, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = msum(metrics(router.admin), "kws_router_sessions", state="live")
            if live >= n:
                return True
            time.sleep(0.2)
        say("  warning: only %d of %d sessions live after %ds" % (live, n, timeout))
        return False

    def wrapped_pid(self, pid, comm):
        """pid, or its descendant named comm when it runs under a wrapper
        (perf stat, strace)."""
        pending = [pid]
        while pending:
            p = pending.pop(0)
            try:
                if open("/proc/%d/comm" % p).read().strip() == comm:
                    return p
                for t in os.listdir("/proc/%d/task" % p):
                    with open("/proc/%d/task/%s/children" % (p, t)) as f:
                        pending += [int(x) for x in f.read().split()]
            except OSError:
                continue
        return pid

    def kafka_pids(self):
        """The broker JVMs of our cluster (kafkafix's children)."""
        procs = getattr(self.kafka, "procs", {}) or {}
        return [p.pid for p in procs.values() if p.poll() is None]

    def stop_all(self):
        for p in reversed(self.procs):
            try:
                p.stop(timeout=10)
            except Exception:
                pass
        self.procs = []

    # -- sections --
    def run(self):
        import kafkafix
        sections = self.args.only.split(",") if self.args.only else ["a", "b", "c", "d"]
        if self.args.stages:
            sections = ["s"]
        say("mode %s, build %s, syscalls via %s, load average %.1f"
            % (self.res["mode"], self.build, self.sc_tool, loadavg()))
        with kafkafix.KafkaCluster(brokers=1) as k:
            self.kafka = k
            self.res["kafka"] = {"version": k.version, "bootstrap": k.bootstrap}
            say("kafka %s at %s" % (k.version, k.bootstrap))
            for t in ["bench", "bench-kf", "bench-join", "bench-base"] + [
                    "bench-drain-%d-%d%s" % (size, i, kf) for size in self.P["ladder"]
                    for i in range(self.P["trials"]) for kf in ("", "-kf")]:
                k.create_topic(t, partitions=PARTITIONS)
            try:
                if any(s in sections for s in "abc"):
                    self.edge = self.start_edge("edge-1", "bench", "bench-edge-" + self.nonce)
                if "a" in sections:
                    self.section_memory()
                if "b" in sections:
                    self.section_latency()
                if "c" in sections:
                    self.section_throughput()
                if any(s in sections for s in "abc"):
                    self.edge.stop()
                if "d" in sections:
                    self.section_join()
                if "s" in sections:
                    self.edge = self.start_edge("edge-s", "bench", "bench-edge-" + self.nonce)
                    self.section_stages()
            finally:
                self.stop_all()
        self.res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.res["elapsed_s"] = round(time.monotonic() - T0, 1)

    # a. idle memory per session
    def section_memory(self):
        say("== a. idle memory per session (%s sessions)" % self.P["mem_counts"])
        out = {"counts": self.P["mem_counts"], "router": [], "wsfloor": [], "edge": [],
               "load": loadavg()}
        router = self.start_router("router-a", [self.edge.url])
        out["router"], out["edge"] = self.hold_sessions(router, "router", edge=self.edge)
        router.stop(signal.SIGINT)
        if router.alive():
            router.stop(signal.SIGINT)
        wf = self.start_wsfloor("wsfloor-a")
        out["wsfloor"], _ = self.hold_sessions(wf, "wsfloor")
        wf.stop()
        self.res["memory"] = out

    def hold_sessions(self, server, label, edge=None):
        time.sleep(1.0)
        base = rss_kb(server.pid)
        ebase = rss_kb(edge.pid) if edge else 0
        rows, erows, lgs, prev = [], [], [], 0
        for n in self.P["mem_counts"]:
            lg = self.loadgen("lg-mem-%s-%d" % (label, n), server.ws_url, n - prev, prev,
                              ["--duration-s", 600])
            lgs.append(lg)
            lg.wait_for(r"clients connected in", 90)
            if label == "router":
                self.wait_sessions_live(server, n, 60)
            time.sleep(2.0)
            samples = []
            for _ in range(3):
                samples.append(rss_kb(server.pid))
                time.sleep(0.3)
            rss = statistics.median(samples)
            row = {"sessions": n, "rss_kb": rss, "base_kb": base,
                   "per_session_kb": (rss - base) / n}
            rows.append(row)
            if edge:
                ers = rss_kb(edge.pid)
                erows.append({"sessions": n, "rss_kb": ers, "base_kb": ebase,
                              "per_session_kb": (ers - ebase) / n})
            if label == "router":
                row["busy"] = self.busy_router(server, n)
            else:
                row["busy"] = self.busy_wsfloor(n)
            say("  %-8s %6d sessions: RSS %7.1f MiB (+%.1f MiB), %.2f KiB/session%s; "
                "%s records/s to %s of them: %.0f us CPU and %s syscalls per record"
                % (label, n, rss / 1024, (rss - base) / 1024, (rss - base) / n,
                   "; edge +%.2f KiB/session" % erows[-1]["per_session_kb"] if edge else "",
                   BUSY_RATE, "1000" if label == "router" else "all",
                   row["busy"]["cpu_us_per_record"] or float("nan"),
                   "%.2f" % row["busy"]["syscalls_per_record"]
                   if row["busy"].get("syscalls_per_record") is not None else "n/a"))
            prev = n
        for lg in lgs:
            lg.stop(signal.SIGTERM, 20)
        return rows, erows

    def busy_router(self, router, n):
        """CPU and syscalls per record of the router holding n sessions while
        BUSY_RATE records/s go to 1000 of them (lws's poll loop looks at
        every connection on each wake-up)."""
        count = max(1, BUSY_RECORDS // 1000)
        sc = SyscallCounter(self, router.pid, self.sc_tool)
        sc.start()
        c0 = cpu_s(router.pid)
        pr = self.produce("produce-busy-%d" % n, "bench", BUSY_RATE, 100, "busy-%d" % n, 1000,
                          count=count)
        if not pr.wait(BUSY_RECORDS / BUSY_RATE + 60):
            pr.stop(signal.SIGTERM, 20)
        time.sleep(1.0)
        c1 = cpu_s(router.pid)
        scr = sc.stop()
        recs = count * 1000
        return {"records": recs, "cpu_s": c1 - c0, "cpu_us_per_record": (c1 - c0) / recs * 1e6,
                "syscalls_per_record": scr["total"] / recs if scr else None}

    def busy_wsfloor(self, n):
        """The same for wsfloor: a fresh one holding n sessions makes
        WSFLOOR_BUSY_RECORDS records at BUSY_RATE/s, round-robin over them."""
        w = self.start_wsfloor("wsfloor-busy-%d" % n,
                               ["--rate", BUSY_RATE, "--total", WSFLOOR_BUSY_RECORDS, "--size", 100,
                                "--start-sessions", n, "--start-delay-ms", 1500])
        # Slower than the usual 5,000 connects/s: bare lws handshakes through
        # its small header pool, and loadgen's retries of handshakes that
        # time out leave wsfloor holding orphans until it runs out of files.
        lg = self.loadgen("lg-busy-%d" % n, w.ws_url, n, 0,
                          ["--duration-s", 300, "--connect-rate", 1000])
        res = {"records": WSFLOOR_BUSY_RECORDS, "cpu_s": None, "cpu_us_per_record": None,
               "syscalls_per_record": None}
        try:
            w.wait_for(r"^START", 90)
            sc = SyscallCounter(self, w.pid, self.sc_tool)
            sc.start()
            c0 = cpu_s(w.pid)
            w.wait_for(r"^DONE", WSFLOOR_BUSY_RECORDS / BUSY_RATE + 60)
            time.sleep(1.0)
            c1 = cpu_s(w.pid)
            scr = sc.stop()
            res.update(cpu_s=c1 - c0, cpu_us_per_record=(c1 - c0) / WSFLOOR_BUSY_RECORDS * 1e6,
                       syscalls_per_record=scr["total"] / WSFLOOR_BUSY_RECORDS if scr else None)
        except RuntimeError as e:
            say("  wsfloor busy: %s" % e)
        lg.stop(signal.SIGTERM, 20)
        w.stop()
        return res

    # b. end-to-end latency at fixed rates
    def section_latency(self):
        P = self.P
        say("== b. end-to-end latency at %s records/s over %d clients, %ds each"
            % (P["lat_rates"], P["lat_clients"], P["lat_s"]))
        router = self.start_router("router-b", [self.edge.url])
        out = {"runs": [], "clients": P["lat_clients"], "probe_clients": P["lat_probe"],
               "seconds": P["lat_s"]}
        nlg = P["lat_clients"] - P["lat_probe"]
        for rate in P["lat_rates"]:
            tag = "lat%d-%s" % (rate, self.nonce)
            M = max(1, int(round(rate * P["lat_s"] / P["lat_clients"])))
            N = M * P["lat_clients"]
            kf_dump = os.path.join(self.work, "kf-%s.dump" % tag)
            pb_dump = os.path.join(self.work, "pb-%s.dump" % tag)
            kf = self.kfloor("kfloor-lat-%d" % rate, "bench", "kf-lat-%d-%s" % (rate, self.nonce),
                             tag, ["--max-s", P["lat_s"] + 150, "--idle-s", 20, "--expect", N,
                                   "--dump", kf_dump,
                                   "--dump-ids", "%d:%d" % (nlg, P["lat_clients"]),
                                   "--report", os.path.join(self.work, "kf-%s.json" % tag)])
            kf.wait_for(r"^ASSIGNED %d " % PARTITIONS, 60)
            lg_rep = os.path.join(self.work, "lg-%s.json" % tag)
            pb_rep = os.path.join(self.work, "pb-%s.json" % tag)
            # Every client connected and live before the first record: the
            # window holds no connection burst.
            # Both end at a fixed time well after the last record: a client
            # set that closed while the other still received would stall the
            # router (a thousand closes) under the other's last records.
            hold = P["lat_s"] + 2 + 3 + 8
            lg = self.loadgen("lg-lat-%d" % rate, router.ws_url, nlg, 0,
                              ["--tag", tag, "--expect-per-client", M, "--duration-s", hold,
                               "--report", lg_rep])
            pb = Proc(self, "wsprobe-lat-%d" % rate,
                      [self.bin["wsprobe"], "--url", router.ws_url, "--clients", P["lat_probe"],
                       "--ids-from", nlg, "--tag", tag, "--duration-s", hold,
                       "--dump", pb_dump, "--report", pb_rep])
            lg.wait_for(r"clients connected in", 60)
            pb.wait_for(r"^LIVE", 60)
            self.wait_sessions_live(router, P["lat_clients"], 30)
            # Warm-up, not measured: the topic's and the producer's first records.
            warm = self.produce("produce-warm-%d" % rate, "bench", rate, 100, "warm-" + tag,
                                P["lat_clients"], count=max(1, int(rate * 2 / P["lat_clients"])))
            warm.wait(60)
            c0 = {"router": cpu_s(router.pid), "edge": cpu_s(self.edge.pid),
                  "kfloor": cpu_s(kf.pid)}
            t0 = time.monotonic()
            pr = self.produce("produce-lat-%d" % rate, "bench", rate, 100, tag,
                              P["lat_clients"], count=M)
            if not pr.wait(P["lat_s"] + 60):
                pr.stop(signal.SIGTERM, 20)
            time.sleep(2.0)  # the last records arrive
            t1 = time.monotonic()
            c1 = {"router": cpu_s(router.pid), "edge": cpu_s(self.edge.pid),
                  "kfloor": cpu_s(kf.pid) or c0["kfloor"]}
            for p in (lg, pb):
                if not p.wait(max(1, t0 + hold + 30 - time.monotonic())):
                    p.stop(signal.SIGTERM, 20)
            if not kf.wait(20):
                kf.stop(signal.SIGTERM, 20)
            lgr = json.load(open(lg_rep))
            pbr = json.load(open(pb_rep))
            kfr = json.load(open(os.path.join(self.work, "kf-%s.json" % tag)))
            recs = lgr["records"] + pbr["records"]
            run = {"rate": rate, "expected": N, "offered_per_s": self.producer_rate(pr, rate),
                   "loadgen": strip_lg(lgr), "probe": pbr.get("latency_us"),
                   "probe_cdf_us": pbr.get("cdf_us"), "kfloor": kfr.get("latency_ms"),
                   "kfloor_us": kfr.get("latency_us"), "kfloor_cdf_us": kfr.get("cdf_us"),
                   "kfloor_records": kfr.get("tagged"), "records": recs,
                   "window_s": t1 - t0, "load": loadavg(),
                   "cpu_s": {k: c1[k] - c0[k] for k in c0}}
            run["cpu_us_per_record"] = {k: v / max(1, recs) * 1e6 for k, v in run["cpu_s"].items()}
            run["hop_us"], run["hop_cdf_us"] = paired_hop(kf_dump, pb_dump)
            out["runs"].append(run)
            L, K = lgr["latency_ms"], kfr.get("latency_ms") or {}
            H = run["hop_us"] or {}
            say("  %5d/s: router path p50/p99/p99.9/max %s/%s/%s/%s ms (%d records, lost %d); "
                "kfloor %s/%s/%s/%s ms; difference at p99 %s ms, p99.9 %s ms; per-record hop "
                "(%s records) p50/p99/p99.9/max %s/%s/%s/%s ms; router %.0f us/record"
                % (rate, L["p50"], L["p99"], L["p999"], L["max"], lgr["records"], lgr["lost"],
                   K.get("p50"), K.get("p99"), K.get("p999"), K.get("max"),
                   sub(L["p99"], K.get("p99")), sub(L["p999"], K.get("p999")), H.get("count"),
                   ms(H.get("p50")), ms(H.get("p99")), ms(H.get("p999")), ms(H.get("max")),
                   run["cpu_us_per_record"]["router"]))
        router.stop(signal.SIGINT)
        if router.alive():
            router.stop(signal.SIGINT)
        self.res["latency"] = out

    # c. throughput ladders
    def section_throughput(self):
        P = self.P
        out = {"sizes": {}, "step_s": P["step_s"], "clients": P["ladder_clients"]}
        self.res["throughput"] = out
        router = self.start_router("router-c", [self.edge.url])
        base = None
        if self.args.base_build:
            # A/B: the same ladder through an edge and a router of another
            # build (e.g. main), on a topic of their own, step by step.
            be = self.start_edge("edge-base", "bench-base", "bench-edge-base-" + self.nonce,
                                 bins=self.base_bin)
            base = self.start_router("router-base", [be.url], bins=self.base_bin)
            base.edge, base.topic = be, "bench-base"
            out["base_build"] = self.args.base_build
        for size, rates in P["ladder"].items():
            say("== c. throughput, %d B records: ladder %s records/s, %ds steps"
                % (size, rates, P["step_s"]))
            S = {"kfloor": [], "e2e": [], "wsfloor": None}
            out["sizes"][str(size)] = S
            # Interleaved: at each rate the floor's step and the system's step
            # run back to back, under the same machine conditions.
            if not self.args.drains_only:
                steps = [("kfloor", lambda r, a: self.step_kfloor(r, size, a)),
                         ("e2e", lambda r, a: self.step_e2e(router, r, size, a))]
                if base:
                    steps.append(("e2e-base", lambda r, a: self.step_e2e(
                        base, r, size, a, label="e2e-base")))
                if base and self.args.base_traced:
                    # main's binaries measured the way main's bench did: a
                    # 1 s perf trace of the router inside the judged step.
                    steps.append(("e2e-base-traced", lambda r, a: self.step_e2e(
                        base, r, size, a, label="e2e-base-traced", trace=True)))
                rows = self.ladders(steps, rates, alternate=len(steps) - 1 if base else 0)
                S["kfloor"], S["e2e"] = rows[0], rows[1]
                if base:
                    S["e2e_base"] = rows[2]
                if base and self.args.base_traced:
                    S["e2e_base_traced"] = rows[3]
                self.trace_step(router, S["e2e"], size)
            if not self.args.drains_only and not self.args.ladder_only:
                # The short saturation runs are noisy here: each (system and
                # floor alike) runs P["trials"] times and the best counts.
                S["wsfloor"] = best_of([self.step_wsfloor(size) for _ in range(P["trials"])])
                S["wsfloor_batch"] = best_of([self.step_wsfloor(size, batch=65536)
                                              for _ in range(P["trials"])])
            if not self.args.ladder_only:
                drains = [self.drain(size, i) for i in range(P["trials"])]
                S["drain"] = {"e2e": best_of([d["e2e"] for d in drains]),
                              "kfloor": best_of([d["kfloor"] for d in drains])}
                for leg in ("link", "ws"):
                    runs = [d[leg] for d in drains if d.get(leg)]
                    S["drain"][leg] = min(runs, key=lambda r: r["cpu_us_per_record"]) \
                        if runs else None
                S["drain"]["bound"] = floors_bound(S["drain"])
                b = S["drain"]["bound"]
                if b:
                    say("  bound of the floors: %.2fx (Kafka %.1f + link %.1f + WebSocket %.1f "
                        "us a record); this build %.2fx, %.0f%% of the bound"
                        % (b["ratio"], b["kafka_us"], b["link_us"], b["ws_us"], b["reached"],
                           100 * b["share"]))
        router.stop(signal.SIGINT)
        if router.alive():
            router.stop(signal.SIGINT)
        if base:
            base.stop(signal.SIGINT)
            base.edge.stop()

    def section_stages(self):
        """--stages: the 100 B ladder's steps at a few rates (kfloor, then the
        router path, at each rate), with every process writing stage
        timestamps; then the breakdown per step (tests/bench/stages.py)."""
        import stages
        P = self.P
        rates = [int(x) for x in self.args.stages_rates.split(",") if x]
        say("== stages: where the time goes at %s records/s of %d B (every %d-th offset sampled)"
            % (rates, self.args.stages_size, self.args.stages_every))
        router = self.start_router("router-s", [self.edge.url])
        out = {"rates": rates, "every": self.args.stages_every, "steps": []}
        self.res["stages"] = out
        e2e = []
        for rate in rates:
            size = self.args.stages_size
            kf = self.step_kfloor(rate, size, 0, perf=False)
            row = self.step_e2e(router, rate, size, 0, perf=False, trace=False)
            e2e.append({"rate": rate, "produce_pid": row["pids"]["produce"],
                        "loadgen_pid": row["pids"]["loadgen"]})
            st = {"rate": rate, "kfloor": strip_row(kf), "e2e": strip_row(row)}
            if self.args.stages_perf:
                # The same step with perf stat counting syscalls (as the
                # ladder's judged steps do), then with a 1 s perf trace of
                # the router as well (as they did before issue 13 item 2).
                for i, (key, trace) in enumerate((("e2e_stat", False), ("e2e_perf", True))):
                    pr = self.step_e2e(router, rate, size, 1 + i, label=key.replace("_", "-"),
                                       perf=True, trace=trace)
                    e2e.append({"rate": rate, "label": "with perf stat" + (
                        " and perf trace" if trace else ""), "produce_pid": pr["pids"]["produce"],
                        "loadgen_pid": pr["pids"]["loadgen"]})
                    st[key] = strip_row(pr)
            out["steps"].append(st)
        # The router and the edge write their files when they stop.
        router.stop(signal.SIGINT)
        self.edge.stop()
        json.dump(e2e, open(os.path.join(self.work, "stages", "steps.json"), "w"))
        out["breakdown"] = stages.analyze(self.stage_prefix, e2e)
        it = iter(out["breakdown"])
        for st in out["steps"]:
            st["breakdown"] = next(it)
            if "e2e_perf" in st:
                st["breakdown_stat"] = next(it)
                st["breakdown_perf"] = next(it)
        for st in out["steps"]:
            b = st["breakdown"]
            e, k = st["e2e"], st["kfloor"]
            ks = (e.get("kfloor_same") or {}).get("lat") or {}
            say("  %d/s: e2e p50/p99 %s/%s ms, kfloor on the same records %s/%s ms (own step "
                "%s/%s ms); producer %s of a core, %s; loadgen %s of a core" % (
                    st["rate"], e["lat"].get("p50"), e["lat"].get("p99"), ks.get("p50"),
                    ks.get("p99"), k["lat"].get("p50"),
                    k["lat"].get("p99"), share(e.get("producer_cpu_share")),
                    pacing_text(e.get("pacing")), share(e.get("loadgen_cpu_share"))))
            for name, iv in b["intervals"].items():
                say("      %-30s p50 %8s  p99 %8s  max %8s  slowest 1%%: %8s ms"
                    % (name, stages.fmt(iv["p50"]), stages.fmt(iv["p99"]), stages.fmt(iv["max"]),
                       stages.fmt(b["tail"][name])))
            for key, what in (("stat", "perf stat"), ("perf", "perf stat + perf trace")):
                if "e2e_" + key not in st:
                    continue
                ep, bp = st["e2e_" + key], st["breakdown_" + key]
                say("    same rate with %s on router and edge: e2e p50/p99 %s/%s ms"
                    % (what, ep["lat"].get("p50"), ep["lat"].get("p99")))
                for name, iv in bp["intervals"].items():
                    say("      %-30s p50 %8s  p99 %8s  max %8s" % (
                        name, stages.fmt(iv["p50"]), stages.fmt(iv["p99"]),
                        stages.fmt(iv["max"])))

    def trace_step(self, router, rows, size):
        """Syscalls per message (perf stat) and the time per syscall (`perf
        trace -s`, 1 s) at the highest sustained rate, from a step of its own
        whose latency is not judged: tracing costs the router tens of µs per
        syscall (inside a judged step it made the backlog, hundreds of ms at
        p99, that the ladder reported), and counting costs it too, where the
        floor it is judged against runs unobserved."""
        if not self.sc_tool or self.over_budget():
            return
        if self.args.syscalls_in_steps and (self.args.trace_in_steps or self.sc_tool != "perf"):
            return
        ok = [r for r in rows if r.get("ok")]
        if not ok:
            return
        best = max(ok, key=lambda r: r["rate"])
        say("  (syscalls counted and traced in a step of their own at %d/s: not judged)"
            % best["rate"])
        t = self.step_e2e(router, best["rate"], size, 9, label="e2e-measured", perf=True,
                          trace=self.sc_tool == "perf" and not self.args.trace_in_steps)
        if not self.args.syscalls_in_steps:
            for k in ("syscalls", "syscalls_per_msg", "window"):
                if t.get(k):
                    best[k] = t[k]
        if t.get("syscall_costs"):
            best["syscall_costs"] = t["syscall_costs"]
        best["syscall_costs_from"] = {"rate": t["rate"], "lat": t["lat"],
                                      "floor": (t.get("kfloor_same") or {}).get("lat")}

    def ladders(self, steps, rates, alternate=0):
        """Runs each (label, step) up the rates; a ladder stops at its first
        step that is not sustained (retried once in the full run). With
        alternate=k, the last k steps run in reverse order at every other
        rate (an A/B: neither build always comes first)."""
        rows = {label: [] for label, _ in steps}
        done = set()
        for i, rate in enumerate(rates):
            order = list(steps)
            if alternate > 1 and i % 2:
                order = order[:-alternate] + order[-alternate:][::-1]
            for label, step in order:
                if label in done:
                    continue
                if self.over_budget():
                    say("  (time budget reached: %s ladder stops)" % label)
                    done.add(label)
                    continue
                row = step(rate, 0)
                if not row["ok"] and self.P["retry"]:
                    say("  %s %d/s not sustained; once more (noise?)" % (label, rate))
                    row2 = step(rate, 1)
                    row2["retried"] = True
                    if row2["ok"] or row2["delivered_per_s"] > row["delivered_per_s"]:
                        row = row2
                rows[label].append(row)
                if not row["ok"]:
                    done.add(label)
            if len(done) == len(steps):
                break
        return [rows[label] for label, _ in steps]

    def step_common(self, row, size, rate):
        say("  %-7s %6d/s offered %7.0f/s delivered %7.0f/s  p50/p99/max %s/%s/%s ms  "
            "lost %d  %s%s"
            % (row["system"], rate, row["offered_per_s"], row["delivered_per_s"],
               row["lat"].get("p50"), row["lat"].get("p99"), row["lat"].get("max"),
               row["lost"], "ok" if row["ok"] else "NOT SUSTAINED (%s)" % row["why"],
               "".join("  %s %.1f cpu-s/M %.2f sc/msg" % (
                   k, row["cpu_s_per_M"].get(k, 0), row["syscalls_per_msg"].get(k) or 0)
                   for k in row["cpu_s_per_M"] if k in row["syscalls_per_msg"])))

    def judge(self, row, rate, expected):
        why = []
        if row["records"] < expected:
            why.append("%d of %d arrived" % (row["records"], expected))
        if (row["lat"].get("p99") or 0) > P99_LIMIT_MS:
            why.append("p99 %s ms" % row["lat"].get("p99"))
        # The system kept up with what it was offered (the producer may not
        # have reached the nominal rate: then the ladder ends, bounded below).
        row["system_ok"] = not why
        if row["offered_per_s"] < 0.9 * rate:
            why.append("producer reached only %.0f/s" % row["offered_per_s"])
            row["producer_bound"] = True
        row["ok"] = not why
        row["why"] = ", ".join(why)

    def pacing(self, pr):
        """The producer's own lag behind its schedule (produce.c's summary):
        {"late": records over 1 ms behind, "of": records, "max_ms", "restarts"}."""
        m = re.search(r"pacing: (\d+) of (\d+) records made over \d+ ms behind schedule, "
                      r"the latest ([\d.]+) ms behind, (\d+) restarts", pr.text())
        if not m:
            return None
        return {"late": int(m.group(1)), "of": int(m.group(2)), "max_ms": float(m.group(3)),
                "restarts": int(m.group(4))}

    def producer_rate(self, pr, fallback):
        m = re.search(r"(\d+) records delivered in ([\d.]+) s", pr.text())
        if m and float(m.group(2)) > 0:
            return int(m.group(1)) / float(m.group(2))
        return fallback

    def measure_syscalls(self, pids, at, window):
        """Starts syscall counters on pids at monotonic time `at` for `window`
        seconds, in a thread; returns (thread, results dict)."""
        res = {}

        def body():
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            cs = {k: SyscallCounter(self, pid, self.sc_tool) for k, pid in pids.items()}
            res["m0"] = self._window_metrics()
            for c in cs.values():
                c.start()
            res["t0"] = time.monotonic()
            time.sleep(window)
            for k, c in cs.items():
                res[k] = c.stop()
            res["t1"] = time.monotonic()
            res["m1"] = self._window_metrics()

        t = threading.Thread(target=body, daemon=True)
        t.start()
        return t, res

    def _window_metrics(self):
        hook = getattr(self, "_metrics_hook", None)
        return hook() if hook else {}

    def step_e2e(self, router, rate, size, attempt, label="e2e", perf=None, trace=None):
        """One live step through router. perf: count syscalls (perf stat or
        strace) over a window; trace: also a 1 s `perf trace -s` sample of
        the router. perf trace costs the router tens of µs per syscall, so
        the ladder's judged steps do not trace (see section_throughput)."""
        P = self.P
        if perf is None:
            perf = self.sc_tool is not None and self.args.syscalls_in_steps
        trace = self.args.trace_in_steps if trace is None else trace
        n = P["ladder_clients"]
        M = max(1, int(round(rate * P["step_s"] / n)))
        expected = M * n
        edge, topic = router.edge, router.topic
        tag = "%s-%d-%d-%d-%s" % (label, size, rate, attempt, self.nonce)
        rep = os.path.join(self.work, "lg-%s.json" % tag)
        # The like-for-like Kafka floor: a bare consumer in its own group
        # reading the same records at the same time (as section b's), so a
        # stall of the broker or the machine falls on both sides.
        kf = None
        if not self.args.no_same_floor:
            kf_rep = os.path.join(self.work, "kfs-%s.json" % tag)
            kf = self.kfloor("kfloor-same-" + tag, topic, "kfs-" + tag, tag,
                             ["--expect", expected, "--idle-s", 8, "--max-s", P["step_s"] + 90,
                              "--report", kf_rep])
        lg = self.loadgen("lg-" + tag, router.ws_url, n, 0,
                          ["--tag", tag, "--expect-per-client", M, "--until-idle-s", 8,
                           "--report", rep])
        lg.wait_for(r"clients connected in", 60)
        self.wait_sessions_live(router, n, 30)
        if kf:
            kf.wait_for(r"^ASSIGNED %d " % PARTITIONS, 60)
        time.sleep(0.5)
        kpids = self.kafka_pids()
        pids = {"router": router.pid, "edge": edge.pid}
        c0 = {k: cpu_s(p) for k, p in pids.items()}
        c0["broker"] = sum(cpu_s(p) for p in kpids)
        c0["loadgen"] = cpu_s(lg.pid)
        th0 = {"router": thread_cpu(router.pid), "edge": thread_cpu(edge.pid)}
        self._metrics_hook = lambda: {"router": metrics(router.admin),
                                      "edge": metrics(edge.admin)}
        mr0 = metrics(router.admin)
        t0 = time.monotonic()
        pr = self.produce("produce-" + tag, topic, rate, size, tag, n, count=M)
        window = min(3.0, P["step_s"] * 0.4)
        sth, sres = self.measure_syscalls(pids if perf else {}, t0 + P["step_s"] * 0.3, window)
        costs = {}

        def trace_body():
            time.sleep(max(0, t0 + P["step_s"] * 0.3 + window + 0.3 - time.monotonic()))
            if time.monotonic() < t0 + P["step_s"] - 1.2:
                costs["router"] = syscall_costs(router.pid, 1)
        tth = threading.Thread(target=trace_body, daemon=True)
        if self.sc_tool == "perf" and trace:
            tth.start()
        pr_cpu = 0.0
        while pr.alive() and time.monotonic() < t0 + P["step_s"] + 60:
            pr_cpu = cpu_s(pr.pid)
            time.sleep(0.1)
        t_pr = time.monotonic()
        if pr.alive():
            pr.stop(signal.SIGTERM, 40)
        if tth.is_alive() or tth.ident:
            tth.join(30)
        deadline = t0 + P["step_s"] + 30
        lg_cpu = c0["loadgen"]
        while lg.alive() and time.monotonic() < deadline:  # its CPU, sampled until it exits
            lg_cpu = cpu_s(lg.pid) or lg_cpu
            time.sleep(0.1)
        if not lg.wait(max(1, deadline - time.monotonic())):
            lg.stop(signal.SIGTERM, 20)
        lg.wait(20)
        sth.join(30)
        c1 = {k: cpu_s(p) for k, p in pids.items()}
        c1["broker"] = sum(cpu_s(p) for p in kpids)
        c1["loadgen"] = lg_cpu
        th1 = {"router": thread_cpu(router.pid), "edge": thread_cpu(edge.pid)}
        self._metrics_hook = None
        mr1 = metrics(router.admin)
        r = json.load(open(rep))
        t_last = lg.t_start + (r["connect_ms"] + r["run_ms"]) / 1000.0
        recs = r["records"]
        row = {"system": label, "rate": rate, "size": size, "attempt": attempt,
               "expected": expected, "records": recs, "lost": r["lost"],
               "lat": r["latency_ms"], "offered_per_s": self.producer_rate(pr, rate),
               "delivered_per_s": recs / max(0.001, t_last - t0), "load": loadavg()}
        cpu = {k: c1[k] - c0[k] for k in ("router", "edge", "broker")}
        cpu["producer"] = pr_cpu
        row["cpu_s"] = cpu
        row["cpu_s_per_M"] = {k: v / max(1, recs) * 1e6 for k, v in cpu.items()}
        # Where the latency goes: the router's own histogram of record
        # timestamp -> WebSocket write, against loadgen's timestamp -> receipt
        # (and kfloor's timestamp -> consumer receipt at the same rate); and
        # whether loadgen (one thread) kept up: its share of a core.
        hq = hist_quantiles(mr0, mr1, "kws_router_delivery_delay_seconds")
        row["router_write_ms"] = {k: (v * 1000 if k != "count" else v) for k, v in hq.items()}
        lg_s = c1["loadgen"] - c0["loadgen"]
        if r.get("run_cpu_s"):  # loadgen's own count (getrusage) since all connected
            lg_s = r["run_cpu_s"]
        row["loadgen_cpu_share"] = lg_s / max(0.001, t_last - t0) if lg_s > 0 else None
        # Is the load generator itself saturated? The producer's share of a
        # core and its lag behind its own schedule.
        row["producer_cpu_share"] = pr_cpu / max(0.001, t_pr - t0) if pr_cpu else None
        row["pacing"] = self.pacing(pr)
        row["pids"] = {"produce": pr.pid, "loadgen": lg.pid}
        row["t0_wall"] = time.time() - (time.monotonic() - t0)
        row["threads"] = {k: {t: th1[k].get(t, 0) - th0[k].get(t, 0) for t in th1[k]}
                          for k in th1}
        row["syscalls"], row["syscalls_per_msg"] = {}, {}
        row["syscall_costs"] = costs.get("router")
        row["perf"] = {"stat": bool(perf and self.sc_tool), "trace": bool(costs.get("router"))}
        if "m0" in sres and "m1" in sres:
            dm = msum(sres["m1"]["router"], "kws_router_messages_total", direction="to_client") - \
                msum(sres["m0"]["router"], "kws_router_messages_total", direction="to_client")
            dl = msum(sres["m1"]["router"], "kws_router_link_messages_total") - \
                msum(sres["m0"]["router"], "kws_router_link_messages_total")
            de = msum(sres["m1"]["edge"], "kws_edge_records_total") - \
                msum(sres["m0"]["edge"], "kws_edge_records_total")
            if not dm:  # metrics unavailable: the offered rate over the window
                dm = de = rate * (sres["t1"] - sres["t0"])
            row["window"] = {"messages": dm, "nng_messages": dl, "edge_records": de,
                             "seconds": sres["t1"] - sres["t0"]}
            for k, per in (("router", dm), ("edge", de or dm)):
                if sres.get(k):
                    row["syscalls"][k] = sres[k]
                    row["syscalls_per_msg"][k] = sres[k]["total"] / max(1, per)
        if kf:
            if not kf.wait(max(1, t0 + P["step_s"] + 30 - time.monotonic())):
                kf.stop(signal.SIGTERM, 20)
            try:
                kr = json.load(open(kf_rep))
                row["kfloor_same"] = {"lat": kr.get("latency_ms") or {},
                                      "lat_us": kr.get("latency_us"), "records": kr.get("tagged")}
            except (OSError, ValueError):
                row["kfloor_same"] = None
        self.judge(row, rate, expected)
        self.step_common(row, size, rate)
        if row.get("kfloor_same"):
            L = row["kfloor_same"]["lat"]
            say("          same records at a bare consumer (kfloor, own group, same time): "
                "p50/p99/max %s/%s/%s ms" % (L.get("p50"), L.get("p99"), L.get("max")))
        return row

    def step_kfloor(self, rate, size, attempt, perf=True):
        P = self.P
        n = P["ladder_clients"]
        M = max(1, int(round(rate * P["step_s"] / n)))
        expected = M * n
        tag = "kf-%d-%d-%d-%s" % (size, rate, attempt, self.nonce)
        rep = os.path.join(self.work, "kf-%s.json" % tag)
        kf = self.kfloor("kfloor-" + tag, "bench-kf", "kf-" + tag, tag,
                         ["--expect", expected, "--idle-s", 8, "--max-s", P["step_s"] + 90,
                          "--report", rep])
        kf.wait_for(r"^ASSIGNED %d " % PARTITIONS, 60)
        kpids = self.kafka_pids()
        c0 = {"kfloor": cpu_s(kf.pid), "broker": sum(cpu_s(p) for p in kpids)}
        t0 = time.monotonic()
        pr = self.produce("produce-" + tag, "bench-kf", rate, size, tag, n, count=M)
        window = min(3.0, P["step_s"] * 0.4)
        sth, sres = self.measure_syscalls({"kfloor": kf.pid} if perf else {},
                                          t0 + P["step_s"] * 0.3, window)
        pr_cpu = 0.0
        while pr.alive() and time.monotonic() < t0 + P["step_s"] + 60:
            pr_cpu = cpu_s(pr.pid)
            time.sleep(0.1)
        if pr.alive():
            pr.stop(signal.SIGTERM, 40)
        sth.join(30)
        c1 = {"kfloor": cpu_s(kf.pid), "broker": sum(cpu_s(p) for p in kpids)}
        if not kf.wait(max(1, t0 + P["step_s"] + 30 - time.monotonic())):
            kf.stop(signal.SIGTERM, 20)
        r = json.load(open(rep))
        recs = r["tagged"]
        last = r["last_mono_ms"] / 1000.0 if recs else time.monotonic()
        row = {"system": "kfloor", "rate": rate, "size": size, "attempt": attempt,
               "expected": expected, "records": recs, "lost": max(0, expected - recs),
               "lat": r.get("latency_ms") or {}, "offered_per_s": self.producer_rate(pr, rate),
               "delivered_per_s": recs / max(0.001, last - t0), "load": loadavg()}
        cpu = {k: c1[k] - c0[k] for k in c0}
        cpu["producer"] = pr_cpu
        row["cpu_s"] = cpu
        row["cpu_s_per_M"] = {k: v / max(1, recs) * 1e6 for k, v in cpu.items()}
        row["syscalls"], row["syscalls_per_msg"] = {}, {}
        if sres.get("kfloor"):
            row["syscalls"]["kfloor"] = sres["kfloor"]
            row["syscalls_per_msg"]["kfloor"] = sres["kfloor"]["total"] / max(
                1, rate * (sres["t1"] - sres["t0"]))
        self.judge(row, rate, expected)
        self.step_common(row, size, rate)
        return row

    def step_wsfloor(self, size, batch=0):
        """The WebSocket floor's throughput: wsfloor makes records as fast as
        the same loadgen takes them (--rate 0), same clients and sizes. With
        batch, it frames queued messages into one send, as the router does."""
        P = self.P
        n = P["ladder_clients"]
        M = P["wsfloor_count"].get(size, max(1, 100000 // size))
        tag = "wf%s-%d-%s" % ("b" if batch else "", size, self.nonce)
        wrep = os.path.join(self.work, "wf-%s.json" % tag)
        rep = os.path.join(self.work, "lg-%s.json" % tag)
        wf = self.start_wsfloor("wsfloor-" + tag,
                                ["--rate", 0, "--size", size, "--tag", tag, "--count", M,
                                 "--start-sessions", n, "--start-delay-ms", 1500,
                                 "--batch-bytes", batch, "--report", wrep])
        lg = self.loadgen("lg-" + tag, wf.ws_url, n, 0,
                          ["--tag", tag, "--expect-per-client", M, "--until-idle-s", 8,
                           "--report", rep])
        m = wf.wait_for(r"^START (\d+)", 90)
        t_start = int(m) / 1000.0
        sc = SyscallCounter(self, wf.pid, self.sc_tool)
        sc.start()
        c0 = cpu_s(wf.pid)
        l0 = cpu_s(lg.pid)
        try:
            wf.wait_for(r"^DONE", 120)
        except RuntimeError as e:
            say("  wsfloor: %s" % e)
        scr = sc.stop()
        c1 = cpu_s(wf.pid)
        l1 = cpu_s(lg.pid)
        if not lg.wait(60):
            lg.stop(signal.SIGTERM, 20)
        wf.stop()
        r = json.load(open(rep))
        w = json.load(open(wrep))
        t_last = lg.t_start + (r["connect_ms"] + r["run_ms"]) / 1000.0
        recs = r["records"]
        gen = w["generated"]
        row = {"system": "wsfloor" + (" batched" if batch else ""), "batch_bytes": batch,
               "size": size, "expected": n * M, "records": recs, "sends": w.get("sends"),
               "lost": r["lost"], "lat": r["latency_ms"], "offered_per_s": None,
               "delivered_per_s": recs / max(0.001, t_last - t_start), "load": loadavg(),
               "cpu_s": {"wsfloor": c1 - c0, "loadgen": l1 - l0},
               "generation_s": (w["done_mono_ms"] - w["start_mono_ms"]) / 1000.0}
        row["cpu_s_per_M"] = {k: v / max(1, gen) * 1e6 for k, v in row["cpu_s"].items()}
        row["syscalls"] = {"wsfloor": scr} if scr else {}
        row["syscalls_per_msg"] = {"wsfloor": scr["total"] / max(1, gen)} if scr else {}
        row["ok"] = recs == n * M
        say("  %s as fast as possible: %d records in %.2f s = %.0f/s delivered, "
            "p99 %s ms, wsfloor %.1f cpu-s/M, %.2f syscalls/msg, loadgen %.1f cpu-s/M"
            % (row["system"], recs, t_last - t_start, row["delivered_per_s"], r["latency_ms"].get("p99"),
               row["cpu_s_per_M"]["wsfloor"], row["syscalls_per_msg"].get("wsfloor") or 0,
               row["cpu_s_per_M"]["loadgen"]))
        return row

    def warm_up(self, router, edge, topic, size, n, per, wtag):
        """Before the measured drain, the same backlog once more (another
        tag: loadgen and kfloor skip its records), queued while the edge is
        stopped and then delivered. So the drain measured is the second of
        an edge and a router, which meets them in their steady state: the
        edge's replay tail full (it then reuses the memory of the records it
        pushes out), librdkafka's queue, the link's and the sessions' queues
        and both heaps grown. A first drain of fresh processes faults that
        memory in: about 130 MiB in the edge during a 4 KiB drain (its 64
        MiB tail and librdkafka's 64 MiB queue; nearly one page fault per
        4 KiB record, a third of its CPU) and 40-80 MiB in the router, a
        cost a process pays once in its life. --cold-drain measures that
        first drain. Returns the records sent (0 with --cold-drain)."""
        if self.args.cold_drain:
            return 0
        m0 = msum(metrics(router.admin), "kws_router_messages_total", direction="to_client")
        os.kill(edge.pid, signal.SIGSTOP)
        try:
            self.produce_backlog("produce-" + wtag, topic, size, wtag, n, count=per)
        finally:
            os.kill(edge.pid, signal.SIGCONT)
        deadline = time.monotonic() + 120
        got = 0
        while time.monotonic() < deadline:
            got = msum(metrics(router.admin), "kws_router_messages_total",
                       direction="to_client") - m0
            if got >= per * n:
                break
            time.sleep(0.1)
        say("  warm-up: the same backlog drained once before (%d records), %d delivered"
            % (per * n, got))
        return per * n

    def drain(self, size, trial=0):
        """Saturates the consumer side: a backlog of records for 1000 live
        sessions is written while the edge is stopped (SIGSTOP), then the
        edge resumes (SIGCONT) and everything flows at the pace of the
        slowest of edge, router and loadgen. Then kfloor reads the same
        backlog from the start: the Kafka floor of draining it."""
        P = self.P
        n = P["ladder_clients"]
        M = P["drain_count"].get(size, max(1, 50000 // size))
        N = n * M
        topic = "bench-drain-%d-%d" % (size, trial)
        tag = "drain-%d-%d-%s" % (size, trial, self.nonce)
        say("  drain: %d records of %d B queued in Kafka while the edge is stopped, then "
            "delivered to %d clients as fast as possible" % (N, size, n))
        # A longer session timeout: the edge stays in its group while stopped.
        edge = self.start_edge("edge-drain-%d-%d" % (size, trial), topic, "bench-drain-%s" % tag,
                               props=["session.timeout.ms=120000",
                                      "max.poll.interval.ms=300000",
                                      "heartbeat.interval.ms=3000"])
        router = self.start_router("router-drain-%d-%d" % (size, trial), [edge.url])
        rep = os.path.join(self.work, "lg-%s.json" % tag)
        lg = self.loadgen("lg-" + tag, router.ws_url, n, 0,
                          ["--tag", tag, "--expect-per-client", M, "--until-idle-s", 90,
                           "--report", rep])
        lg.wait_for(r"clients connected in", 60)
        self.wait_sessions_live(router, n, 30)
        warm = self.warm_up(router, edge, topic, size, n, M,
                            "warm-%d-%d-%s" % (size, trial, self.nonce))
        time.sleep(0.5)
        os.kill(edge.pid, signal.SIGSTOP)
        try:
            pr = self.produce_backlog("produce-" + tag, topic, size, tag, n, count=M)
            produced = self.producer_rate(pr, 0)
            kpids = self.kafka_pids()
            pids = {"router": router.pid, "edge": edge.pid}
            sc = {k: SyscallCounter(self, p, self.sc_tool) for k, p in pids.items()}
            for c in sc.values():
                c.start()
            prof = []
            if self.args.perf_drain:  # diagnostic: call graphs of the drain window
                os.makedirs(self.args.perf_drain, exist_ok=True)
                for k, p in pids.items():
                    out = os.path.join(self.args.perf_drain, "%s-%s.data" % (k, tag))
                    prof.append(subprocess.Popen(
                        ["perf", "record", "-q", "-F", "4999", "-o", out, "-p", str(p)]
                        + (["--call-graph", "dwarf,8192"] if os.environ.get("KWS_PERF_DWARF")
                           else ["-g"]),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            c0 = {k: cpu_s(p) for k, p in pids.items()}
            c0["broker"] = sum(cpu_s(p) for p in kpids)
            c0["loadgen"] = cpu_s(lg.pid)
            th0 = {k: thread_cpu(p) for k, p in pids.items()}
            f0 = {k: minflt(p) for k, p in pids.items()}
            rss0 = {k: rss_kb(p) for k, p in pids.items()}
            m0 = metrics(router.admin)
            t0 = time.monotonic()
        finally:
            os.kill(edge.pid, signal.SIGCONT)
        # loadgen ends when every client has its records. The CPU of the
        # drain is read while loadgen still runs (every 20 ms): when it
        # exits, the router closes its 1,000 sessions, which is not the
        # drain's work (in a perf profile of the 4 KiB drain those closes
        # were 15% of the router's CPU: lws's _DEBUG scan of its fd table).
        def sample():
            c = {k: cpu_s(p) for k, p in pids.items()}
            c["broker"] = sum(cpu_s(p) for p in kpids)
            c["loadgen"] = cpu_s(lg.pid)
            return c
        c_last = None
        while lg.alive() and time.monotonic() < t0 + 90:
            c = sample()
            if lg.alive():  # else the sample may be after the closes
                c_last = c
            time.sleep(0.02)
        t_seen = time.monotonic()
        m1 = metrics(router.admin)
        c1 = c_last or sample()
        th1 = {k: thread_cpu(p) for k, p in pids.items()}
        f1 = {k: minflt(p) for k, p in pids.items()}
        rss1 = {k: rss_kb(p) for k, p in pids.items()}
        for pp in prof:
            pp.send_signal(signal.SIGINT)
            pp.wait(30)
        scr = {k: c.stop() for k, c in sc.items()}
        if not lg.wait(30):
            lg.stop(signal.SIGTERM, 20)
        r = json.load(open(rep))
        t_last = lg.t_start + (r["connect_ms"] + r["run_ms"]) / 1000.0
        span = max(0.001, t_last - t0)
        recs = r["records"]
        row = {"system": "e2e-drain", "size": size, "expected": N, "records": recs,
               "lost": r["lost"], "lat": r["latency_ms"], "delivered_per_s": recs / span,
               "seconds": span, "producer_per_s": produced, "load": loadavg(),
               "warm_up_records": warm}
        cpu = {k: c1[k] - c0[k] for k in c0}
        row["cpu_s"] = cpu
        row["cpu_s_per_M"] = {k: v / max(1, recs) * 1e6 for k, v in cpu.items()}
        # Busy share of one core over the drain (loadgen stops at the last record).
        row["cpu_util"] = {k: v / span for k, v in cpu.items()}
        row["threads"] = {k: {t: th1[k].get(t, 0) - th0[k].get(t, 0) for t in th1[k]}
                          for k in th1}
        # Pages faulted in (fresh memory, zeroed by the kernel) per record.
        row["faults_per_record"] = {k: (f1[k] - f0[k]) / max(1, recs) for k in f0}
        row["rss_growth_mib"] = {k: (rss1[k] - rss0[k]) / 1024.0 for k in rss0}
        say("  RSS growth over the drain (MiB): %s" % row["rss_growth_mib"])
        dl = msum(m1, "kws_router_link_messages_total") - msum(m0, "kws_router_link_messages_total")
        row["window"] = {"messages": recs, "nng_messages": dl, "seconds": span}
        row["syscalls"] = {k: v for k, v in scr.items() if v}
        row["syscalls_per_msg"] = {k: v["total"] / max(1, recs) for k, v in scr.items() if v}
        row["ok"] = recs == N
        busiest = max(row["cpu_util"].items(), key=lambda kv: kv[1])
        row["bottleneck"] = busiest[0]
        say("  e2e drain: %d of %d records in %.2f s = %.0f/s; CPU busy: %s; router %.1f "
            "cpu-s/M %.2f syscalls/msg %.2f faults/msg, edge %.1f cpu-s/M %.2f syscalls/msg "
            "%.2f faults/msg"
            % (recs, N, span, row["delivered_per_s"],
               ", ".join("%s %.0f%%" % (k, 100 * v) for k, v in row["cpu_util"].items()),
               row["cpu_s_per_M"]["router"], row["syscalls_per_msg"].get("router") or 0,
               row["faults_per_record"]["router"],
               row["cpu_s_per_M"]["edge"], row["syscalls_per_msg"].get("edge") or 0,
               row["faults_per_record"]["edge"]))
        router.stop(signal.SIGINT)
        if router.alive():
            router.stop(signal.SIGINT)
        edge.stop()

        # The Kafka floor. Cold: the same backlog, read from the start. Warm:
        # as the edge, on its own topic: the warm-up backlog read first, then
        # the process stopped while the measured backlog is written, and
        # timed from SIGCONT. Its whole life is under the syscall counter
        # (start-up included: a few thousand).
        krep = os.path.join(self.work, "kf-%s.json" % tag)
        ksc = SyscallCounter(self, 0, self.sc_tool)
        ktopic = topic + "-kf" if warm else topic
        args = [self.bin["kfloor"], "--bootstrap", self.kafka.bootstrap, "--topic", ktopic,
                "--group", "kf-" + tag, "--tag", tag, "--from", "earliest", "--expect", N,
                "--idle-s", 10, "--max-s", 120, "--report", krep]
        if warm:
            args += ["--note-other", warm]
        for kv in FAST_GROUP:
            args += ["--kafka-prop", kv]
        kf = Proc(self, "kfloor-" + tag, ksc.wrap([str(a) for a in args]))
        t_cont = None
        kb0 = sum(cpu_s(p) for p in self.kafka_pids())
        if warm:
            kf.wait_for(r"^ASSIGNED %d " % PARTITIONS, 60)
            wtag = "warm-kf-%d-%d-%s" % (size, trial, self.nonce)
            self.produce_backlog("produce-" + wtag, ktopic, size, wtag, n, count=M)
            kf.wait_for(r"^OTHER %d " % warm, 120)
            kpid = self.wrapped_pid(kf.pid, "kfloor")
            os.kill(kpid, signal.SIGSTOP)
            try:
                self.produce_backlog("produce-kf-" + tag, ktopic, size, tag, n, count=M)
                kb0 = sum(cpu_s(p) for p in self.kafka_pids())
                t_cont = time.monotonic()
            finally:
                os.kill(kpid, signal.SIGCONT)
        if not kf.wait(150):
            kf.stop(signal.SIGTERM, 20)
        kbroker = sum(cpu_s(p) for p in self.kafka_pids()) - kb0
        kscr = ksc.parse()
        kr = json.load(open(krep))
        m = re.search(r"^ASSIGNED %d (\d+)" % PARTITIONS, kf.text(), re.M)
        t_assigned = int(m.group(1)) / 1000.0 if m else kr["first_mono_ms"] / 1000.0
        if t_cont is not None:
            t_assigned = t_cont
        kspan = max(0.001, kr["last_mono_ms"] / 1000.0 - t_assigned)
        kcpu = kr["utime_s"] + kr["stime_s"]
        krow = {"system": "kfloor-drain", "size": size, "expected": N, "records": kr["tagged"],
                "delivered_per_s": kr["tagged"] / kspan, "seconds": kspan,
                "warm_up_records": kr.get("other", 0),
                "cpu_s": {"kfloor": kcpu},
                # (its CPU is its whole life's: per record read, warm-up included)
                "cpu_s_per_M": {"kfloor": kcpu / max(1, kr["tagged"] + kr.get("other", 0)) * 1e6,
                                "broker": kbroker / max(1, kr["tagged"]) * 1e6},
                "cpu_util": {"kfloor": min(kcpu, kspan * 2) / kspan},
                "syscalls": {"kfloor": kscr} if kscr else {},
                "syscalls_per_msg": {"kfloor": kscr["total"] / max(1, kr["tagged"] + kr.get("other", 0))}
                if kscr else {}, "ok": kr["tagged"] == N}
        say("  kfloor drain: %d of %d records in %.2f s = %.0f/s, %.1f cpu-s/M (broker %.1f), "
            "%.2f syscalls/msg"
            % (kr["tagged"], N, kspan, krow["delivered_per_s"], krow["cpu_s_per_M"]["kfloor"],
               krow["cpu_s_per_M"]["broker"], krow["syscalls_per_msg"].get("kfloor") or 0))
        # What the machine's cores allow: CPU of every process per record,
        # pipeline (router, edge, broker, loadgen) against floor (kfloor,
        # broker). On cores that are all busy the rates follow these sums.
        e_us, k_us = sum(row["cpu_s_per_M"].values()), sum(krow["cpu_s_per_M"].values())
        row["cpu_us_per_record_all"], krow["cpu_us_per_record_all"] = e_us, k_us
        say("  CPU per record, all processes: pipeline %.1f us, floor %.1f us (%.2fx); "
            "rates %.2fx" % (e_us, k_us, k_us / max(0.001, e_us),
                             row["delivered_per_s"] / max(1, krow["delivered_per_s"])))
        return {"e2e": row, "kfloor": krow,
                "link": self.kernel_floor(size, N, 1, 256 * 1024, "link"),
                "ws": self.kernel_floor(size, N, n, 64 * 1024, "WebSocket leg")}

    def kernel_floor(self, size, n, conns, write_bytes, what):
        """What the kernel costs to carry n records of size bytes over
        conns loopback TCP connections, write_bytes a send (linkfloor): the
        link's floor with one connection and the edge's 256 KiB writes, the
        WebSocket leg's with a connection a client and the router's 64 KiB
        batches. The least CPU of three runs (README, "The floors of a
        drain")."""
        runs = []
        for _ in range(3):
            out = subprocess.run([self.bin["linkfloor"], "--size", str(size), "--count", str(n),
                                  "--conns", str(conns), "--write-bytes", str(write_bytes)],
                                 capture_output=True, text=True, timeout=120)
            if out.returncode == 0:
                runs.append(json.loads(out.stdout))
            else:
                say("  linkfloor: %s" % out.stderr.strip())
        if not runs:
            return None
        best = dict(min(runs, key=lambda r: r["cpu_us_per_record"]))
        best["trials_us"] = [round(r["cpu_us_per_record"], 2) for r in runs]
        say("  %s floor: %d records of %d B through %d TCP connection(s), %d KiB a send, "
            "%.2f us of CPU a record (runs %s)" % (what, n, size, conns, write_bytes // 1024,
                                                   best["cpu_us_per_record"], best["trials_us"]))
        return best

    # d. an edge joins
    def section_join(self):
        """The join, repeated (join_trials; each with its own floor): whether
        an unmoved partition pauses is a race in librdkafka (README, "d"),
        so one trial can be lucky. The report shows the worst trial (the
        largest excess of unmoved clients over their control window) and
        every trial's figures."""
        trials = []
        for i in range(self.P["join_trials"]):
            out = self.join_trial(i)
            u, fu = out["router"]["unmoved"], out["floor"]["unmoved"]
            out["excess_ms"] = (u["join_max_ms"] or 0) - (u["control_max_ms"] or 0)
            out["floor_excess_ms"] = (fu["join_max_ms"] or 0) - (fu["control_max_ms"] or 0)
            out["load"] = os.getloadavg()[0]
            trials.append(out)
        worst = dict(max(trials, key=lambda t: t["excess_ms"]))
        worst["trials"] = [{"excess_ms": t["excess_ms"], "floor_excess_ms": t["floor_excess_ms"],
                            "unmoved_control_ms": t["router"]["unmoved"]["control_max_ms"],
                            "unmoved_join_ms": t["router"]["unmoved"]["join_max_ms"],
                            "floor_unmoved_control_ms": t["floor"]["unmoved"]["control_max_ms"],
                            "floor_unmoved_join_ms": t["floor"]["unmoved"]["join_max_ms"],
                            "witness": t["witness"], "load": round(t["load"], 2)}
                           for t in trials]
        self.res["join"] = worst

    def join_trial(self, trial):
        P = self.P
        W = P["join_window_s"]
        n, rate = P["join_clients"], P["join_rate"]
        say("== d. an edge joins (trial %d of %d): %d clients, %d records/s, %ds control + %ds "
            "after the join" % (trial + 1, P["join_trials"], n, rate, W, W))
        out = {"clients": n, "rate": rate, "window_s": W}
        nonce = "%s-%d" % (self.nonce, trial)
        group = "bench-join-" + nonce
        e1 = self.start_edge("edge-j1-" + nonce, "bench-join", group)
        e2_port = free_port()
        router = self.start_router("router-d-" + nonce, [e1.url, "tcp://127.0.0.1:%d" % e2_port])
        tag = "join-" + nonce
        # A witness: a bare consumer (own group, never rebalanced) of the same
        # records: tells a stall of the broker or the machine from one of
        # the edges and the router.
        wrep = os.path.join(self.work, "kf-witness-%s.json" % tag)
        wit = self.kfloor("kfloor-witness-" + nonce, "bench-join", "witness-" + nonce, tag,
                          ["--gap-ms", 20, "--idle-s", 30, "--max-s", 3 * W + 120,
                           "--report", wrep])
        wit.wait_for(r"^ASSIGNED %d " % PARTITIONS, 60)
        pr = self.produce("produce-join-" + nonce, "bench-join", rate, 100, tag, n, forever=True)
        rep = os.path.join(self.work, "pb-%s.json" % tag)
        pb = Proc(self, "wsprobe-join-" + nonce, [self.bin["wsprobe"], "--url", router.ws_url,
                                         "--clients", n, "--tag", tag, "--gap-ms", 20,
                                         "--duration-s", 2 * W + 6, "--report", rep])
        pb.wait_for(r"^LIVE", 60)
        time.sleep(3.0)
        t_control = time.monotonic()
        # Counters of edge-1 and the router every 100 ms (their admin
        # endpoints answer on their loops: a slow answer is a busy loop).
        series, stop_sampling = [], threading.Event()

        def sample():
            while not stop_sampling.is_set():
                t = time.monotonic()
                em = metrics(e1.admin)
                t_e = time.monotonic()
                rm = metrics(router.admin)
                t_r = time.monotonic()
                series.append({"t": t - t_control,
                               "edge1_records": msum(em, "kws_edge_records_total"),
                               "edge1_deliveries": msum(em, "kws_edge_deliveries_total"),
                               "router_messages": msum(rm, "kws_router_messages_total",
                                                       direction="to_client"),
                               "edge1_answer_ms": 1000 * (t_e - t),
                               "router_answer_ms": 1000 * (t_r - t_e)})
                stop_sampling.wait(max(0.0, 0.1 - (time.monotonic() - t)))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        time.sleep(W)
        log_mark = len(router.text())
        t_join = time.monotonic()
        say("  starting a second edge")
        e2 = self.start_edge("edge-j2-" + nonce, "bench-join", group, port=e2_port)
        try:
            e2.wait_for(r"assignment epoch \d+: [1-9]\d* of", 30)
        except RuntimeError as e:
            say("  warning: %s" % e)
        if not pb.wait(2 * W + 60):
            pb.stop(signal.SIGTERM, 20)
        t_end = time.monotonic()
        stop_sampling.set()
        sampler.join(10)
        wit.stop(signal.SIGTERM, 20)
        moves = re.findall(r"partition (\d+): owner (\S+) -> (\S+)", router.text()[log_mark:])
        pr.stop(signal.SIGTERM, 40)
        r = json.load(open(rep))
        moved = sorted({int(p) for p, _, _ in moves})
        out["moves"] = moves
        out["moved_partitions"] = moved
        out["router"] = self.join_stats(r["per_client"], moved, t_control, t_join, t_end, W)
        out["times"] = {"control": t_control, "join": t_join, "end": t_end}
        out["timeline"] = join_timeline(r["per_client"], moved, t_control, t_end)
        out["counters"] = series
        out["stalls"] = counter_stalls(series, t_join - t_control, t_end - t_control)
        try:
            wr = json.load(open(wrep))
            tc, tj, te = t_control * 1000, t_join * 1000, t_end * 1000
            gaps = [g for p in wr.get("partitions", []) for g in p["gaps"]]
            out["witness"] = {
                "control_max_ms": max([ms_ for ms_, end in gaps if tc <= end < tj] or [0]),
                "join_max_ms": max([ms_ for ms_, end in gaps if tj <= end <= te] or [0])}
        except (OSError, ValueError):
            out["witness"] = None
        say("  router: partitions moved %s; %s" % (moved, fmt_join(out["router"])))
        say("  witness (bare consumer, own group): longest partition gap %s ms after the join "
            "(control %s ms); edge-1 consumed nothing for %s ms, the router delivered nothing "
            "for %s ms, slowest admin answer edge-1 %s ms, router %s ms"
            % ((out["witness"] or {}).get("join_max_ms"),
               (out["witness"] or {}).get("control_max_ms"),
               out["stalls"].get("edge1_records"), out["stalls"].get("router_messages"),
               out["stalls"].get("edge1_answer_ms"), out["stalls"].get("router_answer_ms")))
        router.stop(signal.SIGINT)
        if router.alive():
            router.stop(signal.SIGINT)
        e2.stop()
        e1.stop()
        out["floor"] = self.join_floor(W, n, rate, nonce)
        return out

    def join_stats(self, clients, moved, t_control, t_join, t_end, W):
        """Per group (moved/unmoved): longest gap of each client in the
        control window [t_control, t_join) and in [t_join, t_join+W]."""
        tc, tj, te = t_control * 1000, t_join * 1000, min(t_end, t_join + W) * 1000
        res = {}
        for grp in ("moved", "unmoved"):
            cl = [c for c in clients if (c["partition"] in moved) == (grp == "moved")
                  and c["partition"] >= 0]
            ctl, join = [], []
            for c in cl:
                g = c["gaps"]
                ctl.append(max([ms for ms, end in g if tc <= end < tj] or [0]))
                # A gap that ends after the join but started before it counts too.
                join.append(max([ms for ms, end in g if tj <= end <= te + 60000] or [0]))
            ctl.sort()
            join.sort()
            res[grp] = {"clients": len(cl), "control_max_ms": ctl[-1] if ctl else None,
                        "control_p50_ms": pct(ctl, 0.5), "join_max_ms": join[-1] if join else None,
                        "join_p50_ms": pct(join, 0.5),
                        "join_gaps_ms": join}
        return res

    def join_floor(self, W, n, rate, nonce):
        """The Kafka floor of the join: kfloor in a group, a second kfloor joins."""
        say("  floor: a kfloor consumer, then a second one joins its group")
        group = "kf-join-" + nonce
        tag = "joinf-" + nonce
        reps = [os.path.join(self.work, "kf-join-%s-%d.json" % (nonce, i)) for i in (1, 2)]
        k1 = self.kfloor("kfloor-join-1-" + nonce, "bench-join", group, tag,
                         ["--gap-ms", 20, "--idle-s", 30, "--max-s", 3 * W + 120,
                          "--report", reps[0]])
        k1.wait_for(r"^ASSIGNED %d " % PARTITIONS, 60)
        pr = self.produce("produce-joinf-" + nonce, "bench-join", rate, 100, tag, n, forever=True)
        time.sleep(3.0)
        k1.send(signal.SIGUSR1)
        t_control = time.monotonic()
        time.sleep(W)
        t_join = time.monotonic()
        k2 = self.kfloor("kfloor-join-2-" + nonce, "bench-join", group, tag,
                         ["--gap-ms", 20, "--idle-s", 30, "--max-s", 2 * W + 120,
                          "--report", reps[1]])
        try:
            k2.wait_for(r"^ASSIGNED [1-9]", 30)
        except RuntimeError as e:
            say("  warning: %s" % e)
        time.sleep(W)
        t_end = time.monotonic()
        k2.stop(signal.SIGTERM, 20)
        k1.stop(signal.SIGTERM, 20)
        pr.stop(signal.SIGTERM, 40)
        r1, r2 = json.load(open(reps[0])), json.load(open(reps[1]))
        revoked = set()
        for when, m in re.findall(r"^REVOKED \d+ (\d+) ([\d,]+)", k1.text(), re.M):
            if t_join * 1000 <= int(when) <= t_end * 1000:
                revoked |= {int(x) for x in m.split(",") if x}
        tc, tj, te = t_control * 1000, t_join * 1000, t_end * 1000
        p1 = {p["partition"]: p for p in r1.get("partitions", [])}
        p2 = {p["partition"]: p for p in r2.get("partitions", [])}
        res = {"moved_partitions": sorted(revoked),
               "times": {"control": t_control, "join": t_join, "end": t_end}}
        for grp in ("moved", "unmoved"):
            ctl, join = [], []
            for p in range(PARTITIONS):
                if (p in revoked) != (grp == "moved") or p not in p1:
                    continue
                a = p1[p]
                ctl.append(max([ms for ms, end in a["gaps"] if tc <= end < tj] or [0]))
                if grp == "moved":
                    b = p2.get(p)
                    join.append(b["first_ms"] - a["last_ms"] if b and b["records"] else
                                int(te - a["last_ms"]))
                else:
                    join.append(max([ms for ms, end in a["gaps"] if tj <= end <= te] or [0]))
            ctl.sort()
            join.sort()
            res[grp] = {"partitions": len(ctl), "control_max_ms": ctl[-1] if ctl else None,
                        "control_p50_ms": pct(ctl, 0.5), "join_max_ms": join[-1] if join else None,
                        "join_p50_ms": pct(join, 0.5), "join_gaps_ms": join}
        say("  kfloor: partitions moved %s; %s" % (sorted(revoked), fmt_join(res)))
        return res


def strip_row(row):
    """A ladder row without the bulky parts (syscall breakdowns, threads)."""
    return {k: v for k, v in row.items() if k not in ("syscalls", "syscall_costs", "threads")}


def share(v):
    return "n/a" if v is None else "%.0f%%" % (100 * v)


def pacing_text(p):
    if not p:
        return "pacing n/a"
    return "%d of %d records made >1 ms late (latest %.1f ms, %d restarts)" % (
        p["late"], p["of"], p["max_ms"], p["restarts"])


def write_stages_md(res, path):
    """stages.md of a --stages run: per step, the latencies, who was busy, and
    the breakdown."""
    import stages
    S = res.get("stages") or {}
    lines = ["# Where the latency goes (`run.py --stages`)", "",
             "Run %s to %s; %s CPUs. Every %s-th offset sampled. Intervals in ms, from the "
             "processes' wall clocks (one machine); tests/bench/stages.py names the stages."
             % (res.get("started"), res.get("finished"), res.get("machine", {}).get("cpus", ""),
                S.get("every")), ""]
    lines += ["| rate | e2e p50 / p99 / max | kfloor, same records: p50 / p99 / max | kfloor, own "
              "step | producer CPU | producer pacing | loadgen CPU | router / edge CPU | load |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for st in S.get("steps", []):
        k = st["kfloor"]
        for e, what in ((st["e2e"], ""), (st.get("e2e_stat"), " with perf stat"),
                        (st.get("e2e_perf"), " with perf stat + trace")):
            if not e:
                continue
            cpu = e.get("cpu_s", {})
            secs = max(0.001, e.get("records", 0) / max(1, e.get("delivered_per_s", 1)))
            ks = (e.get("kfloor_same") or {}).get("lat") or {}
            lines.append("| %d/s%s | %s / %s / %s | %s / %s / %s | %s / %s / %s | %s | %s | %s | "
                         "%s / %s | %.1f |"
                         % (st["rate"], what, e["lat"].get("p50"), e["lat"].get("p99"),
                            e["lat"].get("max"), ks.get("p50"), ks.get("p99"), ks.get("max"),
                            k["lat"].get("p50"), k["lat"].get("p99"),
                            k["lat"].get("max"), share(e.get("producer_cpu_share")),
                            pacing_text(e.get("pacing")), share(e.get("loadgen_cpu_share")),
                            share(cpu.get("router", 0) / secs), share(cpu.get("edge", 0) / secs),
                            e.get("load", 0)))
    lines += ["", stages.markdown(S.get("breakdown", []))]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    say("wrote %s" % path)


def floors_bound(drain):
    """The highest drain ratio any design with an edge and a router in two
    processes could reach on these cores (README, "The floors of a drain"):
    it pays at least the Kafka floor (kfloor and the broker) and what the
    kernel costs to carry the bytes over the link and to the clients
    (linkfloor), for each record, where the floor pays the first alone. On
    cores that are all busy the rates follow these sums."""
    k, link, ws, e = drain.get("kfloor"), drain.get("link"), drain.get("ws"), drain.get("e2e")
    if not (k and link and ws and e and k.get("cpu_us_per_record_all")):
        return None
    k_us, l_us, w_us = (k["cpu_us_per_record_all"], link["cpu_us_per_record"],
                        ws["cpu_us_per_record"])
    ratio = k_us / (k_us + l_us + w_us)
    reached = e["delivered_per_s"] / max(1, k["delivered_per_s"])
    return {"kafka_us": k_us, "link_us": l_us, "ws_us": w_us, "ratio": ratio,
            "reached": reached, "share": reached / ratio}


def best_of(rows):
    """The trial with the highest delivered/s, with every trial's rate."""
    rows = [r for r in rows if r]
    if not rows:
        return None
    best = dict(max(rows, key=lambda r: r.get("delivered_per_s") or 0))
    best["trials"] = [round(r.get("delivered_per_s") or 0) for r in rows]
    return best


def counter_stalls(series, t_join, t_end):
    """In the sampled counters after the join: the longest time each counter
    did not move (ms), and the slowest admin answers."""
    out = {}
    pts = [x for x in series if x["t"] >= t_join - 0.2 and x["t"] <= t_end]
    for key in ("edge1_records", "edge1_deliveries", "router_messages"):
        longest, since, last = 0.0, None, None
        for x in pts:
            if last is None or x[key] != last:
                if since is not None:
                    longest = max(longest, x["t"] - since)
                since, last = x["t"], x[key]
        out[key] = round(1000 * longest)
    for key in ("edge1_answer_ms", "router_answer_ms"):
        out[key] = round(max([x[key] for x in pts] or [0]))
    return out


def join_timeline(clients, moved, t_from, t_to, bucket_ms=250):
    """Longest gap ending in each bucket, for moved and unmoved clients."""
    out = {"bucket_ms": bucket_ms, "t0_ms": t_from * 1000, "moved": {}, "unmoved": {}}
    for c in clients:
        grp = "moved" if c["partition"] in moved else "unmoved"
        for gap, end in c["gaps"]:
            if t_from * 1000 <= end <= t_to * 1000:
                b = int((end - t_from * 1000) // bucket_ms)
                out[grp][b] = max(out[grp].get(b, 0), gap)
    return out


def ms(us):
    return None if us is None else round(us / 1000.0, 2)


def paired_hop(kf_dump, pb_dump):
    """Per record seen by both kfloor and wsprobe: wsprobe receipt - kfloor
    receipt (us), i.e. what the edge, nng, the router and the WebSocket add
    over a bare consumer of the same record. Quantiles and a 1000-point CDF."""
    try:
        kf = {}
        with open(kf_dump) as f:
            for line in f:
                k, seq, t = line.split()
                kf[(k, seq)] = int(t)
        hops = []
        with open(pb_dump) as f:
            for line in f:
                k, seq, t = line.split()
                t0 = kf.get((k, seq))
                if t0 is not None:
                    hops.append(int(t) - t0)
    except (OSError, ValueError):
        return None, None
    if not hops:
        return None, None
    hops.sort()
    q = {"count": len(hops), "min": hops[0], "mean": sum(hops) / len(hops),
         "p50": pct(hops, 0.5), "p90": pct(hops, 0.9), "p99": pct(hops, 0.99),
         "p999": pct(hops, 0.999), "max": hops[-1]}
    cdf = [pct(hops, i / 1000.0) for i in range(1, 1001)]
    return q, cdf


def fmt_join(r):
    return "; ".join("%s: longest gap %s ms after the join (control %s ms)"
                     % (g, r[g]["join_max_ms"], r[g]["control_max_ms"])
                     for g in ("moved", "unmoved") if g in r)


def sub(a, b):
    if a is None or b is None:
        return None
    return a - b


def strip_lg(r):
    keep = ("clients", "connected", "records", "lost", "duplicated", "reordered", "other",
            "latency_ms", "longest_gap_ms", "connect_ms", "run_ms", "protocol_errors")
    return {k: r.get(k) for k in keep}


def machine_info():
    info = {"cpus": os.cpu_count(), "kernel": os.uname().release}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            info["cpu"] = m.group(1) if m else None
    except OSError:
        pass
    try:
        info["mem_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    info["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        info["lws"] = subprocess.run(["pkg-config", "--modversion", "libwebsockets"],
                                     capture_output=True, text=True).stdout.strip()
        info["rdkafka"] = subprocess.run(["pkg-config", "--modversion", "rdkafka"],
                                         capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    try:
        info["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        info["worktree_modified"] = bool(dirty)
    except OSError:
        pass
    return info


# ---- setup ----------------------------------------------------------------

def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    # Debian's package, when another python3 runs this script.
    if os.path.isdir("/usr/lib/python3/dist-packages") and \
            "/usr/lib/python3/dist-packages" not in sys.path:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import matplotlib  # noqa: F401,F811
            return True
        except ImportError:
            pass
    say("python3-matplotlib is missing: installing it with apt")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "python3-matplotlib"], env=env,
                   stdout=subprocess.DEVNULL)
    # apt installs for /usr/bin/python3: make its dist-packages visible here.
    for d in ("/usr/lib/python3/dist-packages",):
        if os.path.isdir(d) and d not in sys.path:
            sys.path.append(d)
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        say("warning: matplotlib unavailable; no plots")
        return False


def ensure_tools(build):
    if not os.path.exists(os.path.join(build, "build.ninja")):
        say("setting up %s" % build)
        subprocess.run(["meson", "setup", build, "-Dbuildtype=release"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    say("building %s" % build)
    subprocess.run(["ninja", "-C", build], check=True, stdout=subprocess.DEVNULL)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test, about 3 minutes")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"),
                    help="meson build dir (default build-bench; set up as release if missing)")
    ap.add_argument("--out", default=HERE, help="where report.md, report.json and the PNGs go "
                    "(default tests/bench)")
    ap.add_argument("--only", default="", help="comma-separated sections: a,b,c,d")
    ap.add_argument("--no-build", action="store_true", help="do not run ninja first")
    ap.add_argument("--drain-count", metavar="SIZE:N,SIZE:N",
                    help="records per client in section c's drains, e.g. '4096:48' (default: "
                         "the profile's; at 12 the 4 KiB drain lasts about 0.15 s, where 10 ms "
                         "CPU ticks and the edge waking from SIGSTOP weigh)")
    ap.add_argument("--cold-drain", action="store_true",
                    help="section c's drains are the first of fresh processes (default: the "
                         "same backlog is drained once before the measured drain, and kfloor "
                         "reads it first too; the cold drain adds the first touch of the "
                         "processes' buffers)")
    ap.add_argument("--drains-only", action="store_true",
                    help="section c runs only its drains (each size, P trials): the A/B of "
                         "issue 13 item 5 in a few minutes; with --only c")
    ap.add_argument("--ladder-only", action="store_true",
                    help="section c runs only its live ladders (no wsfloor, no drains)")
    ap.add_argument("--base-build", metavar="DIR",
                    help="A/B: section c's ladders also run through the edge and router of "
                    "this build (e.g. main's build-bench), step by step with this one's")
    ap.add_argument("--base-traced", action="store_true",
                    help="with --base-build, each rate once more through the base build with a "
                    "1 s perf trace of its router inside the step (as main's bench measured)")
    ap.add_argument("--perf-drain", metavar="DIR",
                    help="diagnostic: 'perf record -g' the router and the edge over each drain "
                         "window, into DIR/{router,edge}-<tag>.data (read with perf report -i; "
                         "KWS_PERF_DWARF=1 in the environment: DWARF call graphs)")
    ap.add_argument("--ladder", metavar="SIZE:R,R;SIZE:R",
                    help="custom ladders for section c, e.g. '100:20000,40000;4096:5000'")
    ap.add_argument("--mem-counts", metavar="N,N",
                    help="session counts held in section a, ascending (default 1000,5000,18000; "
                    "quick 1000,5000), e.g. '1000,18000' for the CPU per record ratio alone")
    ap.add_argument("--preload", metavar="SO", help="what-if diagnostic: run edge and router "
                    "with LD_PRELOAD=SO (e.g. build-bench/tests/bench/libnodelay.so, which "
                    "forces TCP_NODELAY on)")
    ap.add_argument("--stages", action="store_true",
                    help="where the latency goes (issue 13 item 2): 100 B steps at "
                    "--stages-rates, kfloor then the router path at each, with stage "
                    "timestamps (KWS_STAGES) from producer, edge, router and loadgen; "
                    "about 25 s a rate; writes stages.md and report.json in --out")
    ap.add_argument("--stages-rates", default="1000,5000,20000,30000",
                    help="records/s of the --stages steps (default 1000,5000,20000,30000)")
    ap.add_argument("--stages-size", type=int, default=100,
                    help="record size of the --stages steps (default 100; the ladder's other "
                    "size is 4096)")
    ap.add_argument("--stages-every", type=int, default=16,
                    help="sample the records whose offset is a multiple of this (default 16)")
    ap.add_argument("--stages-perf", action="store_true",
                    help="with --stages, run each rate once more with perf stat and a 1 s perf "
                    "trace on the router (as the ladder did before issue 13 item 2): what "
                    "measuring costs")
    ap.add_argument("--trace-in-steps", action="store_true",
                    help="run the 1 s `perf trace -s` sample of the router inside every judged "
                    "ladder step, as before issue 13 item 2 (it inflates their latency); default: "
                    "one step of its own at the highest sustained rate")
    ap.add_argument("--no-same-floor", action="store_true",
                    help="no kfloor reading the same records during each live router step "
                    "(the like-for-like floor of the latency at load)")
    ap.add_argument("--syscalls-in-steps", action="store_true",
                    help="count syscalls (perf stat) in every judged ladder step, as before "
                    "issue 13 item 2; default: in one step of its own at the highest sustained "
                    "rate, with the perf trace sample")
    ap.add_argument("--no-syscalls", action="store_true",
                    help="no perf or strace in the ladder steps (latency without their cost)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work dir of logs")
    ap.add_argument("--report-only", metavar="JSON",
                    help="only rewrite report.md and plots from a report.json")
    args = ap.parse_args()

    if args.stages:
        args.out = args.out if args.out != HERE else os.path.join(HERE, "stages")
    if args.report_only:
        import report
        res = json.load(open(args.report_only))
        report.write(res, args.out, ensure_matplotlib())
        return 0

    nofile = raise_nofile()
    if nofile[0] < 19500:
        say("warning: only %d open files allowed; 18k sessions need ~19k" % nofile[0])
    have_plots = ensure_matplotlib()
    if not args.no_build:
        ensure_tools(args.build)
    b = Bench(args)
    say("work dir (logs) %s" % b.work)

    def on_term(sig, frame):
        raise SystemExit(1)
    signal.signal(signal.SIGTERM, on_term)
    ok = False
    try:
        b.run()
        ok = True
    finally:
        b.stop_all()
        os.makedirs(args.out, exist_ok=True)
        sys.path.insert(0, HERE)
        import report
        b.res["complete"] = ok
        with open(os.path.join(args.out, "report.json"), "w") as f:
            json.dump(b.res, f, indent=1)
        if args.stages:
            write_stages_md(b.res, os.path.join(args.out, "stages.md"))
        else:
            report.write(b.res, args.out, have_plots)
            say("wrote %s" % os.path.join(args.out, "report.md"))
        if ok and not args.keep_logs:
            shutil.rmtree(b.work, ignore_errors=True)
        else:
            say("logs kept in %s" % b.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
