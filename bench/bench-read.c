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
 *
 * Then the rows of issue 16's table, every method in shuffled order in each
 * repetition:
 *   gapped  10,000 x 16 KiB VMAs with 1, 2 or 8 MiB gaps, a process each:
 *           pm_read over the span against the honest floor, one pread per
 *           VMA (the list given for free) and the gaps zero-filled
 *   small   10,000 contiguous 16 KiB VMAs: one pread per VMA against pm_read
 *           (pm_read must be >= 3x faster)
 *   text    a PM_OPEN_MAPS_TEXT handle on the 10,000-VMA process: 32 pm_reads
 *           of 8,192 pages against 32 preads
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
#include "order.h"

static uint64_t order_seed = 16; /* the methods' order, per repetition */

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

static void open_both(pid_t pid, uint64_t open_flags, int *fd, struct pm_handle **h)
{
	PM_OPTS(pm_open_opts, oo, .flags = open_flags);
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0 || pm_open(pid, &oo, h)) {
		fprintf(stderr, "bench: cannot open %d\n", (int)pid);
		exit(1);
	}
}

/* The floor: one pread per VMA of @l inside s, the gaps zero-filled. */
static void per_vma(int fd, const struct pm_vma_list *l, struct span s, uint64_t *buf,
		    bool zero_gaps)
{
	uint64_t cur = s.lo;

	for (size_t i = 0; i < pm_vma_count(l) && cur < s.hi; i++) {
		const struct pm_vma *v = pm_vma_at(l, i);
		uint64_t a = v->start > s.lo ? v->start : s.lo;
		uint64_t b = v->end < s.hi ? v->end : s.hi;

		if (a >= b)
			continue;
		if (zero_gaps && a > cur)
			memset(buf + (cur - s.lo) / ps, 0, (a - cur) / ps * 8);
		pread_all(fd, buf + (a - s.lo) / ps, a, b);
		cur = b;
	}
	if (zero_gaps && cur < s.hi)
		memset(buf + (cur - s.lo) / ps, 0, (s.hi - cur) / ps * 8);
}

/* Median times of method 0 (the library) and method 1 (its floor). */
struct pair {
	double lib, floor, cold;
};

typedef void (*method_fn)(void *arg, int which);

static struct pair measure(method_fn fn, void *arg)
{
	double t[2][REPS], cold;
	int order[2];

	cold = now();
	fn(arg, 0);
	cold = now() - cold;
	for (int r = 0; r < REPS; r++) {
		bench_order(order, 2, &order_seed);
		for (int k = 0; k < 2; k++) {
			double t0 = now();

			fn(arg, order[k]);
			t[order[k]][r] = now() - t0;
		}
	}
	return (struct pair){ median(t[0], REPS), median(t[1], REPS), cold };
}

struct ctx {
	struct pm_handle *h;
	int fd;
	struct span s;
	uint64_t *buf;
	struct pm_vma_list *l;
	bool zero_gaps;
};

static void m_span(void *arg, int which)
{
	struct ctx *c = arg;
	size_t n = (c->s.hi - c->s.lo) / ps;

	if (which == 1)
		per_vma(c->fd, c->l, c->s, c->buf, c->zero_gaps);
	else if (pm_read(c->h, c->s.lo, c->s.hi, c->buf, NULL, NULL) != (long)n)
		exit(1);
}

#define CHUNKS 32
#define CHUNK_PAGES 8192

static void m_chunks(void *arg, int which)
{
	struct ctx *c = arg;

	for (uint64_t i = 0; i < CHUNKS; i++) {
		uint64_t a = c->s.lo + i * CHUNK_PAGES * ps, b = a + CHUNK_PAGES * ps;
		uint64_t *dst = c->buf + i * CHUNK_PAGES;

		if (which == 1)
			pread_all(c->fd, dst, a, b);
		else if (pm_read(c->h, a, b, dst, NULL, NULL) != CHUNK_PAGES)
			exit(1);
	}
}

static struct pair run_ctx(pid_t pid, uint64_t open_flags, struct span s, bool zero_gaps,
			   method_fn fn)
{
	struct ctx c = { .s = s, .zero_gaps = zero_gaps };
	size_t n = (s.hi - s.lo) / ps;
	struct pair p;

	open_both(pid, open_flags, &c.fd, &c.h);
	c.buf = xmap(n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	memset(c.buf, 0, n * 8);
	if (pm_vmas(c.h, &c.l))
		exit(1);
	p = measure(fn, &c);
	pm_vma_list_free(c.l);
	pm_close(c.h);
	close(c.fd);
	munmap(c.buf, n * 8);
	return p;
}

/* One process per gap size: a process of 10,000 VMAs, as the row says. */
static void build_gapped(void *arg, struct span *out)
{
	out[0] = gapped_vmas((uint64_t)(uintptr_t)arg);
}

static void issue_rows(pid_t pid, const struct span *spans)
{
	static const char *const gaps[] = { "1 MiB", "2 MiB", "8 MiB" };
	static const uint64_t gap_mib[] = { 1, 2, 8 };
	char what[128];
	struct pair p;

	for (int i = 0; i < 3; i++) {
		struct span g;
		int hold;
		pid_t gp = bench_child(build_gapped, (void *)(uintptr_t)(gap_mib[i] << 20), &g, 1,
				       &hold);

		p = run_ctx(gp, 0, g, true, m_span);
		layouts_stop(gp, hold);
		printf("gapped %s: pm_read %.3f ms (first call %.3f ms), floor %.3f ms\n", gaps[i],
		       p.lib * 1e3, p.cold * 1e3, p.floor * 1e3);
		snprintf(what, sizeof(what),
			 "pm_read, 10000 x 16 KiB VMAs, %s gaps, vs pread per VMA", gaps[i]);
		print_row(what, p.lib / p.floor, 1.10, false);
	}
	/* spans[3]: the 10,000 contiguous small VMAs; spans[0]: 1 GiB of 4K */
	p = run_ctx(pid, 0, spans[3], false, m_span);
	printf("contiguous small VMAs: pm_read %.3f ms (first call %.3f ms), pread per VMA %.3f ms\n",
	       p.lib * 1e3, p.cold * 1e3, p.floor * 1e3);
	print_row("pm_read, 10000 contiguous 16 KiB VMAs, speed-up over pread per VMA",
		  p.floor / p.lib, 3.0, true);
	p = run_ctx(pid, PM_OPEN_MAPS_TEXT, spans[0], false, m_chunks);
	printf("maps text, 32 x 8192 pages: pm_read %.3f ms (first %.3f ms), pread %.3f ms\n",
	       p.lib * 1e3, p.cold * 1e3, p.floor * 1e3);
	print_row("pm_read, maps-text source, 32 reads of 8192 pages, 10000-VMA process, vs pread",
		  p.lib / p.floor, 1.20, false);
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
	issue_rows(pid, spans);
	layouts_stop(pid, hold);
	return 0;
}
