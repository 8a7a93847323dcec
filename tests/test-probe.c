/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kernel probe against the kernel itself. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static char *self_exe;

/* uAPI: the raw ioctls, to compare the probe with */
struct scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t inverted, mask, anyof, ret;
};
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct scan_arg)

static int raw_scan(uint64_t ret_mask)
{
	struct scan_arg a = { .size = sizeof(a), .start = 4096, .end = 4096, .ret = ret_mask };
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int r = ioctl(fd, PAGEMAP_SCAN_, &a);

	close(fd);
	return r;
}

START_TEST(probe_matches_kernel)
{
	PM_OPTS(pm_kernel_info, ki);
	struct utsname u;
	unsigned long maj, min;

	ck_assert_int_eq(pm_kernel_probe(&ki), 0);
	ck_assert_uint_eq(ki.size, sizeof(ki));
	uname(&u);
	ck_assert_int_ge(sscanf(u.release, "%lu.%lu", &maj, &min), 2);
	ck_assert_uint_eq(ki.version_major, maj);
	ck_assert_uint_eq(ki.version_minor, min);
	/* PAGEMAP_SCAN and each category exactly as the kernel answers */
	ck_assert_int_eq(!!(ki.features & PM_FEAT_PAGEMAP_SCAN), raw_scan(0) == 0);
	for (int bit = 0; bit < 16; bit++)
		ck_assert_int_eq(!!(ki.scan_categories & (1ULL << bit)),
				 (ki.features & PM_FEAT_PAGEMAP_SCAN) && raw_scan(1ULL << bit) == 0);
	/* the retry fix follows the version (without an override) */
	if (maj > 6 || (maj == 6 && min >= 5)) {
		ck_assert_int_eq(ki.walk_retry_fix, PM_FIX_PRESENT);
		ck_assert(ki.features & PM_FEAT_WALK_RETRY_FIX);
		ck_assert_ptr_nonnull(strstr(ki.walk_retry_reason, ">= 6.5"));
	} else {
		ck_assert_int_ne(ki.walk_retry_fix, PM_FIX_PRESENT);
	}
	for (uint64_t b = 1; b <= PM_FEAT_WALK_RETRY_FIX; b <<= 1)
		ck_assert_int_eq(pm_has_feature(b), !!(ki.features & b));
}
END_TEST

/* The VM suite's kernel lines, each against what it must answer: 6.1
 * emulates scans, guards every read, has soft-dirty; 6.12 scans natively
 * with soft-dirty, queries VMAs, has the retry fix and so reads unguarded
 * by default. */
START_TEST(probe_matches_kernel_line)
{
	const struct kline *k = kline();
	PM_OPTS(pm_kernel_info, ki);
	PM_OPTS(pm_read_info, info);
	struct pm_handle *h;
	uint64_t e, a = (uintptr_t)&e & ~(ps - 1);

	ck_assert_int_eq(pm_kernel_probe(&ki), 0);
	ck_assert_uint_eq(ki.version_major, k->major);
	ck_assert_uint_eq(ki.version_minor, k->minor);
	for (uint64_t b = 1; b <= PM_FEAT_WALK_RETRY_FIX; b <<= 1) {
		if (k->features & b)
			ck_assert_msg(ki.features & b, "%s: feature %#lx missing", k->name,
				      (unsigned long)b);
		if (k->absent & b)
			ck_assert_msg(!(ki.features & b), "%s: feature %#lx present", k->name,
				      (unsigned long)b);
	}
	ck_assert_uint_eq(ki.scan_categories, k->scan_categories);
	ck_assert_int_eq(ki.walk_retry_fix, k->walk_retry_fix);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, a, a + ps, &e, NULL, &info), 1);
	ck_assert_int_eq(!!(info.flags & PM_READ_INFO_GUARDED), k->walk_retry_fix != PM_FIX_PRESENT);
	pm_close(h);
	fprintf(stderr, "kernel line %s: features %#lx, scan categories %#lx, retry fix %s (%s)\n",
		k->name, (unsigned long)ki.features, (unsigned long)ki.scan_categories,
		ki.walk_retry_fix == PM_FIX_PRESENT ? "present" : "absent", ki.walk_retry_reason);
}
END_TEST

/* Soft-dirty by behaviour, compared with the kernel's config where the
 * test can see it: /proc/config.gz, or the file LIBPAGEMAP_TEST_KCONFIG
 * names (the VM suite passes the config of the kernel it boots). */
START_TEST(probe_soft_dirty_matches_config)
{
	const char *file = getenv("LIBPAGEMAP_TEST_KCONFIG");
	char cmd[256];
	FILE *f;
	int n = -1;

	if (file)
		snprintf(cmd, sizeof(cmd), "grep -c '^CONFIG_MEM_SOFT_DIRTY=y' %s", file);
	else if (!access("/proc/config.gz", R_OK))
		snprintf(cmd, sizeof(cmd), "zcat /proc/config.gz | grep -c '^CONFIG_MEM_SOFT_DIRTY=y'");
	else
		return; /* nothing to compare with on this machine */
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%d", &n), 1);
	pclose(f);
	ck_assert_int_eq(pm_has_feature(PM_FEAT_SOFT_DIRTY), n > 0);
}
END_TEST

START_TEST(probe_uffd_and_guard_match_kernel)
{
	struct uffdio_api api = { .api = UFFD_API };
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC);
	char *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool wp_async = false, guard;
	uint64_t e;

	if (fd >= 0 && ioctl((int)fd, UFFDIO_API, &api) == 0)
		wp_async = api.features & (1ULL << 15);
	if (fd >= 0)
		close((int)fd);
	ck_assert_int_eq(pm_has_feature(PM_FEAT_UFFD_WP_ASYNC), wp_async);
	p[0] = 1;
	raw_read(getpid(), (uintptr_t)p, (uintptr_t)p + ps, &e);
	ck_assert_int_eq(pm_has_feature(PM_FEAT_PFN_VISIBLE), pm_entry_pfn(e) != 0);
	guard = madvise(p, ps, 102) == 0;
	if (guard) {
		raw_read(getpid(), (uintptr_t)p, (uintptr_t)p + ps, &e);
		guard = e >> 58 & 1;
	}
	ck_assert_int_eq(pm_has_feature(PM_FEAT_GUARD_REGIONS), guard);
	munmap(p, ps);
}
END_TEST

START_TEST(probe_bad_arguments)
{
	struct pm_kernel_info ki;

	ck_assert_int_eq(pm_kernel_probe(NULL), -EINVAL);
	memset(&ki, 0x5a, sizeof(ki));
	ki.size = 4;
	ck_assert_int_eq(pm_kernel_probe(&ki), -EINVAL);
	ck_assert_uint_eq(ki.features, 0x5a5a5a5a5a5a5a5aULL);
	ki.size = 12;
	ck_assert_int_eq(pm_kernel_probe(&ki), -EINVAL);
	/* an older, shorter struct gets only its prefix */
	ki.size = offsetof(struct pm_kernel_info, scan_categories);
	ck_assert_int_eq(pm_kernel_probe(&ki), 0);
	ck_assert_uint_eq(ki.scan_categories, 0x5a5a5a5a5a5a5a5aULL);
	ck_assert_int_eq(pm_has_feature(0), -EINVAL);
	ck_assert_int_eq(pm_has_feature(PM_FEAT_PAGEMAP_SCAN | PM_FEAT_SOFT_DIRTY), -EINVAL);
	ck_assert_int_eq(pm_has_feature(1ULL << 40), -EINVAL);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* Run this binary again with an environment, in a process that has not
 * probed yet; the child's checks are in main(). */
static int rerun(const char *mode, const char *env)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (env)
			putenv((char *)env);
		else
			unsetenv("LIBPAGEMAP_ASSUME_RETRY_FIX");
		execl(self_exe, self_exe, mode, (char *)NULL);
		_exit(99);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

START_TEST(probe_env_override)
{
	ck_assert_int_eq(rerun("--expect-absent", "LIBPAGEMAP_ASSUME_RETRY_FIX=0"), 0);
	ck_assert_int_eq(rerun("--expect-present", "LIBPAGEMAP_ASSUME_RETRY_FIX=1"), 0);
	ck_assert_int_eq(rerun("--threads", NULL), 0);
}
END_TEST

static int expect(int64_t fix)
{
	PM_OPTS(pm_kernel_info, ki);
	PM_OPTS(pm_read_info, info);
	struct pm_handle *h;
	uint64_t e[4];
	uint64_t a = (uintptr_t)e & ~(ps - 1);

	if (pm_kernel_probe(&ki) || ki.walk_retry_fix != fix ||
	    !strstr(ki.walk_retry_reason, "LIBPAGEMAP_ASSUME_RETRY_FIX"))
		return 1;
	if (!!(ki.features & PM_FEAT_WALK_RETRY_FIX) != (fix == PM_FIX_PRESENT))
		return 2;
	/* an unfixed kernel guards every read by default */
	if (pm_open(0, NULL, &h) || pm_read(h, a, a + ps, e, NULL, &info) != 1)
		return 3;
	pm_close(h);
	return !!(info.flags & PM_READ_INFO_GUARDED) == (fix == PM_FIX_ABSENT) ? 0 : 4;
}

static void *probe_thread(void *arg)
{
	struct pm_kernel_info *ki = arg;

	ki->size = sizeof(*ki);
	return (void *)(intptr_t)pm_kernel_probe(ki);
}

/* The first probe, from 8 threads at once: one answer for all. */
static int threads(void)
{
	pthread_t t[8];
	struct pm_kernel_info ki[8];

	for (int i = 0; i < 8; i++)
		if (pthread_create(&t[i], NULL, probe_thread, &ki[i]))
			return 1;
	for (int i = 0; i < 8; i++) {
		void *r;

		pthread_join(t[i], &r);
		if (r)
			return 2;
	}
	for (int i = 1; i < 8; i++)
		if (ki[i].features != ki[0].features ||
		    ki[i].scan_categories != ki[0].scan_categories ||
		    ki[i].walk_retry_fix != ki[0].walk_retry_fix)
			return 3;
	return 0;
}

int main(int argc, char **argv)
{
	Suite *s;
	TCase *t;

	test_init();
	self_exe = argv[0];
	if (argc == 2 && !strcmp(argv[1], "--expect-absent"))
		return expect(PM_FIX_ABSENT);
	if (argc == 2 && !strcmp(argv[1], "--expect-present"))
		return expect(PM_FIX_PRESENT);
	if (argc == 2 && !strcmp(argv[1], "--threads"))
		return threads();
	unsetenv("LIBPAGEMAP_ASSUME_RETRY_FIX");
	s = suite_create("probe");
	t = tcase_create("probe");
	tcase_add_test(t, probe_matches_kernel);
	add_test_if(t, probe_matches_kernel_line, kline() != NULL, "not in the VM suite");
	tcase_add_test(t, probe_soft_dirty_matches_config);
	tcase_add_test(t, probe_uffd_and_guard_match_kernel);
	tcase_add_test(t, probe_bad_arguments);
	tcase_add_test(t, probe_env_override);
	suite_add_tcase(s, t);
	return run_suite(s);
}
