/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_scan: native PAGEMAP_SCAN, the emulated path, and a reference decoded
 * here from pm_read entries must give the same regions, on real layouts in
 * child processes, for a generated table of mask combinations; the output
 * must not depend on vec_len or on how the work was split.
 */
#include "common.h"
#include "scan-ref.h"
#include "internal.h"
#include "compat/uapi.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CATS_BOTH (PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE | PM_CAT_PFNZERO | PM_CAT_GUARD)

static uint64_t both; /* categories both paths support here */
static int (*real_ioctl)(int, unsigned long, void *); /* around fault injection */

/* ---- layouts: shared[0..1] is the span ---- */

static void build_mixed(void *arg, uint64_t *sh)
{
	uint64_t seed = (uintptr_t)arg, n = 4096;
	char path[] = "/tmp/pm-scan-XXXXXX";
	char *base = xmap(NULL, (n + 64) * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = base, *f;
	int fd;

	/* private anon: written, read-only-faulted (zero page), untouched */
	xmap(p, 2048 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	madvise(p, 2048 * ps, MADV_NOHUGEPAGE);
	touch_random(p, 2048, &seed, 4);
	/* guard pages inside it */
	madvise(p + 100 * ps, 3 * ps, 102);
	madvise(p + 1000 * ps, 1 * ps, 102);
	p += 2048 * ps;
	/* shmem: half written */
	xmap(p, 1024 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1);
	for (uint64_t i = 0; i < 1024; i++)
		if (rnd(&seed) & 1)
			p[i * ps] = 1;
	p += 1024 * ps;
	/* a hole, then a file mapping with some pages read */
	p += 64 * ps;
	fd = mkstemp(path);
	unlink(path);
	if (fd < 0 || ftruncate(fd, (off_t)(1024 * ps)))
		_exit(2);
	f = xmap(p, 1024 * ps, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd);
	for (uint64_t i = 0; i < 1024; i += 1 + rnd(&seed) % 40)
		(void)*(volatile char *)(f + i * ps);
	close(fd);
	sh[0] = (uintptr_t)base;
	sh[1] = (uintptr_t)base + (n + 64) * ps;
}

/* Thousands of regions: every other page present. */
static void build_sparse_regions(void *arg, uint64_t *sh)
{
	uint64_t n = 16384;
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	madvise(p, n * ps, MADV_NOHUGEPAGE);
	for (uint64_t i = 0; i < n; i += 2)
		p[i * ps] = 1;
	sh[0] = (uintptr_t)p;
	sh[1] = (uintptr_t)p + n * ps;
}

/* A THP, the huge zero page, and a 64 GiB sparse reservation after them. */
static void build_huge(void *arg, uint64_t *sh)
{
	char *t = make_thp(), *z, *s;

	z = xmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	z = (char *)(((uintptr_t)z + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
	madvise(z, HUGE_SZ, MADV_HUGEPAGE);
	(void)*(volatile char *)z;
	s = xmap(NULL, 64ULL << 30, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
	madvise(s, 64ULL << 30, MADV_NOHUGEPAGE);
	for (uint64_t off = 0; off < (64ULL << 30); off += 1ULL << 28)
		s[off] = 1;
	sh[0] = (uintptr_t)t;
	sh[1] = (uintptr_t)t + HUGE_SZ;
	sh[2] = (uintptr_t)z;
	sh[3] = (uintptr_t)s;
	sh[4] = (uintptr_t)s + (64ULL << 30);
}

/* VMAs of every kind back to back: private anonymous pages shared with a
 * forked copy (present, not exclusive: their kind is looked up), shmem,
 * a private file mapping, [heap]-like anonymous again, and a shared file
 * mapping. A lookup that took the kind of the first for the VMAs after it
 * would call their file pages anonymous. */
static void build_kinds(void *arg, uint64_t *sh)
{
	const size_t n = 64;
	char path[] = "/tmp/pm-kinds-XXXXXX";
	char *base = xmap(NULL, 5 * n * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1), *p;
	int fd = mkstemp(path);

	(void)arg;
	unlink(path);
	if (fd < 0 || ftruncate(fd, (off_t)(2 * n * ps)))
		_exit(2);
	xmap(base, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	xmap(base + n * ps, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
	     -1);
	xmap(base + 2 * n * ps, n * ps, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd);
	xmap(base + 3 * n * ps, n * ps, PROT_READ | PROT_WRITE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	p = mmap(base + 4 * n * ps, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
		 (off_t)(n * ps));
	if (p == MAP_FAILED)
		_exit(2);
	close(fd);
	madvise(base, 5 * n * ps, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < 5 * n; i++) {
		if (i / n == 2)
			(void)*(volatile char *)(base + i * ps);
		else
			base[i * ps] = 1;
	}
	hold_in_copy();
	sh[0] = (uintptr_t)base;
	sh[1] = (uintptr_t)base + 5 * n * ps;
}

START_TEST(scan_differential_kinds)
{
	struct child c;

	child_start(&c, build_kinds, NULL);
	differential(c.pid, c.shared[0], c.shared[1], both, 3);
	child_stop(&c);
}
END_TEST

START_TEST(scan_differential_mixed)
{
	for (uintptr_t seed = 1; seed <= 2; seed++) {
		struct child c;

		child_start(&c, build_mixed, (void *)seed);
		differential(c.pid, c.shared[0], c.shared[1], both, 3);
		/* ranges starting and ending mid-VMA */
		differential(c.pid, c.shared[0] + 777 * ps, c.shared[1] - 333 * ps, both, 3);
		child_stop(&c);
	}
}
END_TEST

START_TEST(scan_differential_huge)
{
	struct child c;

	child_start(&c, build_huge, NULL);
	differential(c.pid, c.shared[0], c.shared[1], both, 3);
	differential(c.pid, c.shared[2], c.shared[2] + HUGE_SZ, both, 3);
	/* mid-THP */
	differential(c.pid, c.shared[0] + 100 * ps, c.shared[0] + 300 * ps, both, 3);
	{
		struct pm_handle *h;
		struct pm_region v[4];
		/* HUGE alone: 6.12's PAGEMAP_SCAN has no GUARD, and a category
		 * neither path can give is -EOPNOTSUPP */
		PM_OPTS(pm_scan_opts, o, .category_mask = PM_CAT_PRESENT,
			.return_mask = PM_CAT_PRESENT | PM_CAT_HUGE);
		PM_OPTS(pm_scan_opts, oe, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
			.return_mask = PM_CAT_PRESENT);
		uint64_t we;

		ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
		/* 64 GiB sparse: one page per 256 MiB, both paths */
		ck_assert_int_eq(pm_scan(h, c.shared[3], c.shared[4], v, 4, &oe, &we), 4);
		ck_assert_uint_eq(v[1].start, c.shared[3] + (1ULL << 28));
		ck_assert_uint_eq(we, v[3].end + ((1ULL << 28) - ps));
		if (expect_feature(PM_FEAT_PAGEMAP_SCAN)) {
			/* native HUGE (6.12, not 6.1): exactly the THP */
			ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], v, 4, &o, &we), 1);
			ck_assert(v[0].categories & PM_CAT_HUGE);
			ck_assert_uint_eq(v[0].start, c.shared[0]);
			ck_assert_uint_eq(v[0].end, c.shared[1]);
		}
		/* HUGE has no honest emulation */
		oe.category_mask = PM_CAT_HUGE;
		ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], v, 4, &oe, &we), -EOPNOTSUPP);
		pm_close(h);
	}
	child_stop(&c);
}
END_TEST

/* The same answer whatever vec_len, on thousands of regions, both paths;
 * and max_pages at its edges. */
START_TEST(scan_vec_len_invariance)
{
	static const size_t lens[] = { 1, 7, 512, 513, 100000 };
	struct pm_region *full = malloc(MAXR * sizeof(*full)), *got = malloc(MAXR * sizeof(*got));
	struct child c;
	struct pm_handle *h;

	child_start(&c, build_sparse_regions, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	for (int emu = 0; emu < 2; emu++) {
		PM_OPTS(pm_scan_opts, o, .flags = emu ? PM_SCAN_F_EMULATE : 0,
			.category_anyof_mask = PM_CAT_PRESENT | PM_CAT_SWAPPED,
			.return_mask = PM_CAT_PRESENT);
		size_t nfull = collect(h, c.shared[0], c.shared[1], &o, MAXR, full);
		uint64_t total = 0, we;

		ck_assert_uint_eq(nfull, 8192);
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			size_t n = collect(h, c.shared[0], c.shared[1], &o, lens[i], got);

			ck_assert_uint_eq(n, nfull);
			ck_assert_mem_eq(got, full, n * sizeof(*got));
		}
		for (size_t i = 0; i < nfull; i++)
			total += (full[i].end - full[i].start) / ps;
		/* max_pages: 1, the exact total, one more */
		o.max_pages = 1;
		ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], got, MAXR, &o, &we), 1);
		ck_assert_uint_eq(got[0].end - got[0].start, ps);
		ck_assert_uint_eq(we, full[1].start); /* the first match not reported */
		o.max_pages = total;
		ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], got, MAXR, &o, &we),
				 (long)nfull);
		o.max_pages = total + 1;
		ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], got, MAXR, &o, &we),
				 (long)nfull);
		ck_assert_uint_eq(we, c.shared[1]);
		/* vec_len 0: nothing written, walk_end at the first match */
		o.max_pages = 0;
		ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], NULL, 0, &o, &we), 0);
		ck_assert_uint_eq(we, full[0].start);
	}
	pm_close(h);
	child_stop(&c);
	free(full);
	free(got);
}
END_TEST

START_TEST(scan_bad_arguments)
{
	struct pm_handle *h;
	struct pm_region v[4];
	uint64_t a = (uintptr_t)&v & ~(ps - 1), we = 0x77;
	PM_OPTS(pm_scan_opts, o, .category_mask = PM_CAT_PRESENT);
	struct pm_scan_opts bad = o;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_scan(NULL, a, a + ps, v, 4, &o, &we), -EINVAL);
	ck_assert_int_eq(pm_scan(h, a + 8, a + ps, v, 4, &o, &we), -EINVAL);
	ck_assert_int_eq(pm_scan(h, a, a + ps + 8, v, 4, &o, &we), -EINVAL);
	ck_assert_int_eq(pm_scan(h, a + ps, a, v, 4, &o, &we), -EINVAL);
	ck_assert_int_eq(pm_scan(h, a, a, v, 4, &o, &we), -EINVAL);
	ck_assert_int_eq(pm_scan(h, a, a + ps, NULL, 4, &o, &we), -EINVAL);
	ck_assert_int_eq(pm_scan(h, 1ULL << 62, (1ULL << 62) + ps, v, 4, &o, &we), -EINVAL);
	bad.flags = 1ULL << 20;
	ck_assert_int_eq(pm_scan(h, a, a + ps, v, 4, &bad, &we), -EINVAL);
	bad = o;
	bad.return_mask = 1ULL << 9;
	ck_assert_int_eq(pm_scan(h, a, a + ps, v, 4, &bad, &we), -EINVAL);
	bad = o;
	bad.category_inverted = 1ULL << 40;
	ck_assert_int_eq(pm_scan(h, a, a + ps, v, 4, &bad, &we), -EINVAL);
	bad = o;
	bad.size = 12;
	ck_assert_int_eq(pm_scan(h, a, a + ps, v, 4, &bad, &we), -EINVAL);
	ck_assert_uint_eq(we, 0x77);
	/* write-protect operations have no emulation */
	bad = o;
	bad.flags = PM_SCAN_F_EMULATE | PM_SCAN_F_WP_MATCHING;
	ck_assert_int_eq(pm_scan(h, a, a + ps, v, 4, &bad, &we), -EOPNOTSUPP);
	bad.flags = PM_SCAN_F_EMULATE;
	bad.category_mask = PM_CAT_WRITTEN;
	ck_assert_int_eq(pm_scan(h, a, a + ps, v, 4, &bad, &we), -EOPNOTSUPP);
	bad.category_mask = PM_CAT_WPALLOWED;
	ck_assert_int_eq(pm_scan(h, a, a + ps, v, 4, &bad, &we), -EOPNOTSUPP);
	ck_assert_int_eq(errno, EOPNOTSUPP);
	pm_close(h);
}
END_TEST

/* A kernel without the ioctl (ENOTTY, as 6.1 answers): the same answers,
 * computed by emulation. */
static int notty(int fd, unsigned long req, void *arg)
{
	if (req == PM__PAGEMAP_SCAN) {
		errno = ENOTTY;
		return -1;
	}
	return real_ioctl(fd, req, arg);
}

/* A kernel whose walk_end lags behind the regions it reported (6.18 does,
 * for vec_len above its bounce buffer), and one whose answer is out of
 * order: the first is corrected, the second refused. */
static int lag_mode;
static int lagging(int fd, unsigned long req, void *arg)
{
	struct pm__scan_arg *a = arg;
	int r = real_ioctl(fd, req, arg);

	if (req == PM__PAGEMAP_SCAN && r > 1) {
		struct pm__page_region *v = (void *)(uintptr_t)a->vec;

		if (lag_mode == 1) {
			a->walk_end = v[r / 2].start;
		} else {
			struct pm__page_region t = v[0];

			v[0] = v[1];
			v[1] = t;
		}
	}
	return r;
}

START_TEST(scan_kernel_bookkeeping)
{
	struct pm_region *a = malloc(MAXR * sizeof(*a)), *b = malloc(MAXR * sizeof(*b));
	PM_OPTS(pm_scan_opts, o, .category_anyof_mask = PM_CAT_PRESENT, .return_mask = PM_CAT_PRESENT);
	struct child c;
	struct pm_handle *h;
	size_t na, nb;
	uint64_t we;

	child_start(&c, build_sparse_regions, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	na = collect(h, c.shared[0], c.shared[1], &o, MAXR, a);
	(void)pm__kernel();
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = lagging;
	lag_mode = 1;
	nb = collect(h, c.shared[0], c.shared[1], &o, MAXR, b);
	same(a, na, b, nb, "lagging walk_end", &o);
	lag_mode = 2;
	ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], b, MAXR, &o, &we), -EIO);
	pm__sys.ioctl = real_ioctl;
	pm_close(h);
	child_stop(&c);
	free(a);
	free(b);
}
END_TEST

START_TEST(scan_enotty_emulates)
{
	struct pm_region *a = malloc(MAXR * sizeof(*a)), *b = malloc(MAXR * sizeof(*b));
	PM_OPTS(pm_scan_opts, o, .category_anyof_mask = PM_CAT_PRESENT | PM_CAT_SWAPPED,
		.return_mask = PM_CAT_PRESENT | PM_CAT_FILE);
	struct child c;
	struct pm_handle *h;
	size_t na, nb;

	child_start(&c, build_mixed, (void *)3);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	na = collect(h, c.shared[0], c.shared[1], &o, 100, a);
	(void)pm__kernel();
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = notty;
	nb = collect(h, c.shared[0], c.shared[1], &o, 100, b);
	o.flags = PM_SCAN_F_WP_MATCHING;
	ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], a, 1, &o, NULL), -EOPNOTSUPP);
	pm__sys.ioctl = real_ioctl;
	same(a, na, b, nb, "native vs ENOTTY emulation", &o);
	pm_close(h);
	child_stop(&c);
	free(a);
	free(b);
}
END_TEST

/* In the caller itself: native, emulated and reference on a region of
 * this process that nothing else touches. */
START_TEST(scan_differential_self)
{
	const size_t n = 2048;
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct pm_region *a = malloc(MAXR * sizeof(*a)), *b = malloc(MAXR * sizeof(*b)),
			 *x = malloc(MAXR * sizeof(*x));
	uint64_t seed = 5, s0 = (uintptr_t)p, e0 = s0 + n * ps;
	struct pm_handle *h;
	struct ref r;

	madvise(p, n * ps, MADV_NOHUGEPAGE);
	touch_random(p, n, &seed, 3);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ref_build(h, s0, e0, &r);
	for (uint64_t mask = 0; mask <= both; mask = ((mask | ~both) + 1) & both) {
		PM_OPTS(pm_scan_opts, o, .category_mask = mask, .return_mask = both);
		PM_OPTS(pm_scan_opts, oe, .flags = PM_SCAN_F_EMULATE, .category_mask = mask,
			.return_mask = both);
		size_t nr = ref_scan(&r, &o, x), na = collect(h, s0, e0, &o, 7, a),
		       nb = collect(h, s0, e0, &oe, 7, b);

		same(a, na, x, nr, "self native vs reference", &o);
		same(b, nb, x, nr, "self emulated vs reference", &o);
		if (mask == both)
			break;
	}
	free(r.cats);
	free(a);
	free(b);
	free(x);
	pm_close(h);
	munmap(p, n * ps);
}
END_TEST

/* uffd-wp async (native): WPALLOWED covers the registered range; after
 * arming, WRITTEN is exactly the pages written; collect-and-reset with
 * WP_MATCHING in calls of one region each loses nothing (the library
 * never write-protects a page it does not report). */
START_TEST(scan_uffd_written)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = (1ULL << 15) | (1ULL << 13) /* WP_ASYNC, WP_UNPOPULATED */ };
	const size_t n = 64;
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct uffdio_register reg = { .range = { (uintptr_t)p, n * ps },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	uint64_t a = (uintptr_t)p, b = a + n * ps, we, seed = 17, written = 0;
	PM_OPTS(pm_scan_opts, arm, .flags = PM_SCAN_F_WP_MATCHING | PM_SCAN_F_CHECK_WPASYNC,
		.category_mask = PM_CAT_WRITTEN, .return_mask = PM_CAT_WRITTEN);
	PM_OPTS(pm_scan_opts, get, .category_mask = PM_CAT_WRITTEN, .return_mask = PM_CAT_WRITTEN);
	PM_OPTS(pm_scan_opts, wpa, .category_mask = PM_CAT_WPALLOWED,
		.return_mask = PM_CAT_WPALLOWED);
	struct pm_region v[64];
	struct pm_handle *h;
	bool want[64] = { false }, got[64] = { false };
	long r;

	ck_assert_int_ge(fd, 0);
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	ck_assert_int_eq(ioctl((int)fd, UFFDIO_API, &api), 0);
	ck_assert_int_eq(ioctl((int)fd, UFFDIO_REGISTER, &reg), 0);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_scan(h, a, b, v, 64, &wpa, &we), 1);
	ck_assert(v[0].start == a && v[0].end == b);
	/* arm: write-protect everything, no output */
	ck_assert_int_eq(pm_scan(h, a, b, NULL, 0, &arm, &we), 0);
	ck_assert_int_eq(pm_scan(h, a, b, v, 64, &get, &we), 0);
	for (size_t i = 0; i < n; i++)
		if (rnd(&seed) % 3 == 0) {
			p[i * ps] = 1;
			want[i] = true;
			written++;
		}
	/* collect and reset, one region per call */
	for (uint64_t cur = a; cur < b; cur = we) {
		r = pm_scan(h, cur, b, v, 1, &arm, &we);
		ck_assert_int_ge(r, 0);
		ck_assert_int_le(r, 1);
		for (long k = 0; k < r; k++)
			for (uint64_t x = v[k].start; x < v[k].end; x += ps)
				got[(x - a) / ps] = true;
	}
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(got[i] == want[i], "page %zu: written %d, reported %d", i, want[i],
			      got[i]);
	/* everything reported was re-armed, nothing else was touched */
	ck_assert_int_eq(pm_scan(h, a, b, v, 64, &get, &we), 0);
	p[5 * ps] = 2;
	ck_assert_int_eq(pm_scan(h, a, b, v, 64, &get, &we), 1);
	ck_assert_uint_eq(v[0].start, a + 5 * ps);
	ck_assert_uint_eq(v[0].end, a + 6 * ps);
	/* CHECK_WPASYNC on memory without async uffd-wp: the kernel's EPERM */
	{
		char *q = xmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

		ck_assert_int_eq(pm_scan(h, (uintptr_t)q, (uintptr_t)q + ps, v, 1, &arm, &we),
				 -EPERM);
	}
	ck_assert_uint_gt(written, 0);
	pm_close(h);
	close((int)fd);
}
END_TEST

/* Write-protect-only scans (vec_len 0) never hand the kernel an empty
 * vector (some 6.12 stables oops on it): the library passes its own and
 * continues past 512 regions, and everything matched ends up protected. */
static int wp_calls, empty_vectors;

static int watch_vectors(int fd, unsigned long req, void *arg)
{
	const struct pm__scan_arg *a = arg;

	if (req == PM__PAGEMAP_SCAN && (a->flags & PM_SCAN_F_WP_MATCHING)) {
		wp_calls++;
		empty_vectors += !a->vec || !a->vec_len;
	}
	return real_ioctl(fd, req, arg);
}

START_TEST(scan_wp_only_never_sends_an_empty_vector)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = (1ULL << 15) | (1ULL << 13) /* WP_ASYNC, WP_UNPOPULATED */ };
	const size_t n = 2048;
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct uffdio_register reg = { .range = { (uintptr_t)p, n * ps },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	uint64_t a = (uintptr_t)p, b = a + n * ps, we = 0;
	PM_OPTS(pm_scan_opts, arm, .flags = PM_SCAN_F_WP_MATCHING, .category_mask = PM_CAT_WRITTEN,
		.return_mask = PM_CAT_WRITTEN);
	PM_OPTS(pm_scan_opts, get, .category_mask = PM_CAT_WRITTEN, .return_mask = PM_CAT_WRITTEN);
	struct pm_region v[4];
	struct pm_handle *h;

	ck_assert_int_ge(fd, 0);
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	memset(p, 1, n * ps);
	ck_assert_int_eq(ioctl((int)fd, UFFDIO_API, &api), 0);
	ck_assert_int_eq(ioctl((int)fd, UFFDIO_REGISTER, &reg), 0);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = watch_vectors;
	ck_assert_int_eq(pm_scan(h, a, b, NULL, 0, &arm, &we), 0);
	ck_assert_uint_eq(we, b);
	for (size_t i = 0; i < n; i += 2)
		p[i * ps] = 2; /* 1,024 written regions: more than one kernel pass */
	wp_calls = 0;
	ck_assert_int_eq(pm_scan(h, a, b, NULL, 0, &arm, &we), 0);
	ck_assert_uint_eq(we, b);
	ck_assert_int_ge(wp_calls, 2);
	ck_assert_int_eq(empty_vectors, 0);
	pm__sys.ioctl = real_ioctl;
	ck_assert_int_eq(pm_scan(h, a, b, v, 4, &get, &we), 0);
	pm_close(h);
	close((int)fd);
	munmap(p, n * ps);
}
END_TEST

/* Which path a default pm_scan takes, counted at the ioctl: native where
 * the kernel has PAGEMAP_SCAN (6.12), emulated where not (6.1); with
 * PM_CAT_SOFT_DIRTY native on 6.12, emulated on 6.1, refused without
 * soft-dirty (the host). */
static int scan_ioctls_ok;

static int count_scans(int fd, unsigned long req, void *arg)
{
	int r = real_ioctl(fd, req, arg);

	scan_ioctls_ok += req == PM__PAGEMAP_SCAN && r >= 0;
	return r;
}

START_TEST(scan_path_matches_kernel)
{
	const struct kline *k = kline();
	bool native = expect_feature(PM_FEAT_PAGEMAP_SCAN), sd = expect_feature(PM_FEAT_SOFT_DIRTY);
	char *p = xmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t a = (uintptr_t)p;
	PM_OPTS(pm_scan_opts, o, .category_mask = PM_CAT_PRESENT, .return_mask = PM_CAT_PRESENT);
	PM_OPTS(pm_scan_opts, osd, .category_mask = PM_CAT_SOFT_DIRTY,
		.return_mask = PM_CAT_SOFT_DIRTY);
	struct pm_region v[4];
	struct pm_handle *h;
	long r;

	p[3 * ps] = 1;
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	(void)pm__kernel();
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = count_scans;
	scan_ioctls_ok = 0;
	ck_assert_int_eq(pm_scan(h, a, a + 16 * ps, v, 4, &o, NULL), 1);
	ck_assert_int_eq(scan_ioctls_ok > 0, native);
	scan_ioctls_ok = 0;
	r = pm_scan(h, a, a + 16 * ps, v, 4, &osd, NULL);
	pm__sys.ioctl = real_ioctl;
	if (sd) {
		/* a new VMA reads soft-dirty whole */
		ck_assert_int_eq(r, 1);
		ck_assert_uint_eq(v[0].start, a);
		ck_assert_uint_eq(v[0].end, a + 16 * ps);
		ck_assert_int_eq(scan_ioctls_ok > 0, native);
	} else if (native) {
		/* a PAGEMAP_SCAN that accepts the category on a kernel
		 * without soft-dirty (the host): its answer, nothing dirty */
		ck_assert_int_eq(r, 0);
	} else {
		ck_assert_int_eq(r, -EOPNOTSUPP);
	}
	fprintf(stderr, "pm_scan on %s: %s, soft-dirty %s\n", k ? k->name : "this kernel",
		native ? "native" : "emulated",
		!sd ? (native ? "never set (native)" : "refused") : native ? "native" : "emulated");
	pm_close(h);
	munmap(p, 16 * ps);
}
END_TEST

/* A VMA's kind changes between continuation calls: the second half of an
 * anonymous range becomes a private mapping of a file, read. The handle's
 * VMA list kept from the first call says anonymous; the emulated scan must
 * not take that kind (a present file page in a private anonymous VMA is
 * not FILE, the huge zero page's rule) once the target's counters moved. */
#define KIND_PAGES 16
static char *kind_base;
static int kind_fd;

static void kind_to_file(void)
{
	volatile char *p = mmap(kind_base + KIND_PAGES / 2 * ps, KIND_PAGES / 2 * ps, PROT_READ,
				MAP_PRIVATE | MAP_FIXED, kind_fd, 0);

	for (size_t i = 0; p != MAP_FAILED && i < KIND_PAGES / 2; i++)
		(void)p[i * ps];
}

static void build_kind(void *arg, uint64_t *sh)
{
	static char page[65536];

	(void)arg;
	kind_fd = memfd_create("kind", MFD_CLOEXEC);
	memset(page, 3, sizeof(page));
	if (kind_fd < 0 || pwrite(kind_fd, page, KIND_PAGES / 2 * ps, 0) < 0)
		_exit(1);
	kind_base = xmap(NULL, KIND_PAGES * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1);
	madvise(kind_base, KIND_PAGES * ps, MADV_NOHUGEPAGE);
	/* the page before the second half stays empty: two regions */
	memset(kind_base, 1, (KIND_PAGES / 2 - 1) * ps);
	memset(kind_base + KIND_PAGES / 2 * ps, 1, KIND_PAGES / 2 * ps);
	child_on_change(sh, kind_to_file);
	sh[0] = (uintptr_t)kind_base;
	sh[1] = (uintptr_t)kind_base + KIND_PAGES * ps;
}

/* Scan the first half, make the child's change, scan on from walk_end:
 * the second half is file pages now, and must be reported FILE. */
static void kind_change(bool maps_text, void (*build)(void *, uint64_t *))
{
	PM_OPTS(pm_open_opts, oo, .flags = maps_text ? PM_OPEN_MAPS_TEXT : 0);
	PM_OPTS(pm_scan_opts, o, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT | PM_CAT_FILE);
	uint64_t half, we;
	struct pm_region v[1];
	struct pm_handle *h;
	struct child c;

	ck_assert(KIND_PAGES / 2 * ps <= 65536);
	child_start(&c, build, NULL);
	half = c.shared[0] + KIND_PAGES / 2 * ps;
	ck_assert_int_eq(pm_open(c.pid, &oo, &h), 0);
	ck_assert_int_eq(pm_scan(h, c.shared[0], c.shared[1], v, 1, &o, &we), 1);
	ck_assert_uint_eq(v[0].end, half - ps);
	ck_assert_uint_eq(v[0].categories, PM_CAT_PRESENT);
	ck_assert_uint_le(we, half);
	child_change(&c);
	ck_assert_int_eq(pm_scan(h, we, c.shared[1], v, 1, &o, &we), 1);
	ck_assert_uint_eq(v[0].start, half);
	ck_assert_uint_eq(v[0].end, c.shared[1]);
	ck_assert_uint_eq(v[0].categories, PM_CAT_PRESENT | PM_CAT_FILE);
	pm_close(h);
	child_stop(&c);
}

START_TEST(scan_kind_change_between_calls)
{
	kind_change(_i, build_kind);
}
END_TEST

/* The same change without a fault: a private file mapping, its pages read
 * in while the list was kept, moved by mremap() over the second half. No
 * fault is counted; only statm (the size and resident pages of what the
 * move unmapped) says the kept list is old, and the kind must follow it. */
static char *move_file;

static void kind_by_move(void)
{
	mremap(move_file, KIND_PAGES / 2 * ps, KIND_PAGES / 2 * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
	       kind_base + KIND_PAGES / 2 * ps);
}

/* Stack the signal that makes the change will use, faulted in now. */
static __attribute__((noinline)) void touch_stack(void)
{
	volatile char pad[64 * 1024];

	memset((char *)pad, 0, sizeof(pad));
}

static void build_kind_move(void *arg, uint64_t *sh)
{
	build_kind(arg, sh);
	touch_stack();
	move_file = mmap(NULL, KIND_PAGES / 2 * ps, PROT_READ, MAP_PRIVATE, kind_fd, 0);
	if (move_file == MAP_FAILED)
		_exit(1);
	for (size_t i = 0; i < KIND_PAGES / 2; i++)
		(void)((volatile char *)move_file)[i * ps];
	/* a move in place binds mremap() now: no fault when the change runs */
	if (mremap(move_file, KIND_PAGES / 2 * ps, KIND_PAGES / 2 * ps, 0) != move_file)
		_exit(1);
	child_on_change(sh, kind_by_move);
}

START_TEST(scan_kind_change_without_fault)
{
	kind_change(_i, build_kind_move);
}
END_TEST

/* A kind that changes in the middle of a call. 325 contiguous private
 * anonymous VMAs shared with a forked copy (not exclusive: their kind is
 * looked up, and the lookup covers the run of them), a gap of 2,048 pages,
 * one more VMA. A page limit keeps the windows at 512, 768 and 1,152 pages
 * (half as large again while no region closes); as the third window's
 * read begins, the child maps a file over one VMA of the run and reads it
 * in. The gap after the run in that window
 * has the list read again (a list kept from an earlier call says nothing
 * of gaps), and that list knows the file: its pages are FILE, as the list
 * read after them says, not anonymous as the run looked up in the first
 * window said. (Where the guard brackets the call, the change fails the
 * bracket and the call is made again after it: the answer is checked
 * there too, but that path passed before the fix as well.) */
#define RUN_VMAS 325
#define RUN_PAGES (RUN_VMAS * 4)
#define RUN_FILE 1288 /* the VMA the child replaces: in the third window */
#define RUN_THIRD (512 + 768) /* where the third window starts */
static char *run_base;
static int run_fd;

static void run_to_file(void)
{
	volatile char *p = mmap(run_base + RUN_FILE * ps, 4 * ps, PROT_READ,
				MAP_PRIVATE | MAP_FIXED, run_fd, 0);

	for (size_t i = 0; p != MAP_FAILED && i < 4; i++)
		(void)p[i * ps];
}

static void build_run(void *arg, uint64_t *sh)
{
	const size_t len = (RUN_PAGES + 2048 + 4) * ps;

	(void)arg;
	run_fd = memfd_create("run", MFD_CLOEXEC);
	if (run_fd < 0 || ftruncate(run_fd, (off_t)(4 * ps)))
		_exit(2);
	run_base = xmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	madvise(run_base, len, MADV_NOHUGEPAGE);
	memset(run_base, 1, RUN_PAGES * ps);
	memset(run_base + (RUN_PAGES + 2048) * ps, 1, 4 * ps);
	munmap(run_base + RUN_PAGES * ps, 2048 * ps);
	for (size_t i = 1; i < RUN_VMAS; i += 2)
		mprotect(run_base + i * 4 * ps, 4 * ps, PROT_READ);
	hold_in_copy();
	child_on_change(sh, run_to_file);
	sh[0] = (uintptr_t)run_base;
	sh[1] = (uintptr_t)run_base + len;
}

static struct child run_child;
static int run_pagemap_fd, run_maps_fd, run_maps_before, run_maps_after;
static off_t run_third; /* the third window's first entry, in the file */
static bool run_armed, run_changed;
static ssize_t (*run_real_pread)(int, void *, size_t, off_t);

static ssize_t change_at_third(int fd, void *buf, size_t n, off_t off)
{
	if (run_armed && fd == run_pagemap_fd && off >= run_third) {
		run_armed = false;
		child_change(&run_child);
		run_changed = true;
	}
	if (fd == run_maps_fd) {
		run_maps_before += !run_changed;
		run_maps_after += run_changed;
	}
	return run_real_pread(fd, buf, n, off);
}

/* One try: true when the call took the path meant (the kept list checked,
 * not read, before the change; read again after it), and then its answer
 * is checked. */
static bool kind_change_within_a_call(void)
{
	PM_OPTS(pm_open_opts, oo, .flags = PM_OPEN_MAPS_TEXT);
	PM_OPTS(pm_scan_opts, o, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT | PM_CAT_FILE, .max_pages = 1 << 20);
	struct pm_region v[8];
	struct pm_handle *h;
	uint64_t a, we;
	bool meant;

	child_start(&run_child, build_run, NULL);
	a = run_child.shared[0];
	ck_assert_int_eq(pm_open(run_child.pid, &oo, &h), 0);
	run_pagemap_fd = h->pagemap_fd;
	run_maps_fd = pm__handle_fd(h, &h->maps_fd, "maps");
	run_third = (off_t)((a / ps + RUN_THIRD) * 8);
	run_real_pread = pm__sys.pread;
	pm__sys.pread = change_at_third;
	/* until a call takes the kept list as it is */
	for (int i = 0; i < 16 && (i == 0 || run_maps_before); i++) {
		run_maps_before = 0;
		ck_assert_int_eq(pm_scan(h, a, run_child.shared[1], v, 8, &o, &we), 2);
		ck_assert_uint_eq(v[0].end, a + RUN_PAGES * ps);
		ck_assert_uint_eq(v[0].categories, PM_CAT_PRESENT);
	}
	run_maps_before = run_maps_after = 0;
	run_changed = false;
	run_armed = true;
	ck_assert_int_ge(pm_scan(h, a, run_child.shared[1], v, 8, &o, &we), 2);
	pm__sys.pread = run_real_pread;
	ck_assert(run_changed);
	meant = !run_maps_before && run_maps_after;
	if (meant) {
		ck_assert_uint_eq(v[1].start, a + RUN_FILE * ps);
		ck_assert_uint_eq(v[1].end, a + (RUN_FILE + 4) * ps);
		ck_assert_uint_eq(v[1].categories, PM_CAT_PRESENT | PM_CAT_FILE);
		ck_assert_uint_eq(v[2].categories, PM_CAT_PRESENT);
	}
	pm_close(h);
	child_stop(&run_child);
	return meant;
}

START_TEST(scan_kind_change_within_a_call)
{
	int tries = 0;

	while (!kind_change_within_a_call())
		ck_assert_msg(++tries < 5, "no call read the list after the change only: the "
			      "counters moved first, or the windows are no longer 512, 768, 1,152");
}
END_TEST

/* The emulated scan answers the identity check with the last stat text it
 * read when nothing of the target was read after it (vma-cursor.c). Here
 * the target is a CLONE_VM child, whose pagemap reads our own memory for
 * as long as we live: it is killed and reaped by the pread hook right
 * after the kept list's stat read and before the next window's pagemap
 * read, which still succeeds. That stat text showed the child: taken for
 * the check after the later read, it would let our memory out as the
 * child's. */
#define ID_PAGES 2048
#ifdef __SANITIZE_ADDRESS__
#define SANITIZED true
#else
#define SANITIZED false
#endif
static int id_stat_fd, id_pagemap_fd, id_maps_fd, id_stat_reads, id_maps_reads;
static pid_t id_child;
static bool id_armed;
static ssize_t (*real_pread)(int, void *, size_t, off_t);

static ssize_t kill_after_stat(int fd, void *buf, size_t n, off_t off)
{
	id_stat_reads += fd == id_stat_fd;
	id_maps_reads += fd == id_maps_fd;
	if (id_armed && fd == id_pagemap_fd && id_stat_reads && id_child > 0) {
		kill(id_child, SIGKILL);
		waitpid(id_child, NULL, 0);
		id_child = 0;
	}
	return real_pread(fd, buf, n, off);
}

static int id_child_main(void *arg)
{
	char ch;

	/* raw system calls only: it shares our memory and TLS */
	syscall(SYS_read, (int)(intptr_t)arg, &ch, 1);
	syscall(SYS_exit, 0);
	return 0;
}

/* The kernel shows PFNs by the credentials a pagemap was opened with, not
 * the reader's: a handle opened unprivileged and used as root has none,
 * and the emulated scan cannot tell zero pages: -EOPNOTSUPP, not present
 * pages reported without PFNZERO. */
START_TEST(scan_pfnzero_needs_the_handles_pfns)
{
	PM_OPTS(pm_scan_opts, so, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT | PM_CAT_PFNZERO);
	char *p = xmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct pm_region reg[4];
	struct pm_handle *h;

	memset(p, 1, 4 * ps);
	ck_assert_int_eq(setresgid(65534, 65534, 0), 0);
	ck_assert_int_eq(setresuid(65534, 65534, 0), 0);
	prctl(PR_SET_DUMPABLE, 1); /* a uid change cleared it: our /proc files are root's */
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(setresuid(0, 0, 0), 0);
	ck_assert_int_eq(setresgid(0, 0, 0), 0);
	ck_assert_int_eq(pm_has_feature(PM_FEAT_PFN_VISIBLE), 1);
	ck_assert_int_eq(pm_scan(h, (uintptr_t)p, (uintptr_t)p + 4 * ps, reg, 4, &so, NULL),
			 -EOPNOTSUPP);
	pm_close(h);
	munmap(p, 4 * ps);
}
END_TEST

START_TEST(scan_identity_after_last_stat_read)
{
	PM_OPTS(pm_open_opts, oo, .flags = PM_OPEN_MAPS_TEXT);
	/* a page limit (the range's pages: it stops the call where the range
	 * ends) keeps the windows small, 512 pages and growing: several */
	PM_OPTS(pm_scan_opts, o, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT | PM_CAT_FILE, .max_pages = ID_PAGES);
	const size_t vec = 8192;
	struct pm_region *v = calloc(vec, sizeof(*v));
	char *stack = xmap(NULL, 64 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *empty = xmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	int fd = memfd_create("ident", MFD_CLOEXEC), p[2];
	volatile char *f;
	uint64_t a, we;
	struct pm_handle *h;
	long r;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(ID_PAGES * ps)), 0);
	f = xmap(NULL, ID_PAGES * ps, PROT_READ, MAP_PRIVATE, fd);
	for (size_t i = 0; i < ID_PAGES; i++)
		(void)f[i * ps];
	a = (uint64_t)(uintptr_t)f;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	id_child = clone(id_child_main, stack + 64 * 1024, CLONE_VM | SIGCHLD, (void *)(intptr_t)p[0]);
	ck_assert_int_gt(id_child, 0);
	ck_assert_int_eq(pm_open(id_child, &oo, &h), 0);
	/* a scan that finds nothing keeps the list */
	ck_assert_int_eq(pm_scan(h, (uintptr_t)empty, (uintptr_t)empty + ps, v, vec, &o, &we), 0);
	id_stat_fd = h->stat_fd;
	id_pagemap_fd = h->pagemap_fd;
	id_maps_fd = pm__handle_fd(h, &h->maps_fd, "maps"); /* may be opened lazily */
	real_pread = pm__sys.pread;
	pm__sys.pread = kill_after_stat;
	/* until a scan takes the kept list as it is: the child's statm is
	 * ours, which our first faults in the forked test move for a few
	 * calls */
	for (int i = 0; i < 16 && (i == 0 || id_maps_reads); i++) {
		id_maps_reads = 0;
		ck_assert_int_eq(pm_scan(h, a, a + ID_PAGES * ps, v, vec, &o, &we), 1);
	}
	ck_assert_int_eq(id_maps_reads, 0);
	id_stat_reads = 0;
	id_armed = true;
	r = pm_scan(h, a, a + ID_PAGES * ps, v, vec, &o, &we);
	pm__sys.pread = real_pread;
	/* the path meant: a kept list checked (one stat read), not read again */
	ck_assert_int_eq(id_child, 0);
	ck_assert_int_eq(id_maps_reads, 0);
	ck_assert_int_eq(r, -ESRCH);
	pm_close(h);
	close(p[1]);
	close(p[0]);
	close(fd);
	munmap((void *)f, ID_PAGES * ps);
	munmap(stack, 64 * 1024);
	munmap(empty, ps);
	free(v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("scan");
	TCase *t = tcase_create("scan");
	bool uffd;

	test_init();
	both = CATS_BOTH;
	if (!expect_feature(PM_FEAT_PFN_VISIBLE) || access("/proc/kpageflags", R_OK))
		both &= ~PM_CAT_PFNZERO;
	if (!expect_feature(PM_FEAT_GUARD_REGIONS)) {
		both &= ~PM_CAT_GUARD;
		fprintf(stderr, "SKIP GUARD in the differential scans: %s\n",
			lacks(PM_FEAT_GUARD_REGIONS));
	}
	tcase_set_timeout(t, 300);
	/* without PAGEMAP_SCAN (6.1) the default path is the emulation too */
	tcase_add_test(t, scan_differential_mixed);
	tcase_add_test(t, scan_differential_kinds);
	tcase_add_test(t, scan_vec_len_invariance);
	tcase_add_test(t, scan_enotty_emulates);
	tcase_add_test(t, scan_path_matches_kernel);
	add_test_if(t, scan_kernel_bookkeeping, expect_feature(PM_FEAT_PAGEMAP_SCAN),
		    lacks(PM_FEAT_PAGEMAP_SCAN));
	add_test_if(t, scan_differential_huge, thp_possible(), "THP is disabled on this machine");
	tcase_add_test(t, scan_bad_arguments);
	tcase_add_test(t, scan_differential_self);
	tcase_add_loop_test(t, scan_kind_change_between_calls, 0, 2);
	tcase_add_loop_test(t, scan_kind_change_without_fault, 0, 2);
	tcase_add_test(t, scan_kind_change_within_a_call);
	add_test_if(t, scan_pfnzero_needs_the_handles_pfns, geteuid() == 0,
		    "changing credentials needs root");
	add_test_if(t, scan_identity_after_last_stat_read, !SANITIZED,
		    "the sanitizer's allocator moves our statm, the CLONE_VM target's, every call");
	uffd = expect_feature(PM_FEAT_UFFD_WP_ASYNC) && expect_feature(PM_FEAT_PAGEMAP_SCAN);
	add_test_if(t, scan_uffd_written, uffd, lacks(PM_FEAT_UFFD_WP_ASYNC));
	add_test_if(t, scan_wp_only_never_sends_an_empty_vector, uffd,
		    lacks(PM_FEAT_UFFD_WP_ASYNC));
	suite_add_tcase(s, t);
	return run_suite(s);
}
