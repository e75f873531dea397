#!/usr/bin/env python3
"""Bad input gets a clear error and harms nobody else: handshakes without an
id, with an empty or oversized id, or on another path get an HTTP error with a
reason and no upgrade; an oversized client frame closes that session with
1009; a frame sent upstream when no inbound topic is configured closes that
session with 4001. An honest client stays connected throughout and receives
every one of its records."""

import asyncio
import sys

import harness as h


async def run(env):
    env.start_kafka({"deliveries": 2})
    edge = env.start_edge("edge-1")
    router = env.start_router("router-1", [edge], ["--max-frame-bytes", "1024"])
    h.wait_all_owned(router)

    honest = h.Collector(router.ws_url, "honest")
    await honest.connect()
    await h.warm_up(env, [honest])

    cases = [
        ("no id header", "/ws", [], 400, "missing X-Client-Id"),
        ("empty id", "/ws", ["X-Client-Id: "], 400, "X-Client-Id"),
        ("oversized id", "/ws", ["X-Client-Id: " + "x" * 300], 400, "longer than 256 bytes"),
        ("another path", "/elsewhere", ["X-Client-Id: a"], 404, "use /ws"),
    ]
    for name, path, headers, want, reason in cases:
        status, body = h.raw_handshake(router.port, path, headers)
        h.log(f"{name}: HTTP {status}: {body.strip()[-80:]}")
        assert status == want, f"{name}: got HTTP {status}, want {want}"
        assert reason in body, f"{name}: reason {reason!r} not in {body!r}"

    # An oversized frame: closed with 1009, nobody else disturbed.
    big = h.Collector(router.ws_url, "big-talker")
    await big.connect()
    await big.ws.send(b"x" * 4096)
    await h.wait_until(lambda: big.close_code is not None, 10, "close of the big talker")
    h.log(f"oversized frame: closed with {big.close_code}")
    assert big.close_code == 1009

    # Upstream with no inbound topic configured: closed with 4001.
    talker = h.Collector(router.ws_url, "talker")
    await talker.connect()
    await h.warm_up(env, [talker])
    await talker.ws.send("hello")
    await h.wait_until(lambda: talker.close_code is not None, 10, "close of the talker")
    h.log(f"upstream without inbound topic: closed with {talker.close_code}")
    assert talker.close_code == 4001

    env.produce("deliveries", ["honest"], 10, tag="after")
    await h.wait_until(lambda: len(honest.records("after")) >= 10, 30, "honest records")
    lost, dup, reordered, foreign = h.check_streams([honest], 10, "after")
    h.log(f"honest client: lost {lost}, duplicated {dup}, reordered {reordered}, "
          f"still connected: {honest.close_code is None}")
    assert (lost, dup, reordered, foreign) == (0, 0, 0, 0)
    assert honest.close_code is None
    await honest.close()
    assert router.alive() and edge.alive()


def main():
    with h.Env("bad-input") as env:
        asyncio.run(run(env))
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
