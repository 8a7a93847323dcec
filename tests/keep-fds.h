/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* For forked children of the tests and benchmarks: close every fd above 2
 * except @a and @b (the child's end of its ready and hold pipes), so that
 * only the parent can keep a child waiting, not an earlier child holding
 * a copy of another child's pipe. */
#ifndef PM_TEST_KEEP_FDS_H
#define PM_TEST_KEEP_FDS_H

#include <sys/syscall.h>
#include <unistd.h>

static inline void keep_only_fds(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo > 3)
		syscall(SYS_close_range, 3U, (unsigned)lo - 1, 0U);
	if (hi > lo + 1)
		syscall(SYS_close_range, (unsigned)lo + 1, (unsigned)hi - 1, 0U);
	syscall(SYS_close_range, (unsigned)hi + 1, ~0U, 0U);
}

#endif
