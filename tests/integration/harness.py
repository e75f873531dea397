"""Harness for the integration tests: real processes over loopback.

Starts Kafka (librdkafka's mock cluster via tests/tools/kafka-mock, or a real
Apache Kafka broker via tests/kafka/kafkafix.py), edges and routers from the
build tree, and connects real WebSocket clients (Debian's python3-websockets).
Every wait is bounded. Logs of every process go to a temp dir and are printed
when a test fails.

Environment (set by meson, see tests/integration/meson.build):
  KWS_BUILD   the meson build directory
  KWS_SOURCE  the source directory
  KWS_KAFKA   "mock" or "real" (default: mock)
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SOURCE = os.environ.get("KWS_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("KWS_BUILD", os.path.join(SOURCE, "build"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "kafka"))

EDGE = os.path.join(BUILD, "edge", "edge")
ROUTER = os.path.join(BUILD, "router", "router")
KAFKA_MOCK = os.path.join(BUILD, "tests", "tools", "kafka-mock")
PRODUCE = os.path.join(BUILD, "tests", "tools", "produce")

# Routers run as one process unless a test asks for --workers (test_workers):
# the tests of one router's behaviour (its limits, its logs) stay as they were
# on any machine, whatever its CPU count (the default is one worker per CPU).
os.environ.setdefault("ROUTER_WORKERS", "1")

# Consumer settings that make group changes fast enough for tests.
FAST_GROUP = ["--kafka-prop", "session.timeout.ms=6000",
              "--kafka-prop", "max.poll.interval.ms=10000",
              "--kafka-prop", "heartbeat.interval.ms=500"]


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose stdout+stderr go to a log file."""

    def __init__(self, name, args, workdir, env=None):
        self.name = name
        self.args = args
        self.log_path = os.path.join(workdir, name + ".log")
        self._log = open(self.log_path, "wb")
        self.p = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=30, count=1):
        """Waits until pattern appears count times in the log; returns the last match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = rx.findall(self.text())
            if len(found) >= count:
                return found[-1]
            if self.p.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.p.returncode} "
                                     f"while waiting for /{pattern}/")
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: /{pattern}/ not seen within {timeout}s")

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._log.close()
        return self.p.returncode


class MockKafka:
    """librdkafka's mock cluster (tests/tools/kafka-mock): no Java needed."""

    kind = "mock"

    def __init__(self, env, topics):
        args = [KAFKA_MOCK]
        for name, parts in topics.items():
            args += ["--topic", f"{name}:{parts}"]
        self.proc = env.spawn("kafka-mock", args)
        self.bootstrap = self.proc.wait_for(r"BOOTSTRAP (\S+)", 20)
        self.version = "librdkafka mock cluster"

    def stop(self):
        self.proc.stop()


class RealKafka:
    """A real Apache Kafka broker (tests/kafka/kafkafix.py)."""

    kind = "real"

    def __init__(self, env, topics):
        import kafkafix
        self._cm = kafkafix.cluster_or_skip(brokers=1)
        self.cluster = self._cm.__enter__()
        self.bootstrap = self.cluster.bootstrap
        self.version = self.cluster.version
        for name, parts in topics.items():
            self.cluster.create_topic(name, partitions=parts)

    def stop(self):
        self._cm.__exit__(None, None, None)


class Env:
    """One test's processes and temp dir; use as a context manager."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"kws-{name}-")
        self.procs = []
        self.kafka = None
        self.failed = True

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        for p in reversed(self.procs):
            p.stop()
        if self.kafka:
            self.kafka.stop()
        if et is not None and et is not SystemExit:
            for p in self.procs:
                tail = p.text().splitlines()[-60:]
                print(f"----- {p.name} log (last {len(tail)} lines) -----", file=sys.stderr)
                print("\n".join(tail), file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def spawn(self, name, args, env=None):
        p = Proc(name, args, self.dir, env)
        self.procs.append(p)
        return p

    def start_kafka(self, topics):
        kind = os.environ.get("KWS_KAFKA", "mock")
        t0 = time.monotonic()
        self.kafka = RealKafka(self, topics) if kind == "real" else MockKafka(self, topics)
        log(f"kafka: {self.kafka.version} at {self.kafka.bootstrap} "
            f"(ready in {time.monotonic() - t0:.1f}s)")
        return self.kafka

    def start_edge(self, name, topic="deliveries", group="kws-edge", extra=(), port=None,
                   fast_group=True):
        """fast_group=False: the edge's shipped group timeouts instead of FAST_GROUP."""
        port = port or free_port()
        args = [EDGE, "--bootstrap", self.kafka.bootstrap, "--topic", topic, "--group", group,
                "--listen", f"tcp://127.0.0.1:{port}", "--edge-id", name]
        if fast_group:
            args += FAST_GROUP
        admin = None
        if "--admin-listen" not in extra:
            admin = free_port()
            args += ["--admin-listen", f"127.0.0.1:{admin}"]
        p = self.spawn(name, args + list(extra))
        p.url = f"tcp://127.0.0.1:{port}"
        p.admin_port = admin
        p.wait_for(r"listening on", 30)
        return p

    def start_stoppable_edge(self, name, extra=()):
        """An edge with the shipped group timeouts and a 60 s session
        timeout, so that it stays in its group while a test stops it
        (SIGSTOP) to pile up a backlog."""
        return self.start_edge(name, fast_group=False,
                               extra=["--kafka-prop", "session.timeout.ms=60000",
                                      "--kafka-prop", "heartbeat.interval.ms=1000"] + list(extra))

    def start_router(self, name, edges, extra=(), env=None):
        port = free_port()
        args = [ROUTER, "--listen", f"127.0.0.1:{port}", "--router-id", name]
        for e in edges:
            args += ["--edges", e.url]
        admin = None
        if "--admin-listen" not in extra:
            admin = free_port()
            args += ["--admin-listen", f"127.0.0.1:{admin}"]
        p = self.spawn(name, args + list(extra), env)
        p.port = port
        p.admin_port = admin
        p.ws_url = f"ws://127.0.0.1:{port}/ws"
        return p

    def produce(self, topic, keys, count, tag=None, extra=()):
        args = [PRODUCE, "--bootstrap", self.kafka.bootstrap, "--topic", topic,
                "--keys", ",".join(keys), "--count", str(count)]
        if tag:
            args += ["--tag", tag]
        r = subprocess.run(args + list(extra), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"produce failed ({r.returncode}): {r.stdout}{r.stderr}")
        return r.stdout


def http_json(port, path):
    """GET http://127.0.0.1:port/path as JSON (admin API)."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def admin_request(port, path, method="GET", token=None, timeout=15):
    """(status, body) of an admin API request, with a bearer token if given;
    HTTP errors are answers too."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric_total(text, name, **labels):
    """The sum of the samples of series name in a /metrics text whose labels
    include the given ones; None if there is none."""
    import re
    total = None
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total = (total or 0) + float(m.group(3))
    return total


def edge_metric(edge, name, **labels):
    """metric_total of the edge's /metrics, 0 when the series is absent."""
    status, text = admin_request(edge.admin_port, "/metrics")
    return metric_total(text, name, **labels) or 0


def backlog_while_stopped(env, edge, keys, count, tag="backlog", extra=()):
    """Produces count records a key to "deliveries" while the edge is
    stopped (SIGSTOP), so that they wait in Kafka as a backlog; then lets
    the edge go on."""
    os.kill(edge.p.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        env.produce("deliveries", keys, count, tag=tag, extra=extra)
        log(f"produced {len(keys) * count} records in {time.monotonic() - t0:.1f}s "
            f"with the edge stopped")
    finally:
        os.kill(edge.p.pid, signal.SIGCONT)


class Placeholder:
    """An edge that will start later: routers can be given its URL now."""

    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"


def wait_all_owned(router, timeout=60):
    router.wait_for(r"all \d+ partitions have owners", timeout)


class Collector:
    """A WebSocket client that records every message it receives.

    With framed=True it speaks the kws.v1 subprotocol: it keeps its position
    (partition, next offset), records the status lines, and can reconnect
    presenting its position (to the same or another router)."""

    def __init__(self, url, client_id, headers=None, framed=False):
        self.url = url
        self.client_id = client_id
        self.headers = {"X-Client-Id": client_id} if headers is None else headers
        self.framed = framed
        self.messages = []      # bodies, across every connection
        self.times = []         # monotonic receipt time of each message
        self.closes = []
        self.offsets = []       # (partition, offset) of each framed record
        self.statuses = []      # (state, partition, offset) status lines
        self.position = None    # (partition, next offset)
        self.ws = None
        self.close_code = None
        self.task = None
        self.connections = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def connect(self, url=None, resume=False):
        import websockets
        if url:
            self.url = url
        headers = dict(self.headers)
        if resume and self.position:
            headers["X-Kws-Position"] = "%d:%d" % self.position
        kw = {"subprotocols": ["kws.v1"]} if self.framed else {}
        self.close_code = None
        self.ws = await websockets.connect(self.url, extra_headers=headers, max_size=None,
                                           open_timeout=10, **kw)
        self.connections += 1
        if not self.gate.is_set():
            self._pin_rcvbuf()
        self.task = asyncio.ensure_future(self._read())

    def _take(self, m):
        if not self.framed:
            self.messages.append(m)
            self.times.append(time.monotonic())
            return
        raw = m.encode() if isinstance(m, str) else m
        head, _, body = raw.partition(b"\n")
        f = head.decode().split(" ")
        if f[0] == "d":
            p, o = int(f[1]), int(f[2])
            self.offsets.append((p, o))
            self.position = (p, o + 1)
            self.messages.append(body)
            self.times.append(time.monotonic())
        elif f[0] == "s":
            self.statuses.append((f[1], int(f[2]), int(f[3])))
            if self.position is None and f[1] == "live":
                self.position = (int(f[2]), int(f[3]))
        else:
            raise AssertionError(f"{self.client_id}: unknown kws.v1 line {head!r}")

    async def _read(self):
        import websockets
        try:
            async for m in self.ws:
                await self.gate.wait()
                self._take(m)
        except websockets.ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    def records(self, tag=None):
        """The JSON records received (those with the given tag, if any)."""
        out = []
        for m in self.messages:
            try:
                r = json.loads(m)
            except ValueError:
                continue
            if tag is None or r.get("tag") == tag:
                out.append(r)
        return out

    def longest_gap(self, tag):
        """Longest time between two consecutive records of this tag (s)."""
        ts = []
        for m, t in zip(self.messages, self.times):
            try:
                if json.loads(m).get("tag") == tag:
                    ts.append(t)
            except ValueError:
                pass
        return max((b - a for a, b in zip(ts, ts[1:])), default=0.0)

    async def close(self):
        if self.ws:
            await self.ws.close()
        if self.task:
            await asyncio.wait_for(self.task, 10)

    async def drop(self):
        """Closes the connection and waits until the reader has stopped."""
        await self.close()

    def _pin_rcvbuf(self):
        """While stalled, the connection's receive buffer is 64 KiB (stall);
        a connection that is already gone is left alone."""
        sock = self.ws.transport.get_extra_info("socket") if self.ws else None
        try:
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        except OSError:
            pass

    def stall(self, on=True):
        """Stops (or resumes) taking messages; the socket stays open: a
        client that hangs. Once websockets' own queue is full it stops
        reading the socket, and the router sees its queue grow. The socket's
        receive buffer is pinned to 64 KiB: Linux grows it up to
        net.ipv4.tcp_rmem's maximum (32 MiB on these machines), which could
        swallow a whole test's flood without the router ever seeing a
        stalled client."""
        if on:
            self.gate.clear()
            self._pin_rcvbuf()
        else:
            self.gate.set()

    async def run_resuming(self, urls, stop):
        """Stays connected until stop is set: whenever the connection ends
        (router killed, closed with a code), reconnects to the next URL,
        presenting the position. Records close codes and reconnect times."""
        import websockets
        self.closes = []
        i = urls.index(self.url) if self.url in urls else 0
        while not stop.is_set():
            if getattr(self, "hold", False):
                await asyncio.sleep(0.1)
                continue
            if self.ws is None or self.task is None or self.task.done():
                try:
                    await self.connect(urls[i % len(urls)], resume=True)
                except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
                    i += 1
                    await asyncio.sleep(0.2)
                    continue
            while not self.task.done() and not stop.is_set():
                await asyncio.sleep(0.05)
            if stop.is_set():
                break
            self.closes.append((self.close_code, time.monotonic()))
            i += 1
            await asyncio.sleep(0.2)


def ws_frame(op, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """One WebSocket frame as a client sends it: opcode op, the RSV bits rsv
    (0-7, RSV1 = 4), masked with a random key unless mask=False; length
    overrides the length field (to lie about it)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    m = (key * (len(payload) // 4 + 1))[:len(payload)]
    return head + key + bytes(a ^ b for a, b in zip(payload, m))


def ws_split(buf):
    """Splits buf, bytes a router sent, into its whole frames; returns
    ([(first byte, payload)], the bytes of an incomplete frame left over).
    Raises if a frame is masked (RFC 6455 5.1: a server never masks)."""
    out = []
    while len(buf) >= 2:
        n, i = buf[1] & 0x7F, 2
        if buf[1] & 0x80:
            raise AssertionError("the router sent a masked frame")
        if n == 126:
            if len(buf) < 4:
                break
            n, i = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, i = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < i + n:
            break
        out.append((buf[0], buf[i:i + n]))
        buf = buf[i + n:]
    return out, buf


def ws_upgrade(sock, port, client_id, headers=(), chunk=65536):
    """Upgrades sock (a connected socket, plain or TLS) to a WebSocket as
    client_id, by hand; returns (head, bytes read past it). Raises if the
    router hangs up or answers other than 101."""
    req = ["GET /ws HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
           "Connection: Upgrade", "Sec-WebSocket-Version: 13",
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", f"X-Client-Id: {client_id}"]
    req += list(headers)
    sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(chunk)
        if not data:
            raise AssertionError("router hung up during the handshake")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise AssertionError(f"handshake refused: {head[:200]!r}")
    return head.decode("latin-1"), rest


def raw_handshake(port, path="/ws", headers=()):
    """Sends a WebSocket upgrade by hand; returns (status, body)."""
    req = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
           "Connection: Upgrade", "Sec-WebSocket-Version: 13",
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="] + list(headers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
        data = b""
        while True:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
            if b"101 Switching" in data:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head else 0
    return status, body.decode("utf-8", "replace")


async def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def warm_up(env, clients, topic="deliveries", timeout=60):
    """Produces tagged warm-up records until every client has received one:
    from then on each client's session is live at its edge, so nothing
    produced later can be missed by a client that starts at the live end."""
    keys = [c.client_id for c in clients]
    deadline = time.monotonic() + timeout
    while True:
        env.produce(topic, keys, 1, tag="warmup")
        try:
            await wait_until(lambda: all(c.records("warmup") for c in clients), 2, "warm-up")
            return
        except AssertionError:
            if time.monotonic() > deadline:
                missing = [c.client_id for c in clients if not c.records("warmup")]
                raise AssertionError(f"clients never became live: {missing[:10]}")


class Stream:
    """A producer writing records tagged `tag` for keys, round-robin at `rate`
    records a second in total, until stop() (produce --forever). A test
    disturbs the system while it runs, so how long it runs follows what
    happens, not a guess; afterwards counts() says how many records each key
    got."""

    def __init__(self, env, keys, rate, tag, topic="deliveries", bootstrap=None):
        self.keys = list(keys)
        self.tag = tag
        self.total = None
        bootstrap = bootstrap or env.kafka.bootstrap
        self.p = subprocess.Popen([PRODUCE, "--bootstrap", bootstrap, "--topic", topic,
                                   "--keys", ",".join(self.keys), "--forever",
                                   "--rate", str(rate), "--tag", tag],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def running(self):
        return self.p.poll() is None

    async def stop(self):
        """Stops producing and waits until every record is acknowledged;
        returns how many were written."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        out, _ = await loop.run_in_executor(None, self.p.communicate)
        m = re.search(r"PRODUCED (\d+) records, (\d+) failed", out or "")
        if self.p.returncode != 0 or not m or m.group(2) != "0":
            raise AssertionError(f"producer of {self.tag} failed ({self.p.returncode}): {out}")
        self.total = int(m.group(1))
        return self.total

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def counts(self):
        """Records per key (produce takes the keys in turn)."""
        n, k = self.total, len(self.keys)
        return {key: n // k + (1 if i < n % k else 0) for i, key in enumerate(self.keys)}


def wall_ms():
    """The clock of the "ts" field produce writes into each record."""
    return time.time() * 1000


async def wait_produced_after(clients, tag, since_ms, timeout, what, count=1):
    """Waits until every client has received `count` records of tag that were
    produced after since_ms (wall ms, see wall_ms): records are flowing to
    each of them."""
    deadline = time.monotonic() + timeout
    behind = list(clients)
    while True:
        behind = [c for c in behind
                  if sum(1 for r in c.records(tag) if r.get("ts", 0) > since_ms) < count]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: "
                                 f"{len(behind)} clients behind, e.g. "
                                 f"{[c.client_id for c in behind[:5]]}")
        await asyncio.sleep(0.2)


def produced_between(clients, tag, t0_ms, t1_ms):
    """How many records of tag the clients got that were produced in [t0, t1]."""
    return sum(1 for c in clients for r in c.records(tag) if t0_ms <= r.get("ts", 0) <= t1_ms)


async def framed_clients(env, url, keys):
    """A kws.v1 client for each key, connected to url and warmed up."""
    clients = [Collector(url, k, framed=True) for k in keys]
    for c in clients:
        await c.connect()
    await warm_up(env, clients)
    return clients


async def receive_all(clients, count, tag, timeout, what):
    """Waits until every client has count records of tag, lets any
    duplicate show up, and returns (the seconds that took, check_streams's
    (lost, duplicated, reordered, foreign))."""
    t0 = time.monotonic()
    await wait_until(lambda: all(len(c.records(tag)) >= count for c in clients), timeout, what)
    took = time.monotonic() - t0
    await asyncio.sleep(0.3)
    return took, check_streams(clients, count, tag)


def link_trouble(edge, router):
    """(times the edge held Kafka back for a router, sends it refused to a
    router link, connections the router's log says ended)."""
    return (edge_metric(edge, "kws_edge_link_backlogged_total"),
            edge_metric(edge, "kws_edge_link_errors_total", kind="send_refused"),
            router.text().count("connection ended"))


class SlowProxy:
    """Forwards TCP connections to the edge: the edge's bytes at rate bytes a
    second, the router's at once (a router that reads slowly). Counts the
    connections the router made through it. Give the router the proxy as
    its edge (its url)."""

    def __init__(self, edge_port, rate):
        self.edge_port = edge_port
        self.rate = rate
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.url = f"tcp://127.0.0.1:{self.ls.getsockname()[1]}"
        self.connections = 0
        self.passed = 0  # bytes from the edge to the router
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                down, _ = self.ls.accept()
            except OSError:
                return
            up = socket.socket()
            # A small receive buffer: the edge's bytes wait on the edge.
            up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            try:
                up.connect(("127.0.0.1", self.edge_port))
            except OSError:
                down.close()
                continue
            self.connections += 1
            threading.Thread(target=self._pipe, args=(up, down, self.rate), daemon=True).start()
            threading.Thread(target=self._pipe, args=(down, up, None), daemon=True).start()

    def _pipe(self, src, dst, rate):
        t0, sent = time.monotonic(), 0
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
                if rate:
                    sent += len(b)
                    self.passed += len(b)
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
                    elif ahead < -0.1:  # idle: no credit for a burst later
                        t0, sent = time.monotonic(), 0
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.ls.close()


def check_streams(clients, count, tag):
    """Per client: exactly seq 0..count-1 of its own key, in order, once
    (count: one number for all, or a dict by client id, as Stream.counts).
    Returns (lost, duplicated, reordered, foreign)."""
    lost = dup = reordered = foreign = 0
    for c in clients:
        n = count[c.client_id] if isinstance(count, dict) else count
        recs = c.records(tag)
        foreign += sum(1 for r in recs if r.get("key") != c.client_id)
        seqs = [r["seq"] for r in recs if r.get("key") == c.client_id]
        seen = set()
        last = -1
        for s in seqs:
            if s in seen:
                dup += 1
                continue
            seen.add(s)
            if s < last:
                reordered += 1
            last = max(last, s)
        lost += sum(1 for s in range(n) if s not in seen)
    return lost, dup, reordered, foreign
