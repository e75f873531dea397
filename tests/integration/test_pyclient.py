#!/usr/bin/env python3
"""The Python client (clients/python) against real routers and an edge
(issue 12 item 4): a token in Authorization from a function called before
every connect, records in order, a router drained (1012) and the client on
the other router resuming "complete", a stored position that a new client
(a restarted script) resumes from, and an upstream message. Nothing lost,
duplicated or reordered."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.request

import harness as h

sys.path.insert(0, os.path.join(h.SOURCE, "clients", "python"))
from kws_client import Backoff, FileStorage, KwsClient  # noqa: E402

SECRET = os.urandom(32)
ADMIN = "pyclient-admin"


def token(sub):
    b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731
    s = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + \
        b64(json.dumps({"sub": sub, "exp": int(time.time()) + 300}).encode())
    return s + "." + b64(hmac.new(SECRET, s.encode(), hashlib.sha256).digest())


async def take(c, recs, tag, n, timeout=60):
    async def go():
        async for r in c:
            v = r.json()
            recs.append(v)
            if sum(1 for x in recs if x.get("tag") == tag) >= n:
                return
    await asyncio.wait_for(go(), timeout)


def counts(recs, tag, n, key):
    seqs = [r["seq"] for r in recs if r.get("tag") == tag]
    assert all(r["key"] == key for r in recs), "a record of another client"
    lost = sum(1 for s in range(n) if s not in seqs)
    dup = len(seqs) - len(set(seqs))
    reord = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
    return lost, dup, reord


async def run(env):
    env.start_kafka({"deliveries": 4, "inbound": 4})
    keydir = os.path.join(env.dir, "keys")
    os.mkdir(keydir)
    with open(os.path.join(keydir, "k.key"), "wb") as f:
        f.write(SECRET)
    e1 = env.start_edge("edge-1", extra=["--inbound-topic", "inbound"])
    admin1 = h.free_port()
    r1 = env.start_router("router-1", [e1], ["--auth", "jwt", "--jwt-keys", keydir,
                                             "--admin-listen", f"127.0.0.1:{admin1}",
                                             "--admin-token", ADMIN])
    r2 = env.start_router("router-2", [e1], ["--auth", "jwt", "--jwt-keys", keydir])
    h.wait_all_owned(r1)
    h.wait_all_owned(r2)
    cid = "py-1"
    calls = []

    def get_token():
        calls.append(time.monotonic())
        return token(cid)

    store = FileStorage(os.path.join(env.dir, "positions.json"))
    recs = []
    c = KwsClient([r1.ws_url, r2.ws_url], token=get_token, storage=store, storage_key=cid,
                  backoff=Backoff(initial_s=0.1, max_s=1))
    events = {"close": [], "resume": []}
    for k in events:
        c.on(k, events[k].append)
    c.start()
    deadline = time.monotonic() + 30
    while not any(r.get("tag") == "warmup" for r in recs):
        assert time.monotonic() < deadline, "the client never got a record"
        env.produce("deliveries", [cid], 1, tag="warmup")
        try:
            await take(c, recs, "warmup", 1, 1)
        except asyncio.TimeoutError:
            pass
    assert c.session_state == "live", c.session_state

    prod = asyncio.get_running_loop().run_in_executor(
        None, lambda: env.produce("deliveries", [cid], 60, tag="drain", extra=["--rate", "30"]))
    await asyncio.sleep(0.5)
    req = urllib.request.Request(f"http://127.0.0.1:{admin1}/api/v1/drain?deadline_ms=500",
                                 method="POST", headers={"Authorization": "Bearer " + ADMIN})
    urllib.request.urlopen(req, timeout=10).read()
    await take(c, recs, "drain", 60)
    await prod
    lost, dup, reord = counts(recs, "drain", 60, cid)
    h.log(f"router drain: closes {[e['code'] for e in events['close']]}, resumes "
          f"{[(e['state'], e['complete']) for e in events['resume']]}; lost {lost}, "
          f"duplicated {dup}, reordered {reord}; token calls {len(calls)}")
    assert [e["code"] for e in events["close"]] == [1012]
    assert events["resume"][-1]["complete"] and (lost, dup, reord) == (0, 0, 0)
    assert len(calls) == 2, "the token function runs before each connect"

    await c.send("hello upstream")
    await c.close()
    stored = store.get(cid)
    env.produce("deliveries", [cid], 10, tag="restart")
    recs2 = []
    async with KwsClient(r2.ws_url, token=get_token, storage=store, storage_key=cid) as c2:
        resumes = []
        c2.on("resume", resumes.append)
        await take(c2, recs2, "restart", 10)
        await asyncio.sleep(0.3)
    lost, dup, reord = counts(recs2, "restart", 10, cid)
    h.log(f"a new client from the stored position {stored}: resume "
          f"{resumes[0]['state']}; lost {lost}, duplicated {dup}, reordered {reord}; "
          f"records from before {sum(1 for r in recs2 if r.get('tag') != 'restart')}")
    assert resumes[0]["complete"] and (lost, dup, reord) == (0, 0, 0)
    assert all(r.get("tag") == "restart" for r in recs2)
    # The upstream message reached the inbound topic.
    out = subprocess.run([os.path.join(h.BUILD, "tests", "tools", "consume"), "--bootstrap",
                            env.kafka.bootstrap, "--topic", "inbound", "--count", "1",
                            "--timeout-ms", "20000"], capture_output=True, text=True, timeout=60)
    h.log(f"upstream: {out.stdout.strip()[:80]}")
    assert "hello upstream" in out.stdout and cid in out.stdout, out.stdout + out.stderr


def main():
    with h.Env("pyclient") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
