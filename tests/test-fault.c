/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fault injection for what the machine cannot produce on demand: EINTR,
 * short reads, EOF, I/O errors, a kernel without PROCMAP_QUERY, and reads
 * that disagree (what a shifted read looks like to the guard). */
#include "common.h"
#include "internal.h"
#include "compat/uapi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static ssize_t (*real_pread)(int, void *, size_t, off_t);
static int (*real_ioctl)(int, unsigned long, void *);
static int mode;
static uint64_t calls, bytes;
static off_t flip_off = -1;

enum { M_EINTR = 1, M_SHORT, M_EOF, M_EIO, M_FLIP_ONCE, M_FLIP_ALWAYS };

static ssize_t fake_pread(int fd, void *buf, size_t n, off_t off)
{
	ssize_t r;

	calls++;
	switch (mode) {
	case M_EINTR:
		if (calls % 2) {
			errno = EINTR;
			return -1;
		}
		break;
	case M_SHORT:
		if (n > 8 * (1 + calls % 3))
			n = 8 * (1 + calls % 3); /* whole entries, a few at a time */
		break;
	case M_EOF:
		return 0;
	case M_EIO:
		errno = EIO;
		return -1;
	}
	r = real_pread(fd, buf, n, off);
	if (r > 0)
		bytes += (uint64_t)r;
	/* a disturbed read: the first (or every) read covering flip_off sees
	 * the entry there changed, as a shifted read would show it */
	if (r > 0 && flip_off >= off && flip_off < off + r &&
	    (mode == M_FLIP_ALWAYS || (mode == M_FLIP_ONCE && calls == 1)))
		((uint64_t *)buf)[(flip_off - off) / 8] ^= calls << 3;
	return r;
}

static int fake_ioctl_notty(int fd, unsigned long req, void *arg)
{
	if (req == PM__PROCMAP_QUERY) {
		errno = ENOTTY;
		return -1;
	}
	return real_ioctl(fd, req, arg);
}

static void setup(void)
{
	(void)pm__kernel(); /* probe before faults are injected */
	real_pread = pm__sys.pread;
	real_ioctl = pm__sys.ioctl;
	pm__sys.pread = fake_pread;
	mode = 0;
	calls = bytes = 0;
	flip_off = -1;
}

static void teardown(void)
{
	pm__sys.pread = real_pread;
	pm__sys.ioctl = real_ioctl;
}

static char *layout(size_t n)
{
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t seed = 11;

	madvise(p, n * ps, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < n; i++)
		if (rnd(&seed) & 1)
			p[i * ps] = 1;
	return p;
}

static void expect_same(int m, size_t n)
{
	char *p = layout(n);
	uint64_t *a = malloc(n * 8), *b = malloc(n * 8);
	struct pm_handle *h;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + n * ps, a, NULL, NULL), (long)n);
	mode = m;
	calls = 0;
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + n * ps, b, NULL, NULL), (long)n);
	ck_assert_uint_gt(calls, 1);
	ck_assert_mem_eq(a, b, n * 8);
	pm_close(h);
	free(a);
	free(b);
	munmap(p, n * ps);
}

START_TEST(eintr_is_retried)
{
	expect_same(M_EINTR, 600);
}
END_TEST

START_TEST(short_reads_are_continued)
{
	expect_same(M_SHORT, 100);
}
END_TEST

START_TEST(eof_is_esrch_and_eio_passes)
{
	char *p = layout(8);
	uint64_t e[8];
	struct pm_handle *h;
	struct pm_vma_list *l;
	PM_OPTS(pm_open_opts, text, .flags = PM_OPEN_MAPS_TEXT);

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	mode = M_EOF;
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + 8 * ps, e, NULL, NULL), -ESRCH);
	mode = M_EIO;
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + 8 * ps, e, NULL, NULL), -EIO);
	ck_assert_int_eq(errno, EIO);
	pm_close(h);
	/* the maps text source: an empty file is an exited process */
	ck_assert_int_eq(pm_open(0, &text, &h), 0);
	mode = M_EOF;
	ck_assert_int_eq(pm_vmas(h, &l), -ESRCH);
	pm_close(h);
	munmap(p, 8 * ps);
}
END_TEST

static void build_layout(void *arg, uint64_t *sh)
{
	sh[0] = (uintptr_t)layout(64);
}

/* A kernel without PROCMAP_QUERY: same lists, same entries via the text. */
START_TEST(enotty_falls_back_to_text)
{
	struct child c;
	struct pm_handle *h;
	struct pm_vma_list *q, *t;
	uint64_t a[64], b[64], p;

	child_start(&c, build_layout, NULL);
	p = c.shared[0];
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_vmas(h, &q), 0);
	pm__sys.ioctl = fake_ioctl_notty;
	ck_assert_int_eq(pm_vmas(h, &t), 0);
	ck_assert_uint_eq(pm_vma_count(q), pm_vma_count(t));
	for (size_t i = 0; i < pm_vma_count(q); i++) {
		ck_assert_uint_eq(pm_vma_at(q, i)->start, pm_vma_at(t, i)->start);
		ck_assert_str_eq(pm_vma_at(q, i)->name, pm_vma_at(t, i)->name);
	}
	raw_read(c.pid, p, p + 64 * ps, a);
	ck_assert_int_eq(pm_read(h, p, p + 64 * ps, b, NULL, NULL), 64);
	ck_assert_mem_eq(a, b, sizeof(a));
	/* a large range makes the planner list VMAs: through the text now */
	{
		uint64_t *x = malloc(8256 * 8), *y = malloc(8256 * 8);

		raw_read(c.pid, p - 8192 * ps, p + 64 * ps, x);
		ck_assert_int_eq(pm_read(h, p - 8192 * ps, p + 64 * ps, y, NULL, NULL), 8256);
		ck_assert_mem_eq(x, y, 8256 * 8);
		free(x);
		free(y);
	}
	pm_vma_list_free(q);
	pm_vma_list_free(t);
	pm_close(h);
	child_stop(&c);
}
END_TEST

/* Large gaps are zero-filled, not read: count the bytes asked of the kernel. */
START_TEST(gaps_are_not_read)
{
	const uint64_t gap = 1ULL << 30;
	char *base = xmap(NULL, gap + 16 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1);
	uint64_t n = (gap + 16 * ps) / ps, *buf = malloc(n * 8);
	struct pm_handle *h;

	munmap(base + 8 * ps, gap);
	for (int text = 0; text < 2; text++) {
		PM_OPTS(pm_open_opts, oo, .flags = text ? PM_OPEN_MAPS_TEXT : 0);

		ck_assert_int_eq(pm_open(0, &oo, &h), 0);
		bytes = 0;
		ck_assert_int_eq(pm_read(h, (uintptr_t)base, (uintptr_t)base + n * ps, buf, NULL, NULL),
				 (long)n);
		/* the two VMAs plus at most one read-ahead window each, and
		 * the maps text in text mode */
		ck_assert_uint_lt(bytes, 3 * 512 * 8 + (text ? 1 << 20 : 0));
		pm_close(h);
	}
	free(buf);
	munmap(base, 8 * ps);
	munmap(base + 8 * ps + gap, 8 * ps);
}
END_TEST

/* What a shifted read looks like to the guard: one read that disagrees. */
START_TEST(guard_rereads_disturbed_span)
{
	char *p = layout(64);
	uint64_t a[64], b[64];
	struct pm_handle *h;
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_SNAPSHOT);
	PM_OPTS(pm_read_info, info);

	raw_read(getpid(), (uintptr_t)p, (uintptr_t)p + 64 * ps, a);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	flip_off = (off_t)(((uintptr_t)p / ps + 10) * 8);
	mode = M_FLIP_ONCE;
	calls = 0;
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + 64 * ps, b, &o, &info), 64);
	ck_assert_mem_eq(a, b, sizeof(a));
	ck_assert(info.flags & PM_READ_GUARDED);
	ck_assert(info.flags & PM_READ_RETRIED);
	ck_assert(!(info.flags & PM_READ_UNSTABLE));
	ck_assert_uint_ge(info.retries, 1);
	ck_assert_uint_eq(info.kernel_reads, 3);
	pm_close(h);
	munmap(p, 64 * ps);
}
END_TEST

/* Reads that never agree: -EAGAIN, or flagged data with BEST_EFFORT. */
START_TEST(guard_budget_exhausted)
{
	char *p = layout(64);
	uint64_t b[64];
	struct pm_handle *h;
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_SNAPSHOT, .max_retries = 3);
	PM_OPTS(pm_read_opts, be, .flags = PM_READ_SNAPSHOT | PM_READ_BEST_EFFORT,
		.max_retries = 2);
	PM_OPTS(pm_read_info, info);

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	flip_off = (off_t)(((uintptr_t)p / ps + 3) * 8);
	mode = M_FLIP_ALWAYS;
	info.retries = 77;
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + 64 * ps, b, &o, &info), -EAGAIN);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_uint_eq(info.retries, 77); /* info is written on success only */
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + 64 * ps, b, &be, &info), 64);
	ck_assert(info.flags & PM_READ_UNSTABLE);
	ck_assert_uint_eq(info.retries, 3);
	pm_close(h);
	munmap(p, 64 * ps);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault");
	TCase *t = tcase_create("fault");

	test_init();
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, eintr_is_retried);
	tcase_add_test(t, short_reads_are_continued);
	tcase_add_test(t, eof_is_esrch_and_eio_passes);
	tcase_add_test(t, enotty_falls_back_to_text);
	tcase_add_test(t, gaps_are_not_read);
	tcase_add_test(t, guard_rereads_disturbed_span);
	tcase_add_test(t, guard_budget_exhausted);
	suite_add_tcase(s, t);
	return run_suite(s);
}
