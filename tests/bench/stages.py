#!/usr/bin/python3
"""Where a record's time goes, stage by stage (issue 13 item 2).

`run.py --stages` runs the processes with KWS_STAGES set (common/stages.h):
each writes, for the records whose offset is a multiple of KWS_STAGES_EVERY,
lines "<stage> <partition> <offset> <wall µs> <extra>" to
<prefix>.<program>.<pid>:

  produce  C  the record was made (value "ts"); extra: µs behind the pacing schedule
           A  the broker acknowledged it (delivery report)
  edge     K  the edge's consumer poll returned it (extra: Kafka timestamp, ms)
           L  the DELIVER batch holding it went to the links (chan_send)
  router   R  the router's loop decoded it from the link
           W  its WebSocket frame was written whole (per session)
  loadgen  D  the client read it

This module joins them by (partition, offset) and gives, per ladder step,
p50 / p99 / max of each interval. Run alone on a kept work dir:

    tests/bench/stages.py STAGE_PREFIX STEPS.json
"""

import glob
import json
import os
import sys

# (name, from stage, to stage): the intervals reported, in order.
INTERVALS = [
    ("producer behind schedule", None, None),   # C's extra
    ("made -> broker ack", "C", "A"),
    ("made -> edge poll (Kafka)", "C", "K"),
    ("edge poll -> link send", "K", "L"),
    ("link send -> router loop", "L", "R"),
    ("router loop -> socket write", "R", "W"),
    ("socket write -> client read", "W", "D"),
    ("made -> client read (total)", "C", "D"),
]


def pct(vals, q):
    if not vals:
        return None
    vals = sorted(vals)
    i = min(len(vals) - 1, max(0, int(round(q * (len(vals) - 1)))))
    return vals[i]


def load(path, keep=None):
    """{stage: {(p, o): (t_us, extra)}}, the first line of each key; only
    the keys in keep if given."""
    out = {}
    try:
        f = open(path)
    except OSError:
        return out
    with f:
        for line in f:
            parts = line.split()
            if len(parts) != 5:
                continue  # a line cut by a kill
            st, key = parts[0], (int(parts[1]), int(parts[2]))
            if keep is not None and key not in keep:
                continue
            d = out.setdefault(st, {})
            if key not in d:
                d[key] = (int(parts[3]), int(parts[4]))
    return out


def files(prefix, program):
    return {int(p.rsplit(".", 1)[1]): p for p in glob.glob("%s.%s.*" % (prefix, program))}


def analyze(prefix, steps):
    """steps: [{"rate", "produce_pid", "loadgen_pid", ...}] of the e2e steps.
    Returns [{"rate", "records", "intervals": {name: {p50, p99, max}},
    "tail": {name: mean ms over the slowest 1%}}] (ms)."""
    prod, lg = files(prefix, "produce"), files(prefix, "loadgen")
    per_step = []
    wanted = set()
    for s in steps:
        p = load(prod.get(s["produce_pid"], ""))
        d = load(lg.get(s["loadgen_pid"], ""))
        per_step.append((s, p, d))
        wanted.update(p.get("C", {}).keys())
    edge, router = {}, {}
    for path in files(prefix, "edge").values():
        for st, d in load(path, wanted).items():
            edge.setdefault(st, {}).update(d)
    for path in files(prefix, "router").values():
        for st, d in load(path, wanted).items():
            router.setdefault(st, {}).update(d)
    res = []
    for s, p, d in per_step:
        stages = {"C": p.get("C", {}), "A": p.get("A", {}), "K": edge.get("K", {}),
                  "L": edge.get("L", {}), "R": router.get("R", {}), "W": router.get("W", {}),
                  "D": d.get("D", {})}
        keys = [k for k in stages["C"] if all(k in stages[x] for x in "CAKLRWD")]
        row = {"rate": s["rate"], "label": s.get("label", ""),
               "sampled": len(stages["C"]), "complete": len(keys),
               "intervals": {}, "tail": {}}
        series = {}
        for name, a, b in INTERVALS:
            if a is None:
                v = [stages["C"][k][1] / 1000.0 for k in keys]
            else:
                v = [(stages[b][k][0] - stages[a][k][0]) / 1000.0 for k in keys]
            series[name] = v
            row["intervals"][name] = {"p50": pct(v, 0.5), "p99": pct(v, 0.99),
                                      "max": max(v) if v else None}
        # The slowest 1% by total: the mean of each interval over them
        # says which stage makes the tail.
        total = series["made -> client read (total)"]
        order = sorted(range(len(keys)), key=lambda i: total[i])
        tail = order[int(len(order) * 0.99):] if order else []
        for name, _, _ in INTERVALS:
            row["tail"][name] = (sum(series[name][i] for i in tail) / len(tail)) if tail else None
        res.append(row)
    return res


def fmt(v):
    return "–" if v is None else ("%.1f" % v if abs(v) < 100 else "%.0f" % v)


def markdown(rows, extra=None):
    """A table per step: interval, p50, p99, max, mean over the slowest 1%."""
    lines = []
    for r in rows:
        x = (extra or {}).get(r["rate"], {})
        lines.append("**%d records/s%s** (%d sampled records, %d seen at every stage%s)"
                     % (r["rate"], " " + r["label"] if r.get("label") else "", r["sampled"],
                        r["complete"],
                        "; " + x["note"] if x.get("note") else ""))
        lines.append("")
        lines.append("| interval (ms) | p50 | p99 | max | mean of the slowest 1% |")
        lines.append("| --- | --- | --- | --- | --- |")
        for name, _, _ in INTERVALS:
            i = r["intervals"][name]
            lines.append("| %s | %s | %s | %s | %s |" % (name, fmt(i["p50"]), fmt(i["p99"]),
                                                       fmt(i["max"]), fmt(r["tail"][name])))
        lines.append("")
    return "\n".join(lines)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    steps = json.load(open(sys.argv[2]))
    rows = analyze(sys.argv[1], steps)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
