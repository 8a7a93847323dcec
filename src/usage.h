/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private interface between pm_usage and its PAGEMAP_SCAN-only path. */
#ifndef PM_USAGE_H
#define PM_USAGE_H

#include "internal.h"

/* One answer being built: a range's, or a VMA's (pm_usage_vmas). */
struct pm__usage_acc {
	struct pm_usage u;
	uint64_t unknown; /* fields some page could not be decided for */
};

/* The fields PAGEMAP_SCAN answers without pagemap entries or PFNs. */
#define PM__USAGE_SCAN_FIELDS                                                           \
	(PM_USAGE_RSS | PM_USAGE_SWAP | PM_USAGE_ANON_THP | PM_USAGE_HUGETLB | PM_USAGE_ZERO | \
	 PM_USAGE_GUARD)

/* A run of present pages that are not zero pages, in one answer's range:
 * PMD-mapped or not, and for PMD-mapped ones whether the VMA is
 * anonymous. */
struct pm__upiece {
	uint64_t start, end;
	size_t acc;
	bool huge, anon;
};

struct pm__upieces {
	struct pm__upiece *v;
	size_t n, cap;
};

/* Present pages [s, e) into the list, joined to the last piece when they
 * continue it alike. 0 or -ENOMEM. */
PM_HIDDEN int pm__upieces_add(struct pm__upieces *p, uint64_t s, uint64_t e, size_t acc, bool huge,
			      bool anon);

/*
 * Count [start, end) into acc[0], or with @l the pages of each of its VMAs
 * into acc[i], from PAGEMAP_SCAN alone. 0, -errno, or 1: a PMD-mapped
 * page of a file, shmem or hugetlb VMA left Rss and Hugetlb unknown (only
 * its physical page tells hugetlb from a THP). With @present, the present
 * pages other than zero pages are not counted but listed there (in
 * address order) for the caller to count from their entries; 0 or -errno.
 */
PM_HIDDEN int pm__usage_scan(struct pm_handle *h, uint64_t start, uint64_t end,
			     const struct pm_vma_list *l, struct pm__usage_acc *acc,
			     struct pm__upieces *present);

#endif
