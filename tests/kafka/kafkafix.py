"""Real-Kafka test fixture for the end-to-end tests (stdlib only).

    import sys, os
    sys.path.insert(0, os.path.join(SRCDIR, "tests", "kafka"))
    import kafkafix

    with kafkafix.cluster_or_skip(brokers=1) as k:      # exit 77 when skipped
        k.create_topic("events", partitions=4)
        k.console_produce("events", [("user-1", "hello"), ("user-2", "bye")])
        ...  # point the router at k.bootstrap
        members = k.describe_group("kws-router")

On enter, KafkaCluster either uses the cluster named by $KAFKA_BOOTSTRAP
(no process started) or provisions Apache Kafka jars (provision.sh, cached)
and starts 1 or 3 KRaft combined-mode (broker+controller) JVMs on 127.0.0.1
(or on `host=`, e.g. in a network namespace entered by `wrapper=`).
On exit, the JVMs are stopped (SIGTERM, then SIGKILL) and the temp dir removed;
if the with-block raised, the tail of each broker log goes to stderr first.

All the command-line work (topics, console producer/consumer, consumer groups)
runs Kafka's own Java tools, so keyed records are partitioned by the Java
client's default partitioner (murmur2 of the key). Readiness and topic
metadata use a tiny Metadata v4 request written here (no JVM start needed).
"""

import contextlib
import ctypes
import os
import re
import secrets
import base64
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROVISION = os.path.join(HERE, "provision.sh")

# Main classes for Kafka 4.x (kafka_2.13 + kafka-tools jars).
MAIN_BROKER = "kafka.Kafka"
MAIN_STORAGE = "kafka.tools.StorageTool"
MAIN_TOPICS = "org.apache.kafka.tools.TopicCommand"
MAIN_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
MAIN_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
MAIN_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

BROKER_JAVA_OPTS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                    "-Djava.net.preferIPv4Stack=true"]
TOOL_JAVA_OPTS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                  "-Xshare:auto", "-Djava.awt.headless=true",
                  "-Djava.net.preferIPv4Stack=true"]

SEP = "\x1f"                  # key/value separator for console tools
NULL_MARKER = "<kws-null>"    # stands for a null key or value


class KafkaUnavailable(Exception):
    """Kafka cannot be had here (no java/mvn, or no registry to fetch it)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class KafkaError(RuntimeError):
    """Kafka was there but something failed (a tool, a broker, a timeout)."""


def _log(msg):
    print("kafkafix: " + msg, file=sys.stderr, flush=True)


def _ci():
    v = os.environ.get("CI", "")
    return v not in ("", "0", "false", "False", "no")


def kafka_version_pinned():
    """The Kafka version provision.sh fetches (its KWS_KAFKA_VERSION=...)."""
    with open(PROVISION) as f:
        m = re.search(r"^KWS_KAFKA_VERSION=(\S+)", f.read(), re.M)
    return m.group(1)


def provision(timeout=900):
    """Run provision.sh (idempotent); return (lib_dir, seconds_taken)."""
    if shutil.which("java") is None:
        raise KafkaUnavailable("java not found on PATH (Kafka needs Java 17+)")
    t0 = time.monotonic()
    try:
        p = subprocess.run(["bash", PROVISION], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise KafkaUnavailable("provisioning Kafka took over %ds" % timeout)
    dt = time.monotonic() - t0
    for line in p.stdout.splitlines():
        if not line.startswith("KAFKA_LIB="):
            _log(line)
    if p.returncode != 0 and p.stderr:
        sys.stderr.write(p.stderr[-4000:])
    if p.returncode in (2, 3):
        raise KafkaUnavailable(
            (p.stderr.strip().splitlines() or ["provision.sh failed"])[-1])
    if p.returncode != 0:
        raise KafkaError("provision.sh failed (rc=%d):\n%s"
                         % (p.returncode, p.stderr[-4000:]))
    lib = [l for l in p.stdout.splitlines() if l.startswith("KAFKA_LIB=")]
    return lib[-1].split("=", 1)[1], dt


def _free_ports(n):
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _parse_bootstrap(bootstrap):
    out = []
    for hp in bootstrap.split(","):
        hp = hp.strip()
        if hp:
            host, _, port = hp.rpartition(":")
            out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def _random_cluster_id():
    # Kafka's Uuid.toString(): url-safe base64 of 16 bytes, no padding.
    # Not one starting with "-": kafka-storage would take it for an option
    # (one run in 64 failed that way).
    while True:
        b = secrets.token_bytes(16)
        cid = base64.urlsafe_b64encode(b).decode().rstrip("=")
        if b[:8] != b"\0" * 8 and not cid.startswith("-"):
            return cid


_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Children get SIGKILL if this test process dies without cleaning up
    # (e.g. meson killing it), so no broker JVM is ever left behind.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _sweep_stale_tmp():
    """Remove temp dirs left by fixtures whose process was SIGKILLed (their
    brokers died with them: PR_SET_PDEATHSIG)."""
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith("kws-kafka-"):
            continue
        d = os.path.join(base, name)
        try:
            with open(os.path.join(d, "owner.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            pass


# --- a minimal Kafka Metadata v4 client (no JVM start: milliseconds) -------

class _Buf:
    def __init__(self, data):
        self.d, self.i = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.i)
        self.i += struct.calcsize(fmt)
        return v[0]

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.d[self.i:self.i + n].decode()
        self.i += n
        return s

    def array(self, fn):
        n = self.take(">i")
        return [fn() for _ in range(max(n, 0))]


def metadata(bootstrap, topics=None, timeout=5.0):
    """Metadata v4 from the first reachable broker in `bootstrap`.

    Returns {"brokers": {id: (host, port)}, "controller": id,
             "topics": {name: {"error": code, "partitions":
                 {p: {"error", "leader", "replicas", "isr"}}}}}.
    """
    body = struct.pack(">i", -1) if topics is None else (
        struct.pack(">i", len(topics)) + b"".join(
            struct.pack(">h", len(t.encode())) + t.encode() for t in topics))
    body += b"\0"                                   # allow_auto_topic_creation
    client = b"kwsfix"
    req = struct.pack(">hhih", 3, 4, 7, len(client)) + client + body
    last = None
    for host, port in _parse_bootstrap(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(struct.pack(">i", len(req)) + req)
                hdr = b""
                while len(hdr) < 4:
                    c = s.recv(4 - len(hdr))
                    if not c:
                        raise OSError("connection closed")
                    hdr += c
                n = struct.unpack(">i", hdr)[0]
                data = b""
                while len(data) < n:
                    c = s.recv(n - len(data))
                    if not c:
                        raise OSError("connection closed")
                    data += c
        except OSError as e:
            last = e
            continue
        b = _Buf(data)
        b.take(">i")                                  # correlation id
        b.take(">i")                                  # throttle_time_ms
        brokers = {}
        for _ in range(b.take(">i")):
            nid = b.take(">i")
            h = b.string()
            p = b.take(">i")
            b.string()                                # rack
            brokers[nid] = (h, p)
        b.string()                                    # cluster id
        controller = b.take(">i")
        tops = {}
        for _ in range(b.take(">i")):
            err = b.take(">h")
            name = b.string()
            b.take(">b")                              # is_internal
            parts = {}
            for _ in range(b.take(">i")):
                perr = b.take(">h")
                pid = b.take(">i")
                leader = b.take(">i")
                reps = b.array(lambda: b.take(">i"))
                isr = b.array(lambda: b.take(">i"))
                parts[pid] = {"error": perr, "leader": leader,
                              "replicas": reps, "isr": isr}
            tops[name] = {"error": err, "partitions": parts}
        return {"brokers": brokers, "controller": controller, "topics": tops}
    raise OSError("no broker in %s answered: %s" % (bootstrap, last))


# --- the fixture -----------------------------------------------------------

class KafkaCluster:
    """A real Kafka cluster for a test: `with KafkaCluster() as k: ...`.

    brokers:     1 (one combined broker+controller) or 3 (three combined
                 nodes, node ids 1..3, a 3-voter controller quorum).
    log_dir:     if given, each node's log is copied there on exit
                 (kafka-node-<id>.log), e.g. meson's build dir for post-mortems.
    extra_props: dict of server.properties overrides for every node.
    host:        the address every node's listeners bind and advertise
                 (default 127.0.0.1), e.g. an address of a network namespace.
    wrapper:     argv prefix for the broker JVMs (storage format and tools
                 run unwrapped), e.g. ["ip", "netns", "exec", "kws-kafka"]
                 to run them in a network namespace that owns `host`; it
                 must exec the JVM so that signals reach it. Default: none.
    """

    def __init__(self, brokers=1, log_dir=None, extra_props=None,
                 start_timeout=120, host="127.0.0.1", wrapper=None):
        if brokers < 1:
            raise ValueError("brokers must be >= 1")
        self.n = brokers
        self.log_dir = log_dir
        self.extra_props = dict(extra_props or {})
        self.start_timeout = start_timeout
        self.host = host
        self.wrapper = list(wrapper or [])
        self.bootstrap = None
        self.version = None
        self.lib = None
        self.external = False
        self.tmp = None
        self.procs = {}           # node id -> Popen
        self.ports = {}           # node id -> (broker port, controller port)
        self.provision_seconds = None
        self.start_seconds = None
        self._old_sigterm = None

    # -- context manager --

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self._teardown(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self._teardown(failed=exc_type is not None)
        return False

    def _start(self):
        ext = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
        self.lib, self.provision_seconds = provision()
        _log("provisioning took %.1fs (lib %s)"
             % (self.provision_seconds, self.lib))
        if ext:
            self.external = True
            self.bootstrap = ext
            md = self._wait(lambda: metadata(ext), 30, "external cluster "
                            + ext + " to answer")
            self.n = len(md["brokers"])
            self.version = "external"
            _log("using external cluster %s (%d brokers)" % (ext, self.n))
            return
        self._install_sigterm()
        _sweep_stale_tmp()
        self.tmp = tempfile.mkdtemp(prefix="kws-kafka-")
        with open(os.path.join(self.tmp, "owner.pid"), "w") as f:
            f.write("%d\n" % os.getpid())
        cluster_id = _random_cluster_id()
        ports = _free_ports(2 * self.n)
        for i in range(1, self.n + 1):
            self.ports[i] = (ports[2 * i - 2], ports[2 * i - 1])
        self.bootstrap = ",".join("%s:%d" % (self.host, self.ports[i][0])
                                  for i in sorted(self.ports))
        self._write_log4j()
        t0 = time.monotonic()
        for i in self.ports:
            self._write_props(i)
            self._format(i, cluster_id)
        for i in self.ports:
            self._spawn(i)
        self._wait_brokers(set(self.ports), self.start_timeout)
        self.start_seconds = time.monotonic() - t0
        self.version = self._version_from_log(1) or kafka_version_pinned()
        _log("Kafka %s: %d broker(s) up in %.1fs at %s"
             % (self.version, self.n, self.start_seconds, self.bootstrap))

    def _install_sigterm(self):
        # meson's timeout sends SIGTERM: turn it into SystemExit so __exit__
        # still stops the brokers (only if nobody else handles SIGTERM).
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            def on_term(signum, frame):
                raise SystemExit(128 + signum)
            self._old_sigterm = signal.SIG_DFL
            signal.signal(signal.SIGTERM, on_term)

    def _teardown(self, failed):
        if failed and self.tmp:
            for i in sorted(self.procs):
                self.dump_log(i, 80)
        t0 = time.monotonic()
        running = len(self.procs)
        for i in list(self.procs):
            self._signal(i, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for i, p in list(self.procs.items()):
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            self._close_log(i)
        self.procs.clear()
        if running:
            _log("stopped %d broker(s) in %.1fs"
                 % (running, time.monotonic() - t0))
        if self.tmp:
            if self.log_dir:
                try:
                    os.makedirs(self.log_dir, exist_ok=True)
                    for i in self.ports:
                        src = self.node_log(i)
                        if os.path.exists(src):
                            shutil.copy(src, os.path.join(
                                self.log_dir, "kafka-node-%d.log" % i))
                except OSError as e:
                    _log("could not copy logs to %s: %s" % (self.log_dir, e))
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # -- nodes --

    def node_dir(self, i):
        return os.path.join(self.tmp, "node-%d" % i)

    def node_log(self, i):
        return os.path.join(self.node_dir(i), "server.log")

    def _write_log4j(self):
        for name, level, target in (("broker", "INFO", "SYSTEM_OUT"),
                                    ("tools", "WARN", "SYSTEM_ERR")):
            with open(os.path.join(self.tmp, "log4j2-%s.properties" % name),
                      "w") as f:
                f.write("\n".join([
                    "status = warn",
                    "appender.out.type = Console",
                    "appender.out.name = OUT",
                    "appender.out.target = " + target,
                    "appender.out.layout.type = PatternLayout",
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = " + level,
                    "rootLogger.appenderRef.out.ref = OUT",
                    "logger.sc.name = state.change.logger",
                    "logger.sc.level = WARN",
                    "logger.req.name = kafka.request.logger",
                    "logger.req.level = WARN", ""]))

    def _write_props(self, i):
        n = self.n
        rf = min(3, n)
        voters = ",".join("%d@%s:%d" % (j, self.host, self.ports[j][1])
                          for j in sorted(self.ports))
        bp, cp = self.ports[i]
        props = {
            "process.roles": "broker,controller",
            "node.id": i,
            "controller.quorum.voters": voters,
            "listeners": "PLAINTEXT://%s:%d,CONTROLLER://%s:%d"
                         % (self.host, bp, self.host, cp),
            "advertised.listeners": "PLAINTEXT://%s:%d" % (self.host, bp),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map":
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": os.path.join(self.node_dir(i), "data"),
            "num.partitions": 1,
            "default.replication.factor": 1,
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 8,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min(2, rf),
            "transaction.state.log.num.partitions": 4,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min(2, rf),
            "group.initial.rebalance.delay.ms": 0,
            "group.min.session.timeout.ms": 1000,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "log.retention.check.interval.ms": 300000,
            "controlled.shutdown.enable": "true",
        }
        props.update(self.extra_props)
        os.makedirs(self.node_dir(i), exist_ok=True)
        with open(os.path.join(self.node_dir(i), "server.properties"),
                  "w") as f:
            for k, v in props.items():
                f.write("%s=%s\n" % (k, v))

    def java_cmd(self, main, args, broker=False):
        """argv for running a Kafka main class with the provisioned jars."""
        opts = BROKER_JAVA_OPTS if broker else TOOL_JAVA_OPTS
        l4j = os.path.join(self.tmp or "", "log4j2-%s.properties"
                           % ("broker" if broker else "tools"))
        if not self.tmp:                    # external cluster: no temp dir
            l4j = self._tools_log4j_external()
        extra = os.environ.get("KWS_KAFKA_JAVA_OPTS", "").split()
        return (["java"] + opts + extra + ["-Dlog4j2.configurationFile=" + l4j,
                "-cp", os.path.join(self.lib, "*"), main] + list(args))

    def _tools_log4j_external(self):
        path = os.path.join(os.path.dirname(self.lib), "log4j2-tools.properties")
        if not os.path.exists(path):
            with open(path + ".tmp", "w") as f:
                f.write("status = warn\nappender.out.type = Console\n"
                        "appender.out.name = OUT\n"
                        "appender.out.target = SYSTEM_ERR\n"
                        "appender.out.layout.type = PatternLayout\n"
                        "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
                        "rootLogger.level = WARN\n"
                        "rootLogger.appenderRef.out.ref = OUT\n")
            os.replace(path + ".tmp", path)
        return path

    def _format(self, i, cluster_id):
        props = os.path.join(self.node_dir(i), "server.properties")
        self.run_tool(MAIN_STORAGE, ["format", "-t", cluster_id, "-c", props],
                      timeout=60)

    def _spawn(self, i):
        props = os.path.join(self.node_dir(i), "server.properties")
        logf = open(self.node_log(i), "ab")
        self._logs = getattr(self, "_logs", {})
        self._logs[i] = logf
        self.procs[i] = subprocess.Popen(
            self.wrapper + self.java_cmd(MAIN_BROKER, [props], broker=True),
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            cwd=self.node_dir(i), preexec_fn=_die_with_parent)

    def _close_log(self, i):
        f = getattr(self, "_logs", {}).pop(i, None)
        if f:
            f.close()

    def _signal(self, i, sig):
        p = self.procs.get(i)
        if p and p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass

    def _version_from_log(self, i):
        try:
            with open(self.node_log(i), errors="replace") as f:
                m = re.search(r"Kafka version: (\S+)", f.read())
            return m and m.group(1)
        except OSError:
            return None

    def dump_log(self, i, lines=80):
        """Print the last `lines` lines of node i's log to stderr."""
        try:
            with open(self.node_log(i), errors="replace") as f:
                tail = f.readlines()[-lines:]
        except OSError as e:
            tail = ["(no log: %s)\n" % e]
        sys.stderr.write("----- kafka node %d: last %d lines of %s -----\n"
                         % (i, len(tail), self.node_log(i)))
        sys.stderr.writelines(tail)
        sys.stderr.write("----- end of kafka node %d log -----\n" % i)
        sys.stderr.flush()

    def _wait(self, fn, timeout, what, interval=0.2):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            for i, p in self.procs.items():
                if p.poll() is not None:
                    self.dump_log(i, 80)
                    raise KafkaError("kafka node %d exited (rc=%s) while "
                                     "waiting for %s" % (i, p.returncode, what))
            try:
                r = fn()
                if r:
                    return r
                last = r
            except (OSError, struct.error, KafkaError) as e:
                last = e
            if time.monotonic() > deadline:
                raise KafkaError("timed out after %.0fs waiting for %s (last: %r)"
                                 % (timeout, what, last))
            time.sleep(interval)

    def _live_bootstrap(self):
        if self.external:
            return self.bootstrap
        return ",".join("%s:%d" % (self.host, self.ports[i][0])
                        for i in sorted(self.procs)
                        if self.procs[i].poll() is None) or self.bootstrap

    def _wait_brokers(self, want, timeout):
        def ready():
            md = metadata(self._live_bootstrap())
            return md if set(md["brokers"]) == want else None
        return self._wait(ready, timeout, "brokers %s to register"
                          % sorted(want))

    def stop_broker(self, i, timeout=30, hard=False):
        """Stop node i (1-based): SIGTERM (SIGKILL if hard or slow)."""
        p = self.procs.get(i)
        if p is None:
            raise KafkaError("node %d is not running" % i)
        t0 = time.monotonic()
        self._signal(i, signal.SIGKILL if hard else signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        del self.procs[i]
        self._close_log(i)
        _log("node %d stopped in %.1fs" % (i, time.monotonic() - t0))

    def start_broker(self, i, timeout=90):
        """(Re)start node i (1-based) and wait until it is registered."""
        if i in self.procs:
            raise KafkaError("node %d is already running" % i)
        t0 = time.monotonic()
        self._spawn(i)
        self._wait_brokers(set(self.procs), timeout)
        _log("node %d started in %.1fs" % (i, time.monotonic() - t0))

    # -- tools --

    def run_tool(self, main, args, timeout=60, input=None, check=True):
        """Run a Kafka Java main class; return the CompletedProcess."""
        cmd = self.java_cmd(main, args)
        try:
            p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               timeout=timeout, preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired as e:
            raise KafkaError("%s %s timed out after %ss\nstdout: %s\nstderr: %s"
                             % (main, " ".join(args), timeout,
                                _s(e.stdout)[-2000:], _s(e.stderr)[-2000:]))
        if check and p.returncode != 0:
            raise KafkaError("%s %s failed (rc=%d)\nstdout: %s\nstderr: %s"
                             % (main, " ".join(args), p.returncode,
                                p.stdout[-2000:], p.stderr[-2000:]))
        return p

    def describe_topic(self, name):
        """{partition: {"leader", "replicas", "isr", "error"}} (no JVM)."""
        md = metadata(self._live_bootstrap(), [name])
        t = md["topics"].get(name)
        if not t or t["error"] != 0:
            raise KafkaError("topic %s: error %s" % (name, t and t["error"]))
        return t["partitions"]

    def wait_topic(self, name, partitions=None, full_isr=False, timeout=30):
        """Wait until every partition of `name` has a leader (and, if
        full_isr, all its replicas in sync) on the brokers now running."""
        def ok():
            parts = self.describe_topic(name)
            if partitions is not None and len(parts) != partitions:
                return None
            for p in parts.values():
                if p["error"] != 0 or p["leader"] < 0:
                    return None
                if full_isr and sorted(p["isr"]) != sorted(p["replicas"]):
                    return None
            return parts
        return self._wait(ok, timeout, "topic %s to be ready" % name)

    def create_topic(self, name, partitions, replication=1, config=None,
                     timeout=60):
        args = ["--bootstrap-server", self._live_bootstrap(), "--create",
                "--topic", name, "--partitions", str(partitions),
                "--replication-factor", str(replication)]
        for k, v in (config or {}).items():
            args += ["--config", "%s=%s" % (k, v)]
        self.run_tool(MAIN_TOPICS, args, timeout=timeout)
        self.wait_topic(name, partitions, timeout=timeout)

    def delete_topic(self, name, timeout=60):
        self.run_tool(MAIN_TOPICS, ["--bootstrap-server",
                                    self._live_bootstrap(), "--delete",
                                    "--topic", name], timeout=timeout)

        def gone():
            md = metadata(self._live_bootstrap(), [name])
            t = md["topics"].get(name)
            return t is None or t["error"] != 0
        self._wait(gone, timeout, "topic %s to be deleted" % name)

    def list_topics(self, timeout=60):
        p = self.run_tool(MAIN_TOPICS, ["--bootstrap-server",
                                        self._live_bootstrap(), "--list"],
                          timeout=timeout)
        return [l.strip() for l in p.stdout.splitlines() if l.strip()]

    def console_produce(self, topic, records, timeout=60, acks="all",
                        producer_props=None):
        """Produce [(key, value), ...] with Kafka's Java console producer
        (parse.key=true, so the Java default partitioner picks partitions).
        key/value: str, bytes (UTF-8) or None (null); no newlines."""
        lines = []
        for key, value in records:
            k, v = _field(key), _field(value)
            for x in (k, v):
                if "\n" in x or "\r" in x or SEP in x:
                    raise ValueError("key/value may not hold a newline or "
                                     "\\x1f: %r" % x)
            lines.append(k + SEP + v + "\n")
        args = ["--bootstrap-server", self._live_bootstrap(), "--topic", topic,
                "--property", "parse.key=true",
                "--property", "key.separator=" + SEP,
                "--property", "null.marker=" + NULL_MARKER,
                "--producer-property", "acks=" + str(acks),
                "--producer-property", "max.block.ms=%d"
                % int(max(5, timeout - 10) * 1000),
                "--producer-property", "delivery.timeout.ms=%d"
                % int(max(5, timeout - 10) * 1000),
                "--producer-property", "request.timeout.ms=5000",
                "--producer-property", "linger.ms=5"]
        for k, v in (producer_props or {}).items():
            args += ["--producer-property", "%s=%s" % (k, v)]
        p = self.run_tool(MAIN_PRODUCER, args, timeout=timeout,
                          input="".join(lines), check=False)
        if p.returncode != 0 or re.search(r"ERROR|Exception", p.stderr):
            raise KafkaError("console producer to %s failed (rc=%d):\n%s"
                             % (topic, p.returncode, p.stderr[-3000:]))

    def console_consume(self, topic, max_messages, timeout=30, group=None,
                        from_beginning=True, partition=None):
        """Read up to max_messages with the Java console consumer; return
        [(partition, key, value), ...] (None for null key/value). Returns
        early with fewer records if `timeout` seconds pass without one."""
        args = ["--bootstrap-server", self._live_bootstrap(), "--topic", topic,
                "--max-messages", str(max_messages),
                "--timeout-ms", str(int(timeout * 1000)),
                "--property", "print.key=true",
                "--property", "print.partition=true",
                "--property", "key.separator=" + SEP,
                "--property", "null.literal=" + NULL_MARKER]
        if from_beginning:
            args.append("--from-beginning")
        if group:
            args += ["--group", group]
        if partition is not None:
            args += ["--partition", str(partition)]
        p = self.run_tool(MAIN_CONSUMER, args, timeout=timeout + 30,
                          check=False)
        out = []
        for line in p.stdout.splitlines():
            m = re.match(r"Partition:(\d+)" + SEP + "(.*?)" + SEP + "(.*)$",
                         line, re.S)
            if not m:
                continue
            k, v = m.group(2), m.group(3)
            out.append((int(m.group(1)), None if k == NULL_MARKER else k,
                        None if v == NULL_MARKER else v))
        return out

    def describe_group(self, group, timeout=60):
        """Members of consumer group `group` and their assigned partitions:
        [{"group", "consumer_id", "host", "client_id", "assignment":
          {topic: [partitions]}, "target_assignment": {...}}, ...];
        [] when the group has no members or does not exist (yet).
        Parses `kafka-consumer-groups --describe --members --verbose`."""
        p = self.run_tool(MAIN_GROUPS, ["--bootstrap-server",
                                        self._live_bootstrap(), "--describe",
                                        "--group", group, "--members",
                                        "--verbose"],
                          timeout=timeout, check=False)
        text = p.stdout
        both = text + p.stderr
        if re.search(r"has no active members|GroupIdNotFound|does not exist",
                     both):
            return []
        if p.returncode != 0 or re.search(r"^Error", text, re.M):
            raise KafkaError("describe group %s failed (rc=%d): %s%s"
                             % (group, p.returncode, text[-2000:],
                                p.stderr[-2000:]))
        return parse_group_members(text)


def parse_group_members(text):
    """Parse `--describe --members --verbose` output (classic and consumer
    protocol groups). Columns are fixed-width under their header, and the
    assignment column may hold spaces ("t1(0,1), t2(2)")."""
    lines = [l for l in text.splitlines() if l.strip()]
    members = []
    header = None
    for line in lines:
        if re.match(r"\s*GROUP\s+CONSUMER-ID\s", line):
            header = [(m.group(0), m.start())
                      for m in re.finditer(r"\S+", line)]
            continue
        if header is None:
            continue
        row = {}
        for idx, (name, start) in enumerate(header):
            end = header[idx + 1][1] if idx + 1 < len(header) else None
            row[name] = line[start:end].strip()
        # A column wider than its header value can shift: fall back to
        # whitespace split for the fixed leading columns.
        parts = line.split()
        if len(parts) >= 4 and parts[1] != row.get("CONSUMER-ID"):
            row["GROUP"], row["CONSUMER-ID"], row["HOST"], row["CLIENT-ID"] = \
                parts[:4]
        assign = row.get("ASSIGNMENT", row.get("CURRENT-ASSIGNMENT", "-"))
        target = row.get("TARGET-ASSIGNMENT", "-")
        if target in ("", "-"):           # classic-protocol groups
            target = assign
        members.append({
            "group": row.get("GROUP"),
            "consumer_id": row.get("CONSUMER-ID"),
            "host": row.get("HOST"),
            "client_id": row.get("CLIENT-ID"),
            "assignment": parse_assignment(assign),
            "target_assignment": parse_assignment(target),
        })
    return members


def parse_assignment(s):
    """Assignment column -> {"topic": [partitions]}. Kafka 4.x prints
    "t1:0,1;t2:2" (older tools "t1(0,1), t2(2)"); "-" means none."""
    out = {}
    s = (s or "").strip()
    if "(" in s:
        pairs = re.findall(r"([^\s,()]+)\(([\d,\s]*)\)", s)
    else:
        pairs = [tuple(x.rsplit(":", 1)) for x in s.split(";") if ":" in x]
    for topic, parts in pairs:
        out.setdefault(topic.strip(), []).extend(
            int(x) for x in parts.split(",") if x.strip())
    for t in out:
        out[t].sort()
    return out


def _field(x):
    if x is None:
        return NULL_MARKER
    if isinstance(x, bytes):
        return x.decode("utf-8")
    return str(x)


def _s(x):
    if x is None:
        return ""
    return x.decode(errors="replace") if isinstance(x, bytes) else x


class _OrSkip:
    def __init__(self, cluster):
        self.cluster = cluster

    def __enter__(self):
        try:
            return self.cluster.__enter__()
        except KafkaUnavailable as e:
            if _ci():
                print("FAIL: Kafka unavailable under CI: %s" % e.reason,
                      file=sys.stderr, flush=True)
                raise
            print("SKIP: %s" % e.reason, flush=True)
            sys.exit(77)

    def __exit__(self, *exc):
        return self.cluster.__exit__(*exc)


def cluster_or_skip(**kw):
    """`with cluster_or_skip(brokers=1) as k:` -- a KafkaCluster whose
    KafkaUnavailable becomes "SKIP: <reason>" + exit 77 (meson: skipped),
    except under $CI, where it is re-raised (a failure)."""
    return _OrSkip(KafkaCluster(**kw))
