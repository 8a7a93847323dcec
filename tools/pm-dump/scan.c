/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --scan: the regions matching some categories; --check: native against
 * emulated pm_scan, every difference with its address. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm-dump.h"

#define SCAN_VEC 4096

static const char *const cat_names[] = { "wpallowed", "written", "file",   "present", "swapped",
					 "pfnzero",   "huge",    "soft_dirty", "guard" };
#define NCATS (sizeof(cat_names) / sizeof(cat_names[0]))

void scan_cat_list(uint64_t c, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < NCATS; i++)
		if (c & (1ULL << i))
			n += (size_t)snprintf(out + n, len - n, "%s%s", n ? "," : "", cat_names[i]);
}

/* "present,!file": names that must be set, or (with !) clear */
int scan_parse_cats(const char *arg, struct pm_scan_opts *o)
{
	char *copy = strdup(arg), *save = NULL;
	int r = 0;

	if (!copy)
		return -1;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		bool neg = t[0] == '!';
		size_t i;

		for (i = 0; i < NCATS && strcmp(t + neg, cat_names[i]); i++)
			;
		if (i == NCATS) {
			r = -1;
			break;
		}
		o->category_mask |= 1ULL << i;
		if (neg)
			o->category_inverted |= 1ULL << i;
	}
	free(copy);
	return r;
}

static void emit_region(struct dump *d, const struct pm_region *r)
{
	struct out *o = &d->out;
	char names[128];

	scan_cat_list(r->categories, names, sizeof(names));
	out_row(o);
	out_hex(o, "start", "%016" PRIx64, r->start);
	out_hex(o, "end", "-%016" PRIx64, r->end);
	out_text(o, " %8" PRIu64 " pages", (r->end - r->start) / d->page_size);
	out_str(o, "categories", " %s", names);
	out_row_end(o);
}

void scan_span(struct dump *d, uint64_t s, uint64_t e)
{
	static struct pm_region vec[SCAN_VEC];

	for (uint64_t cur = s, we; cur < e; cur = we) {
		long n = pm_scan(d->h, cur, e, vec, SCAN_VEC, &d->scan, &we);

		if (n < 0)
			die("pm_scan", (int)n);
		for (long i = 0; i < n; i++)
			emit_region(d, &vec[i]);
	}
}

static void emit_diff(struct dump *d, uint64_t at, const char *what)
{
	struct out *o = &d->out;

	out_row(o);
	out_hex(o, "addr", "DIFF %016" PRIx64, at);
	out_str(o, "difference", ": %s", what);
	out_row_end(o);
	d->differences++;
}

static long scan_fill(struct dump *d, uint64_t *cur, uint64_t e, struct pm_region *v,
		      const struct pm_scan_opts *o)
{
	long n = pm_scan(d->h, *cur, e, v, SCAN_VEC, o, cur);

	if (n < 0)
		die(o->flags & PM_SCAN_F_EMULATE ? "pm_scan (emulated)" : "pm_scan", (int)n);
	return n;
}

/* Every page of [s, e) by the categories both paths can compute, natively
 * and emulated; differences are printed with their address. */
void scan_check_vma(struct dump *d, uint64_t s, uint64_t e)
{
	static struct pm_region a[SCAN_VEC], b[SCAN_VEC];
	PM_OPTS(pm_scan_opts, on, .return_mask = d->scan.return_mask);
	PM_OPTS(pm_scan_opts, oe, .flags = PM_SCAN_F_EMULATE, .return_mask = d->scan.return_mask);
	uint64_t wa = s, wb = s;
	long na = 0, nb = 0, ia = 0, ib = 0;
	char x[128], y[128], what[400];

	/* walk both answers region by region, refilling each as it runs out */
	for (;;) {
		if (ia == na && wa < e) {
			na = scan_fill(d, &wa, e, a, &on);
			ia = 0;
		}
		if (ib == nb && wb < e) {
			nb = scan_fill(d, &wb, e, b, &oe);
			ib = 0;
		}
		if (ia == na || ib == nb) {
			if (ia != na || ib != nb)
				emit_diff(d, ia != na ? a[ia].start : b[ib].start,
					  "only one path reports a region here");
			return;
		}
		if (memcmp(&a[ia], &b[ib], sizeof(a[0]))) {
			scan_cat_list(a[ia].categories, x, sizeof(x));
			scan_cat_list(b[ib].categories, y, sizeof(y));
			snprintf(what, sizeof(what),
				 "native %016" PRIx64 "-%016" PRIx64 " %s, emulated %016" PRIx64
				 "-%016" PRIx64 " %s",
				 a[ia].start, a[ia].end, x, b[ib].start, b[ib].end, y);
			emit_diff(d, a[ia].start < b[ib].start ? a[ia].start : b[ib].start, what);
		}
		ia++;
		ib++;
	}
}
