/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The huge-zero-page churn stress test (issue 10).
 *
 * One thread churns a 2 MiB-aligned THP-eligible slot with no mmap in the
 * loop: it read-faults every 4 KiB page (the first read maps the huge zero
 * PMD, the others hit it), then MADV_DONTNEEDs the slot (huge zero PMD ->
 * none). The slot is surrounded by sentinels (shared anonymous memory
 * written by this process only: present+file+exclusive) and private
 * regions with a known pseudo-random presence pattern. The churned slot
 * holds the huge zero page (present+file on 6.1, present+exclusive on
 * 6.18), 4 KiB zero pages (present only) or nothing: never file+exclusive.
 * So an entry that is file+exclusive there, or not the sentinel's or the
 * pattern's elsewhere, is misattributed.
 *
 * Three read shapes: the churned PMD alone, 512 entries starting inside
 * it, and ten PMDs around it. Each iteration reads one shape with a raw
 * pread, pm_read, and in turn pm_batch (sync, io_uring) and the emulated
 * pm_scan. The reads ask for best effort, so that uncertified data comes
 * back with its uncertain ranges: a misattributed entry outside them, or
 * in a scan that succeeded, is a failure; the certified fraction of the
 * pages is reported per shape. Raw reads must show shifts on a kernel without the retry fix:
 * the run goes on (up to twice SECONDS) until one has, else it is inconclusive (exit 1).
 *
 * With "child", the churn runs in a forked child that the test reads from
 * outside: pm_read and the emulated scan as they are, pm_read and a sync
 * pm_batch with PM_READ_F_STOP.
 *
 * usage: stress-zero [SECONDS [self|child]]
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
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "stress-layout.h"

#define SLOTS 10
#define CHURN 4 /* sentinels at odd slots, patterns at even ones */
#define MAXPAGES (SLOTS * NPMD)
#define RAW_PER_LIB 8

static char *base;
static uint64_t ps;
static uint64_t pattern[SLOTS][NPMD / 64];
static const enum stress_slot kinds[SLOTS] = {
	SLOT_PATTERN, SLOT_SENTINEL, SLOT_PATTERN, SLOT_SENTINEL, SLOT_CHURN,
	SLOT_SENTINEL, SLOT_PATTERN, SLOT_SENTINEL, SLOT_PATTERN, SLOT_SENTINEL,
};
static atomic_bool stop;
static atomic_ulong *churns; /* shared with a churning child */

static void *churn(void *arg)
{
	volatile char *z = base + CHURN * HUGE;
	unsigned sum = 0;

	while (!atomic_load(&stop)) {
		for (size_t i = 0; i < HUGE; i += ps)
			sum += z[i];
		madvise((void *)z, HUGE, MADV_DONTNEED);
		atomic_fetch_add(churns, 1);
	}
	return (void *)(uintptr_t)sum;
}

/* Whether entry @e (or, for scans, categories @c) can belong to @a. */
static bool fits(uint64_t a, bool present, bool file, bool excl)
{
	uint64_t off = a - (uintptr_t)base;
	int slot = (int)(off / HUGE);
	size_t idx = (off % HUGE) / ps;

	if (slot == CHURN)
		return !(file && excl);
	if (slot % 2)
		return present && file && excl;
	return present == (bool)(pattern[slot][idx / 64] >> (idx % 64) & 1) && !file;
}

/* Ranges a best-effort read reported uncertain. */
struct unc {
	struct pm_range r[SLOTS + 1];
	uint64_t n;
};

static bool uncertain(const struct unc *u, uint64_t a)
{
	for (uint64_t k = 0; u && k < u->n; k++)
		if (a >= u->r[k].start && a < u->r[k].end)
			return true;
	return false;
}

/* Misattributed entries outside the uncertain ranges; *cert counts the
 * certified entries. */
static uint64_t misplaced(uint64_t va, const uint64_t *e, size_t n, const struct unc *u,
			  uint64_t *cert)
{
	uint64_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t a = va + i * ps;

		if (uncertain(u, a))
			continue;
		if (cert)
			(*cert)++;
		bad += !fits(a, pm_entry_present(e[i]), pm_entry_file(e[i]),
			     pm_entry_exclusive(e[i]));
	}
	return bad;
}

/* The same on emulated pm_scan regions (categories PRESENT|FILE only: the
 * scan cannot say exclusive, so the churned slot is not checked), up to
 * walk_end: a call that meets a window the guard cannot certify stops
 * there, with what it certified before it. */
static uint64_t scan_misplaced(uint64_t va, const struct pm_region *r, long nr, size_t n,
			       uint64_t we, uint64_t *cert)
{
	static uint64_t cats[MAXPAGES];
	const long m = stress_region_cats(va, r, nr, n, we, cats);
	uint64_t bad = 0;

	if (m < 0)
		return n + 1;
	for (size_t i = 0; i < (size_t)m; i++) {
		uint64_t a = va + i * ps;
		bool p = cats[i] & PM_CAT_PRESENT, f = cats[i] & PM_CAT_FILE;

		(*cert)++;
		if ((a - (uintptr_t)base) / HUGE != CHURN)
			bad += !fits(a, p, f, p && f);
	}
	return bad;
}

static const struct shape shapes[] = {
	{ "one PMD", CHURN, 0, NPMD },
	{ "inside PMD", CHURN, 300, NPMD },
	{ "ten PMDs", 0, 0, SLOTS * NPMD },
};
#define NSHAPES 3

enum { M_READ, M_SYNC, M_URING, M_SCAN, NMETHODS };
static const char *const self_names[NMETHODS] = { "pm_read", "pm_batch sync",
						  "pm_batch io_uring", "pm_scan emulated" };
/* a child target: M_SYNC is a stopping batch, M_URING a stopping pm_read */
static const char *const child_names[NMETHODS] = { "pm_read", "pm_batch sync STOP",
						   "pm_read STOP", "pm_scan emulated" };

struct stats {
	uint64_t calls, ok, eagain, bad, pages, cert, allcert, retries;
};

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 10, t_end, t_raw;
	bool child = argc > 2 && !strcmp(argv[2], "child");
	const char *const *mname = child ? child_names : self_names;
	char path[64];
	pid_t pid = 0;
	static uint64_t buf[MAXPAGES];
	static struct pm_region regs[MAXPAGES];
	uint64_t raw_reads[NSHAPES] = { 0 }, raw_shifted[NSHAPES] = { 0 }, raw_bad = 0;
	uint64_t huge_zero_seen = 0;
	struct stats st[NMETHODS][NSHAPES];
	PM_OPTS(pm_kernel_info, ki);
	struct pm_batch *b[2];
	struct pm_handle *h;
	pthread_t th;
	char thp[128] = "";
	int fd, r;
	FILE *f;

	memset(st, 0, sizeof(st));
	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!f || !fgets(thp, sizeof(thp), f) || strstr(thp, "[never]")) {
		printf("SKIP: THP off or absent in this kernel: reads cannot shift\n");
		return 77;
	}
	fclose(f);
	f = fopen("/sys/kernel/mm/transparent_hugepage/use_zero_page", "r");
	if (!f || fgetc(f) != '1') {
		printf("SKIP: the huge zero page is off: nothing to churn\n");
		return 77;
	}
	fclose(f);
	r = pm_kernel_probe(&ki);
	if (r) {
		fprintf(stderr, "pm_kernel_probe: %s\n", strerror(-r));
		return 1;
	}
	printf("kernel %lu.%lu, retry fix %s (%s), THP %s", (unsigned long)ki.version_major,
	       (unsigned long)ki.version_minor,
	       ki.walk_retry_fix == PM_FIX_PRESENT ? "present" : "absent", ki.walk_retry_reason,
	       thp);
	churns = mmap(NULL, sizeof(*churns), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (churns == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	base = stress_layout(kinds, SLOTS, pattern);
	if (child) {
		pid = fork();
		if (pid == 0) {
			/* fork copies no page tables of shared mappings */
			for (int sl = 1; sl < SLOTS; sl += 2)
				memset(base + sl * HUGE, 1, HUGE);
			churn(NULL);
			_exit(0);
		}
		/* the sentinels are exclusive to the child once we let go */
		munmap(base, SLOTS * HUGE);
		while (pid > 0 && !atomic_load(churns))
			usleep(1000);
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", child ? (int)pid : (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pid < 0 || fd < 0 || pm_open(pid, NULL, &h)) {
		perror("open");
		return 1;
	}
	for (int k = 0; k < 2; k++) {
		PM_OPTS(pm_batch_opts, bo, .backend = k ? PM_BACKEND_URING : PM_BACKEND_SYNC,
			.read_flags = PM_READ_F_BEST_EFFORT | (child ? PM_READ_F_STOP : 0));

		if (pm_batch_new(&bo, &b[k])) {
			perror("pm_batch_new");
			return 1;
		}
	}
	if (!child)
		pthread_create(&th, NULL, churn, NULL);
	/* the first quarter reads raw only: the library's reads slow the
	 * churn (a self handle's closing token waits for the mmap lock), and
	 * the run must show that this kernel shifts */
	t_end = stress_now() + secs;
	t_raw = stress_now() + secs / 4;
	for (uint64_t it = 0;; it++) {
		int si = (int)(it % NSHAPES), m = (int)(it / NSHAPES % NMETHODS);
		const struct shape *s = &shapes[si];
		uint64_t va = (uintptr_t)base + s->slot * HUGE + s->skip * ps, end;
		size_t len = s->pages * 8;
		struct unc u = { .n = 0 };
		PM_OPTS(pm_read_info, info, .uncertain = (uintptr_t)u.r, .uncertain_cap = SLOTS + 1);
		struct stats *t = &st[m][si];
		uint64_t bad, cert = 0;
		long n = 0;

		/* a loaded host slows the churn (3,900 cycles/s in a CI run
		 * that saw no shift in 90,000 raw reads): where reads can
		 * shift, the run goes on with raw reads only (the library's
		 * slow the churn), up to twice its time, until one has */
		if (stress_now() >= t_end) {
			uint64_t shifted = 0;

			for (int k = 0; k < NSHAPES; k++)
				shifted += raw_shifted[k];
			if (ki.walk_retry_fix == PM_FIX_PRESENT || shifted ||
			    stress_now() >= t_end + secs)
				break;
		}
		end = va + s->pages * ps;
		/* library reads are slower: give raw reads more chances */
		for (int k = 0; k < RAW_PER_LIB; k++) {
			if (pread(fd, buf, len, (off_t)(va / ps * 8)) != (ssize_t)len) {
				perror("pread");
				return 1;
			}
			bad = misplaced(va, buf, s->pages, NULL, NULL);
			raw_reads[si]++;
			raw_shifted[si] += bad > 0;
			raw_bad += bad;
		}
		for (size_t i = 0; i < s->pages; i++) {
			uint64_t a = va + i * ps;

			if ((a - (uintptr_t)base) / HUGE == CHURN && pm_entry_present(buf[i]))
				huge_zero_seen++;
		}

		/* raw only in the first quarter, and past the run's time */
		if (stress_now() < t_raw || stress_now() >= t_end)
			continue;
		t->calls++;
		if (m == M_READ || (child && m == M_URING)) {
			PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_BEST_EFFORT |
							  (m == M_URING ? PM_READ_F_STOP : 0));

			n = pm_read(h, va, end, buf, &ro, &info);
		} else if (m == M_SYNC || m == M_URING) {
			struct pm_batch *bb = b[m == M_URING];

			if (pm_batch_add_read(bb, h, va, end, buf, &info, &n) || pm_batch_run(bb)) {
				perror("pm_batch");
				return 1;
			}
		} else {
			PM_OPTS(pm_scan_opts, so, .flags = PM_SCAN_F_EMULATE,
				.category_anyof_mask = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE,
				.return_mask = PM_CAT_PRESENT | PM_CAT_FILE);
			uint64_t we;

			n = pm_scan(h, va, end, regs, MAXPAGES, &so, &we);
			if (n == -EAGAIN) {
				t->eagain++;
				continue;
			}
			if (n < 0) {
				fprintf(stderr, "pm_scan: %s\n", strerror((int)-n));
				return 1;
			}
			t->ok++;
			t->pages += s->pages;
			t->bad += scan_misplaced(va, regs, n, s->pages, we, &cert);
			t->cert += cert;
			t->allcert += cert == s->pages;
			continue;
		}
		if (n == -EAGAIN) {
			t->eagain++;
			continue;
		}
		if (n != (long)s->pages) {
			fprintf(stderr, "%s: %s\n", mname[m], strerror((int)-n));
			return 1;
		}
		/* a churned PMD per read at most: there is room for all */
		u.n = info.uncertain_count;
		if (u.n > SLOTS + 1) {
			fprintf(stderr, "%s: %lu uncertain ranges\n", mname[m], (unsigned long)u.n);
			return 1;
		}
		t->ok++;
		t->pages += s->pages;
		t->retries += info.retries;
		t->bad += misplaced(va, buf, s->pages, &u, &cert);
		t->cert += cert;
		t->allcert += cert == s->pages;
	}
	atomic_store(&stop, true);
	secs += stress_now() - t_end; /* the time it went on for */
	if (child) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	} else {
		pthread_join(th, NULL);
	}
	pm_batch_free(b[0]);
	pm_batch_free(b[1]);
	pm_close(h);
	close(fd);

	uint64_t lib_bad = 0, raw_total = 0, shifted_total = 0;

	printf("churn: %lu cycles in %.0f s (%.0f/s); zero page seen in %lu raw entries\n",
	       (unsigned long)atomic_load(churns), secs, (double)atomic_load(churns) / secs,
	       (unsigned long)huge_zero_seen);
	for (int si = 0; si < NSHAPES; si++) {
		printf("raw pread %-10s: %lu reads, %lu shifted\n", shapes[si].name,
		       (unsigned long)raw_reads[si], (unsigned long)raw_shifted[si]);
		raw_total += raw_reads[si];
		shifted_total += raw_shifted[si];
	}
	printf("raw pread: %lu misattributed entries in all\n", (unsigned long)raw_bad);
	for (int m = 0; m < NMETHODS; m++)
		for (int si = 0; si < NSHAPES; si++) {
			struct stats *t = &st[m][si];

			printf("%-17s %-10s: %lu calls, %lu ok, %lu -EAGAIN, %lu fully certified, "
			       "%.1f%% of returned pages certified, %.1f passes per read, %lu "
			       "misattributed\n",
			       mname[m], shapes[si].name, (unsigned long)t->calls,
			       (unsigned long)t->ok, (unsigned long)t->eagain,
			       (unsigned long)t->allcert,
			       t->pages ? 100.0 * (double)t->cert / (double)t->pages : 0.0,
			       t->ok ? (double)t->retries / (double)t->ok : 0.0, (unsigned long)t->bad);
			lib_bad += t->bad;
		}
	if (lib_bad) {
		printf("FAIL: the library certified %lu misattributed entries\n",
		       (unsigned long)lib_bad);
		return 1;
	}
	if (ki.walk_retry_fix == PM_FIX_PRESENT) {
		if (shifted_total) {
			printf("FAIL: raw reads shifted on a kernel said to have the retry fix\n");
			return 1;
		}
	} else if (!shifted_total) {
		printf("FAIL: inconclusive: no raw read shifted, so this run proves nothing\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
