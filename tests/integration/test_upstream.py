#!/usr/bin/env python3
"""Upstream and text mode: messages a client sends are produced by the owning
edge to the inbound topic, keyed by the client id, in order; with
--message-type text, records reach the client as text messages. An inbound
topic that does not exist closes the sender with 4003 and a reason that says
so (a retry cannot help), not with 4002 "retry"."""

import asyncio
import os
import subprocess
import sys
import time

import harness as h

CONSUME = os.path.join(h.BUILD, "tests", "tools", "consume")


async def run(env):
    env.start_kafka({"deliveries": 3, "inbound": 3})
    edge = env.start_edge("edge-1", extra=["--inbound-topic", "inbound"])
    router = env.start_router("router-1", [edge], ["--message-type", "text"])
    h.wait_all_owned(router)

    alice = h.Collector(router.ws_url, "alice")
    bob = h.Collector(router.ws_url, "bob")
    await asyncio.gather(alice.connect(), bob.connect())
    await h.warm_up(env, [alice, bob])
    assert all(isinstance(m, str) for m in alice.messages), "text mode sends text messages"

    sent = []
    for i in range(5):
        await alice.ws.send(f"alice-says-{i}")
        await bob.ws.send(f"bob-says-{i}".encode())  # binary frames too
        sent += [("alice", f"alice-says-{i}"), ("bob", f"bob-says-{i}")]
    # Longer than the router's 512-byte lws receive buffer (router/ws.h), so
    # they reach the router in pieces: one frame of 48 KiB, and a message in
    # three frames (RFC 6455 fragmentation); each must go up whole, in order.
    big = "".join(chr(ord("a") + i % 26) for i in range(48 * 1024))
    await alice.ws.send("alice-big-" + big)
    await bob.ws.send(iter([b"bob-frag-", big[:700].encode(), big[700:9000].encode()]))
    sent += [("alice", "alice-big-" + big), ("bob", "bob-frag-" + big[:9000])]
    await alice.ws.send("alice-after")
    sent += [("alice", "alice-after")]
    r = subprocess.run([CONSUME, "--bootstrap", env.kafka.bootstrap, "--topic", "inbound",
                        "--count", str(len(sent)), "--timeout-ms", "30000"],
                       capture_output=True, text=True, timeout=60)
    h.log(r.stdout.strip())
    assert r.returncode == 0, r.stderr
    got = [line.split(" ", 3) for line in r.stdout.splitlines()]
    by_key = {}
    for part, off, key, value in got:
        by_key.setdefault(key, []).append((int(part), int(off), value))
    for key in ("alice", "bob"):
        values = [v for _, _, v in by_key.get(key, [])]
        want = [v for k, v in sent if k == key]
        h.log(f"{key}: {len(values)} upstream records in the inbound topic")
        assert values == want, f"{key}: got {[v[:40] for v in values]}, want " \
            f"{[v[:40] for v in want]} (lengths {[len(v) for v in values]} vs " \
            f"{[len(v) for v in want]})"
        assert len({p for p, _, _ in by_key[key]}) == 1, "one key, one partition"
    assert alice.close_code is None and bob.close_code is None
    await asyncio.gather(alice.close(), bob.close())


async def missing_topic(env):
    env.start_kafka({"deliveries": 3})
    # The test broker has auto.create.topics.enable=false, as production
    # brokers usually do; the edge learns of the missing topic within 2 s.
    edge = env.start_edge("edge-1", extra=[
        "--inbound-topic", "no-such-inbound",
        "--kafka-prop", "allow.auto.create.topics=false",
        "--kafka-prop", "topic.metadata.propagation.max.ms=2000"])
    router = env.start_router("router-1", [edge])
    h.wait_all_owned(router)
    carol = h.Collector(router.ws_url, "carol")
    await carol.connect()
    await carol.ws.send(b"into the void")
    await asyncio.wait_for(carol.task, 60)
    reason = carol.ws.close_reason
    h.log(f"missing inbound topic: closed {carol.close_code} {reason!r}")
    assert carol.close_code == 4003, f"closed with {carol.close_code} {reason!r}, want 4003"
    assert "inbound topic does not exist" in reason and "do not retry" in reason, reason


async def flood(env):
    """A client that sends 120 MiB upstream as fast as it can loses nothing:
    every message reaches the inbound topic in order, the link that other
    clients share is not reset, and they keep receiving."""
    env.start_kafka({"deliveries": 1, "inbound": 1})
    edge = env.start_edge("edge-1", extra=["--inbound-topic", "inbound"])
    router = env.start_router("router-1", [edge], ["--max-frame-bytes", "1MiB"])
    h.wait_all_owned(router)
    alice, bob = h.Collector(router.ws_url, "alice"), h.Collector(router.ws_url, "bob")
    await asyncio.gather(alice.connect(), bob.connect())
    await h.warm_up(env, [alice, bob])
    links0 = h.http_json(router.admin_port, "/api/v1/edges")
    n, size = 240, 512 * 1024
    t0 = time.monotonic()
    for i in range(n):
        await alice.ws.send(b"%06d:" % i + bytes([65 + i % 26]) * size)
    h.log(f"flood: alice sent {n} x {size // 1024} KiB in {time.monotonic() - t0:.1f}s")
    env.produce("deliveries", ["bob"], 20, tag="during")
    r = subprocess.run([CONSUME, "--bootstrap", env.kafka.bootstrap, "--topic", "inbound",
                        "--count", str(n), "--timeout-ms", "60000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = [line.split(" ", 3)[3][:6] for line in r.stdout.splitlines()]
    assert got == ["%06d" % i for i in range(n)], \
        f"alice's messages in the inbound topic: {len(got)} of {n}, in order: " \
        f"{got == sorted(got)}"
    h.log(f"flood: {n} of {n} in the inbound topic, in order")
    deadline = time.monotonic() + 30
    while len(bob.records("during")) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(bob.records("during")) == 20, f"bob got {len(bob.records('during'))} of 20"
    links1 = h.http_json(router.admin_port, "/api/v1/edges")
    assert [e.get("connects") for e in links1["edges"]] == \
        [e.get("connects") for e in links0["edges"]], f"the link was reset: {links0} {links1}"
    assert alice.close_code is None and bob.close_code is None, (alice.close_code,
                                                                 bob.close_code)
    await asyncio.gather(alice.close(), bob.close())


def main():
    with h.Env("upstream") as env:
        asyncio.run(run(env))
    if os.environ.get("KWS_KAFKA", "mock") == "real":
        # The mock cluster keeps 5 MiB a partition: the flood needs the broker.
        with h.Env("upstream-flood") as env:
            asyncio.run(flood(env))
        with h.Env("upstream-missing-topic") as env:
            asyncio.run(missing_topic(env))
    else:
        # librdkafka's mock cluster creates every topic a client asks about
        # (it ignores allow.auto.create.topics): the missing topic is tested
        # against the real broker (upstream-real), whose auto-creation is off.
        h.log("missing inbound topic: real broker only (the mock cluster auto-creates topics)")
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
