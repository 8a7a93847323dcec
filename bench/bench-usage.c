/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_usage of a whole process against reading its smaps_rollup (the
 * kernel's own walk, the floor), in the same run, interleaved, medians.
 * Layouts, each in a child of its own: 1 GiB of 4K pages, 10,000 small
 * VMAs, 1 GiB of PMD-mapped THPs. Rows: pm_usage with every field (PSS
 * through kpageflags and kpagecount where PFNs are visible), pm_usage
 * without the PFN fields (PAGEMAP_SCAN and entries only), smaps_rollup.
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "layouts.h"

#define REPS 9
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

static double t_usage(struct pm_handle *h, uint64_t fields)
{
	PM_OPTS(pm_usage_opts, o, .fields = fields);
	struct pm_usage u = { .size = sizeof(u) };
	double t = now();

	if (pm_usage(h, 0, UINT64_MAX & ~(ps - 1), &o, &u)) {
		perror("pm_usage");
		exit(1);
	}
	return now() - t;
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

static void run(const char *name, void (*build)(void *, struct span *))
{
	const uint64_t no_pfn = PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_SWAP |
				PM_USAGE_ANON_THP | PM_USAGE_ZERO | PM_USAGE_GUARD;
	double full[REPS], scan[REPS], roll[REPS], mr;
	struct pm_handle *h;
	struct span s;
	int hold;
	pid_t pid = bench_child(build, NULL, &s, 1, &hold);

	if (pm_open(pid, NULL, &h)) {
		perror("pm_open");
		exit(1);
	}
	kill(pid, SIGSTOP);
	for (int i = 0; i < REPS; i++) {
		full[i] = t_usage(h, 0);
		scan[i] = t_usage(h, no_pfn);
		roll[i] = t_rollup(pid);
	}
	mr = median(roll, REPS);
	printf("%-22s smaps_rollup %8.2f ms   pm_usage all %8.2f ms (%5.2fx)   "
	       "without PFN fields %8.2f ms (%5.2fx)\n",
	       name, mr * 1e3, median(full, REPS) * 1e3, median(full, REPS) / mr,
	       median(scan, REPS) * 1e3, median(scan, REPS) / mr);
	pm_close(h);
	kill(pid, SIGCONT);
	layouts_stop(pid, hold);
}

int main(void)
{
	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	printf("# pm_usage of a whole stopped process vs smaps_rollup, medians of %d; "
	       "PFNs %s\n", REPS, pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1 ? "visible" : "hidden");
	run("1 GiB of 4K pages", build_4k);
	run("10,000 VMAs", build_vmas);
	run("1 GiB of THPs", build_thp);
	return 0;
}
