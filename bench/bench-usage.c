/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_usage of a whole process against reading its smaps_rollup (the
 * kernel's own walk, the floor), in the same run, interleaved, medians.
 * Layouts, each in a child of its own: 1 GiB of 4K pages, 10,000 small
 * VMAs, the same with every page shared copy-on-write with a forked copy
 * (each page's Pss needs its mapcount), 1 GiB of PMD-mapped THPs. Methods: pm_usage with every field (PSS
 * through kpageflags and kpagecount where PFNs are visible), pm_usage
 * without the PFN fields (PAGEMAP_SCAN and entries), pm_usage of Rss, Swap
 * and AnonHugePages (PAGEMAP_SCAN alone), one raw whole-address-space
 * PAGEMAP_SCAN, smaps_rollup. Rows: #11's floors (all fields <= 2x
 * smaps_rollup, with visible PFNs) and #16's row 9 (the totals of 1 GiB of
 * 4K pages and of 10,000 VMAs <= 1.05x the raw scan; THP is a report: its
 * walk takes tens of us, so the ratio is the call's fixed cost).
 * The machine may be shared: compare ratios of the same run only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "layouts.h"
#include "order.h"

#define REPS 31 /* the 10,000-VMA totals row is a 5 % floor on ~1 ms */
#define NVMAS 10000

static void build_4k(void *arg, struct span *out)
{
	const size_t len = 1UL << 30;
	char *p = xmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	(void)arg;
	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < len; i += ps)
		p[i] = 1;
	out[0] = (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

static void build_vmas(void *arg, struct span *out)
{
	char *p = xmap(NVMAS * 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	(void)arg;
	for (size_t i = 0; i < NVMAS; i++) {
		p[i * 4 * ps] = 1;
		/* alternate protections: VMAs that do not merge */
		if (i % 2)
			mprotect(p + i * 4 * ps, 4 * ps, PROT_READ);
	}
	out[0] = (struct span){ (uintptr_t)p, (uintptr_t)p + NVMAS * 4 * ps };
}

static void build_cow(void *arg, struct span *out)
{
	(void)arg;
	out[0] = cow_vmas();
}

static void build_thp(void *arg, struct span *out)
{
	const size_t len = 1UL << 30;
	char *q = xmap(len + HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	char *p = (char *)(((uintptr_t)q + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));

	(void)arg;
	madvise(p, len, MADV_HUGEPAGE);
	for (size_t i = 0; i < len; i += ps)
		p[i] = 1;
	out[0] = (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

struct scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t inverted, mask, anyof, ret;
};
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct scan_arg)
#define CAT_PRESENT (1ULL << 3)
#define CAT_SWAPPED (1ULL << 4)
#define CAT_HUGE (1ULL << 6)

static uint64_t sink;

static double t_usage(struct pm_handle *h, uint64_t fields)
{
	PM_OPTS(pm_usage_opts, o, .fields = fields);
	struct pm_usage u = { .size = sizeof(u) };
	double t = now();

	if (pm_usage(h, 0, UINT64_MAX & ~(ps - 1), &o, &u)) {
		perror("pm_usage");
		exit(1);
	}
	t = now() - t;
	sink += u.rss;
	return t;
}

/* The raw floor of the totals: one whole-address-space PAGEMAP_SCAN
 * (continued until done) of the present, swapped and PMD-mapped pages,
 * summed: the least a caller can ask for them. */
static double t_raw(int fd)
{
	static struct pm_region v[512];
	uint64_t present = 0, swapped = 0, huge = 0;
	double t = now();

	for (uint64_t cur = 0, end = 0x7ffffffff000ULL; cur < end;) {
		struct scan_arg a = { .size = sizeof(a), .start = cur, .end = end,
				      .vec = (uintptr_t)v, .vec_len = 512,
				      .anyof = CAT_PRESENT | CAT_SWAPPED,
				      .ret = CAT_PRESENT | CAT_SWAPPED | CAT_HUGE };
		int r = ioctl(fd, PAGEMAP_SCAN_, &a);

		if (r < 0) {
			perror("PAGEMAP_SCAN");
			exit(1);
		}
		for (int i = 0; i < r; i++) {
			uint64_t len = v[i].end - v[i].start;

			if (v[i].categories & CAT_SWAPPED)
				swapped += len;
			else if (v[i].categories & CAT_HUGE)
				huge += len;
			else
				present += len;
		}
		cur = a.walk_end;
		if (r > 0 && v[r - 1].end > cur)
			cur = v[r - 1].end;
	}
	t = now() - t;
	sink += present + swapped + huge;
	return t;
}

static double t_rollup(pid_t pid)
{
	static char buf[8192];
	char path[64];
	double t = now();
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0) {
		perror(path);
		exit(1);
	}
	close(fd);
	return now() - t;
}

static void row(const char *what, double ratio, double floor)
{
	printf("ROW | %s | %.2fx | <= %.2fx | %s\n", what, ratio, floor,
	       ratio <= floor ? "PASS" : "FAIL");
}

enum { FULL, NOPFN, TOTALS, RAW, ROLLUP, NMETHODS };

static void run(const char *name, void (*build)(void *, struct span *), bool rows, bool row9)
{
	const uint64_t no_pfn = PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_SWAP |
				PM_USAGE_ANON_THP | PM_USAGE_ZERO | PM_USAGE_GUARD;
	const uint64_t totals = PM_USAGE_RSS | PM_USAGE_SWAP | PM_USAGE_ANON_THP;
	double t[NMETHODS][REPS], med[NMETHODS];
	struct pm_handle *h;
	struct span s;
	char path[64], what[160];
	int hold, fd;
	uint64_t seed = 1;
	pid_t pid = bench_child(build, NULL, &s, 1, &hold);

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pm_open(pid, NULL, &h)) {
		perror("pm_open");
		exit(1);
	}
	kill(pid, SIGSTOP);
	for (int i = 0; i < REPS; i++) {
		int order[NMETHODS];

		bench_order(order, NMETHODS, &seed);
		for (int k = 0; k < NMETHODS; k++) {
			switch (order[k]) {
			case FULL: t[FULL][i] = t_usage(h, 0); break;
			case NOPFN: t[NOPFN][i] = t_usage(h, no_pfn); break;
			case TOTALS: t[TOTALS][i] = t_usage(h, totals); break;
			case RAW: t[RAW][i] = t_raw(fd); break;
			default: t[ROLLUP][i] = t_rollup(pid); break;
			}
		}
	}
	for (int k = 0; k < NMETHODS; k++)
		med[k] = median(t[k], REPS);
	printf("%-18s smaps_rollup %7.2f ms | pm_usage all %7.2f ms (%5.2fx) | without PFN "
	       "fields %7.2f ms (%5.2fx) | Rss+Swap+AnonHuge %7.2f ms (%5.2fx) | raw scan "
	       "%7.2f ms (%5.2fx)\n",
	       name, med[ROLLUP] * 1e3, med[FULL] * 1e3, med[FULL] / med[ROLLUP],
	       med[NOPFN] * 1e3, med[NOPFN] / med[ROLLUP], med[TOTALS] * 1e3,
	       med[TOTALS] / med[ROLLUP], med[RAW] * 1e3, med[RAW] / med[ROLLUP]);
	if (rows && pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1) {
		snprintf(what, sizeof(what), "pm_usage (all fields), %s, vs smaps_rollup", name);
		row(what, med[FULL] / med[ROLLUP], 2.0);
	}
	snprintf(what, sizeof(what),
		 "pm_usage Rss+Swap+AnonHuge, %s, vs one raw whole-address-space PAGEMAP_SCAN",
		 name);
	if (row9)
		row(what, med[TOTALS] / med[RAW], 1.05);
	else /* a walk of tens of us: the call's fixed cost is the ratio */
		printf("report | %s | %.2fx | %+.1f us a call\n", what, med[TOTALS] / med[RAW],
		       (med[TOTALS] - med[RAW]) * 1e6);
	close(fd);
	pm_close(h);
	kill(pid, SIGCONT);
	layouts_stop(pid, hold);
}

int main(void)
{
	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) != 1) {
		printf("SKIP: no PAGEMAP_SCAN on this kernel\n");
		return 0;
	}
	printf("# pm_usage of a whole stopped process vs smaps_rollup and one raw PAGEMAP_SCAN, "
	       "medians of %d, methods shuffled per repetition; PFNs %s (libpagemap %s)\n", REPS,
	       pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1 ? "visible" : "hidden", pm_version());
	run("1 GiB of 4K pages", build_4k, true, true);
	run("10,000 VMAs", build_vmas, true, true);
	run("10,000 VMAs, copy-on-write", build_cow, true, true);
	run("1 GiB of THPs", build_thp, false, false);
	return (int)(sink & 0);
}
