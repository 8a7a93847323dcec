/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PM_WT_F_STOP: soft-dirty tracking of a running process that converges.
 * The target's threads must never be left stopped, whatever happens to the
 * copier, and no write may be lost.
 */
#include "common.h"
#include "target.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPAGES 2048
#define STRIDE 8 /* the writer writes every 8th page: 256 can ever be written */

static char *mem; /* the tracked memory: same address in the target */

/* The sparse writer: a thread that keeps writing every 8th page. */
static void sparse_writer(int idx, void *arg)
{
	uint64_t seq = 0;

	(void)arg;
	if (idx != 1)
		return;
	for (;;) {
		for (size_t i = 0; i < NPAGES; i += STRIDE)
			*(volatile uint64_t *)(mem + i * ps + (seq % 64) * 8) = seq;
		seq++;
	}
}

static void start_writer(struct target *t, int nthreads)
{
	mem = xmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	/* 4 KiB pages: soft-dirty reports a written THP whole */
	madvise(mem, NPAGES * ps, MADV_NOHUGEPAGE);
	memset(mem, 1, NPAGES * ps);
	target_start(t, nthreads, 0, sparse_writer, NULL);
}

static struct pm_range range(void)
{
	return (struct pm_range){ (uintptr_t)mem, (uintptr_t)mem + NPAGES * ps };
}

static struct pm_wtrack *track(struct pm_handle *h, uint64_t flags, int *err)
{
	PM_OPTS(pm_wtrack_opts, o, .method = PM_WT_METHOD_SOFT_DIRTY, .flags = flags);
	struct pm_range r = range();
	struct pm_wtrack *wt = NULL;

	*err = pm_wtrack_new(h, &r, 1, &o, &wt);
	return wt;
}

static void copy(pid_t pid, char *dst, uint64_t start, uint64_t end)
{
	struct iovec l = { dst + (start - (uintptr_t)mem), end - start };
	struct iovec r = { (void *)(uintptr_t)start, end - start };

	ck_assert_int_eq(process_vm_readv(pid, &l, 1, &r, 1, 0), (ssize_t)(end - start));
}

/* One round: collect-and-reset everything, copy it; the pages reported. */
static long round_copy(struct pm_wtrack *wt, pid_t pid, char *dst)
{
	struct pm_range r = range();
	struct pm_region v[NPAGES / 2]; /* room for any round: one stop per round */
	long pages = 0;

	for (uint64_t a = r.start, we; a < r.end; a = we) {
		long n = pm_wtrack_collect(wt, a, r.end, v, NPAGES / 2, PM_WT_COLLECT_RESET, &we);

		if (n < 0)
			return n;
		for (long i = 0; i < n; i++) {
			copy(pid, dst, v[i].start, v[i].end);
			pages += (long)((v[i].end - v[i].start) / ps);
		}
	}
	return pages;
}

/* In a forked copier: a PM_WT_F_STOP tracker of @pid and a copy buffer;
 * exits on failure. */
static struct pm_wtrack *child_tracker(pid_t pid, char **dst)
{
	struct pm_handle *h;
	struct pm_wtrack *wt;
	int err;

	*dst = malloc(NPAGES * ps);
	if (!*dst || pm_open(pid, NULL, &h))
		_exit(1);
	wt = track(h, PM_WT_F_STOP, &err);
	if (!wt)
		_exit(2);
	return wt;
}

/* Pages of the copy that differ from the target's memory. */
static size_t stale_pages(pid_t pid, const char *dst)
{
	char *live = malloc(NPAGES * ps);
	size_t stale = 0;

	ck_assert_ptr_nonnull(live);
	copy(pid, live, range().start, range().end);
	for (size_t i = 0; i < NPAGES; i++)
		stale += memcmp(dst + i * ps, live + i * ps, ps) != 0;
	free(live);
	return stale;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void assert_never_stopped(pid_t pid)
{
	ck_assert_int_eq(tasks_in(pid, "tT"), 0);
}

/* The incremental copy of the sparse writer, with and without the stop. */
static void converge(uint64_t flags, double *avg, uint64_t *widened, uint64_t *stop_max)
{
	enum { rounds = 30 };
	uint64_t ns[rounds];
	PM_OPTS(pm_wtrack_stats, st);
	struct target t;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	char *dst = malloc(NPAGES * ps);
	long total = 0;
	int err, s;

	ck_assert_ptr_nonnull(dst);
	start_writer(&t, 2);
	ck_assert_int_eq(pm_open(t.pid, NULL, &h), 0);
	wt = track(h, flags, &err);
	ck_assert_int_eq(err, 0);
	copy(t.pid, dst, range().start, range().end);
	for (int i = 0; i < rounds; i++) {
		long n;

		usleep(5000);
		n = round_copy(wt, t.pid, dst);
		ck_assert_int_ge(n, 0);
		total += n;
		assert_never_stopped(t.pid);
		ck_assert_int_eq(pm_wtrack_stats(wt, &st), 0);
		ns[i] = st.stop_ns_last;
	}
	qsort(ns, rounds, sizeof(ns[0]), cmp_u64);
	/* the last round on the stopped target, then compare page by page */
	kill(t.pid, SIGSTOP);
	ck_assert_int_eq(waitpid(t.pid, &s, WUNTRACED), t.pid);
	ck_assert_int_ge(round_copy(wt, t.pid, dst), 0);
	ck_assert_uint_eq(stale_pages(t.pid, dst), 0);
	/* the stop leaves the SIGSTOP in place */
	ck_assert_int_eq(tasks_in(t.pid, "T"), tasks_total(t.pid));
	ck_assert_int_eq(pm_wtrack_stats(wt, &st), 0);
	*avg = (double)total / rounds;
	*widened = st.widened;
	*stop_max = st.stop_ns_max;
	fprintf(stderr, "%s: %.1f pages reported per round (%d rounds, at most %d writable), "
			"%lu of %lu collects widened, %lu stops, median %.3f ms, max %.3f ms\n",
		flags & PM_WT_F_STOP ? "with PM_WT_F_STOP" : "without the stop", *avg, rounds,
		NPAGES / STRIDE, (unsigned long)st.widened, (unsigned long)st.collects,
		(unsigned long)st.stops, (double)ns[rounds / 2] / 1e6,
		(double)st.stop_ns_max / 1e6);
	pm_wtrack_free(wt);
	pm_close(h);
	target_kill(&t);
	free(dst);
	munmap(mem, NPAGES * ps);
}

START_TEST(stop_converges)
{
	double avg, avg_nostop;
	uint64_t widened, stop_max;

	converge(PM_WT_F_STOP, &avg, &widened, &stop_max);
	ck_assert_msg(avg <= 1.25 * NPAGES / STRIDE, "%.1f pages per round", avg);
	ck_assert_uint_eq(widened, 0);
	ck_assert_uint_gt(stop_max, 0);
	/* the same without the stop: exact at the end, reported for contrast */
	converge(0, &avg_nostop, &widened, &stop_max);
	ck_assert_uint_eq(stop_max, 0);
}
END_TEST

/* The copier SIGKILLed at random points of its rounds: the target runs on. */
START_TEST(stop_copier_killed)
{
	struct target t;
	uint64_t seed = 42;
	int held = 0;

	start_writer(&t, 8);
	for (int k = 0; k < 20; k++) {
		int ready[2], st;
		pid_t copier;
		char c;

		ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
		copier = fork();
		ck_assert_int_ge(copier, 0);
		if (copier == 0) {
			char *dst;
			struct pm_wtrack *wt = child_tracker(t.pid, &dst);

			(void)!write(ready[1], "x", 1);
			for (;;)
				if (round_copy(wt, t.pid, dst) < 0)
					_exit(3);
		}
		close(ready[1]);
		ck_assert_int_eq(read(ready[0], &c, 1), 1);
		close(ready[0]);
		usleep((useconds_t)(rnd(&seed) % 20000));
		held += tasks_in(t.pid, "t") > 0;
		kill(copier, SIGKILL);
		ck_assert_int_eq(waitpid(copier, &st, 0), copier);
		ck_assert(WIFSIGNALED(st));
		assert_never_stopped(t.pid);
	}
	fprintf(stderr, "copier killed 20 times, %d times while the target was held\n", held);
	target_kill(&t);
	munmap(mem, NPAGES * ps);
}
END_TEST

/* A debugger holds a thread: -EBUSY, nothing stopped, and once it has gone
 * the writes made meanwhile are reported. */
START_TEST(stop_traced_ebusy)
{
	struct debugger dbg;
	struct target t;
	struct pm_handle *h;
	struct pm_wtrack *wt, *wt2;
	char *dst = malloc(NPAGES * ps);
	int err;

	start_writer(&t, 2);
	ck_assert_int_eq(pm_open(t.pid, NULL, &h), 0);
	wt = track(h, PM_WT_F_STOP, &err);
	ck_assert_int_eq(err, 0);
	ck_assert_int_ge(round_copy(wt, t.pid, dst), 0);
	debugger_start(&dbg, t.pid);
	ck_assert_int_eq(round_copy(wt, t.pid, dst), -EBUSY);
	assert_never_stopped(t.pid);
	pm_wtrack_free(wt);
	wt2 = track(h, PM_WT_F_STOP, &err);
	ck_assert_int_eq(err, -EBUSY);
	ck_assert_ptr_null(wt2);
	assert_never_stopped(t.pid);
	debugger_stop(&dbg);
	pm_close(h);
	target_kill(&t);
	free(dst);
	munmap(mem, NPAGES * ps);
}
END_TEST

/* The writes made while a collect failed with -EBUSY are not lost. */
START_TEST(stop_ebusy_loses_nothing)
{
	struct debugger dbg;
	struct target t;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	char *dst = malloc(NPAGES * ps);
	int err, st;

	start_writer(&t, 2);
	ck_assert_int_eq(pm_open(t.pid, NULL, &h), 0);
	wt = track(h, PM_WT_F_STOP, &err);
	ck_assert_int_eq(err, 0);
	copy(t.pid, dst, range().start, range().end);
	ck_assert_int_ge(round_copy(wt, t.pid, dst), 0);
	debugger_start(&dbg, t.pid);
	for (int i = 0; i < 5; i++) {
		usleep(2000);
		ck_assert_int_eq(round_copy(wt, t.pid, dst), -EBUSY);
	}
	debugger_stop(&dbg);
	kill(t.pid, SIGSTOP);
	ck_assert_int_eq(waitpid(t.pid, &st, WUNTRACED), t.pid);
	ck_assert_int_ge(round_copy(wt, t.pid, dst), 0);
	ck_assert_uint_eq(stale_pages(t.pid, dst), 0);
	pm_wtrack_free(wt);
	pm_close(h);
	target_kill(&t);
	free(dst);
	munmap(mem, NPAGES * ps);
}
END_TEST

/* The target exits while it is collected: an error, never a hang, and its
 * exit status is still the caller's. */
START_TEST(stop_target_exits)
{
	for (int k = 0; k < 5; k++) {
		struct target t;
		struct pm_handle *h;
		struct pm_wtrack *wt;
		char *dst = malloc(NPAGES * ps);
		long r = 0;
		int err;

		start_writer(&t, 2);
		ck_assert_int_eq(pm_open(t.pid, NULL, &h), 0);
		wt = track(h, PM_WT_F_STOP, &err);
		ck_assert_int_eq(err, 0);
		kill(t.pid, SIGKILL);
		for (int i = 0; i < 100 && r >= 0; i++)
			r = round_copy(wt, t.pid, dst);
		ck_assert_msg(r == -ESRCH || r == -EFAULT, "collect %ld", r);
		pm_wtrack_free(wt);
		pm_close(h);
		target_kill(&t);
		free(dst);
		munmap(mem, NPAGES * ps);
	}
}
END_TEST

/* A copier without the right to trace the target: -EPERM, target untouched. */
START_TEST(stop_not_permitted)
{
	struct target t;
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP stop_not_permitted: needs root\n");
		return;
	}
	start_writer(&t, 2);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *dst;
		/* made as root, as a privileged tool would, then dropped */
		struct pm_wtrack *wt = child_tracker(t.pid, &dst);
		int err;

		if (drop_to_nobody())
			_exit(3);
		err = (int)round_copy(wt, t.pid, dst);
		_exit(err == -EPERM ? 0 : 10);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	assert_never_stopped(t.pid);
	target_kill(&t);
	munmap(mem, NPAGES * ps);
}
END_TEST

/* Arguments: works on any kernel. */
START_TEST(stop_bad_arguments)
{
	PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_METHOD_UFFD, .flags = PM_WT_F_STOP);
	PM_OPTS(pm_wtrack_opts, stop, .flags = PM_WT_F_STOP);
	char why[128] = "";
	struct pm_handle *h;
	struct pm_wtrack *wt = NULL;
	struct pm_range r;

	mem = xmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	r = range();
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &uffd, &wt), -EINVAL);
	ck_assert_int_eq(pm_wtrack_supported(h, &uffd, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &stop, &wt), -EPERM);
	ck_assert_ptr_null(wt);
	ck_assert_int_eq(pm_wtrack_supported(h, &stop, why, sizeof(why)), 0);
	ck_assert_ptr_nonnull(strstr(why, "PM_WT_F_STOP"));
	pm_close(h);
	munmap(mem, NPAGES * ps);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wtrack-stop");
	TCase *t = tcase_create("wtrack-stop");

	test_init();
	tcase_set_timeout(t, 600);
	tcase_add_test(t, stop_bad_arguments);
	if (pm_has_feature(PM_FEAT_SOFT_DIRTY) == 1) {
		tcase_add_test(t, stop_converges);
		tcase_add_test(t, stop_copier_killed);
		tcase_add_test(t, stop_traced_ebusy);
		tcase_add_test(t, stop_ebusy_loses_nothing);
		tcase_add_test(t, stop_target_exits);
		tcase_add_test(t, stop_not_permitted);
	} else {
		fprintf(stderr, "SKIP the convergence and error tests: no soft-dirty here\n");
	}
	suite_add_tcase(s, t);
	return run_suite(s);
}
