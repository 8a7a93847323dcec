/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common.h"
#include "keep-fds.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

uint64_t ps;

void test_init(void)
{
	ps = (uint64_t)sysconf(_SC_PAGESIZE);
}

void *xmap(void *hint, size_t len, int prot, int flags, int fd)
{
	void *p = mmap(hint, len, prot, flags, fd, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap %zu: %s", len, strerror(errno));
	return p;
}

void child_start(struct child *c, void (*build)(void *arg, uint64_t *shared), void *arg)
{
	int ready[2], hold[2];
	char ch = 0;

	c->shared = xmap(NULL, ps * 16, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
	c->pid = fork();
	ck_assert_int_ge(c->pid, 0);
	if (c->pid == 0) {
		keep_only_fds(ready[1], hold[0]);
		build(arg, c->shared);
		if (write(ready[1], &ch, 1) != 1)
			_exit(1);
		(void)!read(hold[0], &ch, 1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	ck_assert_int_eq(read(ready[0], &ch, 1), 1);
	close(ready[0]);
	c->hold = hold[1];
}

void child_stop(struct child *c)
{
	int st;

	close(c->hold);
	ck_assert_int_eq(waitpid(c->pid, &st, 0), c->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	munmap(c->shared, ps * 16);
}

static void (*change_fn)(void);
static _Atomic uint64_t *change_done;

static void on_usr1(int sig)
{
	(void)sig;
	change_fn();
	atomic_store(change_done, 1);
}

void child_on_change(uint64_t *shared, void (*change)(void))
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };

	change_fn = change;
	change_done = (_Atomic uint64_t *)&shared[15];
	sigaction(SIGUSR1, &sa, NULL);
}

void child_change(struct child *c)
{
	_Atomic uint64_t *done = (_Atomic uint64_t *)&c->shared[15];

	atomic_store(done, 0);
	ck_assert_int_eq(kill(c->pid, SIGUSR1), 0);
	for (int i = 0; i < 10000 && !atomic_load(done); i++)
		usleep(1000);
	ck_assert_msg(atomic_load(done), "the child did not make its change");
}

void hold_in_copy(void)
{
	const pid_t parent = getpid();
	pid_t copy = fork();

	if (copy == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* the child is gone already */
			_exit(0);
		for (;;)
			pause();
	}
	if (copy < 0)
		_exit(2);
}

void raw_read(pid_t pid, uint64_t start, uint64_t end, uint64_t *buf)
{
	char path[64];
	size_t len = (end - start) / ps * 8, done = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done,
				  (off_t)(start / ps * 8 + done));

		ck_assert_int_gt(r, 0);
		done += (size_t)r;
	}
	close(fd);
}

bool thp_possible(void)
{
	char buf[64] = "";
	int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	(void)!read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return strstr(buf, "[never]") == NULL;
}

bool zero_page_possible(void)
{
	char *a = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;

	if (a != MAP_FAILED && fd >= 0) {
		(void)*(volatile char *)a;
		if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)a / ps * sizeof(e))) != sizeof(e))
			e = 0;
	}
	if (fd >= 0)
		close(fd);
	if (a != MAP_FAILED)
		munmap(a, ps);
	/* the zero page is never mapped exclusively; a page of our own is */
	return pm_entry_present(e) && !pm_entry_exclusive(e);
}

void *make_thp(void)
{
	char *p = xmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *a = (char *)(((uintptr_t)p + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));

	if (madvise(a, HUGE_SZ, MADV_HUGEPAGE))
		return NULL;
	memset(a, 1, HUGE_SZ);
	return a;
}

static const struct kline klines[] = {
	{ "6.1", 6, 1, PM_FEAT_SOFT_DIRTY | PM_FEAT_PFN_VISIBLE,
	  PM_FEAT_PAGEMAP_SCAN | PM_FEAT_PROCMAP_QUERY | PM_FEAT_UFFD_WP_ASYNC |
		  PM_FEAT_GUARD_REGIONS | PM_FEAT_WALK_RETRY_FIX,
	  0, PM_FIX_ABSENT },
	/* soft-dirty in PAGEMAP_SCAN since 6.8; guard regions in pagemap since 6.15 */
	{ "6.12", 6, 12,
	  PM_FEAT_PAGEMAP_SCAN | PM_FEAT_PROCMAP_QUERY | PM_FEAT_SOFT_DIRTY |
		  PM_FEAT_UFFD_WP_ASYNC | PM_FEAT_PFN_VISIBLE | PM_FEAT_WALK_RETRY_FIX,
	  PM_FEAT_GUARD_REGIONS, PM_CAT_ALL & ~PM_CAT_GUARD, PM_FIX_PRESENT },
};

const struct kline *kline(void)
{
	const char *name = getenv("LIBPAGEMAP_TEST_KLINE");

	if (!name || !*name)
		return NULL;
	for (size_t i = 0; i < sizeof(klines) / sizeof(klines[0]); i++)
		if (!strcmp(klines[i].name, name))
			return &klines[i];
	fprintf(stderr, "LIBPAGEMAP_TEST_KLINE=%s: no such kernel line in tests/common.c\n", name);
	exit(1);
}

static const char *feature_name(uint64_t feat)
{
	static const char *const names[] = { "PAGEMAP_SCAN", "PROCMAP_QUERY", "soft-dirty",
					     "uffd WP_ASYNC", "io_uring", "visible PFNs",
					     "guard regions in pagemap", "the pagemap retry fix" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (feat == 1ULL << i)
			return names[i];
	return "?";
}

bool expect_feature(uint64_t feat)
{
	const struct kline *k = kline();

	if (k && ((k->features | k->absent) & feat))
		return k->features & feat;
	return pm_has_feature(feat) == 1; /* as the kernel answers */
}

const char *lacks(uint64_t feat)
{
	static char why[8][96];
	const struct kline *k = kline();
	int i = __builtin_ctzll(feat) % 8;

	if (k && !((k->features | k->absent) & feat))
		k = NULL;
	snprintf(why[i], sizeof(why[i]), "%s%s has no %s", k ? "kernel line " : "this kernel",
		 k ? k->name : "", feature_name(feat));
	return why[i];
}

uint64_t kpageflags(uint64_t pfn)
{
	uint64_t f = 0;
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &f, 8, (off_t)(pfn * 8)), 8);
	close(fd);
	return f;
}

void touch_random(char *p, size_t pages, uint64_t *seed, unsigned kinds)
{
	for (size_t i = 0; i < pages; i++) {
		uint64_t r = rnd(seed) % kinds;

		if (r == 0)
			p[i * ps] = 1;
		else if (r == 1)
			(void)*(volatile char *)(p + i * ps);
	}
}

uint64_t rnd(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void add_test_if(TCase *t, const TTest *test, bool can, const char *why)
{
	if (can)
		tcase_add_test(t, test);
	else
		fprintf(stderr, "SKIP %s: %s\n", test->name, why);
}

int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed, ran;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	ran = srunner_ntests_run(sr);
	srunner_free(sr);
	if (!ran) {
		fprintf(stderr, "SKIP: no test of this suite can run here (reasons above)\n");
		return 77;
	}
	return failed ? 1 : 0;
}

static uint64_t read_num(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	(void)!read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return strtoull(buf, NULL, 10);
}

static bool write_num(const char *path, uint64_t v)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CLOEXEC), n = snprintf(buf, sizeof(buf), "%" PRIu64, v);
	bool ok = fd >= 0 && write(fd, buf, (size_t)n) == n;

	if (fd >= 0)
		close(fd);
	return ok;
}

#define NR_HUGE "/proc/sys/vm/nr_hugepages"
#define FREE_HUGE "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

bool huge_reserve(uint64_t n, uint64_t *old)
{
	*old = read_num(NR_HUGE);
	if (write_num(NR_HUGE, *old + n) && read_num(FREE_HUGE) >= n)
		return true;
	write_num(NR_HUGE, *old);
	return false;
}

bool huge_release(uint64_t old)
{
	return write_num(NR_HUGE, old);
}
