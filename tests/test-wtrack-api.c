/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write tracking's arguments and its answer to "which method, or why
 * none", and the kernel failures this host cannot produce, injected
 * through the pm__sys table: no WP_ASYNC (6.1-6.6), zapped PMDs reported
 * clean, an error midway through a collect.
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

static void idle(void *arg, uint64_t *shared)
{
	(void)arg;
	(void)shared;
}

/* pm_wtrack_supported says which method pm_wtrack_new would use, or why
 * none can work, for this process and for a child. */
START_TEST(supported)
{
	PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_METHOD_UFFD);
	PM_OPTS(pm_wtrack_opts, exact, .flags = PM_WT_F_EXACT);
	PM_OPTS(pm_wtrack_opts, bad, .method = 9);
	char why[256], small[8];
	struct pm_handle *self, *hc;
	struct child c;
	int r;

	ck_assert_int_eq(pm_open(0, NULL, &self), 0);
	child_start(&c, idle, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &hc), 0);
	ck_assert_int_eq(pm_wtrack_supported(NULL, NULL, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(pm_wtrack_supported(self, NULL, NULL, 5), -EINVAL);
	ck_assert_int_eq(pm_wtrack_supported(self, &bad, why, sizeof(why)), -EINVAL);

	r = pm_wtrack_supported(self, NULL, why, sizeof(why));
	ck_assert_int_eq(r, have_uffd ? PM_WT_METHOD_UFFD : have_sd ? PM_WT_METHOD_SOFT_DIRTY : 0);
	if (r) { /* what pm_wtrack_new picks */
		struct own o;

		own_start(&o, 4, 4, PM_WT_METHOD_AUTO);
		ck_assert_int_eq(pm_wtrack_method(o.wt), r);
		own_stop(&o);
	}
	if (!have_uffd) {
		ck_assert_int_eq(pm_wtrack_supported(self, &uffd, why, sizeof(why)), 0);
		ck_assert_msg(strstr(why, "PAGEMAP_SCAN") || strstr(why, "WP_ASYNC"), "%s", why);
	}
	/* another process: never userfaultfd */
	ck_assert_int_eq(pm_wtrack_supported(hc, &uffd, why, sizeof(why)), 0);
	ck_assert_msg(strstr(why, "own memory"), "%s", why);
	r = pm_wtrack_supported(hc, NULL, why, sizeof(why));
	ck_assert_int_eq(r, have_sd ? PM_WT_METHOD_SOFT_DIRTY : 0);
	if (!r) /* both reasons */
		ck_assert_msg(strstr(why, "own memory") && strstr(why, "clear_refs"), "%s", why);
	ck_assert_int_eq(pm_wtrack_supported(hc, &exact, why, sizeof(why)), 0);
	ck_assert_msg(strstr(why, "2 MiB"), "%s", why);
	ck_assert_int_eq(pm_wtrack_supported(hc, &exact, small, sizeof(small)), 0);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	pm_close(hc);
	child_stop(&c);
	pm_close(self);
}
END_TEST

/* Bad arguments change nothing and say why; so do unmapped and
 * replaced memory, overlapping trackers and methods that cannot work. */
START_TEST(errors)
{
	const size_t n = 64;
	char *p = xmap(NULL, (n + 16) * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t a = (uintptr_t)p, b = a + n * ps, we = 12345;
	struct pm_range r = { a, b }, bad;
	struct pm_range overlap[2] = { { a, a + 8 * ps }, { a + 4 * ps, a + 16 * ps } };
	struct pm_region v[4];
	struct pm_handle *h;
	struct pm_wtrack *wt = (struct pm_wtrack *)&we, *wt2 = NULL;
	struct { struct pm_wtrack_opts o; uint64_t extra; } big = { { sizeof(big), 0, 0 }, 1 };
	PM_OPTS(pm_wtrack_opts, unknown_method, .method = 3);
	PM_OPTS(pm_wtrack_opts, unknown_flag, .flags = 1ULL << 63);
	PM_OPTS(pm_wtrack_opts, sd, .method = PM_WT_METHOD_SOFT_DIRTY);
	PM_OPTS(pm_wtrack_opts, sd_exact, .method = PM_WT_METHOD_SOFT_DIRTY, .flags = PM_WT_F_EXACT);
	struct child c;

	munmap(p + n * ps, 16 * ps);
	memset(p, 1, n * ps);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_wtrack_new(NULL, &r, 1, NULL, &wt), -EINVAL);
	ck_assert_int_eq(pm_wtrack_new(h, NULL, 1, NULL, &wt), -EINVAL);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 0, NULL, &wt), -EINVAL);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, NULL, NULL), -EINVAL);
	bad = (struct pm_range){ a + 1, b };
	ck_assert_int_eq(pm_wtrack_new(h, &bad, 1, NULL, &wt), -EINVAL);
	bad = (struct pm_range){ a, b - 1 };
	ck_assert_int_eq(pm_wtrack_new(h, &bad, 1, NULL, &wt), -EINVAL);
	bad = (struct pm_range){ a, a };
	ck_assert_int_eq(pm_wtrack_new(h, &bad, 1, NULL, &wt), -EINVAL);
	ck_assert_int_eq(pm_wtrack_new(h, overlap, 2, NULL, &wt), -EINVAL);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &unknown_method, &wt), -EINVAL);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &unknown_flag, &wt), -EINVAL);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &big.o, &wt), -EINVAL);
	ck_assert_int_eq(errno, EINVAL);
	/* not mapped: the range runs into the unmapped tail */
	bad = (struct pm_range){ a, b + ps };
	ck_assert_int_eq(pm_wtrack_new(h, &bad, 1, NULL, &wt), -EFAULT);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &sd_exact, &wt), -EOPNOTSUPP);
	if (!have_sd)
		ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &sd, &wt), -EOPNOTSUPP);
	ck_assert_ptr_eq(wt, (struct pm_wtrack *)&we); /* never written on failure */
	ck_assert_int_eq(pm_wtrack_method(NULL), -EINVAL);
	{
		struct pm_wtrack_stats st = { .size = 12 };

		ck_assert_int_eq(pm_wtrack_stats(NULL, &st), -EINVAL);
	}
	ck_assert_int_eq(pm_wtrack_reset(NULL), -EINVAL);
	pm_wtrack_free(NULL);

	/* UFFD needs the caller's own memory */
	if (have_uffd) {
		PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_METHOD_UFFD);
		struct pm_handle *hc;
		struct pm_range cr;

		child_start(&c, idle, NULL);
		ck_assert_int_eq(pm_open(c.pid, NULL, &hc), 0);
		cr.start = (uintptr_t)c.shared;
		cr.end = cr.start + ps;
		ck_assert_int_eq(pm_wtrack_new(hc, &cr, 1, &uffd, &wt), -EOPNOTSUPP);
		pm_close(hc);
		child_stop(&c);
	}

	if (have_uffd || have_sd) {
		ck_assert_int_eq(pm_wtrack_new(h, &r, 1, NULL, &wt), 0);
		/* overlapping trackers: the second is refused */
		ck_assert_int_eq(pm_wtrack_new(h, overlap, 1, NULL, &wt2), -EBUSY);
		ck_assert_ptr_null(wt2);
		memset(v, 0xa5, sizeof(v));
		ck_assert_int_eq(pm_wtrack_collect(NULL, a, b, v, 4, 0, &we), -EINVAL);
		ck_assert_int_eq(pm_wtrack_collect(wt, a, b, NULL, 4, 0, &we), -EINVAL);
		ck_assert_int_eq(pm_wtrack_collect(wt, a, b, v, 0, 0, &we), -EINVAL);
		ck_assert_int_eq(pm_wtrack_collect(wt, a + 1, b, v, 4, 0, &we), -EINVAL);
		ck_assert_int_eq(pm_wtrack_collect(wt, b, a, v, 4, 0, &we), -EINVAL);
		ck_assert_int_eq(pm_wtrack_collect(wt, a, b, v, 4, 2, &we), -EINVAL);
		ck_assert_int_eq(pm_wtrack_collect(wt, b, b + ps, v, 4, 0, &we), -EINVAL);
		ck_assert_uint_eq(we, 12345);
		for (size_t i = 0; i < sizeof(v); i++)
			ck_assert_uint_eq(((unsigned char *)v)[i], 0xa5);
		/* memory unmapped under the tracker */
		p[1 * ps] = 1;
		ck_assert_int_eq(munmap(p + 10 * ps, 2 * ps), 0);
		ck_assert_int_eq(pm_wtrack_collect(wt, a, b, v, 4, PM_WT_COLLECT_RESET, &we), -EFAULT);
		ck_assert_int_eq(pm_wtrack_reset(wt), -EFAULT);
		/* the rest can still be collected, and page 1 was not lost */
		ck_assert_int_eq(pm_wtrack_collect(wt, a, a + 10 * ps, v, 4, 0, &we), 1);
		ck_assert(v[0].start == a + ps && v[0].end == a + 2 * ps);
		/* mapped again: new memory the tracker never saw */
		ck_assert_ptr_eq(mmap(p + 10 * ps, 2 * ps, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
				 p + 10 * ps);
		if (pm_wtrack_method(wt) == PM_WT_METHOD_UFFD) {
			ck_assert_int_eq(pm_wtrack_collect(wt, a, b, v, 4, PM_WT_COLLECT_RESET, &we),
					 -EFAULT);
			ck_assert_int_eq(pm_wtrack_reset(wt), -EFAULT);
			/* the failed call reset nothing: page 1 is still written */
			ck_assert_int_eq(pm_wtrack_collect(wt, a, a + 10 * ps, v, 4, PM_WT_COLLECT_RESET,
							   &we), 1);
			ck_assert(v[0].start == a + ps && v[0].end == a + 2 * ps);
		}
		{
			struct pm_wtrack_stats st = { .size = 12, .collects = 5 };

			ck_assert_int_eq(pm_wtrack_stats(wt, NULL), -EINVAL);
			ck_assert_int_eq(pm_wtrack_stats(wt, &st), -EINVAL);
			st.size = 8;
			ck_assert_int_eq(pm_wtrack_stats(wt, &st), -EINVAL);
			ck_assert_uint_eq(st.collects, 5);
		}
		pm_wtrack_free(wt);
		/* freed: the memory can be tracked again */
		ck_assert_int_eq(pm_wtrack_new(h, overlap, 1, NULL, &wt), 0);
		pm_wtrack_free(wt);
	}
	pm_close(h);
	munmap(p, n * ps);
}
END_TEST

static int (*real_ioctl)(int, unsigned long, void *);

/* A kernel before the 2026 stable fixes (6.7-6.12.104) reports a zapped
 * PMD as clean: injected here by hiding every written region of 2 MiB or
 * more from the non-protecting scans. The library's probe must see it and
 * refuse the method, saying why. */
static int hide_zapped_pmds(int fd, unsigned long req, void *arg)
{
	struct pm__scan_arg *a = arg;
	struct pm__page_region *v;
	int r = real_ioctl(fd, req, arg), n = 0;

	if (req != PM__PAGEMAP_SCAN || r <= 0 || (a->flags & PM_SCAN_F_WP_MATCHING))
		return r;
	v = (struct pm__page_region *)(uintptr_t)a->vec;
	for (int i = 0; i < r; i++)
		if (v[i].end - v[i].start < HUGE_SZ)
			v[n++] = v[i];
	return n;
}

START_TEST(uffd_lost_zaps_refused)
{
	PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_METHOD_UFFD);
	struct pm_wtrack *wt = NULL;
	struct pm_handle *h;
	char why[256] = "";
	char *p = xmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct pm_range r = { (uintptr_t)p, (uintptr_t)p + 16 * ps };

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = hide_zapped_pmds;
	ck_assert_int_eq(pm_wtrack_supported(h, &uffd, why, sizeof(why)), 0);
	ck_assert_msg(strstr(why, "zapped"), "%s", why);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &uffd, &wt), -EOPNOTSUPP);
	ck_assert_ptr_null(wt);
	pm__sys.ioctl = real_ioctl;
	pm_close(h);
	munmap(p, 16 * ps);
}
END_TEST

/* A kernel without WP_ASYNC (6.1-6.6) refuses it in UFFDIO_API: the UFFD
 * method is unsupported, and AUTO falls back to soft-dirty where that
 * works. (The 6.1 VM runs the same case for real.) */
static int no_wp_async(int fd, unsigned long req, void *arg)
{
	if (req == UFFDIO_API) {
		errno = EINVAL;
		return -1;
	}
	return real_ioctl(fd, req, arg);
}

/* A kernel error after part of a collect was reported and reset (here
 * ENOMEM, injected into the second range's PAGEMAP_SCAN): what was reset
 * is handed over with walk_end, and the call continuing from there goes
 * on, so nothing reported to the kernel as collected is lost. */
static int scan_calls, fail_at;

static int fail_nth_scan(int fd, unsigned long req, void *arg)
{
	if (req == PM__PAGEMAP_SCAN && ++scan_calls == fail_at) {
		errno = ENOMEM;
		return -1;
	}
	return real_ioctl(fd, req, arg);
}

START_TEST(uffd_error_midway)
{
	struct own o;
	struct pm_range r[2];
	struct pm_wtrack *wt;
	struct pm_region v[4];
	uint64_t a, we;

	own_start(&o, 64, 64, PM_WT_METHOD_UFFD);
	a = (uintptr_t)o.p;
	r[0] = (struct pm_range){ a, a + 16 * ps };
	r[1] = (struct pm_range){ a + 32 * ps, a + 48 * ps };
	pm_wtrack_free(o.wt);
	ck_assert_int_eq(pm_wtrack_new(o.h, r, 2, NULL, &wt), 0);
	o.wt = wt;
	o.p[5 * ps] = o.p[40 * ps] = 1;
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = fail_nth_scan;
	scan_calls = 0;
	fail_at = 4; /* two registration checks, the first range, the second */
	ck_assert_int_eq(pm_wtrack_collect(wt, a, a + 48 * ps, v, 4, PM_WT_COLLECT_RESET, &we), 1);
	ck_assert(v[0].start == a + 5 * ps && v[0].end == a + 6 * ps);
	ck_assert_uint_eq(we, a + 6 * ps);
	pm__sys.ioctl = real_ioctl;
	ck_assert_int_eq(pm_wtrack_collect(wt, we, a + 48 * ps, v, 4, PM_WT_COLLECT_RESET, &we), 1);
	ck_assert(v[0].start == a + 40 * ps && v[0].end == a + 41 * ps);
	ck_assert_uint_eq(we, a + 48 * ps);
	own_stop(&o);
}
END_TEST

START_TEST(uffd_without_wp_async)
{
	const size_t n = 16;
	char *p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct pm_range r = { (uintptr_t)p, (uintptr_t)p + n * ps };
	PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_METHOD_UFFD);
	struct pm_handle *h;
	struct pm_wtrack *wt = NULL;
	int ret;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	/* the real kernel probed first (probes run at first use): what is
	 * refused below is the tracker's own UFFDIO_API */
	(void)pm_has_feature(PM_FEAT_UFFD_WP_ASYNC);
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = no_wp_async;
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &uffd, &wt), -EOPNOTSUPP);
	ret = pm_wtrack_new(h, &r, 1, NULL, &wt);
	if (have_sd) {
		ck_assert_int_eq(ret, 0);
		ck_assert_int_eq(pm_wtrack_method(wt), PM_WT_METHOD_SOFT_DIRTY);
		pm_wtrack_free(wt);
	} else {
		ck_assert_int_eq(ret, -EOPNOTSUPP);
	}
	pm__sys.ioctl = real_ioctl;
	/* and the real kernel's answer */
	ret = pm_wtrack_new(h, &r, 1, &uffd, &wt);
	ck_assert_int_eq(ret, have_uffd ? 0 : -EOPNOTSUPP);
	if (!ret)
		pm_wtrack_free(wt);
	pm_close(h);
	munmap(p, n * ps);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wtrack-api");
	TCase *t = tcase_create("wtrack-api");

	wtrack_test_init();
	tcase_set_timeout(t, 300);
	tcase_add_test(t, errors);
	tcase_add_test(t, supported);
	tcase_add_test(t, uffd_without_wp_async);
	add_test_if(t, uffd_error_midway, have_uffd, NO_UFFD);
	add_test_if(t, uffd_lost_zaps_refused, have_uffd, NO_UFFD);
	suite_add_tcase(s, t);
	return run_suite(s);
}
