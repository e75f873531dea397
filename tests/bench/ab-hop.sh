#!/bin/bash
# A/B of section b (the per-record hop: client receipt - bare consumer
# receipt, and the router's CPU per record, at 1,000 and 5,000 records/s)
# between this tree's release build and another build, in alternating runs
# so that both see the same machine. Each run starts its own Kafka.
#
#   git archive REV | tar -x -C DIR && meson setup DIR/build-bench -Dbuildtype=release && ninja -C DIR/build-bench
#   tests/bench/ab-hop.sh DIR/build-bench [PAIRS] [OUTDIR]
#
# Prints one line per run (p50/p99/p99.9/max of the hop, router µs per
# record) and keeps each run's report under OUTDIR (default /tmp/ab-hop).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base=${1:?usage: ab-hop.sh BASE_BUILD_DIR [PAIRS] [OUTDIR]}
pairs=${2:-5}
out=${3:-/tmp/ab-hop}
mkdir -p "$out"
this="$root/build-bench"
ninja -C "$this" >/dev/null
for i in $(seq 1 "$pairs"); do
	# Which build goes first alternates, so neither always runs on the
	# machine the other just warmed.
	if [ $((i % 2)) -eq 1 ]; then order="this base"; else order="base this"; fi
	for who in $order; do
		if [ "$who" = this ]; then b=$this; else b=$base; fi
		log="$out/$who-$i.log"
		/usr/bin/python3 "$here/run.py" --no-build --build "$b" --only b --out "$out/$who-$i" \
			>"$log" 2>&1 || { echo "$who run $i failed: see $log"; exit 1; }
		for rate in 1000 5000; do
			line=$(grep -o "  $rate/s: .*" "$log" | head -1)
			hop=$(echo "$line" | sed -n 's/.*per-record hop ([0-9]* records) p50\/p99\/p99.9\/max \([^ ]*\) ms.*/\1/p')
			cpu=$(echo "$line" | sed -n 's/.*router \([0-9.]*\) us\/record.*/\1/p')
			printf '%-5s run %d  %5d/s  hop p50/p99/p99.9/max %s ms  router %s us/record  (load %s)\n' \
				"$who" "$i" "$rate" "$hop" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
		done
	done
done
