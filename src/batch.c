/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_batch: many reads, many processes, one call; the sync backend, the
 * choice of backend, and the fallback when io_uring cannot be had. */
#include "internal.h"
#include "batch.h"

#include <stdlib.h>
#include <string.h>

PM_EXPORT int pm_batch_new(const struct pm_batch_opts *opts, struct pm_batch **out)
{
	const uint64_t known = PM_READ_SNAPSHOT | PM_READ_BEST_EFFORT;
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
	b->used = backend == PM_BACKEND_SYNC ? PM_BACKEND_SYNC : PM_BACKEND_URING;
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

static void run_sync(struct pm_batch *b)
{
	PM_OPTS(pm_read_opts, o, .flags = b->read_flags, .max_retries = b->max_retries);

	for (size_t i = 0; i < b->n; i++) {
		struct pm__bread *r = &b->r[i];

		*r->result = pm_read(r->h, r->start, r->end, r->entries, &o, r->info);
	}
}

/* AUTO: io_uring punts every procfs read to an io-wq worker, so it only
 * pays where several workers have real work in parallel: enough separate
 * targets, enough entries, and more than one CPU (bench/bench-batch.c). */
#define AUTO_MIN_TARGETS 8
#define AUTO_MIN_PAGES (1UL << 18)

static bool auto_uring(const struct pm_batch *b)
{
	const uint64_t shift = pm__kernel()->page_shift;
	size_t targets = 0;
	uint64_t pages = 0;

	if (!(pm__kernel()->features & PM_FEAT_IO_URING) || pm__ncpus() < 2)
		return false;
	for (size_t i = 0; i < b->n; i++) {
		bool seen = false;

		for (size_t j = i; j-- > 0 && !seen && i - j < 64;)
			seen = b->r[j].h == b->r[i].h;
		targets += !seen;
		if (b->r[i].end > b->r[i].start)
			pages += (b->r[i].end - b->r[i].start) >> shift;
	}
	return targets >= AUTO_MIN_TARGETS && pages >= AUTO_MIN_PAGES;
}

PM_EXPORT int pm_batch_run(struct pm_batch *b)
{
	int r = -EOPNOTSUPP;

	if (!b)
		return (int)pm__ret(-EINVAL);
	if (b->backend == PM_BACKEND_URING || (b->backend == PM_BACKEND_AUTO && auto_uring(b)))
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
	free(b->r);
	free(b);
}
