#!/bin/sh
# Style check (meson test suite "style"): every C file of the tree must be
# formatted as .clang-format says (clang-format --dry-run --Werror; Debian
# 12's clang-format 14, installed by deploy/install-deps.sh --test), except
# the files listed in tests/style/pending.txt, which were formatted by hand
# before this check existed: reformat one (clang-format -i FILE) when you
# next change it, and take it off the list. New files are always checked.
# Exit status: 0 clean, 1 a file needs formatting, 77 (skip) clang-format
# missing outside CI.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
if ! command -v clang-format >/dev/null 2>&1; then
	if [ -n "${CI:-}" ]; then
		echo "style: clang-format is missing (deploy/install-deps.sh --test installs it)" >&2
		exit 1
	fi
	echo "style: clang-format is not installed: skipped"
	exit 77
fi

if [ -d .git ] || [ -f .git ]; then
	files=$(git ls-files '*.c' '*.h')
else
	files=$(find common router edge tests -name '*.[ch]' | sort)
fi
pending=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' tests/style/pending.txt | grep -v '^$' || true)

checked=0 failed=0 skipped=0 tidy=""
for f in $files; do
	[ -f "$f" ] || continue
	if printf '%s\n' "$pending" | grep -qxF "$f"; then
		skipped=$((skipped + 1))
		clang-format --dry-run --Werror "$f" >/dev/null 2>&1 && tidy="$tidy $f"
		continue
	fi
	checked=$((checked + 1))
	if ! clang-format --dry-run --Werror "$f"; then
		failed=$((failed + 1))
		echo "style: $f is not formatted: run clang-format -i $f" >&2
	fi
done
[ -z "$tidy" ] || echo "style: now formatted, take off tests/style/pending.txt:$tidy"
echo "style: $checked files checked, $failed not formatted, $skipped pending ($(clang-format --version))"
[ "$failed" -eq 0 ]
