#!/bin/sh
# meson test clients-js: the JS client's unit tests (node --test). Needs Node.js
# 18+ and the devDependencies in clients/js/node_modules (npm ci; tests/run
# runs it). Without them: skipped (exit 77), or failed under CI=1.
cd "$(dirname "$0")/js" || exit 1
missing=""
command -v node >/dev/null 2>&1 || missing="node"
[ -d node_modules/ws ] || missing="$missing clients/js/node_modules (npm ci --prefer-offline in clients/js)"
if [ -n "$missing" ]; then
	echo "clients-js: missing $missing"
	[ -n "${CI:-}" ] && exit 1
	exit 77
fi
exec node --test test/*.test.js
