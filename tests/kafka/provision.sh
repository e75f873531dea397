#!/usr/bin/env bash
# Fetch Apache Kafka (broker + CLI tools + log4j2) jars for the real-Kafka test
# fixture into a cache directory, with Maven from the registry (Maven Central).
#
#   cache:  ${KWS_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kws-kafka/<version>}
#   jars:   <cache>/lib/*.jar   (complete when <cache>/lib/.complete exists)
#   maven:  the local repository is <cache>/m2 (NOT ~/.m2), so the cache is
#           self-contained and deleting <cache> really starts from scratch.
#
# Idempotent: exits 0 at once when the cache is already complete.
# Prints the cache path on the last line of stdout ("KAFKA_LIB=<dir>").
# Exit codes: 0 ok; 2 java or mvn missing; 3 the registry could not be reached;
# 1 anything else.
set -euo pipefail

KWS_KAFKA_VERSION=4.1.1   # keep in step with <kafka.version> in pom.xml
# Full coordinates, not the "dependency:" prefix: resolving a prefix offline
# fails with a vague "No plugin found", the coordinates give the real cause.
# Keep the version in step with pom.xml's maven-dependency-plugin.
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KWS_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kws-kafka/$KWS_KAFKA_VERSION}"
lib="$cache/lib"

if [[ -f "$lib/.complete" ]]; then
    echo "kafka $KWS_KAFKA_VERSION: cache complete at $lib"
    echo "KAFKA_LIB=$lib"
    exit 0
fi

for tool in java mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "provision: '$tool' not found on PATH" >&2
        exit 2
    fi
done

mkdir -p "$cache"
# One provisioner at a time per cache (parallel meson tests may all call us).
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if [[ -f "$lib/.complete" ]]; then     # another process finished meanwhile
    echo "kafka $KWS_KAFKA_VERSION: cache complete at $lib"
    echo "KAFKA_LIB=$lib"
    exit 0
fi

echo "kafka $KWS_KAFKA_VERSION: fetching jars into $lib (maven repo $cache/m2)"
tmp="$cache/lib.tmp.$$"
rm -rf "$tmp"
log="$cache/mvn.log"
start=$(date +%s.%N)
if ! mvn -B -q -f "$here/pom.xml" \
        -Dmaven.repo.local="$cache/m2" -Dstyle.color=never \
        -Dkafka.version="$KWS_KAFKA_VERSION" \
        "$DEP_PLUGIN:copy-dependencies" -DoutputDirectory="$tmp" >"$log" 2>&1; then
    rm -rf "$tmp"
    tail -n 40 "$log" >&2; echo >&2
    if grep -qE 'UnknownHostException|Could not transfer|Connection refused|Network is unreachable|connect timed out|No route to host|Temporary failure in name resolution|Could not resolve host|Name or service not known|timed out|offline mode' "$log"; then
        echo "provision: could not download Kafka $KWS_KAFKA_VERSION from the Maven registry (network?)" >&2
        exit 3
    fi
    echo "provision: maven failed; see $log" >&2
    exit 1
fi
end=$(date +%s.%N)

for want in "kafka_2.13-$KWS_KAFKA_VERSION.jar" "kafka-tools-$KWS_KAFKA_VERSION.jar" "kafka-clients-$KWS_KAFKA_VERSION.jar"; do
    if [[ ! -f "$tmp/$want" ]]; then
        echo "provision: $want missing after maven ran" >&2
        rm -rf "$tmp"
        exit 1
    fi
done
echo "$KWS_KAFKA_VERSION" >"$tmp/.complete"
rm -rf "$lib"
mv "$tmp" "$lib"

secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
n=$(ls "$lib"/*.jar | wc -l)
size=$(du -sh "$lib" | cut -f1)
echo "kafka $KWS_KAFKA_VERSION: downloaded $n jars ($size) in ${secs}s"
echo "KAFKA_LIB=$lib"
