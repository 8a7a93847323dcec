/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_read against the raw syscall floor, on layouts in a child process.
 * For each layout, in the same run and interleaved:
 *   raw    one pread over the whole span, no decoding (the floor)
 *   naive  one pread per VMA (the VMA list is given for free)
 *   pm     pm_read over the whole span
 * and, for the 1 GiB layouts, pm_read with PM_READ_SNAPSHOT: the consistency
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

#define HUGE_SZ (2UL << 20)
#define REPS 15

static uint64_t ps;

struct span {
	uint64_t lo, hi;
};

static void *xmap(size_t len, int prot, int flags)
{
	void *p = mmap(NULL, len, prot, flags, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		_exit(1);
	}
	return p;
}

static struct span anon_4k(void)
{
	const size_t len = 1UL << 30;
	char *p = xmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	madvise(p, len, MADV_NOHUGEPAGE);
	memset(p, 1, len);
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

static struct span anon_thp(void)
{
	const size_t len = 1UL << 30;
	char *p = xmap(len + HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	p = (char *)(((uintptr_t)p + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 1, len);
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

static struct span sparse_64g(void)
{
	const size_t len = 64UL << 30;
	char *p = xmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);

	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < len; off += HUGE_SZ)
		p[off] = 1;
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

static struct span many_vmas(void)
{
	const int n = 10000;
	char *p = xmap((size_t)n * 4 * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);

	for (int i = 0; i < n; i++) {
		char *v = p + (size_t)i * 4 * ps;

		if (i % 2) {
			mprotect(v, 4 * ps, PROT_READ | PROT_WRITE);
			v[0] = 1;
			v[2 * ps] = 1;
		}
	}
	return (struct span){ (uintptr_t)p, (uintptr_t)p + (size_t)n * 4 * ps };
}

static const struct {
	const char *name;
	struct span (*build)(void);
	bool guard;
} layouts[] = {
	{ "1 GiB 4K anon", anon_4k, true },
	{ "1 GiB THP", anon_thp, true },
	{ "64 GiB sparse", sparse_64g, false },
	{ "10,000 VMAs x 16 KiB", many_vmas, false },
};
#define NLAYOUTS (sizeof(layouts) / sizeof(layouts[0]))

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v)
{
	qsort(v, REPS, sizeof(*v), cmp);
	return v[REPS / 2];
}

static void pread_all(int fd, uint64_t *buf, uint64_t lo, uint64_t hi)
{
	size_t len = (hi - lo) / ps * 8, done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(lo / ps * 8 + done));

		if (r <= 0) {
			perror("pread");
			exit(1);
		}
		done += (size_t)r;
	}
}

static void run(const char *name, pid_t pid, struct span s, bool guard)
{
	size_t n = (s.hi - s.lo) / ps;
	uint64_t *buf = xmap(n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	double raw[REPS], naive[REPS], lib[REPS], snap[REPS];
	PM_OPTS(pm_read_opts, so, .flags = PM_READ_SNAPSHOT);
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
	double mr = median(raw), mn = median(naive), ml = median(lib);

	printf("%-22s raw %8.3f ms  naive %8.3f ms  pm_read %8.3f ms  pm/raw %5.3fx  "
	       "naive/pm %6.2fx",
	       name, mr * 1e3, mn * 1e3, ml * 1e3, ml / mr, mn / ml);
	if (guard) {
		double msn = median(snap);

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
	struct span spans[NLAYOUTS];
	struct span *shared;
	int ready[2], hold[2];
	char c = 0;
	pid_t pid;

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	shared = xmap(ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
	if (pipe2(ready, O_CLOEXEC) || pipe2(hold, O_CLOEXEC))
		return 1;
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		for (size_t i = 0; i < NLAYOUTS; i++)
			shared[i] = layouts[i].build();
		(void)!write(ready[1], &c, 1);
		(void)!read(hold[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	if (read(ready[0], &c, 1) != 1)
		return 1;
	memcpy(spans, shared, sizeof(spans));
	printf("pm_read vs the raw pread floor, medians of %d interleaved runs (libpagemap %s)\n",
	       REPS, pm_version());
	for (size_t i = 0; i < NLAYOUTS; i++)
		run(layouts[i].name, pid, spans[i], layouts[i].guard);
	close(hold[1]);
	waitpid(pid, NULL, 0);
	return 0;
}
