#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's usage example compiles against the public header (-Werror).
set -eu
readme=$1 cc=$2 inc=$3 geninc=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```c$/ { on = 1; next } /^```$/ { on = 0 } on' "$readme" > "$tmp/example.c"
[ -s "$tmp/example.c" ] || { echo "FAIL: no C example in $readme" >&2; exit 1; }
"$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$inc" -I"$geninc" -c "$tmp/example.c" -o "$tmp/example.o"
echo "README example compiles"
