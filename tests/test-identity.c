/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A handle answers for the process it was opened on, or -ESRCH: after a
 * CLONE_VM child exits or execs, for zombies, reaped and reused pids, exec,
 * a /proc of another pid namespace, pidfd_open refused by a filter, and a
 * thread's id. */
#include "common.h"
#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *const sleep_argv[] = { "sleep", "1000", NULL };
static char *const no_env[] = { NULL };

struct vmchild {
	pid_t pid;
	int go; /* write a byte: exit (or exec) */
	bool exec;
	int go_rd;
	char *stack;
};

/* A CLONE_VM child makes only raw system calls: it shares our memory and
 * our thread's TLS, so no libc state may be touched. */
static int vm_child_main(void *arg)
{
	struct vmchild *c = arg;
	char ch;

	syscall(SYS_read, c->go_rd, &ch, 1);
	if (c->exec)
		syscall(SYS_execve, "/bin/sleep", sleep_argv, no_env);
	syscall(SYS_exit, 0);
	return 0;
}

static void vm_child_start(struct vmchild *c, bool exec)
{
	int p[2];

	ck_assert_int_eq(pipe2(p, 0), 0);
	c->exec = exec;
	c->go_rd = p[0];
	c->go = p[1];
	c->stack = xmap(NULL, 256 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	c->pid = clone(vm_child_main, c->stack + 256 * 1024, CLONE_VM | SIGCHLD, c);
	ck_assert_int_gt(c->pid, 0);
}

/* Wait until @pid runs another program than this one. */
static void wait_exec(pid_t pid)
{
	char path[64], buf[4096], self[4096];
	ssize_t m = readlink("/proc/self/exe", self, sizeof(self) - 1);

	ck_assert_int_gt(m, 0);
	self[m] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	for (int i = 0; i < 20000; i++) {
		ssize_t n = readlink(path, buf, sizeof(buf) - 1);

		if (n > 0) {
			buf[n] = '\0';
			if (strcmp(buf, self))
				return;
		}
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	ck_abort_msg("pid %d did not exec", (int)pid);
}

/* Wait until @pid is a zombie, leaving it unreaped. */
static void wait_zombie(pid_t pid)
{
	siginfo_t si;

	ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
}

static void reap(pid_t pid)
{
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}

/* The end of this process's highest VMA: the scans below cover all of it. */
static uint64_t self_top(void)
{
	struct pm_vma_list *l;
	struct pm_handle *h;
	uint64_t top;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_vmas(h, &l), 0);
	top = pm_vma_at(l, pm_vma_count(l) - 1)->end;
	pm_vma_list_free(l);
	pm_close(h);
	return top;
}

/* A one-read batch on @backend: the read's result. */
static long batch_read(struct pm_handle *h, uint64_t a, uint64_t backend)
{
	PM_OPTS(pm_batch_opts, o, .backend = backend);
	struct pm_batch *b;
	uint64_t e[16];
	long res = 0;

	ck_assert_int_eq(pm_batch_new(&o, &b), 0);
	ck_assert_int_eq(pm_batch_add_read(b, h, a, a + 16 * ps, e, NULL, &res), 0);
	ck_assert_int_eq(pm_batch_run(b), 0);
	pm_batch_free(b);
	return res;
}

/* Every call that returns data through @h says -ESRCH for [a, a + ps):
 * all are made, then all compared, so that a failure shows each answer. */
static void assert_gone(struct pm_handle *h, uint64_t a)
{
	PM_OPTS(pm_scan_opts, emu, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	PM_OPTS(pm_scan_opts, nat, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	struct pm_vma_list *l = NULL;
	struct pm_region reg[4];
	uint64_t e[16], we = 0, top = self_top();
	struct pm_usage u = { .size = sizeof(u) };
	PM_OPTS(pm_usage_opts, scan_fields, .fields = PM_USAGE_ZERO | PM_USAGE_GUARD);
	long r[8];

	r[0] = pm_read(h, a, a + ps, e, NULL, NULL);
	r[1] = pm_read(h, a, a + 16 * ps, e, NULL, NULL);
	r[2] = pm_vmas(h, &l);
	r[3] = pm_scan(h, 0, top, reg, 4, &emu, &we);
	r[4] = -ESRCH;
	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) == 1)
		r[4] = pm_scan(h, 0, top, reg, 4, &nat, &we);
	r[5] = batch_read(h, a, PM_BACKEND_SYNC);
	r[6] = batch_read(h, a, PM_BACKEND_URING);
	/* fields PAGEMAP_SCAN answers alone, where the kernel has it */
	r[7] = pm_usage(h, 0, top, &scan_fields, &u);
	ck_assert_msg(r[0] == -ESRCH && r[1] == -ESRCH && r[2] == -ESRCH && r[3] == -ESRCH &&
			      r[4] == -ESRCH && r[5] == -ESRCH && r[6] == -ESRCH && r[7] == -ESRCH,
		      "read %ld, read16 %ld, vmas %ld, emulated scan %ld, native scan %ld, "
		      "sync batch %ld, io_uring batch %ld, usage %ld",
		      r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	ck_assert_ptr_null(l);
}

static uint64_t touched_page(void)
{
	char *p = xmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	memset(p, 1, 16 * ps);
	return (uint64_t)(uintptr_t)p;
}

/* A handle on a CLONE_VM child, which sees our page @a while the child
 * lives (our memory is its memory); then the child is let go. */
static struct pm_handle *vm_child_open_and_go(struct vmchild *c, bool exec, uint64_t a)
{
	struct pm_handle *h;
	uint64_t e = 0;

	vm_child_start(c, exec);
	ck_assert_int_eq(pm_open(c->pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, a, a + ps, &e, NULL, NULL), 1);
	ck_assert(e & PM_ENTRY_PRESENT);
	ck_assert_int_eq(write(c->go, "x", 1), 1);
	return h;
}

START_TEST(clone_vm_child_exits)
{
	uint64_t a = touched_page();
	struct vmchild c;
	struct pm_handle *h = vm_child_open_and_go(&c, false, a);

	wait_zombie(c.pid);
	assert_gone(h, a);
	reap(c.pid);
	assert_gone(h, a);
	pm_close(h);
}
END_TEST

START_TEST(clone_vm_child_execs)
{
	uint64_t a = touched_page();
	struct vmchild c;
	struct pm_handle *h = vm_child_open_and_go(&c, true, a);

	wait_exec(c.pid);
	assert_gone(h, a);
	kill(c.pid, SIGKILL);
	reap(c.pid);
	pm_close(h);
}
END_TEST

static void build_nothing(void *arg, uint64_t *sh)
{
	(void)arg;
	sh[0] = (uintptr_t)sh;
}

START_TEST(zombie)
{
	struct pm_handle *h;
	struct child c;
	uint64_t a;

	child_start(&c, build_nothing, NULL);
	a = c.shared[0];
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	close(c.hold);
	wait_zombie(c.pid);
	assert_gone(h, a);
	reap(c.pid);
	assert_gone(h, a);
	pm_close(h);
	munmap(c.shared, ps * 16);
}
END_TEST

/* 128 MiB written: its last thread's exit takes a while to free it. */
static void build_big(void *arg, uint64_t *sh)
{
	size_t len = 128 << 20;
	char *p = xmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	(void)arg;
	memset(p, 1, len);
	sh[0] = (uintptr_t)p;
}

/* A process that is exiting (its mm already let go, its memory still
 * being freed, its state still running) is gone: -ESRCH, never the
 * -EPERM of a caller who may not see it. */
START_TEST(exiting)
{
	int eperm = 0, esrch = 0;

	for (int k = 0; k < 5; k++) {
		struct pm_handle *h;
		struct child c;
		uint64_t e[16];
		long r = 0;

		child_start(&c, build_big, NULL);
		ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
		kill(c.pid, SIGKILL);
		while (r >= 0)
			r = pm_read(h, c.shared[0], c.shared[0] + 16 * ps, e, NULL, NULL);
		eperm += r == -EPERM;
		esrch += r == -ESRCH;
		ck_assert_msg(r == -ESRCH || r == -EPERM, "read %ld", r);
		reap(c.pid);
		pm_close(h);
		munmap(c.shared, ps * 16);
	}
	ck_assert_msg(!eperm, "%d of 5 reads of an exiting process said -EPERM", eperm);
}
END_TEST

/* A caller that loses the right to inspect the process after opening
 * (a daemon dropping privileges) cannot have the process's identity shown
 * any more (the kernel hides the fields the check reads): -EPERM, not the
 * -ESRCH that says the process is gone. */
START_TEST(caller_drops_privileges)
{
	struct pm_handle *h;
	struct child c;
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP caller_drops_privileges: needs root\n");
		return;
	}
	child_start(&c, build_nothing, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t e;
		long r;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(3);
		r = pm_read(h, c.shared[0], c.shared[0] + ps, &e, NULL, NULL);
		_exit(r == -EPERM ? 0 : r == -ESRCH ? 4 : 5);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	pm_close(h);
	child_stop(&c);
	munmap(c.shared, ps * 16);
}
END_TEST

/* A process that takes over a pid number: clone3 with set_tid (root). */
static pid_t fork_as(pid_t want, int *hold)
{
	struct clone_args ca;
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe2(p, 0), 0);
	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)(uintptr_t)&want;
	ca.set_tid_size = 1;
	pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0) {
		char ch;

		close(p[1]);
		(void)!read(p[0], &ch, 1);
		_exit(0);
	}
	close(p[0]);
	*hold = p[1];
	return pid;
}

START_TEST(reaped_and_reused)
{
	struct pm_handle *h;
	struct child c;
	uint64_t a;
	int hold;
	pid_t again;

	child_start(&c, build_nothing, NULL);
	a = c.shared[0];
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	child_stop(&c);
	assert_gone(h, a);
	again = fork_as(c.pid, &hold);
	if (again < 0) {
		/* no clone3 set_tid here, or the number was taken at once */
		fprintf(stderr, "reaped_and_reused: pid not reused (%s)\n", strerror(errno));
	} else {
		ck_assert_int_eq(again, c.pid);
		assert_gone(h, a);
		close(hold);
		reap(again);
	}
	pm_close(h);
}
END_TEST

START_TEST(exec_after_open)
{
	struct pm_handle *h;
	uint64_t a = touched_page();
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe2(p, 0), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char ch;

		close(p[1]);
		(void)!read(p[0], &ch, 1);
		execve("/bin/sleep", sleep_argv, no_env);
		_exit(127);
	}
	close(p[0]);
	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	wait_exec(pid);
	assert_gone(h, a);
	kill(pid, SIGKILL);
	reap(pid);
	pm_close(h);
}
END_TEST

static _Atomic pid_t thread_tid;

static void *thread_main(void *arg)
{
	thread_tid = (pid_t)syscall(SYS_gettid);
	while (thread_tid)
		usleep(1000);
	return arg;
}

/* A thread's id names no process, though /proc/TID is there: a handle on
 * it would answer for the process and fail when that thread exits. */
START_TEST(thread_id_is_no_process)
{
	struct pm_handle *h = NULL;
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, thread_main, NULL), 0);
	while (!thread_tid)
		usleep(1000);
	ck_assert_int_ne(thread_tid, getpid());
	ck_assert_int_eq(pm_open(thread_tid, NULL, &h), -ESRCH);
	ck_assert_ptr_null(h);
	thread_tid = 0;
	ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

/* The identity fields of @pid's stat (see handle.c), as text. */
static void ident_text(pid_t pid, char *out, size_t cap)
{
	static const int fields[] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
	char path[64], buf[2048], *p;
	int fd, field = 3;
	size_t k = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	out[0] = '\0';
	for (char *t = strtok(p + 2, " "); t && k < 10; t = strtok(NULL, " "), field++)
		if (field == fields[k]) {
			snprintf(out + strlen(out), cap - strlen(out), "%s ", t);
			k++;
		}
}

/* --exec-target: say so on fd 4, then exec this binary again with the
 * same file name, arguments and environment at a byte on fd 3. */
static int exec_target(char **argv)
{
	extern char **environ;
	char c;

	if (write(4, "R", 1) != 1)
		return 1;
	/* the same file name too: the kernel copies it to the stack */
	if (read(3, &c, 1) == 1)
		execve(argv[0], argv, environ);
	return 0;
}

/* A process that execs its own binary again, same arguments and
 * environment, address-space randomisation off: stat's identity fields
 * read the same before and after, and only the address space the
 * handle's files were opened on being gone can tell the exec. Before,
 * pagemap's EOF read as the top of the address space (pm_read returned
 * zeroed entries), and a maps file opened after the exec listed the new
 * image. */
START_TEST(exec_same_image_without_aslr)
{
	char self[4096], id1[512], id2[512], c;
	char *av[] = { self, "--exec-target", NULL }, *ev[] = { "PM_TEST=1", NULL };
	ssize_t m = readlink("/proc/self/exe", self, sizeof(self) - 1);
	struct pm_handle *h;
	int cmd[2], ack[2];
	pid_t pid;

	ck_assert_int_gt(m, 0);
	self[m] = '\0';
	ck_assert_int_eq(pipe2(cmd, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(ack, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* dup2 leaves 3 and 4 open across exec */
		if (personality(ADDR_NO_RANDOMIZE) < 0 || dup2(cmd[0], 3) != 3 ||
		    dup2(ack[1], 4) != 4)
			_exit(126);
		execve(self, av, ev);
		_exit(127);
	}
	close(cmd[0]);
	close(ack[1]);
	ck_assert_int_eq(read(ack[0], &c, 1), 1);
	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	ident_text(pid, id1, sizeof(id1));
	ck_assert_int_eq(write(cmd[1], "e", 1), 1);
	ck_assert_int_eq(read(ack[0], &c, 1), 1); /* the new image runs */
	ident_text(pid, id2, sizeof(id2));
	/* else the case is not the one meant (the check alone tells it) */
	ck_assert_str_eq(id1, id2);
	assert_gone(h, touched_page());
	close(cmd[1]);
	close(ack[0]);
	kill(pid, SIGKILL);
	reap(pid);
	pm_close(h);
}
END_TEST

/* Run @fn in a forked child whose pidfd_open answers EPERM; the child's
 * exit status is the test's verdict. */
static void under_pidfd_eperm(int (*fn)(void))
{
	int nrs[] = { SYS_pidfd_open }, st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (sandbox_filter(nrs, 1, SECCOMP_RET_ERRNO | EPERM))
			_exit(90);
		if (syscall(SYS_pidfd_open, getpid(), 0) != -1 || errno != EPERM)
			_exit(91);
		_exit(fn());
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}

/* 0 if a handle on @pid reads the page at @a present, else a code. */
static int reads_present(pid_t pid, uint64_t a)
{
	struct pm_handle *h;
	uint64_t e = 0;
	int r = pm_open(pid, NULL, &h);

	if (r)
		return 10 + (-r & 0x3f);
	if (pm_read(h, a, a + ps, &e, NULL, NULL) != 1)
		r = 2;
	else if (!(e & PM_ENTRY_PRESENT))
		r = 3;
	pm_close(h);
	return r;
}

static int pidfd_eperm_child(void)
{
	struct child c;
	int r;

	r = reads_present(0, touched_page());
	if (r)
		return r;
	child_start(&c, build_nothing, NULL);
	r = reads_present(c.pid, c.shared[0]);
	child_stop(&c);
	return r;
}

START_TEST(pidfd_open_refused)
{
	under_pidfd_eperm(pidfd_eperm_child);
}
END_TEST

/* ---- inside `unshare --pid --fork`, with the old /proc ---- */

#define FIXED_A 0x5a5a00000000ULL

static int foreign_proc_refused(void)
{
	struct pm_handle *h;
	int r = pm_open(0, NULL, &h);

	if (r == 0)
		pm_close(h);
	return r == -EXDEV ? 0 : 20;
}

/* In a new pid namespace we are pid 1 and our child pid 2; /proc counts
 * as the namespace above does, where 1 is init and 2 kthreadd. */
static int inner_main(void)
{
	char *p = mmap((void *)FIXED_A, ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	int r, st, go[2];
	pid_t pid;

	if (p == MAP_FAILED || pipe2(go, 0))
		return 4;
	p[0] = 1;
	if (getpid() != 1)
		return 5;
	r = reads_present(0, FIXED_A);
	if (!r)
		r = reads_present(getpid(), FIXED_A);
	if (r)
		return r;
	/* (no check assertions out here: this runs outside the suite) */
	pid = fork();
	if (pid == 0) {
		char ch;

		p[0] = 2;
		close(go[1]);
		(void)!read(go[0], &ch, 1);
		_exit(0);
	}
	if (pid < 0)
		return 7;
	r = reads_present(pid, FIXED_A);
	close(go[1]);
	if (waitpid(pid, &st, 0) != pid || r)
		return 30 + r;
	/* a thread's id, which only the pidfd can translate here: no process */
	{
		struct pm_handle *h = NULL;
		pthread_t t;

		if (pthread_create(&t, NULL, thread_main, NULL))
			return 8;
		while (!thread_tid)
			usleep(1000);
		r = pm_open(thread_tid, NULL, &h);
		thread_tid = 0;
		pthread_join(t, NULL);
		if (r != -ESRCH)
			return 40 + (-r & 0x3f);
	}
	/* without a pidfd nothing proves which process /proc/N is */
	pid = fork();
	if (pid == 0) {
		int nrs[] = { SYS_pidfd_open };

		if (sandbox_filter(nrs, 1, SECCOMP_RET_ERRNO | EPERM))
			_exit(90);
		_exit(foreign_proc_refused());
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 6;
	return WEXITSTATUS(st);
}

START_TEST(pid_namespace_without_proc)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int st;
	pid_t pid;

	ck_assert_int_gt(n, 0);
	self[n] = '\0';
	if (geteuid() != 0) {
		fprintf(stderr, "pid_namespace_without_proc: needs root for unshare --pid\n");
		return;
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* LeakSanitizer finds the threads to stop through /proc/<its pid>,
		 * which in there is another process: no leak check inside */
		char asan[512];

		snprintf(asan, sizeof(asan), "%s:detect_leaks=0",
			 getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "");
		setenv("ASAN_OPTIONS", asan, 1);
		execlp("unshare", "unshare", "--pid", "--fork", self, "--inner-ns", (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "inner status %#x", st);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s = suite_create("identity");
	TCase *tc = tcase_create("identity");

	if (argc == 2 && !strcmp(argv[1], "--exec-target"))
		return exec_target(argv);
	test_init();
	if (argc == 2 && !strcmp(argv[1], "--inner-ns"))
		return inner_main();
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, clone_vm_child_exits);
	tcase_add_test(tc, clone_vm_child_execs);
	tcase_add_test(tc, zombie);
	tcase_add_test(tc, exiting);
	tcase_add_test(tc, caller_drops_privileges);
	tcase_add_test(tc, reaped_and_reused);
	tcase_add_test(tc, exec_after_open);
	tcase_add_test(tc, exec_same_image_without_aslr);
	tcase_add_test(tc, pidfd_open_refused);
	tcase_add_test(tc, thread_id_is_no_process);
	tcase_add_test(tc, pid_namespace_without_proc);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
