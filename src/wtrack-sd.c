/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write tracking with soft-dirty, for any process (kernels where the probe
 * proved soft-dirty works: writing clear_refs "succeeds" without it).
 *
 * Writing "4" to /proc/PID/clear_refs clears the soft-dirty bit of every
 * page of the process and write-protects it; the next write faults and
 * sets the bit (pagemap bit 55) again. What the bit alone gets wrong, and
 * what is done about it:
 *   - clear_refs resets the whole process, not a range. The tracker keeps
 *     its own bitmap of pages written and not yet reported, absorbs the
 *     kernel's bits into it before every clear, and a RESET collect resets
 *     only the pages it reports; the rest stay written.
 *   - Reading the bits and clearing them are two steps: a write to a clean
 *     page in between would be cleared unseen. Such a write faults, so the
 *     target's counters are compared across the read and the clear (see
 *     sd_token); if they moved, every populated page counts as written (an
 *     over-report, never a loss).
 *   - A zap (MADV_DONTNEED) leaves no bit: a page populated at the last
 *     reset and empty now counts as written.
 * With PM_WT_F_STOP the target is stopped (stop.c) from a token that
 * proves the bits read are still current (else they are read again,
 * stopped) to after the clear, so nothing of its own can fault in between
 * and a reset collect reports what was written, not every populated page.
 * Over-reports that come from the kernel are passed on as they are: a new
 * or grown VMA has VM_SOFTDIRTY (all its pages and holes read dirty, and a
 * merge spreads that to its neighbour), a PMD-mapped THP is dirty as a
 * whole, and pages a COW mapping may have pinned are never cleared.
 */
#include "stop.h"
#include "wtrack.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the process-wide registry: one soft-dirty tracker per process ---- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pm_wtrack *registry;

static int reg_add(struct pm_wtrack *wt)
{
	int r = 0;

	pthread_mutex_lock(&reg_lock);
	for (struct pm_wtrack *p = registry; p && !r; p = p->sd_next)
		if (p->sd_key[0] == wt->sd_key[0] && p->sd_key[1] == wt->sd_key[1])
			r = -EBUSY;
	if (!r) {
		wt->sd_next = registry;
		registry = wt;
	}
	pthread_mutex_unlock(&reg_lock);
	return r;
}

static void reg_del(struct pm_wtrack *wt)
{
	pthread_mutex_lock(&reg_lock);
	for (struct pm_wtrack **pp = &registry; *pp; pp = &(*pp)->sd_next) {
		if (*pp == wt) {
			*pp = wt->sd_next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
}

/* ---- bitmaps ---- */

static inline bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static inline void bit_put(uint64_t *b, uint64_t i, bool v)
{
	b[i / 64] = (b[i / 64] & ~(1ULL << (i % 64))) | ((uint64_t)v << (i % 64));
}

/* The first index in [i, end) whose bit is @v, or end. */
static uint64_t bit_next(const uint64_t *b, uint64_t i, uint64_t end, bool v)
{
	while (i < end) {
		uint64_t w = (v ? b[i / 64] : ~b[i / 64]) >> (i % 64);

		if (w) {
			i += (uint64_t)__builtin_ctzll(w);
			return i < end ? i : end;
		}
		i = (i | 63) + 1;
	}
	return end;
}

/* The bitmap index of a tracked address. */
static uint64_t page_index(const struct pm_wtrack *wt, uint64_t va)
{
	size_t lo = 0, hi = wt->nranges;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (wt->ranges[mid].start <= va)
			lo = mid;
		else
			hi = mid;
	}
	return wt->base[lo] + ((va - wt->ranges[lo].start) >> pm__kernel()->page_shift);
}

/* ---- the kernel's side ---- */

/*
 * What moves when the read-and-clear window can have hidden a write: a
 * fault of the target (a write to a clean page always faults) and, for
 * another process, its RSS, VM size and page tables as well (memory put
 * into it without a fault of its own, e.g. UFFDIO_COPY by a monitor).
 * For the calling process only the other threads' faults count: this
 * thread is in here, and its own allocations move the rest. Returns 1
 * when this thread faulted while the counters were read (the token cannot
 * be trusted), else 0, or -errno.
 *
 * No wait for changes in flight (pm__token_after) before a closing token:
 * a collect's follows clear_refs, whose mmap write lock (and per-VMA write
 * locks) waits for every fault and madvise of the target in flight, their
 * counts included; a reset's follows a walk whose reads, before 6.5, the
 * read guard certified with settled tokens of its own.
 */
static int sd_token(struct pm_wtrack *wt, struct pm__token *t)
{
	uint64_t mine[2], all;
	int fd, r;

	if (!wt->h->self) /* system-wide THP events say nothing about this target */
		return pm__token_own(wt->h, t);
	memset(t, 0, sizeof(*t));
	fd = open("/proc/thread-self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* the first read writes the stack the bracketed ones use */
	r = pm__stat_fields(fd, &mine[0], NULL);
	if (!r)
		r = pm__stat_fields(fd, &mine[0], NULL);
	if (!r)
		r = pm__stat_fields(wt->h->stat_fd, &all, NULL);
	if (!r)
		r = pm__stat_fields(fd, &mine[1], NULL);
	close(fd);
	if (r)
		return r;
	t->v[0] = all - mine[0];
	return mine[0] != mine[1];
}

static int clear_refs(struct pm_wtrack *wt)
{
	long w = PM__NOINTR(write(wt->clear_fd, "4", 1));

	return w < 0 ? (int)w : 0;
}

enum walk_mode {
	ABSORB,        /* soft-dirty, or zapped since the reset -> written */
	ABSORB_POP,    /* ABSORB, and remember what is populated now */
	POP_ONLY,      /* remember what is populated now */
	MARK_POPULATED /* every populated page -> written */
};

/* Read the entries of the sub-ranges and apply @mode. A read the guard
 * could not certify (pre-6.5 kernels, a target faulting all the time) may
 * be shifted, so nothing in it is trusted: its pages count as written and
 * populated. 1 when that happened, else 0, or -errno. */
static int walk(struct pm_wtrack *wt, const struct pm_range *r, size_t n, enum walk_mode mode)
{
	const unsigned shift = pm__kernel()->page_shift;
	PM_OPTS(pm_read_opts, ro, .flags = PM_READ_F_BEST_EFFORT);
	int unstable = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t idx = page_index(wt, r[i].start);

		for (uint64_t va = r[i].start; va < r[i].end;) {
			uint64_t cnt = (r[i].end - va) >> shift;
			PM_OPTS(pm_read_info, info);
			long got;
			bool trust;

			if (cnt > PM__WT_CHUNK)
				cnt = PM__WT_CHUNK;
			got = pm__read(wt->h, va, va + (cnt << shift), wt->entries, &ro, &info,
				       wt->vc);
			if (got < 0)
				return (int)got;
			trust = !(info.flags & PM_READ_INFO_UNSTABLE);
			unstable |= !trust;
			for (uint64_t j = 0; j < cnt; j++, idx++) {
				/* untrusted: taken as populated and dirty */
				uint64_t e = trust ? wt->entries[j]
						   : PM_ENTRY_PRESENT | PM_ENTRY_SOFT_DIRTY;
				bool pop = (e & (PM_ENTRY_PRESENT | PM_ENTRY_SWAP)) &&
					   !(e & PM_ENTRY_GUARD);

				if ((mode == ABSORB || mode == ABSORB_POP) &&
				    ((e & PM_ENTRY_SOFT_DIRTY) || (!pop && bit(wt->populated, idx))))
					bit_put(wt->written, idx, true);
				if (mode == ABSORB_POP || mode == POP_ONLY)
					bit_put(wt->populated, idx, pop);
				if (mode == MARK_POPULATED && pop)
					bit_put(wt->written, idx, true);
			}
			va += cnt << shift;
		}
	}
	return unstable;
}

/* Report the written pages of the sub-ranges; with @reset, forget those
 * reported. */
static void emit(struct pm_wtrack *wt, const struct pm_range *r, size_t n,
		 struct pm__scan_out *o, bool reset)
{
	const unsigned shift = pm__kernel()->page_shift;

	for (size_t i = 0; i < n; i++) {
		uint64_t first = page_index(wt, r[i].start);
		uint64_t end = first + ((r[i].end - r[i].start) >> shift);

		for (uint64_t s = bit_next(wt->written, first, end, true); s < end;) {
			uint64_t e = bit_next(wt->written, s, end, false);

			if (!pm__out_add(o, r[i].start + ((s - first) << shift),
					 r[i].start + ((e - first) << shift), PM_CAT_WRITTEN))
				return;
			for (uint64_t j = s; reset && j < e; j++)
				bit_put(wt->written, j, false);
			s = bit_next(wt->written, e, end, true);
		}
	}
}

static size_t words(const struct pm_wtrack *wt)
{
	return (size_t)((wt->npages + 63) / 64);
}

/* ---- stopping the target (PM_WT_F_STOP) ---- */

/* Stop the target if the tracker was asked to (*st stays NULL if not). */
static int hold(struct pm_wtrack *wt, struct pm__stop **st, uint64_t *t0)
{
	*st = NULL;
	*t0 = pm__mono_ns();
	return wt->stop ? pm__stop_begin(wt->h, st) : 0;
}

/* Resume it, and account the time it was held. Returns @err, or the
 * resume's error when @err is not one. */
static int release(struct pm_wtrack *wt, struct pm__stop *st, uint64_t t0, int err)
{
	uint64_t ns;
	int r;

	if (!st)
		return err;
	r = pm__stop_end(st);
	ns = pm__mono_ns() - t0;
	wt->stats.stops++;
	wt->stats.stop_ns_last = ns;
	wt->stats.stop_ns_total += ns;
	if (ns > wt->stats.stop_ns_max)
		wt->stats.stop_ns_max = ns;
	return err < 0 || !r ? err : r;
}

/* ---- the method ---- */

/* The reset's tries, with the target held if asked. */
static int reset_tries(struct pm_wtrack *wt)
{
	/* a plain reset forgets everything, so a disturbed one can simply be
	 * done again */
	for (int tries = 0; tries < 16; tries++) {
		struct pm__token t0, t1;
		int moved = sd_token(wt, &t0), r;

		if (moved < 0)
			return moved;
		r = clear_refs(wt);
		if (!r)
			r = walk(wt, wt->ranges, wt->nranges, POP_ONLY);
		if (r < 0)
			return r;
		moved |= r;
		r = sd_token(wt, &t1);
		if (r < 0)
			return r;
		memset(wt->written, 0, words(wt) * 8);
		if (!moved && !r && !memcmp(&t0, &t1, sizeof(t0)))
			return 0;
	}
	/* never quiet: every page not populated now may have been zapped */
	memset(wt->populated, 0xff, words(wt) * 8);
	return 0;
}

int pm__wt_sd_reset(struct pm_wtrack *wt)
{
	struct pm__stop *st;
	uint64_t t0;
	int r = hold(wt, &st, &t0);

	if (r)
		return r;
	return release(wt, st, t0, reset_tries(wt));
}

/* Absorb every tracked page's bit, then clear them all: 1 when a write in
 * between may have been cleared unseen, 0, or -errno. With the stop, the
 * bits are read before the target is held and read again, held, only if
 * it faulted since the read began: a target that re-dirties the same
 * pages faults once per page after a clear, and then no more, so most
 * holds cover just the token and the clear. */
static int read_and_clear(struct pm_wtrack *wt)
{
	struct pm__token t0, t1;
	struct pm__stop *st = NULL;
	uint64_t ns0 = 0;
	int moved, err;

	moved = sd_token(wt, &t0);
	if (moved < 0)
		return moved;
	err = walk(wt, wt->ranges, wt->nranges, ABSORB_POP);
	if (err < 0)
		return err;
	moved |= err;
	if (wt->stop) {
		err = hold(wt, &st, &ns0);
		if (err)
			return err;
		err = sd_token(wt, &t1);
		if (!err && (moved || memcmp(&t0, &t1, sizeof(t0)))) {
			/* absorbing twice only adds what changed since */
			t0 = t1;
			err = walk(wt, wt->ranges, wt->nranges, ABSORB_POP);
			moved = err > 0;
		}
		if (err < 0)
			return release(wt, st, ns0, err);
	}
	err = clear_refs(wt);
	if (!err)
		err = sd_token(wt, &t1);
	err = release(wt, st, ns0, err);
	if (err < 0)
		return err;
	return moved || err || memcmp(&t0, &t1, sizeof(t0));
}

int pm__wt_sd_collect(struct pm_wtrack *wt, const struct pm_range *r, size_t n,
		      struct pm__scan_out *o, bool reset)
{
	int err;

	if (!reset) {
		err = walk(wt, r, n, ABSORB);
		if (err < 0)
			return err;
		emit(wt, r, n, o, false);
		return 0;
	}
	/* the clear resets every tracked page (all checked mapped): absorb
	 * them all first */
	err = read_and_clear(wt);
	if (err < 0)
		return err;
	if (err) {
		/* a write between the read and the clear may have been
		 * cleared unseen: count every populated page as written, and
		 * every empty one as possibly zapped at the next collect */
		wt->stats.widened++;
		memset(wt->populated, 0xff, words(wt) * 8);
		err = walk(wt, wt->ranges, wt->nranges, MARK_POPULATED);
		if (err < 0) {
			memset(wt->written, 0xff, words(wt) * 8); /* cannot tell: all */
			return err;
		}
	}
	emit(wt, r, n, o, true);
	return 0;
}

const char *pm__wt_sd_why_not(void)
{
	if (pm__feature(PM_FEAT_SOFT_DIRTY) != 1)
		return "the bit did not survive a clear_refs round trip (needs "
		       "CONFIG_MEM_SOFT_DIRTY: x86, powerpc, s390)";
	return NULL;
}

int pm__wt_sd_start(struct pm_wtrack *wt)
{
	uint64_t faults, idx = 0;
	int r;

	if (pm__wt_sd_why_not())
		return -EOPNOTSUPP;
	wt->sd_key[0] = (uint64_t)pm_pid(wt->h);
	r = pm__stat_fields(wt->h->stat_fd, &faults, &wt->sd_key[1]);
	if (r)
		return r;
	/* refuse before allocating: a large allocation is a new mapping,
	 * which can merge with tracked memory and mark it all dirty */
	r = reg_add(wt);
	if (r)
		return r;
	wt->base = malloc(wt->nranges * sizeof(*wt->base));
	wt->written = calloc(words(wt), 8);
	wt->populated = calloc(words(wt), 8);
	wt->entries = malloc(PM__WT_CHUNK * sizeof(uint64_t));
	if (!wt->base || !wt->written || !wt->populated || !wt->entries) {
		pm__wt_sd_stop(wt);
		return -ENOMEM;
	}
	for (size_t i = 0; i < wt->nranges; i++) {
		wt->base[i] = idx;
		idx += (wt->ranges[i].end - wt->ranges[i].start) >> pm__kernel()->page_shift;
	}
	wt->clear_fd = openat(wt->h->dirfd, "clear_refs", O_WRONLY | O_CLOEXEC);
	r = wt->clear_fd < 0 ? -errno : pm__wt_sd_reset(wt);
	if (r)
		pm__wt_sd_stop(wt);
	return r;
}

void pm__wt_sd_stop(struct pm_wtrack *wt)
{
	reg_del(wt);
	if (wt->clear_fd >= 0)
		close(wt->clear_fd);
	wt->clear_fd = -1;
	free(wt->base);
	free(wt->written);
	free(wt->populated);
	free(wt->entries);
	wt->base = wt->written = wt->populated = wt->entries = NULL;
}
