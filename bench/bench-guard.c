/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the consistency guard costs on quiescent targets: each read shape
 * with the guard on (PM_READ_F_SNAPSHOT) against the same read with it off
 * (on a kernel with the retry fix; on one without it the guard cannot be
 * turned off), in the same run, methods in shuffled order, medians:
 *   whole-process snapshots of 1 GiB of 4 KiB pages, 1 GiB of THP and
 *   10,000 VMAs: one pm_read over the layout, and a pm_batch of one read
 *   per VMA of the process (sync and io_uring);
 *   a batch of 10,000 ranges of 16 pages in one process, and one of
 *   200 x 8 MiB (sync and io_uring), read both ways: 200 processes of
 *   8 MiB each (a token pair per process: its stat and status at each
 *   end), and 200 mappings of 8 MiB in one process.
 * Prints medians and on/off ratios, and a ROW line per shape against
 * issue 10's floor (<= 1.10x); timing is never asserted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "layouts.h"

#define REPS 11
#define NPROC 200
#define FLOOR 1.10

enum { B_4K, B_THP, B_VMAS };

static void build(void *arg, struct span *out)
{
	int kind = (int)(intptr_t)arg;
	uint64_t len = kind == B_VMAS ? 20000 * ps : 1ULL << 30, pmd = HUGE_SZ;
	char *r = xmap(len + pmd, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	char *p = (char *)(((uintptr_t)r + pmd - 1) & ~(pmd - 1));

	madvise(p, len, kind == B_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(p, 1, len);
	if (kind == B_VMAS) /* every other page read-only: 10,000 VMAs */
		for (uint64_t i = 1; i < 20000; i += 2)
			mprotect(p + i * ps, ps, PROT_READ);
	out[0] = (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

static void build_8m(void *arg, struct span *out)
{
	char *p = xmap(8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	(void)arg;
	madvise(p, 8 << 20, MADV_NOHUGEPAGE);
	memset(p, 1, 8 << 20);
	out[0] = (struct span){ (uintptr_t)p, (uintptr_t)p + (8 << 20) };
}

/* 200 mappings of 8 MiB, one span each. */
static void build_200x8m(void *arg, struct span *out)
{
	(void)arg;
	for (int i = 0; i < NPROC; i++) {
		struct span s;

		build_8m(NULL, &s);
		out[i] = s;
	}
}

struct read {
	struct pm_handle *h;
	uint64_t lo, hi;
	uint64_t *buf;
};

/* One shape: a single pm_read (nreads 1, no batch) or a batch. */
struct shape {
	char name[64];
	struct read *r;
	size_t n;
	int backend; /* -1: pm_read */
	double t[2][REPS];
};

static double run_once(struct shape *s, bool guard)
{
	PM_OPTS(pm_read_opts, o, .flags = guard ? PM_READ_F_SNAPSHOT : 0);
	PM_OPTS(pm_batch_opts, bo, .backend = s->backend < 0 ? 0 : (uint64_t)s->backend,
		.read_flags = guard ? PM_READ_F_SNAPSHOT : 0);
	struct pm_batch *b;
	double t0 = now();
	long res;

	if (s->backend < 0) {
		if (pm_read(s->r[0].h, s->r[0].lo, s->r[0].hi, s->r[0].buf, &o, NULL) < 0)
			exit(1);
		return now() - t0;
	}
	if (pm_batch_new(&bo, &b))
		exit(1);
	t0 = now();
	for (size_t i = 0; i < s->n; i++)
		if (pm_batch_add_read(b, s->r[i].h, s->r[i].lo, s->r[i].hi, s->r[i].buf, NULL, &res))
			exit(1);
	if (pm_batch_run(b))
		exit(1);
	t0 = now() - t0;
	pm_batch_free(b);
	return t0;
}

static uint64_t *buf_for(uint64_t lo, uint64_t hi)
{
	uint64_t *b = xmap((hi - lo) / ps * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	memset(b, 0, (hi - lo) / ps * 8);
	return b;
}

int main(void)
{
	static struct shape sh[16];
	static pid_t pids[4 + NPROC];
	static int holds[4 + NPROC];
	static const char *const names[] = { "1 GiB 4K", "1 GiB THP", "10,000 VMAs" };
	size_t ns = 0, np = 0;
	struct pm_handle *procs[NPROC];
	struct read *many;
	unsigned seed = 1;
	PM_OPTS(pm_kernel_info, ki);

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	pm_kernel_probe(&ki);
	if (ki.walk_retry_fix != PM_FIX_PRESENT) {
		printf("the guard cannot be turned off on this kernel: nothing to compare\n");
		return 0;
	}
	for (int k = B_4K; k <= B_VMAS; k++) {
		struct span sp;
		struct pm_handle *h;
		struct pm_vma_list *l;
		struct read *rv;
		size_t nv;

		pids[np] = bench_child(build, (void *)(intptr_t)k, &sp, 1, &holds[np]);
		if (pm_open(pids[np++], NULL, &h) || pm_vmas(h, &l))
			exit(1);
		sh[ns].r = calloc(1, sizeof(struct read));
		sh[ns].r[0] = (struct read){ h, sp.lo, sp.hi, buf_for(sp.lo, sp.hi) };
		sh[ns].n = 1;
		sh[ns].backend = -1;
		snprintf(sh[ns++].name, 64, "%s: one pm_read", names[k]);
		nv = pm_vma_count(l);
		rv = calloc(nv, sizeof(*rv));
		for (size_t i = 0; i < nv; i++) {
			const struct pm_vma *v = pm_vma_at(l, i);

			rv[i] = (struct read){ h, v->start, v->end,
					       v->start == sp.lo ? sh[ns - 1].r[0].buf
								 : buf_for(v->start, v->end) };
		}
		for (int be = 0; be < 2; be++) {
			sh[ns].r = rv;
			sh[ns].n = nv;
			sh[ns].backend = be ? PM_BACKEND_URING : PM_BACKEND_SYNC;
			snprintf(sh[ns++].name, 64, "%s: batch per VMA (%zu) %s", names[k], nv,
				 be ? "io_uring" : "sync");
		}
		if (k == B_4K) {
			many = calloc(10000, sizeof(*many));
			for (size_t i = 0; i < 10000; i++)
				many[i] = (struct read){ h, sp.lo + i * 26 * ps,
							 sp.lo + (i * 26 + 16) * ps,
							 sh[ns - 3].r[0].buf + i * 26 };
			for (int be = 0; be < 2; be++) {
				sh[ns].r = many;
				sh[ns].n = 10000;
				sh[ns].backend = be ? PM_BACKEND_URING : PM_BACKEND_SYNC;
				snprintf(sh[ns++].name, 64, "10,000 ranges x 16 pages %s",
					 be ? "io_uring" : "sync");
			}
		}
	}
	many = calloc(NPROC, sizeof(*many));
	for (int i = 0; i < NPROC; i++) {
		struct span sp;

		pids[np] = bench_child(build_8m, NULL, &sp, 1, &holds[np]);
		if (pm_open(pids[np++], NULL, &procs[i]))
			exit(1);
		many[i] = (struct read){ procs[i], sp.lo, sp.hi, buf_for(sp.lo, sp.hi) };
	}
	for (int be = 0; be < 2; be++) {
		sh[ns].r = many;
		sh[ns].n = NPROC;
		sh[ns].backend = be ? PM_BACKEND_URING : PM_BACKEND_SYNC;
		snprintf(sh[ns++].name, 64, "%d processes x 8 MiB %s", NPROC, be ? "io_uring" : "sync");
	}
	{
		static struct span sp[NPROC];
		struct pm_handle *h;

		pids[np] = bench_child(build_200x8m, NULL, sp, NPROC, &holds[np]);
		if (pm_open(pids[np++], NULL, &h))
			exit(1);
		many = calloc(NPROC, sizeof(*many));
		for (int i = 0; i < NPROC; i++)
			many[i] = (struct read){ h, sp[i].lo, sp[i].hi, buf_for(sp[i].lo, sp[i].hi) };
		for (int be = 0; be < 2; be++) {
			sh[ns].r = many;
			sh[ns].n = NPROC;
			sh[ns].backend = be ? PM_BACKEND_URING : PM_BACKEND_SYNC;
			snprintf(sh[ns++].name, 64, "%d mappings x 8 MiB, one process %s", NPROC,
				 be ? "io_uring" : "sync");
		}
	}
	for (int rep = 0; rep < REPS; rep++) {
		size_t order[2 * 16];

		for (size_t i = 0; i < 2 * ns; i++)
			order[i] = i;
		for (size_t i = 2 * ns - 1; i > 0; i--) {
			size_t j = (size_t)rand_r(&seed) % (i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (size_t i = 0; i < 2 * ns; i++) {
			struct shape *s = &sh[order[i] / 2];
			int g = (int)(order[i] % 2);

			s->t[g][rep] = run_once(s, g);
		}
	}
	printf("%-44s %12s %12s %8s\n", "shape", "guard off", "guard on", "on/off");
	for (size_t i = 0; i < ns; i++) {
		double off = median(sh[i].t[0], REPS), on = median(sh[i].t[1], REPS);

		printf("%-44s %9.3f ms %9.3f ms %7.3fx\n", sh[i].name, off * 1e3, on * 1e3, on / off);
	}
	for (size_t i = 0; i < ns; i++) {
		double r = median(sh[i].t[1], REPS) / median(sh[i].t[0], REPS);

		printf("ROW | guard on vs off, %s | %.2fx | <= %.2fx | %s\n", sh[i].name, r, FLOOR,
		       r <= FLOOR ? "PASS" : "FAIL");
	}
	for (size_t i = 0; i < np; i++)
		layouts_stop(pids[i], holds[i]);
	return 0;
}
