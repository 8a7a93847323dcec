/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A live 32-bit x86 target (CRIU dumps them): its address space ends near
 * 4 GiB, far below ours, and the kernel answers a pagemap read at or above
 * that top with EOF, as it does for an exited target. Reads, scans,
 * batches and usage over such ranges succeed and say "not mapped"; an
 * exited 32-bit target is still -ESRCH. The target is tests/t32/target32.s
 * (argv[1]); a kernel that cannot run it (no IA32 emulation) is a skip,
 * except on the VM suite's kernel lines, which have it. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOP4G (1ULL << 32)
#define HIGH_PAGE 0xffffc000ULL /* written by the target, below its top */
#define PAST_TOP (TOP4G + (16ULL << 12))

static const char *target_path;

/* The target: its four pages at a, pages 0, 1 and 3 written. */
struct t32 {
	pid_t pid;
	uint64_t a;
};

/* Start the target: 0, or the errno its exec failed with. It dies with
 * the test process that started it, whatever way that ends. */
static int spawn(struct t32 *t)
{
	int out[2], err[2], e = 0;
	uint32_t a = 0;
	ssize_t n;

	if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		return errno;
	t->pid = fork();
	if (t->pid < 0)
		return errno;
	if (t->pid == 0) {
		char *argv[] = { (char *)target_path, NULL };

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(out[1], 1) == 1)
			execv(target_path, argv);
		e = errno;
		(void)!write(err[1], &e, sizeof(e));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	n = read(err[0], &e, sizeof(e));
	close(err[0]);
	if (n == sizeof(e)) {
		close(out[0]);
		waitpid(t->pid, NULL, 0);
		return e;
	}
	n = read(out[0], &a, sizeof(a));
	close(out[0]);
	if (n != sizeof(a)) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		return EIO;
	}
	t->a = a;
	return 0;
}

static void start(struct t32 *t)
{
	int e = spawn(t);

	ck_assert_msg(!e, "cannot run %s: %s", target_path, strerror(e));
}

static void finish(struct t32 *t)
{
	kill(t->pid, SIGKILL);
	ck_assert_int_eq(waitpid(t->pid, NULL, 0), t->pid);
}

/* What the kernel says of [start, end): the target's pagemap read until
 * it ends (at its address-space top), not mapped above. */
static void truth(pid_t pid, uint64_t start, uint64_t end, uint64_t *e)
{
	char path[64];
	size_t len = (size_t)((end - start) / ps * 8), done = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	memset(e, 0, len);
	while (done < len) {
		ssize_t r = pread(fd, (char *)e + done, len - done,
				  (off_t)(start / ps * 8 + done));

		ck_assert_int_ge(r, 0);
		if (r == 0)
			break;
		done += (size_t)r;
	}
	close(fd);
}

/* The premise: the kernel ends the target's pagemap at 4 GiB or below
 * (else nothing here tests a thing), and the target has a present page
 * right below its top (read ahead from there runs into the top). */
static void assert_premise(pid_t pid)
{
	char path[64];
	uint64_t e;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &e, 8, (off_t)(TOP4G / ps * 8)), 0);
	ck_assert_int_eq(pread(fd, &e, 8, (off_t)(HIGH_PAGE / ps * 8)), 8);
	ck_assert(pm_entry_present(e));
	close(fd);
}

static void assert_pages(const uint64_t *e)
{
	ck_assert(pm_entry_present(e[0]) && pm_entry_present(e[1]));
	ck_assert(!pm_entry_present(e[2]) && pm_entry_present(e[3]));
}

/* The ranges read: above the top (small: read blind; large: planned), the
 * end of the 4 GiB, straddling the top (from the page below it, small and
 * large); and each test's last, from the target's pages on past the top. */
struct range {
	uint64_t start, end;
};
static const struct range ranges[] = {
	{ TOP4G, TOP4G + (16ULL << 12) },
	{ TOP4G, TOP4G + (1ULL << 30) },
	{ TOP4G + (1ULL << 30), TOP4G + (1ULL << 30) + (1ULL << 12) },
	{ TOP4G - (16ULL << 12), TOP4G },
	{ HIGH_PAGE, TOP4G + (16ULL << 12) },
	{ TOP4G - (512ULL << 12), TOP4G + (512ULL << 12) },
};
#define NRANGES (sizeof(ranges) / sizeof(ranges[0]))

static size_t pages(const struct range *r)
{
	return (size_t)((r->end - r->start) / ps);
}

START_TEST(read_below_top)
{
	struct t32 t;
	struct pm_handle *h;
	uint64_t e[4];

	start(&t);
	ck_assert_int_eq(pm_open(t.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, t.a, t.a + 4 * ps, e, NULL, NULL), 4);
	assert_pages(e);
	pm_close(h);
	finish(&t);
}
END_TEST

/* Whether every entry at or above 4 GiB says not mapped (one assertion:
 * each costs a message to the test runner). */
static bool unmapped_above_top(const struct range *r, const uint64_t *e)
{
	uint64_t bad = 0;

	for (size_t k = 0; k < pages(r); k++)
		if (r->start + k * ps >= TOP4G)
			bad |= e[k];
	return !bad;
}

/* Each read on a handle of its own: a VMA list kept on a handle changes
 * how later reads are planned (blind, read ahead, or gaps skipped). */
static const uint64_t open_flags[] = { 0, PM_OPEN_MAPS_TEXT };
#define NOPEN (sizeof(open_flags) / sizeof(open_flags[0]))

static struct pm_handle *open_fresh(pid_t pid, size_t i)
{
	PM_OPTS(pm_open_opts, o, .flags = open_flags[i]);
	struct pm_handle *h;

	ck_assert_int_eq(pm_open(pid, &o, &h), 0);
	return h;
}

START_TEST(read_above_top_is_unmapped)
{
	static const uint64_t flags[] = { 0, PM_READ_F_SNAPSHOT };
	struct t32 t;

	start(&t);
	assert_premise(t.pid);
	for (size_t i = 0; i <= NRANGES; i++) {
		const struct range *r = i < NRANGES ? &ranges[i] : &(struct range){ t.a, PAST_TOP };
		size_t n = pages(r);
		uint64_t *e = malloc(n * 8), *want = malloc(n * 8);

		ck_assert_ptr_nonnull(e);
		ck_assert_ptr_nonnull(want);
		truth(t.pid, r->start, r->end, want);
		for (size_t f = 0; f < NOPEN * 2; f++) {
			PM_OPTS(pm_read_opts, o, .flags = flags[f % 2]);
			struct pm_handle *h = open_fresh(t.pid, f / 2);

			memset(e, 0xa5, n * 8);
			ck_assert_msg(pm_read(h, r->start, r->end, e, &o, NULL) == (long)n,
				      "pm_read [%#llx, %#llx) open %llu read %llu: %s",
				      (unsigned long long)r->start, (unsigned long long)r->end,
				      (unsigned long long)open_flags[f / 2],
				      (unsigned long long)flags[f % 2], strerror(errno));
			ck_assert_mem_eq(e, want, n * 8);
			ck_assert(unmapped_above_top(r, e));
			if (i == NRANGES)
				assert_pages(e);
			pm_close(h);
		}
		free(e);
		free(want);
	}
	finish(&t);
}
END_TEST

/* pm_scan for PRESENT over [start, end): the count, regions in reg. */
static long scan(struct pm_handle *h, uint64_t start, uint64_t end, bool emulate,
		 struct pm_region *reg, size_t cap, uint64_t *we)
{
	PM_OPTS(pm_scan_opts, o, .flags = emulate ? PM_SCAN_F_EMULATE : 0,
		.category_mask = PM_CAT_PRESENT, .return_mask = PM_CAT_PRESENT);

	*we = 0;
	return pm_scan(h, start, end, reg, cap, &o, we);
}

/* The regions of present pages in [start, end) by the kernel's pagemap. */
static long present_regions(pid_t pid, uint64_t start, uint64_t end, struct pm_region *reg,
			    size_t cap)
{
	size_t n = (size_t)((end - start) / ps), m = 0;
	uint64_t *e = malloc(n * 8);

	ck_assert_ptr_nonnull(e);
	truth(pid, start, end, e);
	for (size_t k = 0; k < n; k++) {
		uint64_t va = start + k * ps;

		if (!pm_entry_present(e[k]))
			continue;
		if (m && reg[m - 1].end == va) {
			reg[m - 1].end += ps;
			continue;
		}
		ck_assert_uint_lt(m, cap);
		reg[m++] = (struct pm_region){ va, va + ps, PM_CAT_PRESENT };
	}
	free(e);
	return (long)m;
}

static void scan_above_top(bool emulate)
{
	struct t32 t;
	struct pm_handle *h;
	struct pm_region reg[64], want[64];
	uint64_t we;
	long n, m;

	start(&t);
	assert_premise(t.pid);
	for (size_t i = 0; i <= NRANGES; i++) {
		/* the last: everything from the target's pages on */
		const struct range r = i < NRANGES ? ranges[i] : (struct range){ t.a, PAST_TOP };

		for (size_t f = 0; f < NOPEN; f++) {
			h = open_fresh(t.pid, f);
			n = scan(h, r.start, r.end, emulate, reg, 64, &we);
			ck_assert_msg(n >= 0, "pm_scan [%#llx, %#llx) open %llu: %s",
				      (unsigned long long)r.start, (unsigned long long)r.end,
				      (unsigned long long)open_flags[f], strerror(errno));
			ck_assert_uint_eq(we, r.end);
			for (long k = 0; k < n; k++)
				ck_assert_uint_le(reg[k].end, TOP4G);
			if (r.start >= TOP4G)
				ck_assert_int_eq(n, 0);
			pm_close(h);
			m = present_regions(t.pid, r.start, r.end, want, 64);
			ck_assert_int_eq(n, m);
			ck_assert_mem_eq(reg, want, (size_t)n * sizeof(*reg));
			if (i < NRANGES)
				continue;
			ck_assert_int_ge(n, 2);
			ck_assert_uint_eq(reg[0].start, t.a);
			ck_assert_uint_eq(reg[0].end, t.a + 2 * ps);
			ck_assert_uint_eq(reg[1].start, t.a + 3 * ps);
		}
	}
	finish(&t);
}

START_TEST(scan_emulated_above_top)
{
	scan_above_top(true);
}
END_TEST

START_TEST(scan_native_above_top)
{
	scan_above_top(false);
}
END_TEST

/* One batch of every range and the target's pages, each read on a fresh
 * handle of its own (as pm_read above). */
static void batch_above_top(uint64_t backend)
{
	PM_OPTS(pm_batch_opts, o, .backend = backend);
	struct t32 t;
	struct pm_handle *h[NRANGES + 1];
	struct pm_batch *b;
	uint64_t *e[NRANGES + 1], *want[NRANGES + 1];
	long res[NRANGES + 1];
	struct range r[NRANGES + 1];

	start(&t);
	assert_premise(t.pid);
	memcpy(r, ranges, sizeof(ranges));
	r[NRANGES] = (struct range){ t.a, PAST_TOP };
	for (size_t i = 0; i <= NRANGES; i++) {
		e[i] = malloc(pages(&r[i]) * 8);
		want[i] = malloc(pages(&r[i]) * 8);
		ck_assert(e[i] && want[i]);
		truth(t.pid, r[i].start, r[i].end, want[i]);
	}
	for (size_t f = 0; f < NOPEN; f++) {
		ck_assert_int_eq(pm_batch_new(&o, &b), 0);
		for (size_t i = 0; i <= NRANGES; i++) {
			h[i] = open_fresh(t.pid, f);
			ck_assert_int_eq(pm_batch_add_read(b, h[i], r[i].start, r[i].end, e[i],
							   NULL, &res[i]),
					 0);
		}
		ck_assert_int_eq(pm_batch_run(b), 0);
		if (backend == PM_BACKEND_URING && pm_has_feature(PM_FEAT_IO_URING) == 1)
			ck_assert_int_eq(pm_batch_backend(b), PM_BACKEND_URING);
		for (size_t i = 0; i <= NRANGES; i++) {
			ck_assert_msg(res[i] == (long)pages(&r[i]),
				      "batch read [%#llx, %#llx) open %llu: %ld",
				      (unsigned long long)r[i].start, (unsigned long long)r[i].end,
				      (unsigned long long)open_flags[f], res[i]);
			ck_assert_mem_eq(e[i], want[i], pages(&r[i]) * 8);
			pm_close(h[i]);
		}
		pm_batch_free(b);
	}
	for (size_t i = 0; i <= NRANGES; i++) {
		free(e[i]);
		free(want[i]);
	}
	finish(&t);
}

START_TEST(batch_sync_above_top)
{
	batch_above_top(PM_BACKEND_SYNC);
}
END_TEST

START_TEST(batch_uring_above_top)
{
	batch_above_top(PM_BACKEND_URING);
}
END_TEST

START_TEST(vmas_and_usage)
{
	PM_OPTS(pm_usage_opts, o, .fields = PM_USAGE_RSS);
	struct pm_usage u = { .size = sizeof(u) };
	struct t32 t;
	struct pm_handle *h;
	struct pm_vma_list *l;
	bool found = false;

	start(&t);
	ck_assert_int_eq(pm_open(t.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_vmas(h, &l), 0);
	for (size_t i = 0; i < pm_vma_count(l); i++) {
		const struct pm_vma *v = pm_vma_at(l, i);

		ck_assert_uint_le(v->end, TOP4G);
		found |= v->start == t.a && v->end == t.a + 4 * ps;
	}
	ck_assert(found);
	pm_vma_list_free(l);
	ck_assert_int_eq(pm_usage(h, 0, UINT64_MAX & ~(ps - 1), &o, &u), 0);
	ck_assert_uint_ge(u.rss, 3 * ps);
	for (size_t i = 0; i < NRANGES; i++) {
		ck_assert_int_eq(pm_usage(h, ranges[i].start, ranges[i].end, &o, &u), 0);
		if (ranges[i].start >= TOP4G)
			ck_assert_uint_eq(u.rss, 0);
	}
	pm_close(h);
	finish(&t);
}
END_TEST

/* Everything that reads through @h says -ESRCH, below the top and above. */
static void assert_gone(struct pm_handle *h, uint64_t a)
{
	struct pm_region reg[4];
	uint64_t e[16], we;

	ck_assert_int_eq(pm_read(h, a, a + 4 * ps, e, NULL, NULL), -ESRCH);
	ck_assert_int_eq(pm_read(h, TOP4G, TOP4G + 16 * ps, e, NULL, NULL), -ESRCH);
	ck_assert_int_eq(scan(h, TOP4G, TOP4G + 16 * ps, true, reg, 4, &we), -ESRCH);
	for (uint64_t be = PM_BACKEND_URING; be <= PM_BACKEND_SYNC; be++) {
		PM_OPTS(pm_batch_opts, o, .backend = be);
		struct pm_batch *b;
		long res[2];

		ck_assert_int_eq(pm_batch_new(&o, &b), 0);
		ck_assert_int_eq(pm_batch_add_read(b, h, a, a + 4 * ps, e, NULL, &res[0]), 0);
		ck_assert_int_eq(pm_batch_add_read(b, h, TOP4G, TOP4G + 4 * ps, e + 4, NULL,
						   &res[1]),
				 0);
		ck_assert_int_eq(pm_batch_run(b), 0);
		ck_assert_int_eq(res[0], -ESRCH);
		ck_assert_int_eq(res[1], -ESRCH);
		pm_batch_free(b);
	}
}

START_TEST(exited_target_is_esrch)
{
	struct t32 t;
	struct pm_handle *h;
	siginfo_t si;

	start(&t);
	ck_assert_int_eq(pm_open(t.pid, NULL, &h), 0);
	kill(t.pid, SIGKILL);
	ck_assert_int_eq(waitid(P_PID, (id_t)t.pid, &si, WEXITED | WNOWAIT), 0);
	assert_gone(h, t.a); /* a zombie */
	ck_assert_int_eq(waitpid(t.pid, NULL, 0), t.pid);
	assert_gone(h, t.a); /* reaped */
	pm_close(h);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;
	struct t32 t;
	int e;

	test_init();
	if (argc < 2) {
		fprintf(stderr, "SKIP: built without the 32-bit x86 target (needs an x86-64 "
				"build with as and ld)\n");
		return 77;
	}
	target_path = argv[1];
	e = spawn(&t);
	if (e == ENOEXEC && !kline()) {
		fprintf(stderr, "SKIP: this kernel cannot run 32-bit x86 programs (exec: %s)\n",
			strerror(e));
		return 77;
	}
	if (e) {
		fprintf(stderr, "cannot run %s: %s\n", target_path, strerror(e));
		return 1;
	}
	kill(t.pid, SIGKILL);
	waitpid(t.pid, NULL, 0);
	/* created only now: a skip above leaves nothing for LeakSanitizer */
	s = suite_create("compat32");
	tc = tcase_create("compat32");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, read_below_top);
	tcase_add_test(tc, read_above_top_is_unmapped);
	tcase_add_test(tc, scan_emulated_above_top);
	add_test_if(tc, scan_native_above_top, expect_feature(PM_FEAT_PAGEMAP_SCAN),
		    lacks(PM_FEAT_PAGEMAP_SCAN));
	tcase_add_test(tc, batch_sync_above_top);
	tcase_add_test(tc, batch_uring_above_top);
	tcase_add_test(tc, vmas_and_usage);
	tcase_add_test(tc, exited_target_is_esrch);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
