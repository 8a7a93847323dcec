/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A scan's request and its output in canonical form: what pm_scan hands
 * its two paths, and what the write trackers report into. */
#ifndef PM_SCAN_OUT_H
#define PM_SCAN_OUT_H

#include "internal.h"

struct pm__scan_req {
	uint64_t flags, mask, inverted, anyof, ret, max_pages;
};

/* The caller's output, filled in canonical form. */
struct pm__scan_out {
	struct pm_region *vec;
	size_t vec_len, n;
	uint64_t max_pages, found; /* max_pages: UINT64_MAX without a limit */
	bool done;                 /* vec full or max_pages reached */
	uint64_t walk_end;         /* valid when done */
	unsigned shift;            /* the page shift, looked up once per call */
};

/* Whether categories @c match the request, as the kernel decides. */
static inline bool pm__scan_match(const struct pm__scan_req *q, uint64_t c)
{
	c ^= q->inverted;
	return (c & q->mask) == q->mask && (!q->anyof || (c & q->anyof));
}

/* An empty output into vec[0, vec_len), at most @max_pages pages (0: no
 * limit). */
PM_HIDDEN void pm__out_init(struct pm__scan_out *o, struct pm_region *vec, size_t vec_len,
			    uint64_t max_pages);

/* Report the matched pages [s, e) with categories c (already & return
 * mask): merged with the previous region when adjacent and equal, trimmed
 * to max_pages. false once the output is done (walk_end set). */
PM_HIDDEN bool pm__out_add(struct pm__scan_out *o, uint64_t s, uint64_t e, uint64_t c);

#endif
