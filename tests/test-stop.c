/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm__stop_begin/end (src/stop.c) on real processes: every thread stopped,
 * threads created during the stop caught, job control and signals kept,
 * the target resumed on every path, including its stopper being killed.
 */
#include "common.h"
#include "stop.h"
#include "target.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Wait up to 2 s for @cond; the target's threads run on shared CPUs. */
#define EVENTUALLY(cond)                                            \
	({                                                          \
		bool ok_ = false;                                   \
		for (int i_ = 0; i_ < 2000 && !(ok_ = (cond)); i_++) \
			usleep(1000);                               \
		ok_;                                                \
	})

static struct pm_handle *open_target(pid_t pid)
{
	struct pm_handle *h;

	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	return h;
}

/* All threads in a ptrace stop, and none moves. */
static void assert_stopped(const struct target *t)
{
	uint64_t p0 = target_progress(t);

	ck_assert_int_eq(tasks_in(t->pid, "t"), tasks_total(t->pid));
	usleep(20000);
	ck_assert_uint_eq(target_progress(t), p0);
}

/* No thread in a ptrace stop, and they run. */
static void assert_running(const struct target *t)
{
	uint64_t p0 = target_progress(t);

	ck_assert_int_eq(tasks_in(t->pid, "t"), 0);
	ck_assert_int_eq(tasks_in(t->pid, "T"), 0);
	ck_assert(EVENTUALLY(target_progress(t) > p0));
}

START_TEST(stop_every_thread)
{
	const int nthreads[] = { 0, 8, 64 };

	for (size_t k = 0; k < sizeof(nthreads) / sizeof(nthreads[0]); k++) {
		struct target t;
		struct pm_handle *h;

		target_start(&t, nthreads[k], 0, NULL, NULL);
		h = open_target(t.pid);
		for (int round = 0; round < 10; round++) {
			struct pm__stop *s;

			ck_assert_int_eq(pm__stop_begin(h, &s), 0);
			ck_assert_int_eq(tasks_total(t.pid), nthreads[k] + 1);
			assert_stopped(&t);
			ck_assert_int_eq(pm__stop_end(s), 0);
			assert_running(&t);
		}
		pm_close(h);
		target_kill(&t);
	}
}
END_TEST

/* Threads keep being created and ending: the stop still holds them all. */
START_TEST(stop_catches_new_threads)
{
	struct target t;
	struct pm_handle *h;

	target_start(&t, 4, TARGET_CHURN, NULL, NULL);
	h = open_target(t.pid);
	for (int round = 0; round < 40; round++) {
		struct pm__stop *s;
		uint64_t spawned;
		int n;

		ck_assert_int_eq(pm__stop_begin(h, &s), 0);
		n = tasks_total(t.pid);
		spawned = atomic_load(&t.sh->spawned);
		assert_stopped(&t);
		/* none is created while stopped; one caught in its exit (its
		 * exit collected like a stop) may finish leaving */
		ck_assert_int_le(tasks_total(t.pid), n);
		ck_assert_uint_eq(atomic_load(&t.sh->spawned), spawned);
		ck_assert_int_eq(pm__stop_end(s), 0);
		ck_assert(EVENTUALLY(atomic_load(&t.sh->spawned) > spawned));
		ck_assert_int_eq(tasks_in(t.pid, "t"), 0);
	}
	pm_close(h);
	target_kill(&t);
}
END_TEST

/* A SIGSTOP sent during the stop leaves the process stopped after it. */
START_TEST(stop_keeps_sigstop)
{
	struct target t;
	struct pm_handle *h;
	struct pm__stop *s;
	uint64_t p;

	target_start(&t, 8, 0, NULL, NULL);
	h = open_target(t.pid);
	ck_assert_int_eq(pm__stop_begin(h, &s), 0);
	kill(t.pid, SIGSTOP);
	ck_assert_int_eq(pm__stop_end(s), 0);
	ck_assert(EVENTUALLY(tasks_in(t.pid, "T") == 9));
	p = target_progress(&t);
	usleep(20000);
	ck_assert_uint_eq(target_progress(&t), p);
	ck_assert_int_eq(tasks_in(t.pid, "t"), 0);

	/* a stop of a stopped process leaves it stopped */
	ck_assert_int_eq(pm__stop_begin(h, &s), 0);
	ck_assert_int_eq(tasks_in(t.pid, "t"), 9);
	ck_assert_int_eq(pm__stop_end(s), 0);
	ck_assert(EVENTUALLY(tasks_in(t.pid, "T") == 9));
	ck_assert_uint_eq(target_progress(&t), p);

	kill(t.pid, SIGCONT);
	assert_running(&t);
	pm_close(h);
	target_kill(&t);
}
END_TEST

/* A signal sent during the stop is delivered after it, once. */
START_TEST(stop_delivers_signals)
{
	struct target t;
	struct pm_handle *h;

	target_start(&t, 8, 0, NULL, NULL);
	h = open_target(t.pid);
	for (uint64_t i = 1; i <= 20; i++) {
		struct pm__stop *s;

		ck_assert_int_eq(pm__stop_begin(h, &s), 0);
		kill(t.pid, SIGUSR1);
		usleep(1000);
		ck_assert_uint_eq(atomic_load(&t.sh->usr1), i - 1);
		ck_assert_int_eq(pm__stop_end(s), 0);
		ck_assert(EVENTUALLY(atomic_load(&t.sh->usr1) == i));
	}
	/* signals racing with the stop itself */
	for (uint64_t i = 21; i <= 100; i++) {
		struct pm__stop *s;

		kill(t.pid, SIGUSR1);
		ck_assert_int_eq(pm__stop_begin(h, &s), 0);
		ck_assert_int_eq(pm__stop_end(s), 0);
		ck_assert(EVENTUALLY(atomic_load(&t.sh->usr1) == i));
	}
	assert_running(&t);
	pm_close(h);
	target_kill(&t);
}
END_TEST

START_TEST(stop_self_eperm)
{
	struct pm_handle *h;
	struct pm__stop *s = (void *)1;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm__stop_begin(h, &s), -EPERM);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(pm__stop_end(NULL), 0);
	pm_close(h);
}
END_TEST

/* A target a debugger (a real tracer process) holds: -EBUSY, and the
 * debugger's hold is untouched. */
START_TEST(stop_already_traced)
{
	struct debugger dbg;
	struct target t;
	struct pm_handle *h;
	struct pm__stop *s;

	target_start(&t, 4, 0, NULL, NULL);
	/* the last thread only: the stop seizes the others first, then meets
	 * it, and must undo them all */
	debugger_start(&dbg, last_thread(t.pid));
	h = open_target(t.pid);
	s = (void *)1;
	ck_assert_int_eq(pm__stop_begin(h, &s), -EBUSY);
	ck_assert_ptr_null(s);
	assert_running(&t);
	debugger_stop(&dbg);
	/* and once the debugger is gone, the stop works */
	ck_assert_int_eq(pm__stop_begin(h, &s), 0);
	assert_stopped(&t);
	ck_assert_int_eq(pm__stop_end(s), 0);
	assert_running(&t);
	pm_close(h);
	target_kill(&t);
}
END_TEST

/* Killed while stopped: the stop ends cleanly and the exit status stays
 * the caller's (target_kill reaps it and checks it). */
START_TEST(stop_target_killed)
{
	struct target t;
	struct pm_handle *h;
	struct pm__stop *s;
	int st;

	target_start(&t, 8, 0, NULL, NULL);
	h = open_target(t.pid);
	ck_assert_int_eq(pm__stop_begin(h, &s), 0);
	kill(t.pid, SIGKILL);
	ck_assert_int_eq(pm__stop_end(s), 0);
	ck_assert_int_eq(waitpid(t.pid, &st, 0), t.pid);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	ck_assert_int_eq(pm__stop_begin(h, &s), -ESRCH);
	ck_assert_ptr_null(s);
	pm_close(h);
}
END_TEST

static void *spin(void *arg)
{
	for (;;)
		*(volatile char *)&arg = 0;
	return NULL;
}

/* A target that exits on its own while being stopped: each stop either
 * holds every thread or says -ESRCH, never hangs, and the exit status is
 * still the caller's to reap. */
START_TEST(stop_target_exits)
{
	for (int k = 0; k < 10; k++) {
		struct pm_handle *h;
		int st, r = 0, n = 0, go[2];
		pid_t pid;
		char c = 0;

		/* The child exits a few ms after the handle is open, not after
		 * it started: a slow VM may take longer than that to open. */
		ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			pthread_t th;

			close(go[1]);
			for (int i = 0; i < 4; i++)
				if (pthread_create(&th, NULL, spin, NULL))
					_exit(1);
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			usleep(2000 + 1000 * (useconds_t)k);
			_exit(7);
		}
		close(go[0]);
		h = open_target(pid);
		ck_assert_int_eq(write(go[1], &c, 1), 1);
		close(go[1]);
		while (r == 0) {
			struct pm__stop *s;

			r = pm__stop_begin(h, &s);
			ck_assert_msg(r == 0 || r == -ESRCH, "begin %d", r);
			if (!r) {
				n++;
				ck_assert_int_eq(pm__stop_end(s), 0);
			}
		}
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 7, "status %#x after %d stops",
			      st, n);
		pm_close(h);
	}
}
END_TEST

/* The stopper killed mid-stop: the kernel resumes the target. */
START_TEST(stop_stopper_killed)
{
	for (int k = 0; k < 6; k++) {
		int ready[2];
		struct target t;
		pid_t copier;
		char c;
		int st;

		target_start(&t, 8, k % 2 ? TARGET_CHURN : 0, NULL, NULL);
		ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
		copier = fork();
		ck_assert_int_ge(copier, 0);
		if (copier == 0) {
			struct pm_handle *h;
			struct pm__stop *s;

			if (pm_open(t.pid, NULL, &h) || pm__stop_begin(h, &s))
				_exit(1);
			(void)!write(ready[1], "x", 1);
			pause();
			_exit(0);
		}
		close(ready[1]);
		ck_assert_int_eq(read(ready[0], &c, 1), 1);
		close(ready[0]);
		assert_stopped(&t);
		kill(copier, SIGKILL);
		ck_assert_int_eq(waitpid(copier, &st, 0), copier);
		/* the tracer's exit detached everything before it was reaped */
		ck_assert_int_eq(tasks_in(t.pid, "t"), 0);
		assert_running(&t);
		target_kill(&t);
	}
}
END_TEST

/* A caller without the right to trace the target: -EPERM, target untouched. */
START_TEST(stop_not_permitted)
{
	struct target t;
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP stop_not_permitted: needs root\n");
		return;
	}
	target_start(&t, 4, 0, NULL, NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct pm_handle *h;
		struct pm__stop *s = (void *)1;
		int r;

		/* the handle is opened as root, as a privileged tool would,
		 * then the privileges are dropped */
		if (pm_open(t.pid, NULL, &h))
			_exit(2);
		if (drop_to_nobody())
			_exit(3);
		r = pm__stop_begin(h, &s);
		_exit(r == -EPERM && !s ? 0 : 10 + (r < 0 ? -r : r));
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	assert_running(&t);
	target_kill(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stop");
	TCase *t = tcase_create("stop");

	char scope[8] = "";
	int fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);

	test_init();
	if (fd >= 0) {
		(void)!read(fd, scope, sizeof(scope) - 1);
		close(fd);
	}
	fprintf(stderr, "Yama ptrace_scope: %s\n", fd >= 0 ? scope : "no Yama\n");
	tcase_set_timeout(t, 300);
	tcase_add_test(t, stop_every_thread);
	tcase_add_test(t, stop_catches_new_threads);
	tcase_add_test(t, stop_keeps_sigstop);
	tcase_add_test(t, stop_delivers_signals);
	tcase_add_test(t, stop_self_eperm);
	tcase_add_test(t, stop_already_traced);
	tcase_add_test(t, stop_target_killed);
	tcase_add_test(t, stop_target_exits);
	tcase_add_test(t, stop_stopper_killed);
	tcase_add_test(t, stop_not_permitted);
	suite_add_tcase(s, t);
	return run_suite(s);
}
