/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The order in which a repetition runs the methods it compares. */
#ifndef PM_BENCH_ORDER_H
#define PM_BENCH_ORDER_H

#include <stdint.h>

/* order[0, n) := 0 .. n - 1 shuffled (Fisher-Yates on an LCG in *seed). */
static inline void bench_order(int *order, int n, uint64_t *seed)
{
	for (int k = 0; k < n; k++)
		order[k] = k;
	for (int k = n - 1; k > 0; k--) {
		int j, x;

		*seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
		j = (int)((*seed >> 33) % (uint64_t)(k + 1));
		x = order[k];
		order[k] = order[j];
		order[j] = x;
	}
}

#endif
