/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write tracking (userfaultfd) over many ranges of this process: one
 * mapping per range, unmapped pages and untracked mappings between
 * neighbours. Collect passes of small vectors, continued through
 * walk_end, report exactly the pages written in every range and nothing
 * between them, also when a mapping appears in a gap during a pass; a
 * range unmapped, or replaced by a mapping the tracker did not register,
 * fails the call that would scan it, within the pass and at the next pass.
 */
#include "wtrack-common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NR 512 /* ranges */
#define RP 4   /* pages per range */
#define SLOT (RP + 1)
#define NP (NR * SLOT) /* pages of the area: a range, then its gap page */

struct many {
	char *p;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	uint64_t a, b;
};

/* Every 8th gap holds an untracked mapping (written before every pass),
 * the others are unmapped. */
static bool gap_mapped(size_t i)
{
	return i % 8 == 7;
}

static char *gap_of(const struct many *m, size_t i)
{
	return m->p + (i * SLOT + RP) * ps;
}

static void many_start(struct many *m)
{
	struct pm_range *r = calloc(NR, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	m->p = xmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	madvise(m->p, NP * ps, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < NR; i++) {
		r[NR - 1 - i].start = (uintptr_t)m->p + i * SLOT * ps; /* any order */
		r[NR - 1 - i].end = r[NR - 1 - i].start + RP * ps;
		if (i % 3)
			memset(m->p + i * SLOT * ps, 1, RP * ps); /* some never touched */
		if (!gap_mapped(i))
			ck_assert_int_eq(munmap(gap_of(m, i), ps), 0);
	}
	m->a = (uintptr_t)m->p;
	m->b = m->a + NP * ps;
	ck_assert_int_eq(pm_open(0, NULL, &m->h), 0);
	ck_assert_int_eq(pm_wtrack_new(m->h, r, NR, NULL, &m->wt), 0);
	ck_assert_int_eq(pm_wtrack_method(m->wt), PM_WT_METHOD_UFFD);
	free(r);
}

static void many_stop(struct many *m)
{
	pm_wtrack_free(m->wt);
	pm_close(m->h);
	munmap(m->p, NP * ps);
}

/* One call of a pass into got[]; its result. */
static long step(struct many *m, uint64_t *cur, uint64_t flags, size_t vec_len, bool *got)
{
	struct pm_region v[16];
	uint64_t we;
	long r = pm_wtrack_collect(m->wt, *cur, m->b, v, vec_len, flags, &we);

	if (r < 0)
		return r;
	ck_assert_uint_gt(we, *cur);
	for (long k = 0; k < r; k++) {
		ck_assert(v[k].categories == PM_CAT_WRITTEN);
		ck_assert(v[k].start >= *cur && v[k].end <= we && v[k].start < v[k].end);
		for (uint64_t x = v[k].start; x < v[k].end; x += ps)
			got[(x - m->a) / ps] = true;
	}
	*cur = we;
	return r;
}

/* A whole pass; after its first call, @mid (if any) runs once. */
static void pass(struct many *m, uint64_t flags, size_t vec_len, bool *got,
		 void (*mid)(struct many *m))
{
	memset(got, 0, NP);
	for (uint64_t cur = m->a; cur < m->b;) {
		long r = step(m, &cur, flags, vec_len, got);

		ck_assert_msg(r >= 0, "collect: %ld", r);
		if (mid) {
			mid(m);
			mid = NULL;
		}
	}
}

static size_t mids; /* gaps mapped during a pass so far */

/* Map (and write) an untracked page into an unmapped gap near the end. */
static void map_in_gap(struct many *m)
{
	size_t i = NR - 2 - 8 * mids++;
	char *g;

	ck_assert(!gap_mapped(i));
	g = mmap(gap_of(m, i), ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_ptr_eq(g, gap_of(m, i));
	*g = 1;
}

START_TEST(many_exact)
{
	static bool want[NP], got[NP];
	uint64_t seed = 7;
	struct many m;

	many_start(&m);
	pass(&m, PM_WT_COLLECT_RESET, 16, got, NULL);
	ck_assert_uint_eq(count(got, NP), 0);
	for (int round = 0; round < 10; round++) {
		const uint64_t flags = round % 2 ? PM_WT_COLLECT_RESET : 0;

		memset(want, 0, sizeof(want));
		for (size_t i = 0; i < NR; i++) {
			if (gap_mapped(i))
				*gap_of(&m, i) = (char)round; /* untracked: never reported */
			for (size_t k = 0; k < RP; k++) {
				if (rnd(&seed) % 6)
					continue;
				m.p[(i * SLOT + k) * ps] = (char)round;
				want[i * SLOT + k] = true;
			}
		}
		/* the last page of the last range: a pass's last call */
		m.p[(NP - 2) * ps] = 1;
		want[NP - 2] = true;
		pass(&m, flags, 1 + round % 5, got, round % 4 == 1 ? map_in_gap : NULL);
		assert_pages(want, got, NP, flags ? "collect and reset" : "collect");
		if (!flags) {
			pass(&m, PM_WT_COLLECT_RESET, 16, got, round % 4 == 0 ? map_in_gap : NULL);
			assert_pages(want, got, NP, "collect and reset after collect");
		}
		pass(&m, 0, 16, got, NULL);
		ck_assert_msg(count(got, NP) == 0, "round %d: %zu pages after reset", round,
			      count(got, NP));
	}
	many_stop(&m);
}
END_TEST

static struct pm_wtrack *other; /* the second tracker of many_gap_tracked */
static char *other_page;

/* Map a page into an unmapped gap, track it with a tracker of its own
 * (its registration makes it write-protectable like tracked memory),
 * then write it. */
static void track_in_gap(struct many *m)
{
	size_t i = NR - 2;

	ck_assert(!gap_mapped(i));
	other_page = mmap(gap_of(m, i), ps, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_ptr_eq(other_page, gap_of(m, i));
	other = track(m->h, other_page, 1, PM_WT_METHOD_UFFD);
	*other_page = 1;
}

/* Memory another tracker registered in a gap during a pass is not this
 * tracker's: the pass neither reports it nor write-protects it (which
 * would hide the write from its own tracker). */
START_TEST(many_gap_tracked)
{
	static bool want[NP], got[NP];
	struct pm_region v[1];
	struct many m;
	uint64_t we;

	many_start(&m);
	memset(want, 0, sizeof(want));
	for (size_t i = 0; i < NR; i++) {
		m.p[i * SLOT * ps] = 1;
		want[i * SLOT] = true;
	}
	pass(&m, PM_WT_COLLECT_RESET, 4, got, track_in_gap);
	assert_pages(want, got, NP, "collect and reset");
	ck_assert_int_eq(pm_wtrack_collect(other, (uintptr_t)other_page,
					   (uintptr_t)other_page + ps, v, 1, 0, &we), 1);
	ck_assert_uint_eq(v[0].start, (uintptr_t)other_page);
	pm_wtrack_free(other);
	many_stop(&m);
}
END_TEST

/* Replace range @i by a mapping the tracker did not register, written. */
static void replace(struct many *m, size_t i)
{
	char *r = m->p + i * SLOT * ps;

	ck_assert_ptr_eq(mmap(r, RP * ps, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), r);
	memset(r, 2, RP * ps);
}

static void replace_late(struct many *m)
{
	replace(m, NR - 3);
}

static void unmap_late(struct many *m)
{
	ck_assert_int_eq(munmap(m->p + (NR - 3) * SLOT * ps, RP * ps), 0);
}

/* The pass that meets the lost range fails there: a call that
 * reaches it returns -EFAULT (after handing over what came before it),
 * and so does every later pass. */
static void expect_lost(struct many *m, uint64_t cur, size_t vec_len, uint64_t flags, bool *got)
{
	long r;

	while ((r = step(m, &cur, flags, vec_len, got)) >= 0)
		ck_assert_msg(cur < m->b, "a pass over a lost range ended without an error");
	ck_assert_int_eq(r, -EFAULT);
	cur = m->a; /* a new pass */
	ck_assert_int_eq(step(m, &cur, flags, 16, got), -EFAULT);
}

START_TEST(many_registration_lost)
{
	static bool got[NP];
	struct many m;
	uint64_t cur;

	/* during a pass: replaced, or unmapped */
	for (int unmap = 0; unmap < 2; unmap++) {
		many_start(&m);
		for (size_t i = 0; i < NR; i++)
			m.p[i * SLOT * ps] = 1;
		cur = m.a;
		ck_assert_int_ge(step(&m, &cur, PM_WT_COLLECT_RESET, 1, got), 0);
		(unmap ? unmap_late : replace_late)(&m);
		expect_lost(&m, cur, 16, PM_WT_COLLECT_RESET, got);
		many_stop(&m);
	}

	/* between passes, with and without reset */
	for (int reset = 0; reset < 2; reset++) {
		many_start(&m);
		pass(&m, PM_WT_COLLECT_RESET, 16, got, NULL);
		replace(&m, reset ? 0 : NR / 2);
		expect_lost(&m, m.a, 3, reset ? PM_WT_COLLECT_RESET : 0, got);
		many_stop(&m);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wtrack-many");
	TCase *t = tcase_create("wtrack-many");

	wtrack_test_init();
	tcase_set_timeout(t, 120);
	add_test_if(t, many_exact, have_uffd, NO_UFFD);
	add_test_if(t, many_registration_lost, have_uffd, NO_UFFD);
	add_test_if(t, many_gap_tracked, have_uffd, NO_UFFD);
	suite_add_tcase(s, t);
	return run_suite(s);
}
