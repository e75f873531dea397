#!/bin/sh
# Builds Debian's libwebsockets 4.1.6 (the same source package and cmake
# options as debian/rules, without the glib and libev plugins) with debug
# symbols into DIR (default ~/.cache/kws-lws-debug), so that a heap profile
# (tests/bench/heap.py --lws-lib DIR/lib) can name lws's internal functions:
# Debian ships no -dbgsym for it on the archives these machines reach.
# Adds a deb-src entry only for the download and removes it again.
set -eu
DIR=${1:-$HOME/.cache/kws-lws-debug}
[ -e "$DIR/lib/libwebsockets.so.17" ] && { echo "lws-debug: $DIR/lib ready"; exit 0; }
SRC=$(mktemp -d)
trap 'rm -rf "$SRC" /etc/apt/sources.list.d/kws-src.sources' EXIT
cat >/etc/apt/sources.list.d/kws-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt-get -o DPkg::Lock::Timeout=300 -qq update
cd "$SRC"
apt-get source --download-only libwebsockets=4.1.6-3 >/dev/null 2>&1
tar xzf libwebsockets_4.1.6.orig.tar.gz
mkdir build
cd build
# debian/rules: hardening, -fno-strict-aliasing; its patches are all
# commented out in debian/patches/series.
cmake ../libwebsockets-4.1.6 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$DIR" \
	-DCMAKE_C_FLAGS="-fno-strict-aliasing -Wno-error=deprecated-declarations" -DLWS_WITHOUT_DAEMONIZE=OFF \
	-DLWS_WITH_LIBUV=ON -DLWS_UNIX_SOCK=ON -DLWS_IPV6=ON -DLWS_WITH_ZLIB=ON \
	-DLWS_WITHOUT_EXTENSIONS=OFF -DLWS_WITHOUT_TESTAPPS=ON >/dev/null
make -j"$(nproc)" >/dev/null 2>&1
make install >/dev/null
echo "lws-debug: $DIR/lib ready"
