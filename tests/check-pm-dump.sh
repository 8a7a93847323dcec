#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# pm-dump end to end: the demo shows each kind of mapping with what the
# library sees in it; JSON parses and has the documented header; errors
# go to stderr with the errno text and a non-zero exit.
set -eu
dump=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$dump" > "$tmp/text"
grep -q '^total ' "$tmp/text" || fail "no totals row"
for label in "4K anon" "THP" "file" "shmem" "zero page" "PROT_NONE" "2 guard"; do
	grep -q "\[demo: $label" "$tmp/text" || fail "demo row '$label' missing"
done

"$dump" --json > "$tmp/json"
python3 - "$tmp/json" <<'PY'
import ctypes, json, mmap, struct, sys
d = json.load(open(sys.argv[1]))
for k in ("schema", "library_version", "kernel_version", "page_size", "features",
          "walk_retry_fix", "unavailable", "vmas", "totals", "reads"):
    assert k in d, k
assert d["schema"] == 3
assert d["walk_retry_fix"]["status"] in ("present", "absent", "unknown")
rows = {v["demo"].split(",")[0]: v for v in d["vmas"] if "demo" in v}
kib = d["page_size"] // 1024
assert rows["4K anon"]["present_kib"] == 8 * kib, rows["4K anon"]
assert rows["shmem"]["file_kib"] == 8 * kib, rows["shmem"]
assert rows["PROT_NONE reservation"]["present_kib"] == 0
zp = rows["zero page"]
assert zp["present_kib"] == 8 * kib, zp
# some hypervisor kernels never map the zero page (pvm_no_zero_page=1): the
# demo's read faults then get pages of their own
m = mmap.mmap(-1, kib * 1024, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m[0]
with open("/proc/self/pagemap", "rb") as f:
    f.seek(ctypes.addressof(ctypes.c_char.from_buffer(m)) // (kib * 1024) * 8)
    e = struct.unpack("<Q", f.read(8))[0]
if not e >> 56 & 1:
    # the zero page: Zero, not Rss, and not File
    assert zp["exclusive_kib"] == 0 and zp["file_kib"] == 0, zp
    if zp["zero_kib"] is not None:
        assert zp["zero_kib"] == 8 * kib and zp["rss_kib"] in (0, None), zp
if "guard_regions" in d["features"]:
    assert rows["2 guard pages"]["guard_kib"] == 2 * kib, rows["2 guard pages"]
if "pagemap_scan" in d["features"] and open("/sys/kernel/mm/transparent_hugepage/enabled").read().find("[never]") < 0:
    assert rows["THP"]["anon_huge_kib"] == 2048, rows["THP"]
# a column this caller cannot have is null in every row and named in the header
for col in ("rss", "pss", "uss", "swap", "anon_huge", "zero", "hugetlb", "guard"):
    if col in d["unavailable"]:
        assert all(v[col + "_kib"] is None for v in d["vmas"]), col
    else:
        assert d["totals"][col + "_kib"] is not None, col
assert rows["shmem"]["rss_kib"] == 8 * kib, rows["shmem"]
assert d["totals"]["size_kib"] == sum(v["size_kib"] for v in d["vmas"])
PY

# unprivileged: Pss is n/a with the reason, AnonHuge still answered
if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null; then
	setpriv --reuid=65534 --regid=65534 --clear-groups "$dump" --json > "$tmp/nobody"
	python3 - "$tmp/nobody" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert "pfn_visible" not in d["features"]
assert "pss" in d["unavailable"], d["unavailable"]
assert all(v["pss_kib"] is None for v in d["vmas"])
rows = {v["demo"].split(",")[0]: v for v in d["vmas"] if "demo" in v}
if "pagemap_scan" in d["features"] and open("/sys/kernel/mm/transparent_hugepage/enabled").read().find("[never]") < 0:
    assert rows["THP"]["anon_huge_kib"] == 2048, rows["THP"]
    assert rows["4K anon"]["rss_kib"] == 8 * d["page_size"] // 1024, rows["4K anon"]
PY
fi

"$dump" --ranges --json | python3 -c 'import json,sys; assert json.load(sys.stdin)["ranges"]'
# --all: every readable process; Rss and Swap by default, Pss and Uss with
# --pss (and a Pss sort), each equal to what the per-VMA dump totals for
# an idle process. Not this shell: while any reader (another test's
# --all) holds the mm of a child it forked, the shell's pages are shared.
sleep 600 &
idle=$!
trap 'kill $idle 2> /dev/null || true; rm -rf "$tmp"' EXIT
# its start (exec, the loader mapping libc) must be over before its numbers
# are compared: asleep, and its mappings the same 50 ms apart (a fresh-clone
# CI once caught it at 2,500 KiB in one dump and 2,920 in the next)
prev=
for i in $(seq 100); do
	cur=$(cat /proc/$idle/maps 2> /dev/null || true)
	if [ -n "$cur" ] && [ "$cur" = "$prev" ] &&
		grep -q '^State:[[:space:]]*S' /proc/$idle/status; then
		break
	fi
	prev=$cur
	sleep 0.05
done
for opt in "" --pss "--sort uss"; do
	# Uss is not compared: it moves whenever a process mapping the same
	# file pages (sleep's, libc's) starts or ends between the two dumps
	for try in 1 2 3; do
	"$dump" --all --json $opt > "$tmp/all"
	"$dump" --pid $idle --json > "$tmp/me"
	st=0
	python3 - "$tmp/all" "$idle" "$tmp/me" "$opt" <<'PY' || st=$?
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("schema", "library_version", "kernel_version", "page_size", "features",
          "unavailable", "processes", "totals", "skipped", "skipped_no_fd"):
    assert k in d, k
assert d["schema"] >= 3, d["schema"]
procs = {p["pid"]: p for p in d["processes"]}
me = procs.get(int(sys.argv[2]))
assert me and me["rss_kib"] > 0 and me["size_kib"] >= me["rss_kib"], me
pss = bool(sys.argv[4])
assert ("pss_kib" in me) == pss and ("uss_kib" in me) == pss, me
# this shell is idle: its totals per VMA are the same numbers
v = json.load(open(sys.argv[3]))["totals"]
assert me["size_kib"] == v["size_kib"], (me, v)
for k in ("rss_kib", "swap_kib"):
    assert me[k] == v[k], (k, me, v)
# Pss moves with every process that maps the same libc pages
assert not pss or me["uss_kib"] <= me["pss_kib"] <= me["rss_kib"], me
PY
	[ $st -eq 3 ] && [ $try -lt 3 ] && continue
	[ $st -eq 0 ] || fail "--all $opt disagrees with the per-VMA dump"
	break
	done
done
kill $idle
trap 'rm -rf "$tmp"' EXIT
if "$dump" --pss 2> /dev/null; then fail "--pss without --all accepted"; fi
if "$dump" --all --sort bogus 2> /dev/null; then fail "bad sort key accepted"; fi

# Names any process can set are not UTF-8 and hold newlines: the JSON
# still parses with a strict parser, and the raw bytes are in *_hex.
python3 - > "$tmp/pid" <<'PY' &
import ctypes, mmap, os, sys, time
fd = os.memfd_create("pm\udcff\nname")  # bytes pm \xff \n name
os.ftruncate(fd, 4096)
m = mmap.mmap(fd, 4096)
m[0] = 1
ctypes.CDLL(None).prctl(15, b"bad\xff\nname", 0, 0, 0)
print(os.getpid(), flush=True)
time.sleep(60)
PY
while [ ! -s "$tmp/pid" ]; do sleep 0.1; done
# the python process itself ($! can be a subshell around it)
named=$(cat "$tmp/pid")
trap 'kill $named 2> /dev/null || true; rm -rf "$tmp"' EXIT
"$dump" --pid $named --json > "$tmp/named"
python3 -m json.tool "$tmp/named" > /dev/null || fail "--json with a non-UTF-8 name does not parse"
# the raw name is in name_hex; print the mapping's address
addr=$(python3 - "$tmp/named" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
named = [v for v in d["vmas"] if bytes.fromhex(v.get("name_hex", "")).startswith(b"/memfd:pm\xff")]
assert named, [v["name"] for v in d["vmas"]]
print(named[0]["start"][2:])
PY
)
"$dump" --all --json --sort rss > "$tmp/all"
python3 -m json.tool "$tmp/all" > /dev/null || fail "--all --json with a non-UTF-8 comm does not parse"
python3 - "$tmp/all" <<'PY'
import json, sys
rss = [p["rss_kib"] for p in json.load(open(sys.argv[1]))["processes"] if p["rss_kib"] is not None]
assert rss == sorted(rss, reverse=True), rss[:10]
PY
# raw 64-bit entries survive a parser that reads numbers as doubles
end=$(printf %x $((0x$addr + 4096)))
"$dump" --pid $named --pages --json --range $addr-$end > "$tmp/page"
python3 - "$tmp/page" $named $addr <<'PY'
import json, struct, sys
d = json.load(open(sys.argv[1]), parse_int=float)
e = d["pages"][0]["entry"]
assert isinstance(e, str), e
with open("/proc/%s/pagemap" % sys.argv[2], "rb") as f:
    f.seek(int(sys.argv[3], 16) // 4096 * 8)
    raw = struct.unpack("<Q", f.read(8))[0]
assert int(e, 16) == raw, (e, hex(raw))
assert raw >> 63, hex(raw)
PY
"$dump" --pages --range 0-1000 > /dev/null
if "$dump" --pid 999999999 2> "$tmp/err"; then fail "bad pid accepted"; fi
if "$dump" --pid 4194303 2> "$tmp/err"; then fail "missing pid accepted"; fi
grep -q "No such process" "$tmp/err" || fail "no errno text: $(cat "$tmp/err")"
if "$dump" --pages --ranges 2> /dev/null; then fail "--pages --ranges accepted"; fi
echo "pm-dump: demo, JSON, errors ok"
