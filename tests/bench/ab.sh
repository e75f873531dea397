#!/bin/bash
# A/B of this tree's release build against another build, in alternating
# runs so that both see the same machine (which goes first alternates too).
# Each run starts its own Kafka.
#
#   git archive REV | tar -x -C DIR && meson setup DIR/build-bench -Dbuildtype=release && ninja -C DIR/build-bench
#   tests/bench/ab.sh hop DIR/build-bench [PAIRS]
#       section b: the per-record hop (client receipt - bare consumer
#       receipt) p50/p99/p99.9/max and the router's CPU per record, at
#       1,000 and 5,000 records/s
#   tests/bench/ab.sh drain DIR/build-bench [PAIRS] [SIZE:PER_CLIENT]
#       section c's warm backlog drain (default 4096:144), two trials a run:
#       the rate, the router's CPU and system calls per record, and how many
#       times the edge closed a router's link ("send queue full")
#
# Each run's log and report stay under $AB_OUT (default /tmp/ab-WHAT).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
what=${1:?usage: ab.sh hop|drain BASE_BUILD_DIR [PAIRS] [SIZE:PER_CLIENT]}
base=${2:?usage: ab.sh hop|drain BASE_BUILD_DIR [PAIRS] [SIZE:PER_CLIENT]}
pairs=${3:-3}
count=${4:-4096:144}
out=${AB_OUT:-/tmp/ab-$what}
case $what in
hop) args=(--only b) ;;
drain) args=(--only c --drains-only --ladder "${count%%:*}:30000" --drain-count "$count" --keep-logs) ;;
*) echo "ab.sh: hop or drain, not '$what'" >&2; exit 2 ;;
esac
mkdir -p "$out"
this="$root/build-bench"
ninja -C "$this" >/dev/null

report_hop() { # who run log
	for rate in 1000 5000; do
		line=$(grep -o "  $rate/s: .*" "$3" | head -1)
		hop=$(echo "$line" | sed -n 's/.*per-record hop ([0-9]* records) p50\/p99\/p99.9\/max \([^ ]*\) ms.*/\1/p')
		cpu=$(echo "$line" | sed -n 's/.*router \([0-9.]*\) us\/record.*/\1/p')
		printf '%-5s run %d  %5d/s  hop p50/p99/p99.9/max %s ms  router %s us/record\n' \
			"$1" "$2" "$rate" "$hop" "$cpu"
	done
}

report_drain() { # who run log
	work=$(sed -n 's/.*work dir (logs) //p' "$3")
	closes=$(cat "$work"/edge-drain-*.log | grep -c "send queue full" || true)
	grep "e2e drain" "$3" |
		sed -n 's/.* = \([0-9]*\/s\);.*router \([0-9.]*\) cpu-s\/M \([0-9.]*\) syscalls\/msg.*/\1  router \2 us, \3 syscalls per record/p' |
		while read -r line; do
			printf '%-5s run %d  %s  (links closed in the run: %s)\n' "$1" "$2" "$line" "$closes"
		done
	rm -rf "$work"
}

for i in $(seq 1 "$pairs"); do
	if [ $((i % 2)) -eq 1 ]; then order="this base"; else order="base this"; fi
	for who in $order; do
		if [ "$who" = this ]; then b=$this; else b=$base; fi
		log="$out/$who-$i.log"
		/usr/bin/python3 "$here/run.py" --no-build --build "$b" "${args[@]}" --out "$out/$who-$i" \
			>"$log" 2>&1 || { echo "$who run $i failed: see $log" >&2; exit 1; }
		"report_$what" "$who" "$i" "$log"
		echo "      (load average $(cut -d' ' -f1 /proc/loadavg))"
	done
done
