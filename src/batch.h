/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private interface between pm_batch and its backends. */
#ifndef PM_BATCH_H
#define PM_BATCH_H

#include "internal.h"

struct pm__bread {
	struct pm_handle *h;
	uint64_t start, end;
	uint64_t *entries;
	struct pm_read_info *info;
	long *result;
};

struct pm_batch {
	uint64_t backend;   /* asked for */
	void *ring;         /* the io_uring, kept across runs: its io-wq workers too */
	int used;           /* PM_BACKEND_URING or _SYNC */
	uint64_t read_flags, max_retries;
	/* AUTO: measured cost per page of each backend on this batch's runs */
	double ns_sync, ns_uring;
	uint64_t runs;
	struct pm__bread *r;
	size_t n, cap;
};

/* Run the reads with io_uring. -ENOSYS/-EPERM/-EOPNOTSUPP: io_uring is not
 * to be had (nothing was read; the caller runs them sync). */
PM_HIDDEN int pm__batch_uring(struct pm_batch *b);
PM_HIDDEN void pm__batch_uring_free(struct pm_batch *b);
/* io_uring_queue_init (ring is a struct io_uring): 0 or -errno. A pointer
 * so that tests can refuse io_uring as a kernel or a sandbox does (NULL
 * when built without liburing: never called). */
PM_HIDDEN extern int (*pm__uring_init)(unsigned entries, void *ring, unsigned flags);

#endif
