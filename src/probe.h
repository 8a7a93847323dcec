/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Kernel facts (probe.c). The basic facts cost no fd and no process; each
 * feature is probed at the first use that needs it, and probed again later
 * when that failed for a transient reason (no fd, no memory, a signal). */
#ifndef PM_PROBE_H
#define PM_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#ifndef PM_HIDDEN
#define PM_HIDDEN __attribute__((visibility("hidden")))
#endif

struct pm__kernel {
	uint64_t page_size;
	unsigned page_shift;
	uint64_t user_top; /* first address above the user address space */
	uint64_t version[3];
};
/* Page size, address-space top and release, decided once; never NULL. */
PM_HIDDEN const struct pm__kernel *pm__kernel(void);
/* Pages a PMD maps (a THP, the huge zero page): a page table holds
 * page_size / 8 entries, so 512 with 4 KiB pages (2 MiB), 8192 with
 * 64 KiB pages on arm64. */
static inline uint64_t pm__pmd_pages(void)
{
	return pm__kernel()->page_size / sizeof(uint64_t);
}

/* Whether the kernel has one PM_FEAT_* feature (not PFN_VISIBLE): 1, 0, or
 * a transient -errno (-EMFILE, -ENFILE, -ENOMEM, -EINTR, -EAGAIN) that is
 * not remembered. Only PM_FEAT_SOFT_DIRTY creates a (short-lived) process. */
PM_HIDDEN int pm__feature(uint64_t feat);
/* The PM_CAT_* categories PAGEMAP_SCAN accepts (0 without it). */
PM_HIDDEN uint64_t pm__scan_categories(void);
/* PM_FIX_* for the kernel's pagemap walk-retry fix; @why (optional, 96
 * bytes) receives how that was decided. */
PM_HIDDEN int64_t pm__retry_fix(char *why);
/* Whether reads with these PM_READ_F_* flags must be certified: always
 * without the kernel's retry fix, on request (SNAPSHOT) otherwise. */
PM_HIDDEN bool pm__guard_wanted(uint64_t read_flags);

/* A userfaultfd (O_CLOEXEC | @flags), retried user-mode-only where only
 * that is permitted: the fd or -errno. */
PM_HIDDEN int pm__uffd_open(int flags);

#endif
