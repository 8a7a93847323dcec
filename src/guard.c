/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The consistency guard around kernel reads.
 *
 * A pagemap read on a kernel without the retry fix can come back full
 * length but shifted (kernel-facts.md §2), and no read is a snapshot: the
 * kernel drops its lock every 2 MiB. When the guard is active, every chunk
 * of a kernel read is read a second time and compared; a chunk is accepted
 * only when two consecutive reads of it agree. A shifted read differs from
 * an unshifted one wherever the shift moved distinguishable entries, and
 * where it moved none the data it returned is the true data anyway. What
 * is left: two consecutive reads shifted identically, which needs the same
 * PMD to go unstable at the same point of both walks.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_RETRIES 16

int pm__guard_init(struct pm__guard *g, uint64_t read_flags, uint64_t max_retries)
{
	const struct pm__kernel *k = pm__kernel();

	memset(g, 0, sizeof(*g));
	g->active = k->fix != PM_FIX_PRESENT || (read_flags & PM_READ_SNAPSHOT);
	g->best_effort = read_flags & PM_READ_BEST_EFFORT;
	g->max_retries = max_retries ? max_retries : DEFAULT_RETRIES;
	if (g->active) {
		g->scratch = malloc(PM__GUARD_CHUNK * sizeof(uint64_t));
		if (!g->scratch)
			return -ENOMEM;
	}
	return 0;
}

void pm__guard_fini(struct pm__guard *g)
{
	free(g->scratch);
	g->scratch = NULL;
}

/* Back off so that the change that disturbed the read can finish: 10 us
 * doubling to 1 ms. */
static void backoff(uint64_t attempt)
{
	long ns = 10000L << (attempt < 7 ? attempt : 7);
	struct timespec ts = { 0, ns > 1000000L ? 1000000L : ns };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int verify_chunk(struct pm__guard *g, int fd, uint64_t off, uint64_t *dst, size_t n)
{
	for (uint64_t attempt = 0;; attempt++) {
		int r = pm__pread_full(fd, g->scratch, n * 8, off, &g->kernel_reads);

		if (r)
			return r;
		if (!memcmp(g->scratch, dst, n * 8))
			return 0;
		memcpy(dst, g->scratch, n * 8);
		g->retries++;
		if (attempt >= g->max_retries) {
			if (!g->best_effort)
				return -EAGAIN;
			g->unstable = true;
			return 0;
		}
		backoff(attempt);
	}
}

int pm__guarded_read(struct pm__guard *g, struct pm_handle *h, uint64_t va, uint64_t *dst,
		     size_t n)
{
	uint64_t off = (va >> pm__kernel()->page_shift) * 8;
	int r = pm__pread_full(h->pagemap_fd, dst, n * 8, off, &g->kernel_reads);

	if (r || !g->active)
		return r;
	for (size_t i = 0; i < n; i += PM__GUARD_CHUNK) {
		size_t m = n - i < PM__GUARD_CHUNK ? n - i : PM__GUARD_CHUNK;

		r = verify_chunk(g, h->pagemap_fd, off + i * 8, dst + i, m);
		if (r)
			return r;
	}
	return 0;
}
