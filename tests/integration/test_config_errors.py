#!/usr/bin/env python3
"""Errors a user meets when configuring (issue 14, item 10): each bad setting
makes the router or the edge exit with status 2 at once, with one message on
stderr that names the flag, its environment variable and the fix. Runs the
built binaries; no Kafka is needed (the settings are refused before it is
reached), and a good configuration is shown to start."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import harness as h

EDGE_OK = ["--edges", "tcp://127.0.0.1:7101"]


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROUTER_") and not k.startswith("EDGE_")}
    env.update(extra or {})
    return env


def expect_refused(prog, args, wants, env=None):
    r = subprocess.run([prog] + args, capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL, env=clean_env(env))
    name = os.path.basename(prog)
    shown = " ".join(f"{k}={v!r}" for k, v in (env or {}).items())
    shown = (shown + " " if shown else "") + name + " " + " ".join(
        repr(a) if (" " in a or "," in a or not a) else a for a in args)
    err = r.stderr.strip()
    h.log(f"{shown}\n    -> exit {r.returncode}: {err}")
    assert r.returncode == 2, f"{shown}: exit {r.returncode}, want 2\n{r.stdout}{r.stderr}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{shown}: want one line on stderr, got:\n{err}"
    for w in wants:
        assert w in err, f"{shown}: the message does not say {w!r}: {err}"


def busy_port():
    """A socket listening on 127.0.0.1:<port>, as another process would."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def main():
    R, E = h.ROUTER, h.EDGE

    # --edges: one value with a comma, a port out of range, a trailing blank,
    # host:port without the scheme; in a flag and in the variable.
    expect_refused(R, ["--edges", "tcp://127.0.0.1:7101,tcp://127.0.0.1:7102"],
                   ["--edges (ROUTER_EDGES)", "holds a comma",
                    "give --edges once per value, or set ROUTER_EDGES to the "
                    "comma-separated list"])
    expect_refused(R, ["--edges", "tcp://127.0.0.1:99999"],
                   ["--edges (ROUTER_EDGES)", "the port 99999 is not within 1..65535"])
    expect_refused(R, ["--edges", "tcp://127.0.0.1:7101 "],
                   ["--edges (ROUTER_EDGES)", "blank", "remove it"])
    expect_refused(R, ["--edges", "127.0.0.1:7101"],
                   ["--edges (ROUTER_EDGES)",
                    "expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:7101"])
    expect_refused(R, [], ["--edges (ROUTER_EDGES)", "from environment", "'127.0.0.1:7102'",
                           "expected tcp://HOST:PORT"],
                   env={"ROUTER_EDGES": "tcp://127.0.0.1:7101, 127.0.0.1:7102"})
    expect_refused(R, [], ["--edges (ROUTER_EDGES)", "--edges-dns (ROUTER_EDGES_DNS)"])
    expect_refused(R, ["--edges-dns", "tcp://edges.kws.svc:7100"],
                   ["--edges-dns (ROUTER_EDGES_DNS)", "expected HOST:PORT without a scheme"])

    # --listen: out of range, a blank, and a port another process holds.
    expect_refused(R, EDGE_OK + ["--listen", "99999"],
                   ["--listen (ROUTER_LISTEN)", "the port 99999 is not within 1..65535"])
    expect_refused(R, EDGE_OK + ["--listen", "8080 "], ["--listen (ROUTER_LISTEN)", "blank"])
    s, port = busy_port()
    with s:
        expect_refused(R, EDGE_OK + ["--listen", f"127.0.0.1:{port}"],
                       [f"cannot listen on 127.0.0.1:{port} (--listen, ROUTER_LISTEN): "
                        "address in use"])
        expect_refused(R, EDGE_OK, [f"cannot listen on 127.0.0.1:{port} (--listen, "
                                    "ROUTER_LISTEN): address in use"],
                       env={"ROUTER_LISTEN": f"127.0.0.1:{port}"})

        # The edge's --listen.
        expect_refused(E, ["--bootstrap", "127.0.0.1:9092", "--listen", "7100"],
                       ["--listen (EDGE_LISTEN)", "'7100'",
                        "expected tcp://HOST:PORT, e.g. tcp://0.0.0.0:7100"])
        expect_refused(E, ["--bootstrap", "127.0.0.1:9092", "--listen",
                           f"tcp://127.0.0.1:{port}"],
                       [f"cannot listen on tcp://127.0.0.1:{port} (--listen, EDGE_LISTEN): "
                        "address in use"])
    expect_refused(E, ["--bootstrap", "127.0.0.1:9092", "--listen", "tcp://0.0.0.0:70000"],
                   ["--listen (EDGE_LISTEN)", "not within 1..65535"])
    expect_refused(E, [], ["--bootstrap (EDGE_BOOTSTRAP) is required"])

    # Identity modes that need more settings.
    expect_refused(R, EDGE_OK + ["--auth", "jwt"],
                   ["--auth jwt needs keys", "--jwt-keys (ROUTER_JWT_KEYS)"])
    expect_refused(R, EDGE_OK, ["--jwt-keys (ROUTER_JWT_KEYS)"], env={"ROUTER_AUTH": "jwt"})
    expect_refused(R, EDGE_OK + ["--auth", "header-from-proxies"],
                   ["--auth header-from-proxies needs --trusted-proxies "
                    "(ROUTER_TRUSTED_PROXIES)"])

    # wss: both files or neither; readable; PEM; the key of that certificate.
    with tempfile.TemporaryDirectory(prefix="kws-tls-") as d:
        for n in ("a", "b"):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", f"{d}/{n}.key", "-out", f"{d}/{n}.crt", "-days", "1",
                            "-subj", f"/CN={n}"], check=True, capture_output=True)
        expect_refused(R, EDGE_OK + ["--tls-cert", f"{d}/a.crt"],
                       ["--tls-cert (ROUTER_TLS_CERT) and --tls-key (ROUTER_TLS_KEY)",
                        "give --tls-key too, or neither for plain ws"])
        expect_refused(R, EDGE_OK, ["give --tls-cert too"], env={"ROUTER_TLS_KEY": f"{d}/a.key"})
        expect_refused(R, EDGE_OK + ["--tls-cert", f"{d}/none.crt", "--tls-key", f"{d}/a.key"],
                       ["--tls-cert (ROUTER_TLS_CERT)", f"cannot read {d}/none.crt",
                        "give a readable PEM certificate"])
        os.chmod(f"{d}/b.key", 0)
        if os.geteuid() != 0:  # root reads any file
            expect_refused(R, EDGE_OK + ["--tls-cert", f"{d}/b.crt", "--tls-key", f"{d}/b.key"],
                           ["--tls-key (ROUTER_TLS_KEY)", "Permission denied"])
        os.chmod(f"{d}/b.key", 0o600)
        expect_refused(R, EDGE_OK + ["--tls-cert", f"{d}/a.crt", "--tls-key", f"{d}/b.key"],
                       ["--tls-key (ROUTER_TLS_KEY) with --tls-cert (ROUTER_TLS_CERT)",
                        f"the key in {d}/b.key does not match the certificate in {d}/a.crt",
                        "give the private key of that certificate"])
        expect_refused(R, EDGE_OK, ["--tls-key (ROUTER_TLS_KEY)", "no usable PEM private key",
                                    "give a readable PEM private key file"],
                       env={"ROUTER_TLS_CERT": f"{d}/a.crt", "ROUTER_TLS_KEY": f"{d}/a.crt"})
        expect_refused(R, EDGE_OK + ["--tls-cert", f"{d}/a.key", "--tls-key", f"{d}/a.key"],
                       ["--tls-cert (ROUTER_TLS_CERT)", "no PEM certificate in"])

    # And a good configuration starts (the checks refuse nothing valid).
    with h.Env("config-errors") as env:
        e1, e2 = h.Placeholder("edge-1"), h.Placeholder("edge-2")
        port, admin = h.free_port(), h.free_port()
        r = env.spawn("router", [R, "--listen", f"127.0.0.1:{port}",
                                 "--admin-listen", f"127.0.0.1:{admin}"],
                      env=clean_env({"ROUTER_EDGES": f"{e1.url}, {e2.url}"}))
        r.wait_for(r"WebSockets on 127\.0\.0\.1:%d/ws.*2 edges" % port, 30)
        rc = r.stop(signal.SIGTERM)
        h.log(f"router with good settings: started, stopped with exit {rc}")
        assert rc == 0
        # A SIGTERM while the workers are still starting (a pod deleted
        # right after it was created): the supervisor forwards it the
        # moment worker 0 has exec'd (its environment names it a worker),
        # before its loop handles signals; the worker must drain once it
        # can, not die of it, and the router exit 0.
        for attempt in range(6):
            port = h.free_port()
            r = env.spawn(f"router-early-{attempt}",
                          [R, "--listen", f"127.0.0.1:{port}", "--workers", "2",
                           "--admin-listen", f"127.0.0.1:{h.free_port()}"],
                          env=clean_env({"ROUTER_EDGES": f"{e1.url}, {e2.url}"}))
            pid = int(r.wait_for(r"worker 0: started, pid (\d+)", 30))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        if b"KWS_ROUTER_WORKER=" in f.read():
                            break
                except OSError:
                    break
            rc = r.stop(signal.SIGTERM)
            killed = re.findall(r"worker \d+ \(pid \d+\) killed by signal \d+", r.text())
            h.log(f"SIGTERM as worker 0 starts ({attempt + 1}): exit {rc}, "
                  f"{killed or 'no worker killed'}")
            assert rc == 0 and not killed, r.text()[-2000:]
        env.failed = False
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
