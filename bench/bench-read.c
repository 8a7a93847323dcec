/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_read against the raw syscall floor, on layouts in a child process.
 * For each layout, in the same run and interleaved:
 *   raw    one pread over the whole span, no decoding (the floor)
 *   naive  one pread per VMA (the VMA list is given for free)
 *   pm     pm_read over the whole span
 * and, for the 1 GiB layouts, pm_read with PM_READ_F_SNAPSHOT: the consistency
 * guard on, against the same read with it off.
 * Prints medians and ratios; timing is never asserted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "layouts.h"

#define REPS 15

static void run(const char *name, pid_t pid, struct span s, bool guard)
{
	size_t n = (s.hi - s.lo) / ps;
	uint64_t *buf = xmap(n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	double raw[REPS], naive[REPS], lib[REPS], snap[REPS];
	PM_OPTS(pm_read_opts, so, .flags = PM_READ_F_SNAPSHOT);
	struct pm_vma_list *l;
	struct pm_handle *h;
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pm_open(pid, NULL, &h) || pm_vmas(h, &l)) {
		fprintf(stderr, "bench: cannot open %d\n", (int)pid);
		exit(1);
	}
	memset(buf, 0, n * 8);
	for (int r = 0; r < REPS; r++) {
		double t0 = now();

		pread_all(fd, buf, s.lo, s.hi);
		raw[r] = now() - t0;
		t0 = now();
		for (size_t i = 0; i < pm_vma_count(l); i++) {
			const struct pm_vma *v = pm_vma_at(l, i);
			uint64_t a = v->start > s.lo ? v->start : s.lo;
			uint64_t b = v->end < s.hi ? v->end : s.hi;

			if (a < b)
				pread_all(fd, buf + (a - s.lo) / ps, a, b);
		}
		naive[r] = now() - t0;
		t0 = now();
		if (pm_read(h, s.lo, s.hi, buf, NULL, NULL) != (long)n)
			exit(1);
		lib[r] = now() - t0;
		if (guard) {
			t0 = now();
			if (pm_read(h, s.lo, s.hi, buf, &so, NULL) != (long)n)
				exit(1);
			snap[r] = now() - t0;
		}
	}
	double mr = median(raw, REPS), mn = median(naive, REPS), ml = median(lib, REPS);

	printf("%-22s raw %8.3f ms  naive %8.3f ms  pm_read %8.3f ms  pm/raw %5.3fx  "
	       "naive/pm %6.2fx",
	       name, mr * 1e3, mn * 1e3, ml * 1e3, ml / mr, mn / ml);
	if (guard) {
		double msn = median(snap, REPS);

		printf("  guarded %8.3f ms (guard on/off %.3fx)", msn * 1e3, msn / ml);
	}
	printf("\n");
	pm_vma_list_free(l);
	pm_close(h);
	close(fd);
	munmap(buf, n * 8);
}

int main(void)
{
	struct span spans[8];
	int hold;
	pid_t pid = layouts_start(spans, &hold);

	printf("pm_read vs the raw pread floor, medians of %d interleaved runs (libpagemap %s)\n",
	       REPS, pm_version());
	for (size_t i = 0; i < nlayouts; i++)
		run(layouts[i].name, pid, spans[i], layouts[i].big);
	layouts_stop(pid, hold);
	return 0;
}
