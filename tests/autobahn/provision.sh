#!/usr/bin/env bash
# Builds a Python 2.7 virtualenv with the Autobahn|Testsuite (`wstest`) and
# the pinned dependencies of requirements.txt, for tests/autobahn.
#
#   python: $KWS_PYTHON27, else pyenv's 2.7.18 ($(pyenv root) or ~/.pyenv),
#           else any pyenv 2.7.x, else python2.7 on PATH.
#   cache:  ${KWS_AUTOBAHN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kws-autobahn}/<hash>
#           where <hash> is the first 16 hex digits of sha256(requirements.txt),
#           so editing the pins builds a new virtualenv beside the old one.
#   wstest: <cache>/venv/bin/wstest (complete when <cache>/.complete exists)
#
# Idempotent: exits 0 at once when the cache is complete. The last line of
# stdout is "WSTEST=<path>".
# Exit codes: 0 ok; 77 the suite cannot be had here (no Python 2.7, or PyPI
# unreachable), with the reason on stderr; under $CI (non-empty, not 0/false)
# that is exit 1 instead, a failure; 1 anything else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
# virtualenv 20.15.1 is the last release that runs on Python 2.7.
VIRTUALENV_PIN=virtualenv==20.15.1
hash=$(sha256sum "$req" | cut -c1-16)
root="${KWS_AUTOBAHN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kws-autobahn}"
cache="$root/$hash"
venv="$cache/venv"

in_ci() { [[ -n "${CI:-}" && "${CI}" != 0 && "${CI}" != false ]]; }
unavailable() {
    echo "provision: Autobahn|Testsuite unavailable: $*" >&2
    if in_ci; then exit 1; fi
    exit 77
}
done_msg() {
    echo "autobahntestsuite: virtualenv complete at $venv"
    echo "WSTEST=$venv/bin/wstest"
    exit 0
}

[[ -f "$cache/.complete" ]] && done_msg

py="${KWS_PYTHON27:-}"
if [[ -z "$py" ]]; then
    proot="$HOME/.pyenv"
    command -v pyenv >/dev/null 2>&1 && proot="$(pyenv root)"
    for cand in "$proot/versions/2.7.18/bin/python" "$proot"/versions/2.7.*/bin/python \
                "$(command -v python2.7 || true)"; do
        if [[ -n "$cand" && -x "$cand" ]]; then py="$cand"; break; fi
    done
fi
[[ -n "$py" && -x "$py" ]] || unavailable "no Python 2.7 interpreter (pyenv 2.7.18, python2.7 or \$KWS_PYTHON27)"
"$py" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' ||
    unavailable "$py is not Python 2.7"

mkdir -p "$cache"
# One provisioner at a time per cache (parallel meson tests may all call us).
exec 9>"$cache/.lock"
command -v flock >/dev/null 2>&1 && flock 9
[[ -f "$cache/.complete" ]] && done_msg    # another process finished meanwhile

log="$cache/pip.log"
: >"$log"
start=$(date +%s.%N)
echo "autobahntestsuite: building $venv with $py"
pipq=(--disable-pip-version-check --no-cache-dir --no-input -q)
fail() {
    tail -n 30 "$log" >&2
    if grep -qE 'NewConnectionError|Could not fetch URL|Temporary failure in name resolution|Name or service not known|Network is unreachable|Connection refused|timed out|No matching distribution found' "$log"; then
        unavailable "could not download from PyPI (network?); see $log"
    fi
    echo "provision: $1 failed; see $log" >&2
    exit 1
}
rm -rf "$cache/boot" "$venv"
"$py" -m pip install "${pipq[@]}" --target "$cache/boot" "$VIRTUALENV_PIN" >>"$log" 2>&1 ||
    fail "installing $VIRTUALENV_PIN"
PYTHONPATH="$cache/boot" "$py" -m virtualenv -q --no-download --no-periodic-update "$venv" \
    >>"$log" 2>&1 || fail "virtualenv"
"$venv/bin/python" -m pip install "${pipq[@]}" -r "$req" >>"$log" 2>&1 || fail "pip install -r $req"
"$venv/bin/wstest" -a >>"$log" 2>&1 || fail "wstest -a"
grep -q 'AutobahnTestSuite 0.8.2' "$log" || fail "wstest version check"
end=$(date +%s.%N)
echo "$hash" >"$cache/.complete"
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "autobahntestsuite: installed $(wc -l < <("$venv/bin/pip" freeze 2>/dev/null)) packages in ${secs}s"
done_msg
