/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_scan against its floors, on the same layouts as bench-read, in the
 * same run, interleaved, medians:
 *   ioctl   a raw PAGEMAP_SCAN loop (continue at walk_end)
 *   scan    pm_scan, native, same query (present or swapped pages)
 *   pread   one pread of the whole span (the floor of any entry-based path)
 *   emul    pm_scan with PM_SCAN_F_EMULATE, same query
 * and on the THP layout the presence question answered from entries (one
 * pread, decoded) against pm_scan. Every caller gets a 32768-region vector,
 * as CRIU uses.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "layouts.h"

#define REPS 15
#define VEC 32768 /* CRIU's PAGE_REGIONS_MAX_NR */

struct scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t inverted, mask, anyof, ret;
};
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct scan_arg)
#define QUERY (PM_CAT_PRESENT | PM_CAT_SWAPPED)

static struct pm_region vec[VEC];

static size_t raw_ioctl(int fd, struct span s)
{
	size_t n = 0;

	for (uint64_t cur = s.lo; cur < s.hi;) {
		struct scan_arg a = { .size = sizeof(a), .start = cur, .end = s.hi,
				      .vec = (uintptr_t)vec, .vec_len = VEC, .anyof = QUERY,
				      .ret = QUERY };
		int r = ioctl(fd, PAGEMAP_SCAN_, &a);

		if (r < 0) {
			perror("PAGEMAP_SCAN");
			exit(1);
		}
		n += (size_t)r;
		/* 6.18 reports walk_end short of its last region when vec_len is
		 * above its 512-region bounce buffer: continuing from walk_end
		 * alone would report those regions twice */
		cur = a.walk_end;
		if (r > 0 && vec[r - 1].end > cur)
			cur = vec[r - 1].end;
	}
	return n;
}

static size_t lib_scan(struct pm_handle *h, struct span s, uint64_t flags)
{
	PM_OPTS(pm_scan_opts, o, .flags = flags, .category_anyof_mask = QUERY, .return_mask = QUERY);
	size_t n = 0;

	for (uint64_t cur = s.lo; cur < s.hi;) {
		long r = pm_scan(h, cur, s.hi, vec, VEC, &o, &cur);

		if (r < 0) {
			fprintf(stderr, "pm_scan: %ld\n", r);
			exit(1);
		}
		n += (size_t)r;
	}
	return n;
}

/* Present runs from entries: the fastest pread path to the same answer. */
static size_t pread_present(int fd, struct span s, uint64_t *buf)
{
	size_t n = (s.hi - s.lo) / ps, runs = 0;

	pread_all(fd, buf, s.lo, s.hi);
	for (size_t i = 0; i < n; i++)
		runs += pm_entry_present(buf[i]) && (i == 0 || !pm_entry_present(buf[i - 1]));
	return runs;
}

int main(void)
{
	struct span spans[8];
	char path[64];
	int hold, fd;
	pid_t pid;
	struct pm_handle *h;

	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) != 1) {
		printf("SKIP: no PAGEMAP_SCAN on this kernel\n");
		return 77;
	}
	pid = layouts_start(spans, &hold);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pm_open(pid, NULL, &h))
		return 1;
	printf("pm_scan vs its floors, medians of %d interleaved runs (libpagemap %s)\n", REPS,
	       pm_version());
	for (size_t l = 0; l < nlayouts; l++) {
		struct span s = spans[l];
		uint64_t *buf = xmap((s.hi - s.lo) / ps * 8, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS);
		double io[REPS], sc[REPS], pr[REPS], em[REPS];
		size_t a = 0, b = 0, c = 0;

		for (int r = 0; r < REPS; r++) {
			double t = now();

			a = raw_ioctl(fd, s);
			io[r] = now() - t;
			t = now();
			b = lib_scan(h, s, 0);
			sc[r] = now() - t;
			t = now();
			pread_present(fd, s, buf);
			pr[r] = now() - t;
			t = now();
			c = lib_scan(h, s, PM_SCAN_F_EMULATE);
			em[r] = now() - t;
		}
		double mio = median(io, REPS), msc = median(sc, REPS), mpr = median(pr, REPS),
		       mem = median(em, REPS);

		printf("%-22s ioctl %8.3f ms  pm_scan %8.3f ms (%.3fx ioctl)  pread %8.3f ms  "
		       "emulated %8.3f ms (%.3fx pread)  regions %zu/%zu/%zu\n",
		       layouts[l].name, mio * 1e3, msc * 1e3, msc / mio, mpr * 1e3, mem * 1e3,
		       mem / mpr, a, b, c);
		if (layouts[l].big && strstr(layouts[l].name, "THP"))
			printf("%-22s presence: pread+decode %8.3f ms, pm_scan %8.3f ms: %.1fx faster "
			       "(raw ioctl %.1fx)\n",
			       "", mpr * 1e3, msc * 1e3, mpr / msc, mpr / mio);
		munmap(buf, (s.hi - s.lo) / ps * 8);
	}
	pm_close(h);
	close(fd);
	layouts_stop(pid, hold);
	return 0;
}
