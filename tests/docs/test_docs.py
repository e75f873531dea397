#!/usr/bin/env python3
"""Docs that run (issue 14 item 11): the shell blocks of README.md and
deploy/README.md marked to be run are run, so the docs cannot drift.

- Blocks fenced ```sh run are executed, in document order, against the local
  run (deploy/local/run on the mock cluster), started here on free ports: the
  documented ports (8080, 8088, 9090..9092) are replaced by the ones used.
  BOOTSTRAP (the bootstrap address the run printed) and TOKEN (its admin
  token) are set, as the README tells a user to. Each block runs under
  `bash -euo pipefail` with curl given --fail-with-body, so an HTTP error
  fails it too, and with stdin at end of input (a terminal client must stop).
- Blocks fenced ```sh chart need a Kubernetes cluster (helm install/upgrade):
  they are rendered with `helm template` instead (helm as provisioned by
  tests/k8s/check.sh under ~/.cache/kws-tools), and every --set value must
  appear in the rendered objects. kubectl and docker blocks are not marked and
  not run.
- Finally the local run gets SIGINT, as from Ctrl-C in its terminal (the whole
  process group), and must be done within 5 s with exit status 0.

Environment (tests/docs/meson.build): KWS_BUILD, KWS_SOURCE; KWS_TOOLS_CACHE
(where helm is, as for tests/k8s/check.sh).
"""

import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SOURCE = os.environ.get("KWS_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("KWS_BUILD", os.path.join(SOURCE, "build"))
TOKEN = "docs-test-admin-token"
DOCS = ["README.md", os.path.join("deploy", "README.md")]
HELM_VERSION = "v3.22.0"  # as tests/k8s/check.sh


def log(msg):
    print(msg, flush=True)


def blocks(kind):
    """(file, line, text) of every block fenced ```sh <kind>, in order."""
    out = []
    for doc in DOCS:
        text = open(os.path.join(SOURCE, doc), encoding="utf-8").read()
        for m in re.finditer(r"^```sh " + kind + r"\n(.*?)^```$", text, re.S | re.M):
            out.append((doc, text.count("\n", 0, m.start()) + 1, m.group(1)))
    return out


def free_run(n):
    """The first of n consecutive ports that are all free on 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(20000, 60000)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {n} consecutive free ports")


class LocalRun:
    def __init__(self):
        self.ws = free_run(1)
        self.demo = free_run(1)
        self.admin = free_run(3)
        self.link = free_run(3)
        env = dict(os.environ, KWS_BUILD=BUILD, KWS_ADMIN_TOKEN=TOKEN)
        args = [os.path.join(SOURCE, "deploy", "local", "run"), "--port", str(self.ws),
                "--demo-port", str(self.demo), "--admin-port-base", str(self.admin),
                "--link-port-base", str(self.link)]
        log("$ " + " ".join(args))
        # A session of its own, so SIGINT can go to its whole process group,
        # as Ctrl-C in a terminal does.
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True, env=env,
                                  start_new_session=True)
        self.out = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.out.append(line)
            if "Press Ctrl-C" in line:
                self.ready.set()
        self.ready.set()

    def text(self):
        return "".join(self.out)

    def ports(self):
        """Documented port -> the port this run uses."""
        return {8080: self.ws, 8088: self.demo, 9090: self.admin, 9091: self.admin + 1,
                9092: self.admin + 2}


def run_block(run, doc, line, body, env):
    ports = run.ports()
    script = re.sub(r"(?<=:)(8080|8088|9090|9091|9092)\b",
                    lambda m: str(ports[int(m.group(1))]), body)
    if os.path.realpath(BUILD) != os.path.realpath(os.path.join(SOURCE, "build")):
        script = re.sub(r"(?<![\w/])build/", BUILD.rstrip("/") + "/", script)
    prelude = 'curl() { command curl --fail-with-body --max-time 20 "$@"; }\n'
    log(f"--- {doc}:{line} (```sh run)")
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + script], cwd=SOURCE,
                       env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120)
    log(r.stdout.rstrip())
    if r.stderr.strip():
        log("(stderr) " + r.stderr.rstrip())
    log(f"--- exit {r.returncode} in {time.monotonic() - t0:.1f}s")
    assert r.returncode == 0, f"{doc}:{line}: the block failed (exit {r.returncode})"
    return r.stdout + r.stderr


def local_run_blocks():
    run_blocks = blocks("run")
    assert run_blocks, "no ```sh run blocks found"
    run = LocalRun()
    try:
        if not run.ready.wait(120) or run.p.poll() is not None:
            raise AssertionError("the local run did not start:\n" + run.text())
        banner = run.text()
        log(banner)
        boot = re.search(r"bootstrap:\s+(\S+)", banner).group(1)
        assert f"http://127.0.0.1:{run.admin}/ (router status page), :{run.admin + 1} and " \
               f":{run.admin + 2} (edges)" in banner, "the banner names the admin ports used"
        logs = re.search(r"logs:\s+(\S+)", banner).group(1)
        assert open(os.path.join(logs, "admin-token")).read().strip() == TOKEN
        env = dict(os.environ, BOOTSTRAP=boot, TOKEN=TOKEN)
        out = ""
        for doc, line, body in run_blocks:
            out += run_block(run, doc, line, body, env)
        # What the blocks claim, checked on what they printed.
        assert '{"ready":true}' in out, "the readyz examples answer ready"
        assert "closed: 1000" in out, "the terminal client stops at end of input (Ctrl-D)"
        assert re.search(r"^\d+ \d+ client-1 hello from client-1$", out, re.M), \
            "the inbound topic holds the line the client sent"
        assert "PRODUCED 1 records, 0 failed" in out, "the chosen record was produced"
    finally:
        t0 = time.monotonic()
        if run.p.poll() is None:
            os.killpg(run.p.pid, signal.SIGINT)
        try:
            rc = run.p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(run.p.pid, signal.SIGKILL)
            rc = None
        took = time.monotonic() - t0
        time.sleep(0.2)
        log("".join(run.out[-4:]).rstrip())
    log(f"Ctrl-C (SIGINT to the process group): exit {rc} in {took:.2f}s")
    assert rc == 0, f"the local run exited {rc} after Ctrl-C, want 0"
    assert took < 5, f"the local run took {took:.1f}s to stop, want < 5 s"


def helm_path():
    cache = os.environ.get("KWS_TOOLS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kws-tools")
    path = os.path.join(cache, "bin", "helm-" + HELM_VERSION)
    return path if os.access(path, os.X_OK) else None


def chart_blocks():
    charts = blocks("chart")
    assert charts, "no ```sh chart blocks found"
    helm = helm_path()
    if not helm:
        return False
    installed = []  # --set arguments of the last install (for --reuse-values)
    for doc, line, body in charts:
        argv = shlex.split(body.replace("\\\n", " "))
        assert argv[0] == "helm" and argv[1] in ("install", "upgrade"), f"{doc}:{line}: {argv[:2]}"
        name, chart, rest = argv[2], argv[3], argv[4:]
        sets, other = [], []
        i = 0
        while i < len(rest):
            a = rest[i]
            if a == "--set":
                sets.append(rest[i + 1])
                i += 2
            elif a in ("--create-namespace", "--reuse-values"):
                i += 1  # cluster-side only
            elif a in ("--namespace", "-n"):
                other += ["--namespace", rest[i + 1]]
                i += 2
            else:
                raise AssertionError(f"{doc}:{line}: unexpected helm argument {a!r}")
        if argv[1] == "install":
            installed = list(sets)
        elif "--reuse-values" in rest:
            sets = installed + sets
        cmd = [helm, "template", name, os.path.join(SOURCE, chart)] + other
        for s in sets:
            cmd += ["--set", s]
        log(f"--- {doc}:{line} (```sh chart): helm {argv[1]} rendered as: "
            + " ".join(shlex.quote(c) for c in ["helm"] + cmd[1:]))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{doc}:{line}: helm template failed: {r.stderr.strip()}"
        for s in sets:
            key, value = s.split("=", 1)
            value = value.replace("\\,", ",")
            want = value
            if key.endswith(".replicas"):
                want = f"replicas: {value}\n"  # the workload's, not any "6"
            assert want in r.stdout, f"{doc}:{line}: {key}={value} is not in the rendered chart"
            log(f"    {key}={value}: rendered")
        log(f"--- {len(r.stdout.splitlines())} lines rendered")
    return True


def main():
    local_run_blocks()
    if not chart_blocks():
        msg = "helm is not provisioned (tests/k8s/check.sh builds it): chart blocks not rendered"
        if os.environ.get("CI"):
            print("FAIL: " + msg)
            return 1
        print("SKIP: " + msg)
        return 77
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
