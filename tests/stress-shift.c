/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The shift stress test: before 6.5 (upstream 7780d04046a2, not in
 * 6.1.y) a pagemap read across a PMD that goes unstable comes back full
 * length but shifted; the VM suite runs this on Debian's 6.1 kernel.
 *
 * Two threads churn PMDs: one faults and zaps an anonymous THP, one maps
 * the huge zero page (read fault), zaps it, maps it again and splits it (a
 * write fault), zaps again. Each churned slot is followed by a sentinel
 * whose entries can never belong to it, and a private region with a known
 * pseudo-random presence pattern. The sentinels are shared anonymous memory
 * written by this process only: present+file+exclusive. The THP slot holds
 * anonymous pages or nothing (never file); the zero slot holds the huge
 * zero page (present+file, never exclusive), 4K zero pages, or anonymous
 * pages after a write (exclusive, never file), so never file+exclusive.
 * The main thread reads in several shapes, with a plain pread and with
 * pm_read, and counts the entries that are not what their slot can hold.
 *
 * Every other raw read is bracketed by the guard's counter token (an
 * internal function: this program links the library's objects), which
 * measures the guard's design directly: every shifted bracketed read must
 * have moved the token, and the reads that moved it without a shift are its
 * needless trips.
 *
 * On a kernel without the retry fix raw reads must show shifts (else the
 * run proves nothing: "inconclusive", exit 1), each with a moved token, and
 * library reads none. On a
 * fixed kernel both must show none, the guard must stay off by default,
 * and PM_READ_F_SNAPSHOT reads must report retries while the target churns.
 *
 * usage: stress-shift [SECONDS [RAW_READS_PER_LIBRARY_READ]]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "stress-layout.h"

#include "internal.h"

/* layout, one 2 MiB slot each: THP churn, sentinel, pattern, zero churn, sentinel, pattern */
#define SLOTS 6
enum { T_CHURN = 0, T_SENT, T_PAT, Z_CHURN, Z_SENT, Z_PAT };

static char *base;
static uint64_t ps;
static uint64_t pattern[SLOTS][NPMD / 64];
static const enum stress_slot kinds[SLOTS] = { SLOT_CHURN,   SLOT_SENTINEL, SLOT_PATTERN,
						SLOT_CHURN,   SLOT_SENTINEL, SLOT_PATTERN };
static atomic_bool stop;
static atomic_ulong churns_thp, churns_zero;

static void *churn_thp(void *arg)
{
	char *t = base + T_CHURN * HUGE;

	while (!atomic_load(&stop)) {
		for (size_t i = 0; i < HUGE; i += ps)
			t[i] = 1;
		madvise(t, HUGE, MADV_DONTNEED);
		atomic_fetch_add(&churns_thp, 1);
	}
	return arg;
}

/* The split leaves a page table behind, and 6.1 does not free empty page
 * tables on MADV_DONTNEED: the slot is mapped afresh each cycle so that the
 * next read fault maps the huge zero page again. */
static void *churn_zero(void *arg)
{
	volatile char *z = base + Z_CHURN * HUGE;

	while (!atomic_load(&stop)) {
		if (mmap((void *)z, HUGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (void *)z)
			abort();
		madvise((void *)z, HUGE, MADV_HUGEPAGE);
		(void)z[0];                      /* none -> huge zero page */
		madvise((void *)z, HUGE, MADV_DONTNEED); /* huge zero -> none */
		(void)z[0];
		z[ps] = 1;                       /* split (or replace) the huge zero PMD */
		atomic_fetch_add(&churns_zero, 1);
	}
	return arg;
}

/* Entries in [va, va + n pages) that their slot can never hold. */
static uint64_t misplaced(uint64_t va, const uint64_t *e, size_t n)
{
	uint64_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t a = va + i * ps, off = a - (uintptr_t)base;
		int slot = (int)(off / HUGE);
		size_t idx = (off % HUGE) / ps;
		bool f = pm_entry_file(e[i]), p = pm_entry_present(e[i]);

		switch (slot) {
		case T_CHURN:
			bad += f;
			break;
		case Z_CHURN:
			bad += f && pm_entry_exclusive(e[i]);
			break;
		case T_SENT:
		case Z_SENT:
			bad += !(p && f && pm_entry_exclusive(e[i]));
			break;
		default: {
			bool want = pattern[slot][idx / 64] >> (idx % 64) & 1;

			bad += p != want || f;
		}
		}
	}
	return bad;
}

/* The same check on emulated pm_scan regions: churned slots never hold
 * file pages, sentinels only present file pages, pattern regions exactly
 * their pattern; up to walk_end (a call stops at the first page it cannot
 * certify), and no region past it. */
static uint64_t scan_misplaced(uint64_t va, const struct pm_region *r, long nr, size_t n,
			       uint64_t we)
{
	static uint64_t cats[3 * NPMD];
	const long m = stress_region_cats(va, r, nr, n, we, cats);
	uint64_t bad = 0;

	if (m < 0)
		return n + 1;
	for (size_t i = 0; i < (size_t)m; i++) {
		uint64_t off = va + i * ps - (uintptr_t)base, c = cats[i];
		int slot = (int)(off / HUGE);
		size_t idx = (off % HUGE) / ps;
		bool f = c & PM_CAT_FILE, p = c & PM_CAT_PRESENT;

		switch (slot) {
		case T_CHURN:
		case Z_CHURN:
			bad += f;
			break;
		case T_SENT:
		case Z_SENT:
			bad += !(p && f);
			break;
		default:
			bad += p != (bool)(pattern[slot][idx / 64] >> (idx % 64) & 1) || f;
		}
	}
	return bad;
}

static const struct shape shapes[] = {
	{ "multi-PMD", T_CHURN, 0, 3 * NPMD },
	{ "multi-PMD zero", Z_CHURN, 0, 3 * NPMD },
	{ "one PMD", T_CHURN, 0, NPMD },
	{ "one PMD zero", Z_CHURN, 0, NPMD },
	{ "inside PMD", T_CHURN, 100, NPMD },
	{ "inside PMD zero", Z_CHURN, 300, NPMD },
	{ "single page", T_CHURN, NPMD - 1, 1 },
	{ "single page zero", Z_CHURN, NPMD - 1, 1 },
};
#define NSHAPES (sizeof(shapes) / sizeof(shapes[0]))

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 10, t_end, lib_time = 0;
	int raw_per_lib = argc > 2 ? atoi(argv[2]) : 4;
	uint64_t shape_shifts[8] = { 0 };
	uint64_t raw_reads = 0, raw_shifted = 0, raw_bad = 0, raw_moved = 0, missed = 0;
	uint64_t raw_bracketed = 0, bracketed_shifted = 0;
	struct pm__token t0, t1;
	uint64_t lib_reads = 0, lib_ok = 0, lib_eagain = 0, lib_bad = 0, lib_guarded = 0,
		 lib_tripped = 0, lib_retries = 0, snap_reads = 0, snap_retried = 0;
	uint64_t scan_calls = 0, scan_ok = 0, scan_short = 0, scan_eagain = 0, scan_bad = 0;
	struct pm_region regs[3 * NPMD];
	PM_OPTS(pm_scan_opts, emul, .flags = PM_SCAN_F_EMULATE,
		.category_anyof_mask = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE,
		.return_mask = PM_CAT_PRESENT | PM_CAT_FILE);
	uint64_t buf[3 * NPMD];
	PM_OPTS(pm_kernel_info, ki);
	PM_OPTS(pm_read_opts, snap, .flags = PM_READ_F_SNAPSHOT);
	struct pm_handle *h;
	pthread_t th[2];
	bool fixed;
	int fd, r;

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK)) {
		printf("SKIP: no THP in this kernel, reads cannot shift\n");
		return 77;
	}
	r = pm_kernel_probe(&ki);
	if (r) {
		fprintf(stderr, "pm_kernel_probe: %s\n", strerror(-r));
		return 1;
	}
	fixed = ki.walk_retry_fix == PM_FIX_PRESENT;
	printf("kernel %lu.%lu, retry fix %s (%s)\n", (unsigned long)ki.version_major,
	       (unsigned long)ki.version_minor, fixed ? "present" : "absent", ki.walk_retry_reason);
	base = stress_layout(kinds, SLOTS, pattern);
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pm_open(0, NULL, &h)) {
		perror("open");
		return 1;
	}
	pthread_create(&th[0], NULL, churn_thp, NULL);
	pthread_create(&th[1], NULL, churn_zero, NULL);
	t_end = stress_now() + secs;
	for (uint64_t it = 0; stress_now() < t_end; it++) {
		const struct shape *s = &shapes[it % NSHAPES];
		uint64_t va = (uintptr_t)base + s->slot * HUGE + s->skip * ps;
		size_t len = s->pages * 8;
		PM_OPTS(pm_read_info, info);
		uint64_t bad;
		long n;

		/* the guard makes a library read slower than a raw one (under
		 * churn, much slower: it re-reads piece by piece until a still
		 * token brackets each piece): the raw reads get at least the
		 * library's time, so they meet as many zaps */
		double t_raw = stress_now();

		for (int k = 0; k < raw_per_lib || stress_now() - t_raw < lib_time; k++) {
			/* every other raw read is bracketed by the token (whose
			 * procfs reads are slow under TCG); the others only count */
			bool bracket = k % 2 == 0, moved = false;

			if ((bracket && pm__token(h, &t0)) ||
			    pread(fd, buf, len, (off_t)(va / ps * 8)) != (ssize_t)len ||
			    (bracket && pm__token(h, &t1))) {
				perror("pread");
				return 1;
			}
			if (bracket) {
				moved = memcmp(&t0, &t1, sizeof(t0)) != 0;
				raw_bracketed++;
				raw_moved += moved;
			}
			raw_reads++;
			bad = misplaced(va, buf, s->pages);
			raw_bad += bad;
			raw_shifted += bad > 0;
			bracketed_shifted += bracket && bad > 0;
			missed += bracket && bad > 0 && !moved;
			shape_shifts[it % NSHAPES] += bad > 0;
		}
		lib_time = stress_now();
		n = pm_read(h, va, va + s->pages * ps, buf, NULL, &info);
		lib_reads++;
		if (n == -EAGAIN) {
			lib_eagain++;
		} else if (n != (long)s->pages) {
			fprintf(stderr, "pm_read: %s\n", strerror((int)-n));
			return 1;
		} else {
			lib_ok++;
			lib_bad += misplaced(va, buf, s->pages);
			lib_guarded += !!(info.flags & PM_READ_INFO_GUARDED);
			lib_tripped += info.retries > 0;
			lib_retries += info.retries;
		}
		/* the emulated pm_scan reads through pm_read, guard included */
		if (it % 2 == 0) {
			uint64_t we;

			n = pm_scan(h, va, va + s->pages * ps, regs, 3 * NPMD, &emul, &we);
			scan_calls++;
			if (n == -EAGAIN) {
				scan_eagain++;
			} else if (n < 0) {
				fprintf(stderr, "pm_scan: %s\n", strerror((int)-n));
				return 1;
			} else {
				scan_ok++;
				scan_short += we < va + s->pages * ps;
				scan_bad += scan_misplaced(va, regs, n, s->pages, we);
			}
		}
		lib_time = stress_now() - lib_time;
		if (fixed && it % 4 == 0) {
			n = pm_read(h, va, va + s->pages * ps, buf, &snap, &info);
			snap_reads++;
			if (n == (long)s->pages) {
				lib_bad += misplaced(va, buf, s->pages);
				snap_retried += info.retries > 0;
			} else if (n != -EAGAIN) {
				fprintf(stderr, "pm_read snapshot: %s\n", strerror((int)-n));
				return 1;
			}
		}
	}
	atomic_store(&stop, true);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	pm_close(h);
	close(fd);

	printf("churn cycles in %.0f s: %lu anon THP, %lu huge zero page\n", secs,
	       (unsigned long)atomic_load(&churns_thp), (unsigned long)atomic_load(&churns_zero));
	printf("raw pread: %lu reads, %lu shifted (%lu misattributed entries); by shape:",
	       (unsigned long)raw_reads, (unsigned long)raw_shifted, (unsigned long)raw_bad);
	for (size_t i = 0; i < NSHAPES; i++)
		printf(" %s %lu%s", shapes[i].name, (unsigned long)shape_shifts[i],
		       i + 1 < NSHAPES ? "," : "\n");
	printf("guard token around %lu raw reads: moved on %lu (%.1f%%), missed %lu of %lu "
	       "shifted reads\n",
	       (unsigned long)raw_bracketed, (unsigned long)raw_moved,
	       raw_bracketed ? 100.0 * (double)raw_moved / (double)raw_bracketed : 0.0,
	       (unsigned long)missed, (unsigned long)bracketed_shifted);
	printf("pm_read: %lu reads, %lu ok, %lu -EAGAIN, %lu misattributed entries; guard ran on "
	       "%lu, tripped on %lu (%.1f%%), %lu re-read passes\n",
	       (unsigned long)lib_reads, (unsigned long)lib_ok, (unsigned long)lib_eagain,
	       (unsigned long)lib_bad, (unsigned long)lib_guarded, (unsigned long)lib_tripped,
	       lib_ok ? 100.0 * (double)lib_tripped / (double)lib_ok : 0.0,
	       (unsigned long)lib_retries);
	printf("pm_scan emulated: %lu scans, %lu ok (%lu stopped short), %lu -EAGAIN, "
	       "%lu misattributed pages\n",
	       (unsigned long)scan_calls, (unsigned long)scan_ok, (unsigned long)scan_short,
	       (unsigned long)scan_eagain, (unsigned long)scan_bad);
	if (fixed)
		printf("pm_read SNAPSHOT: %lu reads, %lu reported retries\n",
		       (unsigned long)snap_reads, (unsigned long)snap_retried);

	if (missed) {
		printf("FAIL: %lu shifted reads left the guard's token still\n",
		       (unsigned long)missed);
		return 1;
	}
	if (scan_bad) {
		printf("FAIL: emulated pm_scan reported %lu misattributed pages\n",
		       (unsigned long)scan_bad);
		return 1;
	}
	if (lib_bad) {
		printf("FAIL: the library handed out %lu misattributed entries\n",
		       (unsigned long)lib_bad);
		return 1;
	}
	/* availability under this churn is reported, not asserted: a read is
	 * certified only when a still token brackets each piece, and these
	 * churn threads live in the reading process itself (doc/accuracy.md) */
	if (!lib_ok && fixed) {
		printf("FAIL: no library read succeeded on a fixed kernel\n");
		return 1;
	}
	if (fixed) {
		if (raw_shifted) {
			printf("FAIL: raw reads shifted on a kernel said to have the retry fix\n");
			return 1;
		}
		if (lib_guarded) {
			printf("FAIL: the guard ran by default on a fixed kernel\n");
			return 1;
		}
		if (!snap_retried) {
			printf("FAIL: no SNAPSHOT read reported a retry while the target churned\n");
			return 1;
		}
	} else if (!raw_shifted) {
		printf("FAIL: inconclusive: no raw read shifted, so this run proves nothing\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
