/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_batch_backend() before a batch's first run says what that run uses;
 * AUTO's rule for each batch shape. */
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

START_TEST(backend_before_first_run)
{
	char *p = xmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t a = (uintptr_t)p, e[4];
	struct pm_handle *h;

	memset(p, 1, 4 * ps);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	for (uint64_t backend = PM_BACKEND_AUTO; backend <= PM_BACKEND_SYNC; backend++) {
		PM_OPTS(pm_batch_opts, o, .backend = backend);
		struct pm_batch *b;
		long res = 0;
		int before;

		ck_assert_int_eq(pm_batch_new(&o, &b), 0);
		before = pm_batch_backend(b);
		ck_assert_int_eq(pm_batch_add_read(b, h, a, a + 4 * ps, e, NULL, &res), 0);
		ck_assert_int_eq(pm_batch_run(b), 0);
		ck_assert_int_eq(res, 4);
		/* io_uring asked for but unavailable falls back: only AUTO and
		 * SYNC promise the backend itself */
		if (backend != PM_BACKEND_URING || pm_has_feature(PM_FEAT_IO_URING) == 1)
			ck_assert_msg(before == pm_batch_backend(b),
				      "backend %d: %d before the first run, %d used", (int)backend,
				      before, pm_batch_backend(b));
		pm_batch_free(b);
	}
	pm_close(h);
	munmap(p, 4 * ps);
}
END_TEST

/* AUTO runs sync on every shape, one-shot or kept over many runs: on every
 * shape measured io_uring was slower or within the noise (doc/batch.md),
 * and timing a batch's own runs picked the slower backend. */
START_TEST(auto_is_sync_on_every_shape)
{
	const size_t big = 1UL << 30;
	char *p = xmap(NULL, 64 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *q = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t *e = malloc(big / ps * 8);
	struct pm_handle *h;
	long res[64];

	ck_assert_ptr_ne(q, MAP_FAILED);
	memset(p, 1, 64 * ps);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	/* one read, 64 one-page reads, one 1 GiB read */
	for (int shape = 0; shape < 3; shape++) {
		struct pm_batch *kept;

		ck_assert_int_eq(pm_batch_new(NULL, &kept), 0);
		for (int run = 0; run < 6; run++) {
			struct pm_batch *one, *both[2];
			int n = shape == 1 ? 64 : 1;

			ck_assert_int_eq(pm_batch_new(NULL, &one), 0);
			both[0] = kept;
			both[1] = one;
			for (int k = 0; k < 2; k++) {
				struct pm_batch *b = both[k];

				for (int i = 0; i < n; i++) {
					uint64_t a = (uintptr_t)(shape == 2 ? q : p + i * ps);

					ck_assert_int_eq(pm_batch_add_read(b, h, a,
									   a + (shape == 2 ? big : ps),
									   e + i, NULL, &res[i]),
							 0);
				}
				ck_assert_int_eq(pm_batch_run(b), 0);
				ck_assert_msg(pm_batch_backend(b) == PM_BACKEND_SYNC,
					      "shape %d run %d (%s): io_uring", shape, run,
					      k ? "one-shot" : "kept");
				for (int i = 0; i < n; i++)
					ck_assert_int_eq(res[i], shape == 2 ? (long)(big / ps) : 1);
			}
			pm_batch_free(one);
		}
		pm_batch_free(kept);
	}
	pm_close(h);
	free(e);
	munmap(q, big);
	munmap(p, 64 * ps);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("batch-auto");
	TCase *tc = tcase_create("batch-auto");

	test_init();
	tcase_add_test(tc, backend_before_first_run);
	tcase_add_test(tc, auto_is_sync_on_every_shape);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
