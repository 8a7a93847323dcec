/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inputs at the edges of their types. */
#include "common.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A file mapped through a path longer than PATH_MAX (any process can make
 * one): its VMA is listed, with its name, and scans pass over it. */
#define LEVELS 22 /* 22 x 200 bytes */
START_TEST(mapping_with_a_path_longer_than_4096)
{
	PM_OPTS(pm_scan_opts, emu, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	char comp[201], tmpl[] = "/tmp/pm-longpath-XXXXXX", *base = mkdtemp(tmpl), *p;
	int dirs[LEVELS + 1], fd;
	struct pm_vma_list *l;
	struct pm_region reg[4];
	struct pm_handle *h;
	bool found = false;
	uint64_t a;

	ck_assert_ptr_nonnull(base);
	memset(comp, 'd', 200);
	comp[200] = '\0';
	dirs[0] = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirs[0], 0);
	for (int i = 0; i < LEVELS; i++) {
		ck_assert_int_eq(mkdirat(dirs[i], comp, 0700), 0);
		dirs[i + 1] = openat(dirs[i], comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(dirs[i + 1], 0);
	}
	fd = openat(dirs[LEVELS], "file", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)ps), 0);
	p = xmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	p[0] = 1;
	a = (uintptr_t)p;
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_vmas(h, &l), 0);
	for (size_t i = 0; i < pm_vma_count(l); i++) {
		const struct pm_vma *v = pm_vma_at(l, i);

		if (v->start == a)
			found = strlen(v->name) > 4096 && strstr(v->name, "/file");
	}
	pm_vma_list_free(l);
	ck_assert_msg(found, "the long-path VMA is not listed with its name");
	ck_assert_int_eq(pm_scan(h, a, a + ps, reg, 4, &emu, NULL), 1);
	pm_close(h);
	munmap(p, ps);
	close(fd);
	unlinkat(dirs[LEVELS], "file", 0);
	for (int i = LEVELS; i > 0; i--) {
		close(dirs[i]);
		unlinkat(dirs[i - 1], comp, AT_REMOVEDIR);
	}
	close(dirs[0]);
	rmdir(base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("inputs");
	TCase *tc = tcase_create("inputs");

	test_init();
	tcase_add_test(tc, scan_vec_len_size_max);
	tcase_add_test(tc, mapping_with_a_path_longer_than_4096);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
