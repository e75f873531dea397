#!/usr/bin/env python3
"""wss on the router's client port (issue 15): --tls-cert/--tls-key, the door
terminating TLS (README "wss"). A CA and server certificates for
127.0.0.1/localhost are made with `openssl` in the test's temp dir; every
client verifies the router's certificate against that CA.

The router echoes (the edge produces client messages to the delivery topic,
one partition), and records are produced through the harness as well:

  records:    produced records arrive over wss, in order (seq 0..N-1).
  echo:       client messages come back in order.
  large:      256 KiB messages both ways (several TLS records each: nothing
              left inside OpenSSL stalls), then a small one right after.
  deflate:    permessage-deflate over wss: three compressed messages of
              about 200 KiB come back compressed and inflate to themselves.
  jwt-list:   a 700-byte Sec-WebSocket-Protocol list gets 101 and kws.v1.
  unmasked:   an unmasked frame over wss is still refused with Close 1002.
  pings:      10 pings in one TLS record get 10 pongs.
  tls1.1:     a client offering at most TLS 1.1 is refused.
  alpn:       offered h2 and http/1.1, the router selects http/1.1.
  plain-http: plain HTTP on the TLS port is closed; wss still works after.
  reload:     cert+key replaced as a Kubernetes secret mount does (..data
              symlink swapped) with a new serial: a new connection sees it,
              a connection from before keeps receiving records; then a
              broken pair (key of another cert): logged, counted, old kept.
"""

import os
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request

import harness as h

TOPIC = "deliveries"
ANSWER_S = 10.0
OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {r.stderr}")


def make_pki(d):
    """CA, and server certs srv1 (serial 0x1001), srv2 (0x1002) with keys."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "2", "-subj", "/CN=kws test CA", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, serial in (("srv1", "0x1001"), ("srv2", "0x1002")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", "/CN=localhost", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", serial, "-days", "2", "-extfile", "san.ext", "-out",
                f"{name}.crt", cwd=d)


def mount(d, version, crt, key):
    """A Kubernetes-style secret mount in d/secret: ..<version>/ holds the
    files, ..data -> ..<version> is swapped atomically (rename of a new
    symlink), tls.crt -> ..data/tls.crt and tls.key -> ..data/tls.key."""
    m = os.path.join(d, "secret")
    os.makedirs(os.path.join(m, ".." + version))
    for src, dst in ((crt, "tls.crt"), (key, "tls.key")):
        with open(os.path.join(d, src), "rb") as f, \
                open(os.path.join(m, ".." + version, dst), "wb") as g:
            g.write(f.read())
    tmp = os.path.join(m, "..data_tmp")
    os.symlink(".." + version, tmp)
    os.rename(tmp, os.path.join(m, "..data"))
    for n in ("tls.crt", "tls.key"):
        if not os.path.islink(os.path.join(m, n)):
            os.symlink(os.path.join("..data", n), os.path.join(m, n))
    return os.path.join(m, "tls.crt"), os.path.join(m, "tls.key")


def client_ctx(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


frame = h.ws_frame


class Wss:
    """A WebSocket client over TLS that verifies the router's certificate
    against the CA file ca (ca=None: plain ws, for tests/bench/tls_cost.py)."""

    def __init__(self, port, ca, client_id, headers=()):
        raw = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_S)
        # The request right after the TLS Finished, without waiting for an ACK.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s, self.serial, self.alpn = raw, None, None
        if ca:
            self.s = client_ctx(ca).wrap_socket(raw, server_hostname="127.0.0.1")
            self.serial = int(self.s.getpeercert()["serialNumber"], 16)
            self.alpn = self.s.selected_alpn_protocol()
        self.head, self.buf = h.ws_upgrade(self.s, port, client_id, headers)
        self.frames = []
        self.eof = False

    def send(self, data):
        self.s.sendall(data)

    def _parse(self):
        frames, self.buf = h.ws_split(self.buf)
        self.frames += [(b0 & 0x0F, payload) for b0, payload in frames]

    def read_until(self, pred, timeout=ANSWER_S):
        deadline = time.monotonic() + timeout
        while not pred(self) and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return pred(self)
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
            self._parse()
        return pred(self)

    def data(self):
        return [p for op, p in self.frames if op in (OP_TEXT, OP_BIN)]

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def metric(router, name, label=""):
    with urllib.request.urlopen(f"http://127.0.0.1:{router.admin_port}/metrics",
                                timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + label + " ") or line.startswith(name + label + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}{label}")


def main():
    with h.Env("wss") as env:
        d = env.dir
        make_pki(d)
        ca = os.path.join(d, "ca.crt")
        crt, key = mount(d, "v1", "srv1.crt", "srv1.key")
        env.start_kafka({TOPIC: 1})
        edge = env.start_edge("edge-0", topic=TOPIC, extra=["--inbound-topic", TOPIC])
        router = env.start_router("router-wss", [edge], [
            "--tls-cert", crt, "--tls-key", key, "--max-frame-bytes", "1MiB", "--deflate", "on"])
        h.wait_all_owned(router, 60)
        port = router.port
        checks = []

        # records: produced through the harness, in order over wss.
        a = Wss(port, ca, "wss-a")
        assert a.serial == 0x1001, hex(a.serial)
        for _ in range(60):
            env.produce(TOPIC, ["wss-a"], 1, tag="warm")
            if a.read_until(lambda c: c.data(), 1):
                break
        assert a.data(), "no warm-up record over wss"
        a.frames.clear()
        env.produce(TOPIC, ["wss-a"], 50, tag="order")
        import json

        def order(c):
            return [json.loads(p)["seq"] for p in c.data()
                    if json.loads(p).get("tag") == "order"]
        assert a.read_until(lambda c: len(order(c)) >= 50), f"got {len(order(a))}/50 records"
        assert order(a) == list(range(50)), order(a)[:10]
        checks.append("records: 50 in order over wss")

        # echo: client messages come back in order.
        a.frames.clear()
        for i in range(30):
            a.send(frame(OP_BIN, b"echo-%d" % i))
        assert a.read_until(lambda c: len(c.data()) >= 30), f"echoed {len(a.data())}/30"
        assert a.data() == [b"echo-%d" % i for i in range(30)], a.data()[:5]
        checks.append("echo: 30 client messages back in order")

        # large: 256 KiB both ways, three times, then a small one.
        a.frames.clear()
        big = [bytes([65 + i]) * (256 * 1024) for i in range(3)]
        for b in big:
            a.send(frame(OP_BIN, b))
        a.send(frame(OP_BIN, b"after-big"))
        assert a.read_until(lambda c: len(c.data()) >= 4, 30), \
            f"large: {len(a.data())}/4 messages back"
        assert a.data() == big + [b"after-big"], [len(x) for x in a.data()]
        checks.append("large: 3 x 256 KiB echoed both ways, no stall")

        # deflate: permessage-deflate over wss (the router's codec writes
        # through lws_write, which send() turns into SSL_write).
        import zlib
        dz = Wss(port, ca, "wss-deflate",
                 ["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
        assert "permessage-deflate" in dz.head, dz.head
        msgs = [b"".join(b'{"k":%d,"v":"%s"},' % (j, b"ab" * (j % 50)) for j in range(i, 3000))
                for i in range(3)]
        co = zlib.compressobj(wbits=-10)
        for m in msgs:
            body = co.compress(m) + co.flush(zlib.Z_SYNC_FLUSH)
            f = bytearray(frame(OP_BIN, body[:-4]))
            f[0] |= 0x40  # RSV1: compressed
            dz.send(bytes(f))
        assert dz.read_until(lambda c: len(c.data()) >= 3, 30), \
            f"deflate: {len(dz.data())}/3 messages back"
        do = zlib.decompressobj(wbits=-15)
        got = [do.decompress(p + b"\x00\x00\xff\xff") for p in dz.data()[:3]]
        assert got == msgs, f"deflate: echoes differ ({[len(g) for g in got]})"
        dz.close()
        checks.append(f"deflate: 3 compressed messages of {len(msgs[0]) // 1024} KiB echoed "
                      "compressed over wss")

        # jwt-list: a browser-sized subprotocol list.
        tok = "kws.token." + "x" * 690
        j = Wss(port, ca, "wss-jwt", [f"Sec-WebSocket-Protocol: kws.v1, {tok}"])
        assert "sec-websocket-protocol: kws.v1" in j.head.lower(), j.head
        j.close()
        checks.append(f"jwt-list: {len(tok) + 8}-byte protocol list accepted")

        # unmasked: still 1002 over wss.
        u = Wss(port, ca, "wss-unmasked")
        u.send(frame(OP_TEXT, b"hello", mask=False))
        assert u.read_until(lambda c: any(op == OP_CLOSE for op, _ in c.frames)), \
            "no Close after an unmasked frame"
        code = [struct.unpack("!H", p[:2])[0] for op, p in u.frames if op == OP_CLOSE][0]
        assert code == 1002, code
        u.close()
        checks.append("unmasked: Close 1002")

        # pings: 10 in one write get 10 pongs.
        p = Wss(port, ca, "wss-pings")
        p.send(b"".join(frame(OP_PING, b"p%d" % i) for i in range(10)))
        pongs = lambda c: [x for op, x in c.frames if op == OP_PONG]
        assert p.read_until(lambda c: len(pongs(c)) >= 10), f"{len(pongs(p))}/10 pongs"
        assert pongs(p) == [b"p%d" % i for i in range(10)], pongs(p)
        p.close()
        checks.append("pings: 10 pongs in order")

        # tls1.1: refused.
        fails0 = metric(router, "kws_router_tls_handshake_failures_total")
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(ca)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        try:
            s = old.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                server_hostname="127.0.0.1")
            raise AssertionError(f"a {s.version()} client was accepted")
        except (ssl.SSLError, ConnectionResetError) as e:
            checks.append(f"tls1.1: refused ({e.__class__.__name__}: {str(e)[:60]})")
        deadline = time.monotonic() + 5
        while metric(router, "kws_router_tls_handshake_failures_total") <= fails0:
            assert time.monotonic() < deadline, "the refused handshake was not counted"
            time.sleep(0.1)

        # alpn
        assert a.alpn == "http/1.1", a.alpn
        checks.append("alpn: http/1.1")

        # plain-http: closed, and nothing else is harmed.
        s = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_S)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
        took = time.monotonic() - t0
        assert b"HTTP/1.1 101" not in got and took < 3, (got[:80], took)
        s.close()
        a.frames.clear()
        a.send(frame(OP_BIN, b"still-here"))
        assert a.read_until(lambda c: b"still-here" in c.data()), "wss broken after plain HTTP"
        checks.append(f"plain-http: closed in {took:.2f}s, wss unharmed")

        # reload: a k8s-style swap to srv2.
        mount(d, "v2", "srv2.crt", "srv2.key")
        deadline = time.monotonic() + 15
        while True:
            n = Wss(port, ca, "wss-new")
            if n.serial == 0x1002:
                break
            n.close()
            assert time.monotonic() < deadline, "new certificate not served after 15 s"
            time.sleep(0.3)
        a.frames.clear()
        env.produce(TOPIC, ["wss-a"], 5, tag="after-reload")
        assert a.read_until(lambda c: len([x for x in c.data() if b"after-reload" in x]) >= 5), \
            "the connection from before the reload stopped receiving"
        assert metric(router, "kws_router_tls_reloads_total", '{result="ok"}') >= 1
        checks.append("reload: new connection sees serial 0x1002, old one still receives")

        # broken pair: srv1's cert with srv2's key: logged, counted, srv2 kept.
        mount(d, "v3", "srv1.crt", "srv2.key")
        router.wait_for(r"cannot be used.*does not match", 15)
        assert metric(router, "kws_router_tls_reloads_total", '{result="failed"}') >= 1
        k = Wss(port, ca, "wss-kept")
        assert k.serial == 0x1002, hex(k.serial)
        k.close()
        n.close()
        checks.append("broken pair: refused with a log line, the previous one kept")
        a.close()
        assert router.alive(), "router died"
        for c in checks:
            h.log("PASS " + c)


if __name__ == "__main__":
    main()
