/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Handles: self, children, pidfds, pid reuse, permissions, fork. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void build_nothing(void *arg, uint64_t *sh)
{
}

START_TEST(open_self_and_child)
{
	struct pm_handle *h;
	struct child c;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_pid(h), getpid());
	pm_close(h);
	ck_assert_int_eq(pm_open(getpid(), NULL, &h), 0);
	ck_assert_int_eq(pm_pid(h), getpid());
	pm_close(h);
	child_start(&c, build_nothing, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_pid(h), c.pid);
	pm_close(h);
	child_stop(&c);
	pm_close(NULL);
}
END_TEST

START_TEST(open_pidfd)
{
	struct pm_handle *h;
	struct child c;
	int pidfd, devnull;

	child_start(&c, build_nothing, NULL);
	pidfd = (int)syscall(SYS_pidfd_open, c.pid, 0);
	ck_assert_int_ge(pidfd, 0);
	ck_assert_int_eq(pm_open_pidfd(pidfd, NULL, &h), 0);
	ck_assert_int_eq(pm_pid(h), c.pid);
	/* the handle keeps its own duplicate */
	close(pidfd);
	{
		uint64_t e;
		uint64_t a = c.shared[0] = (uintptr_t)c.shared;

		ck_assert_int_eq(pm_read(h, a, a + ps, &e, NULL, NULL), 1);
	}
	pm_close(h);
	pidfd = (int)syscall(SYS_pidfd_open, c.pid, 0);
	child_stop(&c);
	/* the process behind the pidfd was reaped: never a new process */
	ck_assert_int_eq(pm_open_pidfd(pidfd, NULL, &h), -ESRCH);
	close(pidfd);
	ck_assert_int_eq(pm_open_pidfd(-1, NULL, &h), -EBADF);
	ck_assert_int_eq(pm_open_pidfd(1000000, NULL, &h), -EBADF);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(pm_open_pidfd(devnull, NULL, &h), -EBADF);
	close(devnull);
}
END_TEST

START_TEST(open_missing_pid)
{
	struct pm_handle *h = (struct pm_handle *)0x1;
	struct child c;
	pid_t gone;

	child_start(&c, build_nothing, NULL);
	gone = c.pid;
	child_stop(&c);
	ck_assert_int_eq(pm_open(gone, NULL, &h), -ESRCH);
	ck_assert_int_eq(errno, ESRCH);
	ck_assert_ptr_eq(h, (struct pm_handle *)0x1);
	ck_assert_int_eq(pm_open(-5, NULL, &h), -EINVAL);
	ck_assert_int_eq(pm_open(0, NULL, NULL), -EINVAL);
}
END_TEST

/* Without privileges, pid 1 is not ours to read: the kernel's answer. */
START_TEST(open_pid1_unprivileged)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct pm_handle *h;
		int r;

		if (getuid() == 0 && (setgid(65534) || setuid(65534)))
			_exit(10);
		r = pm_open(1, NULL, &h);
		_exit(r == -EACCES || r == -EPERM ? 0 : 20);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exit %d", WEXITSTATUS(st));
}
END_TEST

/* A self handle used in a fork()ed child describes the child. */
START_TEST(self_handle_follows_fork)
{
	struct pm_handle *h;
	uint64_t e;
	pid_t pid;
	int st;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* a mapping only the child has */
		char *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct pm_vma_list *l;
		bool found = false;

		if (p == MAP_FAILED)
			_exit(10);
		p[0] = 1;
		if (pm_pid(h) != getpid())
			_exit(11);
		if (pm_read(h, (uintptr_t)p, (uintptr_t)p + ps, &e, NULL, NULL) != 1 ||
		    !pm_entry_present(e) || !pm_entry_exclusive(e))
			_exit(12);
		if (pm_vmas(h, &l))
			_exit(13);
		for (size_t i = 0; i < pm_vma_count(l); i++)
			found |= pm_vma_at(l, i)->start <= (uintptr_t)p &&
				 pm_vma_at(l, i)->end > (uintptr_t)p;
		pm_vma_list_free(l);
		_exit(found ? 0 : 14);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exit %d", WEXITSTATUS(st));
	ck_assert_int_eq(pm_pid(h), getpid());
	{
		uint64_t a = (uintptr_t)&e & ~(ps - 1);

		ck_assert_int_eq(pm_read(h, a, a + ps, &e, NULL, NULL), 1);
		ck_assert(pm_entry_present(e));
	}
	pm_close(h);
}
END_TEST

/* A handle on a child that execs: the old mm is gone, so -ESRCH. */
START_TEST(exec_ends_handle)
{
	struct pm_handle *h;
	int go[2];
	pid_t pid;
	char c = 0;
	uint64_t e;

	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(go[1]);
		(void)!read(go[0], &c, 1);
		execl("/bin/sleep", "sleep", "5", (char *)NULL);
		_exit(1);
	}
	close(go[0]);
	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	close(go[1]);
	/* wait until the exec happened */
	for (int i = 0; i < 500; i++) {
		char buf[64] = "";
		char path[64];
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		(void)!read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (!strncmp(buf, "sleep", 5))
			break;
		usleep(10000);
	}
	ck_assert_int_eq(pm_read(h, ps * 16, ps * 17, &e, NULL, NULL), -ESRCH);
	pm_close(h);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
END_TEST

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

/* A caller with a fast timer (a profiler's SIGPROF, say): its handler
 * interrupting pm_open's system calls never fails the open (EINTR). */
START_TEST(open_under_signals)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	struct itimerval it = { .it_interval = { 0, 200 }, .it_value = { 0, 200 } };
	struct itimerval off = { 0 };
	struct child c;
	int failed = 0, last = 0;

	child_start(&c, build_nothing, NULL);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	for (int i = 0; i < 3000; i++) {
		struct pm_handle *h;
		int r = pm_open(c.pid, NULL, &h);

		if (r) {
			failed++;
			last = r;
		} else {
			pm_close(h);
		}
	}
	ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	ck_assert_msg(ticks > 100, "only %d signals arrived", (int)ticks);
	ck_assert_msg(!failed, "%d of 3000 pm_open failed, the last with %d", failed, last);
	child_stop(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("open");
	TCase *t = tcase_create("open");

	test_init();
	tcase_add_test(t, open_self_and_child);
	tcase_add_test(t, open_pidfd);
	tcase_add_test(t, open_missing_pid);
	tcase_add_test(t, open_pid1_unprivileged);
	tcase_add_test(t, self_handle_follows_fork);
	tcase_add_test(t, exec_ends_handle);
	tcase_add_test(t, open_under_signals);
	suite_add_tcase(s, t);
	return run_suite(s);
}
