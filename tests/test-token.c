/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guard's token (src/guard.c) against the kernel's own counters of a
 * real child: each slot holds what /proc/PID/stat and /proc/PID/status
 * say (parsed here independently; also past a status text longer than a
 * page), and zapping a huge zero page, which
 * moves VmPTE and nothing else of the target's, moves the token. The
 * token once parsed VmPTE as 0 on every kernel (status pads the number
 * with a tab), so that zap went unseen.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

/* What the token's target part must hold, read the way a person would. */
struct oracle {
	uint64_t faults, size, rss, shared, pte;
};

static uint64_t status_kb(const char *text, const char *name)
{
	const char *p = strstr(text, name);
	unsigned long v = 0;

	ck_assert_msg(p, "no %s in status", name);
	ck_assert_int_eq(sscanf(p + strlen(name), " %lu kB", &v), 1);
	return v;
}

static void oracle_read(pid_t pid, struct oracle *o)
{
	static char text[1 << 16];
	char path[64], *p;
	unsigned long minflt, majflt;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	n = read(fd, text, sizeof(text) - 1);
	ck_assert_int_gt(n, 0);
	close(fd);
	text[n] = '\0';
	p = strrchr(text, ')');
	ck_assert_ptr_nonnull(p);
	/* fields 10 and 12 (1-based); p + 2 is field 3 */
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %lu %*u %lu", &minflt, &majflt),
			 2);
	o->faults = minflt + majflt;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	n = read(fd, text, sizeof(text) - 1);
	ck_assert_int_gt(n, 0);
	close(fd);
	text[n] = '\0';
	o->size = status_kb(text, "\nVmSize:");
	o->rss = status_kb(text, "\nVmRSS:");
	o->shared = status_kb(text, "\nRssFile:") + status_kb(text, "\nRssShmem:");
	o->pte = status_kb(text, "\nVmPTE:");
}

static void assert_token_is(const struct pm__token *t, const struct oracle *o)
{
	ck_assert_uint_eq(t->v[0], o->faults);
	ck_assert_uint_eq(t->v[1], o->size);
	ck_assert_uint_eq(t->v[2], o->rss);
	ck_assert_uint_eq(t->v[3], o->shared);
	ck_assert_uint_eq(t->v[4], o->pte);
}

static char *huge_slot;
static uint64_t *zap_armed;

/* The first change only warms the signal path up (its frame may fault a
 * stack page in); the second zaps. */
static void zap(void)
{
	if (*zap_armed)
		madvise(huge_slot, HUGE_SZ, MADV_DONTNEED);
}

/* A 2 MiB-aligned MADV_HUGEPAGE slot, read once: the huge zero page. */
static void build(void *arg, uint64_t *shared)
{
	char *r = xmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	volatile char *v;

	(void)arg;
	huge_slot = (char *)(((uintptr_t)r + HUGE_SZ - 1) & ~(HUGE_SZ - 1));
	madvise(huge_slot, HUGE_SZ, MADV_HUGEPAGE);
	v = huge_slot;
	(void)*v;
	shared[0] = (uintptr_t)huge_slot;
	zap_armed = &shared[1];
	child_on_change(shared, zap);
}

/* A child laid out by @build: its token holds the kernel's counters. */
static void token_of_child(void (*build_fn)(void *, uint64_t *))
{
	struct child c;
	struct pm_handle *h;
	struct pm__token t;
	struct oracle o;

	child_start(&c, build_fn, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm__token_own(h, &t), 0);
	oracle_read(c.pid, &o);
	ck_assert_uint_gt(o.pte, 0); /* a process has page tables */
	assert_token_is(&t, &o);
	pm_close(h);
	child_stop(&c);
}

/* Every slot of the target's part is the kernel's counter, VmPTE too. */
START_TEST(token_holds_the_counters)
{
	token_of_child(build);
}
END_TEST

/* A process in 3,000 groups: its status lists them before the memory
 * counters, past the 4 KiB a token reads first. */
static void build_groups(void *arg, uint64_t *shared)
{
	static gid_t g[3000];

	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
		g[i] = (gid_t)(100000 + i);
	if (setgroups(sizeof(g) / sizeof(g[0]), g))
		_exit(1);
	build(arg, shared);
}

START_TEST(token_reads_past_a_long_groups_line)
{
	token_of_child(build_groups);
}
END_TEST

/* The zap of a huge zero PMD frees its deposited page table (VmPTE) and
 * moves no other counter of the target's: the token must see it. */
START_TEST(huge_zero_zap_moves_the_token)
{
	struct child c;
	struct pm_handle *h;
	struct pm__token before, after;
	struct oracle o0, o1;

	child_start(&c, build, NULL);
	child_change(&c);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm__token_own(h, &before), 0);
	oracle_read(c.pid, &o0);
	c.shared[1] = 1;
	child_change(&c);
	ck_assert_int_eq(pm__token_own(h, &after), 0);
	oracle_read(c.pid, &o1);
	ck_assert_msg(o1.pte < o0.pte, "VmPTE %lu -> %lu kB: no huge zero page was zapped",
		      (unsigned long)o0.pte, (unsigned long)o1.pte);
	assert_token_is(&before, &o0);
	assert_token_is(&after, &o1);
	/* nothing but VmPTE moved: without it the token would not have */
	ck_assert(!memcmp(before.v, after.v, 4 * sizeof(before.v[0])));
	ck_assert_uint_ne(before.v[4], after.v[4]);
	pm_close(h);
	child_stop(&c);
}
END_TEST

/* A counter of the calling process's status in kB, or -1. */
static long own_kb(const char *name)
{
	char text[1 << 16];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	const char *p;
	long v = -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	p = strstr(text, name);
	if (p && sscanf(p + strlen(name), " %ld", &v) != 1)
		v = -1;
	return v;
}

/* Whether this machine maps a huge zero page here: a child reads a slot
 * and zaps it, and its VmPTE must drop (a huge zero PMD frees its
 * deposited table; PTE-mapped zero pages leave their table) with its Rss
 * unchanged. THP off,
 * use_zero_page 0, no PMD-size THP (6.8+ per-size controls), no zero page
 * (PVM), or an allocation that failed all say no. Plain calls: this runs
 * before the suite. */
static bool huge_zero_zap_seen(void)
{
	int fd[2], st;
	char ok = 0;
	pid_t pid;

	if (pipe(fd))
		return false;
	pid = fork();
	if (pid == 0) {
		char *r = mmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *slot = (char *)(((uintptr_t)r + HUGE_SZ - 1) & ~(HUGE_SZ - 1));
		volatile char *v = slot;
		long pte, rss;

		if (r == MAP_FAILED)
			_exit(1);
		madvise(slot, HUGE_SZ, MADV_HUGEPAGE);
		(void)*v;
		pte = own_kb("\nVmPTE:");
		rss = own_kb("\nVmRSS:");
		madvise(slot, HUGE_SZ, MADV_DONTNEED);
		/* a THP allocated for the read (no zero page) is Rss */
		ok = pte > 0 && own_kb("\nVmPTE:") < pte && own_kb("\nVmRSS:") == rss;
		(void)!write(fd[1], &ok, 1);
		_exit(0);
	}
	close(fd[1]);
	if (pid < 0 || read(fd[0], &ok, 1) != 1)
		ok = 0;
	close(fd[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	return ok;
}

/* ---- a batch's groups closed by one THP event sum (pm__batch_settle) ---- */

#define GROUPS 16
#define BPAGES 16

static struct pm__sysops real_sys;
static int hook_fds[2] = { -1, -1 }, hook_reads, hook_at;
static char *hook_thp;

/* A THP of this process, PMD-mapped: an aligned MADV_HUGEPAGE slot,
 * written; NULL without memory. Plain calls: it runs before the suite. */
static char *own_thp(void)
{
	char *r = mmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *slot = (char *)(((uintptr_t)r + HUGE_SZ - 1) & ~(HUGE_SZ - 1));

	if (r == MAP_FAILED)
		return NULL;
	madvise(slot, HUGE_SZ, MADV_HUGEPAGE);
	memset(slot, 1, HUGE_SZ);
	return slot;
}

static uint64_t thp_split_pmd(void)
{
	static char text[1 << 16];
	int fd = open("/proc/vmstat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	unsigned long long v = 0;
	const char *p;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	p = strstr(text, "\nthp_split_pmd ");
	if (p)
		sscanf(p + 15, "%llu", &v);
	return v;
}

/* Whether an mprotect of one page of a THP splits its PMD here, as
 * thp_split_pmd counts it. */
static bool thp_split_seen(void)
{
	char *slot = own_thp();
	uint64_t before = thp_split_pmd();
	bool seen = slot && !mprotect(slot + ps, ps, PROT_READ) && thp_split_pmd() > before;

	if (slot)
		munmap(slot, HUGE_SZ);
	return seen;
}

/* The hook_at-th pagemap read of the hooked handles first splits a THP
 * of this process: a PMD split (system-wide, not the target's) during
 * that read's group. */
static ssize_t split_pread(int fd, void *buf, size_t n, off_t off)
{
	if ((fd == hook_fds[0] || fd == hook_fds[1]) && ++hook_reads == hook_at)
		ck_assert_int_eq(mprotect(hook_thp + ps, ps, PROT_READ), 0);
	return real_sys.pread(fd, buf, n, off);
}

/* A sync batch closes its groups in windows with one THP event sum read
 * after all of them: a split during one group's read must leave that
 * group uncertified by its tokens (read again, certifying), even where
 * later groups' closing tokens came between the split and the sum. */
START_TEST(batch_split_in_a_group_reads_it_again)
{
	static uint64_t buf[GROUPS][BPAGES];
	PM_OPTS(pm_batch_opts, bo, .backend = PM_BACKEND_SYNC, .read_flags = PM_READ_F_SNAPSHOT);
	struct pm_read_info info[GROUPS];
	struct pm_handle *h[2];
	struct pm_batch *b;
	struct child c;
	long res[GROUPS];
	uint64_t va, s0;

	child_start(&c, build, NULL);
	va = c.shared[0];
	ck_assert_int_eq(pm_open(c.pid, NULL, &h[0]), 0);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h[1]), 0);
	ck_assert_int_eq(pm_batch_new(&bo, &b), 0);
	hook_thp = own_thp();
	ck_assert_ptr_nonnull(hook_thp);
	for (int run = 0; run < 2; run++) {
		/* alternate handles: every read a group of its own */
		for (int i = 0; i < GROUPS; i++) {
			info[i] = (struct pm_read_info){ .size = sizeof(info[i]) };
			ck_assert_int_eq(pm_batch_add_read(b, h[i % 2], va, va + BPAGES * ps,
							   buf[i], &info[i], &res[i]), 0);
		}
		if (run == 1) {
			/* the first run widened the window past one group */
			hook_fds[0] = h[0]->pagemap_fd;
			hook_fds[1] = h[1]->pagemap_fd;
			hook_at = 3;
			real_sys = pm__sys;
			pm__sys.pread = split_pread;
		}
		s0 = thp_split_pmd();
		ck_assert_int_eq(pm_batch_run(b), 0);
		pm__sys = run ? real_sys : pm__sys;
		for (int i = 0; i < GROUPS; i++) {
			ck_assert_int_eq(res[i], BPAGES);
			ck_assert(info[i].flags & PM_READ_INFO_GUARDED);
		}
		if (!run) {
			ck_assert_uint_eq(info[2].kernel_reads, 1);
			continue;
		}
		ck_assert_msg(thp_split_pmd() > s0, "no PMD was split during the batch");
		ck_assert_msg(info[2].kernel_reads > 1,
			      "a group read during a PMD split was certified by its tokens");
	}
	pm_batch_free(b);
	pm_close(h[0]);
	pm_close(h[1]);
	child_stop(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("token");
	TCase *t = tcase_create("token");

	test_init();
	tcase_set_timeout(t, 60);
	tcase_add_test(t, token_holds_the_counters);
	add_test_if(t, token_reads_past_a_long_groups_line, geteuid() == 0,
		    "setting 3,000 supplementary groups needs root");
	/* the VM kernels must map it: there a miss fails rather than skips */
	add_test_if(t, batch_split_in_a_group_reads_it_again, kline() || thp_split_seen(),
		    "no PMD split can be made here (THP off or no PMD-size THP)");
	add_test_if(t, huge_zero_zap_moves_the_token, kline() || huge_zero_zap_seen(),
		    "no huge zero page is mapped here (THP, zero page or use_zero_page off)");
	suite_add_tcase(s, t);
	return run_suite(s);
}
