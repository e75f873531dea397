#!/usr/bin/env python3
"""Every browser carrier from a real browser, without the library (issue
12): a page in headless Chromium opens the browser's own WebSocket with a
token of more than 1 KiB in each carrier the router accepts from browsers
(the Sec-WebSocket-Protocol entry kws.token.<jwt>, ?access_token= with
--token-in-query, a cookie with --token-cookie), receives its records,
reconnects with ?position= and gets exactly what it missed ("complete"),
and a forged token in the same carrier gets no session. Each carrier runs in
its own browser context (its own cookies)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402
from browser import Browser, PageServer, wait  # noqa: E402

SECRET = os.urandom(32)
PAD = 1000           # a claim of this many bytes: tokens of more than 1 KiB


def run(env, browser, server, failures):
    env.start_kafka({"deliveries": 4})
    keydir = os.path.join(env.dir, "keys")
    os.mkdir(keydir)
    with open(os.path.join(keydir, "dev.key"), "wb") as f:
        f.write(SECRET)
    e1 = env.start_edge("edge-1")
    r = env.start_router("router-1", [e1], ["--auth", "jwt", "--jwt-keys", keydir,
                                            "--token-in-query", "--token-cookie", "kws_token"])
    h.wait_all_owned(r)
    h.log(f"chromium {browser.version}; router --auth jwt --token-in-query "
          "--token-cookie kws_token")

    for carrier in ("subprotocol", "query", "cookie"):
        cid = f"plain-{carrier}"
        page = carrier
        browser.call("open", name=page, url=f"{server.base}/pages/plain.html")

        def res():
            return browser.eval(page, "window.result")

        def first_status():
            try:
                wait(lambda: res()["messages"] or res()["close"] is not None, 15, "an answer")
            except AssertionError:
                pass
            x = res()
            return x["messages"][0] if x["messages"] else f"no session (close {x['close']})"

        try:
            n = browser.eval(page, f"kwsOpen({{url: '{r.ws_url}', carrier: '{carrier}', "
                                   f"id: '{cid}', pad: {PAD}}})")
            st = first_status()
            assert st.startswith("s live "), f"first message {st!r}"
            assert res()["protocol"] == "kws.v1", res()["protocol"]
            # Live from here: records arrive.
            deadline = time.monotonic() + 30
            while not any('"warmup"' in m for m in res()["messages"]):
                assert time.monotonic() < deadline, "no record arrived"
                env.produce("deliveries", [cid], 1, tag="warmup")
                time.sleep(0.5)
            env.produce("deliveries", [cid], 5, tag="first")
            wait(lambda: sum('"first"' in m for m in res()["messages"]) >= 5, 30, "5 records")
            last = [m for m in res()["messages"] if m.startswith("d ")][-1].split("\n")[0]
            _, p, o = last.split(" ")
            position = f"{p}:{int(o) + 1}"
            browser.eval(page, "ws.close(1000)")
            env.produce("deliveries", [cid], 7, tag="missed")
            browser.eval(page, f"kwsOpen({{url: '{r.ws_url}', carrier: '{carrier}', "
                               f"id: '{cid}', pad: {PAD}, position: '{position}'}})")
            st = first_status()
            assert st.startswith(f"s complete {p} {int(o) + 1}"), f"resume: {st!r}"
            wait(lambda: sum('"missed"' in m for m in res()["messages"]) >= 7, 30, "7 records")
            time.sleep(0.3)
            recs = [json.loads(m.split("\n", 1)[1]) for m in res()["messages"]
                    if m.startswith("d ")]
            seqs = [x["seq"] for x in recs if x.get("tag") == "missed"]
            assert all(x["key"] == cid for x in recs), "a record of another client"
            assert seqs == list(range(7)), f"after ?position=: seqs {seqs}"
            browser.eval(page, "ws.close(1000)")
            browser.eval(page, f"kwsOpen({{url: '{r.ws_url}', carrier: '{carrier}', "
                               f"id: '{cid}', pad: {PAD}, forge: true}})")
            st = first_status()
            assert not res()["opened"], f"a forged token opened a session: {st!r}"
            h.log(f"{carrier}: {n}-byte token accepted, live; ?position={position} resumed "
                  f"complete with the 7 missed records in order; a forged token: {st}")
        except AssertionError as e:
            h.log(f"{carrier}: FAILED: {e}")
            failures.append(carrier)
        browser.call("close", name=page)


def main():
    failures = []
    with h.Env("browser-carriers") as env:
        browser = Browser(env.dir)
        server = PageServer(SECRET)
        try:
            run(env, browser, server, failures)
            if failures:
                print("----- chromium log -----\n" + browser.log(), file=sys.stderr)
                raise AssertionError(f"carriers that failed: {failures}")
        finally:
            browser.close()
            server.close()
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
