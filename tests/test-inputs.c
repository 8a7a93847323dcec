/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inputs at the edges of their types. */
#include "common.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* vec_len says how many regions the caller can take; SIZE_MAX means "as
 * many as there are" and must not wrap to none. */
START_TEST(scan_vec_len_size_max)
{
	PM_OPTS(pm_scan_opts, nat, .category_mask = PM_CAT_PRESENT, .return_mask = PM_CAT_PRESENT);
	PM_OPTS(pm_scan_opts, emu, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	char *p = xmap(NULL, 8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t a = (uintptr_t)p, we = 0;
	struct pm_region reg[8];
	struct pm_handle *h;

	memset(p, 1, 4 * ps); /* four present pages, then four absent */
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_scan(h, a, a + 8 * ps, reg, SIZE_MAX, &emu, &we), 1);
	ck_assert_uint_eq(reg[0].start, a);
	ck_assert_uint_eq(reg[0].end, a + 4 * ps);
	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) == 1) {
		memset(reg, 0, sizeof(reg));
		ck_assert_int_eq(pm_scan(h, a, a + 8 * ps, reg, SIZE_MAX, &nat, &we), 1);
		ck_assert_uint_eq(reg[0].start, a);
		ck_assert_uint_eq(reg[0].end, a + 4 * ps);
		ck_assert_uint_eq(we, a + 8 * ps);
	}
	pm_close(h);
	munmap(p, 8 * ps);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("inputs");
	TCase *tc = tcase_create("inputs");

	test_init();
	tcase_add_test(tc, scan_vec_len_size_max);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
