/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_batch: many reads, many processes, one call; the sync backend, the
 * choice of backend, and the fallback when io_uring cannot be had. */
#include "internal.h"
#include "batch.h"
#include "stop.h"

#include <stdlib.h>
#include <string.h>

/* The sync backend's windows of groups closed by one THP event sum
 * (pm__batch_settle): from one group, doubling while the sum holds. */
#define WINDOW_MIN 250000u   /* ns */
#define WINDOW_MAX 8000000u  /* ns */

PM_EXPORT int pm_batch_new(const struct pm_batch_opts *opts, struct pm_batch **out)
{
	const uint64_t known = PM_READ_F_SNAPSHOT | PM_READ_F_BEST_EFFORT | PM_READ_F_STOP;
	struct pm_batch *b;
	uint64_t backend, flags;
	int r;

	if (!out)
		return (int)pm__ret(-EINVAL);
	r = pm__opts_check(opts, sizeof(struct pm_batch_opts));
	if (r)
		return (int)pm__ret(r);
	backend = PM__OPT(opts, struct pm_batch_opts, backend, PM_BACKEND_AUTO);
	flags = PM__OPT(opts, struct pm_batch_opts, read_flags, 0);
	if (backend > PM_BACKEND_SYNC || (flags & ~known))
		return (int)pm__ret(-EINVAL);
	b = calloc(1, sizeof(*b));
	if (!b)
		return (int)pm__ret(-ENOMEM);
	b->backend = backend;
	b->read_flags = flags;
	b->max_retries = PM__OPT(opts, struct pm_batch_opts, max_retries, 0);
	/* what the first run will try */
	b->used = backend == PM_BACKEND_URING ? PM_BACKEND_URING : PM_BACKEND_SYNC;
	*out = b;
	return 0;
}

PM_EXPORT int pm_batch_add_read(struct pm_batch *b, struct pm_handle *h, uint64_t start,
				uint64_t end, uint64_t *entries, struct pm_read_info *info,
				long *result)
{
	if (!b || !h || !result)
		return (int)pm__ret(-EINVAL);
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct pm__bread *r = realloc(b->r, cap * sizeof(*r));

		if (!r)
			return (int)pm__ret(-ENOMEM);
		b->r = r;
		b->cap = cap;
	}
	b->r[b->n++] = (struct pm__bread){ h, start, end, entries, info, result };
	return 0;
}

void pm__batch_begin(struct pm_batch *b, struct pm__bstate *st, size_t i, struct pm__bgroup *g)
{
	struct pm_handle *h = b->r[i].h;
	const unsigned shift = pm__kernel()->page_shift;
	const bool wanted = pm__guard_wanted(b->read_flags);
	int ready = pm__handle_ready(h);
	bool any = false;
	size_t j;

	for (j = i; j < b->n && b->r[j].h == h; j++) {
		struct pm__bread *r = &b->r[j];
		struct pm__bstate *s = &st[j];

		memset(s, 0, sizeof(*s));
		s->res = pm__read_args(r->h, r->start, r->end, r->entries, r->info);
		if (!s->res)
			s->res = ready;
		if (s->res)
			continue;
		/* the caller's uncertain array, if any, for a certifying read */
		if (r->info)
			memcpy(&s->info, r->info,
			       r->info->size < sizeof(s->info) ? r->info->size : sizeof(s->info));
		s->info.size = sizeof(s->info);
		/* the kernel's copy into a buffer must not fault inside the
		 * bracket */
		if (wanted) {
			s->guard = true;
			pm__prefault(r->entries, (size_t)((r->end - r->start) >> shift));
			any = true;
		}
	}
	g->i = i;
	g->j = j;
	g->have_token = false;
	if (!any)
		return;
	/*
	 * The THP events (v[5], /proc/vmstat: half a token's cost) need not
	 * be read again for each group: the sum only grows, so a sum read
	 * earlier, before any read of this group, opens a wider bracket,
	 * which a split during the reads still moves. The last sum read:
	 * on the sync backend the last settle's (pm__batch_settle), after
	 * earlier groups' reads and before this one's; on io_uring the first
	 * group's opening token, as every group opens before any read is
	 * issued. Settling reads it afresh, after the reads. Not across
	 * runs: a bracket that wide would trip on the machine's THP use.
	 */
	if (b->have_thp) {
		g->have_token = !pm__token_own(h, &g->before);
		g->before.v[5] = b->thp;
	} else {
		g->have_token = !pm__token(h, &g->before);
		b->thp_ns = pm__mono_ns();
	}
	if (g->have_token) {
		b->have_thp = true;
		b->thp = g->before.v[5];
	}
}

void pm__batch_close(struct pm_batch *b, struct pm__bstate *st, struct pm__bgroup *g)
{
	struct pm_handle *h = b->r[g->i].h;

	g->took = g->have_token && !pm__token_after_own(h, &g->after);
	/* 1: the stat text was not one we know (faked counters) */
	if (g->took && g->after.ident != 1) {
		st[g->i].ident_fresh = true;
		st[g->i].ident = g->after.ident;
	}
}

/* A closed group's reads: certified, or each read again, certifying. */
static void group_done(struct pm_batch *b, struct pm__bstate *st, const struct pm__bgroup *g,
		       bool cert)
{
	for (size_t k = g->i; k < g->j; k++) {
		struct pm__bread *r = &b->r[k];
		struct pm__bstate *s = &st[k];
		uint64_t first = s->info.kernel_reads;
		long res;

		if (s->res)
			continue;
		if (!s->guard || cert) {
			s->info.flags = s->guard ? PM_READ_INFO_GUARDED : 0;
			continue;
		}
		/* the target changed under the reads (or is gone): read this
		 * one again, certifying piece by piece; its info counts every
		 * read issued for it */
		res = pm__read_flags(r->h, r->start, r->end, r->entries,
				     (b->read_flags & ~PM_READ_F_STOP) | PM__READ_TRIPPED,
				     b->max_retries, &s->info);
		if (res < 0)
			s->res = res;
		else
			s->info.kernel_reads += first;
	}
}

/*
 * The THP event sum that closes groups [0, n): read once, after all of
 * their reads, where each group's closing token read it before (13 us of
 * a token's 23 on the development machine: issue 10's "per pass, not per
 * read"). A group opened with a sum read before its reads, so one read
 * after the last group's reads brackets every group's; a split during
 * any of them moves it, and then none of them is certified by it: each
 * is read again, certifying. The sync backend closes groups in windows
 * of b->window_ns (pm__batch_settle_due), narrowed to one group after a
 * window that moved, as THP use elsewhere on the machine moves the sum
 * too, and widened again while they hold.
 */
void pm__batch_settle(struct pm_batch *b, struct pm__bstate *st, struct pm__bgroup *g, size_t n)
{
	bool any = false, have = false, moved = false;
	uint64_t thp = 0;

	for (size_t i = 0; i < n && !any; i++)
		any = g[i].took;
	if (any && !pm__token_thp(&thp)) {
		have = true;
		b->have_thp = true;
		b->thp = thp;
		b->thp_ns = pm__mono_ns();
	}
	for (size_t i = 0; i < n; i++) {
		bool cert = false;

		if (g[i].took && have) {
			g[i].after.v[5] = thp;
			cert = pm__token_certifies(&g[i].before, &g[i].after);
			moved |= g[i].before.v[5] != thp;
		}
		group_done(b, st, &g[i], cert);
	}
	if (moved)
		b->window_ns = 0;
	else if (have)
		b->window_ns = b->window_ns ? (b->window_ns < WINDOW_MAX / 2 ? 2 * b->window_ns
									 : WINDOW_MAX)
					    : WINDOW_MIN;
}

bool pm__batch_settle_due(const struct pm_batch *b, size_t pending)
{
	return pending == PM__BATCH_PENDING || !b->have_thp ||
	       pm__mono_ns() - b->thp_ns >= b->window_ns;
}

int pm__batch_chunks(uint64_t va, uint64_t *dst, size_t n,
		     int (*fn)(void *arg, uint64_t off, char *dst, size_t len), void *arg)
{
	uint64_t off = (va >> pm__kernel()->page_shift) * 8;
	size_t len = n * 8;
	char *d = (char *)dst;

	while (len) {
		size_t l = len < PM__BATCH_CHUNK ? len : PM__BATCH_CHUNK;
		int r = fn(arg, off, d, l);

		if (r)
			return r;
		off += l;
		d += l;
		len -= l;
	}
	return 0;
}

struct sync_read {
	struct pm_handle *h;
	struct pm__bstate *s;
};

static int sync_chunk(void *arg, uint64_t off, char *dst, size_t len)
{
	struct sync_read *sr = arg;

	return pm__pagemap_pread(sr->h, dst, len, off, &sr->s->info.kernel_reads);
}

static int sync_span(void *arg, uint64_t va, uint64_t *dst, size_t n)
{
	return pm__batch_chunks(va, dst, n, sync_chunk, arg);
}

/* Group by group; with PM_READ_F_STOP one stop of the target per group. */
static void run_sync(struct pm_batch *b, struct pm__bstate *st)
{
	struct pm__bgroup pend[PM__BATCH_PENDING];
	size_t np = 0;

	for (size_t i = 0, j; i < b->n; i = j) {
		struct pm__stop *st_stop = NULL;
		struct pm__bgroup *g = &pend[np];
		int e = 0;

		if (b->read_flags & PM_READ_F_STOP)
			e = pm__stop_begin(b->r[i].h, &st_stop);
		if (e) {
			for (j = i; j < b->n && b->r[j].h == b->r[i].h; j++)
				st[j] = (struct pm__bstate){ .res = e };
			continue;
		}
		pm__batch_begin(b, st, i, g);
		j = g->j;
		for (size_t k = i; k < j; k++) {
			struct pm__bread *r = &b->r[k];
			struct sync_read sr = { r->h, &st[k] };

			if (!st[k].res)
				st[k].res = pm__read_plan(r->h, r->start, r->end, r->entries,
							  sync_span, &sr);
		}
		pm__batch_close(b, st, &pend[np++]);
		/* a stopped target's group is settled while it is stopped,
		 * where a read again is the likelier to certify */
		if (st_stop || pm__batch_settle_due(b, np)) {
			pm__batch_settle(b, st, pend, np);
			np = 0;
		}
		pm__stop_end(st_stop);
	}
	pm__batch_settle(b, st, pend, np);
}

static int by_handle(const void *a, const void *b)
{
	const struct pm__bread *x = *(const struct pm__bread *const *)a;
	const struct pm__bread *y = *(const struct pm__bread *const *)b;

	if (x->h != y->h)
		return (uintptr_t)x->h < (uintptr_t)y->h ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Every read answered: the identity check, once per handle, after all of
 * that handle's reads (pm_read's rule: no data is returned before the
 * check said the answers describe the handle's process); then the
 * results and infos. The closing token of the handle's last group was
 * read after all of them on either backend (sync runs the groups in
 * order; io_uring closes every group after the last completion), so its
 * stat text answers the check where it was read; a read done again
 * after that token checked the handle itself (pm__batch_settle). @heads:
 * room for a pointer per read. */
static void finish(struct pm_batch *b, struct pm__bstate *st, struct pm__bread **heads)
{
	const unsigned shift = pm__kernel()->page_shift;
	size_t nh = 0;

	/* the first read of each group, groups of one handle together */
	for (size_t i = 0; i < b->n; i++)
		if (!i || b->r[i - 1].h != b->r[i].h)
			heads[nh++] = &b->r[i];
	qsort(heads, nh, sizeof(*heads), by_handle);
	for (size_t a = 0, z; a < nh; a = z) {
		struct pm_handle *h = heads[a]->h;
		const struct pm__bstate *last;
		bool answered = false;
		int e;

		for (z = a; z < nh && heads[z]->h == h; z++)
			for (size_t k = (size_t)(heads[z] - b->r); k < b->n && b->r[k].h == h; k++)
				answered |= !st[k].res;
		last = &st[heads[z - 1] - b->r];
		e = !answered ? 0 : last->ident_fresh ? last->ident : pm__handle_check(h);
		for (size_t g = a; e && g < z; g++)
			for (size_t k = (size_t)(heads[g] - b->r); k < b->n && b->r[k].h == h; k++)
				if (!st[k].res)
					st[k].res = e;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct pm__bread *r = &b->r[i];

		if (st[i].res) {
			*r->result = st[i].res;
			continue;
		}
		if (r->info)
			pm__out_copy(r->info, &st[i].info, sizeof(st[i].info));
		*r->result = (long)((r->end - r->start) >> shift);
	}
}

/* AUTO runs sync. io_uring punts every procfs read to an io-wq worker,
 * and on every shape measured (1 to 200 processes, 8 MiB to 1 GiB reads,
 * 10,000 ranges, 10,000 small VMAs: bench/bench-batch.c, doc/batch.md) it
 * was slower than sync or within the noise; timing a batch's own runs to
 * choose picked the slower backend as often as not, since the noise of a
 * shared machine is larger than the difference. PM_BACKEND_URING asks
 * for io_uring. */
PM_EXPORT int pm_batch_run(struct pm_batch *b)
{
	struct pm__bstate *st;
	struct pm__bread **heads;
	int r = -EOPNOTSUPP;
	bool lost = false;

	if (!b)
		return (int)pm__ret(-EINVAL);
	st = malloc((b->n ? b->n : 1) * sizeof(*st));
	heads = malloc((b->n ? b->n : 1) * sizeof(*heads));
	if (!st || !heads) {
		free(st);
		free(heads);
		return (int)pm__ret(-ENOMEM);
	}
	b->have_thp = false;
	if (b->backend == PM_BACKEND_URING)
		r = pm__batch_uring(b, st, &lost);
	if (r == 0) {
		b->used = PM_BACKEND_URING;
	} else if (r == -ENOMEM) {
		free(st);
		free(heads);
		return (int)pm__ret(r);
	} else if (lost) {
		/* the buffers may yet be written: no read is answered */
		for (size_t i = 0; i < b->n; i++)
			*b->r[i].result = r;
		b->used = PM_BACKEND_URING;
		b->n = 0;
		free(st);
		free(heads);
		return (int)pm__ret(r);
	} else {
		/* not chosen, not built in, or refused (ENOSYS, EPERM from
		 * io_uring_disabled or seccomp): the same reads, sync */
		run_sync(b, st);
		b->used = PM_BACKEND_SYNC;
	}
	finish(b, st, heads);
	free(st);
	free(heads);
	b->n = 0;
	return 0;
}

PM_EXPORT int pm_batch_backend(const struct pm_batch *b)
{
	if (!b)
		return (int)pm__ret(-EINVAL);
	return b->used;
}

PM_EXPORT void pm_batch_free(struct pm_batch *b)
{
	if (!b)
		return;
	pm__batch_uring_free(b);
	free(b->r);
	free(b);
}
