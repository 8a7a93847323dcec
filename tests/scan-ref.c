/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "scan-ref.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool in_vma(const struct pm_vma_list *l, uint64_t a)
{
	for (size_t i = 0; i < pm_vma_count(l); i++)
		if (pm_vma_at(l, i)->start <= a && a < pm_vma_at(l, i)->end)
			return true;
	return false;
}

void ref_build(struct pm_handle *h, uint64_t s, uint64_t e, struct ref *r)
{
	struct pm_vma_list *l;
	uint64_t *ent;
	int kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);

	r->n = (e - s) / ps;
	r->start = s;
	r->cats = malloc(r->n * 8);
	ent = malloc(r->n * 8);
	ck_assert_int_eq(pm_read(h, s, e, ent, NULL, NULL), (long)r->n);
	ck_assert_int_eq(pm_vmas(h, &l), 0);
	for (size_t i = 0; i < r->n; i++) {
		uint64_t x = ent[i], c = 0;

		if (!in_vma(l, s + i * ps)) {
			r->cats[i] = ~0ULL;
			continue;
		}
		c |= pm_entry_present(x) ? PM_CAT_PRESENT : 0;
		c |= (x & PM_ENTRY_SWAP) ? PM_CAT_SWAPPED : 0;
		c |= pm_entry_guard(x) ? PM_CAT_GUARD : 0;
		c |= pm_entry_soft_dirty(x) ? PM_CAT_SOFT_DIRTY : 0;
		if (pm_entry_pfn(x) && kpf >= 0) {
			uint64_t f = 0, hf = 0, pfn = pm_entry_pfn(x);

			(void)!pread(kpf, &f, 8, (off_t)(pfn * 8));
			(void)!pread(kpf, &hf, 8, (off_t)((pfn & ~511ULL) * 8));
			if ((f >> 24 & 1) || ((hf >> 24 & 1) && (hf >> 15 & 1)))
				c |= PM_CAT_PFNZERO;
		}
		/* pagemap calls the huge zero page file, PAGEMAP_SCAN does not */
		c |= pm_entry_file(x) && (x & (PM_ENTRY_PRESENT | PM_ENTRY_SWAP)) &&
				     !(c & PM_CAT_PFNZERO)
			     ? PM_CAT_FILE
			     : 0;
		r->cats[i] = c;
	}
	pm_vma_list_free(l);
	free(ent);
	if (kpf >= 0)
		close(kpf);
}

size_t ref_scan(const struct ref *r, const struct pm_scan_opts *o, struct pm_region *out)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n; i++) {
		uint64_t c = r->cats[i], x;
		uint64_t a = r->start + i * ps;

		if (c == ~0ULL)
			continue;
		x = c ^ o->category_inverted;
		if ((x & o->category_mask) != o->category_mask ||
		    (o->category_anyof_mask && !(x & o->category_anyof_mask)))
			continue;
		c &= o->return_mask;
		if (n && out[n - 1].end == a && out[n - 1].categories == c) {
			out[n - 1].end += ps;
		} else {
			out[n].start = a;
			out[n].end = a + ps;
			out[n].categories = c;
			n++;
		}
	}
	return n;
}

/* The whole answer, collected in calls of vec_len regions each. */
size_t collect(struct pm_handle *h, uint64_t s, uint64_t e, const struct pm_scan_opts *o,
		      size_t vec_len, struct pm_region *out)
{
	struct pm_region *vec = malloc((vec_len ? vec_len : 1) * sizeof(*vec));
	uint64_t cur = s, we;
	size_t n = 0;

	while (cur < e) {
		long r = pm_scan(h, cur, e, vec, vec_len, o, &we);

		ck_assert_msg(r >= 0, "pm_scan: %ld", r);
		ck_assert_uint_le((size_t)r, vec_len);
		ck_assert_uint_gt(we, cur);
		ck_assert_uint_le(we, e);
		for (long i = 0; i < r; i++) {
			/* continuing from walk_end must not split a region */
			if (n && out[n - 1].end == vec[i].start &&
			    out[n - 1].categories == vec[i].categories)
				ck_abort_msg("region split at %#lx", (unsigned long)vec[i].start);
			ck_assert_uint_ge(vec[i].start, cur);
			out[n++] = vec[i];
		}
		cur = we;
	}
	free(vec);
	return n;
}

void same(const struct pm_region *a, size_t na, const struct pm_region *b, size_t nb,
		 const char *what, const struct pm_scan_opts *o)
{
	if (na == nb && !memcmp(a, b, na * sizeof(*a)))
		return;
	for (size_t i = 0; i < na && i < nb; i++)
		if (memcmp(&a[i], &b[i], sizeof(*a)))
			ck_abort_msg("%s: mask %#lx inv %#lx any %#lx ret %#lx: region %zu "
				     "%#lx-%#lx/%#lx vs %#lx-%#lx/%#lx",
				     what, (unsigned long)o->category_mask,
				     (unsigned long)o->category_inverted,
				     (unsigned long)o->category_anyof_mask,
				     (unsigned long)o->return_mask, i, (unsigned long)a[i].start,
				     (unsigned long)a[i].end, (unsigned long)a[i].categories,
				     (unsigned long)b[i].start, (unsigned long)b[i].end,
				     (unsigned long)b[i].categories);
	ck_abort_msg("%s: mask %#lx inv %#lx any %#lx ret %#lx: %zu vs %zu regions", what,
		     (unsigned long)o->category_mask, (unsigned long)o->category_inverted,
		     (unsigned long)o->category_anyof_mask, (unsigned long)o->return_mask, na, nb);
}

void differential(pid_t pid, uint64_t s, uint64_t e, uint64_t both, unsigned emu_every)
{
	const uint64_t inv_sel[4] = { 0, 1, 2, 3 }, ret_sel[3] = { 0, 1, 2 };
	struct pm_region *a = malloc(MAXR * sizeof(*a)), *b = malloc(MAXR * sizeof(*b)),
			 *x = malloc(MAXR * sizeof(*x));
	PM_OPTS(pm_open_opts, text, .flags = PM_OPEN_MAPS_TEXT);
	uint64_t bits[8], nb = 0, combos = 0, emulated = 0;
	struct pm_handle *h, *ht;
	struct ref r;

	for (uint64_t bit = 1; bit <= PM_CAT_ALL; bit <<= 1)
		if (both & bit)
			bits[nb++] = bit;
	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	/* the VMA source of every kernel that needs the emulation, whose
	 * kinds come from a list (runs of VMAs at once) */
	ck_assert_int_eq(pm_open(pid, &text, &ht), 0);
	ref_build(h, s, e, &r);
	for (uint64_t sub = 0; sub < (1ULL << nb); sub++) {
		uint64_t mask = 0;

		for (uint64_t i = 0; i < nb; i++)
			if (sub >> i & 1)
				mask |= bits[i];
		for (int ii = 0; ii < 4; ii++) {
			uint64_t inv = inv_sel[ii] == 0 ? 0 : inv_sel[ii] == 1 ? mask
				      : inv_sel[ii] == 2 ? both & ~mask : both;

			for (int ai = 0; ai < 4; ai++) {
				uint64_t any = ai == 0 ? 0 : ai == 1 ? (PM_CAT_PRESENT | PM_CAT_SWAPPED) & both
					      : ai == 2 ? (PM_CAT_FILE | PM_CAT_PFNZERO) & both : both;

				for (int ri = 0; ri < 3; ri++) {
					uint64_t ret = ret_sel[ri] == 0 ? 0 : ret_sel[ri] == 1 ? both
						      : (PM_CAT_PRESENT | PM_CAT_FILE) & both;
					PM_OPTS(pm_scan_opts, o, .category_mask = mask,
						.category_inverted = inv, .category_anyof_mask = any,
						.return_mask = ret);
					PM_OPTS(pm_scan_opts, oe, .flags = PM_SCAN_F_EMULATE,
						.category_mask = mask, .category_inverted = inv,
						.category_anyof_mask = any, .return_mask = ret);
					size_t nref = ref_scan(&r, &o, x), nn, ne;

					nn = collect(h, s, e, &o, MAXR, a);
					same(a, nn, x, nref, "native vs reference", &o);
					/* the emulated path reads: a sample of the table
					 * (without PAGEMAP_SCAN the default path is the
					 * emulation already) */
					if (emu_every && combos++ % emu_every == 0 &&
					    pm_has_feature(PM_FEAT_PAGEMAP_SCAN) == 1) {
						ne = collect(emulated++ % 2 ? ht : h, s, e, &oe, MAXR,
							     b);
						same(b, ne, x, nref, "emulated vs reference", &o);
					}
				}
			}
		}
	}
	free(r.cats);
	free(a);
	free(b);
	free(x);
	pm_close(h);
	pm_close(ht);
}
