#!/usr/bin/env python3
"""Several hosts (issue 8): Kafka, the edges and the router each in a network
namespace of their own, with their own address, joined by a Linux bridge; the
edges found through one DNS name that resolves to all of them.

    root namespace: bridge kwsmh-br0 10.77.0.1/24, the test's clients and
                    producer (they reach the others through the bridge)
    kwsmh-kafka     10.77.0.10   a real Apache Kafka broker (kafkafix)
    kwsmh-edge1..3  10.77.0.21..23  edges on tcp://<ip>:7100, admin <ip>:9091
    kwsmh-router    10.77.0.30   router on <ip>:8080, admin <ip>:9090,
                                 --edges-dns edges.kws.test:7100

The name: `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts,
and glibc's getaddrinfo returns every matching line, so edges.kws.test lists
the edges written in /etc/netns/kwsmh-router/hosts. That bind mount pins the
file's inode, so a file renamed over it is never seen by the running router
(and renaming over a file that is a mount point detaches the mounts on it).
So each change goes to a new file, hosts.<n>, which is bind-mounted over
/etc/hosts in the router's own mount namespace (nsenter): path lookups see
the old list or the new one, never a half-written file. No file is replaced
or removed while the router runs; its mounts die with it.

While 100 kws.v1 clients receive a continuous tagged stream, edge 3 is added
(started, then its line added) and edge 2 removed (SIGTERM, line dropped).
Every client must get its stream with 0 lost, 0 duplicated, 0 reordered.
Every listening socket in every namespace is listed: each must be on that
namespace's own address, none on loopback (or on a wildcard address).

Needs root, `ip netns`, veth and bridge support, nsenter, and Java for Kafka:
exits 77 (skipped) without them, unless $CI is set (then it fails).
Everything it creates (namespaces, veths, the bridge, /etc/netns/kwsmh-*) is
removed at the end, also on failure; leftovers of a killed run are removed
at the start of the next."""

import asyncio
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import harness as h

PREFIX = "kwsmh-"
BRIDGE = PREFIX + "br0"
BRIDGE_IP = "10.77.0.1"
NAME = "edges.kws.test"
EDGE_PORT = 7100
ROUTER_PORT = 8080
NODES = {                     # role: (namespace, address)
    "kafka": (PREFIX + "kafka", "10.77.0.10"),
    "edge-1": (PREFIX + "edge1", "10.77.0.21"),
    "edge-2": (PREFIX + "edge2", "10.77.0.22"),
    "edge-3": (PREFIX + "edge3", "10.77.0.23"),
    "router": (PREFIX + "router", "10.77.0.30"),
}
PARTITIONS = 12
CLIENTS = int(os.environ.get("KWS_CLIENTS", "100"))
RATE = CLIENTS * 2            # records per second, all clients together
AFTER = 3                      # records per client produced after each change
LOCK = "/run/lock/kws-multihost.lock"
CMD_TIMEOUT = 20


def ci():
    return os.environ.get("CI", "") not in ("", "0", "false", "False", "no")


def skip(reason):
    if ci():
        print(f"FAIL: cannot run under CI: {reason}", flush=True)
        return 1
    print(f"SKIP: {reason}", flush=True)
    return 77


def sh(*args, check=True, timeout=CMD_TIMEOUT):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def die_with_parent():
    # Children get SIGKILL if the test process dies without cleaning up.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def ns_exec(ns):
    return ["ip", "netns", "exec", ns]


def veth(ns):
    return PREFIX + "v-" + ns[len(PREFIX):]        # at most 15 characters


class Net:
    """The namespaces, veths, bridge and /etc/netns files of one run."""

    def __init__(self):
        self.created_etc_netns = False
        self.router_pid = None
        self.version = 0

    @staticmethod
    def preflight():
        """None if namespaces, veths and bridges can be had here, else why
        not (run as root, under the lock)."""
        for tool in ("ip", "nsenter", "ss"):
            if shutil.which(tool) is None:
                return f"{tool} not found"
        probe = PREFIX + "probe"
        r = sh("ip", "netns", "add", probe, check=False)
        if r.returncode != 0:
            return f"ip netns unavailable: {r.stderr.strip()}"
        try:
            r = sh("ip", "link", "add", veth(probe), "type", "veth", "peer", "name", "eth0",
                   "netns", probe, check=False)
            if r.returncode != 0:
                return f"veth pairs unavailable: {r.stderr.strip()}"
            r = sh("ip", "link", "add", PREFIX + "brprobe", "type", "bridge", check=False)
            if r.returncode != 0:
                return f"bridges unavailable: {r.stderr.strip()}"
        finally:
            sh("ip", "link", "del", PREFIX + "brprobe", check=False)
            sh("ip", "netns", "del", probe, check=False)
        return None

    def sweep(self):
        """Removes what a killed run left behind (only our own names)."""
        listed = sh("ip", "netns", "list", check=False).stdout.split("\n")
        names = {line.split()[0] for line in listed if line.startswith(PREFIX)}
        for ns in sorted(names):
            h.log(f"removing namespace {ns} left by an earlier run")
            self._kill_in(ns)
            sh("ip", "netns", "del", ns, check=False)
        if os.path.exists(f"/sys/class/net/{BRIDGE}"):
            sh("ip", "link", "del", BRIDGE, check=False)
        with contextlib.suppress(OSError):
            for d in os.listdir("/etc/netns"):
                if d.startswith(PREFIX):
                    shutil.rmtree(os.path.join("/etc/netns", d), ignore_errors=True)

    @staticmethod
    def _kill_in(ns):
        r = sh("ip", "netns", "pids", ns, check=False)
        for pid in r.stdout.split():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid), signal.SIGKILL)

    def setup(self):
        self.sweep()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", BRIDGE_IP + "/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for ns, addr in NODES.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", veth(ns), "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            sh("ip", "link", "set", veth(ns), "master", BRIDGE, "up")
            sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        if not os.path.isdir("/etc/netns"):
            os.makedirs("/etc/netns")
            self.created_etc_netns = True
        os.makedirs(self.etc("router"), exist_ok=True)

    def teardown(self):
        for ns, _ in NODES.values():
            with contextlib.suppress(Exception):
                self._kill_in(ns)                 # nothing, unless a step failed
            with contextlib.suppress(Exception):
                sh("ip", "netns", "del", ns, check=False)
        with contextlib.suppress(Exception):
            sh("ip", "link", "del", BRIDGE, check=False)
        shutil.rmtree(self.etc("router"), ignore_errors=True)
        if self.created_etc_netns:
            with contextlib.suppress(OSError):
                os.rmdir("/etc/netns")
        left = [ns for ns, _ in NODES.values() if os.path.exists(f"/run/netns/{ns}")]
        if left or os.path.exists(f"/sys/class/net/{BRIDGE}"):
            print(f"teardown left {left} bridge={os.path.exists(f'/sys/class/net/{BRIDGE}')}",
                  file=sys.stderr)

    @staticmethod
    def etc(role):
        return os.path.join("/etc/netns", NODES[role][0])

    def write_hosts(self, edges):
        """Points edges.kws.test at the given edges, atomically (see top)."""
        text = "127.0.0.1 localhost\n" + "".join(
            f"{NODES[e][1]} {NAME}\n" for e in sorted(edges))
        path = os.path.join(self.etc("router"), "hosts")
        pid = self.router_pid
        if pid is None:                 # before the router: ip netns exec mounts it
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
            return
        self.version += 1
        path = f"{path}.{self.version}"
        with open(path, "w") as f:
            f.write(text)
        # The router must be in its own mount namespace (ip netns exec made
        # one) and in kwsmh-router: never mount over this system's /etc/hosts.
        own_mnt = os.stat("/proc/self/ns/mnt").st_ino
        assert os.stat(f"/proc/{pid}/ns/mnt").st_ino != own_mnt, "router shares our mounts"
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == \
            os.stat(f"/run/netns/{NODES['router'][0]}").st_ino, "router not in its netns"
        sh("nsenter", "-t", str(pid), "-m", "mount", "--bind", path, "/etc/hosts")
        with open(f"/proc/{pid}/root/etc/hosts") as f:
            seen = f.read()
        assert seen == text, f"the router sees {seen!r}, not {text!r}"


class NsProc(h.Proc):
    """h.Proc in a network namespace; dies with the test process."""

    def __init__(self, name, ns, args, workdir):
        self.name = name
        self.ns = ns
        self.args = args
        self.log_path = os.path.join(workdir, name + ".log")
        self._log = open(self.log_path, "wb")
        self.p = subprocess.Popen(ns_exec(ns) + args, stdout=self._log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  preexec_fn=die_with_parent)


class NsKafka:
    """kafkafix's broker in kwsmh-kafka, listening on 10.77.0.10 only."""

    kind = "real"

    def __init__(self):
        import kafkafix
        ns, addr = NODES["kafka"]
        self._cm = kafkafix.cluster_or_skip(brokers=1, host=addr, wrapper=ns_exec(ns))
        self.cluster = self._cm.__enter__()
        self.bootstrap = self.cluster.bootstrap
        self.version = self.cluster.version
        self.ports = self.cluster.ports[1]

    def stop(self):
        self._cm.__exit__(None, None, None)


class System:
    def __init__(self, env, net):
        self.env = env
        self.net = net
        self.edges = {}
        self.router = None

    def spawn(self, name, role, args):
        p = NsProc(name, NODES[role][0], args, self.env.dir)
        self.env.procs.append(p)
        return p

    def start_edge(self, name, wait=True):
        """Spawns edge `name` (from this thread: its PR_SET_PDEATHSIG is tied
        to the spawning thread) and, if wait, waits until it listens."""
        addr = NODES[name][1]
        url = f"tcp://{addr}:{EDGE_PORT}"
        p = self.spawn(name, name, [
            h.EDGE, "--bootstrap", self.env.kafka.bootstrap, "--topic", "deliveries",
            "--group", "kws-edge", "--listen", url, "--admin-listen", f"{addr}:9091",
            "--edge-id", name] + h.FAST_GROUP)
        p.url = url
        if wait:
            p.wait_for(r"listening on", 30)
        self.edges[name] = p
        return p

    def start_router(self):
        addr = NODES["router"][1]
        p = self.spawn("router", "router", [
            h.ROUTER, "--listen", f"{addr}:{ROUTER_PORT}", "--router-id", "router-1",
            "--edges-dns", f"{NAME}:{EDGE_PORT}", "--dns-interval-ms", "500",
            "--admin-listen", f"{addr}:9090", "--drain-timeout-ms", "1000"])
        p.ws_url = f"ws://{addr}:{ROUTER_PORT}/ws"
        self.router = p
        self.net.router_pid = p.p.pid
        return p

    def owners(self):
        """partition -> owner URL (or "none") as the router's log tells."""
        out = {}
        for m in re.finditer(r"partition (\d+): owner (\S+) -> (\S+)", self.router.text()):
            out[int(m.group(1))] = m.group(3)
        return out


def listeners(ns):
    """[(proto, local address, port, process)] listening in namespace ns."""
    out = []
    for proto, flag in (("tcp", "-ltnpH"), ("udp", "-lunpH")):
        r = sh(*ns_exec(ns), "ss", flag)
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) < 5:
                continue
            local = f[3]
            addr, _, port = local.rpartition(":")
            procm = re.search(r'users:\(\("([^"]+)"', line)
            out.append((proto, addr.strip("[]"), port, procm.group(1) if procm else "?"))
    return out


def check_listeners():
    """Prints every listening socket of every namespace; returns the bad
    ones (not on the namespace's own address) and {namespace: {"ip:port"}}
    of the TCP ones."""
    bad = []
    tcp = {}
    h.log(f"  {'namespace':<14} {'proto':<5} {'address':<24} process")
    for ns, addr in NODES.values():
        socks = listeners(ns)
        tcp[ns] = {f"{a}:{p}" for proto, a, p, _ in socks if proto == "tcp"}
        if not socks:
            h.log(f"  {ns:<14} (nothing listening)")
        for proto, a, port, proc in socks:
            ok = a == addr
            h.log(f"  {ns:<14} {proto:<5} {a + ':' + port:<24} {proc}"
                  + ("" if ok else "   <-- not on " + addr))
            if not ok:
                bad.append((ns, proto, a, port, proc))
    return bad, tcp


def expected_listeners(sysm, kafka):
    """(namespace, address:port) each component must be listening on."""
    want = [(NODES["kafka"][0], f"{NODES['kafka'][1]}:{p}") for p in kafka.ports]
    for name in sysm.edges:
        if sysm.edges[name].alive():
            ns, addr = NODES[name]
            want += [(ns, f"{addr}:{EDGE_PORT}"), (ns, f"{addr}:9091")]
    ns, addr = NODES["router"]
    want += [(ns, f"{addr}:{ROUTER_PORT}"), (ns, f"{addr}:9090")]
    return want


async def run(env, net):
    t0 = time.monotonic()
    env.kafka = NsKafka()
    kafka = env.kafka
    kafka.cluster.create_topic("deliveries", partitions=PARTITIONS)
    h.log(f"kafka: {kafka.version} in {NODES['kafka'][0]} at {kafka.bootstrap} "
          f"(ready in {time.monotonic() - t0:.1f}s)")
    sysm = System(env, net)
    sysm.start_edge("edge-1")
    sysm.start_edge("edge-2")
    net.write_hosts(["edge-1", "edge-2"])
    router = sysm.start_router()
    router.wait_for(r"edge tcp://10\.77\.0\.22:7100 added \(found in DNS\)", 20)
    h.wait_all_owned(router)

    url = router.ws_url
    clients = [h.Collector(url, f"user-{i}", framed=True) for i in range(CLIENTS)]
    stop = asyncio.Event()
    runners = [asyncio.ensure_future(c.run_resuming([url], stop)) for c in clients]
    await h.wait_until(lambda: all(c.statuses for c in clients), 60, "every client live")
    await h.warm_up(env, clients)
    h.log(f"{CLIENTS} kws.v1 clients live through {url} (from the root namespace)")

    loop = asyncio.get_running_loop()
    ids = [c.client_id for c in clients]
    t_stream = time.monotonic()
    # The stream runs from before the first change until every client has
    # records produced after the last one settled.
    stream = h.Stream(env, ids, RATE, "stream", bootstrap=kafka.bootstrap)
    try:
        await h.wait_produced_after(clients, "stream", 0, 60,
                                    "records flowing before edge 3 joins")
        t_first = h.wall_ms()
        # Edge 3 joins: started, then found in DNS.
        e3 = sysm.start_edge("edge-3", wait=False)
        await loop.run_in_executor(None, e3.wait_for, r"listening on", 30)
        net.write_hosts(["edge-1", "edge-2", "edge-3"])
        t_add = time.monotonic() - t_stream
        await loop.run_in_executor(None, router.wait_for,
                                   r"edge tcp://10\.77\.0\.23:7100 added \(found in DNS\)", 20)
        await h.wait_until(lambda: e3.url in sysm.owners().values(), 40,
                           "edge 3 to own partitions")
        await h.wait_produced_after(clients, "stream", h.wall_ms(), 60,
                                    "records produced with three edges", AFTER)

        h.log("listening sockets with three edges, the router and Kafka up:")
        bad, socks = await loop.run_in_executor(None, check_listeners)
        missing = [(ns, ap) for ns, ap in expected_listeners(sysm, kafka)
                   if ap not in socks.get(ns, set())]

        # Edge 2 leaves: SIGTERM, and its line is dropped at once (as a pod
        # that terminates leaves its Service).
        e2 = sysm.edges["edge-2"]
        e2.p.send_signal(signal.SIGTERM)
        net.write_hosts(["edge-1", "edge-3"])
        t_remove = time.monotonic() - t_stream
        rc = await loop.run_in_executor(None, e2.p.wait, 20)
        e2.stop()
        await loop.run_in_executor(None, router.wait_for,
                                   r"edge tcp://10\.77\.0\.22:7100 removed \(gone from DNS\)", 20)
        await h.wait_until(lambda: len(sysm.owners()) == PARTITIONS and all(
            o not in ("none", e2.url) for o in sysm.owners().values()), 40,
                           "edges 1 and 3 to own every partition")
        t_settled = time.monotonic() - t_stream
        t_last = h.wall_ms()
        await h.wait_produced_after(clients, "stream", t_last, 60,
                                    "records produced after the edges settled", AFTER)
        during = h.produced_between(clients, "stream", t_first, t_last)
        total = await stream.stop()
    finally:
        stream.kill()
    t_end = time.monotonic() - t_stream
    counts = stream.counts()
    await h.wait_until(lambda: all(len(c.records("stream")) >= counts[c.client_id]
                                   for c in clients), 60, "every record of the stream")
    await asyncio.sleep(1)  # let any duplicate or stray record show up
    lost, dup, reord, foreign = h.check_streams(clients, counts, "stream")

    text = router.text()
    h.log("router, about edges:")
    for line in text.splitlines():
        if re.search(r"edge tcp://\S+ (added|removed)|edges: every address", line):
            h.log("  " + line)
    moves = re.findall(r"partition (\d+): owner (\S+) -> (\S+)", text)
    h.log(f"router: {len(moves)} owner changes; final owners: " + ", ".join(
        f"{p}:{o.split('//')[1]}" for p, o in sorted(sysm.owners().items())))
    members = kafka.cluster.describe_group("kws-edge")
    h.log("group kws-edge after the changes: " + "; ".join(
        f"{m['client_id']} {m['host']} {m['assignment'].get('deliveries', [])}"
        for m in members))
    h.log(f"edge 3 added at {t_add:.1f}s, edge 2 (exit {rc}) removed at {t_remove:.1f}s, "
          f"settled at {t_settled:.1f}s of a {t_end:.1f}s stream")
    reconnects = sum(c.connections - 1 for c in clients)
    h.log(f"{CLIENTS} clients, {total} records, {during} of them produced while the edges "
          f"changed: lost {lost}, duplicated {dup}, "
          f"reordered {reord}, foreign {foreign}; reconnections {reconnects}")
    stop.set()
    await asyncio.gather(*runners)
    await asyncio.gather(*(c.close() for c in clients))

    assert not bad, f"listeners not on their namespace's address: {bad}"
    assert not missing, f"expected listeners missing: {missing}"
    assert sorted(m["client_id"] for m in members) == ["edge-1", "edge-3"], members
    assert during > 0, "no record was produced while the edges changed"
    assert (lost, dup, reord, foreign) == (0, 0, 0, 0), "the stream lost records"


@contextlib.contextmanager
def run_lock(timeout=300):
    """One run at a time on this machine: the names and addresses are fixed."""
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "w") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{LOCK} held for over {timeout}s")
                time.sleep(1)
        yield


def main():
    # meson's timeout sends SIGTERM: unwind so that everything is removed.
    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    if os.geteuid() != 0:
        return skip("needs root (network namespaces, veths, a bridge)")
    with run_lock():
        reason = Net.preflight()
        if reason:
            return skip(reason)
        net = Net()
        try:
            net.setup()
            with h.Env("multihost") as env:
                asyncio.run(run(env, net))
        finally:
            net.teardown()
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
