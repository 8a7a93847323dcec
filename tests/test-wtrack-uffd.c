/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write tracking with userfaultfd async write-protection (6.7+) on the
 * test's own memory: exact pages, zaps, shared and file mappings, THP,
 * hugetlb, mprotect, fork.
 */
#include "wtrack-common.h"
#include "internal.h"
#include "compat/uapi.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Random page sets, half the mapping never populated before tracking, a
 * kernel write (pread into a page) and read faults: collect reports
 * exactly the pages written, identically with and without reset and for
 * any vector size; after a reset, nothing until written again. Three
 * ranges, two of them adjacent, and a collect clipped to part of them. */
START_TEST(uffd_exact)
{
	const size_t n = 1024;
	char *p = xmap(NULL, (n + 256) * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct pm_range ranges[] = {
		{ (uintptr_t)p + 512 * ps, (uintptr_t)p + n * ps },
		{ (uintptr_t)p, (uintptr_t)p + 512 * ps },
	};
	bool want[1024], got[1024];
	uint64_t seed = 42, a = (uintptr_t)p;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	int devzero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	volatile char sink;

	munmap(p + n * ps, 256 * ps);
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	memset(p, 7, n / 2 * ps);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_wtrack_new(h, ranges, 2, NULL, &wt), 0);
	ck_assert_int_eq(pm_wtrack_method(wt), PM_WT_METHOD_UFFD);
	collect_all(wt, a, n, 0, 16, got);
	ck_assert_uint_eq(count(got, n), 0);
	for (int round = 0; round < 12; round++) {
		memset(want, 0, sizeof(want));
		for (size_t i = 0; i < n; i++) {
			uint64_t x = rnd(&seed) % 8;

			if (x == 0) {
				p[i * ps + x] = (char)round;
				want[i] = true;
			} else if (x == 1) {
				sink = p[i * ps];
			}
		}
		/* the kernel writing for the process counts too */
		ck_assert_int_eq(pread(devzero, p + (n - 3) * ps, 16, 0), 16);
		want[n - 3] = true;
		collect_all(wt, a, n, 0, 1 + round % 16, got);
		assert_pages(want, got, n, "collect");
		collect_all(wt, a, n, 0, 16, got);
		assert_pages(want, got, n, "collect again");
		if (round % 3 == 2) {
			ck_assert_int_eq(pm_wtrack_reset(wt), 0);
		} else {
			collect_all(wt, a, n, PM_WT_COLLECT_RESET, 1 + (round * 5) % 16, got);
			assert_pages(want, got, n, "collect and reset");
		}
		collect_all(wt, a, n, 0, 16, got);
		ck_assert_msg(count(got, n) == 0, "round %d: %zu pages after reset", round,
			      count(got, n));
	}
	/* clipped: [300, 700) across both ranges */
	{
		struct pm_region v[16];
		uint64_t we;
		long r;

		p[100 * ps] = p[400 * ps] = p[511 * ps] = p[512 * ps] = p[900 * ps] = 1;
		r = pm_wtrack_collect(wt, a + 300 * ps, a + 700 * ps, v, 16, PM_WT_COLLECT_RESET, &we);
		ck_assert_int_eq(r, 2);
		ck_assert(v[0].start == a + 400 * ps && v[0].end == a + 401 * ps);
		ck_assert(v[1].start == a + 511 * ps && v[1].end == a + 513 * ps);
		ck_assert_uint_eq(we, a + 700 * ps);
		collect_all(wt, a, n, PM_WT_COLLECT_RESET, 16, got);
		ck_assert_uint_eq(count(got, n), 2);
		ck_assert(got[100] && got[900]);
	}
	(void)sink;
	close(devzero);
	pm_wtrack_free(wt);
	pm_close(h);
	munmap(p, n * ps);
}
END_TEST

/* Shared anonymous memory, a shared file mapping and a private one:
 * exactly the pages written; MADV_DONTNEED on shared memory changes no
 * content and reports nothing. */
START_TEST(uffd_shared_and_file)
{
	const size_t n = 32;
	char path[] = "/tmp/pm-wtrack-XXXXXX";
	int fd = mkstemp(path);
	char *m[3];
	struct pm_handle *h;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, (off_t)(n * ps)), 0);
	m[0] = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	m[1] = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	m[2] = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	for (int k = 0; k < 3; k++) {
		bool want[32] = { false }, got[32];
		struct pm_wtrack *wt;

		memset(m[k], 1, n / 2 * ps);
		wt = track(h, m[k], n, PM_WT_METHOD_UFFD);
		m[k][3 * ps] = m[k][20 * ps] = 2;
		want[3] = want[20] = true;
		collect_all(wt, (uintptr_t)m[k], n, PM_WT_COLLECT_RESET, 16, got);
		assert_pages(want, got, n, k == 0 ? "shmem" : k == 1 ? "shared file" : "private file");
		if (k < 2) {
			ck_assert_int_eq(madvise(m[k] + 5 * ps, ps, MADV_DONTNEED), 0);
			collect_all(wt, (uintptr_t)m[k], n, 0, 16, got);
			ck_assert_uint_eq(count(got, n), 0);
		}
		pm_wtrack_free(wt);
		munmap(m[k], n * ps);
	}
	pm_close(h);
	close(fd);
}
END_TEST

/* A THP written in one page after tracking starts: reported as that one
 * page (the kernel splits the PMD on the write-protect fault). */
START_TEST(uffd_thp_is_4k)
{
	char *t = make_thp();
	struct pm_handle *h;
	struct pm_wtrack *wt;
	struct pm_region v[4];
	PM_OPTS(pm_scan_opts, huge, .category_mask = PM_CAT_HUGE, .return_mask = PM_CAT_HUGE);
	bool got[512];

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_scan(h, (uintptr_t)t, (uintptr_t)t + HUGE_SZ, v, 4, &huge, NULL), 1);
	wt = track(h, t, 512, PM_WT_METHOD_UFFD);
	t[77 * ps] = 2;
	collect_all(wt, (uintptr_t)t, 512, PM_WT_COLLECT_RESET, 16, got);
	ck_assert_uint_eq(count(got, 512), 1);
	ck_assert(got[77]);
	t[78 * ps] = t[300 * ps] = 3;
	collect_all(wt, (uintptr_t)t, 512, PM_WT_COLLECT_RESET, 16, got);
	ck_assert_uint_eq(count(got, 512), 2);
	ck_assert(got[78] && got[300]);
	pm_wtrack_free(wt);
	/* THP-eligible memory never touched before tracking: the markers make
	 * the first fault map a 4 KiB page, not a THP */
	{
		char *m = xmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);
		char *u = (char *)(((uintptr_t)m + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));

		ck_assert_int_eq(madvise(u, HUGE_SZ, MADV_HUGEPAGE), 0);
		wt = track(h, u, 512, PM_WT_METHOD_UFFD);
		u[200 * ps] = 4;
		collect_all(wt, (uintptr_t)u, 512, PM_WT_COLLECT_RESET, 16, got);
		ck_assert_uint_eq(count(got, 512), 1);
		ck_assert(got[200]);
		ck_assert_int_eq(pm_scan(h, (uintptr_t)u, (uintptr_t)u + HUGE_SZ, v, 4, &huge, NULL), 0);
		pm_wtrack_free(wt);
		munmap(m, 2 * HUGE_SZ);
	}
	pm_close(h);
}
END_TEST

/* hugetlb: a write reports the whole huge page (it is the smallest unit
 * the kernel can protect). Needs a surplus huge page: root raises
 * nr_overcommit_hugepages by one for the test and puts it back. */
static bool sysctl_rw(const char *path, long *val, bool write)
{
	FILE *f = fopen(path, write ? "we" : "re");
	bool ok;

	if (!f)
		return false;
	ok = write ? fprintf(f, "%ld\n", *val) > 0 : fscanf(f, "%ld", val) == 1;
	return (fclose(f) == 0) && ok;
}

START_TEST(uffd_hugetlb_whole)
{
	const char *knob = "/proc/sys/vm/nr_overcommit_hugepages";
	long old, more;
	char *p;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	bool got[512];

	ck_assert(sysctl_rw(knob, &old, false));
	more = old + 1;
	ck_assert(sysctl_rw(knob, &more, true));
	p = mmap(NULL, HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		 -1, 0);
	if (p == MAP_FAILED) {
		sysctl_rw(knob, &old, true);
		ck_abort_msg("no huge page: %s", strerror(errno));
	}
	memset(p, 1, HUGE_SZ);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	wt = track(h, p, 512, PM_WT_METHOD_UFFD);
	collect_all(wt, (uintptr_t)p, 512, 0, 16, got);
	ck_assert_uint_eq(count(got, 512), 0);
	p[77 * ps] = 2;
	collect_all(wt, (uintptr_t)p, 512, PM_WT_COLLECT_RESET, 16, got);
	ck_assert_uint_eq(count(got, 512), 512);
	collect_all(wt, (uintptr_t)p, 512, 0, 16, got);
	ck_assert_uint_eq(count(got, 512), 0);
	pm_wtrack_free(wt);
	pm_close(h);
	munmap(p, HUGE_SZ);
	ck_assert(sysctl_rw(knob, &old, true));
}
END_TEST

/* Zapped pages count as written (their content is now zero), are
 * protected again, and read faults on them afterwards write nothing. */
START_TEST(uffd_dontneed)
{
	const size_t n = 256;
	bool want[256] = { false }, got[256];
	volatile char sink = 0;
	struct own o;

	own_start(&o, n, n, PM_WT_METHOD_UFFD);
	ck_assert_int_eq(madvise(o.p + 10 * ps, 5 * ps, MADV_DONTNEED), 0);
	ck_assert_int_eq(madvise(o.p + 200 * ps, ps, MADV_DONTNEED), 0);
	for (size_t i = 10; i < 15; i++)
		want[i] = true;
	want[200] = true;
	collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_COLLECT_RESET, 3, got);
	assert_pages(want, got, n, "zapped");
	for (size_t i = 0; i < n; i++)
		sink += o.p[i * ps];
	collect_all(o.wt, (uintptr_t)o.p, n, 0, 16, got);
	ck_assert_uint_eq(count(got, n), 0);
	o.p[12 * ps] = 1;
	collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_COLLECT_RESET, 16, got);
	ck_assert_uint_eq(count(got, n), 1);
	ck_assert(got[12]);
	(void)sink;
	{
		PM_OPTS(pm_wtrack_stats, st);
		struct { uint64_t size, collects, sentinel; } old = { 16, 0, 77 };

		ck_assert_int_eq(pm_wtrack_stats(o.wt, &st), 0);
		ck_assert_uint_eq(st.pages_reported, 6 + 1);
		ck_assert_uint_eq(st.widened, 0);
		ck_assert_uint_eq(st.collects, 3);
		/* an older, shorter struct gets its prefix */
		ck_assert_int_eq(pm_wtrack_stats(o.wt, (struct pm_wtrack_stats *)&old), 0);
		ck_assert_uint_eq(old.collects, st.collects);
		ck_assert_uint_eq(old.sentinel, 77);
		ck_assert_uint_eq(old.size, 16);
	}
	own_stop(&o);
}
END_TEST

/* mprotect splitting and re-merging the tracked VMA changes nothing:
 * pages written after write access comes back are reported, nothing
 * else. */
START_TEST(uffd_mprotect)
{
	const size_t n = 128;
	bool want[128] = { false }, got[128];
	struct own o;

	own_start(&o, n, n / 2, PM_WT_METHOD_UFFD);
	ck_assert_int_eq(mprotect(o.p + 32 * ps, 64 * ps, PROT_READ), 0);
	o.p[5 * ps] = 1;
	want[5] = true;
	collect_all(o.wt, (uintptr_t)o.p, n, 0, 16, got);
	assert_pages(want, got, n, "while read-only");
	ck_assert_int_eq(mprotect(o.p + 32 * ps, 64 * ps, PROT_NONE), 0);
	ck_assert_int_eq(mprotect(o.p + 32 * ps, 64 * ps, PROT_READ | PROT_WRITE), 0);
	o.p[40 * ps] = o.p[90 * ps] = o.p[100 * ps] = 1;
	want[40] = want[90] = want[100] = true;
	collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_COLLECT_RESET, 2, got);
	assert_pages(want, got, n, "after mprotect");
	collect_all(o.wt, (uintptr_t)o.p, n, 0, 16, got);
	ck_assert_uint_eq(count(got, n), 0);
	own_stop(&o);
}
END_TEST

/* fork: the child's memory is not tracked (the kernel drops the child's
 * registration, so its pages carry no uffd-wp bit) and the tracker says
 * so with -ECHILD; freeing it in the child leaves the parent's tracking
 * intact; the parent's writes after the fork (COW) are reported, the
 * child's are not. */
START_TEST(uffd_fork)
{
	const size_t n = 64;
	bool want[64] = { false }, got[64];
	struct own o;
	pid_t pid;
	int st;

	own_start(&o, n, n, PM_WT_METHOD_UFFD);
	o.p[3 * ps] = 2;
	want[3] = true;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t a = (uintptr_t)o.p, e[64];
		struct pm_region v[4];
		int bad = 0;

		o.p[20 * ps] = 3;
		bad |= pm_wtrack_collect(o.wt, a, a + n * ps, v, 4, 0, NULL) != -ECHILD;
		bad |= (pm_wtrack_reset(o.wt) != -ECHILD) << 1;
		bad |= (pm_read(o.h, a, a + n * ps, e, NULL, NULL) != (long)n) << 2;
		for (size_t i = 0; i < n; i++)
			if (pm_entry_uffd_wp(e[i]))
				bad |= 8;
		pm_wtrack_free(o.wt);
		pm_close(o.h);
		_exit(bad);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %#x", st);
	o.p[30 * ps] = 4;
	want[30] = true;
	collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_COLLECT_RESET, 16, got);
	assert_pages(want, got, n, "parent after fork");
	o.p[31 * ps] = 5;
	collect_all(o.wt, (uintptr_t)o.p, n, 0, 16, got);
	ck_assert_uint_eq(count(got, n), 1);
	ck_assert(got[31]);
	/* a child still holding its copy of the userfaultfd keeps the kernel
	 * context alive: free must unregister, not just close */
	{
		int hold[2];
		char ch;

		ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(hold[1]);
			_exit(read(hold[0], &ch, 1) < 0);
		}
		close(hold[0]);
		pm_wtrack_free(o.wt);
		o.wt = track(o.h, o.p, n, PM_WT_METHOD_UFFD);
		close(hold[1]);
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	}
	own_stop(&o);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wtrack-uffd");
	TCase *t = tcase_create("wtrack-uffd");

	wtrack_test_init();
	tcase_set_timeout(t, 300);
	add_test_if(t, uffd_exact, have_uffd, NO_UFFD);
	add_test_if(t, uffd_dontneed, have_uffd, NO_UFFD);
	add_test_if(t, uffd_shared_and_file, have_uffd, NO_UFFD);
	add_test_if(t, uffd_mprotect, have_uffd, NO_UFFD);
	add_test_if(t, uffd_fork, have_uffd, NO_UFFD);
	add_test_if(t, uffd_thp_is_4k, have_uffd && thp_possible(),
		    have_uffd ? "THP is disabled on this machine" : NO_UFFD);
	add_test_if(t, uffd_hugetlb_whole,
		    have_uffd && access("/proc/sys/vm/nr_overcommit_hugepages", W_OK) == 0,
		    have_uffd ? "cannot make a surplus huge page" : NO_UFFD);
	suite_add_tcase(s, t);
	return run_suite(s);
}
