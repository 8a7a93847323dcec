#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's C examples compile against the public header (-Werror), and
# its first one is, word for word, the function that examples/count-present.c
# runs (one source: the example is built and run by the tests).
set -eu
readme=$1 example=$2 cc=$3 inc=$4 geninc=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```c$/ { on = 1; next } /^```$/ { on = 0 } on' "$readme" > "$tmp/example.c"
[ -s "$tmp/example.c" ] || { echo "FAIL: no C example in $readme" >&2; exit 1; }
"$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$inc" -I"$geninc" -c "$tmp/example.c" -o "$tmp/example.o"
# the first block, and the same span of the example: its first #include to the first closing brace
awk '/^```c$/ { n++; if (n == 1) { on = 1; next } } /^```$/ { on = 0 } on' "$readme" > "$tmp/first.c"
awk '/^#include/ { on = 1 } on { print } on && /^}$/ { exit }' "$example" > "$tmp/file.c"
if ! cmp -s "$tmp/first.c" "$tmp/file.c"; then
	echo "FAIL: README's first example differs from $example:" >&2
	diff "$tmp/first.c" "$tmp/file.c" >&2 || true
	exit 1
fi
echo "README examples compile; the first is $example"
