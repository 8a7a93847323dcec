/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_batch: many reads, many processes, one call; the sync backend, the
 * choice of backend, and the fallback when io_uring cannot be had. */
#include "internal.h"
#include "batch.h"
#include "stop.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	/* what the first run will try: AUTO starts measuring with sync */
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

/* Reads [i, j) of the batch, all on one handle, certified together where
 * the guard is wanted: one token before the first, one after the last, and
 * only if it moved each read is certified piece by piece on its own. */
static void run_group(struct pm_batch *b, size_t i, size_t j, uint64_t flags)
{
	struct pm_handle *h = b->r[i].h;
	struct pm__token before, after;
	const unsigned shift = pm__kernel()->page_shift;

	bool group = j - i > 1 && pm__guard_wanted(flags) && !pm__handle_ready(h);

	/* the kernel's copy into a buffer must not fault inside the bracket */
	for (size_t k = i; group && k < j; k++) {
		struct pm__bread *r = &b->r[k];

		if (!pm__read_args(r->h, r->start, r->end, r->entries, r->info))
			pm__prefault(r->entries, (size_t)((r->end - r->start) >> shift));
	}
	if (!group || pm__token(h, &before)) {
		/* alone, unguarded, or no token to be had: each read on its
		 * own, as pm_read */
		for (size_t k = i; k < j; k++) {
			struct pm__bread *r = &b->r[k];

			*r->result = pm__read_flags(r->h, r->start, r->end, r->entries, flags,
						    b->max_retries, r->info);
		}
		return;
	}
	for (size_t k = i; k < j; k++) {
		struct pm__bread *r = &b->r[k];

		*r->result = pm__read_flags(r->h, r->start, r->end, r->entries,
					    flags | PM__READ_UNGUARDED, b->max_retries,
					    r->info);
	}
	if (!pm__token_after(h, &after) && pm__token_certifies(&before, &after)) {
		for (size_t k = i; k < j; k++)
			if (b->r[k].result[0] >= 0 && b->r[k].info &&
			    b->r[k].info->size >= 2 * sizeof(uint64_t))
				b->r[k].info->flags |= PM_READ_INFO_GUARDED;
		return;
	}
	for (size_t k = i; k < j; k++) {
		struct pm__bread *r = &b->r[k];

		if (*r->result >= 0)
			*r->result = pm__read_flags(r->h, r->start, r->end, r->entries,
						    flags | PM__READ_TRIPPED,
						    b->max_retries, r->info);
	}
}

/* Consecutive reads on one handle share a certificate, and with
 * PM_READ_F_STOP one stop of the target. */
static void run_sync(struct pm_batch *b)
{
	const uint64_t flags = b->read_flags & ~PM_READ_F_STOP;

	for (size_t i = 0, j; i < b->n; i = j) {
		struct pm__stop *st = NULL;
		int e = 0;

		for (j = i + 1; j < b->n && b->r[j].h == b->r[i].h;)
			j++;
		if (b->read_flags & PM_READ_F_STOP)
			e = pm__stop_begin(b->r[i].h, &st);
		if (e) {
			for (size_t k = i; k < j; k++)
				*b->r[k].result = pm__ret(e);
			continue;
		}
		run_group(b, i, j, flags);
		pm__stop_end(st);
	}
}

/* AUTO follows measurements, its own: io_uring punts every procfs read to
 * an io-wq worker, so whether it wins depends on the machine (on the 2-CPU
 * development machine it lost every shape: bench/bench-batch.c). A batch's
 * first four runs alternate sync and io_uring, each timed per page (the
 * first of each is cold); later runs take io_uring only where it was at
 * least 5% faster, and every 16th run measures the other one again. */
#define AUTO_CALIBRATE 4
#define AUTO_REMEASURE 16

static int auto_choice(const struct pm_batch *b)
{
	int best;

	if (pm__feature(PM_FEAT_IO_URING) != 1)
		return PM_BACKEND_SYNC;
	if (b->runs < AUTO_CALIBRATE)
		return b->runs % 2 ? PM_BACKEND_URING : PM_BACKEND_SYNC;
	best = b->ns_uring < b->ns_sync * 0.95 ? PM_BACKEND_URING : PM_BACKEND_SYNC;
	if (b->runs % AUTO_REMEASURE == 0)
		return best == PM_BACKEND_URING ? PM_BACKEND_SYNC : PM_BACKEND_URING;
	return best;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t batch_pages(const struct pm_batch *b)
{
	uint64_t pages = 0;

	for (size_t i = 0; i < b->n; i++)
		if (b->r[i].end > b->r[i].start)
			pages += (b->r[i].end - b->r[i].start) >> pm__kernel()->page_shift;
	return pages ? pages : 1;
}

PM_EXPORT int pm_batch_run(struct pm_batch *b)
{
	int want, r = -EOPNOTSUPP;
	double t0, per_page;

	if (!b)
		return (int)pm__ret(-EINVAL);
	want = b->backend == PM_BACKEND_AUTO ? auto_choice(b) : (int)b->backend;
	t0 = now_ns();
	if (want == PM_BACKEND_URING)
		r = pm__batch_uring(b);
	if (r == 0) {
		b->used = PM_BACKEND_URING;
	} else if (r == -ENOMEM) {
		return (int)pm__ret(r);
	} else {
		/* not chosen, not built in, or refused (ENOSYS, EPERM from
		 * io_uring_disabled or seccomp): the same reads, sync */
		run_sync(b);
		b->used = PM_BACKEND_SYNC;
	}
	per_page = (now_ns() - t0) / (double)batch_pages(b);
	if (b->used == PM_BACKEND_URING)
		b->ns_uring = b->ns_uring ? (b->ns_uring + per_page) / 2 : per_page;
	else if (want == PM_BACKEND_SYNC)
		b->ns_sync = b->ns_sync ? (b->ns_sync + per_page) / 2 : per_page;
	b->runs++;
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
