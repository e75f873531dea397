"""Writes tests/bench/report.md and the PNG plots from run.py's results
(report.json). `run.py --report-only report.json` re-renders them."""

import os

TARGETS = {
    "mem_ratio": 1.3, "e2e_ratio": 0.5, "ws_ratio": 0.8, "syscalls": 1.2,
    "hop_p99_ms": 1.0, "hop_p999_ms": 5.0,
    "idle_cpu_ratio": 1.2,  # issue 13 item 1: CPU per record, most sessions / fewest
}
# Issue 13 item 2: the router+link hop (edge, link, router, WebSocket)'s p99 target by rate (records/s); the
# rates not listed are judged against TARGETS["hop_p99_ms"].
HOP_P99_MS_AT = {1000: 1.0, 5000: 2.0}


def keepalive_window(records):
    """What section a's busy window of `records` at 1,000/s holds of the
    router's keepalive (a ping to each session every 30 s by default)."""
    if records >= 30000:
        return "over %d s, one keepalive interval: every session is pinged once" % (
            records // 1000)
    return ("over %d s, less than a keepalive interval: the pings of some sessions fall "
            "in it, and at some session counts none" % (records // 1000))


def hop_target(tgt, rate):
    if tgt == "hop_p99_ms":
        return HOP_P99_MS_AT.get(rate, TARGETS[tgt])
    return TARGETS[tgt]
PAUSE_SLACK_MS = 100
# Issue 13 item 2: at every sustained live step up to half the highest
# sustained rate, end-to-end p99 <= the Kafka floor's p99 at that rate + this.
LOAD_SLACK_MS = 5


def f(v, fmt="%.0f", none="n/a"):
    if v is None:
        return none
    try:
        return fmt % v
    except TypeError:
        return str(v)


def yes(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def best_sustained(rows):
    """(highest delivered/s of a step the system kept up with, its row, lower
    bound?). A lower bound when the ladder never found the system's limit:
    every step passed, or it ended because the producer fell short."""
    ok = [r for r in rows if r.get("system_ok", r.get("ok"))]
    if not ok:
        return None, None, False
    best = max(ok, key=lambda r: r["delivered_per_s"])
    last = rows[-1]
    bound = last.get("system_ok", last.get("ok")) and (last.get("ok") or
                                                       last.get("producer_bound", False))
    return best["delivered_per_s"], best, bool(bound)


def floor_p99(r, S):
    """The Kafka floor's p99 for live step r: the bare consumer that read the
    same records at the same time (kfloor_same, since issue 13 item 2), else
    kfloor's own step at the same rate (before: another 8 s window, so a
    broker stall fell on one side only). (p99, which) or (None, None)."""
    same = (r.get("kfloor_same") or {}).get("lat") or {}
    if same.get("p99") is not None:
        return same["p99"], "same records"
    for k in S.get("kfloor", []):
        if k["rate"] == r["rate"] and k.get("ok") and k["lat"].get("p99") is not None:
            return k["lat"]["p99"], "own step"
    return None, None


def latency_at_load(S, key="e2e"):
    """The steps issue 13 item 2 judges: the sustained steps of S[key] whose
    rate is at most half the highest sustained rate, each p99 against the
    Kafka floor's p99 at that rate (floor_p99) + LOAD_SLACK_MS. Returns
    (rows, met): rows of (rate, p99, floor p99, limit, ok, which floor);
    met None if none judged."""
    ok = [r for r in S.get(key, []) if r.get("ok")]
    if not ok:
        return [], None
    top = max(r["rate"] for r in ok)
    rows = []
    for r in sorted(ok, key=lambda r: r["rate"]):
        kp99, which = floor_p99(r, S)
        if r["rate"] > top / 2 or kp99 is None or r["lat"].get("p99") is None:
            continue
        lim = kp99 + LOAD_SLACK_MS
        rows.append((r["rate"], r["lat"]["p99"], kp99, lim, r["lat"]["p99"] <= lim, which))
    return rows, (all(x[4] for x in rows) if rows else None)


def write(res, out, plots=True):
    os.makedirs(out, exist_ok=True)
    md = []
    add = md.append
    mi = res.get("machine", {})
    add("# Benchmark report%s" % (" (quick mode: a smoke test, not the figures)"
                                 if res.get("mode") == "quick" else ""))
    add("")
    add("Produced by `tests/bench/run.py%s` (see [README.md](README.md)) on %s; "
        "%s CPUs (%s), %s GiB, kernel %s, libwebsockets %s, librdkafka %s, Apache Kafka %s "
        "(one broker, kafkafix), commit %s%s; syscalls counted with %s. Elapsed %s s%s."
        % (" --quick" if res.get("mode") == "quick" else "", res.get("started"),
           mi.get("cpus"), mi.get("cpu"), mi.get("mem_gib"), mi.get("kernel"), mi.get("lws"),
           mi.get("rdkafka"), res.get("kafka", {}).get("version"), mi.get("commit"),
           " with a modified work tree" if mi.get("worktree_modified") else "",
           res.get("syscall_tool"), res.get("elapsed_s"),
           "" if res.get("complete") else " — **the run did not complete**"))
    add("")
    if res.get("preload"):
        add("**What-if run: edge and router ran with LD_PRELOAD=%s.** Not the product as "
            "built." % res["preload"])
        add("")
    add("The machine is shared (two cores, other jobs running): every figure is from one "
        "run and noisy; the load average at each measurement is in report.json.")
    add("")

    rows = summary_rows(res)
    add("## Targets")
    add("")
    add("| figure | value | floor | ratio | target | |")
    add("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        add("| %s | %s | %s | %s | %s | %s |" % r)
    add("")
    add("Value and floor come from the same run. Ratios are value/floor. A `≥` marks a "
        "lower bound: the ladder ended before the system fell behind (every step passed, or "
        "the producer could not offer more), so the real maximum is higher; a ratio of two "
        "lower bounds is then undetermined.")
    add("")

    section_memory(res, add)
    section_latency(res, add)
    section_throughput(res, add)
    section_join(res, add)

    with open(os.path.join(out, "report.md"), "w") as fp:
        fp.write("\n".join(md) + "\n")
    if plots:
        try:
            make_plots(res, out)
        except Exception as e:  # plots are a convenience; the tables are the report
            print("plots failed: %r" % e)


def summary_rows(res):
    rows = []
    mem = res.get("memory")
    if mem and mem.get("router") and mem.get("wsfloor"):
        r, w = mem["router"][-1], mem["wsfloor"][-1]
        ratio = r["per_session_kb"] / w["per_session_kb"] if w["per_session_kb"] > 0 else None
        rows.append(("idle memory per session, %d sessions (router RSS growth / sessions)"
                     % r["sessions"], "%.2f KiB" % r["per_session_kb"],
                     "%.2f KiB (wsfloor)" % w["per_session_kb"], f(ratio, "%.2fx"),
                     "≤ %.1fx" % TARGETS["mem_ratio"],
                     yes(ratio <= TARGETS["mem_ratio"] if ratio else None)))
    if mem and mem.get("router") and (mem["router"][-1].get("busy") or {}).get(
            "cpu_us_per_record"):
        r = mem["router"][-1]
        w = mem["wsfloor"][-1] if len(mem["wsfloor"]) == len(mem["router"]) else {}
        rb, wb = r["busy"], (w.get("busy") or {})
        first = (mem["router"][0].get("busy") or {}).get("cpu_us_per_record")
        if first and len(mem["router"]) > 1:
            ratio = rb["cpu_us_per_record"] / first
            rows.append(("CPU per record at 1,000 records/s, %d sessions connected against %d "
                         "(router, %d records: %s)"
                         % (r["sessions"], mem["router"][0]["sessions"], rb["records"],
                            keepalive_window(rb["records"])),
                         "%.0f µs" % rb["cpu_us_per_record"],
                         "%.0f µs (%d sessions)" % (first, mem["router"][0]["sessions"]),
                         "%.2fx" % ratio, "≤ %.1fx" % TARGETS["idle_cpu_ratio"],
                         yes(ratio <= TARGETS["idle_cpu_ratio"])))
        rows.append(("CPU per record at 1,000 records/s with %d sessions connected"
                     % r["sessions"], "%.0f µs" % rb["cpu_us_per_record"],
                     f(wb.get("cpu_us_per_record"), "%.0f µs (wsfloor)"),
                     f(rb["cpu_us_per_record"] / wb["cpu_us_per_record"]
                       if wb.get("cpu_us_per_record") else None, "%.2fx"), "(context)", ""))
    thr = res.get("throughput", {}).get("sizes", {})
    for size, S in thr.items():
        e2e, erow, eall = best_sustained(S.get("e2e", []))
        kf, krow, kall = best_sustained(S.get("kfloor", []))
        ratio = e2e / kf if e2e and kf else None
        t = TARGETS["e2e_ratio"]
        if ratio is None:
            rtext, met = "n/a", None
        elif eall and kall:
            rtext, met = "undetermined (both bounds; %.2f)" % ratio, None
        elif kall:   # the floor may be higher: the ratio is at most this
            rtext, met = "≤ %.2fx" % ratio, (False if ratio < t else None)
        elif eall:   # the system may be faster: the ratio is at least this
            rtext, met = "≥ %.2fx" % ratio, (True if ratio >= t else None)
        else:
            rtext, met = "%.2fx" % ratio, ratio >= t
        rows.append(("end-to-end throughput, %s B records (highest sustained live rate, "
                     "producer paced)" % size, ("≥ " if eall else "") + f(e2e, "%.0f/s"),
                     ("≥ " if kall else "") + f(kf, "%.0f/s (kfloor)"), rtext,
                     "≥ %.1fx" % t, yes(met)))
        for key, who in (("e2e", ""), ("e2e_base", " (base build, same run)")):
            judged, lmet = latency_at_load(S, key)
            if not judged:
                continue
            worst = max(judged, key=lambda x: x[1] - x[2])
            rows.append(("end-to-end p99 at load%s, %s B: sustained steps up to half the "
                         "highest (%s), worst excess over the Kafka floor's p99 (same records)"
                         % (who, size, ", ".join("%d/s" % x[0] for x in judged)),
                         "%s ms at %d/s" % (worst[1], worst[0]),
                         "%s ms (kfloor)" % worst[2], "%+d ms" % (worst[1] - worst[2]),
                         "≤ +%d ms at every step" % LOAD_SLACK_MS,
                         yes(lmet) if not who else "(context)"))
        wf = S.get("wsfloor") or {}
        wrate = wf.get("delivered_per_s")
        dr = S.get("drain") or {}
        de, dk = dr.get("e2e") or {}, dr.get("kfloor") or {}
        if de and dk:
            ratio = de["delivered_per_s"] / dk["delivered_per_s"] if dk.get(
                "delivered_per_s") else None
            rows.append(("end-to-end drain of a Kafka backlog, %s B (delivered/s)" % size,
                         f(de["delivered_per_s"], "%.0f/s"),
                         f(dk.get("delivered_per_s"), "%.0f/s (kfloor)"), f(ratio, "%.2fx"),
                         "≥ %.1fx" % TARGETS["e2e_ratio"],
                         yes(ratio >= TARGETS["e2e_ratio"] if ratio else None)))
            b = dr.get("bound")
            if b:
                rows.append(("… the most any edge-and-router design reaches on these cores: "
                             "Kafka floor / (Kafka floor + the kernel's cost of the link and "
                             "of the WebSocket leg), CPU µs a record",
                             "%.2fx reached" % b["reached"],
                             "%.2fx (%.1f / (%.1f + %.2f + %.2f))"
                             % (b["ratio"], b["kafka_us"], b["kafka_us"], b["link_us"],
                                b["ws_us"]),
                             "%.0f%% of the bound" % (100 * b["share"]), "(context)", ""))
        if de:
            ratio = de["delivered_per_s"] / wrate if wrate else None
            rows.append(("WebSocket leg, %s B (router delivered/s while draining; busiest: %s "
                         "%.0f%% of a core)" % (size, de.get("bottleneck"),
                                                100 * de["cpu_util"].get(de.get("bottleneck"), 0)),
                         f(de["delivered_per_s"], "%.0f/s"), f(wrate, "%.0f/s (wsfloor)"),
                         f(ratio, "%.2fx"), "≥ %.1fx" % TARGETS["ws_ratio"],
                         yes(ratio >= TARGETS["ws_ratio"] if ratio else None)))
            wb = S.get("wsfloor_batch") or {}
            if wb.get("delivered_per_s"):
                ratio = de["delivered_per_s"] / wb["delivered_per_s"]
                rows.append(("… against wsfloor with the router's write batching "
                             "(`--batch-bytes 65536`)", f(de["delivered_per_s"], "%.0f/s"),
                             f(wb["delivered_per_s"], "%.0f/s (wsfloor batched)"),
                             "%.2fx" % ratio, "(context)", ""))
            rc, wc = de["cpu_s_per_M"].get("router"), (wf.get("cpu_s_per_M") or {}).get("wsfloor")
            if rc and wc:
                rows.append(("WebSocket leg CPU, %s B (router CPU s per million records while "
                             "draining)" % size, "%.1f s/M" % rc, "%.1f s/M (wsfloor)" % wc,
                             "%.2fx" % (rc / wc), "(context)", ""))
            sc = de.get("syscalls_per_msg", {}).get("router")
            wsc = (wf.get("syscalls_per_msg") or {}).get("wsfloor")
            rows.append(("syscalls per delivered message at saturation (draining), %s B "
                         "(router, all threads)" % size, f(sc, "%.2f"),
                         f(wsc, "%.2f (wsfloor)"), f(sc / wsc if sc and wsc else None, "%.2fx"),
                         "≤ %.1f" % TARGETS["syscalls"],
                         yes(sc <= TARGETS["syscalls"] if sc is not None else None)))
        if de and (S.get("wsfloor_batch") or {}).get("syscalls_per_msg"):
            wbs = S["wsfloor_batch"]["syscalls_per_msg"].get("wsfloor")
            sc = de.get("syscalls_per_msg", {}).get("router")
            rows.append(("… against wsfloor with the router's write batching", f(sc, "%.2f"),
                         f(wbs, "%.2f (wsfloor batched)"),
                         f(sc / wbs if sc and wbs else None, "%.2fx"), "(context)", ""))
        if erow:
            sc = erow["syscalls_per_msg"].get("router")
            rows.append(("syscalls per delivered message at the highest sustained live step "
                         "(%d/s), %s B" % (erow["rate"], size), f(sc, "%.2f"), "", "",
                         "(context)", ""))
    lat = res.get("latency", {})
    for run in lat.get("runs", []):
        L, K = run["loadgen"]["latency_ms"], run.get("kfloor") or {}
        H = run.get("hop_us") or {}
        for q, key, tgt in (("p99", "p99", "hop_p99_ms"), ("p99.9", "p999", "hop_p999_ms")):
            hop = ms(H.get(key))
            rows.append(("router+link hop at %s, %d records/s (per record: client receipt − "
                         "kfloor receipt, %s records)" % (q, run["rate"], H.get("count")),
                         f(hop, "%.2f ms"), f(ms((run.get("kfloor_us") or {}).get(key)),
                                              "%.1f ms (kfloor e2e)"),
                         "n/a", "≤ %g ms" % hop_target(tgt, run["rate"]),
                         yes(hop <= hop_target(tgt, run["rate"]) if hop is not None else None)))
            d = sub(L.get(key), K.get(key))
            rows.append(("… same as a difference of percentiles: router path %s − kfloor %s "
                         "(whole ms)" % (L.get(key), K.get(key)), f(d, "%d ms"),
                         f(K.get(key), "%d ms (kfloor)"),
                         f(L.get(key) / K.get(key) if K.get(key) else None, "%.2fx"),
                         "≤ %g ms" % hop_target(tgt, run["rate"]), "(context)"))
    j = res.get("join")
    if j and j.get("router"):
        R, F = j["router"], j.get("floor") or {}
        u, fu = R.get("unmoved", {}), F.get("unmoved", {})
        extra = (u["join_max_ms"] - u["control_max_ms"]) if u.get("join_max_ms") is not None \
            and u.get("control_max_ms") is not None else None
        fextra = (fu["join_max_ms"] - fu["control_max_ms"]) if fu.get("join_max_ms") is not None \
            and fu.get("control_max_ms") is not None else None
        rows.append(("unmoved partitions, edge joins: longest client gap after the join − "
                     "in the control window", f(extra, "%+d ms") + " (%s vs %s ms)" % (
                         u.get("join_max_ms"), u.get("control_max_ms")),
                     f(fextra, "%+d ms (kfloor)"), "n/a", "no pause (≤ +%d ms)" % PAUSE_SLACK_MS,
                     yes(extra <= PAUSE_SLACK_MS if extra is not None else None)))
        m, fm = R.get("moved", {}), F.get("moved", {})
        rows.append(("moved partitions, edge joins: longest client gap after the join",
                     f(m.get("join_max_ms"), "%d ms"), f(fm.get("join_max_ms"),
                                                         "%d ms (kfloor handover)"),
                     f(m["join_max_ms"] / fm["join_max_ms"] if m.get("join_max_ms") and
                       fm.get("join_max_ms") else None, "%.2fx"), "(none)", ""))
    return rows


def section_memory(res, add):
    mem = res.get("memory")
    if not mem:
        return
    add("## a. Idle memory per session")
    add("")
    add("loadgen opens the sessions (kws.v1, idle: no records) in three steps on one "
        "server process; VmRSS growth over the server's RSS before the first session, divided "
        "by the sessions held. wsfloor is the same lws server without router state.")
    add("")
    add("| sessions | router RSS growth | router per session | wsfloor growth | "
        "wsfloor per session | ratio | edge per session (info) |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    for i, r in enumerate(mem["router"]):
        w = mem["wsfloor"][i] if i < len(mem["wsfloor"]) else None
        e = mem["edge"][i] if i < len(mem.get("edge", [])) else None
        add("| %d | %.1f MiB | %.2f KiB | %s | %s | %s | %s |"
            % (r["sessions"], (r["rss_kb"] - r["base_kb"]) / 1024, r["per_session_kb"],
               f((w["rss_kb"] - w["base_kb"]) / 1024 if w else None, "%.1f MiB"),
               f(w["per_session_kb"] if w else None, "%.2f KiB"),
               f(r["per_session_kb"] / w["per_session_kb"] if w and w["per_session_kb"] > 0
                 else None, "%.2fx"),
               f(e["per_session_kb"] if e else None, "%.2f KiB")))
    if any(r.get("busy") for r in mem["router"]):
        add("")
        rrec = (mem["router"][0].get("busy") or {}).get("records")
        wrec = (mem["wsfloor"][0].get("busy") or {}).get("records") if mem["wsfloor"] else None
        add("The cost of a record with these sessions connected: %s records at 1,000/s on the "
            "router (keyed over 1,000 of the sessions, through Kafka and the edge; %s), "
            "%s on wsfloor (made by its 1 ms "
            "timer, round-robin over all its sessions). CPU of the router (all threads) or "
            "wsfloor process, and its syscalls, per record:"
            % (f(rrec, "%d"), keepalive_window(rrec or 0), f(wrec, "%d")))
        add("")
        add("| sessions | router CPU per record | router syscalls per record | wsfloor CPU per "
            "record | wsfloor syscalls per record | ratio (CPU) |")
        add("| --- | --- | --- | --- | --- | --- |")
        for i, r in enumerate(mem["router"]):
            w = mem["wsfloor"][i] if i < len(mem["wsfloor"]) else {}
            rb, wb = r.get("busy") or {}, w.get("busy") or {}
            add("| %d | %s | %s | %s | %s | %s |"
                % (r["sessions"], f(rb.get("cpu_us_per_record"), "%.0f µs"),
                   f(rb.get("syscalls_per_record"), "%.1f"),
                   f(wb.get("cpu_us_per_record"), "%.0f µs"),
                   f(wb.get("syscalls_per_record"), "%.1f"),
                   f(rb["cpu_us_per_record"] / wb["cpu_us_per_record"]
                     if rb.get("cpu_us_per_record") and wb.get("cpu_us_per_record") else None,
                     "%.2fx")))
    if len(mem["router"]) >= 2:
        a, b = mem["router"][-2], mem["router"][-1]
        slope = (b["rss_kb"] - a["rss_kb"]) / (b["sessions"] - a["sessions"])
        line = "Marginal cost between %d and %d sessions: router %.2f KiB/session" % (
            a["sessions"], b["sessions"], slope)
        if len(mem["wsfloor"]) == len(mem["router"]):
            c, d = mem["wsfloor"][-2], mem["wsfloor"][-1]
            ws = (d["rss_kb"] - c["rss_kb"]) / (d["sessions"] - c["sessions"])
            line += ", wsfloor %.2f KiB/session (ratio %s)" % (ws, f(slope / ws if ws > 0 else None,
                                                                      "%.2fx"))
        add("")
        add(line + ".")
    add("")
    add("![memory](memory.png)")
    add("")


def section_latency(res, add):
    lat = res.get("latency")
    if not lat:
        return
    add("## b. End-to-end latency at fixed rates")
    add("")
    add("The producer (tests/tools/produce, 100 B records, keys client-0..%d) paces by "
        "schedule and stamps each record's creation time in \"ts\"; latency is receipt minus "
        "ts, so queueing anywhere counts. Every client is connected and live first, then 2 s "
        "of warm-up records (another tag, not counted), then the measured records; all "
        "clients stay connected until well after the last one. "
        "%d clients: loadgen holds %d "
        "(percentiles in whole ms, as loadgen measures), wsprobe %d (receipt in µs: the CDF). "
        "kfloor consumes the same records at the same time in its own group: the Kafka-only "
        "latency. The per-record hop pairs each record a wsprobe client got with the same "
        "record at kfloor (both receipts in µs on one clock): what the edge, nng, the router "
        "and the WebSocket add over a bare consumer. \"Difference\" is router path − kfloor "
        "at the same percentile (whole ms). %d s per rate."
        % (lat["clients"] - 1, lat["clients"], lat["clients"] - lat["probe_clients"],
           lat["probe_clients"], lat["seconds"]))
    add("")
    add("| rate | records | router path p50 / p99 / p99.9 / max | kfloor p50 / p99 / p99.9 / "
        "max | difference p50 / p99 / p99.9 | per-record hop p50 / p99 / p99.9 / max | "
        "probe (µs res.) p50 / p99 / p99.9 | kfloor (µs res.) "
        "p50 / p99 / p99.9 | router / edge CPU per record | lost |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in lat["runs"]:
        L, K = run["loadgen"]["latency_ms"], run.get("kfloor") or {}
        P, KU = run.get("probe") or {}, run.get("kfloor_us") or {}
        H = run.get("hop_us") or {}
        add("| %d/s | %d | %s / %s / %s / %s ms | %s / %s / %s / %s ms | %s / %s / %s ms | "
            "%s / %s / %s / %s ms | "
            "%s / %s / %s ms | %s / %s / %s ms | %.0f / %.0f µs | %d |"
            % (run["rate"], run["records"], L.get("p50"), L.get("p99"), L.get("p999"),
               L.get("max"), K.get("p50"), K.get("p99"), K.get("p999"), K.get("max"),
               f(sub(L.get("p50"), K.get("p50")), "%d"), f(sub(L.get("p99"), K.get("p99")), "%d"),
               f(sub(L.get("p999"), K.get("p999")), "%d"),
               f(ms(H.get("p50")), "%.2f"), f(ms(H.get("p99")), "%.2f"),
               f(ms(H.get("p999")), "%.2f"), f(ms(H.get("max")), "%.1f"),
               f(ms(P.get("p50")), "%.1f"), f(ms(P.get("p99")), "%.1f"),
               f(ms(P.get("p999")), "%.1f"), f(ms(KU.get("p50")), "%.1f"),
               f(ms(KU.get("p99")), "%.1f"), f(ms(KU.get("p999")), "%.1f"),
               run["cpu_us_per_record"]["router"], run["cpu_us_per_record"]["edge"],
               run["loadgen"]["lost"]))
    add("")
    add("![latency CDF](latency_cdf.png)")
    add("")


def ms(us):
    return None if us is None else us / 1000.0


def sub(a, b):
    return None if a is None or b is None else a - b


def section_throughput(res, add):
    thr = res.get("throughput")
    if not thr or not thr.get("sizes"):
        return
    add("## c. Highest sustained rate, CPU and syscalls")
    add("")
    add("Each step: %d loadgen clients (kws.v1) wait, the producer writes rate × %d s records "
        "keyed over them, paced by schedule. A step is sustained when every record arrives, "
        "p99 ≤ 1 s and the producer kept its rate; the ladder stops at the first step that is "
        "not (retried once in the full run). delivered/s = records / (last receipt − "
        "producer start). kfloor runs the same ladder on its own topic with nothing else "
        "consuming; wsfloor makes the records itself as fast as the same loadgen takes them. "
        "CPU from /proc/PID/stat (all threads) over the step, per million delivered records; "
        "syscalls over a window in the middle of the step, per message delivered in it."
        % (thr["clients"], thr["step_s"]))
    add("")
    for size, S in thr["sizes"].items():
        add("### %s B records" % size)
        add("")
        add("| system | offered | delivered/s | p50 / p99 / max ms | arrived | CPU s per M "
            "records | syscalls per message | load | |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for row in (S.get("kfloor", []) + S.get("e2e", []) + S.get("e2e_base", []) +
                    S.get("e2e_base_traced", [])):
            add("| %s | %d/s (%.0f) | %.0f | %s / %s / %s | %d/%d | %s | %s | %.1f | %s |"
                % (row["system"], row["rate"], row["offered_per_s"], row["delivered_per_s"],
                   row["lat"].get("p50"), row["lat"].get("p99"), row["lat"].get("max"),
                   row["records"], row["expected"],
                   ", ".join("%s %.1f" % kv for kv in row["cpu_s_per_M"].items()),
                   ", ".join("%s %.2f" % kv for kv in row["syscalls_per_msg"].items()),
                   row.get("load") or 0, "ok" if row["ok"] else "not sustained: " + row["why"]))
        for wf in (S.get("wsfloor"), S.get("wsfloor_batch")):
            if not wf:
                continue
            add("| %s | as fast as possible | %.0f | %s / %s / %s | %d/%d | %s | %s | %.1f "
                "| %s |" % (wf["system"], wf["delivered_per_s"], wf["lat"].get("p50"),
                         wf["lat"].get("p99"),
                         wf["lat"].get("max"), wf["records"], wf["expected"],
                         ", ".join("%s %.1f" % kv for kv in wf["cpu_s_per_M"].items()),
                         ", ".join("%s %.2f" % kv for kv in wf["syscalls_per_msg"].items()),
                         wf.get("load") or 0, trials(wf)))
        add("")
        dr = S.get("drain") or {}
        if dr.get("e2e"):
            add("Draining a backlog (%d records queued in Kafka while the edge was stopped; %s):"
                % (dr["e2e"]["expected"],
                   "the second drain of the same processes, and of kfloor, after the same "
                   "backlog once" if dr["e2e"].get("warm_up_records") else
                   "the first drain of fresh processes"))
            add("")
            add("| system | delivered/s | arrived | seconds | CPU s per M records | busy (share "
                "of one core) | syscalls per message | |")
            add("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for row in (dr["e2e"], dr.get("kfloor")):
                if not row:
                    continue
                add("| %s | %.0f | %d/%d | %.2f | %s | %s | %s | %s |"
                    % (row["system"], row["delivered_per_s"], row["records"], row["expected"],
                       row["seconds"],
                       ", ".join("%s %.1f" % kv for kv in row["cpu_s_per_M"].items()),
                       ", ".join("%s %.0f%%" % (k, 100 * v) for k, v in row["cpu_util"].items()),
                       ", ".join("%s %.2f" % kv for kv in row["syscalls_per_msg"].items()),
                       trials(row)))
            if dr["e2e"].get("cpu_us_per_record_all") and dr.get("kfloor"):
                add("")
                add("CPU per record of every process: pipeline %.1f µs (router, edge, broker, "
                    "loadgen), floor %.1f µs (kfloor, broker): %.2fx. On cores that are all "
                    "busy the rates can only follow these sums."
                    % (dr["e2e"]["cpu_us_per_record_all"], dr["kfloor"]["cpu_us_per_record_all"],
                       dr["kfloor"]["cpu_us_per_record_all"] / dr["e2e"]["cpu_us_per_record_all"]))
            b = dr.get("bound")
            if b:
                add("")
                add("The floors of a drain: besides the Kafka floor's %.1f µs, every record "
                    "crosses the edge → router link and a client's socket. What the kernel "
                    "alone costs to carry the same framed records over loopback TCP, with "
                    "nothing done to them in user space (linkfloor, least of three runs): "
                    "%.2f µs through one connection in 256 KiB sends (the link; runs %s), "
                    "%.2f µs through 1,000 connections in 64 KiB sends (the WebSocket leg, "
                    "every client's records batched as deep as the router's writes go; runs "
                    "%s). So no design with the edge and the router in two processes drains "
                    "faster than %.2fx the Kafka floor on these cores, and one that does any "
                    "work of its own (decoding, framing, the clients' parsing) less; this "
                    "build reached %.2fx, %.0f%% of that."
                    % (b["kafka_us"], b["link_us"], dr["link"].get("trials_us"), b["ws_us"],
                       dr["ws"].get("trials_us"), b["ratio"], b["reached"], 100 * b["share"]))
            add("")
            where_time_goes(dr["e2e"], S.get("wsfloor"), add, "while draining",
                            S.get("wsfloor_batch"))
        judged, _ = latency_at_load(S)
        if judged:
            extra = [(title, {r["rate"]: r for r in S.get(key, [])})
                     for key, title in (("e2e_base", "base build"),
                                        ("e2e_base_traced", "base build, traced in the step"))
                     if S.get(key)]
            add("Latency at load (issue 13 item 2): every sustained step up to half the highest "
                "sustained rate, end-to-end p99 against the Kafka floor's p99 + %d ms. The floor "
                "is a bare consumer (kfloor, its own group) reading the same records during the "
                "same step (\"same records\"; kfloor's own step at that rate where that is "
                "missing)%s. Each cell: p99 / floor p99 (ms)." % (
                    LOAD_SLACK_MS, "; the base build's steps ran in the same ladder, each with "
                    "its own same-records floor" if extra else ""))
            add("")
            add("| rate | this build | |" + "".join(" %s | |" % t for t, _ in extra))
            add("| --- | --- | --- |" + " --- | --- |" * len(extra))
            for rate, p99, kp99, lim, ok, which in judged:
                cells = ""
                for _, allrows in extra:
                    r = allrows.get(rate)
                    bp, bk = (r["lat"].get("p99"), floor_p99(r, S)[0]) if r else (None, None)
                    cells += " %s / %s | %s |" % (
                        f(bp), f(bk), yes(bp <= bk + LOAD_SLACK_MS)
                        if bp is not None and bk is not None else "")
                add("| %d/s | %s / %s%s | %s |" % (rate, p99, kp99, "" if which == "same records"
                                                    else " (own step)", yes(ok)) + cells)
            add("")
        _, best, _ = best_sustained(S.get("e2e", []))
        if best:
            where_time_goes(best, None, add, "at the highest sustained live step (%d/s)"
                            % best["rate"])
            fr = best.get("syscall_costs_from")
            if fr:
                add("(The syscall counts and the `perf trace -s` sample above come from a step "
                    "of their own at %d/s, not judged: p99 %s ms while measured, the bare "
                    "consumer on the same records %s ms.)" % (
                        fr["rate"], fr["lat"].get("p99"), (fr.get("floor") or {}).get("p99")))
                add("")
        latency_stages(S, add)
    add("![throughput](throughput.png)")
    add("")


def latency_stages(S, add):
    """Where the live ladder's latency goes, per step: Kafka alone (kfloor,
    timestamp -> consumer receipt), the router's write (its histogram,
    timestamp -> WebSocket write, so Kafka + edge + link + router queue),
    and the client's receipt (loadgen), with loadgen's share of a core."""
    rows = [r for r in S.get("e2e", []) if r.get("router_write_ms")]
    if not rows:
        return
    kf = {r["rate"]: r for r in S.get("kfloor", [])}
    add("Where the latency goes at each live step (p50 / p99, ms; the router's figures are "
        "interpolated inside its histogram's buckets 1, 2.5, 5, 10, 25, 50, 100, 250, 500 ms, "
        "so they are coarse): record timestamp → a bare consumer's receipt (kfloor, same "
        "rate, own run), → the router's WebSocket write (`kws_router_delivery_delay_seconds`: "
        "Kafka, edge, link and the router's queue), → the client's receipt (loadgen). "
        "loadgen is one thread: its share of a core over the step tells whether it kept up.")
    add("")
    add("| rate | kfloor receipt | router write | client receipt | loadgen CPU share |")
    add("| --- | --- | --- | --- | --- |")
    for r in rows:
        k = kf.get(r["rate"])
        w = r["router_write_ms"]
        add("| %d/s | %s | %s / %s | %s / %s | %s |"
            % (r["rate"], "%s / %s" % (k["lat"].get("p50"), k["lat"].get("p99")) if k else "n/a",
               f(w.get("p50"), "%.1f"), f(w.get("p99"), "%.1f"),
               r["lat"].get("p50"), r["lat"].get("p99"),
               f(100 * r["loadgen_cpu_share"], "%.0f%%") if r.get("loadgen_cpu_share")
               else "n/a"))
    add("")


def trials(row):
    t = row.get("trials") or []
    return "best of %d trials: %s /s" % (len(t), ", ".join(str(x) for x in t)) if len(t) > 1 \
        else ""


def where_time_goes(row, wf, add, when, wfb=None):
    add("Where the time and syscalls go %s:" % when)
    add("")
    for proc in ("router", "edge"):
        th = row.get("threads", {}).get(proc, {})
        busy = sorted(((v, k) for k, v in th.items() if v > 0.005), reverse=True)
        if busy:
            add("- %s CPU by thread: %s" % (proc, ", ".join("%s %.2f s" % (k, v)
                                                             for v, k in busy[:6])))
    for proc in ("router", "edge"):
        sc = row.get("syscalls", {}).get(proc)
        if not sc:
            continue
        per = row["syscalls_per_msg"].get(proc) or 0
        total = sc["total"] or 1
        by = sorted(sc["by_syscall"].items(), key=lambda kv: -kv[1])
        add("- %s syscalls (%.2f per message): %s%s" % (
            proc, per, ", ".join("%s %.0f%%" % (k, 100.0 * v / total) for k, v in by[:6] if v),
            "; by thread: " + ", ".join("%s %.0f%%" % (k, 100.0 * v / total) for k, v in sorted(
                sc.get("by_thread", {}).items(), key=lambda kv: -kv[1])[:4])
            if sc.get("by_thread") else ""))
    costs = row.get("syscall_costs")
    if costs:
        blocking = {"futex", "epoll_wait", "epoll_pwait", "clock_nanosleep", "nanosleep"}
        top = sorted(((k, v) for k, v in costs.items() if k not in blocking),
                     key=lambda kv: -kv[1]["total_ms"])[:5]
        add("- router, a 1 s `perf trace -s` sample (wall time per call; threads' waits in "
            "futex/epoll_wait left out): %s"
            % ", ".join("%s %d calls × %.1f µs" % (k, v["calls"], v["mean_us"]) for k, v in top))
    w = row.get("window") or {}
    if w.get("nng_messages"):
        add("- router received %.0f nng messages for %.0f records in the window: %.1f records "
            "per edge→router message" % (w["nng_messages"], w["messages"],
                                         w["messages"] / w["nng_messages"]))
    for w in (wf, wfb):
        if w and w.get("syscalls", {}).get("wsfloor"):
            sc = w["syscalls"]["wsfloor"]
            total = sc["total"] or 1
            by = sorted(sc["by_syscall"].items(), key=lambda kv: -kv[1])
            add("- %s syscalls (%.2f per message): %s" % (
                w["system"], w["syscalls_per_msg"]["wsfloor"],
                ", ".join("%s %.0f%%" % (k, 100.0 * v / total) for k, v in by[:5] if v)))
    add("")


def section_join(res, add):
    j = res.get("join")
    if not j or not j.get("router"):
        return
    add("## d. Pause when an edge joins")
    add("")
    add("One edge owns all partitions; the router knows a second edge's address. %d wsprobe "
        "clients receive %d records/s in total (%.0f per client per second). After a %d s "
        "control window a second edge starts; partitions moved are those the router logged "
        "(`partition N: owner A -> B`) after that. For each client: the longest gap between "
        "two of its records in the control window and in the %d s after the join. The floor "
        "runs the same join with kfloor consumers in a group on the same topic and rate "
        "(per partition: a moved partition's pause is its first record at the new consumer "
        "minus its last at the old one)." % (j["clients"], j["rate"], j["rate"] / j["clients"],
                                          j["window_s"], j["window_s"]))
    add("")
    add("Moved partitions: router %s, kfloor %s." % (j.get("moved_partitions"),
                                                    (j.get("floor") or {}).get(
                                                        "moved_partitions")))
    add("")
    add("| who | group | clients / partitions | longest gap, control | longest gap after "
        "the join (max) | median client's longest gap after the join |")
    add("| --- | --- | --- | --- | --- | --- |")
    for who, R in (("router", j["router"]), ("kfloor", j.get("floor") or {})):
        for g in ("moved", "unmoved"):
            x = R.get(g)
            if not x:
                continue
            def gap(v):  # gaps under the probes' --gap-ms 20 are not listed
                return "< 20" if v == 0 else v
            add("| %s | %s | %s | %s ms | %s ms | %s ms |"
                % (who, g, x.get("clients", x.get("partitions")), gap(x.get("control_max_ms")),
                   gap(x.get("join_max_ms")), gap(x.get("join_p50_ms"))))
    add("")
    w, st = j.get("witness") or {}, j.get("stalls") or {}
    if w or st:
        add("Where a pause comes from: the witness (a bare consumer in its own group, reading "
            "the same records throughout) saw a longest partition gap of %s ms after the join "
            "(%s ms in the control window). Sampled every 100 ms after the join: edge-1 "
            "consumed no record for %s ms and the router delivered none for %s ms at the "
            "longest, while their admin endpoints (answered on their loops) took at most %s ms "
            "and %s ms to answer." % (w.get("join_max_ms"), w.get("control_max_ms"),
                                     st.get("edge1_records"), st.get("router_messages"),
                                     st.get("edge1_answer_ms"), st.get("router_answer_ms")))
        add("")
    tr = j.get("trials") or []
    if len(tr) > 1:
        add("The join ran %d times in this run, each with its own floor; the table above is the "
            "trial whose unmoved clients paused longest. Every trial (unmoved partitions: longest "
            "gap after the join − control, ms):" % len(tr))
        add("")
        add("| trial | router unmoved | kfloor unmoved | witness after / control | load |")
        add("| --- | --- | --- | --- | --- |")
        for i, t in enumerate(tr):
            w = t.get("witness") or {}
            add("| %d | %+d (%s vs %s ms) | %+d (%s vs %s ms) | %s / %s ms | %.2f |"
                % (i + 1, t["excess_ms"], t["unmoved_join_ms"], t["unmoved_control_ms"],
                   t["floor_excess_ms"], t["floor_unmoved_join_ms"],
                   t["floor_unmoved_control_ms"], w.get("join_max_ms"),
                   w.get("control_max_ms"), t["load"]))
        add("")
    add("![join](join.png)")
    add("")


def make_plots(res, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = res.get("latency")
    if lat and lat.get("runs"):
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
        colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
        for i, run in enumerate(lat["runs"]):
            c = colors[i % len(colors)]
            for key, style, label in (("probe_cdf_us", "-", "router path"),
                                      ("kfloor_cdf_us", "--", "kfloor (Kafka only)")):
                cdf = run.get(key)
                if not cdf:
                    continue
                xs = [v / 1000.0 for v in cdf]
                ys = [(k + 1) / len(cdf) for k in range(len(cdf))]
                lbl = "%s, %d/s" % (label, run["rate"])
                axes[0].plot(xs, ys, style, color=c, label=lbl)
                axes[1].plot(xs, [max(1e-4, 1 - y + 1e-4) for y in ys], style, color=c, label=lbl)
        axes[0].set_xscale("log")
        axes[0].set_xlabel("latency, ms (record ts to receipt)")
        axes[0].set_ylabel("fraction of records")
        axes[0].set_title("Latency CDF")
        axes[0].grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=8)
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
        axes[1].set_xlabel("latency, ms")
        axes[1].set_ylabel("fraction slower (1 − CDF)")
        axes[1].set_title("Tail")
        axes[1].grid(True, which="both", alpha=0.3)
        for i, run in enumerate(lat["runs"]):
            cdf = run.get("hop_cdf_us")
            if cdf:
                axes[2].plot([max(0.05, v / 1000.0) for v in cdf], [(k + 1) / len(cdf) for k in
                                                                    range(len(cdf))],
                             color=colors[i % len(colors)], label="%d/s" % run["rate"])
        axes[2].axvline(1.0, color="grey", linestyle=":", linewidth=0.8)
        axes[2].set_xscale("log")
        axes[2].set_xlabel("ms (client receipt − kfloor receipt of the same record; "
                           "≤ 0.05 shown at 0.05)")
        axes[2].set_ylabel("fraction of records")
        axes[2].set_title("Per-record hop: edge + nng + router + WebSocket")
        axes[2].grid(True, alpha=0.3)
        axes[2].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "latency_cdf.png"), dpi=110)
        plt.close(fig)

    thr = res.get("throughput", {}).get("sizes")
    if thr:
        fig, axes = plt.subplots(2, len(thr), figsize=(6 * len(thr), 8.5), squeeze=False)
        for ax, (size, S) in zip(axes[1], thr.items()):
            for key, marker, label in (("kfloor", "s--", "kfloor (Kafka floor)"),
                                       ("e2e", "o-", "end to end (router)")):
                rows = [r for r in (S.get(key) or []) if r["lat"].get("p99") is not None]
                if rows:
                    ax.plot([r["offered_per_s"] for r in rows],
                            [max(1, r["lat"]["p99"]) for r in rows], marker, label=label)
            ax.axhline(1000, color="grey", linestyle=":", linewidth=0.8,
                       label="1 s: the ladder's limit")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("offered records/s (producer)")
            ax.set_ylabel("p99 latency, ms (record ts to receipt)")
            ax.set_title("%s B records: p99 at each step" % size)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        for ax, (size, S) in zip(axes[0], thr.items()):
            top = 1
            for key, marker, label in (("kfloor", "s--", "kfloor (Kafka floor)"),
                                       ("e2e", "o-", "end to end (router)")):
                rows = S.get(key) or []
                if not rows:
                    continue
                xs = [r["offered_per_s"] for r in rows]
                ys = [r["delivered_per_s"] for r in rows]
                top = max(top, max(xs), max(ys))
                ax.plot(xs, ys, marker, label=label)
                for r in rows:
                    if not r["ok"]:
                        ax.annotate("not sustained", (r["offered_per_s"], r["delivered_per_s"]),
                                    fontsize=7)
            dr = S.get("drain") or {}
            for key, color, label in (("e2e", "tab:orange", "end to end, draining a backlog"),
                                      ("kfloor", "tab:blue", "kfloor, draining a backlog")):
                if dr.get(key):
                    ax.axhline(dr[key]["delivered_per_s"], color=color, linestyle="-.",
                               linewidth=0.9, label=label)
            wf = S.get("wsfloor")
            if wf:
                ax.axhline(wf["delivered_per_s"], color="tab:green", linestyle=":",
                           label="wsfloor, as fast as possible")
            ax.plot([1000, top], [1000, top], color="grey", linewidth=0.5,
                    label="delivered = offered")
            ax.set_xlabel("offered records/s (producer)")
            ax.set_ylabel("delivered records/s")
            ax.set_yscale("log")
            ax.set_xscale("log")
            ax.set_title("%s B records" % size)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "throughput.png"), dpi=110)
        plt.close(fig)

    j = res.get("join")
    if j and j.get("timeline"):
        tl = j["timeline"]
        fig, ax = plt.subplots(figsize=(10, 4))
        b = tl["bucket_ms"] / 1000.0
        for grp, color in (("moved", "tab:red"), ("unmoved", "tab:blue")):
            pts = sorted((int(k), v) for k, v in tl[grp].items())
            ax.step([k * b for k, _ in pts], [v for _, v in pts], where="post", color=color,
                    label="%s partitions' clients" % grp)
        tj = j["times"]["join"] - j["times"]["control"]
        ax.axvline(tj, color="grey", linestyle="--", label="second edge starts")
        ax.set_xlabel("seconds from the start of the control window")
        ax.set_ylabel("longest gap ending in each %d ms, ms" % tl["bucket_ms"])
        ax.set_title("Gaps between a client's records while an edge joins")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "join.png"), dpi=110)
        plt.close(fig)

    mem = res.get("memory")
    if mem and mem.get("router"):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for key, marker, label in (("router", "o-", "router"), ("wsfloor", "s--", "wsfloor"),
                                   ("edge", "^:", "edge")):
            rows = mem.get(key) or []
            if not rows:
                continue
            xs = [r["sessions"] for r in rows]
            axes[0].plot(xs, [(r["rss_kb"] - r["base_kb"]) / 1024 for r in rows], marker,
                         label=label)
            axes[1].plot(xs, [r["per_session_kb"] for r in rows], marker, label=label)
        axes[0].set_xlabel("idle sessions")
        axes[0].set_ylabel("RSS growth, MiB")
        axes[0].set_title("Memory vs sessions")
        axes[1].set_xlabel("idle sessions")
        axes[1].set_ylabel("KiB per session")
        axes[1].set_title("Memory per session")
        for ax in axes:
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "memory.png"), dpi=110)
        plt.close(fig)
