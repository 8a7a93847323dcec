/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_usage's fields that need no PFNs and no exclusive bit (Rss, Swap,
 * AnonHugePages, zero pages, guard pages), from PAGEMAP_SCAN alone: one
 * walk the kernel does at a few ns per 4K page and per PMD, where reading
 * the pagemap entries costs ~17 ns per page (issue #16).
 *
 * Per region: GUARD is a guard page (the kernel reports it SWAPPED too,
 * as pagemap sets bit 62 for it); SWAPPED any other swap-format entry,
 * as the entries' bit 62 counts it; PRESENT with PFNZERO a zero page;
 * other PRESENT pages count in Rss, except PMD-mapped (HUGE) ones outside
 * anonymous VMAs, which may be hugetlb (not Rss) and are left unknown.
 * The kernel skips VM_PFNMAP VMAs ([vvar]), as smaps does.
 *
 * For the fields that need the exclusive bit or the physical pages, the
 * same walk lists the present pages (pm_usage reads entries over those
 * only): the kernel's answer says where pages are without the VMA list,
 * and which of them are zero pages or PMD-mapped.
 */
#include "usage.h"
#include "scan.h"

#include <stdlib.h>

/* regions per pm__scan_native call: many times the kernel's 512 per
 * ioctl, so that the extra ioctl it makes when the output fills (to see
 * whether the last region continues) is rare */
#define VEC 4096 /* 96 KiB: below malloc's mmap threshold */

struct sctx {
	struct pm_handle *h;
	const struct pm_vma_list *l;
	size_t li;
	struct pm__vcursor vc;
	bool undecided;
	struct pm__usage_acc *acc;
	struct pm__upieces *present;
};

int pm__upieces_add(struct pm__upieces *p, uint64_t s, uint64_t e, size_t acc, bool huge,
		    bool anon)
{
	struct pm__upiece *last = p->n ? &p->v[p->n - 1] : NULL;

	if (last && last->end == s && last->acc == acc && last->huge == huge && last->anon == anon) {
		last->end = e;
		return 0;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 256;
		struct pm__upiece *v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = (struct pm__upiece){ s, e, acc, huge, anon };
	return 0;
}

/* PMD-mapped pages [s, e) into a: AnonHugePages in anonymous VMAs, where
 * a PMD maps an anonymous THP or the huge zero page (PFNZERO, counted
 * before); the kernel merges regions across VMAs, so each VMA is asked.
 * Listed instead when the caller counts present pages. 0 or -errno. */
static int huge(struct sctx *c, uint64_t s, uint64_t e, struct pm__usage_acc *a)
{
	while (s < e) {
		struct pm_vma v;
		uint64_t b;
		int r;

		if (c->l) {
			v = c->l->v[c->li]; /* region() cut [s, e) to it */
		} else {
			r = pm__vcursor_next(&c->vc, s, &v, false);
			if (r <= 0 || v.start > s)
				return r < 0 ? r : -EIO; /* the kernel walked a VMA */
		}
		b = v.end < e ? v.end : e;
		if (c->present) {
			r = pm__upieces_add(c->present, s, b, (size_t)(a - c->acc), true, !v.inode);
			if (r)
				return r;
		} else if (!v.inode) {
			a->u.rss += b - s;
			a->u.anon_thp += b - s;
		} else {
			a->unknown |= PM_USAGE_RSS | PM_USAGE_HUGETLB;
			c->undecided = true;
		}
		s = b;
	}
	return 0;
}

/* Pages [s, e) with categories cat into a. */
static int count(struct sctx *c, uint64_t s, uint64_t e, uint64_t cat, struct pm__usage_acc *a)
{
	const uint64_t len = e - s;

	if (cat & PM_CAT_GUARD)
		a->u.guard += len;
	else if (cat & PM_CAT_SWAPPED)
		a->u.swap += len;
	else if (!(cat & PM_CAT_PRESENT))
		return 0;
	else if (cat & PM_CAT_PFNZERO)
		a->u.zero += len;
	else if (cat & PM_CAT_HUGE)
		return huge(c, s, e, a);
	else if (c->present)
		return pm__upieces_add(c->present, s, e, (size_t)(a - c->acc), false, false);
	else
		a->u.rss += len;
	return 0;
}

/* A region of the kernel's answer, cut at the list's VMA boundaries. */
static int region(struct sctx *c, uint64_t s, uint64_t e, uint64_t cat)
{
	if (!c->l)
		return count(c, s, e, cat, &c->acc[0]);
	while (s < e) {
		const struct pm_vma *v;
		uint64_t b;
		int r;

		while (c->li < c->l->count && c->l->v[c->li].end <= s)
			c->li++;
		if (c->li == c->l->count)
			return 0;
		v = &c->l->v[c->li];
		if (v->start >= e)
			return 0; /* pages of a VMA the list does not have */
		if (v->start > s)
			s = v->start;
		b = v->end < e ? v->end : e;
		r = count(c, s, b, cat, &c->acc[c->li]);
		if (r)
			return r;
		s = b;
	}
	return 0;
}

int pm__usage_scan(struct pm_handle *h, uint64_t start, uint64_t end,
		   const struct pm_vma_list *l, struct pm__usage_acc *acc,
		   struct pm__upieces *present)
{
	const struct pm__scan_req q = {
		.anyof = PM_CAT_PRESENT | PM_CAT_SWAPPED,
		/* not FILE: the kernel looks at every present page's struct
		 * page for it; a PMD mapping's VMA says anonymous or not */
		.ret = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_PFNZERO | PM_CAT_HUGE |
		       (PM_CAT_GUARD & pm__scan_categories()),
	};
	struct sctx c = { .h = h, .l = l, .acc = acc, .present = present };
	struct pm_region *vec = malloc(VEC * sizeof(*vec));
	int r = 0;

	if (!vec)
		return -ENOMEM;
	pm__vcursor_init(&c.vc, h);
	for (uint64_t cur = start; cur < end && !r;) {
		struct pm__scan_out o;

		pm__out_init(&o, vec, VEC, 0);
		r = pm__scan_native(h, cur, end, &q, &o);
		for (size_t j = 0; j < o.n && !r; j++)
			r = region(&c, vec[j].start, vec[j].end, vec[j].categories);
		if (!o.done)
			break;
		cur = o.walk_end;
	}
	pm__vcursor_fini(&c.vc);
	free(vec);
	return r ? r : c.undecided;
}
