/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers for the test suite: real mappings in real child processes. */
#ifndef PM_TEST_COMMON_H
#define PM_TEST_COMMON_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <pagemap/pagemap.h>

#define HUGE_SZ (ps / 8 * ps) /* a PMD (page_size / 8 entries): 2 MiB with 4 KiB pages */

extern uint64_t ps; /* page size, set by test_init() */

void test_init(void);

/* A child that runs @build(arg, shared) to lay out its memory, then waits
 * until released. @shared is a page of memory shared with the parent, for
 * the child to report addresses in. */
struct child {
	pid_t pid;
	int hold;
	uint64_t *shared;
};
void child_start(struct child *c, void (*build)(void *arg, uint64_t *shared), void *arg);
void child_stop(struct child *c);
/* In @build: the child runs @change (async-signal-safe) when the parent
 * calls child_change(), which returns once it ran. shared[15] is its. */
void child_on_change(uint64_t *shared, void (*change)(void));
void child_change(struct child *c);
/* In a layout's child: a forked copy of it that keeps every page mapped
 * (copy-on-write: not exclusive in either) until the child exits. */
void hold_in_copy(void);

/* mmap or abort the test */
void *xmap(void *hint, size_t len, int prot, int flags, int fd);
/* pread /proc/PID/pagemap for [start, end) into buf (n entries). */
void raw_read(pid_t pid, uint64_t start, uint64_t end, uint64_t *buf);
/* A 2 MiB-aligned, MADV_HUGEPAGE, written THP (NULL if THP is unavailable). */
void *make_thp(void);
/* Reserve @n more 2 MiB hugetlb pages (root; *old: nr_hugepages before):
 * true when @n are free, else false with nothing left reserved. */
bool huge_reserve(uint64_t n, uint64_t *old);
/* nr_hugepages back to @old. */
bool huge_release(uint64_t old);
/* Whether THP is possible at all on this machine. */
bool thp_possible(void);
/* Whether a read fault on private anonymous memory maps the shared zero
 * page (some hypervisor kernels turn it off: pvm_no_zero_page=1). */
bool zero_page_possible(void);
/* The VM suite's kernel line (LIBPAGEMAP_TEST_KLINE: "6.1" or "6.12"), or
 * NULL outside it. Each line states what its kernel must answer. */
struct kline {
	const char *name;
	uint64_t major, minor;
	uint64_t features;        /* PM_FEAT_* it must have */
	uint64_t absent;          /* PM_FEAT_* it must not have */
	uint64_t scan_categories; /* PM_CAT_* its PAGEMAP_SCAN accepts */
	int64_t walk_retry_fix;   /* PM_FIX_* */
};
const struct kline *kline(void);
/* Whether the kernel is expected to have PM_FEAT_* @feat: on a VM kernel
 * line, what the line must have (so a kernel lacking it fails the tests
 * needing it rather than skipping them); elsewhere what the probe found. */
bool expect_feature(uint64_t feat);
/* Why a test needing @feat is left out: "<kernel> has no <feature>". */
const char *lacks(uint64_t feat);
/* Adds @test to @t if this kernel or machine @can run it, else prints
 * "SKIP name: why" and leaves it out. */
void add_test_if(TCase *t, const TTest *test, bool can, const char *why);
/* Runs the suite: 0 all passed, 1 a failure, 77 (skipped) when it ran
 * nothing because every test was left out. */
int run_suite(Suite *s);
/* /proc/kpageflags of @pfn, or abort the test */
uint64_t kpageflags(uint64_t pfn);
/* Pages of p: written (1 in @kinds), read-faulted (1 in @kinds), else
 * untouched, by the PRNG. */
void touch_random(char *p, size_t pages, uint64_t *seed, unsigned kinds);
/* Deterministic PRNG */
uint64_t rnd(uint64_t *state);

#endif
