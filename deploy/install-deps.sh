#!/bin/sh
# Installs the Debian 12 packages that building, running and testing need.
# Idempotent: it only calls apt-get when a package is missing. Needs root (or sudo).
set -eu

PKGS="build-essential meson ninja-build pkg-config cmake \
librdkafka-dev libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libnng-dev libmsgpack-dev \
libjansson-dev libjwt-dev libssl-dev zlib1g-dev libmicrohttpd-dev check python3 python3-websockets valgrind clang libclang-rt-14-dev curl ca-certificates"

case "${1:-}" in
--test)
	PKGS="$PKGS default-jre-headless maven chromium python3-yaml libnss-wrapper clang-format"
	# Node.js and npm for the client and browser tests: Debian's, unless a
	# node and npm are already there (NodeSource's nodejs includes npm).
	{ command -v node && command -v npm; } >/dev/null 2>&1 || PKGS="$PKGS nodejs npm" ;;
# The container image built without a Docker engine (deploy/image/build).
--image) PKGS="$PKGS buildah mmdebstrap" ;;
# Only what compiling the daemons needs (the image's build stage).
--build) PKGS=$(echo "$PKGS" | tr ' ' '\n' | grep -vxE 'check|python3-websockets|valgrind|clang|libclang-rt-14-dev|curl' | tr '\n' ' ') ;;
esac

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing$missing" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
