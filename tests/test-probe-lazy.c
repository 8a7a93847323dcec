/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Kernel features are probed at the first use that needs them: no process
 * is created behind a read, a probe that failed for want of an fd is not
 * remembered, and only the scan categories the library knows are kept. */
#include "common.h"
#include "internal.h"
#include "compat/uapi.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void build_nothing(void *arg, uint64_t *sh)
{
	(void)arg;
	sh[0] = (uintptr_t)sh;
}

/* Status of a forked child running @fn(@arg), which must not have probed
 * anything before (each test runs in a fresh process). */
static int in_child(int (*fn)(void *), void *arg)
{
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fn(arg));
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return st;
}

/* The calls a daemon makes, on itself and on @target: 0, or the step. */
static int daemon_calls(pid_t target, uint64_t a)
{
	PM_OPTS(pm_scan_opts, so, .category_mask = PM_CAT_PRESENT, .return_mask = PM_CAT_PRESENT);
	PM_OPTS(pm_scan_opts, eo, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	PM_OPTS(pm_batch_opts, bo, .backend = PM_BACKEND_AUTO);
	struct pm_vma_list *l;
	struct pm_handle *h, *t;
	struct pm_region reg[8];
	struct pm_batch *b;
	uint64_t e[4];
	long res = 0;

	if (pm_open(0, NULL, &h) || pm_read(h, a, a + ps, e, NULL, NULL) != 1)
		return 1;
	if (pm_open(target, NULL, &t) || pm_read(t, a, a + 4 * ps, e, NULL, NULL) != 4)
		return 2;
	if (pm_vmas(t, &l))
		return 3;
	pm_vma_list_free(l);
	if (pm_scan(t, a, a + ps, reg, 8, &so, NULL) != 1 ||
	    pm_scan(t, a, a + ps, reg, 8, &eo, NULL) != 1)
		return 4;
	for (int i = 0; i < 3; i++) {
		bo.backend = (uint64_t)i;
		if (pm_batch_new(&bo, &b) || pm_batch_add_read(b, t, a, a + ps, e, NULL, &res) ||
		    pm_batch_run(b) || res != 1)
			return 5;
		pm_batch_free(b);
	}
	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) < 0 || pm_has_feature(PM_FEAT_IO_URING) < 0)
		return 6;
	pm_close(t);
	pm_close(h);
	return 0;
}

struct target {
	pid_t pid;
	uint64_t a;
};

static int sandboxed(void *arg)
{
	const struct target *tg = arg;
	int nrs[] = { SYS_clone, SYS_clone3, SYS_fork, SYS_vfork };

	if (sandbox_filter(nrs, 4, SECCOMP_RET_KILL_PROCESS))
		return 90;
	return daemon_calls(tg->pid, tg->a);
}

START_TEST(no_process_behind_a_read)
{
	struct target tg;
	struct child c;
	int st;

	child_start(&c, build_nothing, NULL);
	tg.pid = c.pid;
	tg.a = c.shared[0];
	/* systemd's SystemCallFilter=~@process kills on clone and fork */
	st = in_child(sandboxed, &tg);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sandboxed daemon: %s %d",
		      WIFSIGNALED(st) ? "killed by signal" : "exit",
		      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	child_stop(&c);
}
END_TEST

/* Features whose probes need an fd (soft-dirty and PFN visibility are
 * left out: the first depends on the kernel config, the second on the
 * caller's credentials, both the same in parent and child). */
#define FD_FEATURES                                                                         \
	(PM_FEAT_PAGEMAP_SCAN | PM_FEAT_PROCMAP_QUERY | PM_FEAT_UFFD_WP_ASYNC |              \
	 PM_FEAT_IO_URING | PM_FEAT_GUARD_REGIONS)

/* Exits with the fd-probed features it found once fds were free again
 * (they fit in 7 bits), or 128 + the failed step. */
static int no_fd_first(void *arg)
{
	int fds[4096], n = 0, r;
	struct rlimit rl = { 64, 64 };
	struct pm_kernel_info ki = { .size = sizeof(ki) };

	(void)arg;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return 128;
	while (n < 4096 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		n++;
	if (errno != EMFILE)
		return 129;
	/* the first use of each feature meets EMFILE (or learns without an
	 * fd that the kernel lacks it: madvise refusing a guard) */
	for (uint64_t f = PM_FEAT_PAGEMAP_SCAN; f <= PM_FEAT_GUARD_REGIONS; f <<= 1) {
		r = pm_has_feature(f);
		if ((FD_FEATURES & f) && r != -EMFILE && r != 0)
			return 140 + __builtin_ctzll(f);
	}
	if (pm_kernel_probe(&ki) != -EMFILE)
		return 130;
	while (n > 0)
		close(fds[--n]);
	if (pm_kernel_probe(&ki))
		return 131;
	return (int)(ki.features & FD_FEATURES);
}

START_TEST(no_free_fd_at_first_use)
{
	struct pm_kernel_info ki = { .size = sizeof(ki) };
	int st;

	/* the parent probes only after forking: the child inherits nothing */
	st = in_child(no_fd_first, NULL);
	ck_assert_int_eq(pm_kernel_probe(&ki), 0);
	ck_assert_msg(WIFEXITED(st) && (uint64_t)WEXITSTATUS(st) == (ki.features & FD_FEATURES),
		      "child: status %#x, features here %#llx", st,
		      (unsigned long long)(ki.features & FD_FEATURES));
}
END_TEST

/* A kernel with categories this library does not know: the no-op scan the
 * probe makes accepts any return mask. */
static int (*real_ioctl)(int, unsigned long, void *);

static int newer_kernel(int fd, unsigned long req, void *arg)
{
	struct pm__scan_arg *a = arg;

	if (req == PM__PAGEMAP_SCAN && a->start == a->end)
		return 0;
	return real_ioctl(fd, req, arg);
}

/* Whether the real kernel scans with this return mask. */
static bool kernel_scans(uint64_t mask)
{
	struct pm__scan_arg a = { .size = sizeof(a), .return_mask = mask };
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	bool r = fd >= 0 && real_ioctl(fd, PM__PAGEMAP_SCAN, &a) == 0;

	if (fd >= 0)
		close(fd);
	return r;
}

START_TEST(unknown_scan_categories_dropped)
{
	struct pm_kernel_info ki = { .size = sizeof(ki) };
	struct pm_region reg[64];
	struct pm_handle *h;
	PM_OPTS(pm_scan_opts, so);
	uint64_t a = (uintptr_t)xmap(NULL, ps, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1);

	/* nothing probed yet in this process: the probe sees the newer kernel */
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = newer_kernel;
	ck_assert_int_eq(pm_kernel_probe(&ki), 0);
	pm__sys.ioctl = real_ioctl;
	ck_assert_uint_eq(ki.scan_categories & ~PM_CAT_ALL, 0);
	if (!kernel_scans(0))
		return; /* the injected probe said yes; the kernel cannot scan */
	/* what pm-dump --scan asks: every category the probe reported, of
	 * those the real kernel has (the injected probe claimed them all) */
	for (uint64_t bit = 1; bit & PM_CAT_ALL; bit <<= 1)
		if (ki.scan_categories & bit && kernel_scans(bit))
			so.return_mask |= bit;
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_ge(pm_scan(h, a, a + ps, reg, 64, &so, NULL), 0);
	pm_close(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("probe-lazy");
	TCase *tc = tcase_create("probe-lazy");

	test_init();
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, no_process_behind_a_read);
	tcase_add_test(tc, no_free_fd_at_first_use);
	tcase_add_test(tc, unknown_scan_categories_dropped);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
