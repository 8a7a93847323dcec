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
 *   - a zap of an anonymous, file or shmem THP: RSS (status VmRSS,
 *     RssFile, RssShmem) and, for anonymous and huge-zero PMDs, the
 *     deposited page table (VmPTE);
 *   - any PMD split (huge zero page, file, shmem, anon, reclaim): the
 *     system-wide thp_split_pmd, and THP allocations by someone else's
 *     fault on the target (GUP) thp_fault_alloc (every thp_* vmstat event
 *     is summed).
 * A token of these taken before and after the reads certifies them when
 * it is unchanged. Evidence from the 6.1 VM: fault counters alone missed
 * every shift, counters plus RSS missed huge-zero-page zaps and splits;
 * VmPTE and thp_split_pmd close those.
 *
 * When the token moved (a "trip"), nothing of that pass is certified: the
 * range is read again in certifying passes, every kernel read cut at PMD
 * boundaries, pieces certified by brackets of tokens that did not move
 * (many pieces per bracket first, then fewer, down to one). Data that two
 * passes read alike is not certified by that: under huge-zero-page churn
 * reader and churner fall into step and two passes can skip the same PMD
 * the same way (issue 10). What is never certified is reported uncertain
 * (best effort) or fails the read with -EAGAIN.
 *
 * Residual risk (doc/accuracy.md): in another process, a zap the read saw
 * cancelled in the counters by a huge-PMD fault that had not counted
 * itself yet; changes that take no lock of the target's mm and cancel;
 * where no grace period was waited for, a zap by someone other than the
 * target's threads counted just after the read.
 */
#include "internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_RETRIES 16

static _Atomic int vmstat_fd = -1;

/* /proc/vmstat, opened by the first token and kept; an open that failed
 * (no free fd, say) is tried again by the next token, never skipped: a
 * token without the THP events would not see PMD splits. */
static int vmstat(void)
{
	int fd = atomic_load_explicit(&vmstat_fd, memory_order_acquire), none = -1;

	if (fd >= 0)
		return fd;
	fd = open("/proc/vmstat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!atomic_compare_exchange_strong(&vmstat_fd, &none, fd)) {
		close(fd); /* another thread's open won */
		fd = none;
	}
	return fd;
}

static uint64_t num(const char **p)
{
	uint64_t v = 0;

	while (**p == ' ' || **p == '\t') /* status pads with a tab, then spaces */
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

/* From the text of a stat file: minflt + majflt, the number of threads,
 * and (optional) the start time and whether the process has one thread,
 * not running. */
static int stat_fields(const char *buf, uint64_t *faults, uint64_t *start_time, bool *asleep,
		       uint64_t *threads)
{
	/* after the last ')': state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime cutime cstime priority nice
	 * num_threads itrealvalue starttime */
	const char *p = strrchr(buf, ')');
	bool running;

	if (!p || p[1] != ' ')
		return -EIO;
	running = p[2] == 'R';
	p++;
	for (int i = 0; i < 7; i++)
		skip_field(&p);
	*faults = num(&p);
	skip_field(&p);
	*faults += num(&p);
	for (int i = 0; i < 7; i++)
		skip_field(&p);
	*threads = num(&p);
	if (asleep)
		*asleep = !running && *threads == 1;
	skip_field(&p);
	if (start_time)
		*start_time = num(&p);
	return 0;
}

int pm__stat_faults(const char *stat, uint64_t *faults)
{
	uint64_t threads;

	return stat_fields(stat, faults, NULL, NULL, &threads);
}

int pm__stat_fields(int stat_fd, uint64_t *faults, uint64_t *start_time)
{
	char buf[1024];
	int r = pm__slurp(stat_fd, buf, sizeof(buf), true);

	uint64_t threads;

	return r ? r : stat_fields(buf, faults, start_time, NULL, &threads);
}

/* The target's counters in /proc/PID/status and the token slot each adds
 * to: statm's size, resident and shared (RssFile + RssShmem, 4.5+), and
 * VmPTE. A required one missing fails the token: a counter read as 0
 * would never move. */
static const struct {
	const char *name;
	unsigned slot;
	bool required;
} status_field[] = {
	{ "\nVmSize:", 1, true },    { "\nVmRSS:", 2, true }, { "\nRssFile:", 3, false },
	{ "\nRssShmem:", 3, false }, { "\nVmPTE:", 4, true },
};

/* The counters in a status text into t->v[1..4]: 0, or 1 when a
 * required one is not in it. */
static int status_parse(const char *text, struct pm__token *t)
{
	memset(&t->v[1], 0, 4 * sizeof(t->v[0]));
	for (size_t i = 0; i < sizeof(status_field) / sizeof(status_field[0]); i++) {
		const char *p = strstr(text, status_field[i].name);

		if (p) {
			p += strlen(status_field[i].name);
			t->v[status_field[i].slot] += num(&p);
		} else if (status_field[i].required) {
			return 1;
		}
	}
	return 0;
}

/* The status text comes before its memory counters with the Groups line,
 * which may list up to 65,536 groups: read into bigger buffers until the
 * whole text fits (a read that filled the buffer may have cut it). One
 * read normally returns it whole; where a counter is missing after one,
 * it is read on to its end before that counts as missing. */
#define STATUS_MAX (4u << 20)

static int status_counters(struct pm_handle *h, struct pm__token *t)
{
	char small[4096], *buf = small, *big = NULL;
	size_t cap = sizeof(small);
	bool to_eof = false;
	int fd = pm__handle_fd(h, &h->status_fd, "status"), r;

	if (fd < 0)
		return fd;
	while ((r = pm__slurp(fd, buf, cap, !to_eof)) == 0) {
		if (strlen(buf) == cap - 1) {
			char *more = cap < STATUS_MAX ? realloc(big, cap * 4) : NULL;

			if (!more) {
				r = cap < STATUS_MAX ? -ENOMEM : -EIO;
				break;
			}
			buf = big = more;
			cap *= 4;
			to_eof = true;
			continue;
		}
		r = status_parse(buf, t);
		if (!r || to_eof)
			break;
		to_eof = true;
	}
	free(big);
	/* no memory lines: the process has no mm any more (it may have had
	 * one when its stat was read just before) */
	return r == 1 ? -ESRCH : r;
}

int pm__token_own(struct pm_handle *h, struct pm__token *t)
{
	char buf[4096];
	int r;

	memset(t, 0, sizeof(*t));
	r = pm__slurp(h->stat_fd, buf, sizeof(buf), true);
	if (!r)
		r = stat_fields(buf, &t->v[0], NULL, &t->asleep, &t->threads);
	if (r)
		return r;
	/* the same text says whether the process is still the one opened:
	 * the identity check after the reads needs no read of its own */
	t->ident = pm__handle_check_stat(h, buf);
	/* status has the counters statm has (VmSize, VmRSS; RssFile and
	 * RssShmem are statm's shared) and VmPTE: one read for all of them */
	return status_counters(h, t);
}

/*
 * The last THP event sum read and when its read began: an opening token
 * takes it instead of reading /proc/vmstat (two thirds of a token's cost)
 * while it is recent. The sum only grows, so any sum read before a
 * bracket's reads opens a wider bracket, never a blind one; closing
 * tokens always read it afresh. Recent only: a split anywhere on the
 * machine in between moves the bracket, a likely trip with a stale sum.
 * The two need not match: any stored sum was read before it is loaded.
 */
#define THP_REUSE_NS 1000000u
static _Atomic uint64_t thp_last, thp_last_ns;

/* The system-wide part: the sum of /proc/vmstat's thp_* events. */
int pm__token_thp(uint64_t *sum)
{
	char buf[16384]; /* /proc/vmstat is ~5 KiB, its thp_ lines near the end */
	const uint64_t t0 = pm__mono_ns();
	const char *p;
	int fd = vmstat(), r;

	*sum = 0;
	if (fd < 0)
		return fd;
	r = pm__slurp(fd, buf, sizeof(buf), false);
	if (r)
		return r == -ESRCH ? -EIO : r; /* empty: not the file we know */
	if (strlen(buf) == sizeof(buf) - 1)
		return -EIO; /* cut: its thp_ lines may be missing (4 KiB on 6.18) */
	for (p = buf; (p = strstr(p, "\nthp_")) != NULL;) {
		p += 5;
		skip_field(&p);
		*sum += num(&p);
	}
	atomic_store(&thp_last, *sum);
	atomic_store(&thp_last_ns, t0);
	return 0;
}

int pm__token(struct pm_handle *h, struct pm__token *t)
{
	int r = pm__token_own(h, t);

	return r ? r : pm__token_thp(&t->v[5]);
}

int pm__token_open(struct pm_handle *h, struct pm__token *t)
{
	const uint64_t at = atomic_load(&thp_last_ns);
	int r = pm__token_own(h, t);

	if (r)
		return r;
	if (at && pm__mono_ns() - at < THP_REUSE_NS) {
		t->v[5] = atomic_load(&thp_last);
		return 0;
	}
	return pm__token_thp(&t->v[5]);
}

/*
 * The counters move just after the page-table change they count (a zap
 * clears the PMD, then frees the deposited table and lowers RSS under the
 * same page-table lock; a fault counts itself after releasing it), so a
 * token read just after a read can miss a change the read saw: a vCPU
 * preempted between the two let shifted reads through in the 6.1 VM, on
 * this process and on another one. Before the token that closes a bracket
 * the changes in flight must have finished:
 *   - this process: an mmap takes its mmap lock for writing, which waits
 *     for every fault and madvise of its threads in flight (the fault's
 *     count included);
 *   - another process: its mmap lock cannot be taken without side effects
 *     (the only remote writer, clear_refs 5, resets its VmHWM and
 *     ru_maxrss), but the clear-then-count of a zap runs under a spinlock,
 *     with preemption off, and membarrier(MEMBARRIER_CMD_GLOBAL) is
 *     synchronize_rcu(), which waits for every such section begun before
 *     it. A fault counts itself after the lock, preemptible: not waited
 *     for (doc/accuracy.md, residual risk);
 *   - where membarrier is refused (nohz_full, a seccomp filter) only a
 *     stopped target is waited for: its threads are not inside a fault or
 *     madvise while it is stopped.
 * 0, or 1 when nothing could be waited for (the bracket is not certified).
 */
static int settle(struct pm_handle *h)
{
	const size_t len = pm__kernel()->page_size;
	void *p;

	if (h->self) {
		p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 1;
		munmap(p, len);
		return 0;
	}
	if (!syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0))
		return 0;
	return atomic_load(&h->stops) ? 0 : 1;
}

/* Whether every thread of h's process was seen not running, each in its
 * own stat file (a thread created since cannot be inside a change the
 * reads saw; one that exited is out of it). */
static bool threads_asleep(struct pm_handle *h)
{
	int fd = openat(h->dirfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *e;
	bool asleep = d != NULL;

	if (!d && fd >= 0)
		close(fd);
	while (asleep && (e = readdir(d)) != NULL) {
		char path[300], buf[1024];
		const char *p;
		int sfd;
		long n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/stat", e->d_name);
		sfd = openat(dirfd(d), path, O_RDONLY | O_CLOEXEC);
		if (sfd < 0) {
			asleep = errno == ENOENT; /* exited meanwhile */
			continue;
		}
		n = PM__NOINTR(pread(sfd, buf, sizeof(buf) - 1, 0));
		close(sfd);
		if (n <= 0) {
			asleep = n == 0 || n == -ESRCH;
			continue;
		}
		buf[n] = '\0';
		p = strrchr(buf, ')');
		asleep = p && p[1] == ' ' && p[2] && p[2] != 'R';
	}
	if (d)
		closedir(d);
	return asleep;
}

/*
 * Another process whose threads are all seen not running needs no wait:
 * none is inside a fault or a zap (a task in a spinlock section, or
 * between a fault's unlock and its count, is running), and every counter
 * of the token is read after those states: its own changes are all
 * counted. One thread: its state is in the token's own stat read; a few:
 * each thread's stat file, then the token again; many: the wait is
 * cheaper.
 */
#define ASLEEP_MAX_THREADS 64

static int token_after(struct pm_handle *h, struct pm__token *t,
		       int (*take)(struct pm_handle *, struct pm__token *))
{
	int r;

	if (!h->self) {
		r = take(h, t);
		if (r || t->asleep)
			return r;
		if (t->threads > 1 && t->threads <= ASLEEP_MAX_THREADS && threads_asleep(h))
			return take(h, t);
	}
	r = settle(h);
	return r ? r : take(h, t);
}

int pm__token_after(struct pm_handle *h, struct pm__token *t)
{
	return token_after(h, t, pm__token);
}

int pm__token_after_own(struct pm_handle *h, struct pm__token *t)
{
	return token_after(h, t, pm__token_own);
}

static bool token_eq(const struct pm__token *a, const struct pm__token *b)
{
	return !memcmp(a->v, b->v, sizeof(a->v));
}

/* A token read after everything the call returns: its identity check
 * stands for the call's. */
static void token_closes(struct pm__guard *g, const struct pm__token *t)
{
	g->ident = t->ident;
	g->ident_fresh = true;
}

int pm__guard_check(const struct pm__guard *g, struct pm_handle *h)
{
	if (g->active && g->ident_fresh && g->ident != 1)
		return g->ident;
	return pm__handle_check(h);
}

bool pm__token_certifies(const struct pm__token *before, const struct pm__token *after)
{
	return token_eq(before, after);
}

int pm__guard_init(struct pm__guard *g, uint64_t read_flags, uint64_t max_retries)
{
	memset(g, 0, sizeof(*g));
	g->active = pm__guard_wanted(read_flags) && !(read_flags & PM__READ_UNGUARDED);
	g->tripped = read_flags & PM__READ_TRIPPED;
	g->best_effort = read_flags & PM_READ_F_BEST_EFFORT;
	g->max_retries = max_retries ? max_retries : DEFAULT_RETRIES;
	return 0;
}

void pm__guard_fini(struct pm__guard *g)
{
	free(g->todo);
	free(g->left);
	free(g->pend);
	g->todo = g->left = g->pend = NULL;
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

/* Append [a, b) to a sorted range list, joining it to the last range
 * when they touch. */
static int add_range(struct pm_range **l, size_t *n, size_t *cap, uint64_t a, uint64_t b)
{
	if (*n && (*l)[*n - 1].end == a) {
		(*l)[*n - 1].end = b;
		return 0;
	}
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct pm_range *x = realloc(*l, c * sizeof(*x));

		if (!x)
			return -ENOMEM;
		*l = x;
		*cap = c;
	}
	(*l)[(*n)++] = (struct pm_range){ a, b };
	return 0;
}

/* [a, b) stays uncertain after this pass. */
static int leave(struct pm__guard *g, uint64_t a, uint64_t b)
{
	return add_range(&g->left, &g->nleft, &g->cap_left, a, b);
}

/* Close the bracket around the pieces read since the last token: they are
 * certified if the token did not move, else left for the next pass. For
 * another process a token that moved already spares the wait. */
static int close_bracket(struct pm__guard *g, struct pm_handle *h)
{
	struct pm__token t;
	bool moved = false;
	int r = 0;

	if (!g->npend)
		return 0;
	if (!h->self) {
		r = pm__token(h, &t);
		moved = !r && !token_eq(&t, &g->last);
	}
	if (!r && !moved && !(!h->self && t.asleep)) {
		r = pm__token_after(h, &t);
		/* nothing could be waited for: not certified, and a fresh
		 * token opens the next bracket */
		if (r == 1) {
			moved = true;
			r = pm__token(h, &t);
		} else if (!r && !token_eq(&t, &g->last)) {
			moved = true;
		}
	}
	if (r)
		return r;
	if (moved) {
		for (size_t i = 0; i < g->npend; i++) {
			r = leave(g, g->pend[i].start, g->pend[i].end);
			if (r)
				return r;
		}
		g->last = t;
	}
	token_closes(g, &t);
	g->npend = 0;
	g->in_bracket = 0;
	return 0;
}

/*
 * A certifying pass reads each piece (at most one PMD) in its own pread.
 * The kernel's skip is confined to the read that meets it, and a read of
 * one PMD goes past that PMD only if it skipped: so a piece is wrong only
 * if a huge PMD it walked vanished while it was read, which moves the
 * target's counters (a zap: RSS or VmPTE; a zap and refault: faults) or
 * the system's THP events (a split): a full token closes each bracket of
 * pieces.
 */
int pm__span_read(struct pm__guard *g, struct pm_handle *h, uint64_t va, uint64_t *dst,
		  size_t n)
{
	const unsigned shift = pm__kernel()->page_shift;
	const uint64_t pmd = pm__pmd_pages() << shift;
	uint64_t off = (va >> shift) * 8;

	g->ident_fresh = false;
	if (!g->pieces)
		return pm__pagemap_pread(h, dst, n * 8, off, &g->kernel_reads);
	while (n) {
		uint64_t to = (va | (pmd - 1)) + 1;
		size_t m = (size_t)((to - va) >> shift);
		int r;

		if (m > n)
			m = n;
		r = pm__pagemap_pread(h, dst, m * 8, off, &g->kernel_reads);
		if (!r)
			r = add_range(&g->pend, &g->npend, &g->cap_pend, va,
				      va + ((uint64_t)m << shift));
		if (!r && ++g->in_bracket >= g->bracket)
			r = close_bracket(g, h);
		if (r)
			return r;
		va += (uint64_t)m << shift;
		off += m * 8;
		dst += m;
		n -= m;
	}
	return 0;
}

void pm__span_zero(struct pm__guard *g, uint64_t *dst, size_t n)
{
	g->ident_fresh = false; /* a gap the VMAs read since the last token show */
	memset(dst, 0, n * 8);
}

static void swap_lists(struct pm__guard *g)
{
	struct pm_range *t = g->todo;
	size_t c = g->cap_todo;

	g->todo = g->left;
	g->cap_todo = g->cap_left;
	g->ntodo = g->nleft;
	g->left = t;
	g->cap_left = c;
	g->nleft = 0;
}

/* One certifying pass over the ranges not yet certified. */
static int certify(struct pm__guard *g, struct pm_handle *h,
		   int (*pass)(void *arg, uint64_t from, uint64_t to), void *arg)
{
	int r = pm__token(h, &g->last);

	for (size_t i = 0; !r && i < g->ntodo; i++)
		r = pass(arg, g->todo[i].start, g->todo[i].end);
	if (!r)
		r = close_bracket(g, h);
	if (r)
		return r;
	swap_lists(g);
	return 0;
}

int pm__guarded(struct pm__guard *g, struct pm_handle *h, uint64_t start, uint64_t end,
		int (*pass)(void *arg, uint64_t from, uint64_t to), void *arg)
{
	struct pm__token before, after;
	int r;

	if (!g->active)
		return pass(arg, start, end);
	if (!g->tripped) {
		r = pm__token_open(h, &before);
		if (r)
			return r;
		r = pass(arg, start, end);
		if (r)
			return r;
		r = pm__token_after(h, &after);
		if (r < 0)
			return r;
		if (!r && token_eq(&before, &after)) {
			token_closes(g, &after);
			return 0;
		}
	}
	/* the token moved: nothing of that pass is certified; certify piece
	 * by piece what is read again */
	g->pieces = true;
	g->nleft = 0;
	r = leave(g, start, end);
	if (r)
		return r;
	swap_lists(g);
	for (uint64_t attempt = 0; g->ntodo; attempt++) {
		if (attempt >= g->max_retries) {
			if (!g->best_effort)
				return -EAGAIN;
			g->unstable = true;
			return 0;
		}
		if (attempt)
			backoff(attempt - 1);
		/* few brackets first (cheap on a quiet target), then smaller
		 * ones, down to one per piece (a churning target) */
		g->bracket = attempt < 3 ? (size_t)4096 >> (4 * attempt) : 1;
		g->retries++;
		r = certify(g, h, pass, arg);
		if (r)
			return r;
	}
	return 0;
}

void pm__guard_report(const struct pm__guard *g, struct pm_read_info *info)
{
	const size_t need = offsetof(struct pm_read_info, uncertain_count) + sizeof(uint64_t);
	size_t n;

	if (!info || info->size < need)
		return;
	n = g->unstable ? g->ntodo : 0;
	info->uncertain_count = n;
	if (n && info->uncertain && info->uncertain_cap) /* no list: todo is NULL */
		memcpy((void *)(uintptr_t)info->uncertain, g->todo,
		       (n < info->uncertain_cap ? n : info->uncertain_cap) * sizeof(*g->todo));
}
