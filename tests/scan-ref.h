/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_scan against a reference decoded here from pm_read entries, the VMA
 * list and /proc/kpageflags: the differential both scan test files run. */
#ifndef PM_TEST_SCAN_REF_H
#define PM_TEST_SCAN_REF_H

#include "common.h"

#define MAXR 200000

struct ref {
	uint64_t *cats; /* per page, ~0 outside VMAs */
	size_t n;
	uint64_t start;
};

/* The categories of every page of [s, e) (free r->cats after). */
void ref_build(struct pm_handle *h, uint64_t s, uint64_t e, struct ref *r);
/* What pm_scan must answer with @o, from the reference, into out. */
size_t ref_scan(const struct ref *r, const struct pm_scan_opts *o, struct pm_region *out);
/* The whole answer of pm_scan over [s, e), collected in calls of vec_len
 * regions each, continued through walk_end. */
size_t collect(struct pm_handle *h, uint64_t s, uint64_t e, const struct pm_scan_opts *o,
	       size_t vec_len, struct pm_region *out);
/* Abort the test, naming the first difference, unless a and b are equal. */
void same(const struct pm_region *a, size_t na, const struct pm_region *b, size_t nb,
	  const char *what, const struct pm_scan_opts *o);
/* Every subset of @cats as the mask x 4 inverted x 4 anyof x 3 return
 * masks over [s, e) of process @pid: the default path and the reference
 * agree, and the emulated path too on every @emu_every-th combination
 * (0: never) where the default path is native. */
void differential(pid_t pid, uint64_t s, uint64_t e, uint64_t cats, unsigned emu_every);

#endif
