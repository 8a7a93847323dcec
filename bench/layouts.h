/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The benchmark layouts, built in a child process that then waits. */
#ifndef PM_BENCH_LAYOUTS_H
#define PM_BENCH_LAYOUTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define HUGE_SZ (ps / 8 * ps) /* a PMD (page_size / 8 entries): 2 MiB with 4 KiB pages */

struct span {
	uint64_t lo, hi;
};

struct layout {
	const char *name;
	struct span (*build)(void);
	bool big; /* a 1 GiB layout */
};

extern const struct layout layouts[];
extern const size_t nlayouts;
extern uint64_t ps;

/* Fork a child that runs build(arg, out) (at most a page of spans) and
 * waits until layouts_stop(); out[0..nout) is copied back. */
pid_t bench_child(void (*build)(void *arg, struct span *out), void *arg, struct span *out,
		  size_t nout, int *hold_fd);
/* Fork a child that builds every layout; spans[i] receives layout i. */
pid_t layouts_start(struct span *spans, int *hold);
void layouts_stop(pid_t pid, int hold);
double now(void);
void *xmap(size_t len, int prot, int flags); /* mmap or exit */
double median(double *v, int n);
/* The raw floor: pread the pagemap entries of [lo, hi) into buf, or exit. */
void pread_all(int fd, uint64_t *buf, uint64_t lo, uint64_t hi);

/* The layouts of issue 16's table, for bench_child (not in layouts[]):
 * NVMAS small VMAs of 16 KiB each. */
#define NVMAS 10000
/* Anonymous, every page written, @gap bytes of nothing between VMAs. */
struct span gapped_vmas(uint64_t gap);
/* Contiguous, alternately read-only and writable (so they do not merge),
 * every page read: the zero page where the kernel maps it on a read fault. */
struct span zero_vmas(void);
/* Contiguous private mappings of a file (a memfd), every page read. */
struct span file_vmas(void);
/* Contiguous, alternately untouched and with two written pages. */
struct span many_vmas(void);
/* Contiguous, alternately read-only and writable, every page written, then
 * shared with a forked copy (which dies with the process): copy-on-write
 * anonymous pages, mapped twice, so not exclusive. Build it last: the copy
 * maps everything built before it too. */
struct span cow_vmas(void);

/* The row of issue 16's table: ROW | case | ratio | floor | PASS/FAIL.
 * @at_least: the ratio must be >= floor (a speed-up), else <= floor. */
void print_row(const char *what, double ratio, double floor, bool at_least);

#endif
