/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io_uring failures no kernel here produces on demand (fault injection
 * through pm__uring_sys): a submit that fails leaves nothing for the next
 * run to submit into the previous run's buffers; a wait that keeps
 * failing ends the run with its errno instead of spinning; the next run
 * is right. Real reads of a real child otherwise. */
#include "common.h"
#include "config.h"
#include "internal.h"
#include "batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if HAVE_LIBURING
#include <liburing.h>

#define PAGES 256
#define BIG (4UL << 30) /* 8 chunks of entries: reads in flight for a while */

static struct pm__uringops real;
static int submit_calls, wait_calls;
static int fail_errno;

/* 256 pages, every other one written; a 4 GiB reservation. */
static void build(void *arg, uint64_t *sh)
{
	char *p = xmap(NULL, PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *big = mmap(NULL, BIG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	(void)arg;
	for (uint64_t i = 0; i < PAGES; i += 2)
		p[i * ps] = 1;
	sh[0] = (uintptr_t)p;
	sh[1] = big == MAP_FAILED ? 0 : (uintptr_t)big;
}

/* The first submit fails before the kernel saw anything. */
static int submit_fails_once(void *ring, unsigned wait_nr)
{
	if (submit_calls++ == 0)
		return -fail_errno;
	return real.submit_and_wait(ring, wait_nr);
}

/* The first submit goes out without waiting; every later submit, and
 * every wait, fails. */
static int submit_then_fail(void *ring, unsigned wait_nr)
{
	(void)wait_nr;
	if (submit_calls++ == 0)
		return io_uring_submit(ring);
	return -fail_errno;
}

static int wait_fails(void *ring, void *cqe)
{
	(void)ring;
	(void)cqe;
	wait_calls++;
	return -fail_errno;
}

static bool all_bytes(const void *p, int c, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != (unsigned char)c)
			return false;
	return true;
}

/* The run after a failed one, on the same batch: io_uring, right, and the
 * failed run's buffer (@old, @len bytes, now the caller's for something
 * else) left alone. */
static void next_run_right(struct pm_batch *b, struct pm_handle *h, uint64_t a,
			   const uint64_t *want, uint64_t *got, void *old, size_t len)
{
	long res = 0;

	memset(old, 0xa5, len);
	ck_assert_int_eq(pm_batch_add_read(b, h, a, a + PAGES * ps, got, NULL, &res), 0);
	ck_assert_int_eq(pm_batch_run(b), 0);
	ck_assert_int_eq(pm_batch_backend(b), PM_BACKEND_URING);
	ck_assert_int_eq(res, PAGES);
	ck_assert_mem_eq(want, got, PAGES * 8);
	ck_assert_msg(all_bytes(old, 0xa5, len), "the next run wrote the failed run's buffers");
}

/* (a) A submit that fails leaves its queued requests in the kept ring: the
 * next run must not submit them into this run's buffers. */
START_TEST(submit_error_leaves_nothing_queued)
{
	PM_OPTS(pm_batch_opts, o, .backend = PM_BACKEND_URING);
	uint64_t *want = malloc(PAGES * 8), *old = malloc(PAGES * 8), *got = malloc(PAGES * 8);
	long res[PAGES];
	struct pm_handle *h;
	struct pm_batch *b;
	struct child c;

	child_start(&c, build, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[0] + PAGES * ps, want, NULL, NULL), PAGES);
	ck_assert_int_eq(pm_batch_new(&o, &b), 0);
	/* one read per page: more requests than the ring's depth */
	for (int i = 0; i < PAGES; i++)
		ck_assert_int_eq(pm_batch_add_read(b, h, c.shared[0] + i * ps,
						   c.shared[0] + (i + 1) * ps, &old[i], NULL, &res[i]),
				 0);
	fail_errno = EBUSY;
	submit_calls = 0;
	pm__uring_sys.submit_and_wait = submit_fails_once;
	ck_assert_int_eq(pm_batch_run(b), 0);
	pm__uring_sys.submit_and_wait = real.submit_and_wait;
	for (int i = 0; i < PAGES; i++)
		ck_assert_int_eq(res[i], 1);
	ck_assert_mem_eq(want, old, PAGES * 8);
	next_run_right(b, h, c.shared[0], want, got, old, PAGES * 8);
	pm_batch_free(b);
	pm_close(h);
	child_stop(&c);
	free(want);
	free(old);
	free(got);
}
END_TEST

/* (b) Waiting that keeps failing while reads are in flight: the run ends,
 * with the wait's errno in every result and as its return, and the next
 * run is right. */
START_TEST(wait_error_ends_the_run)
{
	PM_OPTS(pm_batch_opts, o, .backend = PM_BACKEND_URING);
	const size_t n = BIG / ps;
	uint64_t *buf = malloc(n * 8), *want = malloc(PAGES * 8), *got = malloc(PAGES * 8);
	struct pm_handle *h;
	struct pm_batch *b;
	struct child c;
	long res = 0;
	int r = 0;

	child_start(&c, build, NULL);
	ck_assert_uint_ne(c.shared[1], 0);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, c.shared[0], c.shared[0] + PAGES * ps, want, NULL, NULL), PAGES);
	ck_assert_int_eq(pm_batch_new(&o, &b), 0);
	fail_errno = EIO;
	pm__uring_sys.submit_and_wait = submit_then_fail;
	pm__uring_sys.wait_cqe = wait_fails;
	/* the reads must still be in flight at the first failure: almost
	 * always, but the kernel may be quicker than the reaping */
	for (int tries = 0; tries < 5 && r == 0; tries++) {
		submit_calls = wait_calls = 0;
		ck_assert_int_eq(pm_batch_add_read(b, h, c.shared[1], c.shared[1] + BIG, buf, NULL,
						   &res),
				 0);
		r = pm_batch_run(b);
	}
	pm__uring_sys.submit_and_wait = real.submit_and_wait;
	pm__uring_sys.wait_cqe = real.wait_cqe;
	ck_assert_int_eq(r, -EIO);
	ck_assert_int_eq(res, -EIO);
	ck_assert_int_gt(wait_calls, 0);
	/* what the kernel still had in flight lands in buf, not later */
	usleep(100000);
	next_run_right(b, h, c.shared[0], want, got, buf, n * 8);
	pm_batch_free(b);
	pm_close(h);
	child_stop(&c);
	free(buf);
	free(want);
	free(got);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("batch-fault");
	TCase *t = tcase_create("batch-fault");

	test_init();
	real = pm__uring_sys;
	/* a run that never ends fails by this timeout */
	tcase_set_timeout(t, 30);
	add_test_if(t, submit_error_leaves_nothing_queued, pm_has_feature(PM_FEAT_IO_URING) == 1,
		    "no io_uring here");
	add_test_if(t, wait_error_ends_the_run, pm_has_feature(PM_FEAT_IO_URING) == 1,
		    "no io_uring here");
	suite_add_tcase(s, t);
	return run_suite(s);
}

#else

int main(void)
{
	puts("SKIP: built without liburing");
	return 77;
}

#endif
