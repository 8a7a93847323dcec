/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The consistency guard around pm_read's kernel reads.
 *
 * Before 6.5 a pagemap read comes back full length but shifted when a PMD
 * goes from populated to none (or back) while the kernel walks it (fixed
 * upstream by 7780d04046a2, never backported to 6.1.y). Every way that
 * happens moves a counter:
 *   - a fault (none -> huge, and the write fault that splits a huge zero
 *     page): the target's minflt/majflt (/proc/PID/stat, all threads);
 *   - a zap of an anonymous, file or shmem THP: RSS (statm resident and
 *     shared) and, for anonymous and huge-zero PMDs, the deposited page
 *     table (VmPTE);
 *   - any PMD split (huge zero page, file, shmem, anon, reclaim): the
 *     system-wide thp_split_pmd, and THP allocations by someone else's
 *     fault on the target (GUP) thp_fault_alloc (every thp_* vmstat event
 *     is summed).
 * A token of these taken before and after the reads certifies them when
 * it is unchanged. Evidence from the 6.1 VM: fault counters alone missed
 * every shift, counters plus RSS missed huge-zero-page zaps and splits;
 * VmPTE and thp_split_pmd close those.
 *
 * When the token moved (a "trip": the target faulted, or some process
 * split a THP), the guard re-reads every span chunk by chunk and compares
 * with what it has. The read is accepted when a pass is bracketed by an
 * unchanged token, or when a whole pass read exactly the data of the pass
 * before (a shifted read differs from the true one wherever the shift
 * moved distinguishable entries; where it moved none the data is true).
 * Otherwise it backs off and tries again, up to the retry budget.
 *
 * Residual risk, documented: a remote read-GUP mapping a huge zero page
 * while another huge zero PMD is zapped in the same window cancels in
 * VmPTE and moves nothing else; and two consecutive passes can only both
 * be shifted identically if the same PMD went unstable at the same point
 * of both walks.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_RETRIES 16

static int vmstat_fd = -1;
static pthread_once_t vmstat_once = PTHREAD_ONCE_INIT;

static void open_vmstat(void)
{
	vmstat_fd = open("/proc/vmstat", O_RDONLY | O_CLOEXEC);
}

static uint64_t num(const char **p)
{
	uint64_t v = 0;

	while (**p == ' ')
		(*p)++;
	while (**p >= '0' && **p <= '9')
		v = v * 10 + (uint64_t)(*(*p)++ - '0');
	return v;
}

static void skip_field(const char **p)
{
	while (**p == ' ')
		(*p)++;
	while (**p && **p != ' ')
		(*p)++;
}

int pm__stat_fields(int stat_fd, uint64_t *faults, uint64_t *start_time)
{
	char buf[1024];
	const char *p;
	int r = pm__slurp(stat_fd, buf, sizeof(buf), true);

	if (r)
		return r;
	/* after the last ')': state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime cutime cstime priority nice
	 * num_threads itrealvalue starttime */
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	for (int i = 0; i < 7; i++)
		skip_field(&p);
	*faults = num(&p);
	skip_field(&p);
	*faults += num(&p);
	for (int i = 0; i < 9; i++)
		skip_field(&p);
	if (start_time)
		*start_time = num(&p);
	return 0;
}

int pm__token(struct pm_handle *h, struct pm__token *t)
{
	char buf[16384]; /* /proc/vmstat is ~5 KiB, its thp_ lines near the end */
	const char *p;
	int r;

	memset(t, 0, sizeof(*t));
	r = pm__stat_fields(h->stat_fd, &t->v[0], NULL);
	if (r)
		return r;
	/* statm: size resident shared */
	r = pm__slurp(h->statm_fd, buf, sizeof(buf), true);
	if (r)
		return r;
	p = buf;
	t->v[1] = num(&p);
	t->v[2] = num(&p);
	t->v[3] = num(&p);
	r = pm__slurp(h->status_fd, buf, sizeof(buf), true);
	if (r)
		return r;
	p = strstr(buf, "\nVmPTE:");
	if (p) {
		p += 7;
		t->v[4] = num(&p);
	}
	pthread_once(&vmstat_once, open_vmstat);
	if (vmstat_fd >= 0 && pm__slurp(vmstat_fd, buf, sizeof(buf), false) == 0) {
		for (p = buf; (p = strstr(p, "\nthp_")) != NULL;) {
			p += 5;
			skip_field(&p);
			t->v[5] += num(&p);
		}
	}
	return 0;
}

static bool token_eq(const struct pm__token *a, const struct pm__token *b)
{
	return !memcmp(a, b, sizeof(*a));
}

int pm__guard_init(struct pm__guard *g, uint64_t read_flags, uint64_t max_retries)
{
	memset(g, 0, sizeof(*g));
	g->active = pm__guard_wanted(read_flags);
	g->best_effort = read_flags & PM_READ_F_BEST_EFFORT;
	g->max_retries = max_retries ? max_retries : DEFAULT_RETRIES;
	if (g->active) {
		g->scratch = malloc(PM__GUARD_CHUNK * sizeof(uint64_t));
		if (!g->scratch)
			return -ENOMEM;
	}
	return 0;
}

void pm__guard_fini(struct pm__guard *g)
{
	free(g->scratch);
	g->scratch = NULL;
}

/* Back off so that the change that disturbed the read can finish: 10 us
 * doubling to 1 ms. */
static void backoff(uint64_t attempt)
{
	long ns = 10000L << (attempt < 7 ? attempt : 7);
	struct timespec ts = { 0, ns > 1000000L ? 1000000L : ns };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int pm__span_read(struct pm__guard *g, struct pm_handle *h, uint64_t va, uint64_t *dst,
		  size_t n)
{
	uint64_t off = (va >> pm__kernel()->page_shift) * 8;

	if (!g->verifying)
		return pm__pread_full(h->pagemap_fd, dst, n * 8, off, &g->kernel_reads);
	for (size_t i = 0; i < n; i += PM__GUARD_CHUNK) {
		size_t m = n - i < PM__GUARD_CHUNK ? n - i : PM__GUARD_CHUNK;
		int r = pm__pread_full(h->pagemap_fd, g->scratch, m * 8, off + i * 8,
				       &g->kernel_reads);

		if (r)
			return r;
		if (memcmp(g->scratch, dst + i, m * 8)) {
			memcpy(dst + i, g->scratch, m * 8);
			g->changed = true;
		}
	}
	return 0;
}

void pm__span_zero(struct pm__guard *g, uint64_t *dst, size_t n)
{
	if (g->verifying) {
		for (size_t i = 0; i < n; i++) {
			if (dst[i]) {
				memset(dst, 0, n * 8);
				g->changed = true;
				break;
			}
		}
		return;
	}
	memset(dst, 0, n * 8);
}

int pm__guarded(struct pm__guard *g, struct pm_handle *h,
		int (*pass)(void *arg), void *arg)
{
	struct pm__token before, after;
	int r;

	if (!g->active)
		return pass(arg);
	r = pm__token(h, &before);
	if (r)
		return r;
	r = pass(arg);
	if (r)
		return r;
	r = pm__token(h, &after);
	if (r)
		return r;
	if (token_eq(&before, &after))
		return 0;
	g->verifying = true;
	for (uint64_t attempt = 0;; attempt++) {
		g->retries++;
		if (attempt)
			backoff(attempt - 1);
		g->changed = false;
		r = pm__token(h, &before);
		if (!r)
			r = pass(arg);
		if (!r)
			r = pm__token(h, &after);
		if (r)
			return r;
		if (token_eq(&before, &after) || !g->changed)
			return 0;
		if (attempt + 1 >= g->max_retries) {
			if (!g->best_effort)
				return -EAGAIN;
			g->unstable = true;
			return 0;
		}
	}
}
