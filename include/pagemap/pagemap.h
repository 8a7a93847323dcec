/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * @file pagemap.h
 * libpagemap: exact, fast answers about what the kernel's page tables say
 * about a process's memory (/proc/PID/pagemap, PAGEMAP_SCAN, PROCMAP_QUERY).
 *
 * Conventions: functions returning int/long return >= 0 on success and a
 * negative errno on failure (errno is also set to -ret). Out-parameters are
 * written only on success. Options structs start with a uint64_t size set
 * by PM_OPTS(); NULL options mean defaults. Ranges are half-open, page
 * aligned [start, end). The library never prints, exits or installs signal
 * handlers, and opens every fd O_CLOEXEC.
 *
 * Processes, fds and rings. Kernel features are probed at the first call
 * that needs each one, with short-lived fds; a probe that failed for want
 * of an fd or memory, or to a signal, is not remembered. Only
 * pm_kernel_probe(), pm_has_feature(PM_FEAT_SOFT_DIRTY) and the calls that
 * need soft-dirty (pm_wtrack_new() and pm_wtrack_supported() when they
 * consider that method, pm_scan() of PM_CAT_SOFT_DIRTY without
 * PAGEMAP_SCAN) may create a process, once per process, reaped before they
 * return; no other call creates one. A handle holds 3 to 7 fds until
 * pm_close() (libpagemap(3) says which); a batch holds an io_uring instance (2 fds and its kernel
 * workers) from its first io_uring run until pm_batch_free(); a tracker
 * holds a userfaultfd or a clear_refs fd until pm_wtrack_free().
 *
 * Threads. Handles: any number of threads may call pm_read(), pm_scan(),
 * pm_vmas() and batches on one handle at once (pm_close() only when none
 * does). VMA lists: immutable, may be read from any thread. Batches: one
 * thread at a time per batch; different batches may share handles.
 * Trackers: every call on a tracker is serialised by the tracker. The
 * kernel probe and pm_has_feature() are thread-safe.
 */
#ifndef PAGEMAP_PAGEMAP_H
#define PAGEMAP_PAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pagemap/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PM_EXPORT __attribute__((visibility("default")))

/** Declare an options struct with its size set: PM_OPTS(pm_read_opts, o, .flags = X); */
#define PM_OPTS(TYPE, NAME, ...) \
	struct TYPE NAME = { .size = sizeof(struct TYPE), __VA_ARGS__ }

/* ---- Handles ---------------------------------------------------------- */

struct pm_handle;

/** pm_open_opts.flags: learn VMAs from the /proc/PID/maps text alone, never
 *  through PROCMAP_QUERY, even where the kernel has it. */
#define PM_OPEN_MAPS_TEXT (1ULL << 0)

struct pm_open_opts {
	uint64_t size;
	uint64_t flags; /* PM_OPEN_* */
};

/**
 * Open a handle on process @p pid (0 = the calling process).
 *
 * The handle is bound to the process that had @p pid when the call ran
 * (/proc/PID through a directory fd, which stays that process's), so pid
 * reuse can never redirect it; a thread's id other than its process's is
 * refused (-ESRCH). A self handle follows fork(): used in a
 * child, it describes the child. Every call that returns data through a
 * handle on another process checks, after the kernel answered, that the
 * process still runs with the address space the handle was opened on, and
 * fails with -ESRCH if it exited (zombie or reaped) or exec'd, even when its
 * memory lives on in a CLONE_VM parent.
 *
 * Where /proc belongs to another pid namespace than the caller's (unshare
 * --pid without mounting a new /proc), a pidfd tells which /proc entry is
 * the process; without a pidfd (before Linux 5.3, or pidfd_open refused by
 * a filter) such a /proc is refused.
 *
 * @return 0, or -EINVAL (pid < 0, out NULL, bad opts), -ESRCH (no such
 * process, or it exited or exec'd during the open), -EACCES/-EPERM (ptrace
 * read access denied), -EXDEV (/proc of another pid namespace and no
 * pidfd), -ENOMEM, or another errno from the kernel.
 */
PM_EXPORT int pm_open(pid_t pid, const struct pm_open_opts *opts, struct pm_handle **out);

/** Open a handle on the process a pidfd refers to. The pidfd is duplicated;
 *  the caller keeps ownership of its own. Errors as pm_open(), plus -EBADF
 *  (not a pidfd) and -ENOENT (a process outside the caller's pid namespace). */
PM_EXPORT int pm_open_pidfd(int pidfd, const struct pm_open_opts *opts, struct pm_handle **out);

/** Close a handle. NULL-safe. */
PM_EXPORT void pm_close(struct pm_handle *h);

/** The pid the handle describes (for a self handle, the current process), or -EINVAL for NULL. */
PM_EXPORT pid_t pm_pid(const struct pm_handle *h);

/* ---- Kernel capabilities ----------------------------------------------- */

#define PM_FEAT_PAGEMAP_SCAN   (1ULL << 0) /* PAGEMAP_SCAN ioctl (6.7+) */
#define PM_FEAT_PROCMAP_QUERY  (1ULL << 1) /* PROCMAP_QUERY ioctl (6.11+) */
#define PM_FEAT_SOFT_DIRTY     (1ULL << 2) /* soft-dirty proven by a clear/write round trip */
#define PM_FEAT_UFFD_WP_ASYNC  (1ULL << 3) /* userfaultfd UFFD_FEATURE_WP_ASYNC (6.7+) */
#define PM_FEAT_IO_URING       (1ULL << 4) /* built with liburing and io_uring_setup works */
#define PM_FEAT_PFN_VISIBLE    (1ULL << 5) /* PFNs readable with the caller's current credentials */
#define PM_FEAT_GUARD_REGIONS  (1ULL << 6) /* MADV_GUARD_INSTALL works and pagemap shows bit 58 */
#define PM_FEAT_WALK_RETRY_FIX (1ULL << 7) /* pagemap reads cannot be shifted (6.5+) */

#define PM_FIX_UNKNOWN 0
#define PM_FIX_PRESENT 1
#define PM_FIX_ABSENT  2

struct pm_kernel_info {
	uint64_t size;
	uint64_t version_major, version_minor, version_patch; /* parsed from uname */
	uint64_t features;        /* PM_FEAT_* bits actually probed on this kernel */
	uint64_t scan_categories; /* PM_CAT_* bits PAGEMAP_SCAN accepts (0 if no PAGEMAP_SCAN) */
	int64_t walk_retry_fix;   /* PM_FIX_PRESENT, PM_FIX_ABSENT, PM_FIX_UNKNOWN */
	char walk_retry_reason[96]; /* how that was decided, one line */
};

/**
 * Describe the running kernel. Every feature is probed for real once per
 * process and cached (thread-safe); the soft-dirty probe runs on a
 * short-lived child process. PM_FEAT_PFN_VISIBLE is re-checked on every
 * call because it depends on the caller's current credentials.
 * LIBPAGEMAP_ASSUME_RETRY_FIX=0|1 in the environment at the first call
 * overrides the retry-fix decision.
 *
 * @return 0, or -EINVAL (ki NULL, or ki->size too small / not a multiple of
 * 8), or -EMFILE, -ENFILE, -ENOMEM, -EINTR, -EAGAIN (a probe could not run
 * now; nothing is remembered of it).
 */
PM_EXPORT int pm_kernel_probe(struct pm_kernel_info *ki);

/** Probes that one feature if it is not known yet (a process only for
 *  PM_FEAT_SOFT_DIRTY). @return 1 if the single PM_FEAT_* bit is available,
 *  0 if not, -EINVAL for anything else, or a transient errno as
 *  pm_kernel_probe(). */
PM_EXPORT int pm_has_feature(uint64_t pm_feat_bit);

/* ---- VMAs -------------------------------------------------------------- */

#define PM_VMA_READ   (1ULL << 0)
#define PM_VMA_WRITE  (1ULL << 1)
#define PM_VMA_EXEC   (1ULL << 2)
#define PM_VMA_SHARED (1ULL << 3)

struct pm_vma {
	uint64_t start, end, pgoff; /* pgoff in bytes (0 for anonymous mappings) */
	uint64_t flags;             /* PM_VMA_* */
	uint64_t dev, inode;        /* dev as makedev(major, minor) */
	const char *name;           /* "" if anonymous; owned by the list */
};

struct pm_vma_list;

/**
 * Snapshot the target's address space: one entry per VMA below the user
 * address-space limit, sorted. Read from the /proc/PID/maps text (a line
 * costs a small fraction of a PROCMAP_QUERY); names are the kernel's, e.g.
 * "[heap]", "/path (deleted)". The text writes a newline in a path as
 * "\012": where the kernel has PROCMAP_QUERY (6.11+) and the handle was not
 * opened with PM_OPEN_MAPS_TEXT, a name holding a backslash is asked of it,
 * so names are exact, except a name of PATH_MAX bytes or more with its
 * " (deleted)" (the kernel's query does not print it) or a VMA that changed
 * between the two reads; those and, elsewhere, every name are as the text
 * shows them.
 *
 * @return 0, or -EINVAL (NULL argument), -ESRCH (the process exited),
 * -ENOMEM, -EIO (maps text the parser does not understand).
 */
PM_EXPORT int pm_vmas(struct pm_handle *h, struct pm_vma_list **out);
/** Number of VMAs in the list (0 for NULL). */
PM_EXPORT size_t pm_vma_count(const struct pm_vma_list *l);
/** The i-th VMA, or NULL if l is NULL or i is out of range. */
PM_EXPORT const struct pm_vma *pm_vma_at(const struct pm_vma_list *l, size_t i);
/** Free a list. NULL-safe. */
PM_EXPORT void pm_vma_list_free(struct pm_vma_list *l);

/* ---- Reading entries --------------------------------------------------- */

/** pm_read_opts.flags */
#define PM_READ_F_SNAPSHOT    (1ULL << 0) /* certify on any kernel: no page-table change seen */
#define PM_READ_F_BEST_EFFORT (1ULL << 1) /* out of retries: return the data flagged UNSTABLE */
#define PM_READ_F_STOP        (1ULL << 2) /* stop the target (another process) for the read */

/** pm_read_info.flags */
#define PM_READ_INFO_GUARDED  (1ULL << 0) /* the consistency guard ran */
#define PM_READ_INFO_RETRIED  (1ULL << 1) /* at least one span was read again */
#define PM_READ_INFO_UNSTABLE (1ULL << 2) /* the guard could not clear the data (BEST_EFFORT) */

struct pm_read_opts {
	uint64_t size, flags;
	uint64_t max_retries; /* 0 = the library's default */
};

struct pm_read_info {
	uint64_t size, flags, retries, kernel_reads;
	/* in: where to write the uncertified page ranges, a (uintptr_t) of a
	 * struct pm_range array of uncertain_cap entries (may be 0). out:
	 * how many there are (more than uncertain_cap: only the first
	 * uncertain_cap were written). Only PM_READ_INFO_UNSTABLE data has any. */
	uint64_t uncertain, uncertain_cap, uncertain_count;
};

/**
 * Write one raw pagemap entry per page of [start, end) into @p entries
 * ((end - start) / page size slots) and return that count.
 *
 * Unmapped gaps read as 0, and so do pages at or above the top of the
 * target's address space (a 32-bit process's ends below 4 GiB). The library
 * plans its kernel reads (large gaps are zero-filled, nearby small mappings
 * are joined into one read) and reads straight into @p entries, so memory
 * use does not grow with the range.
 * On a kernel without the pagemap retry fix (or with PM_READ_F_SNAPSHOT) every
 * kernel read is guarded and re-read when it may have been disturbed.
 *
 * @param info optional; caller sets info->size. Written on success only.
 * @return the entry count, or -EINVAL (NULL h/entries, unaligned, empty,
 * inverted or overflowing range, range above the user address space, bad
 * opts or info size, unknown flags), -ESRCH (the process exited or exec'd),
 * -EAGAIN (the guard could not obtain a stable read within the retry budget),
 * -ENOMEM, or another errno from the kernel. On error, @p entries may have
 * been partly written when the error came from the kernel, never for
 * argument errors.
 */
PM_EXPORT long pm_read(struct pm_handle *h, uint64_t start, uint64_t end, uint64_t *entries,
		       const struct pm_read_opts *opts, struct pm_read_info *info);

/* ---- Decoding an entry ------------------------------------------------- */

#define PM_ENTRY_PFN_MASK     ((1ULL << 55) - 1)
#define PM_ENTRY_SOFT_DIRTY   (1ULL << 55)
#define PM_ENTRY_EXCLUSIVE    (1ULL << 56)
#define PM_ENTRY_UFFD_WP      (1ULL << 57)
#define PM_ENTRY_GUARD        (1ULL << 58)
#define PM_ENTRY_FILE         (1ULL << 61)
#define PM_ENTRY_SWAP         (1ULL << 62)
#define PM_ENTRY_PRESENT      (1ULL << 63)
/* Swap-format entries: type in bits 0-4, offset in bits 5-54. Type 31 is
 * the kernel's PTE-marker type (uffd-wp and guard markers), not a swap file. */
#define PM_ENTRY_SWAP_TYPE_BITS 5
#define PM_ENTRY_MARKER_TYPE    31U

/** Bit 63: a page is mapped. */
static inline bool pm_entry_present(uint64_t e)
{
	return (e & PM_ENTRY_PRESENT) != 0;
}

/** Bit 62 for a real swap (or migration) entry: false for guard markers,
 *  and for other PTE markers (uffd-wp on unpopulated memory) wherever the
 *  swap type is visible (CAP_SYS_ADMIN); without it such markers read as
 *  swapped with uffd-wp set. */
static inline bool pm_entry_swapped(uint64_t e)
{
	if (!(e & PM_ENTRY_SWAP) || (e & PM_ENTRY_GUARD))
		return false;
	return (e & ((1U << PM_ENTRY_SWAP_TYPE_BITS) - 1)) != PM_ENTRY_MARKER_TYPE;
}

/** Bit 61: the page is not anonymous: page cache, shmem, or the huge
 *  zero page (which reads as file in a private anonymous VMA). */
static inline bool pm_entry_file(uint64_t e)
{
	return (e & PM_ENTRY_FILE) != 0;
}

/** Bit 56: mapped exclusively: the page's mapcount is 1 for a PTE-mapped
 *  page; a PMD-mapped THP carries its head page's answer on all its pages
 *  (per folio on CONFIG_NO_PAGE_MAPCOUNT kernels, 6.15+). */
static inline bool pm_entry_exclusive(uint64_t e)
{
	return (e & PM_ENTRY_EXCLUSIVE) != 0;
}

/** Bit 55: soft-dirty (meaningful only where PM_FEAT_SOFT_DIRTY). */
static inline bool pm_entry_soft_dirty(uint64_t e)
{
	return (e & PM_ENTRY_SOFT_DIRTY) != 0;
}

/** Bit 57: write-protected by userfaultfd (PTE bit or marker). */
static inline bool pm_entry_uffd_wp(uint64_t e)
{
	return (e & PM_ENTRY_UFFD_WP) != 0;
}

/** Bit 58: a guard region page (MADV_GUARD_INSTALL, reported since 6.15). */
static inline bool pm_entry_guard(uint64_t e)
{
	return (e & PM_ENTRY_GUARD) != 0;
}

/** PFN of a present page; 0 if not present or hidden (no CAP_SYS_ADMIN in the initial user ns). */
static inline uint64_t pm_entry_pfn(uint64_t e)
{
	return (e & PM_ENTRY_PRESENT) ? (e & PM_ENTRY_PFN_MASK) : 0;
}

/** Swap type of a swap-format entry (bit 62), else 0. Hidden (0) like PFNs. */
static inline uint32_t pm_entry_swap_type(uint64_t e)
{
	return (e & PM_ENTRY_SWAP) ? (uint32_t)(e & ((1U << PM_ENTRY_SWAP_TYPE_BITS) - 1)) : 0;
}

/** Swap offset of a swap-format entry (bit 62), else 0. Hidden (0) like PFNs. */
static inline uint64_t pm_entry_swap_offset(uint64_t e)
{
	return (e & PM_ENTRY_SWAP) ? (e & PM_ENTRY_PFN_MASK) >> PM_ENTRY_SWAP_TYPE_BITS : 0;
}

/* ---- Scanning (PAGEMAP_SCAN semantics) ---------------------------------- */

/* Page categories: the kernel's PAGE_IS_* bit numbers. */
#define PM_CAT_WPALLOWED  (1ULL << 0) /* VMA registered for async uffd-wp */
#define PM_CAT_WRITTEN    (1ULL << 1) /* not uffd-wp protected */
#define PM_CAT_FILE       (1ULL << 2)
#define PM_CAT_PRESENT    (1ULL << 3)
#define PM_CAT_SWAPPED    (1ULL << 4) /* any swap-format entry, markers included */
#define PM_CAT_PFNZERO    (1ULL << 5) /* the zero page or the huge zero page */
#define PM_CAT_HUGE       (1ULL << 6) /* PMD-mapped THP or hugetlb */
#define PM_CAT_SOFT_DIRTY (1ULL << 7)
#define PM_CAT_GUARD      (1ULL << 8)
#define PM_CAT_ALL        ((1ULL << 9) - 1)

/* pm_scan_opts.flags */
#define PM_SCAN_F_WP_MATCHING    (1ULL << 0) /* write-protect matched pages (native only) */
#define PM_SCAN_F_CHECK_WPASYNC  (1ULL << 1) /* fail (-EPERM) on VMAs without async uffd-wp */
#define PM_SCAN_F_EMULATE        (1ULL << 2) /* compute from pagemap entries, not PAGEMAP_SCAN */

struct pm_region {
	uint64_t start, end, categories;
};

struct pm_scan_opts {
	uint64_t size, flags;
	uint64_t category_mask, category_inverted, category_anyof_mask, return_mask;
	uint64_t max_pages; /* 0 = no limit */
};

/**
 * Report the pages of [start, end) whose categories c match
 * ((c ^ inverted) & mask) == mask && (!anyof || ((c ^ inverted) & anyof)),
 * as regions with categories c & return_mask. Only pages inside VMAs are
 * considered, as the kernel does.
 *
 * The output is canonical: sorted, non-overlapping, inside [start, end),
 * adjacent regions with equal categories merged, and identical whatever
 * @p vec_len is and however the work was split. *walk_end (optional) is
 * @p end when the whole range was scanned, else the first address not yet
 * reported: scan [*walk_end, end) for the rest. max_pages caps the pages
 * reported.
 *
 * PAGEMAP_SCAN is used where the kernel has it (and every requested
 * category); its answer is checked and normalised. Otherwise (or with
 * PM_SCAN_F_EMULATE) the answer is computed from pm_read() entries, the
 * VMA list and, for PM_CAT_PFNZERO, /proc/kpageflags. Categories that cannot
 * be computed honestly that way (WPALLOWED, HUGE; PFNZERO without PFNs and
 * kpageflags; SOFT_DIRTY or GUARD where the kernel does not report them)
 * and the write-protect flags give -EOPNOTSUPP.
 *
 * Entries of @p vec past the number returned may have been written too
 * (the kernel answers into the caller's vector, then it is merged).
 *
 * @return the number of regions written, or -EINVAL (bad range, unknown
 * flags or category bits, vec NULL with vec_len > 0, bad opts), -EOPNOTSUPP,
 * -EPERM (CHECK_WPASYNC), -ESRCH, -EAGAIN (emulated path: the read guard
 * left nothing to report from @p start: a call certified in part stops at
 * the first uncertain page, @p walk_end there or at the start of a region
 * that reaches it, and this is when that is @p start),
 * -ENOMEM, -EFAULT (a vector with room for 512 regions or more that is
 * not writable: the kernel writes it), or another errno from the kernel.
 */
PM_EXPORT long pm_scan(struct pm_handle *h, uint64_t start, uint64_t end, struct pm_region *vec,
		       size_t vec_len, const struct pm_scan_opts *opts, uint64_t *walk_end);

/* ---- Batched reads ------------------------------------------------------ */

#define PM_BACKEND_AUTO  0 /* the backend measured faster: sync on every shape (doc/batch.md) */
#define PM_BACKEND_URING 1 /* io_uring (falls back to sync where unavailable) */
#define PM_BACKEND_SYNC  2 /* pread */

struct pm_batch_opts {
	uint64_t size;
	uint64_t backend;     /* PM_BACKEND_* */
	uint64_t read_flags;  /* PM_READ_* for every read, as pm_read_opts.flags */
	uint64_t max_retries; /* as pm_read_opts.max_retries */
};

struct pm_batch;

/** A batch of reads. @return 0, -EINVAL (bad opts, unknown backend or flags), -ENOMEM. */
PM_EXPORT int pm_batch_new(const struct pm_batch_opts *opts, struct pm_batch **out);

/**
 * Queue a read with pm_read()'s meaning; @p result receives what pm_read
 * would return (the entry count or a negative errno, per read: a bad range
 * or an exited process fails that read only), @p info (optional) what it
 * would report. Nothing is read before pm_batch_run().
 * @return 0, -EINVAL (NULL batch, handle or result), -ENOMEM.
 */
PM_EXPORT int pm_batch_add_read(struct pm_batch *b, struct pm_handle *h, uint64_t start,
				uint64_t end, uint64_t *entries, struct pm_read_info *info,
				long *result);

/** Run every queued read, then empty the queue. The entries, infos and
 *  results are the same on every backend. Nothing is left in flight when
 *  it returns, but for the last error below. @return 0, or -EINVAL (NULL),
 *  -ENOMEM (nothing run, the queue kept), or the errno of an io_uring wait
 *  that kept failing while reads were in flight (every result has it; the
 *  kernel may still write their buffers until it finishes them). */
PM_EXPORT int pm_batch_run(struct pm_batch *b);

/** PM_BACKEND_URING or PM_BACKEND_SYNC: what the last run used (before a
 *  run: what it will try), or -EINVAL for NULL. */
PM_EXPORT int pm_batch_backend(const struct pm_batch *b);

/** Free a batch (NULL-safe). Queued reads are dropped. */
PM_EXPORT void pm_batch_free(struct pm_batch *b);

/* ---- Write tracking ----------------------------------------------------- */

struct pm_range {
	uint64_t start, end;
};

/* pm_wtrack_opts.method, pm_wtrack_method() */
#define PM_WT_METHOD_AUTO       0 /* UFFD for the calling process where it works, else SOFT_DIRTY */
#define PM_WT_METHOD_UFFD       1 /* userfaultfd async write-protect (6.7+), own memory, exact 4K */
#define PM_WT_METHOD_SOFT_DIRTY 2 /* clear_refs + soft-dirty bit, any process, libpagemap(3) */

/* pm_wtrack_opts.flags */
#define PM_WT_F_EXACT (1ULL << 0) /* refuse a method that reports written THPs as 2 MiB */
/* Soft-dirty on another process: stop every thread of the target (ptrace)
 * while its bits are read and cleared, so a write in that window cannot
 * make a reset report every populated page. -EPERM on a handle on the
 * calling process or a target the caller may not trace, -EBUSY if another
 * tracer holds it; -EINVAL with PM_WT_METHOD_UFFD. See libpagemap(3). */
#define PM_WT_F_STOP (1ULL << 1)

/* pm_wtrack_collect() flags */
#define PM_WT_COLLECT_RESET (1ULL << 0) /* restart tracking of the pages reported, atomically */

struct pm_wtrack_opts {
	uint64_t size, method, flags;
};

struct pm_wtrack;

/**
 * Start tracking writes to @p ranges (page aligned, non-overlapping, mapped)
 * of the process @p h describes. @p h must stay open while the tracker lives.
 *
 * PM_WT_METHOD_UFFD (a handle on the calling process): userfaultfd with
 * WP_ASYNC registered in write-protect mode, collected with PAGEMAP_SCAN;
 * a write to a transparent huge page splits it, so reports are per 4 KiB
 * page (per huge page on hugetlb). PM_WT_METHOD_SOFT_DIRTY: clear_refs and the
 * soft-dirty bit, for any process whose kernel proves soft-dirty works;
 * clear_refs resets the whole process, so one such tracker per process.
 * It reports a written PMD-mapped THP as 2 MiB and over-reports where the
 * kernel does (new and merged VMAs read all dirty) or where the target
 * faulted during a reset (see libpagemap(3)); it never under-reports.
 *
 * @return 0, or -EINVAL (NULL arguments, no ranges, unaligned, empty or
 * overlapping ranges, bad opts, unknown method or flags), -EFAULT (a range
 * is not fully mapped), -EBUSY (the memory is already tracked: another
 * userfaultfd registration, or another soft-dirty tracker on the process),
 * -EOPNOTSUPP (the method cannot work here: no WP_ASYNC or PAGEMAP_SCAN, a
 * kernel that loses zapped ranges, UFFD on another process, no working
 * soft-dirty, PM_WT_F_EXACT with soft-dirty), -ESRCH, -ENOMEM, or another
 * errno from the kernel.
 */
PM_EXPORT int pm_wtrack_new(struct pm_handle *h, const struct pm_range *ranges, size_t nranges,
			    const struct pm_wtrack_opts *opts, struct pm_wtrack **out);

/**
 * Which method pm_wtrack_new() with these @p opts would use on @p h:
 * PM_WT_METHOD_UFFD or PM_WT_METHOD_SOFT_DIRTY, or 0 when none can work, with why in
 * @p why (one line, truncated to @p why_len; optional).
 * @return the method, 0, or -EINVAL (NULL h, why NULL with why_len > 0,
 * bad opts, unknown method or flags), -ESRCH.
 */
PM_EXPORT int pm_wtrack_supported(struct pm_handle *h, const struct pm_wtrack_opts *opts,
				  char *why, size_t why_len);

/**
 * Report the pages of [start, end) (clipped to the tracked ranges) written
 * since tracking started or they were last reset, as pm_scan() regions with
 * categories PM_CAT_WRITTEN: canonical, and *walk_end (optional) is @p end
 * when everything was reported, else where to continue. Memory zapped
 * (MADV_DONTNEED) counts as written. With PM_WT_COLLECT_RESET the pages reported
 * are reset in the same step: a write racing with it is reported now or by
 * a later collect, never lost; pages not reported (beyond *walk_end) stay
 * written.
 *
 * @return the number of regions, or -EINVAL (NULL tracker, vec NULL or
 * vec_len 0, unaligned or empty range, a range meeting no tracked range,
 * unknown flags), -EFAULT (tracked memory was unmapped or replaced),
 * -ECHILD (called in a child forked after the tracker was made for its
 * parent's own memory: the child's memory is not tracked), -ESRCH, -EAGAIN
 * (soft-dirty: the read guard), -ENOMEM, or another errno from the kernel.
 */
PM_EXPORT long pm_wtrack_collect(struct pm_wtrack *wt, uint64_t start, uint64_t end,
				 struct pm_region *vec, size_t vec_len, uint64_t flags,
				 uint64_t *walk_end);

/** Forget every write so far: tracking restarts on all tracked ranges.
 *  @return 0, or the errors of pm_wtrack_collect(). */
PM_EXPORT int pm_wtrack_reset(struct pm_wtrack *wt);

/** PM_WT_METHOD_UFFD or PM_WT_METHOD_SOFT_DIRTY: the tracker's method; -EINVAL for NULL. */
PM_EXPORT int pm_wtrack_method(const struct pm_wtrack *wt);

struct pm_wtrack_stats {
	uint64_t size;
	uint64_t collects;       /* successful pm_wtrack_collect() calls */
	uint64_t pages_reported; /* pages in the regions they returned */
	uint64_t widened;        /* soft-dirty: reset collects during which the target
				    faulted, so every populated page was reported */
	uint64_t stops;          /* PM_WT_F_STOP: times the target was stopped */
	uint64_t stop_ns_last;   /* how long the last stop held it (ns) */
	uint64_t stop_ns_max;    /* the longest stop (ns) */
	uint64_t stop_ns_total;  /* all stops together (ns) */
};

/** What a tracker has done, for callers that want to know how exact it
 *  was. @p st->size set by the caller (an older, shorter struct gets its
 *  prefix). @return 0, or -EINVAL (NULL, size too small or not a multiple of 8). */
PM_EXPORT int pm_wtrack_stats(struct pm_wtrack *wt, struct pm_wtrack_stats *st);

/** Stop tracking (unregisters the ranges, closes the userfaultfd) and free. NULL-safe. */
PM_EXPORT void pm_wtrack_free(struct pm_wtrack *wt);

/* ---- Names of 0.1 and 0.2 ---------------------------------------------- */
/* The flags were first named without their argument in the name; equal
 * values made one easy to pass where another belongs. The old names stay,
 * with the same values, through 0.x. */
#define PM_READ_SNAPSHOT    PM_READ_F_SNAPSHOT
#define PM_READ_BEST_EFFORT PM_READ_F_BEST_EFFORT
#define PM_READ_GUARDED     PM_READ_INFO_GUARDED
#define PM_READ_RETRIED     PM_READ_INFO_RETRIED
#define PM_READ_UNSTABLE    PM_READ_INFO_UNSTABLE
#define PM_WT_AUTO          PM_WT_METHOD_AUTO
#define PM_WT_UFFD          PM_WT_METHOD_UFFD
#define PM_WT_SOFT_DIRTY    PM_WT_METHOD_SOFT_DIRTY
#define PM_WT_EXACT         PM_WT_F_EXACT
#define PM_WT_RESET         PM_WT_COLLECT_RESET

/* ---- Version ----------------------------------------------------------- */

/** The library's version as "MAJOR.MINOR.MICRO". */
PM_EXPORT const char *pm_version(void);

#ifdef __cplusplus
}
#endif

#include <pagemap/usage.h>

#endif /* PAGEMAP_PAGEMAP_H */
