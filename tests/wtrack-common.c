/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the write-tracking tests share: the kernel's methods, collecting
 * into a page map, and tracked memory of this process. */
#include "wtrack-common.h"

#include <string.h>
#include <sys/mman.h>

bool have_uffd, have_sd;

void wtrack_test_init(void)
{
	test_init();
	/* uffd: 6.12 and the host; soft-dirty: 6.1 and 6.12 */
	have_uffd = expect_feature(PM_FEAT_UFFD_WP_ASYNC) && expect_feature(PM_FEAT_PAGEMAP_SCAN);
	have_sd = expect_feature(PM_FEAT_SOFT_DIRTY);
}

void collect_all(struct pm_wtrack *wt, uint64_t a, size_t n, uint64_t flags, size_t vec_len,
		 bool *got)
{
	struct pm_region v[16];
	uint64_t b = a + n * ps, we;

	ck_assert_uint_le(vec_len, 16);
	memset(got, 0, n);
	for (uint64_t cur = a; cur < b; cur = we) {
		long r = pm_wtrack_collect(wt, cur, b, v, vec_len, flags, &we);

		ck_assert_msg(r >= 0, "collect: %ld", r);
		ck_assert_uint_gt(we, cur);
		for (long k = 0; k < r; k++) {
			ck_assert(v[k].categories == PM_CAT_WRITTEN);
			ck_assert(v[k].start >= cur && v[k].end <= b && v[k].start < v[k].end);
			ck_assert(k == 0 || v[k].start > v[k - 1].end); /* canonical: merged */
			for (uint64_t x = v[k].start; x < v[k].end; x += ps)
				got[(x - a) / ps] = true;
		}
	}
}

void assert_pages(const bool *want, const bool *got, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(want[i] == got[i], "%s: page %zu written %d, reported %d", what, i,
			      want[i], got[i]);
}

size_t count(const bool *b, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += b[i];
	return c;
}

struct pm_wtrack *track(struct pm_handle *h, void *p, size_t pages, int method)
{
	struct pm_range r = { (uintptr_t)p, (uintptr_t)p + pages * ps };
	PM_OPTS(pm_wtrack_opts, o, .method = (uint64_t)method);
	struct pm_wtrack *wt = NULL;

	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &o, &wt), 0);
	return wt;
}


void own_start(struct own *o, size_t n, size_t populated, int method)
{
	o->n = n;
	o->p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	madvise(o->p, n * ps, MADV_NOHUGEPAGE);
	memset(o->p, 1, populated * ps);
	ck_assert_int_eq(pm_open(0, NULL, &o->h), 0);
	o->wt = track(o->h, o->p, n, method);
}

void own_stop(struct own *o)
{
	pm_wtrack_free(o->wt);
	pm_close(o->h);
	munmap(o->p, o->n * ps);
}
