/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "stress-layout.h"

#include <pagemap/pagemap.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

char *stress_layout(const enum stress_slot *kind, int n, uint64_t (*bits)[NPMD / 64])
{
	const uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
	char *r = mmap(NULL, ((size_t)n + 1) * HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	char *base;

	if (r == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	base = (char *)(((uintptr_t)r + HUGE - 1) & ~(HUGE - 1));
	for (int s = 0; s < n; s++) {
		char *p = base + s * HUGE;
		int flags = (kind[s] == SLOT_SENTINEL ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS |
			    MAP_FIXED;

		if (mmap(p, HUGE, PROT_READ | PROT_WRITE, flags, -1, 0) != p) {
			perror("mmap slot");
			exit(1);
		}
		madvise(p, HUGE, kind[s] == SLOT_PATTERN ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
		if (kind[s] == SLOT_SENTINEL)
			memset(p, 1, HUGE);
		if (kind[s] != SLOT_PATTERN)
			continue;
		for (int i = 0; i < NPMD; i++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			if (seed & 1) {
				bits[s][i / 64] |= 1ULL << (i % 64);
				p[(uint64_t)i * ps] = 1;
			}
		}
	}
	return base;
}

long stress_region_cats(uint64_t va, const struct pm_region *r, long nr, size_t n,
			uint64_t walk_end, uint64_t *cats)
{
	const uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);

	if (walk_end < va || (walk_end - va) / ps > n) {
		fprintf(stderr, "pm_scan: walk_end %#lx outside the range\n", (unsigned long)walk_end);
		return -1;
	}
	n = (size_t)((walk_end - va) / ps);
	memset(cats, 0, n * 8);
	for (long k = 0; k < nr; k++) {
		if (r[k].start < va || r[k].end > walk_end) {
			fprintf(stderr, "pm_scan: region %#lx-%#lx outside [%#lx, walk_end %#lx)\n",
				(unsigned long)r[k].start, (unsigned long)r[k].end,
				(unsigned long)va, (unsigned long)walk_end);
			return -1;
		}
		for (uint64_t a = r[k].start; a < r[k].end; a += ps)
			cats[(a - va) / ps] = r[k].categories;
	}
	return (long)n;
}

double stress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
