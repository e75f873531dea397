#!/usr/bin/env python3
"""The local run's demo server (deploy/local/run starts it): serves the demo
page (index.html), the JS client (clients/js/src) under /client/, and a
DEVELOPMENT-ONLY token endpoint, /token?id=CLIENT_ID, that signs an HS256
JWT for any id it is asked for with the run's throwaway key. That is what
makes the page work without a login; a real deployment gets tokens from its
own authenticated backend instead. It listens on 127.0.0.1 only.

    serve.py --port 8088 --key KEYFILE --ws ws://127.0.0.1:8080/ws --carriers cookie,subprotocol,query
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.abspath(os.path.join(HERE, "..", "..", "..", "clients", "js", "src"))
MAX_ID = 256


def b64(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def mint(key, sub, ttl):
    now = int(time.time())
    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + \
        b64(json.dumps({"sub": sub, "iat": now, "exp": now + ttl}).encode())
    return signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8088)
    ap.add_argument("--key", required=True, help="the HMAC key file the router verifies with")
    ap.add_argument("--ws", required=True, help="the router's WebSocket URL")
    ap.add_argument("--carriers", default="query", help="token carriers the router accepts, best first")
    ap.add_argument("--ttl", type=int, default=900, help="token lifetime (s)")
    a = ap.parse_args()
    with open(a.key, "rb") as f:
        key = f.read()
    if len(key) < 32:
        sys.exit("serve.py: the HMAC key must be at least 32 bytes")
    config = json.dumps({"ws": a.ws, "carriers": a.carriers.split(","), "ttl": a.ttl}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("demo: " + (fmt % args) + "\n")

        def send(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            if u.path in ("/", "/index.html"):
                with open(os.path.join(HERE, "index.html"), "rb") as f:
                    return self.send(200, "text/html; charset=utf-8", f.read())
            if u.path == "/config":
                return self.send(200, "application/json", config)
            if u.path == "/token":
                cid = dict(urllib.parse.parse_qsl(u.query)).get("id", "")
                if not cid or len(cid.encode()) > MAX_ID or any(ord(c) < 32 for c in cid):
                    return self.send(400, "text/plain", b"want /token?id=CLIENT_ID (1-256 bytes)\n")
                body = json.dumps({"token": mint(key, cid, a.ttl), "exp": int(time.time()) + a.ttl})
                return self.send(200, "application/json", body.encode())
            if u.path.startswith("/client/"):
                name = u.path[len("/client/"):]
                if "/" not in name and not name.startswith(".") and name.endswith(".js"):
                    try:
                        with open(os.path.join(CLIENT, name), "rb") as f:
                            return self.send(200, "text/javascript", f.read())
                    except OSError:
                        pass
            self.send(404, "text/plain", b"not found\n")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"demo: http://127.0.0.1:{a.port}/ (development token endpoint: /token?id=...)",
          flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
