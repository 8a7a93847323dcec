/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * How long PM_WT_F_STOP (and PM_READ_F_STOP) holds a running target:
 *   stop      pm__stop_begin + pm__stop_end alone, on a target of 1, 8
 *             and 64 busy threads, and on one with 1 GiB of 4 KiB pages
 *   wtrack    the stop of a collect-and-reset with PM_WT_F_STOP on that
 *             1 GiB while a thread writes 1% of its pages (soft-dirty
 *             kernels only), from pm_wtrack_stats
 * Medians and maxima of the time from the start of the stop to the end of
 * the resume.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layouts.h"
#include "stop.h"

#define ROUNDS 100
#define REPS 15
#define BIG (1ULL << 30)

static char *mem;

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void *busy(void *arg)
{
	for (volatile uint64_t n = 0;; n++)
		(void)arg;
	return NULL;
}

/* Writes every 100th page, over and over: 1% of the pages. */
static void *writer(void *arg)
{
	(void)arg;
	for (uint64_t seq = 0;; seq++)
		for (uint64_t off = 0; off < BIG; off += 100 * ps)
			*(volatile uint64_t *)(mem + off) = seq;
	return NULL;
}

struct build_arg {
	int threads;
	bool big, busy;
};

static void build(void *arg, struct span *out)
{
	const struct build_arg *a = arg;
	pthread_t th;

	if (a->big) {
		mem = xmap(BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
		madvise(mem, BIG, MADV_NOHUGEPAGE);
		memset(mem, 1, BIG);
		out[0] = (struct span){ (uintptr_t)mem, (uintptr_t)mem + BIG };
	}
	/* the main thread waits for the end; the others run */
	for (int i = 1; i < a->threads; i++)
		if (pthread_create(&th, NULL, a->big && i == 1 ? writer : a->busy ? busy : idle, NULL))
			_exit(1);
}

static void stop_alone(const char *what, pid_t pid)
{
	static double t[ROUNDS];
	struct pm_handle *h;

	if (pm_open(pid, NULL, &h))
		exit(1);
	for (int i = 0; i < ROUNDS; i++) {
		struct pm__stop *s;
		double t0 = now();
		int r = pm__stop_begin(h, &s);

		if (r || pm__stop_end(s)) {
			fprintf(stderr, "stop: %s\n", strerror(-r));
			exit(1);
		}
		t[i] = (now() - t0) * 1e3;
		usleep(1000);
	}
	median(t, ROUNDS);
	printf("stop     %-26s median %8.3f ms  max %8.3f ms  (%d stops)\n", what, t[ROUNDS / 2],
	       t[ROUNDS - 1], ROUNDS);
	pm_close(h);
}

/* What a hold of the 1 GiB cannot be shorter than: clear_refs itself. */
static void clear_alone(pid_t pid)
{
	double t[REPS];
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		exit(1);
	for (int i = 0; i < REPS; i++) {
		double t0;

		usleep(20000);
		t0 = now();
		if (write(fd, "4", 1) != 1)
			exit(1);
		t[i] = (now() - t0) * 1e3;
	}
	close(fd);
	median(t, REPS);
	printf("clear    1 GiB 4K, clear_refs alone   median %8.3f ms  max %8.3f ms\n", t[REPS / 2],
	       t[REPS - 1]);
}

static void wtrack(pid_t pid, struct span sp)
{
	PM_OPTS(pm_wtrack_opts, o, .method = PM_WT_METHOD_SOFT_DIRTY, .flags = PM_WT_F_STOP);
	static struct pm_region vec[8192];
	struct pm_range r = { sp.lo, sp.hi };
	double t[REPS], wall[REPS];
	struct pm_handle *h;
	struct pm_wtrack *wt;
	int err;

	if (pm_open(pid, NULL, &h))
		exit(1);
	err = pm_wtrack_new(h, &r, 1, &o, &wt);
	if (err == -EOPNOTSUPP) {
		printf("wtrack   1 GiB 4K, 1%% written     skipped: no soft-dirty on this kernel\n");
		pm_close(h);
		return;
	}
	if (err) {
		fprintf(stderr, "pm_wtrack_new: %s\n", strerror(-err));
		exit(1);
	}
	for (int i = 0; i < REPS; i++) {
		PM_OPTS(pm_wtrack_stats, st);
		double t0;
		long pages = 0;

		usleep(20000);
		t0 = now();
		for (uint64_t a = sp.lo, we; a < sp.hi; a = we) {
			long n = pm_wtrack_collect(wt, a, sp.hi, vec, 8192, PM_WT_COLLECT_RESET, &we);

			if (n < 0) {
				fprintf(stderr, "collect: %s\n", strerror((int)-n));
				exit(1);
			}
			for (long k = 0; k < n; k++)
				pages += (long)((vec[k].end - vec[k].start) / ps);
		}
		wall[i] = (now() - t0) * 1e3;
		pm_wtrack_stats(wt, &st);
		t[i] = (double)st.stop_ns_last / 1e6;
		if (i == REPS - 1)
			printf("wtrack   1 GiB 4K, %ld pages written  ", pages);
	}
	median(t, REPS);
	median(wall, REPS);
	printf("stop median %8.3f ms  max %8.3f ms; collect median %8.3f ms\n", t[REPS / 2],
	       t[REPS - 1], wall[REPS / 2]);
	pm_wtrack_free(wt);
	pm_close(h);
	clear_alone(pid);
}

int main(void)
{
	static const int threads[] = { 1, 8, 64 };
	struct span sp;
	int hold;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* a thread must run to reach its stop: busy threads wait for a CPU */
	for (int busy_ = 0; busy_ < 2; busy_++) {
		for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
			struct build_arg a = { threads[i], false, busy_ };
			char what[64];

			pid = bench_child(build, &a, &sp, 0, &hold);
			snprintf(what, sizeof(what), "%d thread%s (%s)", threads[i],
				 threads[i] > 1 ? "s" : "", busy_ ? "busy" : "idle");
			stop_alone(what, pid);
			layouts_stop(pid, hold);
		}
	}
	{
		struct build_arg a = { 2, true, true };

		pid = bench_child(build, &a, &sp, 1, &hold);
		stop_alone("1 GiB 4K, 2 threads", pid);
		wtrack(pid, sp);
		layouts_stop(pid, hold);
	}
	return 0;
}
