/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_batch backends on batch shapes (1, 10, 200 processes; 8 and 64 MiB
 * reads; 10,000 ranges in one process; 10,000 small VMAs read as one
 * range; one 1 GiB range), every method in shuffled order in each
 * repetition, medians:
 *   uring, sync: the backends asked for, one batch each, kept across runs;
 *   auto: a new AUTO batch per run (one-shot, as pm-dump --all uses it);
 *   auto-kept: one AUTO batch kept across runs (a poller);
 *   raw: pread of each range's pagemap entries (the floor).
 * Prints the times, AUTO's choices, and ROW lines: AUTO (one-shot and
 * kept) against the faster backend, the sync backend against raw.
 * An argument runs only the shapes whose name contains it.
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

#define REPS 11
#define SMALL_VMAS 10000

enum { M_URING, M_SYNC, M_AUTO, M_AUTO_KEPT, M_RAW, NMETHODS };
static const char *const mname[NMETHODS] = { "uring", "sync", "auto", "auto-kept", "raw" };

struct target {
	pid_t pid;
	int hold, pagemap_fd;
	uint64_t addr, len;
	struct pm_handle *h;
};

struct shape {
	const char *name;
	int ntargets;
	uint64_t len;  /* per target */
	int ranges;    /* reads per target */
	bool small;    /* the target's range is SMALL_VMAS 4-page VMAs, 4-page holes */
};

static void build_written(void *arg, struct span *out)
{
	const struct shape *s = arg;
	char *p = xmap(s->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	madvise(p, s->len, MADV_NOHUGEPAGE);
	memset(p, 1, s->len);
	if (s->small)
		for (uint64_t off = 4 * ps; off < s->len; off += 8 * ps)
			munmap(p + off, 4 * ps);
	out[0] = (struct span){ (uintptr_t)p, (uintptr_t)p + s->len };
}

static void spawn(struct target *t, const struct shape *s)
{
	struct span sp;
	char path[64];

	t->pid = bench_child(build_written, (void *)s, &sp, 1, &t->hold);
	t->addr = sp.lo;
	t->len = s->len;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)t->pid);
	t->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->pagemap_fd < 0 || pm_open(t->pid, NULL, &t->h))
		exit(1);
}

static double run_batch(struct target *t, const struct shape *s, struct pm_batch *b,
			uint64_t **bufs, long *res, int *used)
{
	uint64_t step = s->len / (uint64_t)s->ranges;
	double t0;
	int k = 0;

	for (int i = 0; i < s->ntargets; i++)
		for (int r = 0; r < s->ranges; r++, k++)
			pm_batch_add_read(b, t[i].h, t[i].addr + (uint64_t)r * step,
					  t[i].addr + (uint64_t)(r + 1) * step,
					  bufs[i] + (uint64_t)r * step / ps, NULL, &res[k]);
	t0 = now();
	pm_batch_run(b);
	t0 = now() - t0;
	*used = pm_batch_backend(b);
	for (int i = 0; i < k; i++)
		if (res[i] < 0) {
			fprintf(stderr, "read %d: %ld\n", i, res[i]);
			exit(1);
		}
	return t0;
}

static double run_raw(struct target *t, const struct shape *s, uint64_t **bufs)
{
	uint64_t step = s->len / (uint64_t)s->ranges;
	double t0 = now();

	for (int i = 0; i < s->ntargets; i++)
		for (int r = 0; r < s->ranges; r++)
			pread_all(t[i].pagemap_fd, bufs[i] + (uint64_t)r * step / ps,
				  t[i].addr + (uint64_t)r * step, t[i].addr + (uint64_t)(r + 1) * step);
	return now() - t0;
}

static void row(const char *what, const struct shape *s, double ratio, double floor)
{
	printf("ROW | %s, %s | %.2fx | <= %.2fx | %s\n", what, s->name, ratio, floor,
	       ratio <= floor ? "PASS" : "FAIL");
}

int main(int argc, char **argv)
{
	static const struct shape shapes[] = {
		{ "1 proc x 64 MiB", 1, 64UL << 20, 1, false },
		{ "1 proc x 8 MiB", 1, 8UL << 20, 1, false },
		{ "10 procs x 64 MiB", 10, 64UL << 20, 1, false },
		{ "10 procs x 8 MiB", 10, 8UL << 20, 1, false },
		{ "50 procs x 64 MiB", 50, 64UL << 20, 1, false },
		{ "200 procs x 8 MiB", 200, 8UL << 20, 1, false },
		{ "10,000 ranges x 16 pages, 1 proc", 1, 10000UL * 16 * 4096, 10000, false },
		{ "10,000 small VMAs in 1 range", 1, SMALL_VMAS * 8UL * 4096, 1, true },
		{ "one 1 GiB range", 1, 1UL << 30, 1, false },
	};
	unsigned seed = 1;

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	printf("pm_batch backends, medians of %d shuffled runs (libpagemap %s, io_uring %s, "
	       "%ld CPUs)\n",
	       REPS, pm_version(), pm_has_feature(PM_FEAT_IO_URING) == 1 ? "yes" : "no",
	       sysconf(_SC_NPROCESSORS_ONLN));
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		const struct shape *s = &shapes[si];
		if (argc > 1 && !strstr(s->name, argv[1]))
			continue;
		struct target *t = calloc((size_t)s->ntargets, sizeof(*t));
		uint64_t **bufs = calloc((size_t)s->ntargets, sizeof(*bufs));
		long *res = calloc((size_t)s->ntargets * (size_t)s->ranges, sizeof(*res));
		double v[NMETHODS][REPS], m[NMETHODS];
		int used[NMETHODS] = { 0 }, auto_uring = 0, kept_uring = 0;
		struct pm_batch *kept[3];
		PM_OPTS(pm_batch_opts, ou, .backend = PM_BACKEND_URING);
		PM_OPTS(pm_batch_opts, os, .backend = PM_BACKEND_SYNC);
		PM_OPTS(pm_batch_opts, oa, .backend = PM_BACKEND_AUTO);

		if (pm_batch_new(&ou, &kept[M_URING]) || pm_batch_new(&os, &kept[M_SYNC]) ||
		    pm_batch_new(&oa, &kept[2]))
			return 1;
		for (int i = 0; i < s->ntargets; i++) {
			spawn(&t[i], s);
			bufs[i] = xmap(s->len / ps * 8, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS);
			memset(bufs[i], 0, s->len / ps * 8);
		}
		for (int r = 0; r < REPS; r++) {
			int order[NMETHODS] = { M_URING, M_SYNC, M_AUTO, M_AUTO_KEPT, M_RAW };

			for (int i = NMETHODS - 1; i > 0; i--) {
				int j = rand_r(&seed) % (i + 1), x = order[i];

				order[i] = order[j];
				order[j] = x;
			}
			for (int i = 0; i < NMETHODS; i++) {
				int me = order[i];
				struct pm_batch *one;

				switch (me) {
				case M_URING:
				case M_SYNC:
					v[me][r] = run_batch(t, s, kept[me], bufs, res, &used[me]);
					break;
				case M_AUTO:
					if (pm_batch_new(&oa, &one))
						return 1;
					v[me][r] = run_batch(t, s, one, bufs, res, &used[me]);
					auto_uring += used[me] == PM_BACKEND_URING;
					pm_batch_free(one);
					break;
				case M_AUTO_KEPT:
					v[me][r] = run_batch(t, s, kept[2], bufs, res, &used[me]);
					kept_uring += used[me] == PM_BACKEND_URING;
					break;
				default:
					v[me][r] = run_raw(t, s, bufs);
				}
			}
		}
		for (int i = 0; i < NMETHODS; i++)
			m[i] = median(v[i], REPS);
		double best = m[M_URING] < m[M_SYNC] ? m[M_URING] : m[M_SYNC];

		printf("%-34s", s->name);
		for (int i = 0; i < NMETHODS; i++)
			printf(" %s %.3f ms", mname[i], m[i] * 1e3);
		printf("  uring/sync %.2fx  auto chose uring %d/%d, kept %d/%d\n",
		       m[M_URING] / m[M_SYNC], auto_uring, REPS, kept_uring, REPS);
		row("AUTO one-shot vs the faster backend", s, m[M_AUTO] / best, 1.05);
		row("AUTO kept vs the faster backend", s, m[M_AUTO_KEPT] / best, 1.05);
		if (s->ranges > 1)
			row("pm_batch sync vs pread per range", s, m[M_SYNC] / m[M_RAW], 1.30);
		for (int i = 0; i < 3; i++)
			pm_batch_free(kept[i]);
		for (int i = 0; i < s->ntargets; i++) {
			pm_close(t[i].h);
			close(t[i].pagemap_fd);
			layouts_stop(t[i].pid, t[i].hold);
			munmap(bufs[i], s->len / ps * 8);
		}
		free(t);
		free(bufs);
		free(res);
	}
	return 0;
}
