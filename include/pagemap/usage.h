/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * @file usage.h
 * Physical pages and memory usage, for profilers (included by pagemap.h).
 */
#ifndef PAGEMAP_USAGE_H
#define PAGEMAP_USAGE_H

#include <pagemap/pagemap.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Physical pages ----------------------------------------------------- */

/* pm_kpage.flags bits: the kernel's KPF_* bit numbers
 * (include/uapi/linux/kernel-page-flags.h). */
#define PM_KPF_LOCKED        0
#define PM_KPF_ERROR         1 /* unused since 6.10 */
#define PM_KPF_REFERENCED    2
#define PM_KPF_UPTODATE      3
#define PM_KPF_DIRTY         4
#define PM_KPF_LRU           5
#define PM_KPF_ACTIVE        6
#define PM_KPF_SLAB          7
#define PM_KPF_WRITEBACK     8
#define PM_KPF_RECLAIM       9
#define PM_KPF_BUDDY         10
#define PM_KPF_MMAP          11
#define PM_KPF_ANON          12
#define PM_KPF_SWAPCACHE     13
#define PM_KPF_SWAPBACKED    14
#define PM_KPF_COMPOUND_HEAD 15
#define PM_KPF_COMPOUND_TAIL 16
#define PM_KPF_HUGE          17 /* hugetlb */
#define PM_KPF_UNEVICTABLE   18
#define PM_KPF_HWPOISON      19
#define PM_KPF_NOPAGE        20 /* no page at this PFN */
#define PM_KPF_KSM           21
#define PM_KPF_THP           22 /* any large folio on the LRU, not only PMD-mapped */
#define PM_KPF_OFFLINE       23
#define PM_KPF_ZERO_PAGE     24 /* the zero page, or (huge zero page) its head at least */
#define PM_KPF_IDLE          25
#define PM_KPF_PGTABLE       26
/* Kernel-internal bits the kernel also exports
 * (include/linux/kernel-page-flags.h): their meaning may change. */
#define PM_KPF_RESERVED      32
#define PM_KPF_MLOCKED       33
#define PM_KPF_MAPPEDTODISK  34 /* named OWNER_2 since 6.12 */
#define PM_KPF_OWNER_2       34
#define PM_KPF_PRIVATE       35
#define PM_KPF_PRIVATE_2     36
#define PM_KPF_OWNER_PRIVATE 37
#define PM_KPF_ARCH          38
#define PM_KPF_UNCACHED      39 /* removed in 6.x; never set there */
#define PM_KPF_SOFTDIRTY     40
#define PM_KPF_ARCH_2        41
#define PM_KPF_ARCH_3        42

/* pm_kpages() what */
#define PM_KPAGE_FLAGS  (1ULL << 0) /* /proc/kpageflags */
#define PM_KPAGE_COUNT  (1ULL << 1) /* /proc/kpagecount: the page's mapcount */
#define PM_KPAGE_CGROUP (1ULL << 2) /* /proc/kpagecgroup: memory cgroup inode */

struct pm_kpage {
	uint64_t flags;  /* 1 << PM_KPF_* */
	uint64_t count;  /* mapcount */
	uint64_t cgroup; /* inode number of the page's memory cgroup, 0 if none */
};

/**
 * Read the records of @p n physical pages (PFNs as pm_entry_pfn() gives
 * them) into @p out: the fields @p what names, the others 0. Runs of
 * consecutive PFNs cost one read per file. PFN 0 (what a hidden PFN reads
 * as) gives a zeroed record; a PFN past the end of memory reads as
 * flags 1 << PM_KPF_NOPAGE, count and cgroup 0, as the kernel reports holes.
 * Needs read access to the files (root, 0400).
 *
 * @return @p n, or -EINVAL (NULL pfns or out with n > 0, what 0 or with
 * unknown bits, a PFN above bit 54), -EOPNOTSUPP (the kernel has no such
 * file), -EACCES/-EPERM (no rights), or another errno from the kernel (then
 * @p out may be partly written).
 */
PM_EXPORT long pm_kpages(const uint64_t *pfns, size_t n, uint64_t what, struct pm_kpage *out);

/* ---- Memory usage ------------------------------------------------------- */

/* pm_usage.valid, pm_usage_opts.fields: one bit per field */
#define PM_USAGE_RSS       (1ULL << 0)
#define PM_USAGE_PSS       (1ULL << 1)
#define PM_USAGE_PSS_ANON  (1ULL << 2)
#define PM_USAGE_PSS_FILE  (1ULL << 3)
#define PM_USAGE_PSS_SHMEM (1ULL << 4)
#define PM_USAGE_USS       (1ULL << 5)
#define PM_USAGE_SHARED    (1ULL << 6)
#define PM_USAGE_SWAP      (1ULL << 7)
#define PM_USAGE_ANON_THP  (1ULL << 8)
#define PM_USAGE_HUGETLB   (1ULL << 9)
#define PM_USAGE_ZERO      (1ULL << 10)
#define PM_USAGE_GUARD     (1ULL << 11)
#define PM_USAGE_ALL       ((1ULL << 12) - 1)

/** Byte counts, the meaning of smaps' fields (see libpagemap(3)). */
struct pm_usage {
	uint64_t size;      /* set by the caller: sizeof(struct pm_usage) */
	uint64_t valid;     /* PM_USAGE_* of the fields that hold an answer */
	uint64_t rss;       /* Rss: present pages, not zero pages, not hugetlb */
	uint64_t pss;       /* Pss << 12: the kernel's fixed point (bytes x 4096) */
	uint64_t pss_anon;  /* Pss_Anon << 12 */
	uint64_t pss_file;  /* Pss_File << 12 */
	uint64_t pss_shmem; /* Pss_Shmem << 12 */
	uint64_t uss;       /* Private_Clean + Private_Dirty */
	uint64_t shared;    /* Shared_Clean + Shared_Dirty */
	uint64_t swap;      /* Swap, except swapped shmem the page tables do not show */
	uint64_t anon_thp;  /* AnonHugePages: PMD-mapped anonymous THPs */
	uint64_t hugetlb;   /* Private_Hugetlb + Shared_Hugetlb */
	uint64_t zero;      /* zero page and huge zero page mappings (in no smaps field) */
	uint64_t guard;     /* guard-region pages (MADV_GUARD_INSTALL) */
};

struct pm_usage_cache;

struct pm_usage_opts {
	uint64_t size;
	uint64_t fields;      /* PM_USAGE_* wanted; 0 = all */
	uint64_t read_flags;  /* PM_READ_F_* for the pagemap reads, as pm_read_opts.flags */
	uint64_t max_retries; /* as pm_read_opts.max_retries */
	/* (uintptr_t) a struct pm_usage_cache *: mapcounts shared with the other
	 * calls of a pass (pm_usage_cache_new()); 0: none */
	uint64_t cache;
};

struct pm_handle;
struct pm_vma_list;

/**
 * Memory usage of the pages of [start, end) (an @p end above the user
 * address space is clipped to it, so [0, UINT64_MAX & -page size) is the
 * whole process), written to @p out (the caller sets out->size; an older,
 * shorter struct gets its prefix).
 *
 * Computed the cheapest exact way the kernel and the caller's rights allow:
 * PAGEMAP_SCAN for the zero pages and PMD mappings, pagemap entries for
 * presence, swap and guard pages, and /proc/kpageflags and kpagecount
 * (root) for what needs the physical page: PSS, hugetlb, and which pages
 * are shared. out->valid says which fields hold an answer; a field the
 * caller did not ask for, or could not be derived for every page of the
 * range, is 0 and not valid. On a quiescent target the valid fields equal
 * smaps; pagemap reads follow pm_read()'s consistency rules.
 *
 * @return 0, or -EINVAL (NULL h or out, unaligned, empty or inverted range,
 * out->size or opts malformed, unknown fields or read flags), -ESRCH,
 * -EAGAIN (the read guard), -ENOMEM, or another errno from the kernel.
 */
PM_EXPORT int pm_usage(struct pm_handle *h, uint64_t start, uint64_t end,
		       const struct pm_usage_opts *opts, struct pm_usage *out);

/**
 * pm_usage() of every VMA of @p l: out[i] for VMA i, pm_vma_count(l)
 * elements whose size the caller sets in out[0].size (each element gets
 * that size). @return the count, or pm_usage()'s errors.
 */
PM_EXPORT long pm_usage_vmas(struct pm_handle *h, const struct pm_vma_list *l,
			     const struct pm_usage_opts *opts, struct pm_usage *out);

struct pm_usage_cache_opts {
	uint64_t size;
	uint64_t max_pages; /* physical pages kept at most; 0: 2,097,152. The
			     * table holds up to 4 x that many 12-byte slots
			     * (a power of two at least twice the pages kept) */
};

/**
 * A cache for one pass of pm_usage() calls over many processes (a
 * profiler's view of the whole machine; pm-dump --all uses one): the
 * mapcount of a physical page that several processes map (libraries'
 * page cache, pages shared since a fork) is read for the first process
 * that maps it, and taken from here for the others, where it would cost a
 * read of /proc/kpagecount per process. Give it in pm_usage_opts.cache.
 *
 * Kept: mapcounts of 2 or more (a page mapped once is one process's),
 * with the page's kind (file or anonymous, entry bit 61); a later read of
 * 2 or more replaces it. Taken: for a page whose pagemap entry says it is
 * not exclusive, of the kept kind; an entry saying exclusive has its
 * mapcount read afresh. A taken mapcount is as old as the pass: exact
 * while the processes that map the page keep it mapped (a quiescent
 * machine), else the last count of 2 or more read for it; a page freed
 * and reused during the pass for another page of the same kind that
 * several processes map counts with the first page's mapcount. Make a
 * new cache for each pass. Calls on many threads may share one.
 *
 * @return 0, or -EINVAL (NULL out, opts malformed), -ENOMEM.
 */
PM_EXPORT int pm_usage_cache_new(const struct pm_usage_cache_opts *opts,
				 struct pm_usage_cache **out);
/** Free a cache. NULL-safe; no call may be using it. */
PM_EXPORT void pm_usage_cache_free(struct pm_usage_cache *c);

#ifdef __cplusplus
}
#endif

#endif /* PAGEMAP_USAGE_H */
