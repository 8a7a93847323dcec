/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The handle's VMA list, kept across calls (struct pm__vsnap).
 *
 * A list of the whole address space is read from the maps text (one line
 * costs a small fraction of a PROCMAP_QUERY), stamped with the target's
 * counters read just before it, and kept on the handle. What each use may
 * take from it (the rule, also in doc/vmas.md):
 *   - planning, always: where reads start and end, how big a window is,
 *     whether confirming gaps through the text or through queries is
 *     cheaper. pagemap is the authority for every entry read, so a stale
 *     list costs time, never correctness.
 *   - the kind of the VMA holding a present page (file-backed or private
 *     anonymous, [vvar]): only once in the call the target's fault count
 *     and statm size, resident and shared were found unchanged since the
 *     list was read (the same address space: a forked self handle never
 *     matches). A kind changes only by unmapping and mapping (size moves,
 *     unless another change of the same size cancels it) and a page of the
 *     new kind is present only by a fault or a move of resident pages,
 *     which unmaps what was there: the counters the consistency guard
 *     trusts, with its residual (counter-cancelling changes).
 *   - that a range holds no VMA (a gap zero-filled, skipped, or outside
 *     every VMA for an emulated scan): never from a list read before the
 *     call. mremap() moves a mapping and its resident pages into a gap
 *     without moving any counter; only a list read in this call, or a
 *     PROCMAP_QUERY, says what is a gap.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* The fault count and the whole statm line (size, resident, shared and
 * the sizes of text and data, which move with mappings too). */
struct ctr {
	uint64_t faults;
	char statm[128];
};

struct pm__vsnap {
	_Atomic unsigned refs;
	uint64_t *_Atomic kind_ends; /* pm__vsnap_kind_ends() */
	uint64_t gen;            /* the handle's fork generation when read */
	struct ctr ctr;          /* the target's counters just before the read */
	struct pm_vma_list list; /* every VMA below user_top, sorted */
};

/* The fault count (with @stamp's, no statm read when it moved: 0) and
 * statm; *ident from the same stat text (vma-cursor.c). 1 when read. */
static int counters(struct pm_handle *h, struct ctr *c, const struct ctr *stamp, int *ident)
{
	char stat[1024];
	int r;

	memset(c, 0, sizeof(*c));
	r = pm__slurp(h->stat_fd, stat, sizeof(stat), true);
	if (!r)
		r = pm__stat_faults(stat, &c->faults);
	if (r)
		return r;
	if (ident)
		*ident = pm__handle_check_stat(h, stat);
	if (stamp && c->faults != stamp->faults)
		return 0;
	r = pm__handle_fd(h, &h->statm_fd, "statm");
	if (r >= 0)
		r = pm__slurp(r, c->statm, sizeof(c->statm), true);
	return r ? r : 1;
}

void pm__vsnap_put(struct pm__vsnap *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		free(atomic_load(&s->kind_ends));
		pm__list_release(&s->list);
		free(s);
	}
}

const struct pm_vma_list *pm__vsnap_list(const struct pm__vsnap *s)
{
	return &s->list;
}

const uint64_t *pm__vsnap_kind_ends(struct pm__vsnap *s)
{
	uint64_t *ends = atomic_load_explicit(&s->kind_ends, memory_order_acquire), *none = NULL;
	const struct pm_vma_list *l = &s->list;
	unsigned next = 0;

	if (ends || !l->count)
		return ends;
	ends = malloc(l->count * sizeof(*ends));
	if (!ends)
		return NULL;
	for (size_t i = l->count; i-- > 0;) {
		const unsigned kind = pm__vma_kind(&l->v[i]);

		ends[i] = i + 1 < l->count && l->v[i + 1].start == l->v[i].end && kind == next
				  ? ends[i + 1]
				  : l->v[i].end;
		next = kind;
	}
	/* threads sharing the list may race here: one array is kept */
	if (!atomic_compare_exchange_strong(&s->kind_ends, &none, ends)) {
		free(ends);
		ends = none;
	}
	return ends;
}

struct pm__vsnap *pm__vsnap_cached(struct pm_handle *h)
{
	struct pm__vsnap *s;

	pthread_mutex_lock(&h->maps_lock);
	s = h->vsnap;
	if (s)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&h->maps_lock);
	return s;
}

/* Room for as many VMAs as the last list had, and some: the list is
 * not grown (copied, faulted in again) step by step. */
static int reserve_like_last(struct pm_handle *h, struct pm_vma_list *l)
{
	size_t count = 0, names = 0;

	pthread_mutex_lock(&h->maps_lock);
	if (h->vsnap) {
		count = h->vsnap->list.count;
		names = h->vsnap->list.names_len;
	}
	pthread_mutex_unlock(&h->maps_lock);
	return count ? pm__list_reserve(l, count + count / 8, names + names / 8) : 0;
}

int pm__vsnap_read(struct pm_handle *h, struct pm__vsnap **out)
{
	struct pm__vsnap *s = calloc(1, sizeof(*s)), *old;
	int r;

	if (!s)
		return -ENOMEM;
	atomic_init(&s->refs, 2); /* the caller's and the handle's */
	s->gen = atomic_load(&h->fork_gen);
	r = counters(h, &s->ctr, NULL, NULL);
	if (r == 1)
		r = reserve_like_last(h, &s->list);
	if (!r)
		r = pm__maps_list(h, &s->list);
	if (r) {
		pm__list_release(&s->list);
		free(s);
		return r;
	}
	pthread_mutex_lock(&h->maps_lock);
	old = h->vsnap;
	h->vsnap = s;
	pthread_mutex_unlock(&h->maps_lock);
	pm__vsnap_put(old);
	*out = s;
	return 0;
}

int pm__vsnap_current(struct pm_handle *h, const struct pm__vsnap *s, int *ident)
{
	struct ctr c;
	int r;

	*ident = 1;
	if (s->gen != atomic_load(&h->fork_gen))
		return 0;
	r = counters(h, &c, &s->ctr, ident);
	if (r <= 0)
		return r;
	return !memcmp(&c, &s->ctr, sizeof(c));
}

void pm__vsnap_drop(struct pm_handle *h)
{
	pm__vsnap_put(h->vsnap);
	h->vsnap = NULL;
}
