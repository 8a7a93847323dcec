/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_batch: URING, SYNC and AUTO give byte-identical results to pm_read on
 * many child processes; one failing read fails alone; io_uring refused by
 * the kernel falls back to sync; no fd is left open. */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCHILD 200
#define PAGES 512
static const uint64_t span_pages = PAGES + (1UL << 30) / 4096 + 16;

/* 512 pages with a random pattern, a 1 GiB hole (a planned gap), 16 more
 * pages; reserved first so that nothing the parent shares lands in the
 * hole (the parent's writes would change those pages' exclusive bit). */
static void build(void *arg, uint64_t *sh)
{
	uint64_t seed = (uintptr_t)arg;
	char *p = xmap(NULL, span_pages * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	xmap(p, PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	madvise(p, PAGES * ps, MADV_NOHUGEPAGE);
	for (uint64_t i = 0; i < PAGES; i++)
		if (rnd(&seed) & 1)
			p[i * ps] = 1;
	munmap(p + PAGES * ps, (1UL << 30));
	xmap(p + PAGES * ps + (1UL << 30), 16 * ps, PROT_READ | PROT_WRITE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	p[PAGES * ps + (1UL << 30)] = 1;
	sh[0] = (uintptr_t)p;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

struct job {
	struct child c;
	struct pm_handle *h;
	uint64_t *want, *got;
	long res;
	struct pm_read_info info;
};


static void run_backend(struct job *j, int n, uint64_t backend, int *used)
{
	PM_OPTS(pm_batch_opts, o, .backend = backend);
	struct pm_batch *b;

	ck_assert_int_eq(pm_batch_new(&o, &b), 0);
	for (int i = 0; i < n; i++) {
		memset(j[i].got, 0xa5, span_pages * 8);
		j[i].res = 12345;
		j[i].info.size = sizeof(j[i].info);
		ck_assert_int_eq(pm_batch_add_read(b, j[i].h, j[i].c.shared[0],
						   j[i].c.shared[0] + span_pages * ps, j[i].got,
						   &j[i].info, &j[i].res),
				 0);
	}
	ck_assert_int_eq(pm_batch_run(b), 0);
	*used = pm_batch_backend(b);
	pm_batch_free(b);
}

START_TEST(batch_backends_identical)
{
	struct job *j = calloc(NCHILD, sizeof(*j));
	int fds_before, used;

	for (int i = 0; i < NCHILD; i++) {
		child_start(&j[i].c, build, (void *)(uintptr_t)(i + 1));
		ck_assert_int_eq(pm_open(j[i].c.pid, NULL, &j[i].h), 0);
		j[i].want = malloc(span_pages * 8);
		j[i].got = malloc(span_pages * 8);
		ck_assert_int_eq(pm_read(j[i].h, j[i].c.shared[0], j[i].c.shared[0] + span_pages * ps,
					 j[i].want, NULL, NULL),
				 (long)span_pages);
	}
	fds_before = count_fds();
	for (uint64_t be = PM_BACKEND_AUTO; be <= PM_BACKEND_SYNC; be++) {
		run_backend(j, NCHILD, be, &used);
		if (be == PM_BACKEND_SYNC)
			ck_assert_int_eq(used, PM_BACKEND_SYNC);
		if (be == PM_BACKEND_URING && pm_has_feature(PM_FEAT_IO_URING) == 1)
			ck_assert_int_eq(used, PM_BACKEND_URING);
		for (int i = 0; i < NCHILD; i++) {
			ck_assert_int_eq(j[i].res, (long)span_pages);
			ck_assert_msg(!memcmp(j[i].want, j[i].got, span_pages * 8),
				      "backend %lu child %d differs", (unsigned long)be, i);
			ck_assert_uint_ge(j[i].info.kernel_reads, 1);
		}
	}
	ck_assert_int_eq(count_fds(), fds_before);
	/* one child gone, one bad range: those reads fail alone */
	for (uint64_t be = PM_BACKEND_URING; be <= PM_BACKEND_SYNC; be++) {
		PM_OPTS(pm_batch_opts, o, .backend = be);
		struct pm_batch *b;
		long bad = 0;

		ck_assert_int_eq(pm_batch_new(&o, &b), 0);
		for (int i = 0; i < NCHILD; i++)
			ck_assert_int_eq(pm_batch_add_read(b, j[i].h, j[i].c.shared[0],
							   j[i].c.shared[0] + span_pages * ps,
							   j[i].got, NULL, &j[i].res),
					 0);
		ck_assert_int_eq(pm_batch_add_read(b, j[0].h, j[0].c.shared[0] + 1,
						   j[0].c.shared[0] + ps, j[0].got, NULL, &bad),
				 0);
		if (be == PM_BACKEND_URING) {
			kill(j[7].c.pid, SIGKILL);
			waitpid(j[7].c.pid, NULL, 0);
		}
		ck_assert_int_eq(pm_batch_run(b), 0);
		ck_assert_int_eq(bad, -EINVAL);
		for (int i = 1; i < NCHILD; i++) {
			if (i == 7) {
				ck_assert_int_eq(j[i].res, -ESRCH);
				continue;
			}
			ck_assert_int_eq(j[i].res, (long)span_pages);
			ck_assert(!memcmp(j[i].want, j[i].got, span_pages * 8));
		}
		pm_batch_free(b);
	}
	for (int i = 0; i < NCHILD; i++) {
		pm_close(j[i].h);
		if (i != 7)
			child_stop(&j[i].c);
		free(j[i].want);
		free(j[i].got);
	}
	free(j);
}
END_TEST

/* io_uring refused by the kernel (io_uring_disabled=2, 6.6+): the batch
 * runs sync and says so. Changes the sysctl for the test's duration. */
START_TEST(batch_uring_disabled_falls_back)
{
	const char *path = "/proc/sys/kernel/io_uring_disabled";
	char old[8] = "";
	int fd = open(path, O_RDWR | O_CLOEXEC), used;
	struct job j = { 0 };

	if (fd < 0 || read(fd, old, sizeof(old) - 1) <= 0 || pwrite(fd, "2", 1, 0) != 1) {
		if (fd >= 0)
			close(fd);
		fprintf(stderr, "SKIP batch_uring_disabled_falls_back: %s not writable here\n",
			path);
		return;
	}
	child_start(&j.c, build, (void *)99);
	ck_assert_int_eq(pm_open(j.c.pid, NULL, &j.h), 0);
	j.want = malloc(span_pages * 8);
	j.got = malloc(span_pages * 8);
	ck_assert_int_eq(pm_read(j.h, j.c.shared[0], j.c.shared[0] + span_pages * ps, j.want, NULL,
				 NULL),
			 (long)span_pages);
	run_backend(&j, 1, PM_BACKEND_URING, &used);
	(void)!pwrite(fd, old, strlen(old), 0);
	close(fd);
	ck_assert_int_eq(used, PM_BACKEND_SYNC);
	ck_assert_int_eq(j.res, (long)span_pages);
	ck_assert(!memcmp(j.want, j.got, span_pages * 8));
	pm_close(j.h);
	child_stop(&j.c);
	free(j.want);
	free(j.got);
}
END_TEST

START_TEST(batch_bad_arguments)
{
	struct pm_batch *b = NULL;
	struct pm_batch_opts o = { .size = sizeof(o), .backend = 7 };
	long res;

	ck_assert_int_eq(pm_batch_new(&o, &b), -EINVAL);
	o.backend = PM_BACKEND_SYNC;
	o.read_flags = 1ULL << 30;
	ck_assert_int_eq(pm_batch_new(&o, &b), -EINVAL);
	ck_assert_int_eq(pm_batch_new(NULL, NULL), -EINVAL);
	ck_assert_int_eq(pm_batch_new(NULL, &b), 0);
	ck_assert_int_eq(pm_batch_add_read(b, NULL, 0, 4096, NULL, NULL, &res), -EINVAL);
	ck_assert_int_eq(pm_batch_add_read(NULL, NULL, 0, 4096, NULL, NULL, &res), -EINVAL);
	ck_assert_int_eq(pm_batch_run(NULL), -EINVAL);
	ck_assert_int_eq(pm_batch_backend(NULL), -EINVAL);
	ck_assert_int_eq(pm_batch_run(b), 0); /* an empty batch */
	pm_batch_free(b);
	pm_batch_free(NULL);
}
END_TEST

/* Children killed while the batch runs: each of their reads is complete
 * or -ESRCH, never partial or shifted; the others are unaffected. */
struct killer {
	struct job *j;
	int from, to;
};

static void *kill_some(void *arg)
{
	struct killer *k = arg;

	usleep(200);
	for (int i = k->from; i < k->to; i++)
		kill(k->j[i].c.pid, SIGKILL);
	return NULL;
}

START_TEST(batch_exit_mid_run)
{
	const int n = 40, victims = 10;
	struct job *j = calloc(n, sizeof(*j));
	struct killer k = { j, n - victims, n };

	for (uint64_t be = PM_BACKEND_URING; be <= PM_BACKEND_SYNC; be++) {
		PM_OPTS(pm_batch_opts, o, .backend = be);
		struct pm_batch *b;
		pthread_t th;

		for (int i = 0; i < n; i++) {
			child_start(&j[i].c, build, (void *)(uintptr_t)(i + 1));
			ck_assert_int_eq(pm_open(j[i].c.pid, NULL, &j[i].h), 0);
			j[i].want = malloc(span_pages * 8);
			j[i].got = malloc(span_pages * 8);
			ck_assert_int_eq(pm_read(j[i].h, j[i].c.shared[0],
						 j[i].c.shared[0] + span_pages * ps, j[i].want, NULL,
						 NULL),
					 (long)span_pages);
		}
		ck_assert_int_eq(pm_batch_new(&o, &b), 0);
		for (int i = 0; i < n; i++)
			ck_assert_int_eq(pm_batch_add_read(b, j[i].h, j[i].c.shared[0],
							   j[i].c.shared[0] + span_pages * ps,
							   j[i].got, NULL, &j[i].res),
					 0);
		pthread_create(&th, NULL, kill_some, &k);
		ck_assert_int_eq(pm_batch_run(b), 0);
		pthread_join(th, NULL);
		for (int i = 0; i < n; i++) {
			if (i >= n - victims && j[i].res == -ESRCH)
				continue;
			ck_assert_int_eq(j[i].res, (long)span_pages);
			ck_assert(!memcmp(j[i].want, j[i].got, span_pages * 8));
		}
		pm_batch_free(b);
		for (int i = 0; i < n; i++) {
			pm_close(j[i].h);
			if (i < n - victims)
				child_stop(&j[i].c);
			else
				waitpid(j[i].c.pid, NULL, 0);
			free(j[i].want);
			free(j[i].got);
		}
	}
	free(j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("batch");
	TCase *t = tcase_create("batch");

	test_init();
	/* 200 handles and their children's pipes need more than 1024 fds */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	tcase_set_timeout(t, 300);
	tcase_add_test(t, batch_backends_identical);
	tcase_add_test(t, batch_exit_mid_run);
	tcase_add_test(t, batch_uring_disabled_falls_back);
	tcase_add_test(t, batch_bad_arguments);
	suite_add_tcase(s, t);
	return run_suite(s);
}
