/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_scan: validation and the choice of path (the output both paths feed
 * is scan-out.c). */
#include "internal.h"
#include "scan.h"

#include <string.h>

PM_EXPORT long pm_scan(struct pm_handle *h, uint64_t start, uint64_t end, struct pm_region *vec,
		       size_t vec_len, const struct pm_scan_opts *opts, uint64_t *walk_end)
{
	const uint64_t known_flags = PM_SCAN_F_WP_MATCHING | PM_SCAN_F_CHECK_WPASYNC |
				     PM_SCAN_F_EMULATE;
	struct pm__scan_req q;
	struct pm__scan_out o;
	uint64_t cats;
	long r;

	if (!h || !pm__range_ok(start, end) || (!vec && vec_len))
		return pm__ret(-EINVAL);
	r = pm__opts_check(opts, sizeof(struct pm_scan_opts));
	if (r)
		return pm__ret(r);
	memset(&q, 0, sizeof(q));
	q.flags = PM__OPT(opts, struct pm_scan_opts, flags, 0);
	q.mask = PM__OPT(opts, struct pm_scan_opts, category_mask, 0);
	q.inverted = PM__OPT(opts, struct pm_scan_opts, category_inverted, 0);
	q.anyof = PM__OPT(opts, struct pm_scan_opts, category_anyof_mask, 0);
	q.ret = PM__OPT(opts, struct pm_scan_opts, return_mask, 0);
	q.max_pages = PM__OPT(opts, struct pm_scan_opts, max_pages, 0);
	cats = q.mask | q.inverted | q.anyof | q.ret;
	if ((q.flags & ~known_flags) || (cats & ~PM_CAT_ALL))
		return pm__ret(-EINVAL);
	r = pm__handle_ready(h);
	if (r)
		return pm__ret(r);

	pm__out_init(&o, vec, vec_len, q.max_pages);
	r = -ENOTTY;
	if (!(q.flags & PM_SCAN_F_EMULATE)) {
		int f = pm__feature(PM_FEAT_PAGEMAP_SCAN);

		if (f < 0)
			return pm__ret(f); /* not probed yet (no fd free): do not guess */
		if (f && !(cats & ~pm__scan_categories()))
			r = pm__scan_native(h, start, end, &q, &o);
		if (r >= 0)
			r = pm__handle_check(h);
	}
	if (r == -ENOTTY) {
		/* no PAGEMAP_SCAN, a category it lacks, or EMULATE; a native
		 * attempt that found no ioctl wrote nothing */
		if (q.flags & (PM_SCAN_F_WP_MATCHING | PM_SCAN_F_CHECK_WPASYNC))
			r = -EOPNOTSUPP; /* write-protect operations have no emulation */
		else
			r = pm__scan_emulated(h, start, end, &q, &o); /* checks the handle */
	}
	if (r < 0)
		return pm__ret(r);
	if (walk_end)
		*walk_end = o.done ? o.walk_end : end;
	return (long)o.n;
}
