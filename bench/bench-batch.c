/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_batch backends on batch shapes, in the same run, interleaved, medians:
 *   200 processes x 8 MiB, 50 processes x 64 MiB (one read each, pages
 *   written), 10,000 ranges of 16 pages in one process, one 1 GiB range.
 * Prints URING, SYNC and AUTO times, AUTO's choice, and the ratios.
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

struct target {
	pid_t pid;
	int hold;
	uint64_t addr, len;
	struct pm_handle *h;
};

static void build_written(void *arg, struct span *out)
{
	uint64_t len = *(uint64_t *)arg;
	char *p = xmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	madvise(p, len, MADV_NOHUGEPAGE);
	memset(p, 1, len);
	out[0] = (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

/* A child with @len bytes of written anonymous memory. */
static void spawn(struct target *t, uint64_t len)
{
	struct span s;

	t->pid = bench_child(build_written, &len, &s, 1, &t->hold);
	t->addr = s.lo;
	t->len = len;
	if (pm_open(t->pid, NULL, &t->h))
		exit(1);
}

struct shape {
	const char *name;
	int ntargets;
	uint64_t len;     /* per target */
	int ranges;       /* reads per target */
};

/* One batch per backend, reused across runs, as a poller would. */
static double run(struct target *t, const struct shape *s, struct pm_batch *b, uint64_t **bufs,
		  int *used)
{
	long *res = calloc((size_t)s->ntargets * s->ranges, sizeof(*res));
	double t0;
	int k = 0;

	for (int i = 0; i < s->ntargets; i++) {
		uint64_t step = s->len / (uint64_t)s->ranges;

		for (int r = 0; r < s->ranges; r++, k++)
			pm_batch_add_read(b, t[i].h, t[i].addr + (uint64_t)r * step,
					  t[i].addr + (uint64_t)(r + 1) * step,
					  bufs[i] + (uint64_t)r * step / ps, NULL, &res[k]);
	}
	t0 = now();
	pm_batch_run(b);
	t0 = now() - t0;
	*used = pm_batch_backend(b);
	for (int i = 0; i < k; i++)
		if (res[i] < 0) {
			fprintf(stderr, "read %d: %ld\n", i, res[i]);
			exit(1);
		}
	free(res);
	return t0;
}

int main(void)
{
	static const struct shape shapes[] = {
		{ "200 procs x 8 MiB", 200, 8UL << 20, 1 },
		{ "50 procs x 64 MiB", 50, 64UL << 20, 1 },
		{ "10,000 ranges, 1 proc", 1, 10000UL * 16 * 4096, 10000 },
		{ "one 1 GiB range", 1, 1UL << 30, 1 },
	};

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	printf("pm_batch backends, medians of %d interleaved runs (libpagemap %s, io_uring %s)\n",
	       REPS, pm_version(), pm_has_feature(PM_FEAT_IO_URING) == 1 ? "yes" : "no");
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		const struct shape *s = &shapes[si];
		struct target *t = calloc((size_t)s->ntargets, sizeof(*t));
		uint64_t **bufs = calloc((size_t)s->ntargets, sizeof(*bufs));
		double u[REPS], y[REPS], a[REPS];
		int used_u = 0, used_a = 0, used_s = 0;
		struct pm_batch *bu, *bs, *ba;
		PM_OPTS(pm_batch_opts, ou, .backend = PM_BACKEND_URING);
		PM_OPTS(pm_batch_opts, os, .backend = PM_BACKEND_SYNC);
		PM_OPTS(pm_batch_opts, oa, .backend = PM_BACKEND_AUTO);

		if (pm_batch_new(&ou, &bu) || pm_batch_new(&os, &bs) || pm_batch_new(&oa, &ba))
			return 1;

		for (int i = 0; i < s->ntargets; i++) {
			spawn(&t[i], s->len);
			bufs[i] = xmap(s->len / ps * 8, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS);
			memset(bufs[i], 0, s->len / ps * 8);
		}
		for (int r = 0; r < REPS; r++) {
			u[r] = run(t, s, bu, bufs, &used_u);
			y[r] = run(t, s, bs, bufs, &used_s);
			a[r] = run(t, s, ba, bufs, &used_a);
		}
		double mu = median(u, REPS), my = median(y, REPS), ma = median(a, REPS);
		double best = mu < my ? mu : my;

		printf("%-24s uring %8.3f ms  sync %8.3f ms  auto %8.3f ms (%s)  uring/sync %.2fx  "
		       "auto/best %.2fx\n",
		       s->name, mu * 1e3, my * 1e3, ma * 1e3,
		       used_a == PM_BACKEND_URING ? "uring" : "sync", mu / my, ma / best);
		pm_batch_free(bu);
		pm_batch_free(bs);
		pm_batch_free(ba);
		for (int i = 0; i < s->ntargets; i++) {
			pm_close(t[i].h);
			layouts_stop(t[i].pid, t[i].hold);
			munmap(bufs[i], s->len / ps * 8);
		}
		free(t);
		free(bufs);
	}
	return 0;
}
