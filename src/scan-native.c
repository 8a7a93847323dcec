/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_scan through PAGEMAP_SCAN (6.7+), verified.
 *
 * The kernel's answer is checked before it reaches the caller: the count
 * within the vector, every region page aligned, non-empty, inside the
 * range asked, in order and with only return-mask categories, walk_end
 * inside the range and past the last region. Regions the kernel splits
 * across its internal passes (a 512-region bounce buffer, one lock hold
 * each) or across our calls are merged again; the caller's vec_len and
 * max_pages limits are applied here, so the answer does not depend on how
 * the work was split. An answer that breaks order or makes no progress is
 * -EIO rather than a guess. -ENOTTY (no PAGEMAP_SCAN after all) goes back
 * to pm_scan, which emulates.
 */
#include "internal.h"
#include "scan.h"
#include "compat/uapi.h"

#include <stddef.h>
#include <string.h>

#define NATIVE_VEC 512 /* the kernel's bounce buffer: one lock hold per call */
/* At most this many slots of the caller's vector per ioctl: the kernel
 * checks the whole of vec_len against the address-space top before it
 * writes a region, and a vec_len beyond any real vector (SIZE_MAX, which
 * test-inputs passes) must not fail a scan that fills a few. */
#define DIRECT_MAX (1U << 16)

/* The caller's regions and the kernel's have one layout. */
_Static_assert(sizeof(struct pm_region) == sizeof(struct pm__page_region) &&
		       offsetof(struct pm_region, categories) ==
			       offsetof(struct pm__page_region, categories),
	       "struct pm_region is the kernel's struct page_region");

static int check_answer(const struct pm__scan_arg *a, const struct pm__page_region *r, long n,
			uint64_t ps, uint64_t ret_mask, uint64_t *walk_end)
{
	uint64_t prev = a->start;

	if (n < 0 || (uint64_t)n > a->vec_len)
		return -EIO;
	for (long i = 0; i < n; i++) {
		if ((r[i].start | r[i].end) & (ps - 1) || r[i].start >= r[i].end ||
		    r[i].start < prev || r[i].end > a->end || (r[i].categories & ~ret_mask))
			return -EIO;
		prev = r[i].end;
	}
	/* walk_end must lie between the last region and the end asked */
	*walk_end = a->walk_end;
	if (*walk_end < prev)
		*walk_end = prev;
	if (*walk_end > a->end)
		*walk_end = a->end;
	return 0;
}

int pm__scan_native(struct pm_handle *h, uint64_t start, uint64_t end,
		    const struct pm__scan_req *q, struct pm__scan_out *o)
{
	const uint64_t ps = pm__kernel()->page_size;
	const bool wp = q->flags & PM_SCAN_F_WP_MATCHING;
	/* write-protect only (vec_len 0): the kernel still gets a vector,
	 * whose regions are dropped, because some 6.12 stables dereference a
	 * NULL one ("check p->vec_buf for NULL", 6.12.50/57) */
	const bool wp_only = wp && !o->vec_len;
	struct pm__page_region buf[NATIVE_VEC];
	uint64_t cur = start;

	while (cur < end) {
		struct pm__page_region *dst = buf;
		struct pm__scan_arg a;
		uint64_t slots = NATIVE_VEC, we;
		long n;
		int r;

		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.flags = q->flags & (PM_SCAN_F_WP_MATCHING | PM_SCAN_F_CHECK_WPASYNC);
		a.start = cur;
		a.end = end;
		a.category_mask = q->mask;
		a.category_inverted = q->inverted;
		a.category_anyof_mask = q->anyof;
		a.return_mask = q->ret;
		/* Room for the caller's free slots plus one: the extra region
		 * tells whether the last one continues (merge) or the output
		 * is complete, without scanning further ahead. */
		if (!wp && o->vec_len - o->n < slots - 1) /* no +1 overflow at SIZE_MAX */
			slots = o->vec_len - o->n + 1;
		/* Write-protecting matches the caller will not see would lose
		 * them: never scan ahead of the caller's vector or page limit
		 * (unless it asked for write-protection only). */
		if (wp && !wp_only) {
			if (o->vec_len - o->n < slots)
				slots = o->vec_len - o->n;
			if (!slots || o->found == o->max_pages) {
				o->done = true;
				o->walk_end = cur;
				return 0;
			}
		}
		/* A caller's vector with room for a whole bounce buffer is
		 * scanned into directly, sparing a copy per region and, when
		 * write-protecting, a walk in calls of 512 regions (each call a
		 * lock hold, a notifier range and TLB flushes of its own: 1.85x
		 * one call over 1 GiB at 1% written); merging below only ever
		 * writes at or before the region it reads. When it fills, the
		 * next turn has few slots and (unless write-protecting) looks
		 * one ahead. */
		if (o->vec_len - o->n >= NATIVE_VEC) {
			dst = (struct pm__page_region *)(o->vec + o->n);
			slots = o->vec_len - o->n < DIRECT_MAX ? o->vec_len - o->n : DIRECT_MAX;
		}
		if (o->max_pages != UINT64_MAX)
			a.max_pages = o->max_pages - o->found ? o->max_pages - o->found : 1;
		a.vec = (uint64_t)(uintptr_t)dst;
		a.vec_len = slots;
		n = pm__ioctl(h->pagemap_fd, PM__PAGEMAP_SCAN, &a);
		if (n < 0)
			return (int)n;
		r = check_answer(&a, dst, n, ps, q->ret, &we);
		if (r)
			return r;
		for (long i = 0; i < n && wp_only; i++)
			o->found += (dst[i].end - dst[i].start) / ps;
		if (wp_only && n && o->found >= o->max_pages) {
			o->done = true;
			o->walk_end = dst[n - 1].end;
			return 0;
		}
		for (long i = 0; i < n && !wp_only; i++) {
			const struct pm__page_region g = dst[i];

			if (!pm__out_add(o, g.start, g.end, g.categories))
				return 0;
		}
		if (we <= cur)
			return -EIO; /* no progress: never loop on it */
		cur = we;
	}
	return 0;
}
