/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write tracking under concurrency: no write lost while other threads
 * write and this one collects and resets, with userfaultfd and with
 * soft-dirty on the calling process.
 */
#include "wtrack-common.h"
#include "internal.h"
#include "compat/uapi.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * No lost writes under concurrency (after the kernel selftest's transact
 * test). Writer threads store unique, increasing sequence numbers into
 * random pages while this thread collects-and-resets in a loop. Every
 * write w (sequence s, page p) must be reported by a collect that ended
 * after s was taken and that began no later than the first collect
 * started after w completed. Reports that no write explains are counted.
 */
#define CC_PAGES   2048
#define CC_WRITERS 3
#define CC_MAX_COLLECTS 200000

struct cc_write {
	uint64_t seq;
	uint32_t page;
};

static uint64_t cc_writes;      /* per writer */
static uint64_t cc_pause_every; /* writes between 1 ms pauses (0: none) */

static struct {
	char *mem;
	_Atomic uint64_t next_seq;
	_Atomic uint64_t done[CC_WRITERS]; /* writes completed per writer */
	struct cc_write *log[CC_WRITERS];
	atomic_bool stop;
	_Atomic uint64_t collects; /* collects completed so far */
} cc;

/* Collects a writer waits for halfway: on a loaded machine the writers
 * could otherwise finish before the collector ran more than once (CI saw
 * 2 collects), and the test would not test concurrency. */
#define CC_MIN_COLLECTS 11

static void *cc_writer(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t seed = 1000 + (uint64_t)id;

	for (uint64_t i = 0; i < cc_writes; i++) {
		uint32_t pg = (uint32_t)(rnd(&seed) % CC_PAGES);
		uint64_t s = atomic_fetch_add(&cc.next_seq, 1);

		*(volatile uint64_t *)(cc.mem + (size_t)pg * ps + 8 * (size_t)id) = s;
		cc.log[id][i].seq = s;
		cc.log[id][i].page = pg;
		atomic_store_explicit(&cc.done[id], i + 1, memory_order_release);
		if (cc_pause_every && i % cc_pause_every == 0)
			usleep(1000);
		while (i == cc_writes / 2 && atomic_load(&cc.collects) < CC_MIN_COLLECTS)
			usleep(100);
	}
	return NULL;
}

/* The first index in sorted a[0..n) with a[i] >= v. */
static size_t lower_bound(const uint64_t *a, size_t n, uint64_t v)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (a[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void concurrent(int method, uint64_t writes, uint64_t pause_every)
{
	struct collect_rec {
		uint64_t done_before[CC_WRITERS]; /* writes complete when it began */
		uint64_t seq_before, seq_after;   /* sequence numbers taken then */
	} *rec = calloc(CC_MAX_COLLECTS, sizeof(*rec));
	struct pm_region *v = malloc(CC_PAGES * sizeof(*v));
	/* per page: the collects that reported it, and the writes to it */
	uint64_t **rep = calloc(CC_PAGES, sizeof(*rep));
	struct cc_write **wr = calloc(CC_PAGES, sizeof(*wr)); /* .page: the writer's index */
	size_t *nrep = calloc(CC_PAGES, sizeof(size_t)), *caprep = calloc(CC_PAGES, sizeof(size_t));
	size_t *nwr = calloc(CC_PAGES, sizeof(size_t));
	uint64_t *seq_after = malloc(CC_MAX_COLLECTS * sizeof(uint64_t));
	uint64_t (*copy)[CC_WRITERS] = calloc(CC_PAGES, sizeof(*copy)); /* an incremental copy */
	pthread_t th[CC_WRITERS];
	struct pm_handle *h;
	struct pm_wtrack *wt;
	uint64_t a, b, lost = 0, extra = 0, total = 0, stale = 0;
	size_t nc = 0;
	bool running = true;

	cc_writes = writes;
	cc_pause_every = pause_every;
	atomic_store(&cc.collects, 0);
	ck_assert(rec && v && rep && wr && nrep && caprep && nwr && seq_after && copy);
	cc.mem = xmap(NULL, CC_PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	a = (uintptr_t)cc.mem;
	b = a + CC_PAGES * ps;
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	wt = track(h, cc.mem, CC_PAGES, method);
	for (int i = 0; i < CC_WRITERS; i++) {
		cc.log[i] = calloc(cc_writes, sizeof(struct cc_write));
		ck_assert_ptr_nonnull(cc.log[i]);
		ck_assert_int_eq(pthread_create(&th[i], NULL, cc_writer, (void *)(intptr_t)i), 0);
	}
	while (running) {
		uint64_t we;
		long r;

		ck_assert_uint_lt(nc, CC_MAX_COLLECTS);
		running = false;
		for (int i = 0; i < CC_WRITERS; i++) {
			rec[nc].done_before[i] = atomic_load_explicit(&cc.done[i], memory_order_acquire);
			running |= rec[nc].done_before[i] < cc_writes;
		}
		rec[nc].seq_before = atomic_load(&cc.next_seq);
		/* small vectors now and then: continuation must lose nothing */
		for (uint64_t cur = a; cur < b; cur = we) {
			r = pm_wtrack_collect(wt, cur, b, v, nc % 7 ? CC_PAGES : 3, PM_WT_COLLECT_RESET, &we);
			ck_assert_int_ge(r, 0);
			for (long k = 0; k < r; k++)
				for (uint64_t x = v[k].start; x < v[k].end; x += ps) {
					size_t pg = (x - a) / ps;

					if (nrep[pg] == caprep[pg]) {
						caprep[pg] = caprep[pg] ? 2 * caprep[pg] : 64;
						rep[pg] = realloc(rep[pg], caprep[pg] * sizeof(uint64_t));
						ck_assert_ptr_nonnull(rep[pg]);
					}
					rep[pg][nrep[pg]++] = nc;
					total++;
					memcpy(copy[pg], (void *)x, sizeof(copy[pg]));
				}
		}
		rec[nc].seq_after = atomic_load(&cc.next_seq);
		seq_after[nc] = rec[nc].seq_after;
		nc++;
		atomic_store(&cc.collects, nc);
	}
	for (int i = 0; i < CC_WRITERS; i++)
		pthread_join(th[i], NULL);
	/* the last collect began after every write: the copy must be exact */
	for (size_t pg = 0; pg < CC_PAGES; pg++)
		stale += memcmp(copy[pg], cc.mem + pg * ps, sizeof(copy[pg])) != 0;

	for (int w = 0; w < CC_WRITERS; w++)
		for (uint64_t i = 0; i < cc_writes; i++)
			nwr[cc.log[w][i].page]++;
	for (size_t pg = 0; pg < CC_PAGES; pg++) {
		wr[pg] = malloc((nwr[pg] + 1) * sizeof(struct cc_write));
		ck_assert_ptr_nonnull(wr[pg]);
		nwr[pg] = 0;
	}
	for (int w = 0; w < CC_WRITERS; w++) {
		size_t k = 0;

		for (uint64_t i = 0; i < cc_writes; i++) {
			const struct cc_write *x = &cc.log[w][i];
			size_t j0 = lower_bound(seq_after, nc, x->seq + 1), f;

			wr[x->page][nwr[x->page]++] =
				(struct cc_write){ .seq = x->seq, .page = (uint32_t)(w * cc_writes + i) };
			/* k: the first collect that began after this write completed */
			while (k < nc && rec[k].done_before[w] < i + 1)
				k++;
			/* some collect in [j0, k] must have reported the page */
			f = lower_bound(rep[x->page], nrep[x->page], j0);
			if (f == nrep[x->page] || rep[x->page][f] > k)
				lost++;
		}
	}
	/* extras: reports no write explains (one taken before the report's
	 * collect ended and not completed before the page's previous report
	 * began) */
	for (size_t pg = 0; pg < CC_PAGES; pg++) {
		for (size_t r = 0; r < nrep[pg]; r++) {
			const struct collect_rec *prev = r ? &rec[rep[pg][r - 1]] : NULL;
			bool explained = false;

			for (size_t i = 0; i < nwr[pg] && !explained; i++) {
				uint32_t w = wr[pg][i].page / cc_writes, idx = wr[pg][i].page % cc_writes;

				explained = wr[pg][i].seq < rec[rep[pg][r]].seq_after &&
					    (!prev || idx + 1 > prev->done_before[w]);
			}
			extra += !explained;
		}
		free(wr[pg]);
		free(rep[pg]);
	}
	fprintf(stderr,
		"concurrency (%s): %d writers x %" PRIu64 " writes on %d pages, %zu collects, %" PRIu64
		" pages reported, %" PRIu64 " unexplained by a write, %" PRIu64
		" writes lost, %" PRIu64 " pages of the copy stale\n",
		method == PM_WT_METHOD_UFFD ? "uffd" : "soft-dirty", CC_WRITERS, cc_writes, CC_PAGES, nc,
		total, extra, lost, stale);
	ck_assert_uint_eq(lost, 0);
	ck_assert_uint_eq(stale, 0);
	ck_assert_uint_ge(nc, CC_MIN_COLLECTS);
	for (int i = 0; i < CC_WRITERS; i++)
		free(cc.log[i]);
	pm_wtrack_free(wt);
	pm_close(h);
	munmap(cc.mem, CC_PAGES * ps);
	free(rec);
	free(v);
	free(rep);
	free(wr);
	free(nrep);
	free(caprep);
	free(nwr);
	free(seq_after);
	free(copy);
}

START_TEST(uffd_concurrent_no_lost_writes)
{
	concurrent(PM_WT_METHOD_UFFD, 150000, 0);
}
END_TEST

/* The same on soft-dirty, for the calling process: the other threads'
 * faults during a reset widen it, this thread's own never hide one. */
START_TEST(sd_self_concurrent_no_lost_writes)
{
	/* collects are slow here (every page's entry read, the process
	 * cleared): writers pause so that many collects see them */
	concurrent(PM_WT_METHOD_SOFT_DIRTY, 40000, 50);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wtrack-concurrent");
	TCase *t = tcase_create("wtrack-concurrent");

	wtrack_test_init();
	tcase_set_timeout(t, 300);
	add_test_if(t, uffd_concurrent_no_lost_writes, have_uffd, NO_UFFD);
	add_test_if(t, sd_self_concurrent_no_lost_writes, have_sd, NO_SD);
	suite_add_tcase(s, t);
	return run_suite(s);
}
