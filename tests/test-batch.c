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
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

/* Item 10 of issue 14: the same batch on io_uring and sync reports the
 * same infos, field by field, over real mappings in two children: a span
 * larger than one io_uring chunk (1 GiB), small VMAs with gaps, a short
 * read, a bad one, infos of every size, and a handle that comes back
 * after another's reads. */
#define PARITY_BIG ((1UL << 30) + 16 * 4096)
#define PARITY_SMALL 64

static void parity_build(void *arg, uint64_t *sh)
{
	uint64_t seed = (uintptr_t)arg;
	char *a = xmap(NULL, PARITY_BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *b = xmap(NULL, 2 * PARITY_SMALL * 4 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	madvise(a, PARITY_BIG, MADV_NOHUGEPAGE);
	for (uint64_t i = 0; i < PARITY_BIG / ps; i += 1 + rnd(&seed) % 4096)
		a[i * ps] = 1;
	/* 4-page VMAs, 4-page holes between them */
	for (int i = 0; i < PARITY_SMALL; i++) {
		munmap(b + (2 * i + 1) * 4 * ps, 4 * ps);
		mprotect(b + 2 * i * 4 * ps, 4 * ps, PROT_READ | PROT_WRITE);
		b[2 * i * 4 * ps] = 1;
	}
	sh[0] = (uintptr_t)a;
	sh[1] = (uintptr_t)b;
}

#define PARITY_READS 6

struct parity_run {
	uint64_t *buf[2][PARITY_READS];
	struct pm_read_info info[2][PARITY_READS];
	long res[2][PARITY_READS];
};

static uint64_t parity_len(int r)
{
	switch (r) {
	case 0: return PARITY_BIG;
	case 1: return 2 * PARITY_SMALL * 4 * ps;
	case 2: return 16 * ps;
	default: return ps;
	}
}

/* Reads, in order: child 0's six, child 1's six, child 0's first again
 * (into the first buffer: the same answer). */
static int parity_run(struct child *c, struct pm_handle **h, uint64_t backend, uint64_t flags,
		      struct parity_run *pr)
{
	PM_OPTS(pm_batch_opts, o, .backend = backend, .read_flags = flags);
	/* infos of every size a caller may have: all fields, the first four,
	 * the size field only, none */
	static const uint64_t sizes[PARITY_READS] = { sizeof(struct pm_read_info), 32, 8,
						      sizeof(struct pm_read_info), 0,
						      sizeof(struct pm_read_info) };
	struct pm_batch *b;
	int used;

	ck_assert_int_eq(pm_batch_new(&o, &b), 0);
	for (int ci = 0; ci < 3; ci++) {
		int k = ci % 2;

		for (int r = 0; r < (ci == 2 ? 1 : PARITY_READS); r++) {
			uint64_t start = c[k].shared[r == 1 ? 1 : 0] + (r == 3 ? PARITY_BIG - ps : 0);
			struct pm_read_info *info = sizes[r] ? &pr->info[k][r] : NULL;

			if (r == 4)
				start = c[k].shared[0] + 8 * ps;
			memset(pr->buf[k][r], 0xa5, parity_len(r) / ps * 8);
			memset(&pr->info[k][r], 0x5a, sizeof(pr->info[k][r]));
			pr->info[k][r].size = sizes[r];
			pr->res[k][r] = 12345;
			ck_assert_int_eq(pm_batch_add_read(b, h[k], start + (r == 5 ? 1 : 0),
							   start + parity_len(r), pr->buf[k][r],
							   info, &pr->res[k][r]),
					 0);
		}
	}
	ck_assert_int_eq(pm_batch_run(b), 0);
	used = pm_batch_backend(b);
	pm_batch_free(b);
	return used;
}

static bool parity_retried(const struct parity_run *pr)
{
	for (int k = 0; k < 2; k++)
		for (int r = 0; r < PARITY_READS; r++)
			if (pr->res[k][r] >= 0 && pr->info[k][r].size >= 16 &&
			    (pr->info[k][r].flags & PM_READ_INFO_RETRIED))
				return true;
	return false;
}

static void parity_compare(const struct parity_run *u, const struct parity_run *s, uint64_t flags)
{
	static const char *const field[] = { "size", "flags", "retries", "kernel_reads",
					     "uncertain", "uncertain_cap", "uncertain_count" };

	for (int k = 0; k < 2; k++)
		for (int r = 0; r < PARITY_READS; r++) {
			const uint64_t *fu = (const uint64_t *)&u->info[k][r];
			const uint64_t *fs = (const uint64_t *)&s->info[k][r];

			ck_assert_int_eq(s->res[k][r], r == 5 ? -EINVAL : (long)(parity_len(r) / ps));
			ck_assert_int_eq(u->res[k][r], s->res[k][r]);
			if (r != 5)
				ck_assert_msg(!memcmp(u->buf[k][r], s->buf[k][r], parity_len(r) / ps * 8),
					      "flags %lu child %d read %d: entries differ",
					      (unsigned long)flags, k, r);
			for (size_t f = 0; f < sizeof(field) / sizeof(field[0]); f++)
				ck_assert_msg(fu[f] == fs[f],
					      "flags %lu child %d read %d: %s %llu on io_uring, "
					      "%llu on sync",
					      (unsigned long)flags, k, r, field[f],
					      (unsigned long long)fu[f], (unsigned long long)fs[f]);
		}
}

START_TEST(batch_infos_same_on_both_backends)
{
	static const uint64_t flag_sets[] = { 0, PM_READ_F_SNAPSHOT };
	struct parity_run *u = calloc(1, sizeof(*u)), *s = calloc(1, sizeof(*s));
	struct child c[2];
	struct pm_handle *h[2];

	for (int k = 0; k < 2; k++) {
		child_start(&c[k], parity_build, (void *)(uintptr_t)(k + 1));
		ck_assert_int_eq(pm_open(c[k].pid, NULL, &h[k]), 0);
		for (int r = 0; r < PARITY_READS; r++) {
			u->buf[k][r] = malloc(parity_len(r) / ps * 8);
			s->buf[k][r] = malloc(parity_len(r) / ps * 8);
		}
	}
	for (size_t fi = 0; fi < sizeof(flag_sets) / sizeof(flag_sets[0]); fi++) {
		/* a guarded read the system's THP events disturbed is read
		 * again: its counts are the disturbance's, not the backend's */
		for (int tries = 0;; tries++) {
			ck_assert_int_eq(parity_run(c, h, PM_BACKEND_URING, flag_sets[fi], u),
					 PM_BACKEND_URING);
			ck_assert_int_eq(parity_run(c, h, PM_BACKEND_SYNC, flag_sets[fi], s),
					 PM_BACKEND_SYNC);
			if ((!parity_retried(u) && !parity_retried(s)) || tries == 4)
				break;
		}
		parity_compare(u, s, flag_sets[fi]);
	}
	for (int k = 0; k < 2; k++) {
		pm_close(h[k]);
		child_stop(&c[k]);
		for (int r = 0; r < PARITY_READS; r++) {
			free(u->buf[k][r]);
			free(s->buf[k][r]);
		}
	}
	free(u);
	free(s);
}
END_TEST

/* The identity check covers every read of a handle, wherever its reads
 * sit in the batch: a CLONE_VM child that exited leaves fds that read our
 * own memory, which only the check refuses. Its reads come before and
 * after reads of another process that all fail. As a zombie its stat
 * file still reads (with PM_READ_F_SNAPSHOT the guard's closing token
 * then gives the check's answer); reaped, it does not. */
static int vm_child(void *arg)
{
	char ch;

	/* shares our memory and TLS: raw system calls only */
	syscall(SYS_read, *(int *)arg, &ch, 1);
	syscall(SYS_exit, 0);
	return 0;
}

static void identity_batches(struct pm_handle *gone, struct pm_handle *other, uint64_t a,
			     uint64_t e[3][16])
{
	for (int f = 0; f < 2; f++)
		for (uint64_t be = PM_BACKEND_URING; be <= PM_BACKEND_SYNC; be++) {
			PM_OPTS(pm_batch_opts, o, .backend = be,
				.read_flags = f ? PM_READ_F_SNAPSHOT : 0);
			struct pm_batch *b;
			long res[3] = { 0 };

			ck_assert_int_eq(pm_batch_new(&o, &b), 0);
			ck_assert_int_eq(pm_batch_add_read(b, gone, a, a + 16 * ps, e[0], NULL,
							   &res[0]),
					 0);
			ck_assert_int_eq(pm_batch_add_read(b, other, a + 1, a + ps, e[1], NULL,
							   &res[1]),
					 0);
			ck_assert_int_eq(pm_batch_add_read(b, gone, a, a + 16 * ps, e[2], NULL,
							   &res[2]),
					 0);
			ck_assert_int_eq(pm_batch_run(b), 0);
			ck_assert_int_eq(res[0], -ESRCH);
			ck_assert_int_eq(res[1], -EINVAL);
			ck_assert_int_eq(res[2], -ESRCH);
			pm_batch_free(b);
		}
}

START_TEST(batch_identity_every_read)
{
	char *stack = xmap(NULL, 64 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = xmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t a = (uintptr_t)p, e[3][16];
	struct pm_handle *gone, *other;
	struct child c;
	siginfo_t si;
	int go[2];
	pid_t pid;

	memset(p, 1, 16 * ps);
	child_start(&c, build, (void *)1);
	ck_assert_int_eq(pm_open(c.pid, NULL, &other), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	pid = clone(vm_child, stack + 64 * 1024, CLONE_VM | SIGCHLD, &go[0]);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(pm_open(pid, NULL, &gone), 0);
	ck_assert_int_eq(write(go[1], "x", 1), 1);
	ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	identity_batches(gone, other, a, e); /* a zombie */
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	identity_batches(gone, other, a, e); /* reaped */
	pm_close(gone);
	pm_close(other);
	child_stop(&c);
	close(go[0]);
	close(go[1]);
	munmap(p, 16 * ps);
	munmap(stack, 64 * 1024);
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
	tcase_add_test(t, batch_identity_every_read);
	add_test_if(t, batch_infos_same_on_both_backends, pm_has_feature(PM_FEAT_IO_URING) == 1,
		    "no io_uring here: one backend only");
	suite_add_tcase(s, t);
	return run_suite(s);
}
