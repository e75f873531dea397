#!/usr/bin/env python3
"""The local run's demo page (deploy/local/demo, issue 12 item 2) in headless
Chromium: served by deploy/local/demo/serve.py with a development key, it
gets its token from the server's /token endpoint, shows the chosen client
id's records arriving live with their positions, the connection state and the
session state; disconnected, then reloaded, it resumes from the stored
position ("complete") with the records it missed and none it had shown."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402
from browser import Browser, wait  # noqa: E402

DOM = """(() => {
  const t = (id) => document.getElementById(id).textContent;
  return { state: t('state'), session: t('session'), position: t('position'), count: +t('count'),
           records: [...document.querySelectorAll('#records li')].map((li) => li.textContent),
           events: [...document.querySelectorAll('#events li')].map((li) => li.textContent) };
})()"""


def run(env, browser):
    env.start_kafka({"deliveries": 4})
    keydir = os.path.join(env.dir, "keys")
    os.mkdir(keydir)
    with open(os.path.join(keydir, "dev.key"), "wb") as f:
        f.write(os.urandom(48))
    e1 = env.start_edge("edge-1")
    r = env.start_router("router-1", [e1], ["--auth", "jwt", "--jwt-keys", keydir,
                                            "--token-cookie", "kws_token", "--token-in-query"])
    h.wait_all_owned(r)
    port = h.free_port()
    demo = env.spawn("demo", ["/usr/bin/python3",
                              os.path.join(h.SOURCE, "deploy", "local", "demo", "serve.py"),
                              "--port", str(port), "--key", os.path.join(keydir, "dev.key"),
                              "--ws", r.ws_url, "--carriers", "cookie,subprotocol,query"])
    demo.wait_for(r"demo: http", 15)
    browser.call("open", name="demo", url=f"http://127.0.0.1:{port}/?id=demo-1")
    dom = lambda: browser.eval("demo", DOM)  # noqa: E731
    wait(lambda: dom()["state"] == "open" and dom()["session"].startswith("live"), 30,
         "the demo page to connect")
    deadline = time.monotonic() + 30
    while dom()["count"] == 0:
        assert time.monotonic() < deadline, f"no record shown: {dom()}"
        env.produce("deliveries", ["demo-1"], 1, tag="warmup")
        time.sleep(0.5)
    env.produce("deliveries", ["demo-1", "someone-else"], 5, tag="shown")
    wait(lambda: sum('"shown"' in x for x in dom()["records"]) >= 5, 30, "5 records on the page")
    d = dom()
    shown = [x for x in d["records"] if '"shown"' in x]
    last = shown[0].split()[0]       # the newest record is on top: "p:o  {json}"
    p, o = last.split(":")
    seqs = sorted(json.loads(x.split("  ", 1)[1])["seq"] for x in shown)
    h.log(f"demo page: {d['state']}, session '{d['session']}', position {d['position']}, "
          f"{d['count']} records; newest {shown[0][:60]}")
    assert seqs == [0, 1, 2, 3, 4], seqs
    assert all('"demo-1"' in x for x in d["records"]), "a record of another client"
    assert d["position"] == f"{p}:{int(o) + 1}", (d["position"], last)

    # Disconnect (the button), records arrive meanwhile, then a reload.
    browser.eval("demo", "document.getElementById('disconnect').click()")
    wait(lambda: dom()["state"] == "closed", 10, "the page to disconnect")
    env.produce("deliveries", ["demo-1"], 3, tag="away")
    browser.call("reload", name="demo")
    wait(lambda: dom()["session"].startswith("complete"), 30, "the reloaded page to resume")
    wait(lambda: sum('"away"' in x for x in dom()["records"]) >= 3, 30, "the records missed")
    d = dom()
    h.log(f"after a reload: session '{d['session']}', {d['count']} records, events "
          f"{d['events'][:3]}")
    assert d["session"].startswith(f"complete (partition {p}, from offset {int(o) + 1})"), d
    assert not any('"shown"' in x for x in d["records"]), "a record shown again after the reload"
    assert sorted(json.loads(x.split("  ", 1)[1])["seq"] for x in d["records"]
                  if '"away"' in x) == [0, 1, 2]


def main():
    with h.Env("browser-demo") as env:
        browser = Browser(env.dir)
        try:
            run(env, browser)
        except BaseException:
            print("----- chromium log -----\n" + browser.log(), file=sys.stderr)
            raise
        finally:
            browser.close()
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
