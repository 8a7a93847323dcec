/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A cursor over the target's VMAs for one call of the read engine, the
 * emulated scan and the trackers: facts from PROCMAP_QUERY where the kernel
 * has it, from a list read in this call after many queries or without it;
 * plans and, once checked, kinds from the handle's list (vma-cache.c says
 * what may be taken from it). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Queries in one call after which the whole list is read instead: a line
 * of the maps text costs a tenth of a PROCMAP_QUERY, and the list read is
 * kept for the calls that follow. */
#define QUERY_STEPS 64

void pm__vcursor_init(struct pm__vcursor *c, struct pm_handle *h)
{
	memset(c, 0, sizeof(*c));
	c->h = h;
	c->use_query = pm__use_query(h);
	c->snap = pm__vsnap_cached(h);
}

void pm__vcursor_fini(struct pm__vcursor *c)
{
	pm__vsnap_put(c->snap);
	c->snap = NULL;
	free(c->name);
	c->name = NULL;
}

void pm__vcursor_forget(struct pm__vcursor *c)
{
	c->have_last = false;
	c->fresh = false;
	c->checked = false;
	c->gen++;
}

int pm__vcursor_check(struct pm__vcursor *c)
{
	return c->ident_fresh ? c->ident : pm__handle_check(c->h);
}

int pm__vcursor_refresh(struct pm__vcursor *c)
{
	struct pm__vsnap *s;
	int r;

	c->ident_fresh = false;
	r = pm__vsnap_read(c->h, &s);

	if (r)
		return r;
	pm__vsnap_put(c->snap);
	c->snap = s;
	c->fresh = true;
	c->checked = true;
	c->idx = 0;
	c->gen++;
	return 0;
}

/* The VMA of the list covering @addr or the next one. Lookups mostly go
 * forward by a VMA or two; anything else is a binary search. */
static int from_list(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v)
{
	const struct pm_vma_list *l = pm__vsnap_list(c->snap);
	size_t i = c->idx, steps = 0;

	if (i > l->count || (i && l->v[i - 1].end > addr))
		steps = 4; /* went back */
	while (steps < 4 && i < l->count && l->v[i].end <= addr) {
		i++;
		steps++;
	}
	if (steps == 4)
		i = pm__list_find(l, addr);
	c->idx = i;
	if (i == l->count)
		return 0;
	*v = l->v[i];
	return 1;
}

/* One PROCMAP_QUERY, or the last answer when it still holds: nothing
 * starts between the last query and the VMA it found. */
static int query(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v, bool want_name)
{
	int r;

	if (c->have_last && addr >= c->last_addr && (c->last_r == 0 || addr < c->last.end)) {
		if (c->last_r)
			*v = c->last;
		return c->last_r;
	}
	/* once a caller wants names every query asks for them, so that
	 * lookups with and without names do not query the same VMA twice */
	c->names |= want_name;
	c->queries++;
	c->ident_fresh = false;
	r = pm__query_vma(c->h, addr, v, c->names ? &c->name : NULL, &c->name_cap);
	if (r >= 0) {
		c->have_last = true;
		c->last_r = r;
		c->last_addr = addr;
		if (r == 1)
			c->last = *v;
	}
	return r;
}

int pm__vcursor_next(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v, bool want_name)
{
	int r;

	if (c->snap && c->fresh)
		return from_list(c, addr, v);
	if (c->use_query && c->queries < QUERY_STEPS) {
		r = query(c, addr, v, want_name);
		if (r != -ENOTTY)
			return r;
		c->use_query = false; /* a name only the maps text lists whole */
	}
	r = pm__vcursor_refresh(c);
	return r ? r : from_list(c, addr, v);
}

int pm__vcursor_kind(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v)
{
	int r;

	if (!c->snap)
		return pm__vcursor_next(c, addr, v, true);
	if (!c->fresh && !c->checked) {
		int ident;

		/* the last read so far: its stat text answers for the
		 * identity of everything read before it */
		r = pm__vsnap_current(c->h, c->snap, &ident);
		if (r < 0)
			return r;
		c->ident = ident;
		c->ident_fresh = ident != 1;
		if (r)
			c->checked = true;
		else if ((r = pm__vcursor_refresh(c)) != 0)
			return r;
	}
	r = from_list(c, addr, v);
	/* a present page outside every VMA of a checked list: the list is
	 * older than the counters say; only a fresh one answers */
	if (!c->fresh && (r == 0 || v->start > addr)) {
		r = pm__vcursor_refresh(c);
		if (!r)
			r = from_list(c, addr, v);
	}
	return r;
}

uint64_t pm__vcursor_kind_end(struct pm__vcursor *c, const struct pm_vma *v)
{
	const struct pm_vma_list *l;
	const uint64_t *ends;

	if (!c->snap)
		return v->end;
	l = pm__vsnap_list(c->snap);
	if (c->idx >= l->count || l->v[c->idx].start != v->start || l->v[c->idx].end != v->end)
		return v->end;
	ends = pm__vsnap_kind_ends(c->snap);
	return ends ? ends[c->idx] : v->end;
}

int pm__vcursor_plan(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v)
{
	if (c->snap)
		return from_list(c, addr, v);
	return pm__vcursor_next(c, addr, v, false);
}

uint64_t pm__vcursor_run(struct pm__vcursor *c, uint64_t to, uint64_t end, uint64_t gap)
{
	const struct pm_vma_list *l = pm__vsnap_list(c->snap);
	struct pm_vma w;
	size_t i;

	/* a walk over the list itself: one compare per VMA, where a lookup
	 * per VMA cost more than the kernel's own walk of small ones */
	if (to < end && from_list(c, to, &w)) {
		for (i = c->idx; i < l->count && to < end; i++) {
			if (l->v[i].start >= end)
				break;
			/* (a VMA of a stale list over @to: a stop too) */
			if (l->v[i].start < to || l->v[i].start - to >= gap) {
				c->idx = i;
				return to;
			}
			to = l->v[i].end;
		}
		c->idx = i;
	}
	return to < end && end - to < gap ? end : to;
}
