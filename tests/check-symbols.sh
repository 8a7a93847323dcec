#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The exported symbols, the version script and the PM_EXPORT declarations
# in the public headers must be the same set, and the newest version node
# must match the project version.
set -eu
lib=$1 map=$2 incdir=$3 version=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" { sub(/@.*/, "", $3); print $3 }' |
	grep -v '^LIBPAGEMAP_' | sort -u > "$tmp/exports"
sed -n '/global:/,/local:/p' "$map" | grep -E '^\s+pm_[a-z0-9_]+;' | tr -d ' \t;' | sort -u > "$tmp/map"
cat "$incdir"/*.h | tr '\n' ' ' | grep -oE 'PM_EXPORT [^;(]*\(' | grep -v '__attribute__' |
	sed -E 's/.*[ *]([a-z_0-9]+)\($/\1/' | sort -u > "$tmp/header"

status=0
if ! diff -u "$tmp/map" "$tmp/exports"; then
	echo "FAIL: exported symbols differ from the version script" >&2
	status=1
fi
if ! diff -u "$tmp/map" "$tmp/header"; then
	echo "FAIL: PM_EXPORT declarations differ from the version script" >&2
	status=1
fi
node=$(grep -oE '^LIBPAGEMAP_[0-9]+\.[0-9]+' "$map" | tail -n 1)
want="LIBPAGEMAP_$(echo "$version" | cut -d. -f1-2)"
if [ "$node" != "$want" ]; then
	echo "FAIL: newest version node $node, project version wants $want" >&2
	status=1
fi
n=$(wc -l < "$tmp/map")
[ "$n" -gt 0 ] || { echo "FAIL: no symbols found" >&2; exit 1; }
echo "symbols: $n exported, map and headers agree"
exit $status
