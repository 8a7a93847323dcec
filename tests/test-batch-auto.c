/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_batch_backend() before a batch's first run says what that run uses. */
#include "common.h"

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

int main(void)
{
	Suite *s = suite_create("batch-auto");
	TCase *tc = tcase_create("batch-auto");

	test_init();
	tcase_add_test(tc, backend_before_first_run);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
