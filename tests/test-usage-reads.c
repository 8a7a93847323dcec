/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What pm_usage reads of /proc/kpagecount: none for a page whose entry
 * tells its mapcount, which depends on whether mapcounts are per page
 * (probe-mapcount.c), and one per pass for a page many processes map,
 * with a pass's cache (usage-cache.c). Real children, real THPs;
 * kpagecount's answers faked only to play a kernel that counts per folio
 * (6.15+ built with CONFIG_NO_PAGE_MAPCOUNT, which this machine is not). */
#include "common.h"
#include "internal.h"
#include "kpages.h"
#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGES 1024

static ssize_t (*real_pread)(int, void *, size_t, off_t);
static bool fake_counts; /* every kpagecount record reads fake_count */
static uint64_t fake_count;
/* else, where set: the n-th kpagecount read gets script[n] (two records) */
static const uint64_t (*script)[2];
static size_t script_len, script_at;
#define WATCH 8192
static uint64_t watch[WATCH]; /* PFNs watched, sorted */
static size_t nwatch;
static size_t watch_reads; /* kpagecount reads with a record of a watched PFN */

static bool is_kpagecount(int fd)
{
	char path[64], link[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link));
	return n == 16 && !memcmp(link, "/proc/kpagecount", 16);
}

static bool watched(uint64_t lo, uint64_t n)
{
	for (size_t i = 0; i < nwatch; i++)
		if (watch[i] >= lo && watch[i] < lo + n)
			return true;
	return false;
}

static ssize_t hook_pread(int fd, void *buf, size_t n, off_t off)
{
	ssize_t r = real_pread(fd, buf, n, off);

	if (r > 0 && is_kpagecount(fd)) {
		watch_reads += watched((uint64_t)off / 8, (uint64_t)r / 8);
		for (ssize_t i = 0; fake_counts && i < r / 8; i++)
			((uint64_t *)buf)[i] = fake_count;
		if (script && script_at < script_len && r == 16)
			memcpy(buf, script[script_at++], 16);
	}
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* 4 MiB of a memfd mapped shared and read: shmem pages only this child
 * maps, which pagemap calls exclusive. */
static void build_memfd(void *arg, uint64_t *sh)
{
	int fd = memfd_create("pm-mapcount", MFD_CLOEXEC);
	volatile char sink = 0;
	char *p;

	(void)arg;
	if (fd < 0 || ftruncate(fd, (off_t)(PAGES * ps)))
		_exit(2);
	p = xmap(NULL, PAGES * ps, PROT_READ, MAP_SHARED, fd);
	madvise(p, PAGES * ps, MADV_NOHUGEPAGE); /* small folios, whatever shmem_enabled says */
	for (size_t i = 0; i < PAGES; i++)
		sink += p[i * ps];
	sh[0] = (uintptr_t)p;
}

/* Watch the PFNs of @pid's @n pages at @va, each present and, as
 * @exclusive says, exclusive or not. */
static void watch_pages(pid_t pid, uint64_t va, size_t n, bool exclusive)
{
	static uint64_t e[WATCH];

	ck_assert_uint_le(n, WATCH);
	raw_read(pid, va, va + n * ps, e);
	for (size_t i = 0; i < n; i++) {
		ck_assert(pm_entry_present(e[i]) && pm_entry_pfn(e[i]));
		ck_assert_int_eq(pm_entry_exclusive(e[i]), exclusive);
		watch[i] = pm_entry_pfn(e[i]);
	}
	nwatch = n;
	qsort(watch, n, sizeof(watch[0]), cmp_u64);
}

/* pm_usage (Rss, Pss, Uss) of @n pages of @pid at @va, with @cache;
 * watch_reads counts this call's reads. */
static void usage_of(pid_t pid, uint64_t va, size_t n, struct pm_usage_cache *cache,
		     struct pm_usage *u)
{
	PM_OPTS(pm_usage_opts, uo, .fields = PM_USAGE_RSS | PM_USAGE_PSS | PM_USAGE_USS,
		.cache = (uintptr_t)cache);
	struct pm_handle *h;

	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	u->size = sizeof(*u);
	watch_reads = 0;
	ck_assert_int_eq(pm_usage(h, va, va + n * ps, &uo, u), 0);
	pm_close(h);
	ck_assert_uint_eq(u->valid & (PM_USAGE_PSS | PM_USAGE_USS), PM_USAGE_PSS | PM_USAGE_USS);
	ck_assert_uint_eq(u->rss, n * ps);
}

/* The child's memfd: every page counted whole. */
static void count(struct child *c, struct pm_usage *u)
{
	watch_pages(c->pid, c->shared[0], PAGES, true);
	usage_of(c->pid, c->shared[0], PAGES, NULL, u);
	ck_assert_uint_eq(u->pss, (PAGES * ps) << 12);
	ck_assert_uint_eq(u->uss, PAGES * ps);
}

static bool new_kernel(void)
{
	const uint64_t *v = pm__kernel()->version;

	return v[0] > 6 || (v[0] == 6 && v[1] >= 15);
}

/* Whether this process can have a PMD-mapped THP now (THP on, memory not
 * too fragmented): the probe's round trip needs one. */
static bool thp_now(void)
{
	const size_t pmd = pm__pmd_pages() * ps;
	char *m = xmap(NULL, 2 * pmd, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = (char *)(((uintptr_t)m + pmd - 1) & ~(uintptr_t)(pmd - 1));
	uint64_t e = 0;
	bool thp;

	uint64_t last = 0;

	madvise(p, pmd, MADV_HUGEPAGE);
	p[0] = 1;
	raw_read(getpid(), (uintptr_t)p, (uintptr_t)p + ps, &e);
	raw_read(getpid(), (uintptr_t)p + pmd - ps, (uintptr_t)p + pmd, &last);
	/* PMD-sized: a smaller large folio (mTHP) would not do */
	thp = pm_entry_pfn(e) && pm_entry_pfn(last) == pm_entry_pfn(e) + pm__pmd_pages() - 1 &&
	      (kpageflags(pm_entry_pfn(e)) & (1ULL << PM_KPF_THP));
	munmap(m, 2 * pmd);
	if (!thp)
		fprintf(stderr, "no THP could be had now: the round trip is not checked\n");
	return thp;
}

/* What the kernel's own configuration says: 1 per page, 0 per folio, -1
 * when it does not say (no /proc/config.gz). */
static int config_per_page(void)
{
	const uint64_t *v = pm__kernel()->version;
	char line[256];
	int r = -1;
	FILE *f;

	if (v[0] < 6 || (v[0] == 6 && v[1] < 15))
		return 1;
	f = popen("zcat /proc/config.gz 2>/dev/null", "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strcmp(line, "CONFIG_NO_PAGE_MAPCOUNT=y\n"))
			r = 0;
		else if (!strcmp(line, "CONFIG_PAGE_MAPCOUNT=y\n") && r < 0)
			r = 1;
	}
	if (f)
		pclose(f);
	return r;
}

/* The probe's answer, through files the test opens (pm_usage passes the
 * ones it has open). */
static int verdict(void)
{
	struct pm__kpf k;
	int r;

	ck_assert_int_eq(pm__kpf_open(&k, PM_KPAGE_FLAGS | PM_KPAGE_COUNT), 0);
	r = pm__mapcount_per_page(&k);
	pm__kpf_close(&k);
	return r;
}

/* Where mapcounts are per page, an exclusive page's mapcount is 1 by its
 * entry: no kpagecount read for any of the child's 1,024 pages. This
 * machine's THPs tell it (6.18, CONFIG_PAGE_MAPCOUNT); where none could,
 * the mapcounts are read. */
START_TEST(exclusive_pages_need_no_mapcount)
{
	struct pm_usage u;
	struct child c;
	const int per_page = verdict();

	child_start(&c, build_memfd, NULL);
	count(&c, &u);
	if (per_page == 1)
		ck_assert_uint_eq(watch_reads, 0);
	else
		ck_assert_uint_gt(watch_reads, 0);
	if (!new_kernel())
		ck_assert_int_eq(per_page, 1);
	child_stop(&c);
}
END_TEST

/* A kernel counting per folio: its kpagecount answers 1 for the unmapped
 * page of the probe's THP (the folio's average). Then the exclusive bit
 * says only "no other process", and the child's mapcounts are read. */
START_TEST(per_folio_mapcounts_are_read)
{
	struct pm_usage u;
	struct child c;

	if (!thp_now())
		return;
	fake_counts = true;
	fake_count = 1;
	ck_assert_int_eq(verdict(), 0);
	child_start(&c, build_memfd, NULL);
	count(&c, &u);
	ck_assert_uint_gt(watch_reads, 0);
	child_stop(&c);
}
END_TEST

/* The round trip against the kernel's own configuration, where it says
 * (this machine: CONFIG_PAGE_MAPCOUNT=y, per page). */
START_TEST(probe_agrees_with_the_config)
{
	const int want = config_per_page();

	if (want < 0) {
		fprintf(stderr, "no /proc/config.gz: nothing to check the probe against\n");
		return;
	}
	if (thp_now())
		ck_assert_int_eq(verdict(), want);
}
END_TEST

/* A folio unmapped while the trip reads it (migration, a split) reads 0
 * for both pages on either kind of kernel: that tells nothing, and
 * nothing is remembered (asked again a second later). */
START_TEST(an_unmapped_folio_tells_nothing)
{
	int v;

	if (!thp_now())
		return;
	fake_counts = true;
	fake_count = 0;
	ck_assert_int_eq(verdict(), -1);
	fake_counts = false;
	ck_assert_int_eq(verdict(), -1); /* within the second: not asked */
	sleep(1);
	v = verdict();
	if (v < 0) {
		fprintf(stderr, "no answer a second later (no THP now): not checked\n");
		return;
	}
	if (config_per_page() >= 0)
		ck_assert_int_eq(v, config_per_page());
}
END_TEST

/* A trip saying per page and one saying per folio (a folio migrated
 * between the first trip's records, say): nothing is believed. */
START_TEST(trips_must_agree)
{
	static const uint64_t two[2][2] = { { 1, 0 }, { 1, 1 } };

	if (!thp_now())
		return;
	script = two;
	script_len = 2;
	ck_assert_int_eq(verdict(), -1);
	ck_assert_uint_eq(script_at, 2);
}
END_TEST

/* The cache's rules on its own: a count is taken only for an entry that
 * is not exclusive and of the kind kept; a full cache still takes a
 * newer count of a page it holds. */
START_TEST(cache_takes_by_kind)
{
	PM_OPTS(pm_usage_cache_opts, one, .max_pages = 1);
	const uint64_t file = PM_ENTRY_PRESENT | PM_ENTRY_FILE, anon = PM_ENTRY_PRESENT;
	const uint64_t excl = file | PM_ENTRY_EXCLUSIVE;
	struct pm_usage_cache *c;
	uint64_t pfn[3], count[3] = { 5, 1, 1 }, e[3] = { file, anon, excl };

	ck_assert_int_eq(pm_usage_cache_new(&one, &c), 0);
	pfn[0] = 77;
	pm__ucache_keep(c, e, pfn, count, 1);
	pfn[0] = pfn[1] = pfn[2] = 77;
	pm__ucache_take(c, e, pfn, count, 3);
	ck_assert_uint_eq(pfn[0], 0); /* file, shared: taken */
	ck_assert_uint_eq(count[0], 5);
	ck_assert_uint_eq(pfn[1], 77); /* anonymous: not the kind kept */
	ck_assert_uint_eq(pfn[2], 77); /* exclusive: read afresh */
	/* full (max_pages 1): another page is not kept, the same one updated */
	pfn[0] = 78;
	count[0] = 3;
	pm__ucache_keep(c, e, pfn, count, 1);
	pfn[0] = 77;
	count[0] = 9;
	pm__ucache_keep(c, e, pfn, count, 1);
	pfn[0] = 77;
	pfn[1] = 78;
	e[1] = file;
	count[0] = count[1] = 0;
	pm__ucache_take(c, e, pfn, count, 2);
	ck_assert_uint_eq(pfn[0], 0);
	ck_assert_uint_eq(count[0], 9);
	ck_assert_uint_eq(pfn[1], 78);
	pm_usage_cache_free(c);
}
END_TEST

static void build_nothing(void *arg, uint64_t *sh)
{
	(void)arg;
	(void)sh;
}

/* Read-fault the page at @arg (a shared mapping is not copied by fork). */
static void build_touch(void *arg, uint64_t *sh)
{
	volatile char sink = *(char *)arg;

	(void)sink;
	(void)sh;
}

/* A hugetlb page this process and a child share: counted in hugetlb, and
 * no mapcount read for it (pm__usage_page_kp() uses none). */
START_TEST(hugetlb_mapcounts_not_read)
{
	PM_OPTS(pm_usage_opts, uo, .fields = PM_USAGE_PSS | PM_USAGE_HUGETLB);
	const size_t n = pm__pmd_pages();
	struct pm_usage u = { .size = sizeof(u) };
	struct pm_handle *h = NULL;
	uint64_t old, e[WATCH];
	int r = -1, mapped = 0;
	struct child c;
	char *p;

	if (!huge_reserve(1, &old)) {
		fprintf(stderr, "could not reserve a 2 MiB huge page: not checked\n");
		return;
	}
	/* no assertion before the page is given back: a failed one would
	 * leave it reserved on the machine */
	p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1,
		 0);
	if (p != MAP_FAILED) {
		p[0] = 1;
		child_start(&c, build_touch, p);
		raw_read(c.pid, (uintptr_t)p, (uintptr_t)p + n * ps, e);
		for (size_t i = 0; i < n; i++) {
			mapped += pm_entry_present(e[i]) && !pm_entry_exclusive(e[i]);
			watch[i] = pm_entry_pfn(e[i]);
		}
		nwatch = n;
		watch_reads = 0;
		if (pm_open(c.pid, NULL, &h) == 0)
			r = pm_usage(h, (uintptr_t)p, (uintptr_t)p + n * ps, &uo, &u);
		pm_close(h);
		child_stop(&c);
		munmap(p, n * ps);
	}
	ck_assert(huge_release(old));
	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert_int_eq(mapped, n);
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(u.valid & PM_USAGE_HUGETLB, PM_USAGE_HUGETLB);
	ck_assert_uint_eq(u.hugetlb, n * ps);
	ck_assert_uint_eq(watch_reads, 0);
}
END_TEST

/* Pages this process and a child map since the fork, small folios: Uss
 * and Shared without Pss take them from the exclusive bit, with no
 * mapcount read; Pss reads them. */
START_TEST(sharing_needs_no_mapcount)
{
	PM_OPTS(pm_usage_opts, sharing, .fields = PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED);
	const size_t n = 2000;
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	const uint64_t va = (uintptr_t)p;
	struct pm_usage u = { .size = sizeof(u) };
	struct pm_handle *h;
	struct child a;

	madvise(p, n * ps, MADV_NOHUGEPAGE);
	memset(p, 1, n * ps);
	child_start(&a, build_nothing, NULL);
	watch_pages(a.pid, va, n, false);
	ck_assert_int_eq(pm_open(a.pid, NULL, &h), 0);
	watch_reads = 0;
	ck_assert_int_eq(pm_usage(h, va, va + n * ps, &sharing, &u), 0);
	ck_assert_uint_eq(watch_reads, 0);
	ck_assert_uint_eq(u.valid & (PM_USAGE_USS | PM_USAGE_SHARED),
			  PM_USAGE_USS | PM_USAGE_SHARED);
	ck_assert_uint_eq(u.uss, 0);
	ck_assert_uint_eq(u.shared, n * ps);
	pm_close(h);
	usage_of(a.pid, va, n, NULL, &u);
	ck_assert_uint_gt(watch_reads, 0);
	ck_assert_uint_eq(u.pss, n * ((ps << 12) / 2));
	child_stop(&a);
	munmap(p, n * ps);
}
END_TEST

/* Pages this process and two children map since the fork (mapcount 3),
 * more than the cache's first table holds: a pass with a cache reads
 * their mapcounts for the first child only, and counts the second alike;
 * without the cache, or with one keeping 100 pages, the second reads
 * them. */
START_TEST(cache_reads_a_shared_page_once)
{
	PM_OPTS(pm_usage_cache_opts, small, .max_pages = 100);
	const size_t n = 5000;
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	const uint64_t va = (uintptr_t)p, third = (ps << 12) / 3;
	struct pm_usage_cache *cache;
	struct pm_usage u[3];
	struct child a, b;

	madvise(p, n * ps, MADV_NOHUGEPAGE);
	memset(p, 1, n * ps);
	child_start(&a, build_nothing, NULL);
	child_start(&b, build_nothing, NULL);
	watch_pages(a.pid, va, n, false);
	ck_assert_int_eq(pm_usage_cache_new(NULL, &cache), 0);
	usage_of(a.pid, va, n, cache, &u[0]);
	ck_assert_uint_gt(watch_reads, 0);
	usage_of(b.pid, va, n, cache, &u[1]);
	ck_assert_uint_eq(watch_reads, 0);
	usage_of(b.pid, va, n, NULL, &u[2]);
	ck_assert_uint_gt(watch_reads, 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(u[i].pss, n * third);
		ck_assert_uint_eq(u[i].uss, 0);
	}
	pm_usage_cache_free(cache);
	ck_assert_int_eq(pm_usage_cache_new(&small, &cache), 0);
	usage_of(a.pid, va, n, cache, &u[0]);
	usage_of(b.pid, va, n, cache, &u[1]);
	ck_assert_uint_gt(watch_reads, 0);
	ck_assert_uint_eq(u[1].pss, n * third);
	pm_usage_cache_free(cache);
	child_stop(&a);
	child_stop(&b);
	munmap(p, n * ps);
}
END_TEST

/* A PMD-mapped THP this process and a child share since the fork: kept
 * with mapcount 2. Once this process unmaps it the child's entries say
 * exclusive (a PMD mapping, so its mapcounts are read): the cache's 2 is
 * not taken, the child's Pss is its Rss. */
START_TEST(cache_not_taken_for_an_exclusive_page)
{
	const size_t n = pm__pmd_pages();
	char *map = xmap(NULL, 2 * n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = (char *)(((uintptr_t)map + n * ps - 1) & ~(uintptr_t)(n * ps - 1));
	const uint64_t va = (uintptr_t)p;
	struct pm_usage_cache *cache;
	struct pm_usage u;
	struct child a;
	uint64_t e;

	ck_assert_int_eq(madvise(p, n * ps, MADV_HUGEPAGE), 0);
	memset(p, 1, n * ps);
	raw_read(getpid(), va, va + ps, &e);
	if (!(kpageflags(pm_entry_pfn(e)) & (1ULL << PM_KPF_THP))) {
		fprintf(stderr, "no THP could be had now: not checked\n");
		munmap(map, 2 * n * ps);
		return;
	}
	child_start(&a, build_nothing, NULL);
	ck_assert_int_eq(pm_usage_cache_new(NULL, &cache), 0);
	watch_pages(a.pid, va, n, false);
	usage_of(a.pid, va, n, cache, &u);
	ck_assert_uint_eq(u.pss, n * ((ps << 12) / 2));
	munmap(map, 2 * n * ps);
	watch_pages(a.pid, va, n, true);
	usage_of(a.pid, va, n, cache, &u);
	ck_assert_uint_gt(watch_reads, 0);
	ck_assert_uint_eq(u.pss, (n * ps) << 12);
	pm_usage_cache_free(cache);
	child_stop(&a);
}
END_TEST

START_TEST(cache_arguments)
{
	PM_OPTS(pm_usage_cache_opts, o, .max_pages = 16);
	struct pm_usage_cache *c = NULL;

	ck_assert_int_eq(pm_usage_cache_new(NULL, NULL), -EINVAL);
	o.size = 3;
	ck_assert_int_eq(pm_usage_cache_new(&o, &c), -EINVAL);
	ck_assert_ptr_null(c);
	o.size = sizeof(o);
	ck_assert_int_eq(pm_usage_cache_new(&o, &c), 0);
	pm_usage_cache_free(c);
	pm_usage_cache_free(NULL);
}
END_TEST

static void setup(void)
{
	real_pread = pm__sys.pread;
	pm__sys.pread = hook_pread;
	fake_counts = false;
	script = NULL;
	script_at = 0;
}

static void teardown(void)
{
	pm__sys.pread = real_pread;
}

int main(void)
{
	Suite *s = suite_create("usage-reads");
	TCase *t = tcase_create("usage-reads");
	bool pfns, trip;
	const char *why;

	test_init();
	pfns = pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1;
	trip = pfns && new_kernel() && thp_possible();
	/* before 6.15 every kernel counts per page: no round trip is made */
	why = !pfns	     ? "PFNs and /proc/kpagecount need CAP_SYS_ADMIN"
	      : !new_kernel() ? "mapcounts are per page before 6.15: no round trip"
			      : "THP is off: no THP for the round trip";
	tcase_add_checked_fixture(t, setup, teardown);
	add_test_if(t, exclusive_pages_need_no_mapcount, pfns, why);
	add_test_if(t, per_folio_mapcounts_are_read, trip, why);
	add_test_if(t, probe_agrees_with_the_config, pfns, why);
	add_test_if(t, an_unmapped_folio_tells_nothing, trip, why);
	add_test_if(t, trips_must_agree, trip, why);
	tcase_add_test(t, cache_takes_by_kind);
	add_test_if(t, sharing_needs_no_mapcount, pfns, why);
	add_test_if(t, cache_reads_a_shared_page_once, pfns, why);
	add_test_if(t, cache_not_taken_for_an_exclusive_page, pfns && thp_possible(),
		    pfns ? "THP is off: no PMD mapping to share" : why);
	tcase_add_test(t, cache_arguments);
	add_test_if(t, hugetlb_mapcounts_not_read, pfns && geteuid() == 0,
		    pfns ? "reserving huge pages needs root" : why);
	suite_add_tcase(s, t);
	return run_suite(s);
}
