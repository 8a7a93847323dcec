/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whether mapcounts are per page (probe-mapcount.c), and what pm_usage
 * reads because of it: real children, real THPs; kpagecount's answers
 * faked only to play a kernel that counts per folio (6.15+ built with
 * CONFIG_NO_PAGE_MAPCOUNT, which this machine is not). */
#include "common.h"
#include "internal.h"
#include "kpages.h"

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
static uint64_t child_pfn[PAGES]; /* sorted */
static size_t child_reads; /* kpagecount reads with a record of child_pfn */

static bool is_kpagecount(int fd)
{
	char path[64], link[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link));
	return n == 16 && !memcmp(link, "/proc/kpagecount", 16);
}

static bool child_has(uint64_t lo, uint64_t n)
{
	for (size_t i = 0; i < PAGES; i++)
		if (child_pfn[i] >= lo && child_pfn[i] < lo + n)
			return true;
	return false;
}

static ssize_t hook_pread(int fd, void *buf, size_t n, off_t off)
{
	ssize_t r = real_pread(fd, buf, n, off);

	if (r > 0 && is_kpagecount(fd)) {
		child_reads += child_has((uint64_t)off / 8, (uint64_t)r / 8);
		for (ssize_t i = 0; fake_counts && i < r / 8; i++)
			((uint64_t *)buf)[i] = fake_count;
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
	for (size_t i = 0; i < PAGES; i++)
		sink += p[i * ps];
	sh[0] = (uintptr_t)p;
}

/* pm_usage's Pss and Uss of the child's memfd: every page counted whole,
 * and the child's PFNs for the hook. */
static void count(struct child *c, struct pm_usage *u)
{
	PM_OPTS(pm_usage_opts, uo, .fields = PM_USAGE_RSS | PM_USAGE_PSS | PM_USAGE_USS);
	uint64_t e[PAGES], va = c->shared[0];
	struct pm_handle *h;

	raw_read(c->pid, va, va + PAGES * ps, e);
	for (size_t i = 0; i < PAGES; i++) {
		ck_assert(pm_entry_present(e[i]) && pm_entry_exclusive(e[i]));
		child_pfn[i] = pm_entry_pfn(e[i]);
	}
	qsort(child_pfn, PAGES, sizeof(child_pfn[0]), cmp_u64);
	ck_assert_int_eq(pm_open(c->pid, NULL, &h), 0);
	u->size = sizeof(*u);
	child_reads = 0;
	ck_assert_int_eq(pm_usage(h, va, va + PAGES * ps, &uo, u), 0);
	pm_close(h);
	ck_assert_uint_eq(u->valid & (PM_USAGE_PSS | PM_USAGE_USS), PM_USAGE_PSS | PM_USAGE_USS);
	ck_assert_uint_eq(u->rss, PAGES * ps);
	ck_assert_uint_eq(u->pss, (PAGES * ps) << 12);
	ck_assert_uint_eq(u->uss, PAGES * ps);
}

static bool new_kernel(void)
{
	const uint64_t *v = pm__kernel()->version;

	return v[0] > 6 || (v[0] == 6 && v[1] >= 15);
}

/* A THP for the round trip: THP not off for madvise()d memory. */
static bool thp_available(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	if (f && !fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	if (f)
		fclose(f);
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

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
	if (per_page)
		ck_assert_uint_eq(child_reads, 0);
	else
		ck_assert_uint_gt(child_reads, 0);
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

	fake_counts = true;
	fake_count = 1;
	ck_assert_int_eq(verdict(), 0);
	child_start(&c, build_memfd, NULL);
	count(&c, &u);
	ck_assert_uint_gt(child_reads, 0);
	child_stop(&c);
}
END_TEST

/* The same round trip reading 0 there: per page. */
START_TEST(per_page_told_by_an_unmapped_page)
{
	fake_counts = true;
	fake_count = 0;
	ck_assert_int_eq(verdict(), 1);
}
END_TEST

static void setup(void)
{
	real_pread = pm__sys.pread;
	pm__sys.pread = hook_pread;
	fake_counts = false;
}

static void teardown(void)
{
	pm__sys.pread = real_pread;
}

int main(void)
{
	Suite *s = suite_create("mapcount");
	TCase *t = tcase_create("mapcount");
	bool pfns, trip;
	const char *why;

	test_init();
	pfns = pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1;
	trip = pfns && new_kernel() && thp_available();
	/* before 6.15 every kernel counts per page: no round trip is made */
	why = !pfns	     ? "PFNs and /proc/kpagecount need CAP_SYS_ADMIN"
	      : !new_kernel() ? "mapcounts are per page before 6.15: no round trip"
			      : "THP is off: no THP for the round trip";
	tcase_add_checked_fixture(t, setup, teardown);
	add_test_if(t, exclusive_pages_need_no_mapcount, pfns, why);
	add_test_if(t, per_folio_mapcounts_are_read, trip, why);
	add_test_if(t, per_page_told_by_an_unmapped_page, trip, why);
	suite_add_tcase(s, t);
	return run_suite(s);
}
