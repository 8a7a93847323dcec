/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private interface between pm_usage's walks (usage.c), its PAGEMAP_SCAN-only
 * path (usage-scan.c) and its count of physical pages (usage-kp.c). */
#ifndef PM_USAGE_H
#define PM_USAGE_H

#include "internal.h"
#include "kpages.h"

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

#define PM__USAGE_CHUNK 8192 /* pages per pagemap read */
#define PM__PSS_SHIFT 12
#define PM__KP_WINDOW 4096 /* records per physical-page pread at most */
#define PM__NOT_READ UINT64_MAX /* a flags record not read (no flags are all set) */
/* without PAGEMAP_SCAN, in cat[]: the page may be part of a PMD mapping */
#define PM__CAT_MAYBE_PMD (1ULL << 63)

/* fields that need kpageflags and kpagecount */
#define PM__NEED_KPAGE (PM_USAGE_PSS | PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE | PM_USAGE_PSS_SHMEM)
/* fields that need to know which present pages smaps counts */
#define PM__NEED_CLASS                                                                        \
	(PM__NEED_KPAGE | PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_HUGETLB | \
	 PM_USAGE_ZERO)

/* The VMA a page is in, as far as the count goes. */
struct pm__uvma {
	uint64_t start, end; /* end 0: no VMA at or above the address */
	bool anon;           /* no file: only these hold anonymous PMD mappings */
	bool pfnmap;         /* the vDSO data pages: smaps skips VM_PFNMAP */
	struct pm__usage_acc *a;
	/* without PAGEMAP_SCAN: whether the VMA is hugetlb (-1 not known
	 * yet), as the flags of its first page-cache page tell (chunk()) */
	int hugetlb;
	size_t probe; /* per page: a chunk's page whose flags tell it, or PM__PROBE_* */
};

#define PM__PROBE_NONE SIZE_MAX       /* the page's own flags decide */
#define PM__PROBE_NO (SIZE_MAX - 1)   /* a page-cache page: no flags needed */
#define PM__PROBE_HUGE (SIZE_MAX - 2) /* a hugetlb page: no flags needed */

/* One pm_usage or pm_usage_vmas call. */
struct pm__uctx {
	struct pm_handle *h;
	struct pm_read_opts ro;
	uint64_t want, avail;
	uint64_t ps;
	bool kp, scan;
	bool page_mapcount; /* mapcounts are per page (pm__mapcount_per_page()) */
	struct pm_usage_cache *cache; /* pm_usage_opts.cache */
	bool kf_shared;               /* kf is the cache's (pm__ucache_files()) */
	bool kp_decided; /* kp set at the first present entry (pm__usage_kp_decide()) */
	struct pm__kpf kf;
	struct pm__vcursor vc;
	const struct pm_vma_list *list; /* pm_usage_vmas: pages count for its VMAs */
	size_t li;
	struct pm__usage_acc *acc;
	/* per page of a chunk */
	uint64_t *e, *pfn, *cat, *flags, *count, *cpfn, *kbuf;
	struct pm__uvma *pv;
	size_t *idx, *rlen; /* kp_sparse()'s runs: first page, length */
	size_t cap, scap;   /* pages e and cat hold; pages the others hold */
	uint64_t head_pfn, head_end, head_flags; /* the last compound head found */
};

/* Whether a present page outside a PMD mapping has mapcount 1 by its
 * entry alone: an anonymous page the entry calls exclusive, with a
 * visible PFN (why: mapped_once() in usage-kp.c). */
static inline bool pm__usage_once(uint64_t e)
{
	return pm_entry_exclusive(e) && !(e & PM_ENTRY_FILE) && pm_entry_pfn(e);
}

/* usage-kp.c. Pages i of the chunk's arrays (e, pfn, cat, flags, count,
 * pv): flags[i] PM__NOT_READ where the flags are not needed, pfn[i] 0
 * where no physical page is read. */
/* Whether a present page's flags are needed. */
PM_HIDDEN bool pm__usage_need_flags(const struct pm__uctx *c, uint64_t e, uint64_t cat,
				    const struct pm__uvma *v);
/* Whether this handle shows PFNs, told by present entry @e; the
 * physical pages' files opened when it does. */
PM_HIDDEN void pm__usage_kp_decide(struct pm__uctx *c, uint64_t e);
/* Whether the caller may read physical pages (a probe), and the files
 * opened when it may: where no present entry said. */
PM_HIDDEN bool pm__usage_kp_allowed(const struct pm__uctx *c);
PM_HIDDEN void pm__usage_kp_probe(struct pm__uctx *c);
/* The physical pages' records of pages [0, n). */
PM_HIDDEN int pm__usage_kp_records(struct pm__uctx *c, size_t n);
/* The kept mapcounts of pages i < n with pfn[i] != 0 whose entry e[i] is
 * not exclusive and of the kept kind into count[i], those pfn[i] zeroed
 * (usage-cache.c). */
PM_HIDDEN void pm__ucache_take(struct pm_usage_cache *c, const uint64_t *e, uint64_t *pfn,
			       uint64_t *count, size_t n);
/* The cache's physical-page files (flags, count) into @k, opened by the
 * first call that needs them and kept for the pass: 0 or pm__kpf_open()'s
 * error. */
PM_HIDDEN int pm__ucache_files(struct pm_usage_cache *c, struct pm__kpf *k);
/* Keep count[i] of pfn[i] (i < n, pfn[i] != 0) where it is 2 or more,
 * with the kind entry e[i] says (file or anonymous). */
PM_HIDDEN void pm__ucache_keep(struct pm_usage_cache *c, const uint64_t *e, const uint64_t *pfn,
			       const uint64_t *count, size_t n);
/* Present page i counted into @a from its records, or from PAGEMAP_SCAN's
 * categories and the entry alone. */
PM_HIDDEN int pm__usage_page_kp(struct pm__uctx *c, size_t i, struct pm__usage_acc *a);
PM_HIDDEN void pm__usage_page_scan(struct pm__uctx *c, size_t i, const struct pm__uvma *v);
/* A page Private (priv 1), Shared (0), or undecided (-1). */
PM_HIDDEN void pm__usage_add_shared(struct pm__usage_acc *a, uint64_t ps, int priv);

#endif
