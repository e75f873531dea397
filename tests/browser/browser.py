"""Support for the browser tests: headless Chromium driven through
driver.mjs (puppeteer-core), a local HTTP server for the pages, the JS
client and a development token endpoint, and HS256 token minting.

Skips (exit 77) when Chromium, Node.js or tests/browser/node_modules are
missing, except under CI=1, where that is a failure."""

import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
JS_SRC = os.path.join(SOURCE, "clients", "js", "src")
PAGES = os.path.join(HERE, "pages")


def skip_or_fail(why):
    if os.environ.get("CI"):
        print(f"FAIL: {why}", flush=True)
        sys.exit(1)
    print(f"SKIP: {why}", flush=True)
    sys.exit(77)


def b64(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def mint(secret, sub, ttl_s, pad=0):
    """An HS256 JWT for sub, valid ttl_s seconds; pad adds a claim of that many bytes."""
    claims = {"sub": sub, "exp": int(time.time()) + ttl_s, "iat": int(time.time())}
    if pad:
        claims["pad"] = "p" * pad
    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + \
        b64(json.dumps(claims, separators=(",", ":")).encode())
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


class PageServer:
    """Serves /client/* (clients/js/src), /pages/* (tests/browser/pages) and
    /token?id=ID[&pad=N] (a fresh token for ID, valid self.ttl seconds,
    with a claim of N padding bytes) on
    127.0.0.1, the same site as the routers (cookies go to both)."""

    def __init__(self, secret, ttl=600, pad=0):
        self.secret = secret
        self.ttl = ttl
        self.pad = pad
        self.minted = {}
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                if u.path == "/token":
                    q = dict(urllib.parse.parse_qsl(u.query))
                    cid = q.get("id", "")
                    if not cid:
                        return self._send(400, "text/plain", b"id= is required\n")
                    srv.minted[cid] = srv.minted.get(cid, 0) + 1
                    pad = int(q.get("pad", srv.pad)) if q.get("pad", "").isdigit() else srv.pad
                    tok = mint(srv.secret, cid, srv.ttl, pad)
                    body = json.dumps({"token": tok, "exp": int(time.time()) + srv.ttl})
                    return self._send(200, "application/json", body.encode())
                for prefix, root, ctype in (("/client/", JS_SRC, "text/javascript"),
                                            ("/pages/", PAGES, None)):
                    if u.path.startswith(prefix):
                        name = u.path[len(prefix):]
                        if "/" in name or name.startswith("."):
                            break
                        try:
                            with open(os.path.join(root, name), "rb") as f:
                                body = f.read()
                        except OSError:
                            break
                        if ctype is None:
                            ctype = "text/html; charset=utf-8" if name.endswith(".html") \
                                else "text/javascript"
                        return self._send(200, ctype, body)
                self._send(404, "text/plain", b"not found\n")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """Headless Chromium through driver.mjs; call() is synchronous."""

    def __init__(self, logdir):
        node = shutil.which("node")
        exe = os.environ.get("KWS_CHROMIUM") or shutil.which("chromium")
        if not exe:
            skip_or_fail("chromium is missing (deploy/install-deps.sh --test installs it)")
        if not node:
            skip_or_fail("node is missing")
        if not os.path.isdir(os.path.join(HERE, "node_modules", "puppeteer-core")):
            skip_or_fail("tests/browser/node_modules is missing: run "
                         "'npm ci --prefer-offline' in tests/browser (tests/run does)")
        self.log_path = os.path.join(logdir, "chromium.log")
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, KWS_CHROMIUM=exe)
        self.p = subprocess.Popen([node, os.path.join(HERE, "driver.mjs")], cwd=HERE,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self._log, env=env, text=True, bufsize=1)
        self.n = 0
        self.version = self._answer(0, 60)

    def _answer(self, want, timeout):
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError(f"the browser driver exited; see {self.log_path}:\n" + self.log())
        a = json.loads(line)
        if a.get("id") != want:
            raise AssertionError(f"browser driver answered {a} to command {want}")
        if not a["ok"]:
            raise AssertionError(f"browser: {a['error']}")
        return a.get("value")

    def call(self, op, **kw):
        self.n += 1
        self.p.stdin.write(json.dumps(dict(kw, id=self.n, op=op)) + "\n")
        self.p.stdin.flush()
        return self._answer(self.n, 120)

    def eval(self, name, expr):
        return self.call("eval", name=name, expr=expr)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-6000:]

    def close(self):
        if self.p.poll() is None:
            try:
                self.call("quit")
            except Exception:
                pass
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._log.close()


def wait(pred, timeout, what, interval=0.2):
    """Polls pred() until it is true; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
