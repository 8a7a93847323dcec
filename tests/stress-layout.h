/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The memory the shift stress tests lay out around their churned PMDs. */
#ifndef PM_STRESS_LAYOUT_H
#define PM_STRESS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define HUGE (2UL << 20)
#define NPMD 512

enum stress_slot {
	SLOT_CHURN,    /* private, MADV_HUGEPAGE, left to the churn */
	SLOT_SENTINEL, /* shared anonymous, written: present+file+exclusive */
	SLOT_PATTERN,  /* private, MADV_NOHUGEPAGE, a pseudo-random presence pattern */
};

/* Map @n 2 MiB-aligned slots of the kinds given, consecutive; pattern
 * slot s records its pattern in bits[s] (one bit per page). Returns the
 * first slot; exits on failure. */
char *stress_layout(const enum stress_slot *kind, int n, uint64_t (*bits)[NPMD / 64]);
/* A read shape: @pages pages from @skip pages into slot @slot. */
struct shape {
	const char *name;
	int slot;
	uint64_t skip;
	uint64_t pages;
};

struct pm_region;
/* The categories of the pages from @va up to @walk_end, from @nr scan
 * regions of a call over @n pages (0 where none covers it), into @cats:
 * how many pages that is, or -1 (said on stderr) when walk_end is outside
 * the range or a region is not below it. */
long stress_region_cats(uint64_t va, const struct pm_region *r, long nr, size_t n,
			uint64_t walk_end, uint64_t *cats);
/* CLOCK_MONOTONIC in seconds. */
double stress_now(void);

#endif
