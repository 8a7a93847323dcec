/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers of the write-tracking tests (test-wtrack-*.c). */
#ifndef PM_TEST_WTRACK_COMMON_H
#define PM_TEST_WTRACK_COMMON_H

#include "common.h"

/* what this kernel can track with, set by wtrack_test_init() */
extern bool have_uffd, have_sd;
#define NO_UFFD "no uffd WP_ASYNC or PAGEMAP_SCAN"
#define NO_SD "the kernel has no working soft-dirty (the VM suite has it)"

void wtrack_test_init(void);

/* Every page of [a, a + n pages) reported written by collect calls of
 * @vec_len regions each, continued through walk_end, into got[]. */
void collect_all(struct pm_wtrack *wt, uint64_t a, size_t n, uint64_t flags, size_t vec_len,
		 bool *got);
void assert_pages(const bool *want, const bool *got, size_t n, const char *what);
size_t count(const bool *b, size_t n);
struct pm_wtrack *track(struct pm_handle *h, void *p, size_t pages, int method);

/* n pages of this process's memory (4 KiB pages, the first @populated
 * written), tracked with @method. */
struct own {
	char *p;
	size_t n;
	struct pm_handle *h;
	struct pm_wtrack *wt;
};

void own_start(struct own *o, size_t n, size_t populated, int method);
void own_stop(struct own *o);

#endif
