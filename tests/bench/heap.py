#!/usr/bin/env python3
"""Where the heap of an idle session goes (issue 13, item 3).

    tests/bench/heap.py [--sessions 5000] [--build build-bench]

Runs the router (with one edge, on a real Kafka broker) and then the bare
libwebsockets floor (wsfloor, configured as the benchmark runs it) under
valgrind's massif, takes a detailed heap snapshot of each before and after
N idle sessions connect (vgdb's `detailed_snapshot`), and prints, for each
allocation site, the heap bytes per session that the sessions added. An
allocation site is the first frame of the allocating stack that is not an
allocator or a wrapper of one (malloc, lws_realloc, xcalloc, ...). Writes
tests/bench/heap.json and prints a Markdown table for tests/bench/README.md.

Heap is what massif counts: the bytes asked of malloc plus its 8-16 bytes of
bookkeeping per block (--peak-inaccuracy irrelevant: snapshots are taken on
demand). RSS per session (run.py section a) also holds page rounding and
free memory kept by malloc. Bounded: about 3 minutes.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import run  # noqa: E402  (the benchmark's processes and Kafka)

# Frames that only pass an allocation on: the site is the first frame below.
WRAPPERS = re.compile(
    r"^(malloc|calloc|realloc|free|memalign|posix_memalign|aligned_alloc|strdup|strndup|"
    r"_realloc|lws_realloc|lws_zalloc|lws_malloc|_lws_realloc|lws_realloc_safe|"
    r"xmalloc|xcalloc|xrealloc|xstrdup|xstrndup|CRYPTO_malloc|CRYPTO_zalloc|"
    r"uv__malloc|uv__calloc|uv__realloc|nng_alloc|nni_alloc|nni_zalloc|"
    r"msgpack_zone_malloc\w*|msgpack_sbuffer_write|__libc_\w+|operator new\S*)$")


def parse_snapshot(path):
    """The heap tree of a massif detailed snapshot: {site: bytes}, where a
    site is the first non-wrapper frame of each leaf's stack."""
    lines = open(path).read().splitlines()
    # The last snapshot in the file is the one vgdb asked for.
    start = max(i for i, l in enumerate(lines) if l.startswith("snapshot="))
    tree = [l for l in lines[start:] if re.match(r"^\s*n\d+:", l)]
    sites = {}
    stack = []   # [(depth, fn)]
    node = re.compile(r"^(\s*)n(\d+): (\d+) (.*)$")
    for l in tree:
        m = node.match(l)
        depth, nchild, nbytes, what = len(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
        fn = what
        fm = re.match(r"0x[0-9A-F]+: (\S+) \(([^)]*)\)", what)
        if fm:
            fn = "%s (%s)" % (fm.group(1), os.path.basename(fm.group(2).split(":")[0]))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, fn))
        if nchild == 0:
            frames = [f for _, f in stack[1:]]   # stack[0] is the root line
            site = next((f for f in frames if not WRAPPERS.match(f.split(" ")[0])),
                        frames[-1] if frames else "?")
            if what.startswith("in ") and "places" in what:
                site = "(sites below massif's threshold)"
            sites[site] = sites.get(site, 0) + nbytes
    total = int(re.search(r"mem_heap_B=(\d+)", "\n".join(lines[start:])).group(1))
    extra = int(re.search(r"mem_heap_extra_B=(\d+)", "\n".join(lines[start:])).group(1))
    return sites, total, extra


def snapshot(pid, path):
    subprocess.run(["vgdb", "--pid=%d" % pid, "detailed_snapshot", path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)
    return parse_snapshot(path)


def massif(work, name):
    return ["valgrind", "--tool=massif", "--vgdb=yes", "--threshold=0.1", "--depth=40",
            "--massif-out-file=%s" % os.path.join(work, name + ".massif")]


def profile(bench, label, proc, n, ready):
    base = snapshot(proc.pid, os.path.join(bench.work, label + "-base.ms"))
    lg = bench.loadgen("lg-heap-" + label, proc.ws_url, n, 0,
                       ["--duration-s", 300, "--connect-rate", 500])
    lg.wait_for(r"clients connected in", 240)
    ready()
    time.sleep(3.0)
    full = snapshot(proc.pid, os.path.join(bench.work, label + "-full.ms"))
    lg.stop(run.signal.SIGTERM, 30)
    sites = {}
    for s in set(base[0]) | set(full[0]):
        d = full[0].get(s, 0) - base[0].get(s, 0)
        if d:
            sites[s] = d / n
    return {"sessions": n,
            "heap_per_session_b": (full[1] - base[1]) / n,
            "malloc_overhead_per_session_b": (full[2] - base[2]) / n,
            "sites": dict(sorted(sites.items(), key=lambda kv: -kv[1]))}


def table(res):
    out = []
    for label in ("router", "wsfloor"):
        r = res[label]
        out.append("%s, %d idle sessions: %.0f B of heap per session asked of malloc "
                   "+ %.0f B of malloc's own bookkeeping"
                   % (label, r["sessions"], r["heap_per_session_b"],
                      r["malloc_overhead_per_session_b"]))
        out.append("")
        out.append("| allocation site | bytes per session |")
        out.append("| --- | ---: |")
        shown = 0
        for site, b in r["sites"].items():
            if abs(b) < 8 and shown >= 6:
                continue
            out.append("| `%s` | %.0f |" % (site, b))
            shown += 1
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--build", default=os.path.join(run.ROOT, "build-heap"),
                    help="meson build dir (default build-heap, set up as debugoptimized "
                    "so that massif can name the router's own functions)")
    ap.add_argument("--out", default=os.path.join(HERE, "heap.json"))
    ap.add_argument("--lws-lib", metavar="DIR",
                    help="run router and wsfloor on the libwebsockets in DIR (built with "
                    "symbols by tests/bench/lws-debug.sh) so that lws's own functions are named")
    args = ap.parse_args()
    run.raise_nofile()
    if not os.path.exists(os.path.join(args.build, "build.ninja")):
        subprocess.run(["meson", "setup", args.build, "-Dbuildtype=debugoptimized"],
                       cwd=run.ROOT, check=True, stdout=subprocess.DEVNULL)
    run.ensure_tools(args.build)
    bargs = argparse.Namespace(quick=True, ladder=None, mem_counts=None, build=args.build,
                               out=HERE, preload=None)
    b = run.Bench(bargs)
    env = None
    if args.lws_lib:
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.abspath(args.lws_lib))
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load": run.loadavg(),
           "lws": "symbols from %s" % args.lws_lib if args.lws_lib else "Debian's",
           "machine": run.machine_info()}
    import kafkafix
    try:
        with kafkafix.KafkaCluster(brokers=1) as k:
            b.kafka = k
            k.create_topic("bench", partitions=run.PARTITIONS)
            edge = b.start_edge("edge-1", "bench", "heap-edge-" + b.nonce)
            port, admin = run.free_port(), run.free_port()
            r = run.Proc(b, "router", massif(b.work, "router") + [
                b.bin["router"], "--listen", "127.0.0.1:%d" % port, "--router-id", "heap",
                "--admin-listen", "127.0.0.1:%d" % admin, "--handshakes-per-ip", 1000000,
                "--max-connections", 19500, "--edges", edge.url], env)
            r.admin, r.ws_url = admin, "ws://127.0.0.1:%d/ws" % port
            r.wait_for(r"all \d+ partitions have owners", 120)
            run.say("router under massif; %d sessions" % args.sessions)
            res["router"] = profile(b, "router", r, args.sessions,
                                    lambda: b.wait_sessions_live(r, args.sessions, 120))
            r.stop(run.signal.SIGINT, 60)
            edge.stop()
        wport = run.free_port()
        w = run.Proc(b, "wsfloor", massif(b.work, "wsfloor") + [
            b.bin["wsfloor"], "--listen", "127.0.0.1:%d" % wport, "--partitions",
            run.PARTITIONS, "--exit-after-s", 900], env)
        w.wait_for(r"^LISTENING", 60)
        w.ws_url = "ws://127.0.0.1:%d/ws" % wport
        run.say("wsfloor under massif; %d sessions" % args.sessions)
        res["wsfloor"] = profile(b, "wsfloor", w, args.sessions, lambda: None)
        w.stop(run.signal.SIGTERM, 60)
    finally:
        b.stop_all()
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(table(res))
    run.say("wrote %s; massif files in %s" % (args.out, b.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
