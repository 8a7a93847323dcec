/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private interface between pm_wtrack_* and its two methods. */
#ifndef PM_WTRACK_H
#define PM_WTRACK_H

#include "internal.h"
#include "scan.h"

struct pm_wtrack {
	struct pm_handle *h;
	int method;              /* PM_WT_METHOD_UFFD or PM_WT_METHOD_SOFT_DIRTY */
	bool stop;               /* PM_WT_F_STOP */
	pid_t owner;             /* own-memory trackers: the process that made it */
	pthread_mutex_t lock;    /* one operation at a time */
	struct pm__vcursor *vc;  /* the VMA cursor of the operation in progress */
	struct pm_range *ranges; /* sorted, non-overlapping */
	size_t nranges;
	uint64_t npages;
	struct pm_wtrack_stats stats;

	/* PM_WT_METHOD_UFFD */
	int uffd;

	/* PM_WT_METHOD_SOFT_DIRTY */
	int clear_fd;             /* /proc/PID/clear_refs */
	uint64_t *base;           /* per range: index of its first page */
	uint64_t *written;        /* bitmap: written since reset, not yet reported */
	uint64_t *populated;      /* bitmap: present or swapped at the last reset */
	uint64_t *entries;        /* pm_read buffer, PM__WT_CHUNK entries */
	uint64_t sd_key[2];       /* pid and start time: one tracker per process */
	struct pm_wtrack *sd_next; /* the registry of soft-dirty trackers */
};

#define PM__WT_CHUNK 32768 /* pagemap entries per soft-dirty read (256 KiB) */

/* NULL if the method can work (for @h), else why not, in one line. */
PM_HIDDEN const char *pm__wt_uffd_why_not(const struct pm_handle *h);
PM_HIDDEN const char *pm__wt_sd_why_not(void);

/* Both methods report into @o the written pages of the @n sub-ranges @r
 * (sorted, inside the tracked ranges), resetting them with @reset. */
PM_HIDDEN int pm__wt_uffd_start(struct pm_wtrack *wt);
PM_HIDDEN int pm__wt_uffd_collect(struct pm_wtrack *wt, const struct pm_range *r, size_t n,
				  struct pm__scan_out *o, bool reset);
PM_HIDDEN int pm__wt_uffd_reset(struct pm_wtrack *wt);
PM_HIDDEN void pm__wt_uffd_stop(struct pm_wtrack *wt, bool owner);

PM_HIDDEN int pm__wt_sd_start(struct pm_wtrack *wt);
PM_HIDDEN int pm__wt_sd_collect(struct pm_wtrack *wt, const struct pm_range *r, size_t n,
				struct pm__scan_out *o, bool reset);
PM_HIDDEN int pm__wt_sd_reset(struct pm_wtrack *wt);
PM_HIDDEN void pm__wt_sd_stop(struct pm_wtrack *wt);

/* 0 if every byte of the @n ranges @r is inside a VMA, else -EFAULT.
 * With @join, join[i] tells whether no VMA starts between r[i] and r[i+1]. */
PM_HIDDEN int pm__wt_mapped(struct pm__vcursor *c, const struct pm_range *r, size_t n,
			    bool *join);

#endif
