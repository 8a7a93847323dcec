/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_read against plain pread on quiescent child processes, many layouts. */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* shared[0], shared[1]: the span the child laid out; shared[2..]: extra */

static void build_random(void *arg, uint64_t *sh)
{
	uint64_t seed = (uintptr_t)arg, n = 1024;
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	madvise(p, n * ps, MADV_NOHUGEPAGE);
	for (uint64_t i = 0; i < n; i++)
		if (rnd(&seed) & 1)
			p[i * ps] = 1;
	sh[0] = (uintptr_t)p;
	sh[1] = (uintptr_t)p + n * ps;
}

/* VMAs separated by gaps of 1 page, 100 pages, 600 pages, 1 GiB, inside one
 * reservation so that nothing else lands in the gaps. */
static void build_gaps(void *arg, uint64_t *sh)
{
	static const uint64_t gaps[] = { 1, 100, 600, (1UL << 30) / 4096, 3, 511, 512, 513 };
	const size_t ng = sizeof(gaps) / sizeof(gaps[0]);
	uint64_t total = 0, seed = 7;
	char *base, *p;

	for (size_t i = 0; i < ng; i++)
		total += (8 + gaps[i]) * ps;
	total += 8 * ps;
	base = xmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
	p = base;
	for (size_t i = 0; i <= ng; i++) {
		xmap(p, 8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
		for (int j = 0; j < 8; j++)
			if (rnd(&seed) % 3)
				p[j * ps] = 1;
		p += 8 * ps;
		if (i < ng) {
			munmap(p, gaps[i] * ps);
			p += gaps[i] * ps;
		}
	}
	sh[0] = (uintptr_t)base;
	sh[1] = (uintptr_t)p;
}

/* 10,000 VMAs of 16 KiB, alternating protections so they cannot merge. */
#define MANY 10000
static void build_many(void *arg, uint64_t *sh)
{
	uint64_t seed = 3;
	char *base = xmap(NULL, MANY * 4 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	for (int i = 0; i < MANY; i++) {
		char *v = base + (uint64_t)i * 4 * ps;

		mprotect(v, 4 * ps, i % 2 ? PROT_READ | PROT_WRITE : PROT_READ);
		if (rnd(&seed) & 1)
			(void)*(volatile char *)v;
		if (i % 2 && rnd(&seed) & 1)
			v[ps] = 1;
	}
	sh[0] = (uintptr_t)base;
	sh[1] = (uintptr_t)base + MANY * 4 * ps;
}

/* 64 GiB reservation with one page written per 2 MiB. */
#define SPARSE (64ULL << 30)
static void build_sparse(void *arg, uint64_t *sh)
{
	char *p = xmap(NULL, SPARSE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);

	madvise(p, SPARSE, MADV_NOHUGEPAGE);
	for (uint64_t off = 0; off < SPARSE; off += HUGE_SZ)
		p[off] = 1;
	sh[0] = (uintptr_t)p;
	sh[1] = (uintptr_t)p + SPARSE;
}

static void build_thp(void *arg, uint64_t *sh)
{
	char *t = make_thp();
	char *p = xmap(NULL, 64 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);

	memset(p, 1, 64 * ps);
	sh[0] = (uintptr_t)t;
	sh[1] = (uintptr_t)t + HUGE_SZ;
	sh[2] = (uintptr_t)p;
}

static void compare(struct pm_handle *h, pid_t pid, uint64_t s, uint64_t e)
{
	size_t n = (e - s) / ps;
	uint64_t *a = malloc(n * 8), *b = malloc(n * 8);
	long r;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	memset(a, 0xa5, n * 8);
	r = pm_read(h, s, e, a, NULL, NULL);
	ck_assert_int_eq(r, (long)n);
	raw_read(pid, s, e, b);
	/* check's assertions are slow per call: compare first, explain after */
	if (memcmp(a, b, n * 8))
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(a[i] == b[i], "range %#lx-%#lx page %zu (%#lx): lib %#lx raw %#lx",
				      (unsigned long)s, (unsigned long)e, i,
				      (unsigned long)(s + i * ps), (unsigned long)a[i], (unsigned long)b[i]);
	free(a);
	free(b);
}

/* Whole span, every VMA, random subranges, single pages; both VMA sources. */
static void check_layout(struct child *c, int subranges)
{
	uint64_t lo = c->shared[0], hi = c->shared[1], seed = 99;

	for (int text = 0; text < 2; text++) {
		PM_OPTS(pm_open_opts, oo, .flags = text ? PM_OPEN_MAPS_TEXT : 0);
		struct pm_handle *h;
		struct pm_vma_list *l;

		ck_assert_int_eq(pm_open(c->pid, &oo, &h), 0);
		compare(h, c->pid, lo, hi);
		ck_assert_int_eq(pm_vmas(h, &l), 0);
		for (size_t i = 0; i < pm_vma_count(l); i++) {
			const struct pm_vma *v = pm_vma_at(l, i);

			if (v->start >= lo && v->end <= hi && v->end - v->start <= (1UL << 30))
				compare(h, c->pid, v->start, v->end);
		}
		pm_vma_list_free(l);
		for (int i = 0; i < subranges; i++) {
			uint64_t pages = (hi - lo) / ps;
			uint64_t a = lo + rnd(&seed) % pages * ps, b = lo + rnd(&seed) % pages * ps;

			if (a > b) {
				uint64_t t = a;
				a = b;
				b = t;
			}
			if (b - a > (256ULL << 30))
				b = a + (256ULL << 30);
			compare(h, c->pid, a, b + ps);
			compare(h, c->pid, a, a + ps);
		}
		pm_close(h);
	}
}

START_TEST(read_random_patterns)
{
	for (uintptr_t seed = 1; seed <= 4; seed++) {
		struct child c;

		child_start(&c, build_random, (void *)seed);
		check_layout(&c, 50);
		child_stop(&c);
	}
}
END_TEST

START_TEST(read_gaps)
{
	struct child c;
	struct pm_handle *h;
	PM_OPTS(pm_read_info, info);
	uint64_t *buf;
	size_t n;

	child_start(&c, build_gaps, NULL);
	check_layout(&c, 100);
	/* gaps of 512+ pages split the reads; the read-ahead after each VMA may
	 * take one more read (test-fault proves the gap bytes are not read) */
	n = (c.shared[1] - c.shared[0]) / ps;
	buf = malloc(n * 8);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[1], buf, NULL, &info), (long)n);
	ck_assert_uint_le(info.kernel_reads, 8 * (1 + info.retries));
	pm_close(h);
	free(buf);
	child_stop(&c);
}
END_TEST

START_TEST(read_many_vmas)
{
	struct child c;
	struct pm_handle *h;
	PM_OPTS(pm_read_info, info);
	uint64_t buf[MANY * 4];

	child_start(&c, build_many, NULL);
	check_layout(&c, 20);
	/* small mappings are joined: far fewer reads than VMAs (a
	 * certifying pass cuts each read at a PMD boundary: twice as many) */
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[1], buf, NULL, &info), MANY * 4);
	ck_assert_uint_le(info.kernel_reads, (MANY * 4 / 512 + 2) * (1 + 2 * info.retries));
	pm_close(h);
	child_stop(&c);
}
END_TEST

START_TEST(read_sparse_64g)
{
	struct child c;

	child_start(&c, build_sparse, NULL);
	check_layout(&c, 4);
	child_stop(&c);
}
END_TEST

START_TEST(read_thp_and_shmem)
{
	struct child c;

	child_start(&c, build_thp, NULL);
	ck_assert_uint_ne(c.shared[0], 0);
	check_layout(&c, 30);
	{
		struct pm_handle *h;

		ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
		compare(h, c.pid, c.shared[2], c.shared[2] + 64 * ps);
		/* starting and ending inside the THP */
		compare(h, c.pid, c.shared[0] + 7 * ps, c.shared[0] + 300 * ps);
		pm_close(h);
	}
	child_stop(&c);
}
END_TEST

/* Terabytes of gap: one pm_read over two VMAs 1 TiB apart. */
static void build_tera(void *arg, uint64_t *sh)
{
	const uint64_t span = (1ULL << 40) + 16 * ps;
	char *base = xmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);

	munmap(base + 8 * ps, span - 16 * ps);
	mprotect(base, 8 * ps, PROT_READ | PROT_WRITE);
	mprotect(base + span - 8 * ps, 8 * ps, PROT_READ | PROT_WRITE);
	base[0] = 1;
	base[span - ps] = 1;
	sh[0] = (uintptr_t)base;
	sh[1] = (uintptr_t)base + span;
}

START_TEST(read_terabyte_gap)
{
	struct child c;
	struct pm_handle *h;
	PM_OPTS(pm_read_info, info);
	uint64_t edge[8], *buf;
	size_t n;

	child_start(&c, build_tera, NULL);
	n = (c.shared[1] - c.shared[0]) / ps;
	buf = xmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1);
	memset(buf, 0xff, 8 * 8);
	memset(buf + n - 8, 0xff, 8 * 8);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[1], buf, NULL, &info), (long)n);
	/* (a guarded read that tripped re-reads the two VMAs per pass) */
	ck_assert_uint_le(info.kernel_reads, 3 * (1 + info.retries));
	raw_read(c.pid, c.shared[0], c.shared[0] + 8 * ps, edge);
	ck_assert_mem_eq(buf, edge, sizeof(edge));
	ck_assert(pm_entry_present(buf[0]));
	raw_read(c.pid, c.shared[1] - 8 * ps, c.shared[1], edge);
	ck_assert_mem_eq(buf + n - 8, edge, sizeof(edge));
	ck_assert(pm_entry_present(buf[n - 1]));
	for (size_t i = 8; i < n - 8; i += 4096 * 7 + 1)
		if (buf[i])
			ck_abort_msg("gap entry %zu is %#lx", i, (unsigned long)buf[i]);
	pm_close(h);
	munmap(buf, n * 8);
	child_stop(&c);
}
END_TEST

/* The caller's own address space, read through a self handle. */
START_TEST(read_self)
{
	uint64_t seed = 5, n = 512;
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct pm_handle *h;

	madvise(p, n * ps, MADV_NOHUGEPAGE);
	for (uint64_t i = 0; i < n; i++)
		if (rnd(&seed) & 1)
			p[i * ps] = 1;
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	compare(h, getpid(), (uintptr_t)p, (uintptr_t)p + n * ps);
	compare(h, getpid(), (uintptr_t)p + 3 * ps, (uintptr_t)p + 4 * ps);
	pm_close(h);
	munmap(p, n * ps);
}
END_TEST

static void build_nothing(void *arg, uint64_t *sh)
{
}

/* pagemap EOF is exit: every call on the handle of an exited process fails
 * with -ESRCH, whether or not the range holds a mapping. */
START_TEST(read_after_exit_is_esrch)
{
	for (int text = 0; text < 2; text++) {
		PM_OPTS(pm_open_opts, oo, .flags = text ? PM_OPEN_MAPS_TEXT : 0);
		struct child c;
		struct pm_handle *h;
		struct pm_vma_list *l;
		uint64_t buf[1024];
		uint64_t addr = (uintptr_t)&buf & ~(ps - 1);

		child_start(&c, build_nothing, NULL);
		ck_assert_int_eq(pm_open(c.pid, &oo, &h), 0);
		child_stop(&c);
		ck_assert_int_eq(pm_read(h, addr, addr + ps, buf, NULL, NULL), -ESRCH);
		ck_assert_int_eq(errno, ESRCH);
		ck_assert_int_eq(pm_read(h, addr, addr + 1024 * ps, buf, NULL, NULL), -ESRCH);
		ck_assert_int_eq(pm_read(h, ps, ps * 1024, buf, NULL, NULL), -ESRCH);
		ck_assert_int_eq(pm_vmas(h, &l), -ESRCH);
		pm_close(h);
	}
}
END_TEST

START_TEST(read_info_and_snapshot)
{
	struct child c;
	struct pm_handle *h;
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_SNAPSHOT);
	PM_OPTS(pm_read_info, info);
	uint64_t buf[1024];

	child_start(&c, build_random, (void *)9);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[1], buf, &o, &info), 1024);
	ck_assert(info.flags & PM_READ_INFO_GUARDED);
	/* a quiescent target: certified by the token, unless a concurrent
	 * THP event elsewhere on the machine tripped it and a certifying
	 * pass read it again piece by piece */
	ck_assert_uint_le(info.retries, 1);
	ck_assert_uint_ge(info.kernel_reads, 1 + 2 * info.retries);
	/* without SNAPSHOT the guard stays off on a fixed kernel (6.12), on
	 * by default on one without the fix (6.1) */
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[1], buf, NULL, &info), 1024);
	if (expect_feature(PM_FEAT_WALK_RETRY_FIX)) {
		ck_assert(!(info.flags & PM_READ_INFO_GUARDED));
		ck_assert_uint_eq(info.kernel_reads, 1);
	} else {
		ck_assert(info.flags & PM_READ_INFO_GUARDED);
	}
	pm_close(h);
	child_stop(&c);
}
END_TEST

/* PM_READ_F_STOP: another process is stopped for the read (pm_read and a
 * batch), the data exact; a handle on ourselves is refused. */
START_TEST(read_stop)
{
	struct child c;
	struct pm_handle *h, *self;
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_STOP | PM_READ_F_SNAPSHOT);
	PM_OPTS(pm_batch_opts, bo, .read_flags = PM_READ_F_STOP);
	PM_OPTS(pm_read_info, info);
	static uint64_t buf[1024], truth[1024];
	struct pm_batch *b;
	long res = 0;

	child_start(&c, build_random, (void *)9);
	raw_read(c.pid, c.shared[0], c.shared[1], truth);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[1], buf, &o, &info), 1024);
	ck_assert_mem_eq(buf, truth, sizeof(buf));
	ck_assert(info.flags & PM_READ_INFO_GUARDED);
	memset(buf, 0xff, sizeof(buf));
	ck_assert_int_eq(pm_batch_new(&bo, &b), 0);
	ck_assert_int_eq(pm_batch_add_read(b, h, c.shared[0], c.shared[1], buf, NULL, &res), 0);
	ck_assert_int_eq(pm_batch_run(b), 0);
	ck_assert_int_eq(res, 1024);
	ck_assert_mem_eq(buf, truth, sizeof(buf));
	ck_assert_int_eq(pm_open(0, NULL, &self), 0);
	ck_assert_int_eq(pm_read(self, (uintptr_t)buf & ~(ps - 1), ((uintptr_t)buf & ~(ps - 1)) + ps,
				 buf, &o, NULL),
			 -EPERM);
	ck_assert_int_eq(pm_batch_add_read(b, self, (uintptr_t)buf & ~(ps - 1),
					   ((uintptr_t)buf & ~(ps - 1)) + ps, buf, NULL, &res), 0);
	ck_assert_int_eq(pm_batch_run(b), 0);
	ck_assert_int_eq(res, -EPERM);
	pm_batch_free(b);
	pm_close(self);
	pm_close(h);
	child_stop(&c);
}
END_TEST

/* A target that maps and unmaps memory it never touches: no fault, no
 * RSS, no page table moves, only the VM size. PM_READ_F_SNAPSHOT must still
 * see the address space change (and re-read); the data stays exact. */
static void *map_unmap(void *arg)
{
	for (;;) {
		void *p = mmap(NULL, 64UL << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p != MAP_FAILED)
			munmap(p, 64UL << 20);
	}
	return arg;
}

static void build_mapping_churn(void *arg, uint64_t *sh)
{
	pthread_t t;

	build_random((void *)11, sh);
	pthread_create(&t, NULL, map_unmap, NULL);
}

START_TEST(snapshot_sees_vma_changes)
{
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_SNAPSHOT);
	uint64_t a[1024], b[1024], retried = 0;
	struct pm_handle *h;
	struct child c;

	child_start(&c, build_mapping_churn, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	raw_read(c.pid, c.shared[0], c.shared[1], b);
	/* until a few reads saw the change: how often one does depends on
	 * how the child's thread is scheduled (and on ASan's slow munmap).
	 * On a loaded machine every try of a read can overlap a map or an
	 * unmap: -EAGAIN is then the contract's answer, never other data. */
	for (int i = 0; i < 50000 && retried < 3; i++) {
		PM_OPTS(pm_read_info, info);
		long r = pm_read(h, c.shared[0], c.shared[1], a, &o, &info);

		if (r == -EAGAIN)
			continue;
		ck_assert_int_eq(r, 1024);
		ck_assert_mem_eq(a, b, sizeof(a));
		retried += info.retries > 0;
	}
	ck_assert_uint_ge(retried, 3);
	pm_close(h);
	kill(c.pid, SIGKILL);
	waitpid(c.pid, NULL, 0);
}
END_TEST

/* A populated VMA moved by mremap() into a gap: no counter the handle
 * reads moves, so a VMA list kept from the last read must not zero-fill
 * the gap (src/vma-cache.c): the read after the move sees its pages. */
#define MOVE_PAGES 16
#define MOVE_GAP 2048 /* well above a gap worth a read of its own */
static char *move_src, *move_dst;

static void move_into_gap(void)
{
	mremap(move_src, MOVE_PAGES * ps, MOVE_PAGES * ps, MREMAP_MAYMOVE | MREMAP_FIXED, move_dst);
}

static void build_move(void *arg, uint64_t *sh)
{
	const size_t len = (2 * MOVE_PAGES + MOVE_GAP) * ps;
	char *base = xmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	(void)arg;
	munmap(base + MOVE_PAGES * ps, MOVE_GAP * ps);
	memset(base, 1, MOVE_PAGES * ps);
	memset(base + len - MOVE_PAGES * ps, 1, MOVE_PAGES * ps);
	move_src = xmap(NULL, MOVE_PAGES * ps, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1);
	memset(move_src, 2, MOVE_PAGES * ps);
	move_dst = base + (MOVE_PAGES + MOVE_GAP / 2) * ps;
	child_on_change(sh, move_into_gap);
	sh[0] = (uintptr_t)base;
	sh[1] = (uintptr_t)base + len;
	sh[2] = (uintptr_t)move_dst;
}

START_TEST(read_sees_vma_moved_into_gap)
{
	PM_OPTS(pm_open_opts, oo, .flags = _i ? PM_OPEN_MAPS_TEXT : 0);
	PM_OPTS(pm_scan_opts, so, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	const size_t n = 2 * MOVE_PAGES + MOVE_GAP;
	uint64_t *a = calloc(n, 8), *b = calloc(n, 8), dst, we;
	struct pm_handle *hr, *hs, *hp;
	struct pm_region v[4];
	struct child c;

	child_start(&c, build_move, NULL);
	dst = c.shared[2];
	/* a handle for the read, one for the scan: each keeps the list its
	 * first scan read (with the maps text, whatever the range); and one
	 * whose first scan found nothing (a page of the gap), so that its
	 * next starts with small windows (no density of regions seen yet)
	 * and the scan itself, not the read under it, meets the gap */
	ck_assert_int_eq(pm_open(c.pid, &oo, &hr), 0);
	ck_assert_int_eq(pm_open(c.pid, &oo, &hs), 0);
	ck_assert_int_eq(pm_open(c.pid, &oo, &hp), 0);
	ck_assert_int_eq(pm_scan(hr, c.shared[0], c.shared[1], v, 4, &so, &we), 2);
	ck_assert_int_eq(pm_scan(hs, c.shared[0], c.shared[1], v, 4, &so, &we), 2);
	ck_assert_int_eq(pm_scan(hp, c.shared[0] + MOVE_PAGES * ps,
				 c.shared[0] + (MOVE_PAGES + 1) * ps, v, 4, &so, &we), 0);
	ck_assert_int_eq(pm_read(hr, c.shared[0], c.shared[1], a, NULL, NULL), (long)n);
	ck_assert(!pm_entry_present(a[(dst - c.shared[0]) / ps]));
	child_change(&c);
	raw_read(c.pid, c.shared[0], c.shared[1], b);
	ck_assert(pm_entry_present(b[(dst - c.shared[0]) / ps]));
	ck_assert_int_eq(pm_read(hr, c.shared[0], c.shared[1], a, NULL, NULL), (long)n);
	ck_assert_mem_eq(a, b, n * 8);
	/* the emulated scan skips gaps on the same facts */
	ck_assert_int_eq(pm_scan(hs, c.shared[0], c.shared[1], v, 4, &so, &we), 3);
	ck_assert_uint_eq(v[1].start, dst);
	ck_assert_uint_eq(v[1].end, dst + MOVE_PAGES * ps);
	ck_assert_int_eq(pm_scan(hp, c.shared[0], c.shared[1], v, 4, &so, &we), 3);
	ck_assert_uint_eq(v[1].start, dst);
	ck_assert_uint_eq(v[1].end, dst + MOVE_PAGES * ps);
	pm_close(hr);
	pm_close(hs);
	pm_close(hp);
	child_stop(&c);
	free(a);
	free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("read");
	TCase *t = tcase_create("read");

	test_init();
	tcase_set_timeout(t, 120);
	tcase_add_test(t, read_random_patterns);
	tcase_add_test(t, read_gaps);
	tcase_add_test(t, read_many_vmas);
	tcase_add_test(t, read_sparse_64g);
	add_test_if(t, read_thp_and_shmem, thp_possible(), "THP is disabled on this machine");
	tcase_add_test(t, read_terabyte_gap);
	tcase_add_test(t, read_self);
	tcase_add_test(t, read_after_exit_is_esrch);
	tcase_add_test(t, read_info_and_snapshot);
	tcase_add_test(t, read_stop);
	tcase_add_test(t, snapshot_sees_vma_changes);
	tcase_add_loop_test(t, read_sees_vma_moved_into_gap, 0, 2);
	suite_add_tcase(s, t);
	return run_suite(s);
}
