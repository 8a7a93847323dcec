/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One handle, eight threads: every call on a shared handle (and the
 * kernel probe) is thread-safe, with the maps text as the VMA source. */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define THREADS 8
#define VMAS 3000 /* about 200 KiB of maps text: several reads of it */
#define ROUNDS 10

/* Many small VMAs: alternate protections keep neighbours apart. */
static void build_many(void *arg, uint64_t *sh)
{
	char *p = xmap(NULL, 2 * VMAS * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1);

	(void)arg;
	for (size_t i = 0; i < 2 * VMAS; i++) {
		p[i * ps] = 1;
		if (i % 2)
			mprotect(p + i * ps, ps, PROT_READ);
	}
	sh[0] = (uintptr_t)p;
}

struct job {
	struct pm_handle *h;
	uint64_t start, end;
	long bad, bad_where;
};

static void *worker(void *arg)
{
	PM_OPTS(pm_scan_opts, so, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	struct job *j = arg;
	size_t n = (size_t)((j->end - j->start) / ps);
	uint64_t *e = malloc(n * 8);
	struct pm_region *reg = malloc(2 * VMAS * sizeof(*reg));
	struct pm_kernel_info ki = { .size = sizeof(ki) };

	for (int i = 0; i < ROUNDS && e && reg && !j->bad; i++) {
		struct pm_vma_list *l = NULL;
		PM_OPTS(pm_batch_opts, bo, .backend = i % 2 ? PM_BACKEND_URING : PM_BACKEND_SYNC);
		struct pm_batch *b = NULL;
		long r, res = 0;

		r = pm_vmas(j->h, &l);
		if (r == 0 && pm_vma_count(l) < 2 * VMAS)
			r = -ENODATA;
		pm_vma_list_free(l);
		if (r) {
			j->bad = r;
			j->bad_where = 1;
			break;
		}
		r = pm_scan(j->h, j->start, j->end, reg, 2 * VMAS, &so, NULL);
		if (r != 1) {
			j->bad = r;
			j->bad_where = 2;
			break;
		}
		r = pm_read(j->h, j->start, j->end, e, NULL, NULL);
		if (r != (long)n) {
			j->bad = r;
			j->bad_where = 3;
			break;
		}
		r = pm_batch_new(&bo, &b);
		if (!r)
			r = pm_batch_add_read(b, j->h, j->start, j->end, e, NULL, &res);
		if (!r)
			r = pm_batch_run(b);
		pm_batch_free(b);
		if (r || res != (long)n) {
			j->bad = r ? r : res;
			j->bad_where = 4;
			break;
		}
		r = pm_kernel_probe(&ki);
		if (r) {
			j->bad = r;
			j->bad_where = 5;
		}
	}
	free(e);
	free(reg);
	return NULL;
}

static void run_threads(struct pm_handle *h, uint64_t start, uint64_t end)
{
	static const char *where[] = { "", "pm_vmas", "pm_scan", "pm_read", "pm_batch",
				       "pm_kernel_probe" };
	pthread_t t[THREADS];
	struct job j[THREADS];

	for (int i = 0; i < THREADS; i++) {
		j[i] = (struct job){ .h = h, .start = start, .end = end };
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &j[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < THREADS; i++)
		ck_assert_msg(!j[i].bad, "thread %d: %s: %ld", i, where[j[i].bad_where], j[i].bad);
}

START_TEST(maps_text_handle_shared)
{
	PM_OPTS(pm_open_opts, oo, .flags = PM_OPEN_MAPS_TEXT);
	struct pm_handle *h;
	struct child c;
	uint64_t a;

	child_start(&c, build_many, NULL);
	a = c.shared[0];
	ck_assert_int_eq(pm_open(c.pid, &oo, &h), 0);
	run_threads(h, a, a + 2 * VMAS * ps);
	pm_close(h);
	child_stop(&c);
}
END_TEST

/* A thread of the child splits and merges a VMA listed before all the
 * others, so the maps text shifts under a reader that is not alone at its
 * file position. */
static void *churn(void *arg)
{
	char *q = arg;

	for (;;) {
		mprotect(q + ps, ps, PROT_READ);
		mprotect(q + ps, ps, PROT_READ | PROT_WRITE);
	}
	return NULL;
}

static void build_many_churning(void *arg, uint64_t *sh)
{
	pthread_t t;
	char *q;

	/* mapped after the others, so below them (mmap goes top-down):
	 * listed first. No fixed address: a sanitizer's shadow is there. */
	build_many(arg, sh);
	q = xmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (pthread_create(&t, NULL, churn, q))
		abort();
}

struct lister {
	struct pm_handle *h;
	long bad;
};

static void *list_often(void *arg)
{
	struct lister *j = arg;

	for (int i = 0; i < 100 && !j->bad; i++) {
		struct pm_vma_list *l = NULL;
		long r = pm_vmas(j->h, &l);

		if (r == 0 && pm_vma_count(l) < 2 * VMAS)
			r = -ENODATA;
		pm_vma_list_free(l);
		j->bad = r;
	}
	return NULL;
}

/* Issue #14 item 13: 8 threads listing through one maps-text handle got
 * -EIO when the list changed, each reading at its own file position. */
START_TEST(maps_text_shared_while_maps_change)
{
	PM_OPTS(pm_open_opts, oo, .flags = PM_OPEN_MAPS_TEXT);
	struct lister j[THREADS];
	pthread_t t[THREADS];
	struct pm_handle *h;
	struct child c;

	child_start(&c, build_many_churning, NULL);
	ck_assert_int_eq(pm_open(c.pid, &oo, &h), 0);
	for (int i = 0; i < THREADS; i++) {
		j[i] = (struct lister){ .h = h };
		ck_assert_int_eq(pthread_create(&t[i], NULL, list_often, &j[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < THREADS; i++)
		ck_assert_msg(!j[i].bad, "thread %d: pm_vmas: %ld", i, j[i].bad);
	pm_close(h);
	child_stop(&c);
}
END_TEST

START_TEST(default_handle_shared)
{
	struct pm_handle *h;
	struct child c;
	uint64_t a;

	child_start(&c, build_many, NULL);
	a = c.shared[0];
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	run_threads(h, a, a + 2 * VMAS * ps);
	pm_close(h);
	child_stop(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("threads");

	test_init();
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, maps_text_handle_shared);
	tcase_add_test(tc, default_handle_shared);
	tcase_add_test(tc, maps_text_shared_while_maps_change);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
