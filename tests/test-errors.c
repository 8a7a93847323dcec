/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bad input: a documented negative errno, errno set, nothing written. */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PATTERN 0x5a5a5a5a5a5a5a5aULL

static struct pm_handle *h;
static char *page;
static uint64_t buf[64];

static void setup(void)
{
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	page = xmap(NULL, 8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	page[0] = 1;
	for (int i = 0; i < 64; i++)
		buf[i] = PATTERN;
}

static void teardown(void)
{
	pm_close(h);
	munmap(page, 8 * ps);
}

static void untouched(void)
{
	for (int i = 0; i < 64; i++)
		ck_assert_uint_eq(buf[i], PATTERN);
}

#define READ_EINVAL(h_, s_, e_, b_, o_, i_)                                    \
	do {                                                                   \
		errno = 0;                                                     \
		ck_assert_int_eq(pm_read(h_, s_, e_, b_, o_, i_), -EINVAL);    \
		ck_assert_int_eq(errno, EINVAL);                               \
		untouched();                                                   \
	} while (0)

START_TEST(read_bad_ranges)
{
	uint64_t a = (uintptr_t)page;

	READ_EINVAL(NULL, a, a + ps, buf, NULL, NULL);
	READ_EINVAL(h, a, a + ps, NULL, NULL, NULL);
	READ_EINVAL(h, a + 1, a + ps, buf, NULL, NULL);          /* unaligned start */
	READ_EINVAL(h, a, a + ps + 8, buf, NULL, NULL);          /* unaligned end */
	READ_EINVAL(h, a + ps, a, buf, NULL, NULL);              /* inverted */
	READ_EINVAL(h, a, a, buf, NULL, NULL);                   /* empty */
	READ_EINVAL(h, 1ULL << 63, (1ULL << 63) + ps, buf, NULL, NULL); /* kernel half */
	READ_EINVAL(h, UINT64_MAX - ps + 1 - ps, UINT64_MAX - ps + 1, buf, NULL, NULL);
	READ_EINVAL(h, (1ULL << 57), (1ULL << 57) + ps, buf, NULL, NULL); /* above any TASK_SIZE */
	READ_EINVAL(h, 0, UINT64_MAX & ~(ps - 1), buf, NULL, NULL); /* overflowing */
}
END_TEST

START_TEST(read_bad_opts)
{
	uint64_t a = (uintptr_t)page;
	struct {
		struct pm_read_opts o;
		uint64_t future;
	} big = { { .size = sizeof(big) }, 0 };
	struct pm_read_opts o = { .size = sizeof(o) };
	struct pm_read_info info = { .size = 0 };

	o.size = 0;
	READ_EINVAL(h, a, a + ps, buf, &o, NULL);
	o.size = 4;
	READ_EINVAL(h, a, a + ps, buf, &o, NULL);
	o.size = 12;
	READ_EINVAL(h, a, a + ps, buf, &o, NULL);
	o.size = 1 << 20;
	READ_EINVAL(h, a, a + ps, buf, &o, NULL);
	o.size = sizeof(o);
	o.flags = 1ULL << 40;
	READ_EINVAL(h, a, a + ps, buf, &o, NULL);
	o.flags = 0;
	READ_EINVAL(h, a, a + ps, buf, &o, &info);               /* info->size 0 */
	info.size = 12;
	READ_EINVAL(h, a, a + ps, buf, &o, &info);
	/* a newer caller's struct: unknown fields must be zero */
	big.future = 1;
	READ_EINVAL(h, a, a + ps, buf, &big.o, NULL);
	big.future = 0;
	ck_assert_int_eq(pm_read(h, a, a + ps, buf, &big.o, NULL), 1);
	/* an older caller's struct without max_retries */
	o.size = offsetof(struct pm_read_opts, max_retries);
	ck_assert_int_eq(pm_read(h, a, a + ps, buf, &o, NULL), 1);
	/* an older info struct gets its prefix only */
	info.size = 16;
	info.retries = PATTERN;
	ck_assert_int_eq(pm_read(h, a, a + ps, buf, NULL, &info), 1);
	ck_assert_uint_eq(info.retries, PATTERN);
	ck_assert_uint_eq(info.size, 16);
}
END_TEST

START_TEST(open_bad_opts)
{
	struct pm_open_opts o = { .size = sizeof(o), .flags = 1ULL << 33 };
	struct pm_handle *x = NULL;

	ck_assert_int_eq(pm_open(0, &o, &x), -EINVAL);
	o.flags = 0;
	o.size = 3;
	ck_assert_int_eq(pm_open(0, &o, &x), -EINVAL);
	ck_assert_ptr_null(x);
	ck_assert_int_eq(pm_open(-1, NULL, &x), -EINVAL);
	ck_assert_int_eq(pm_open(0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pm_open_pidfd(-1, NULL, &x), -EBADF);
	ck_assert_ptr_null(x);
}
END_TEST

START_TEST(misc_null)
{
	struct pm_vma_list *l = (struct pm_vma_list *)0x1;

	ck_assert_int_eq(pm_vmas(NULL, &l), -EINVAL);
	ck_assert_ptr_eq(l, (struct pm_vma_list *)0x1);
	ck_assert_int_eq(pm_vmas(h, NULL), -EINVAL);
	ck_assert_int_eq(pm_pid(NULL), -EINVAL);
	ck_assert_int_eq(pm_kernel_probe(NULL), -EINVAL);
	{
		char v[32];

		snprintf(v, sizeof(v), "%d.%d.%d", PM_VERSION_MAJOR, PM_VERSION_MINOR,
			 PM_VERSION_MICRO);
		ck_assert_str_eq(pm_version(), v);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("errors");
	TCase *t = tcase_create("errors");

	test_init();
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, read_bad_ranges);
	tcase_add_test(t, read_bad_opts);
	tcase_add_test(t, open_bad_opts);
	tcase_add_test(t, misc_null);
	suite_add_tcase(s, t);
	return run_suite(s);
}
