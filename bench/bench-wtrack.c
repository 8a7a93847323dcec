/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Collect-and-reset of 1 GiB of this process's memory with 1% of its
 * pages written since the last collect, in the same run, interleaved,
 * medians:
 *   ioctl   the raw floor: a PAGEMAP_SCAN loop with WP_MATCHING on a
 *           second 1 GiB registered with its own userfaultfd
 *   wtrack  pm_wtrack_collect(PM_WT_COLLECT_RESET), userfaultfd method
 *   diff    the approach without write tracking: pread every pagemap
 *           entry of the 1 GiB and compare with the previous read
 * Both tracked regions get the same writes before every measurement.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "layouts.h"

#define REPS 15
#define SIZE (1ULL << 30)
#define VEC 4096

struct scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t inverted, mask, anyof, ret;
};
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct scan_arg)

static struct pm_region vec[VEC];

/* The raw floor: what the library's uffd collect has to issue. */
static size_t raw_collect(int fd, uint64_t lo, uint64_t hi)
{
	size_t pages = 0;

	for (uint64_t cur = lo; cur < hi;) {
		struct scan_arg a = { .size = sizeof(a), .flags = 3 /* WP_MATCHING|CHECK_WPASYNC */,
				      .start = cur, .end = hi, .vec = (uintptr_t)vec,
				      .vec_len = VEC, .mask = PM_CAT_WRITTEN,
				      .ret = PM_CAT_WRITTEN };
		int r = ioctl(fd, PAGEMAP_SCAN_, &a);

		if (r < 0) {
			perror("PAGEMAP_SCAN");
			exit(1);
		}
		for (int i = 0; i < r; i++)
			pages += (vec[i].end - vec[i].start) / ps;
		cur = a.walk_end;
		if (r > 0 && vec[r - 1].end > cur)
			cur = vec[r - 1].end; /* see bench-scan.c: 6.18's short walk_end */
	}
	return pages;
}

static size_t lib_collect(struct pm_wtrack *wt, uint64_t lo, uint64_t hi)
{
	size_t pages = 0;
	uint64_t we;

	for (uint64_t cur = lo; cur < hi; cur = we) {
		long r = pm_wtrack_collect(wt, cur, hi, vec, VEC, PM_WT_COLLECT_RESET, &we);

		if (r < 0) {
			fprintf(stderr, "pm_wtrack_collect: %ld\n", r);
			exit(1);
		}
		for (long i = 0; i < r; i++)
			pages += (vec[i].end - vec[i].start) / ps;
	}
	return pages;
}

/* Read every entry, count those that differ from the previous read. */
static size_t diff_collect(int fd, uint64_t lo, uint64_t *cur, uint64_t *prev)
{
	size_t n = SIZE / ps, changed = 0;

	pread_all(fd, cur, lo, lo + SIZE);
	for (size_t i = 0; i < n; i++)
		changed += cur[i] != prev[i];
	memcpy(prev, cur, n * 8);
	return changed;
}

static size_t rnd_page(uint64_t *s, size_t n)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (size_t)(*s >> 33) % n;
}

static char *region(void)
{
	char *p = xmap(SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	madvise(p, SIZE, MADV_NOHUGEPAGE);
	memset(p, 1, SIZE);
	return p;
}

int main(void)
{
	size_t npages, nwrite;
	double t_io[REPS], t_wt[REPS], t_diff[REPS];
	struct uffdio_api api = { .api = UFFD_API, .features = (1ULL << 15) | (1ULL << 13) };
	struct pm_range ra;
	PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_METHOD_UFFD);
	struct pm_handle *h;
	struct pm_wtrack *wt;
	uint64_t *cur, *prev, seed = 1;
	char *a, *b;
	size_t got_io = 0, got_wt = 0, got_diff = 0;
	long ufd;
	int fd, r;

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	npages = SIZE / ps;
	nwrite = npages / 100;
	if (pm_open(0, NULL, &h)) {
		perror("pm_open");
		return 1;
	}
	a = region();
	b = region();
	ra.start = (uintptr_t)a;
	ra.end = ra.start + SIZE;
	r = pm_wtrack_new(h, &ra, 1, &uffd, &wt);
	if (r == -EOPNOTSUPP) {
		printf("SKIP: no userfaultfd WP_ASYNC write tracking on this kernel\n");
		return 0;
	}
	if (r) {
		fprintf(stderr, "pm_wtrack_new: %d\n", r);
		return 1;
	}
	/* the raw floor's own registration, armed once */
	ufd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	{
		struct uffdio_register reg = { .range = { (uintptr_t)b, SIZE },
					       .mode = UFFDIO_REGISTER_MODE_WP };

		if (ufd < 0 || ioctl((int)ufd, UFFDIO_API, &api) ||
		    ioctl((int)ufd, UFFDIO_REGISTER, &reg)) {
			perror("userfaultfd");
			return 1;
		}
	}
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	cur = malloc(npages * 8);
	prev = calloc(npages, 8);
	if (fd < 0 || !cur || !prev)
		return 1;
	raw_collect(fd, (uintptr_t)b, (uintptr_t)b + SIZE);
	diff_collect(fd, (uintptr_t)a, cur, prev);

	printf("collect-and-reset of 1 GiB (%zu pages) with 1%% (%zu pages) written, "
	       "medians of %d interleaved runs (libpagemap %s)\n", npages, nwrite, REPS,
	       pm_version());
	for (int rep = 0; rep < REPS; rep++) {
		double t0;

		for (size_t i = 0; i < nwrite; i++) {
			size_t pg = rnd_page(&seed, npages);

			a[pg * ps] = (char)rep;
			b[pg * ps] = (char)rep;
		}
		/* alternate which goes first: the first pays for the writes' TLB and cache misses */
		for (int k = 0; k < 2; k++) {
			t0 = now();
			if ((k + rep) % 2 == 0) {
				got_io += raw_collect(fd, (uintptr_t)b, (uintptr_t)b + SIZE);
				t_io[rep] = now() - t0;
			} else {
				got_wt += lib_collect(wt, (uintptr_t)a, (uintptr_t)a + SIZE);
				t_wt[rep] = now() - t0;
			}
		}
		t0 = now();
		got_diff += diff_collect(fd, (uintptr_t)a, cur, prev);
		t_diff[rep] = now() - t0;
	}
	if (got_io != got_wt) {
		fprintf(stderr, "the library reported %zu pages, the raw ioctl %zu\n", got_wt, got_io);
		return 1;
	}
	{
		double io = median(t_io, REPS), w = median(t_wt, REPS), d = median(t_diff, REPS);

		printf("  raw PAGEMAP_SCAN (WP_MATCHING) %8.3f ms\n", io * 1e3);
		printf("  pm_wtrack_collect (uffd)       %8.3f ms  %.2fx the raw ioctl, "
		       "%zu pages per collect\n", w * 1e3, w / io, got_wt / REPS);
		printf("  pread all entries + diff       %8.3f ms  %.1fx slower than pm_wtrack_collect "
		       "(and blind to writes without soft-dirty: %zu entries changed per run)\n",
		       d * 1e3, d / w, got_diff / REPS);
	}
	pm_wtrack_free(wt);
	pm_close(h);
	return 0;
}
