/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_usage_cache: the mapcounts of physical pages several processes map,
 * kept for a pass of pm_usage() calls over many processes.
 *
 * A process's pages that another process maps too are mostly library and
 * fork-shared pages, scattered in physical memory: each costs a kpagecount
 * read of its own, once per process that maps it (pm-dump --all --pss
 * over 130 processes: 4,824 reads, 400 with the counts shared). What is
 * kept and what is taken:
 *   - kept: a mapcount of 2 or more, as read (a later read of 2 or more
 *     replaces it), with the page's kind (file or anonymous, the entry's
 *     bit 61). A page mapped once is one process's: no other call of the
 *     pass meets it mapped.
 *   - taken: for a page whose entry says another mapping has it (not
 *     exclusive), which a kept count agrees with, and of the kept kind. An
 *     entry saying exclusive is read afresh: the others unmapped it since.
 * A taken count is as old as the pass: exact while the processes mapping
 * the page keep it (a quiescent machine), otherwise the last count of 2 or
 * more read for it; a page freed and reused during the pass for another
 * of the same kind that several processes map is counted with the first
 * one's (the error is bounded by the pages reused during the pass).
 * Open addressing on the PFN, grown to half full, up to max_pages.
 */
#include "usage.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX (1ULL << 21) /* 2M pages kept: 8 GiB shared, 48 MiB here */
#define MIN_SLOTS 4096
#define FILE_BIT (1U << 31)

struct pm_usage_cache {
	pthread_mutex_t lock;
	struct pm__kpf kf; /* kpageflags and kpagecount, for the whole pass */
	uint64_t *pfn; /* 0: a free slot (PFN 0 is never counted) */
	uint32_t *count; /* the mapcount, and FILE_BIT for a file page */
	size_t slots, used, max;
};

PM_EXPORT int pm_usage_cache_new(const struct pm_usage_cache_opts *opts,
				 struct pm_usage_cache **out)
{
	struct pm_usage_cache *c;
	uint64_t max;
	int r = pm__opts_check(opts, sizeof(struct pm_usage_cache_opts));

	if (!out)
		return (int)pm__ret(-EINVAL);
	if (r)
		return (int)pm__ret(r);
	max = PM__OPT(opts, struct pm_usage_cache_opts, max_pages, 0);
	c = calloc(1, sizeof(*c));
	if (!c)
		return (int)pm__ret(-ENOMEM);
	c->max = max ? (size_t)(max < SIZE_MAX / 4 ? max : SIZE_MAX / 4) : DEFAULT_MAX;
	for (int i = 0; i < PM__KPAGE_FILES; i++)
		c->kf.fd[i] = -1;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

PM_EXPORT void pm_usage_cache_free(struct pm_usage_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	pm__kpf_close(&c->kf);
	free(c->pfn);
	free(c->count);
	free(c);
}

int pm__ucache_files(struct pm_usage_cache *c, struct pm__kpf *k)
{
	int r = 0;

	pthread_mutex_lock(&c->lock);
	/* not opened, or an earlier open failed (no fd then: tried again) */
	if (c->kf.fd[0] < 0)
		r = pm__kpf_open(&c->kf, PM_KPAGE_FLAGS | PM_KPAGE_COUNT);
	if (!r)
		*k = c->kf;
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* The slot of @pfn in a table of @slots (a power of two) keyed by @key:
 * its own, or the free one where it would go. */
static size_t probe_slot(const uint64_t *key, size_t slots, uint64_t pfn)
{
	size_t s = (size_t)((pfn * 0x9e3779b97f4a7c15ULL) >> 32) & (slots - 1);

	while (key[s] && key[s] != pfn)
		s = (s + 1) & (slots - 1);
	return s;
}

static size_t slot_of(const struct pm_usage_cache *c, uint64_t pfn)
{
	return probe_slot(c->pfn, c->slots, pfn);
}

/* Room for one more: doubled when half full; false when it may not grow
 * (max_pages, or no memory: the pass reads those counts instead). */
static bool room(struct pm_usage_cache *c)
{
	uint64_t *pfn;
	uint32_t *count;
	size_t n;

	if (c->used >= c->max)
		return false;
	if (c->slots && 2 * (c->used + 1) <= c->slots)
		return true;
	n = c->slots ? 2 * c->slots : MIN_SLOTS;
	pfn = calloc(n, sizeof(*pfn));
	count = malloc(n * sizeof(*count));
	if (!pfn || !count) {
		free(pfn);
		free(count);
		return false;
	}
	for (size_t i = 0; i < c->slots; i++) {
		if (c->pfn[i]) {
			size_t s = probe_slot(pfn, n, c->pfn[i]);

			pfn[s] = c->pfn[i];
			count[s] = c->count[i];
		}
	}
	free(c->pfn);
	free(c->count);
	c->pfn = pfn;
	c->count = count;
	c->slots = n;
	return true;
}

static uint32_t kind(uint64_t e)
{
	return e & PM_ENTRY_FILE ? FILE_BIT : 0;
}

void pm__ucache_take(struct pm_usage_cache *c, const uint64_t *e, uint64_t *pfn, uint64_t *count,
		     size_t n)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; c->used && i < n; i++) {
		size_t s;

		if (!pfn[i] || pm_entry_exclusive(e[i]))
			continue;
		s = slot_of(c, pfn[i]);
		if (c->pfn[s] && (c->count[s] & FILE_BIT) == kind(e[i])) {
			count[i] = c->count[s] & ~FILE_BIT;
			pfn[i] = 0;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

void pm__ucache_keep(struct pm_usage_cache *c, const uint64_t *e, const uint64_t *pfn,
		     const uint64_t *count, size_t n)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		size_t s;

		if (!pfn[i] || count[i] < 2 || count[i] >= FILE_BIT)
			continue;
		s = c->slots ? slot_of(c, pfn[i]) : 0;
		if (!c->slots || !c->pfn[s]) {
			if (!room(c))
				continue;
			s = slot_of(c, pfn[i]); /* the table may have grown */
			c->used++;
		}
		c->pfn[s] = pfn[i];
		c->count[s] = (uint32_t)count[i] | kind(e[i]);
	}
	pthread_mutex_unlock(&c->lock);
}
