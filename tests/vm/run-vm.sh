#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run one test program inside one of Debian's cloud kernels under qemu, and
# exit with the program's status (77 = skipped). KLINE picks the kernel:
#   6.1   Debian 12's linux-image-6.1.0-NN-cloud-amd64-unsigned: no pagemap
#         retry fix, no PAGEMAP_SCAN, no PROCMAP_QUERY, soft-dirty built in
#   6.12  Debian 12's linux-image-6.12.N+deb12-cloud-amd64-unsigned (from
#         bookworm-security): PAGEMAP_SCAN with soft-dirty, PROCMAP_QUERY,
#         uffd WP_ASYNC, the retry fix
# The guest sees the line as LIBPAGEMAP_TEST_KLINE (tests/common.h says
# what each line is expected to answer).
#
# usage: run-vm.sh KLINE CACHE TEST [ARG...] -- BINARY...
# CACHE/KLINE holds that kernel (the newest package of its line, downloaded
# once) and its initramfs (rebuilt when a binary is newer). Everything it
# needs is installed with apt when the caller is root; otherwise a missing
# piece is a skip with the reason.
set -eu
kline=$1 cache=$2/$1 test=$3
shift 3
args=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	args="${args:+$args,}$1"
	shift
done
[ $# -gt 0 ] && shift
skip() {
	echo "SKIP: $*"
	exit 77
}
mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9

missing=""
command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" ||
	missing="$missing busybox-static"
command -v cpio >/dev/null || missing="$missing cpio"
if [ -n "$missing" ]; then
	[ "$(id -u)" -eq 0 ] || skip "needs$missing (run as root to install them)"
	apt-get update -qq >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null 2>&1 ||
		skip "cannot install$missing"
fi

case "$kline" in
6.1) pattern='^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$'
	shown='linux-image-6.1.0-*-cloud-amd64-unsigned' ;;
6.12) pattern='^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$'
	shown='linux-image-6.12.*+deb12-cloud-amd64-unsigned' ;;
*) echo "run-vm.sh: unknown kernel line $kline" >&2
	exit 2 ;;
esac

# The newest cloud kernel of the line, downloaded once.
kernel=$(ls "$cache"/vmlinuz-* 2>/dev/null | head -n 1 || true)
if [ -z "$kernel" ]; then
	find_pkg() {
		apt-cache search --names-only "$pattern" | awk '{ print $1 }' | sort -V | tail -n 1
	}
	pkg=$(find_pkg)
	if [ -z "$pkg" ]; then
		apt-get update -qq >/dev/null 2>&1 || true
		pkg=$(find_pkg)
	fi
	[ -n "$pkg" ] || skip "no $shown in the apt sources"
	rm -rf "$cache/deb"
	mkdir -p "$cache/deb"
	(cd "$cache/deb" && apt-get download "$pkg" >/dev/null 2>&1) || skip "cannot download $pkg"
	dpkg-deb -x "$cache"/deb/*.deb "$cache/deb/x"
	cp "$cache"/deb/x/boot/vmlinuz-* "$cache/"
	cp "$cache"/deb/x/boot/config-* "$cache/kconfig"
	rm -rf "$cache/deb"
	kernel=$(ls "$cache"/vmlinuz-* | head -n 1)
fi

# The initramfs: static busybox, the test programs, the kernel config, /init.
initrd="$cache/initramfs.cpio.gz"
stale=0
[ -f "$initrd" ] || stale=1
# this script writes /init: a newer script is a stale initramfs too
for b in "$0" "$@"; do
	[ "$b" -nt "$initrd" ] && stale=1
done
if [ $stale -eq 1 ]; then
	root="$cache/root"
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/t"
	cp /bin/busybox "$root/bin/busybox"
	cp "$cache/kconfig" "$root/kconfig"
	for b in "$@"; do
		cp "$b" "$root/t/"
	done
	cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
t=$(sed -n 's/.* pmtest=\([^ ]*\).*/\1/p' /proc/cmdline)
a=$(sed -n 's/.* pmargs=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
LIBPAGEMAP_TEST_KLINE=$(sed -n 's/.* pmkline=\([^ ]*\).*/\1/p' /proc/cmdline)
export LIBPAGEMAP_TEST_KLINE LIBPAGEMAP_TEST_KCONFIG=/kconfig CK_DEFAULT_TIMEOUT=600
cd /t
echo "PMVM-START"
./"$t" $a
echo "PMVM-RESULT $?"
poweroff -f
INIT
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$root"
fi
flock -u 9

accel="-accel tcg,thread=multi -cpu max"
if grep -qE '\b(vmx|svm)\b' /proc/cpuinfo && [ -w /dev/kvm ]; then
	accel="-accel kvm -cpu host"
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# A kernel that dies before init starts the test (under TCG, 6.12 sometimes
# oopses on an int3 left by boot-time code patching) ran nothing: boot again,
# at most three times. Anything after PMVM-START (on the line of the
# console's escape codes) is the test's own result.
for attempt in 1 2 3; do
	# shellcheck disable=SC2086
	timeout -k 5 560 qemu-system-x86_64 -nographic -no-reboot -nodefaults -serial stdio \
		-smp 2 -m 3G $accel -kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 quiet pmkline=$kline pmtest=$test pmargs=${args:-,}" \
		> "$out" 2>&1 < /dev/null || true
	tr -d '\r' < "$out" | grep -q 'PMVM-START$' && break
	tr -d '\r' < "$out" | tail -n 5
	echo "run-vm.sh: the $kline kernel did not reach the test (boot attempt $attempt of 3)"
done
tr -d '\r' < "$out" | grep -v 'PMVM-' || true
rc=$(tr -d '\r' < "$out" | sed -n 's/^PMVM-RESULT \([0-9]*\)$/\1/p' | tail -n 1)
if [ -z "$rc" ]; then
	echo "FAIL: the VM did not report a result (crash or timeout)"
	exit 1
fi
exit "$rc"
