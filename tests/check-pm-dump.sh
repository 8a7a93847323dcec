#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# pm-dump end to end: the demo shows each kind of mapping with what the
# library sees in it; JSON parses and has the documented header; errors
# go to stderr with the errno text and a non-zero exit.
set -eu
dump=$1
# Under ASan the demo child inherits the sanitizer's multi-TiB shadow
# reservations (billions of entries to read, ~50 s per dump): there the
# dumps are limited to the top 16 TiB of the address space, where the
# demo's mappings are.
range=${2:+--range $2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$dump" $range > "$tmp/text"
grep -q '^total ' "$tmp/text" || fail "no totals row"
for label in "4K anon" "THP" "file" "shmem" "zero page" "PROT_NONE" "2 guard"; do
	grep -q "\[demo: $label" "$tmp/text" || fail "demo row '$label' missing"
done

"$dump" $range --json > "$tmp/json"
python3 - "$tmp/json" <<'PY'
import ctypes, json, mmap, struct, sys
d = json.load(open(sys.argv[1]))
for k in ("library_version", "kernel_version", "page_size", "features", "walk_retry_fix",
          "vmas", "totals", "reads"):
    assert k in d, k
assert d["walk_retry_fix"]["status"] in ("present", "absent", "unknown")
rows = {v["demo"].split(",")[0]: v for v in d["vmas"] if "demo" in v}
kib = d["page_size"] // 1024
assert rows["4K anon"]["present_kib"] == 8 * kib, rows["4K anon"]
assert rows["shmem"]["file_kib"] == 8 * kib, rows["shmem"]
assert rows["PROT_NONE reservation"]["present_kib"] == 0
assert rows["zero page"]["present_kib"] == 8 * kib
# some hypervisor kernels never map the zero page (pvm_no_zero_page=1): the
# demo's read faults then get pages of their own
m = mmap.mmap(-1, kib * 1024, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m[0]
with open("/proc/self/pagemap", "rb") as f:
    f.seek(ctypes.addressof(ctypes.c_char.from_buffer(m)) // (kib * 1024) * 8)
    e = struct.unpack("<Q", f.read(8))[0]
if not e >> 56 & 1:
    assert rows["zero page"]["exclusive_kib"] == 0, rows["zero page"]
if "guard_regions" in d["features"]:
    assert rows["2 guard pages"]["guard_kib"] == 2 * kib, rows["2 guard pages"]
if "pfn_visible" in d["features"] and open("/sys/kernel/mm/transparent_hugepage/enabled").read().find("[never]") < 0:
    assert rows["THP"]["thp_kib"] == 2048, rows["THP"]
assert d["totals"]["size_kib"] == sum(v["size_kib"] for v in d["vmas"])
PY

"$dump" $range --ranges --json | python3 -c 'import json,sys; assert json.load(sys.stdin)["ranges"]'
# --all: every readable process through one batch, on each backend
for b in auto uring sync; do
	"$dump" --all --json --backend $b > "$tmp/all"
	python3 - "$tmp/all" "$$" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
procs = {p["pid"]: p for p in d["processes"]}
me = procs.get(int(sys.argv[2]))
assert me and me["present_kib"] > 0 and me["size_kib"] >= me["present_kib"], me
PY
done
if "$dump" --all --backend bogus 2> /dev/null; then fail "bad backend accepted"; fi
"$dump" --pages --range 0-1000 > /dev/null
if "$dump" --pid 999999999 2> "$tmp/err"; then fail "bad pid accepted"; fi
if "$dump" --pid 4194303 2> "$tmp/err"; then fail "missing pid accepted"; fi
grep -q "No such process" "$tmp/err" || fail "no errno text: $(cat "$tmp/err")"
if "$dump" --pages --ranges 2> /dev/null; then fail "--pages --ranges accepted"; fi
echo "pm-dump: demo, JSON, errors ok"
