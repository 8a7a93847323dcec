#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# pm-dump --all under a low fd limit (soft 128, hard 256) with 200 more
# processes than usual: it raises its soft limit, holds few handles at a
# time, reads every one of our 200 children, and counts fd shortage apart.
set -eu
dump=$1
tmp=$(mktemp -d)
pids=""
cleanup() {
	[ -z "$pids" ] || kill $pids 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
for i in $(seq 200); do
	sleep 600 &
	pids="$pids $!"
done
prlimit --nofile=128:256 "$dump" --all --json > "$tmp/json"
python3 - "$tmp/json" $pids <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
want = {int(p) for p in sys.argv[2:]}
seen = {p["pid"] for p in d["processes"]}
missing = want - seen
assert not missing, f"{len(missing)} of our {len(want)} children not read"
assert d.get("skipped_no_fd") == 0, f"skipped_no_fd: {d.get('skipped_no_fd')}"
PY
