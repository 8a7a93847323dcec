/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guard fails closed where it cannot make its token complete:
 *   - another process's zap counts itself just after clearing its PMD; the
 *     closing token waits for that with membarrier(MEMBARRIER_CMD_GLOBAL).
 *     Refused (here by a seccomp filter, as nohz_full or a sandbox would),
 *     a read of another process is not certified unless it is stopped or
 *     seen asleep with one thread;
 *   - a token without /proc/vmstat's THP events would miss PMD splits: a
 *     first open that fails (no free fd) fails the read, and a later read
 *     opens it.
 * Guarded reads with PM_READ_F_SNAPSHOT, so that this runs on any kernel.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "target.h"

#define PAGES 64

static void build(void *arg, uint64_t *shared)
{
	char *p = xmap(NULL, PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	(void)arg;
	for (size_t i = 0; i < PAGES; i += 2)
		p[i * ps] = 1;
	shared[0] = (uintptr_t)p;
}

/* membarrier fails with ENOSYS in this (forked) test process from now on. */
static void refuse_membarrier(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
	ck_assert_int_eq(syscall(SYS_membarrier, 0, 0), -1);
}

/* A child that lays out PAGES pages, says where, then spins (always
 * running: it could be inside a zap whenever it is looked at). */
static pid_t spinner(uint64_t *va)
{
	int fd[2];
	pid_t pid;

	ck_assert_int_eq(pipe(fd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t shared[1];

		build(NULL, shared);
		(void)!write(fd[1], shared, sizeof(shared));
		for (;;)
			__asm__ volatile("" ::: "memory");
	}
	ck_assert_int_eq(read(fd[0], va, sizeof(*va)), (ssize_t)sizeof(*va));
	close(fd[0]);
	close(fd[1]);
	return pid;
}

START_TEST(other_process_without_wait_not_certified)
{
	static uint64_t buf[PAGES];
	struct pm_range unc[4];
	struct pm_handle *h;
	uint64_t va;
	pid_t pid = spinner(&va);
	long n;

	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	{
		PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_SNAPSHOT);

		/* the wait is there: a quiescent target is certified */
		ck_assert_int_eq(pm_read(h, va, va + PAGES * ps, buf, &ro, NULL), PAGES);
	}
	refuse_membarrier();
	{
		PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_SNAPSHOT, .max_retries = 2);

		n = pm_read(h, va, va + PAGES * ps, buf, &ro, NULL);
		ck_assert_msg(n == -EAGAIN, "read certified without the wait: %ld", n);
	}
	{
		PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_SNAPSHOT | PM_READ_F_BEST_EFFORT,
			.max_retries = 2);
		PM_OPTS(pm_read_info, info, .uncertain = (uintptr_t)unc, .uncertain_cap = 4);

		n = pm_read(h, va, va + PAGES * ps, buf, &ro, &info);
		ck_assert_int_eq(n, PAGES);
		ck_assert(info.flags & PM_READ_INFO_UNSTABLE);
		ck_assert_uint_eq(info.uncertain_count, 1);
		ck_assert_uint_eq(unc[0].start, va);
		ck_assert_uint_eq(unc[0].end, va + PAGES * ps);
	}
	{
		/* stopped, it has no change of its own in flight */
		PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_SNAPSHOT | PM_READ_F_STOP);
		PM_OPTS(pm_read_info, info);

		n = pm_read(h, va, va + PAGES * ps, buf, &ro, &info);
		if (n != -EPERM) {
			ck_assert_int_eq(n, PAGES);
			ck_assert(!(info.flags & PM_READ_INFO_UNSTABLE));
		}
	}
	pm_close(h);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
END_TEST

START_TEST(other_process_asleep_needs_no_wait)
{
	static uint64_t buf[PAGES];
	PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_SNAPSHOT);
	struct child c;
	struct pm_handle *h;

	/* one thread, waiting to be released: nothing of its own in flight */
	child_start(&c, build, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	refuse_membarrier();
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[0] + PAGES * ps, buf, &ro, NULL), PAGES);
	pm_close(h);
	child_stop(&c);
}
END_TEST

static void *block(void *arg)
{
	char ch;

	(void)!read(*(int *)arg, &ch, 1);
	return NULL;
}

/* A child that lays out PAGES pages, says where, and waits in four
 * threads (none running). */
static pid_t sleepers(uint64_t *va, int *release)
{
	int fd[2], hold[2];
	pid_t pid;

	ck_assert_int_eq(pipe(fd), 0);
	ck_assert_int_eq(pipe(hold), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t shared[1];
		pthread_t th[3];

		close(hold[1]);
		build(NULL, shared);
		for (int i = 0; i < 3; i++)
			pthread_create(&th[i], NULL, block, &hold[0]);
		(void)!write(fd[1], shared, sizeof(shared));
		block(&hold[0]);
		_exit(0);
	}
	close(hold[0]);
	ck_assert_int_eq(read(fd[0], va, sizeof(*va)), (ssize_t)sizeof(*va));
	close(fd[0]);
	close(fd[1]);
	*release = hold[1];
	return pid;
}

START_TEST(other_process_threads_asleep_need_no_wait)
{
	static uint64_t buf[PAGES];
	PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_SNAPSHOT);
	struct pm_handle *h;
	uint64_t va;
	int release;
	pid_t pid = sleepers(&va, &release);

	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	refuse_membarrier();
	/* let the three threads reach their read */
	for (int i = 0; i < 1000 && tasks_in(pid, "S") < 4; i++)
		usleep(1000);
	ck_assert_int_eq(pm_read(h, va, va + PAGES * ps, buf, &ro, NULL), PAGES);
	pm_close(h);
	close(release);
	waitpid(pid, NULL, 0);
}
END_TEST

START_TEST(self_certified_without_membarrier)
{
	static uint64_t buf[PAGES];
	char *p = xmap(NULL, PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_SNAPSHOT);
	struct pm_handle *h;

	memset(p, 1, PAGES * ps);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	refuse_membarrier();
	/* a self handle waits by taking its own mmap lock */
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + PAGES * ps, buf, &ro, NULL),
			 PAGES);
	pm_close(h);
}
END_TEST

static bool vmstat_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	bool found = false;

	ck_assert_ptr_nonnull(d);
	while (!found && (e = readdir(d)) != NULL) {
		char path[300], target[64];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = !strcmp(target, "/proc/vmstat");
		}
	}
	closedir(d);
	return found;
}

START_TEST(vmstat_open_failure_fails_then_retried)
{
	static uint64_t buf[PAGES];
	char *p = xmap(NULL, PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t va = (uintptr_t)p;
	PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_SNAPSHOT);
	PM_OPTS(pm_kernel_info, ki);
	struct rlimit old, none;
	struct pm_handle *h;
	int lowest;
	long n;

	memset(p, 1, PAGES * ps);
	/* every feature probed, no token taken yet in this process */
	ck_assert_int_eq(pm_kernel_probe(&ki), 0);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_msg(!vmstat_open(), "/proc/vmstat already open: the test cannot run");
	lowest = fcntl(0, F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(lowest, 0);
	close(lowest);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	none = old;
	none.rlim_cur = (rlim_t)lowest; /* no fd can be opened */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
	n = pm_read(h, va, va + PAGES * ps, buf, &ro, NULL);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_msg(n == -EMFILE, "read without /proc/vmstat: %ld", n);
	/* the next read opens it: its tokens have the THP events again */
	ck_assert_int_eq(pm_read(h, va, va + PAGES * ps, buf, &ro, NULL), PAGES);
	ck_assert(vmstat_open());
	pm_close(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("guard");
	TCase *t = tcase_create("guard");

	test_init();
	tcase_set_timeout(t, 120);
	tcase_add_test(t, other_process_without_wait_not_certified);
	tcase_add_test(t, other_process_asleep_needs_no_wait);
	tcase_add_test(t, other_process_threads_asleep_need_no_wait);
	tcase_add_test(t, self_certified_without_membarrier);
	tcase_add_test(t, vmstat_open_failure_fails_then_retried);
	suite_add_tcase(s, t);
	return run_suite(s);
}
