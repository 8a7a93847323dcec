/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The canonical output that both scan paths and both write trackers
 * feed: merging, the vec_len and max_pages limits, walk_end. */
#include "scan-out.h"

#include <string.h>

void pm__out_init(struct pm__scan_out *o, struct pm_region *vec, size_t vec_len,
		  uint64_t max_pages)
{
	memset(o, 0, sizeof(*o));
	o->vec = vec;
	o->vec_len = vec_len;
	o->max_pages = max_pages ? max_pages : UINT64_MAX;
	o->shift = pm__kernel()->page_shift;
}

bool pm__out_add(struct pm__scan_out *o, uint64_t s, uint64_t e, uint64_t c)
{
	uint64_t pages = (e - s) >> o->shift, allowed = o->max_pages - o->found;
	struct pm_region *last = o->n ? &o->vec[o->n - 1] : NULL;
	bool merge = last && last->end == s && last->categories == c;

	if (!allowed || (!merge && o->n == o->vec_len)) {
		o->done = true;
		o->walk_end = s;
		return false;
	}
	if (pages > allowed) {
		e = s + (allowed << o->shift);
		pages = allowed;
		o->done = true;
		o->walk_end = e;
	}
	if (merge) {
		last->end = e;
	} else {
		o->vec[o->n].start = s;
		o->vec[o->n].end = e;
		o->vec[o->n].categories = c;
		o->n++;
	}
	o->found += pages;
	return !o->done;
}
