/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The io_uring backend of pm_batch.
 *
 * Every read is planned exactly as pm_read plans it (gaps zero-filled,
 * small mappings joined); its spans are cut into the chunks the sync
 * backend reads too (pm__batch_chunks), so that several io-wq workers can
 * share a large one (procfs reads are never async: io_uring punts each to
 * a worker). Chunks go out in waves of at most
 * DEPTH, on registered files; every completion is checked: a short read
 * is continued, -EINTR/-EAGAIN/-ECANCELED are resubmitted (bounded), 0 is
 * EOF (the target's exit, or the rest above its address-space top:
 * pm__pagemap_eof), anything else fails that read only. The CQ
 * (twice the SQ) cannot overflow with at most DEPTH in flight, and nothing
 * is in flight when this returns (unless waiting for it kept failing: the
 * run then fails, see drain). A failed submit discards the ring: requests
 * the kernel did not take stay in it.
 *
 * Groups of consecutive reads on one handle are opened and closed by the
 * code the sync backend uses (pm__batch_begin, _close, _settle): where the
 * guard is active, a token is taken before the group is planned and after
 * the whole batch completes; if it moved, each of its reads is certified
 * again piece by piece on its own (pm_read's certifying passes).
 */
#include "config.h"
#include "internal.h"
#include "batch.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if HAVE_LIBURING
#include <liburing.h>

static int uring_init(unsigned entries, void *ring, unsigned flags)
{
	return io_uring_queue_init(entries, ring, flags);
}

static int uring_submit_and_wait(void *ring, unsigned wait_nr)
{
	return io_uring_submit_and_wait(ring, wait_nr);
}

static int uring_wait_cqe(void *ring, void *cqe)
{
	return io_uring_wait_cqe(ring, cqe);
}

struct pm__uringops pm__uring_sys = {
	.init = uring_init,
	.submit_and_wait = uring_submit_and_wait,
	.wait_cqe = uring_wait_cqe,
};

#define DEPTH 64
#define MAX_RESUBMITS 64

struct chunk {
	uint32_t read;
	int file;   /* index in the registered files */
	uint64_t off;
	char *dst;
	size_t len;
	uint32_t resubmits;
};

struct plan {
	struct chunk *c;
	size_t n, cap;
	uint32_t read;
	int file;
	struct pm__bstate *st;
	const struct pm__bread *r; /* the batch's reads, as st */
};

static int add_chunk(void *arg, uint64_t off, char *dst, size_t len)
{
	struct plan *p = arg;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct chunk *c = realloc(p->c, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		p->c = c;
		p->cap = cap;
	}
	p->c[p->n++] = (struct chunk){ p->read, p->file, off, dst, len, 0 };
	return 0;
}

static int add_span(void *arg, uint64_t va, uint64_t *dst, size_t n)
{
	return pm__batch_chunks(va, dst, n, add_chunk, arg);
}

/* The registered-file index of fd, adding it. */
static int file_index(int **files, size_t *nfiles, int fd)
{
	int *f;

	for (size_t i = *nfiles; i-- > 0;)
		if ((*files)[i] == fd)
			return (int)i;
	f = realloc(*files, (*nfiles + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	f[*nfiles] = fd;
	*files = f;
	return (int)(*nfiles)++;
}

static void chunk_done(struct pm__bstate *s, struct chunk *c, long err)
{
	if (err && !s->res)
		s->res = err;
	c->len = 0;
}

/* Open every group and plan its reads into chunks. */
static int plan_all(struct pm_batch *b, struct plan *p, struct pm__bgroup *g, size_t *ng,
		    int **files, size_t *nfiles)
{
	for (size_t i = 0; i < b->n; i = g[(*ng)++].j) {
		pm__batch_begin(b, p->st, i, &g[*ng]);
		p->file = -1;
		for (size_t k = i; k < g[*ng].j; k++) {
			struct pm__bread *r = &b->r[k];
			struct pm__bstate *s = &p->st[k];
			long e;

			if (s->res)
				continue;
			if (p->file < 0)
				p->file = file_index(files, nfiles, r->h->pagemap_fd);
			if (p->file < 0)
				return p->file;
			p->read = (uint32_t)k;
			e = pm__read_plan(r->h, r->start, r->end, r->entries, add_span, p);
			if (e == -ENOMEM)
				return -ENOMEM;
			s->res = e;
		}
	}
	return 0;
}

/* Waits for every submitted read: the caller's buffers must not be
 * written after we return. 0; or, after a wait failed DRAIN_FAILS times in
 * a row (backing off 10 us doubling to 1 ms; -EINTR is waited out), that
 * errno, reads maybe still in flight. */
#define DRAIN_FAILS 32

static int drain(struct io_uring *ring, size_t flying)
{
	struct io_uring_cqe *cqe;
	unsigned fails = 0;

	while (flying) {
		int r = pm__uring_sys.wait_cqe(ring, &cqe);

		if (r == 0) {
			io_uring_cqe_seen(ring, cqe);
			flying--;
			fails = 0;
		} else if (r != -EINTR) {
			struct timespec ts = { 0, 10000L << (fails < 7 ? fails : 7) };

			if (++fails == DRAIN_FAILS)
				return r;
			if (ts.tv_nsec > 1000000L)
				ts.tv_nsec = 1000000L;
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

/* Submit and reap until every chunk is done. On a submit error, waits for
 * what is in flight and returns the error: the ring still holds the
 * requests the kernel did not take, and must not be used again. *lost:
 * the wait failed too, reads may still be in flight.
 * A read's kernel_reads counts its completions as the sync backend counts
 * its preads: not the -EINTR (-EAGAIN, -ECANCELED) ones, which are issued
 * again. */
static int execute(struct io_uring *ring, struct plan *p, bool *lost)
{
	size_t *retry = malloc(DEPTH * sizeof(*retry)), nretry = 0, next = 0;
	size_t queued = 0, flying = 0;

	if (!retry)
		return -ENOMEM;
	while (next < p->n || nretry || queued || flying) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int r;

		while (queued + flying < DEPTH && (nretry || next < p->n)) {
			size_t i = nretry ? retry[--nretry] : next++;
			struct chunk *c = &p->c[i];
			struct io_uring_sqe *sqe;

			if (p->st[c->read].res) { /* that read already failed */
				chunk_done(&p->st[c->read], c, 0);
				continue;
			}
			sqe = io_uring_get_sqe(ring);
			io_uring_prep_read(sqe, c->file, c->dst, (unsigned)c->len, c->off);
			sqe->flags |= IOSQE_FIXED_FILE;
			io_uring_sqe_set_data64(sqe, i);
			queued++;
		}
		if (!queued && !flying)
			break;
		do
			r = pm__uring_sys.submit_and_wait(ring, 1);
		while (r == -EINTR);
		if (r < 0) {
			int e = drain(ring, flying);

			*lost = e != 0;
			free(retry);
			return e ? e : r;
		}
		flying += (size_t)r;
		queued -= (size_t)r;
		io_uring_for_each_cqe(ring, head, cqe) {
			size_t i = (size_t)io_uring_cqe_get_data64(cqe);
			struct chunk *c = &p->c[i];
			struct pm__bstate *s = &p->st[c->read];
			int res = cqe->res;

			seen++;
			flying--;
			if ((res == -EINTR || res == -EAGAIN || res == -ECANCELED) &&
			    c->resubmits++ < MAX_RESUBMITS) {
				retry[nretry++] = i;
				continue;
			}
			s->info.kernel_reads++;
			if (res > 0) {
				c->dst += res;
				c->off += (uint64_t)res;
				c->len -= (size_t)res;
				if (c->len)
					retry[nretry++] = i; /* short read: the rest */
				else
					chunk_done(s, c, 0);
			} else if (res == 0) {
				chunk_done(s, c, pm__pagemap_eof(p->r[c->read].h, c->dst, c->len));
			} else {
				chunk_done(s, c, res);
			}
		}
		io_uring_cq_advance(ring, seen);
	}
	free(retry);
	return 0;
}

int pm__batch_uring(struct pm_batch *b, struct pm__bstate *st, bool *lost)
{
	struct plan p = { 0 };
	struct io_uring *ring = b->ring;
	struct pm__bgroup *g;
	int *files = NULL;
	size_t nfiles = 0, ng = 0;
	int r;

	*lost = false;
	/* stopping targets is per handle group and per thread (ptrace):
	 * the sync backend does it */
	if (b->read_flags & PM_READ_F_STOP)
		return -EOPNOTSUPP;

	if (!ring) {
		ring = calloc(1, sizeof(*ring));
		if (!ring)
			return -ENOMEM;
		r = pm__uring_sys.init(DEPTH, ring, 0);
		if (r < 0) {
			free(ring);
			return r;
		}
		b->ring = ring;
	}
	p.st = st;
	p.r = b->r;
	g = malloc((b->n ? b->n : 1) * sizeof(*g));
	r = g ? plan_all(b, &p, g, &ng, &files, &nfiles) : -ENOMEM;
	if (!r && nfiles)
		r = io_uring_register_files(ring, files, (unsigned)nfiles);
	if (!r) {
		r = execute(ring, &p, lost);
		if (r && r != -ENOMEM)
			pm__batch_uring_free(b); /* requests may be left in it */
		else
			io_uring_unregister_files(ring);
	}
	/* every group closes after the last completion: one THP event sum
	 * after all the closing tokens settles them all */
	for (size_t i = 0; !r && i < ng; i++)
		pm__batch_close(b, st, &g[i]);
	if (!r)
		pm__batch_settle(b, st, g, ng);
	free(g);
	free(files);
	free(p.c);
	return r;
}

void pm__batch_uring_free(struct pm_batch *b)
{
	if (b->ring) {
		io_uring_queue_exit(b->ring);
		free(b->ring);
		b->ring = NULL;
	}
}

#else

struct pm__uringops pm__uring_sys;

int pm__batch_uring(struct pm_batch *b, struct pm__bstate *st, bool *lost)
{
	(void)b;
	(void)st;
	*lost = false;
	return -EOPNOTSUPP; /* built without liburing: pm_batch runs sync */
}

void pm__batch_uring_free(struct pm_batch *b)
{
	(void)b;
}

#endif
