/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The read engine: pm_read() plans its kernel reads from the VMA layout and
 * reads straight into the caller's buffer.
 *
 * Costs measured on the development machine (6.18, x86-64): a pagemap pread
 * costs ~3 ns per unmapped entry and ~30 ns per mapped one, zero-filling
 * ~0.4 ns per entry, one PROCMAP_QUERY ~0.26 us, the maps text ~0.14 us per
 * VMA (on a 6.18 VM guest: a pread ~2.5 us, a query ~2.6 us, a line of
 * maps text ~0.22 us).
 *
 * The planner plans from the handle's VMA list when it has one (free, kept
 * across calls): one read per run of VMAs whose gaps are too small to repay
 * a read of their own, however many VMAs the run holds. A gap is
 * zero-filled only when a fact says it is one (vma-cache.c: a list kept from
 * an earlier call may miss a mapping moved there since): one query per gap,
 * or one list read for the pass when the plan has many gaps. Without a list
 * it asks the kernel for the next VMA once per read it issues, reading at
 * least READ_AHEAD pages per read so that runs of small mappings cost one
 * syscall.
 */
#include "internal.h"
#include "stop.h"

#include <stdlib.h>
#include <string.h>

#define READ_AHEAD_PAGES 512UL   /* one PMD of entries: ~1.5 us if it is all gap */
#define GAP_SKIP_PAGES 1024UL    /* a gap worth a separate read (~1-3 us syscall) */
#define BLIND_QUERY_PAGES 64UL   /* below this, a query costs more than the gap */
#define BLIND_TEXT_PAGES 4096UL  /* below this, parsing maps costs more than the gap */
#define QUERIES_PER_LINE 4       /* a query costs 2-12 lines of maps text */

struct rd {
	struct pm_handle *h;
	struct pm__guard *g;
	pm__span_fn emit; /* plan only: hand each span to the batch */
	void *emit_arg;
	uint64_t start, end;
	uint64_t *entries;
	unsigned shift;
	struct pm__vcursor *vc;
	int by_list; /* this pass confirms gaps by a list read: -1 not decided */
};

static int span(struct rd *rd, uint64_t from, uint64_t to)
{
	if (rd->emit)
		return rd->emit(rd->emit_arg, from, rd->entries + ((from - rd->start) >> rd->shift),
				(size_t)((to - from) >> rd->shift));
	return pm__span_read(rd->g, rd->h, from, rd->entries + ((from - rd->start) >> rd->shift),
			     (size_t)((to - from) >> rd->shift));
}

static void zero(struct rd *rd, uint64_t from, uint64_t to)
{
	if (rd->emit) {
		memset(rd->entries + ((from - rd->start) >> rd->shift), 0,
		       (size_t)((to - from) >> rd->shift) * 8);
		return;
	}
	pm__span_zero(rd->g, rd->entries + ((from - rd->start) >> rd->shift),
		      (size_t)((to - from) >> rd->shift));
}

static bool big_gap(const struct rd *rd, uint64_t from, uint64_t to)
{
	return ((to - from) >> rd->shift) >= GAP_SKIP_PAGES;
}

/* Whether the plan's gaps in [from, to) are many enough that one read of
 * the list costs less than a query each. */
static bool many_gaps(const struct rd *rd, uint64_t from, uint64_t to)
{
	const struct pm_vma_list *l = pm__vsnap_list(rd->vc->snap);
	size_t gaps = 0;
	uint64_t prev = from;

	for (size_t i = pm__list_find(l, from); i < l->count && l->v[i].start < to; i++) {
		if (l->v[i].start > prev && big_gap(rd, prev, l->v[i].start))
			gaps++;
		prev = l->v[i].end;
	}
	if (prev < to && big_gap(rd, prev, to))
		gaps++;
	return gaps * QUERIES_PER_LINE >= l->count;
}

/* The facts at @cur, where the plan saw a gap up to at least a skip's
 * worth: the VMA covering @cur or the next (1), or none (0). */
static int confirm(struct rd *rd, uint64_t cur, uint64_t end, struct pm_vma *v)
{
	struct pm__vcursor *vc = rd->vc;

	if (!vc->fresh && vc->snap) {
		if (rd->by_list < 0)
			rd->by_list = !vc->use_query || many_gaps(rd, cur, end);
		if (rd->by_list) {
			int r = pm__vcursor_refresh(vc);

			if (r)
				return r;
		}
	}
	return pm__vcursor_next(vc, cur, v, false);
}

/* One pass over [start, end), part of the read: every kernel read pm_read
 * issues there. Run again, re-planned, over what the guard has not
 * certified yet. */
static int engine(void *arg, uint64_t start, uint64_t end)
{
	struct rd *rd = arg;
	struct pm__vcursor *vc = rd->vc;
	uint64_t cur = start, pages = (end - start) >> rd->shift;

	/* a certifying pass looks at the VMAs afresh */
	if (rd->g && rd->g->pieces)
		pm__vcursor_forget(vc);
	rd->by_list = -1;
	if (!vc->snap && pages <= (vc->use_query ? BLIND_QUERY_PAGES : BLIND_TEXT_PAGES))
		return span(rd, start, end);
	while (cur < end) {
		/* the plan is a fact without a list, or with one read in this call */
		const bool facts = !vc->snap || vc->fresh;
		struct pm_vma v;
		uint64_t to;
		int r = pm__vcursor_plan(vc, cur, &v);

		if (r < 0)
			return r;
		if (r == 0 || v.start > cur) {
			uint64_t ge = r == 0 || v.start > end ? end : v.start;

			if (facts ? ge == end || big_gap(rd, cur, ge) : big_gap(rd, cur, ge)) {
				if (!facts) {
					r = confirm(rd, cur, end, &v);
					if (r < 0)
						return r;
					ge = r == 0 || v.start > end ? end : v.start;
				}
				if (ge > cur) {
					zero(rd, cur, ge);
					cur = ge;
					continue;
				}
			}
		}
		/* read from cur through this VMA, and with a list through every
		 * VMA after it up to a gap worth a read of its own */
		to = r == 1 ? v.end : end;
		if (vc->snap)
			to = pm__vcursor_run(vc, to, end, GAP_SKIP_PAGES << rd->shift);
		else if (to < cur + READ_AHEAD_PAGES * (1ULL << rd->shift)) {
			to = cur + READ_AHEAD_PAGES * (1ULL << rd->shift);
		}
		if (to > end || to <= cur)
			to = end;
		r = span(rd, cur, to);
		if (r)
			return r;
		cur = to;
	}
	return 0;
}

int pm__read_args(struct pm_handle *h, uint64_t start, uint64_t end, const uint64_t *entries,
		  const struct pm_read_info *info)
{
	const struct pm__kernel *k = pm__kernel();

	if (!h || !entries || !pm__range_ok(start, end) ||
	    (end - start) >> k->page_shift > SIZE_MAX / 8)
		return -EINVAL;
	if (info && pm__out_size_check(info->size, sizeof(uint64_t)))
		return -EINVAL;
	return 0;
}

void pm__fill_info(struct pm_read_info *info, uint64_t flags, uint64_t retries,
		   uint64_t kernel_reads)
{
	struct pm_read_info out = { 0 };

	if (!info)
		return;
	/* the caller's uncertain array, if any */
	memcpy(&out, info, info->size < sizeof(out) ? info->size : sizeof(out));
	out.uncertain_count = 0;
	out.flags = flags;
	out.retries = retries;
	out.kernel_reads = kernel_reads;
	pm__out_copy(info, &out, sizeof(out));
}

int pm__read_plan(struct pm_handle *h, uint64_t start, uint64_t end, uint64_t *entries,
		  pm__span_fn emit, void *arg)
{
	struct pm__vcursor vc;
	struct rd rd;
	int r;

	memset(&rd, 0, sizeof(rd));
	rd.h = h;
	rd.emit = emit;
	rd.emit_arg = arg;
	rd.shift = pm__kernel()->page_shift;
	rd.start = start;
	rd.end = end;
	rd.entries = entries;
	rd.vc = &vc;
	pm__vcursor_init(&vc, h);
	r = engine(&rd, start, end);
	pm__vcursor_fini(&vc);
	return r;
}

PM_EXPORT long pm_read(struct pm_handle *h, uint64_t start, uint64_t end, uint64_t *entries,
		       const struct pm_read_opts *opts, struct pm_read_info *info)
{
	struct pm__vcursor vc;
	long r;

	if (!h)
		return pm__ret(-EINVAL);
	r = pm__opts_check(opts, sizeof(struct pm_read_opts));
	if (!r && PM__OPT(opts, struct pm_read_opts, flags, 0) &
			  (PM__READ_UNGUARDED | PM__READ_TRIPPED | PM__READ_UNCHECKED))
		r = -EINVAL;
	if (r)
		return pm__ret(r);
	pm__vcursor_init(&vc, h);
	r = pm__read(h, start, end, entries, opts, info, &vc);
	pm__vcursor_fini(&vc);
	return r;
}

long pm__read_flags(struct pm_handle *h, uint64_t start, uint64_t end, uint64_t *entries,
		    uint64_t flags, uint64_t max_retries, struct pm_read_info *info)
{
	PM_OPTS(pm_read_opts, o, .flags = flags, .max_retries = max_retries);
	struct pm__vcursor vc;
	long r;

	if (!h)
		return pm__ret(-EINVAL);
	pm__vcursor_init(&vc, h);
	r = pm__read(h, start, end, entries, &o, info, &vc);
	pm__vcursor_fini(&vc);
	return r;
}

long pm__read(struct pm_handle *h, uint64_t start, uint64_t end, uint64_t *entries,
	      const struct pm_read_opts *opts, struct pm_read_info *info, struct pm__vcursor *vc)
{
	const struct pm__kernel *k = pm__kernel();
	const uint64_t known = PM_READ_F_SNAPSHOT | PM_READ_F_BEST_EFFORT | PM_READ_F_STOP |
			       PM__READ_UNGUARDED | PM__READ_TRIPPED | PM__READ_UNCHECKED;
	struct pm__stop *st = NULL;
	struct pm__guard g;
	struct rd rd;
	uint64_t flags;
	long r;

	r = pm__read_args(h, start, end, entries, info);
	if (!r)
		r = pm__opts_check(opts, sizeof(struct pm_read_opts));
	if (r)
		return pm__ret(r);
	flags = PM__OPT(opts, struct pm_read_opts, flags, 0);
	if (flags & ~known)
		return pm__ret(-EINVAL);
	r = pm__handle_ready(h);
	if (r)
		return pm__ret(r);
	r = pm__guard_init(&g, flags, PM__OPT(opts, struct pm_read_opts, max_retries, 0));
	if (r)
		return pm__ret(r);
	memset(&rd, 0, sizeof(rd));
	rd.h = h;
	rd.g = &g;
	rd.shift = k->page_shift;
	rd.vc = vc;
	rd.start = start;
	rd.end = end;
	rd.entries = entries;
	/* faults on the output buffer (ours, or the kernel's copy into it)
	 * would move the guard's token: the target's when it is this process,
	 * the system's THP counters when a THP backs the buffer */
	if (g.active)
		pm__prefault(entries, (size_t)((end - start) >> k->page_shift));
	/* a stopped target faults and zaps nothing itself while it is read
	 * (another process only: -EPERM for our own) */
	if (flags & PM_READ_F_STOP)
		r = pm__stop_begin(h, &st);
	if (!r)
		r = pm__guarded(&g, h, start, end, engine, &rd);
	pm__stop_end(st);
	/* a token read after all of it answers for the caller's identity
	 * check too (pm__vcursor_check) */
	vc->ident_fresh = g.active && g.ident_fresh && g.ident != 1;
	vc->ident = g.ident;
	if (r == 0 && !(flags & PM__READ_UNCHECKED))
		r = pm__guard_check(&g, h);
	if (r == 0) {
		pm__fill_info(info,
			      (g.active ? PM_READ_INFO_GUARDED : 0) | (g.retries ? PM_READ_INFO_RETRIED : 0) |
				      (g.unstable ? PM_READ_INFO_UNSTABLE : 0),
			      g.retries, g.kernel_reads);
		pm__guard_report(&g, info);
		r = (long)((end - start) >> k->page_shift);
	}
	pm__guard_fini(&g);
	return pm__ret(r);
}

void pm__prefault(uint64_t *entries, size_t n)
{
	const size_t step = pm__kernel()->page_size / 8;

	for (size_t i = 0; i < n; i += step)
		((volatile uint64_t *)entries)[i] = 0;
}
