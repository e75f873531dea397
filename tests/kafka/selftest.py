#!/usr/bin/python3
"""Self-test of the real-Kafka fixture (tests/kafka/kafkafix.py).

    selftest.py            one broker: topic, keyed produce/consume, group
    selftest.py --three    also three brokers: RF=3 topic, broker 2 down/up

Exit 0 ok, 1 failure, 77 skipped (no java/mvn/registry, and $CI unset).
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafkafix  # noqa: E402


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def records(tag, n=20):
    return [("key-%02d" % i, "%s-value-%02d" % (tag, i)) for i in range(n)]


def expect_all(got, want, what):
    gotkv = sorted((k, v) for _, k, v in got)
    check(gotkv == sorted(want),
          "%s: expected %d records %s..., got %d: %s"
          % (what, len(want), sorted(want)[:3], len(got), sorted(got)[:5]))
    # Same key -> same partition (the Java default partitioner).
    where = {}
    for p, k, _ in got:
        check(where.setdefault(k, p) == p, "%s: key %s on partitions %s and %s"
              % (what, k, where[k], p))


def single(k):
    t = time.monotonic()
    k.create_topic("selftest", partitions=4)
    print("created topic selftest (4 partitions) in %.1fs"
          % (time.monotonic() - t), flush=True)
    want = records("one")
    t = time.monotonic()
    k.console_produce("selftest", want)
    print("console-produced %d records in %.1fs" % (len(want),
          time.monotonic() - t), flush=True)
    t = time.monotonic()
    got = k.console_consume("selftest", 20, timeout=20)
    print("console-consumed %d records in %.1fs" % (len(got),
          time.monotonic() - t), flush=True)
    expect_all(got, want, "single broker")
    used = sorted({p for p, _, _ in got})
    print("keys spread over partitions %s" % used, flush=True)
    check(len(used) > 1, "20 keys all landed in one partition: %s" % used)

    # A live group member, to check describe_group's parsing.
    cmd = k.java_cmd(kafkafix.MAIN_CONSUMER,
                     ["--bootstrap-server", k.bootstrap, "--topic",
                      "selftest", "--group", "selftest-group",
                      "--timeout-ms", "60000"])
    cons = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            preexec_fn=kafkafix._die_with_parent)
    try:
        deadline = time.monotonic() + 40
        members = []
        while time.monotonic() < deadline:
            members = k.describe_group("selftest-group")
            if members and members[0]["assignment"].get("selftest"):
                break
            time.sleep(0.5)
        print("describe_group(selftest-group): %s" % members, flush=True)
        check(len(members) == 1, "expected 1 member, got %s" % members)
        check(members[0]["assignment"] == {"selftest": [0, 1, 2, 3]},
              "member assignment %s" % members[0]["assignment"])
    finally:
        cons.terminate()
        try:
            cons.wait(15)
        except subprocess.TimeoutExpired:
            cons.kill()
            cons.wait()
    k.delete_topic("selftest")
    print("deleted topic selftest", flush=True)


def three(k):
    k.create_topic("selftest3", partitions=4, replication=3)
    parts = k.wait_topic("selftest3", 4, full_isr=True)
    check(all(len(p["replicas"]) == 3 for p in parts.values()),
          "replicas: %s" % parts)
    first = records("before")
    k.console_produce("selftest3", first)
    k.stop_broker(2)
    k.wait_topic("selftest3", 4, timeout=30)
    second = records("during")
    k.console_produce("selftest3", second)
    print("produced %d records with broker 2 down" % len(second), flush=True)
    k.start_broker(2)
    t = time.monotonic()
    k.wait_topic("selftest3", 4, full_isr=True, timeout=60)
    print("broker 2 back in every ISR after %.1fs" % (time.monotonic() - t),
          flush=True)
    got = k.console_consume("selftest3", 40, timeout=20)
    expect_all(got, first + second, "three brokers")
    print("console-consumed all %d records after the restart" % len(got),
          flush=True)


def main():
    t0 = time.monotonic()
    passed, skipped = 0, 0
    try:
        with kafkafix.cluster_or_skip(brokers=1) as k:
            print("single broker: Kafka %s at %s (provision %.1fs, start %ss)"
                  % (k.version, k.bootstrap, k.provision_seconds,
                     "%.1f" % k.start_seconds if k.start_seconds else "-"),
                  flush=True)
            single(k)
        print("single-broker selftest passed in %.1fs"
              % (time.monotonic() - t0), flush=True)
        passed += 1
        if "--three" in sys.argv[1:] and os.environ.get("KAFKA_BOOTSTRAP"):
            print("three-broker mode skipped: KAFKA_BOOTSTRAP names an "
                  "external cluster", flush=True)
            skipped += 1
        elif "--three" in sys.argv[1:]:
            t1 = time.monotonic()
            with kafkafix.cluster_or_skip(brokers=3) as k:
                print("three brokers: Kafka %s at %s (start %.1fs)"
                      % (k.version, k.bootstrap, k.start_seconds), flush=True)
                three(k)
            print("three-broker selftest passed in %.1fs"
                  % (time.monotonic() - t1), flush=True)
            passed += 1
    except (Fail, kafkafix.KafkaError) as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    print("%d passed, 0 failed%s" % (passed, ", %d skipped" % skipped
                                      if skipped else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
