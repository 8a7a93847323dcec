/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The maps text parser: exact on what the kernel writes, safe on anything. */
#include "common.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int parse(const char *text, size_t len, struct pm_vma_list *l)
{
	memset(l, 0, sizeof(*l));
	return pm__maps_parse(text, len, 1ULL << 47, l);
}

START_TEST(parse_kernel_lines)
{
	static const char text[] =
		"55d0c0a00000-55d0c0a02000 r--p 00000000 fe:01 1311       "
		"        /usr/bin/a b (deleted)\n"
		"7f0000000000-7f0000001000 rw-s 0001f000 00:05 99 /dev/zero (deleted)\n"
		"7f0000001000-7f0000002000 ---p 00000000 00:00 0 \n"
		"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  "
		"[vsyscall]\n";
	struct pm_vma_list l;

	ck_assert_int_eq(parse(text, sizeof(text) - 1, &l), 0);
	ck_assert_int_eq(pm__list_finish(&l), 0);
	ck_assert_uint_eq(l.count, 4);
	ck_assert_uint_eq(l.v[0].start, 0x55d0c0a00000ULL);
	ck_assert_uint_eq(l.v[0].end, 0x55d0c0a02000ULL);
	ck_assert_uint_eq(l.v[0].flags, PM_VMA_READ);
	ck_assert_uint_eq(l.v[0].dev, makedev(0xfe, 1));
	ck_assert_uint_eq(l.v[0].inode, 1311);
	ck_assert_str_eq(l.v[0].name, "/usr/bin/a b (deleted)");
	ck_assert_uint_eq(l.v[1].flags, PM_VMA_READ | PM_VMA_WRITE | PM_VMA_SHARED);
	ck_assert_uint_eq(l.v[1].pgoff, 0x1f000);
	ck_assert_str_eq(l.v[2].name, "");
	ck_assert_uint_eq(l.v[2].flags, 0);
	ck_assert_str_eq(l.v[3].name, "[stack]");
	pm__list_release(&l);
	/* no newline at the end, and an empty text */
	ck_assert_int_eq(parse("1000-2000 r-xp 0 0:0 0", 22, &l), 0);
	ck_assert_uint_eq(l.count, 1);
	pm__list_release(&l);
	ck_assert_int_eq(parse("", 0, &l), 0);
	pm__list_release(&l);
}
END_TEST

START_TEST(parse_rejects_malformed)
{
	static const char *bad[] = {
		"1000-2000 r-xp 0 0:0\n",                     /* no inode */
		"2000-1000 r-xp 0 0:0 0\n",                   /* inverted */
		"1000-1000 r-xp 0 0:0 0\n",                   /* empty */
		"1000-2000 r-xq 0 0:0 0\n",                   /* bad share flag */
		"1000-2000 rwx 0 0:0 0\n",                    /* short perms */
		"10000000000000000-2 r-xp 0 0:0 0\n",         /* hex overflow */
		"1000-2000 r-xp 0 0:0 99999999999999999999\n", /* decimal overflow */
		"1000-2000 r-xp 0 0:0 0x\n",                  /* junk after inode */
		"-2000 r-xp 0 0:0 0\n",
		"1000-2000 r-xp 0 10000:0 0\n",               /* major out of range */
		"\n",
	};
	struct pm_vma_list l;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i], strlen(bad[i]), &l) == -EIO, "accepted '%s'", bad[i]);
		pm__list_release(&l);
	}
	/* a NUL inside a name */
	ck_assert_int_eq(parse("1000-2000 r-xp 0 0:0 0 a\0b\n", 27, &l), -EIO);
	pm__list_release(&l);
}
END_TEST

/* Random bytes and mutations of real maps text: the parser returns 0 or
 * -EIO and whatever it keeps comes out sorted and non-overlapping. Under
 * ASan this is the fuzzing the parser is built for. */
START_TEST(parse_survives_any_bytes)
{
	char *real = malloc(1 << 20), *buf = malloc(1 << 20);
	uint64_t seed = 1234;
	ssize_t rl = 0, r;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	while ((r = read(fd, real + rl, (1 << 20) - (size_t)rl)) > 0)
		rl += r;
	close(fd);
	ck_assert_int_gt(rl, 100);
	for (int it = 0; it < 100000; it++) {
		struct pm_vma_list l;
		size_t len;
		int res;

		if (it % 4 == 0) {
			len = rnd(&seed) % 300;
			for (size_t i = 0; i < len; i++)
				buf[i] = (char)rnd(&seed);
		} else {
			len = (size_t)rl;
			memcpy(buf, real, len);
			for (int k = 1 + (int)(rnd(&seed) % 8); k; k--) {
				size_t at = rnd(&seed) % len;

				switch (rnd(&seed) % 4) {
				case 0:
					buf[at] = (char)rnd(&seed);
					break;
				case 1:
					buf[at] = "0123456789abcdef-: \nrwxps"[rnd(&seed) % 25];
					break;
				case 2:
					len = at; /* truncate */
					break;
				default:
					memset(buf + at, 'f', (len - at) < 20 ? len - at : 20);
				}
				if (!len)
					break;
			}
		}
		/* exact-length copy so ASan sees any over-read */
		char *exact = malloc(len ? len : 1);
		memcpy(exact, buf, len);
		res = parse(exact, len, &l);
		ck_assert_msg(res == 0 || res == -EIO, "iteration %d: %d", it, res);
		if (res == 0) {
			ck_assert_int_eq(pm__list_finish(&l), 0);
			for (size_t i = 1; i < l.count; i++)
				if (l.v[i - 1].end > l.v[i].start || l.v[i].start >= l.v[i].end)
					ck_abort_msg("iteration %d: unsorted output", it);
		}
		pm__list_release(&l);
		free(exact);
	}
	free(real);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("parser");
	TCase *t = tcase_create("parser");

	test_init();
	tcase_set_timeout(t, 300);
	tcase_add_test(t, parse_kernel_lines);
	tcase_add_test(t, parse_rejects_malformed);
	tcase_add_test(t, parse_survives_any_bytes);
	suite_add_tcase(s, t);
	return run_suite(s);
}
