#!/usr/bin/env python3
"""Browsers first (issue 12): pages in headless Chromium use the JS client
(clients/js) against real routers and edges, on the real Kafka broker or the
mock cluster, and count inside the page what the application receives: lost,
duplicated and reordered records, through
  1. an edge killed with SIGKILL,
  2. an edge drained through its admin API,
  3. a router drained (1012: the pages reconnect to the other router, which
     runs --deflate on: Chromium offers permessage-deflate, so phases 3-5
     go compressed),
  4. a page reload that resumes from the position kept in localStorage
     (the resume is "complete"),
  5. a token that expires: the router refuses it, the page's token callback
     fetches a new one, and the client resumes.
Every count must be 0. Each page is its own browser context (cookies and
storage of its own). The routers run --auth jwt; the pages get their tokens
from the test's HTTP server, which also serves the pages and the client.

KWS_BROWSER_CARRIERS: the token carriers the pages use, round-robin
(default: subprotocol,query,cookie)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402
from browser import Browser, PageServer, wait  # noqa: E402

PARTITIONS = 4
PAGES = 4
ADMIN = "browser-admin-token"
SECRET = os.urandom(32)
PING_S = 2  # router-2's --ping-interval-s


def http(port, path, method="GET", token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def rejected(port, reason):
    n = 0.0
    for line in http(port, "/metrics")[1].splitlines():
        if line.startswith("kws_router_handshakes_rejected_total") and f'reason="{reason}"' in line:
            n += float(line.rsplit(" ", 1)[1])
    return n


def producer(env, ids, count, rate, tag):
    return subprocess.Popen([h.PRODUCE, "--bootstrap", env.kafka.bootstrap, "--topic",
                             "deliveries", "--keys", ",".join(ids), "--count", str(count),
                             "--rate", str(rate), "--tag", tag],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Pages:
    def __init__(self, browser, ids):
        self.b = browser
        self.ids = ids

    def states(self):
        return {i: self.b.eval(i, "kwsState()") for i in self.ids}

    def received(self, tag, n):
        return all(s["tags"].get(tag, {}).get("n", 0) >= n for s in self.states().values())

    def check(self, tag, n, what):
        """Waits for n records of tag on every page, then asserts that none
        was lost, duplicated or reordered; returns the states."""
        try:
            wait(lambda: self.received(tag, n), 90, f"{n} '{tag}' records on every page", 0.5)
        except AssertionError:
            pass  # counted as lost below
        time.sleep(0.5)
        st = self.states()
        lost = dup = reord = 0
        for s in st.values():
            t = s["tags"].get(tag, {"seen": {}, "dup": 0, "reord": 0})
            lost += sum(1 for k in range(n) if str(k) not in t["seen"])
            dup += t["dup"]
            reord += t["reord"]
        foreign = sum(s["foreign"] for s in st.values())
        libdups = sum(s["dups"] for s in st.values())
        gaps = [g for s in st.values() for g in s["gaps"]]
        errors = [e for s in st.values() for e in s["errors"]]
        h.log(f"{what}: {n} records x {len(st)} pages: lost {lost}, duplicated {dup}, "
              f"reordered {reord}, foreign {foreign}; dropped as duplicates by the client "
              f"{libdups}; gaps {gaps}; errors {errors[:3]}")
        assert (lost, dup, reord, foreign, libdups) == (0, 0, 0, 0, 0), what
        assert not gaps, f"{what}: gaps {gaps}"
        return st


def run(env, browser, server):
    env.start_kafka({"deliveries": PARTITIONS})
    keydir = os.path.join(env.dir, "keys")
    os.mkdir(keydir)
    with open(os.path.join(keydir, "dev.key"), "wb") as f:
        f.write(SECRET)
    admin = {}

    def edge(name, port=None):
        admin[name] = h.free_port()
        return env.start_edge(name, extra=["--admin-listen", f"127.0.0.1:{admin[name]}",
                                           "--admin-token", ADMIN], port=port)

    e1, e2 = edge("edge-1"), edge("edge-2")
    auth = ["--auth", "jwt", "--jwt-keys", keydir, "--jwt-leeway-s", "0", "--token-in-query",
            "--token-cookie", "kws_token"]
    routers = []
    # router-2 pings every 2 s (step 6: idle pages stay connected).
    for name, deflate, ping in (("router-1", "off", "30"), ("router-2", "on", str(PING_S))):
        admin[name] = h.free_port()
        routers.append(env.start_router(name, [e1, e2], auth + [
            "--admin-listen", f"127.0.0.1:{admin[name]}", "--admin-token", ADMIN,
            "--deflate", deflate, "--ping-interval-s", ping]))
    r1, r2 = routers
    for r in routers:
        h.wait_all_owned(r)

    carriers = os.environ.get("KWS_BROWSER_CARRIERS", "subprotocol,query,cookie").split(",")
    h.log(f"chromium {browser.version}; pages use the carriers {carriers}")
    ids = [f"page-{i}" for i in range(PAGES)]
    urls = f"{r1.ws_url},{r2.ws_url}"
    for n, i in enumerate(ids):
        browser.call("open", name=i, url=f"{server.base}/pages/lib.html?id={i}&urls={urls}"
                     f"&carrier={carriers[n % len(carriers)]}")
    pages = Pages(browser, ids)
    wait(lambda: all(s["sessionState"] == "live" for s in pages.states().values()), 60,
         "every page to be live")

    # Warm up: from the first record on, every session is live at its edge.
    deadline = time.monotonic() + 60
    while not pages.received("warmup", 1):
        assert time.monotonic() < deadline, f"pages never became live: {pages.states()}"
        env.produce("deliveries", ids, 1, tag="warmup")
        time.sleep(1)
    h.log(f"{PAGES} pages live on router-1 (JS client, tokens from the test's endpoint)")

    # 1. An edge killed with SIGKILL while records flow.
    prod = producer(env, ids, 150, 30, "kill")
    time.sleep(1.5)
    e2.stop(signal.SIGKILL)
    h.log("edge-2 killed (SIGKILL)")
    prod.wait(120)
    pages.check("kill", 150, "edge SIGKILL")
    e2 = edge("edge-2b", port=int(e2.url.rsplit(":", 1)[1]))  # back at its address
    time.sleep(2)

    # 2. An edge drained through the admin API.
    prod = producer(env, ids, 100, 50, "edrain")
    time.sleep(0.5)
    st, body = http(admin["edge-1"], "/api/v1/drain", "POST", ADMIN)
    assert st == 202, body
    wait(lambda: json.loads(http(admin["edge-1"], "/api/v1/assignment")[1])["partitions"] == [],
         60, "edge-1 to hand off its partitions")
    h.log("edge-1 drained: it owns no partitions")
    prod.wait(120)
    st = pages.check("edrain", 100, "edge drain")
    assert all(not s["closes"] for s in st.values()), "an edge drain closed a page's socket"

    # 3. A router drained: 1012, the pages reconnect to router-2 with their positions.
    prod = producer(env, ids, 100, 40, "rdrain")
    time.sleep(0.5)
    st, body = http(admin["router-1"], "/api/v1/drain?deadline_ms=1500", "POST", ADMIN)
    assert st == 202, body
    prod.wait(120)
    st = pages.check("rdrain", 100, "router drain")
    for i, s in st.items():
        assert s["closes"] == [1012], f"{i}: closes {s['closes']}"
        assert s["opens"][-1] == str(r2.port), f"{i}: opened {s['opens']}"
        assert s["resumes"] and s["resumes"][-1]["complete"], f"{i}: {s['resumes']}"
        assert s["extensions"][0] == "", f"{i}: router-1 (--deflate off) accepted {s['extensions']}"
        assert s["extensions"][-1].startswith("permessage-deflate"), \
            f"{i}: router-2 (--deflate on) did not take Chromium's offer: {s['extensions']}"
    h.log(f"router drain: every page closed with 1012, resumed complete on router-2 "
          f"with {st[ids[0]]['extensions'][-1]!r}")

    # 4. A page reload in the middle of a stream resumes from localStorage.
    prod = producer(env, ids, 90, 30, "reload")
    time.sleep(1)
    for i in ids:
        browser.call("reload", name=i)
    prod.wait(120)
    st = pages.check("reload", 90, "page reload")
    for i, s in st.items():
        assert s["loads"] == 2, f"{i}: loads {s['loads']}"
        last = s["resumes"][-1]
        assert last["load"] == 2 and last["complete"] and last["presented"], f"{i}: {last}"
    h.log("page reload: every page resumed from its stored position, complete")

    # 5. A token that expires: the pages hold 3-second tokens; once they have
    # expired, the routers close the sessions (admin disconnect); the
    # reconnect presents the expired token, is refused, and the page's
    # callback fetches a new one.
    server.ttl = 3
    for i in ids:
        browser.eval(i, "kwsDropToken()")
        http(admin["router-2"], f"/api/v1/clients/{i}/disconnect?code=4000", "POST", ADMIN)
    wait(lambda: all(s["tokens"] >= 2 and s["state"] == "open" and s["closes"][-1] == 4000
                     for s in pages.states().values()), 30, "pages on 3-second tokens")
    tokens_before = {i: s["tokens"] for i, s in pages.states().items()}
    server.ttl = 600
    time.sleep(4)
    refused_before = rejected(admin["router-2"], "auth")
    prod = producer(env, ids, 60, 30, "token")
    time.sleep(0.5)
    for i in ids:
        st_, body = http(admin["router-2"], f"/api/v1/clients/{i}/disconnect?code=4000", "POST",
                         ADMIN)
        assert st_ == 200, body
    prod.wait(120)
    st = pages.check("token", 60, "token expiry")
    refused = rejected(admin["router-2"], "auth") - refused_before
    for i, s in st.items():
        assert s["tokens"] > tokens_before[i] and s["staleTokens"] >= 1, \
            f"{i}: tokens {tokens_before[i]} -> {s['tokens']}, stale {s['staleTokens']}"
        assert s["resumes"][-1]["complete"], f"{i}: {s['resumes'][-1]}"
    h.log(f"token expiry: router-2 refused {refused:.0f} expired tokens; every page fetched a "
          "new one and resumed complete")
    assert refused >= PAGES

    # 6. Idle pages answer the keepalive's pings and stay: a client silent
    # for two intervals is hung up, and lws 4.1.6 reports no empty Pong, so
    # until the router counted the client's frames itself (recvhook) every
    # idle page was dropped (1006) after 60 s at the default interval.
    closes = {i: list(s["closes"]) for i, s in pages.states().items()}
    time.sleep(3.5 * PING_S)
    prod = producer(env, ids, 20, 20, "idle")
    prod.wait(120)
    st = pages.check("idle", 20, f"after {3.5 * PING_S:.0f} s idle")
    for i, s in st.items():
        assert s["closes"] == closes[i] and s["state"] == "open", \
            f"{i}: closes {closes[i]} -> {s['closes']}, state {s['state']}"
    h.log(f"idle pages: still open after {3.5 * PING_S:.0f} s of pings every {PING_S} s, "
          "and got their records")


def main():
    with h.Env("browser") as env:
        browser = Browser(env.dir)
        server = PageServer(SECRET)
        try:
            run(env, browser, server)
        except BaseException:
            print("----- chromium log -----\n" + browser.log(), file=sys.stderr)
            raise
        finally:
            browser.close()
            server.close()
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
