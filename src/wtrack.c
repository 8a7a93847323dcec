/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_wtrack_*: argument checks, the choice of method, and the clipping of
 * a collect to the tracked ranges. The methods (wtrack-uffd.c,
 * wtrack-sd.c) report into the same canonical output as pm_scan.
 */
#include "wtrack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int range_cmp(const void *a, const void *b)
{
	const struct pm_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int pm__wt_mapped(struct pm__vcursor *c, const struct pm_range *r, size_t n, bool *join)
{
	for (size_t i = 0; i < n; i++) {
		struct pm_vma v;
		int k;

		for (uint64_t a = r[i].start; a < r[i].end; a = v.end) {
			k = pm__vcursor_next(c, a, &v, false);
			if (k <= 0 || v.start > a)
				return k < 0 ? k : -EFAULT;
		}
		if (!join || i + 1 == n)
			continue;
		/* the cursor keeps this answer for the next range's first lookup */
		k = pm__vcursor_next(c, r[i].end, &v, false);
		if (k < 0)
			return k;
		join[i] = !k || v.start >= r[i + 1].start;
	}
	return 0;
}

/* Every operation looks the VMAs up through one cursor, so the check
 * that the ranges are mapped and the reads after it share the lookups. */
static void op_begin(struct pm_wtrack *wt, struct pm__vcursor *vc)
{
	pm__vcursor_init(vc, wt->h);
	wt->vc = vc;
}

static void op_end(struct pm_wtrack *wt)
{
	pm__vcursor_fini(wt->vc);
	wt->vc = NULL;
}

/* A sorted copy of the caller's ranges, or -EINVAL. */
static int copy_ranges(struct pm_wtrack *wt, const struct pm_range *ranges, size_t n)
{
	const struct pm__kernel *k = pm__kernel();

	wt->ranges = malloc(n * sizeof(*ranges));
	if (!wt->ranges)
		return -ENOMEM;
	memcpy(wt->ranges, ranges, n * sizeof(*ranges));
	wt->nranges = n;
	qsort(wt->ranges, n, sizeof(*ranges), range_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct pm_range *r = &wt->ranges[i];

		if (!pm__range_ok(r->start, r->end) || (i && r->start < r[-1].end))
			return -EINVAL;
		wt->npages += (r->end - r->start) >> k->page_shift;
	}
	return 0;
}

static int parse_opts(const struct pm_wtrack_opts *opts, uint64_t *method, uint64_t *flags)
{
	int r = pm__opts_check(opts, sizeof(struct pm_wtrack_opts));

	if (r)
		return r;
	*method = PM__OPT(opts, struct pm_wtrack_opts, method, PM_WT_METHOD_AUTO);
	*flags = PM__OPT(opts, struct pm_wtrack_opts, flags, 0);
	if (*method > PM_WT_METHOD_SOFT_DIRTY || (*flags & ~(PM_WT_F_EXACT | PM_WT_F_STOP)))
		return -EINVAL;
	/* uffd tracks the calling process, which cannot be stopped */
	return *method == PM_WT_METHOD_UFFD && (*flags & PM_WT_F_STOP) ? -EINVAL : 0;
}

#define EXACT_WHY "reports a written THP as 2 MiB (PM_WT_F_EXACT)"
#define STOP_WHY "PM_WT_F_STOP cannot stop the calling process"

PM_EXPORT int pm_wtrack_supported(struct pm_handle *h, const struct pm_wtrack_opts *opts,
				  char *why, size_t why_len)
{
	const char *u = NULL, *s = NULL;
	uint64_t method, flags;
	int r;

	if (!h || (!why && why_len))
		return (int)pm__ret(-EINVAL);
	r = parse_opts(opts, &method, &flags);
	if (!r)
		r = pm__handle_ready(h);
	if (r)
		return (int)pm__ret(r);
	if (method != PM_WT_METHOD_SOFT_DIRTY && !(flags & PM_WT_F_STOP)) {
		u = pm__wt_uffd_why_not(h);
		if (!u)
			return PM_WT_METHOD_UFFD;
	}
	if (method != PM_WT_METHOD_UFFD) {
		if (flags & PM_WT_F_EXACT)
			s = EXACT_WHY;
		else if ((flags & PM_WT_F_STOP) && h->self)
			s = STOP_WHY;
		else
			s = pm__wt_sd_why_not();
		if (!s)
			return PM_WT_METHOD_SOFT_DIRTY;
	}
	if (why_len)
		snprintf(why, why_len, "%s%s%s%s%s", u ? "userfaultfd: " : "", u ? u : "",
			 u && s ? "; " : "", s ? "soft-dirty: " : "", s ? s : "");
	return 0;
}

static int start_method(struct pm_wtrack *wt, uint64_t method, uint64_t flags)
{
	int r = -EOPNOTSUPP;

	if ((flags & PM_WT_F_STOP) && wt->h->self)
		return -EPERM;
	wt->stop = flags & PM_WT_F_STOP;
	if (method != PM_WT_METHOD_SOFT_DIRTY && wt->h->self) {
		wt->method = PM_WT_METHOD_UFFD;
		r = pm__wt_uffd_start(wt);
		if (r != -EOPNOTSUPP || method == PM_WT_METHOD_UFFD)
			return r;
	}
	/* soft-dirty reports a written THP as all its pages */
	if (method == PM_WT_METHOD_UFFD || (flags & PM_WT_F_EXACT))
		return -EOPNOTSUPP;
	wt->method = PM_WT_METHOD_SOFT_DIRTY;
	return pm__wt_sd_start(wt);
}

static void wt_free(struct pm_wtrack *wt)
{
	free(wt->ranges);
	pthread_mutex_destroy(&wt->lock);
	free(wt);
}

PM_EXPORT int pm_wtrack_new(struct pm_handle *h, const struct pm_range *ranges, size_t nranges,
			    const struct pm_wtrack_opts *opts, struct pm_wtrack **out)
{
	uint64_t method, flags;
	struct pm_wtrack *wt;
	int r;

	if (!h || !ranges || !nranges || !out || nranges > SIZE_MAX / sizeof(*ranges))
		return (int)pm__ret(-EINVAL);
	r = parse_opts(opts, &method, &flags);
	if (r)
		return (int)pm__ret(r);
	wt = calloc(1, sizeof(*wt));
	if (!wt)
		return (int)pm__ret(-ENOMEM);
	wt->h = h;
	wt->uffd = wt->clear_fd = -1;
	pthread_mutex_init(&wt->lock, NULL);
	r = copy_ranges(wt, ranges, nranges);
	if (!r)
		r = pm__handle_ready(h);
	if (!r) {
		struct pm__vcursor vc;

		op_begin(wt, &vc);
		r = pm__wt_mapped(wt->vc, wt->ranges, wt->nranges, NULL);
		if (!r) {
			wt->owner = h->self ? getpid() : 0;
			r = start_method(wt, method, flags);
		}
		op_end(wt);
	}
	if (r) {
		wt_free(wt);
		return (int)pm__ret(r);
	}
	*out = wt;
	return 0;
}

/* Own-memory trackers describe the process that made them: a forked
 * child's memory is not tracked (the kernel drops the child's uffd-wp
 * registration, and clear_refs goes to the parent). */
static int wt_ready(struct pm_wtrack *wt)
{
	if (wt->owner && getpid() != wt->owner)
		return -ECHILD;
	return pm__handle_ready(wt->h);
}

/* The parts of [start, end) inside tracked ranges into out[]. */
static size_t clip(const struct pm_wtrack *wt, uint64_t start, uint64_t end, struct pm_range *out)
{
	size_t lo = 0, hi = wt->nranges, n = 0;

	/* the first range ending above start: a continuation call starts late */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (wt->ranges[mid].end <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < wt->nranges && wt->ranges[i].start < end; i++) {
		out[n].start = wt->ranges[i].start > start ? wt->ranges[i].start : start;
		out[n].end = wt->ranges[i].end < end ? wt->ranges[i].end : end;
		n++;
	}
	return n;
}

PM_EXPORT long pm_wtrack_collect(struct pm_wtrack *wt, uint64_t start, uint64_t end,
				 struct pm_region *vec, size_t vec_len, uint64_t flags,
				 uint64_t *walk_end)
{
	struct pm__scan_out o;
	struct pm_range *sub;
	size_t n;
	long r;

	if (!wt || !vec || !vec_len || !pm__range_ok(start, end) ||
	    (flags & ~PM_WT_COLLECT_RESET))
		return pm__ret(-EINVAL);
	sub = malloc(wt->nranges * sizeof(*sub));
	if (!sub)
		return pm__ret(-ENOMEM);
	n = clip(wt, start, end, sub);
	if (!n) {
		free(sub);
		return pm__ret(-EINVAL);
	}
	pm__out_init(&o, vec, vec_len, 0);
	pthread_mutex_lock(&wt->lock);
	r = wt_ready(wt);
	if (!r) {
		const bool reset = flags & PM_WT_COLLECT_RESET;
		/* a soft-dirty reset clears every tracked page: all must be mapped */
		const bool all = wt->method == PM_WT_METHOD_SOFT_DIRTY && reset;
		struct pm__vcursor vc;

		op_begin(wt, &vc);
		/* the userfaultfd method checks the ranges it reaches as it goes */
		if (wt->method == PM_WT_METHOD_UFFD)
			r = pm__wt_uffd_collect(wt, sub, n, &o, reset);
		else if (!(r = pm__wt_mapped(wt->vc, all ? wt->ranges : sub, all ? wt->nranges : n,
					     NULL)))
			r = pm__wt_sd_collect(wt, sub, n, &o, reset);
		/* nothing of another process's memory goes out */
		if (!r && (r = pm__handle_check(wt->h)) != 0)
			o.n = 0;
		op_end(wt);
	}
	pthread_mutex_unlock(&wt->lock);
	free(sub);
	/* Regions already reported were reset with them: hand them over and
	 * let the call that continues from walk_end meet the error. */
	if (r < 0 && o.n) {
		r = 0;
		o.done = true;
		o.walk_end = vec[o.n - 1].end;
	}
	if (r < 0)
		return pm__ret(r);
	if (walk_end)
		*walk_end = o.done ? o.walk_end : end;
	pthread_mutex_lock(&wt->lock);
	wt->stats.collects++;
	wt->stats.pages_reported += o.found;
	pthread_mutex_unlock(&wt->lock);
	return (long)o.n;
}

PM_EXPORT int pm_wtrack_reset(struct pm_wtrack *wt)
{
	int r;

	if (!wt)
		return (int)pm__ret(-EINVAL);
	pthread_mutex_lock(&wt->lock);
	r = wt_ready(wt);
	if (!r) {
		struct pm__vcursor vc;

		op_begin(wt, &vc);
		r = pm__wt_mapped(wt->vc, wt->ranges, wt->nranges, NULL);
		if (!r)
			r = wt->method == PM_WT_METHOD_UFFD ? pm__wt_uffd_reset(wt) : pm__wt_sd_reset(wt);
		op_end(wt);
	}
	pthread_mutex_unlock(&wt->lock);
	return (int)pm__ret(r);
}

PM_EXPORT int pm_wtrack_method(const struct pm_wtrack *wt)
{
	return wt ? wt->method : (int)pm__ret(-EINVAL);
}

PM_EXPORT int pm_wtrack_stats(struct pm_wtrack *wt, struct pm_wtrack_stats *st)
{
	struct pm_wtrack_stats out;

	if (!wt || !st)
		return (int)pm__ret(-EINVAL);
	if (pm__out_size_check(st->size, offsetof(struct pm_wtrack_stats, collects) + 8))
		return (int)pm__ret(-EINVAL);
	pthread_mutex_lock(&wt->lock);
	out = wt->stats;
	pthread_mutex_unlock(&wt->lock);
	pm__out_copy(st, &out, sizeof(out));
	return 0;
}

PM_EXPORT void pm_wtrack_free(struct pm_wtrack *wt)
{
	if (!wt)
		return;
	if (wt->method == PM_WT_METHOD_UFFD)
		pm__wt_uffd_stop(wt, !wt->owner || getpid() == wt->owner);
	else
		pm__wt_sd_stop(wt);
	wt_free(wt);
}
