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

/* A queued read during a run: the same bookkeeping on both backends, so
 * that their results and infos are the same. */
struct pm__bstate {
	long res;                 /* 0 while fine, else the read's error */
	bool guard;               /* certified by its group's token pair */
	struct pm_read_info info; /* what the caller's info receives */
	/* a group's first read: the identity check its closing token's stat
	 * text gave, when it had one (ident_fresh); that token was read
	 * after every read of the group */
	bool ident_fresh;
	int ident;
};

/* Consecutive reads [i, j) on one handle: one token pair certifies them
 * where the guard is wanted. */
struct pm__bgroup {
	size_t i, j;
	bool have_token, took;        /* opening token; closing token's own part */
	struct pm__token before, after;
};

/* Closed groups the sync backend keeps for one THP event sum at most. */
#define PM__BATCH_PENDING 64

struct pm_batch {
	uint64_t backend;   /* asked for */
	void *ring;         /* the io_uring, kept across runs: its io-wq workers too */
	int used;           /* PM_BACKEND_URING or _SYNC */
	uint64_t read_flags, max_retries;
	/* the last THP event sum a token of this run read (pm__batch_begin) */
	bool have_thp;
	uint64_t thp, thp_ns; /* and when (CLOCK_MONOTONIC) */
	uint64_t window_ns;   /* pm__batch_settle_due(), kept across runs */
	struct pm__bread *r;
	size_t n, cap;
};

/* Open the group of reads starting at @i: check each read's arguments and
 * its handle, prefault the buffers and take the token where the guard is
 * wanted (its system-wide part, v[5], the last one this run read). Sets
 * g->i and g->j. */
PM_HIDDEN void pm__batch_begin(struct pm_batch *b, struct pm__bstate *st, size_t i,
			       struct pm__bgroup *g);
/* Close a group whose reads were all answered: the target's part of the
 * token after them; its identity answer goes to the group's first read. */
PM_HIDDEN void pm__batch_close(struct pm_batch *b, struct pm__bstate *st, struct pm__bgroup *g);
/* Settle closed groups [0, n): one THP event sum read after all their
 * reads completes their closing tokens; each group is certified by its
 * token pair, or each of its reads is read again, certifying, as pm_read
 * does (each such read checks the handle itself). */
PM_HIDDEN void pm__batch_settle(struct pm_batch *b, struct pm__bstate *st, struct pm__bgroup *g,
				size_t n);
/* Whether the sync backend settles its @pending closed groups now. */
PM_HIDDEN bool pm__batch_settle_due(const struct pm_batch *b, size_t pending);
/* The kernel reads of a span that a batch read asks for: chunks of at
 * most PM__BATCH_CHUNK bytes of entries, the same on both backends (so
 * that io_uring's workers can share a large span, and kernel_reads is
 * the same). @fn gets the file offset, destination and length. */
#define PM__BATCH_CHUNK (1UL << 20) /* 128 Ki entries: 512 MiB of address space */
PM_HIDDEN int pm__batch_chunks(uint64_t va, uint64_t *dst, size_t n,
			       int (*fn)(void *arg, uint64_t off, char *dst, size_t len),
			       void *arg);

/* Run the reads with io_uring: 0, every read answered in @st; else
 * nothing is in flight and the caller runs them sync (-ENOSYS, -EPERM,
 * -EOPNOTSUPP: io_uring is not to be had; another errno: the ring failed
 * and was discarded) -- unless *@lost: reads may still be in flight (the
 * wait for them kept failing), and the run fails with that errno. */
PM_HIDDEN int pm__batch_uring(struct pm_batch *b, struct pm__bstate *st, bool *lost);
PM_HIDDEN void pm__batch_uring_free(struct pm_batch *b);
/* The io_uring calls (ring: a struct io_uring; cqe: a struct io_uring_cqe
 * **), 0 (or the count submitted) or -errno: a table, as pm__sys, so that
 * tests can refuse io_uring as a kernel or a sandbox does and make
 * submitting or waiting fail as no kernel here does (all NULL when built
 * without liburing: never called). */
struct pm__uringops {
	int (*init)(unsigned entries, void *ring, unsigned flags);
	int (*submit_and_wait)(void *ring, unsigned wait_nr);
	int (*wait_cqe)(void *ring, void *cqe);
};
PM_HIDDEN extern struct pm__uringops pm__uring_sys;

#endif
