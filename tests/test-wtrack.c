/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write tracking on real memory: userfaultfd async write-protection on the
 * test's own memory (6.7+), soft-dirty on a real child process (kernels
 * with soft-dirty: the 6.1 VM). Fault injection only for a kernel without
 * WP_ASYNC, which the host cannot be.
 */
#include "common.h"
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

static bool have_uffd, have_sd;

/* Every page of [a, a + n pages) reported written by collect calls of
 * @vec_len regions each, continued through walk_end, into got[]. */
static void collect_all(struct pm_wtrack *wt, uint64_t a, size_t n, uint64_t flags,
			size_t vec_len, bool *got)
{
	struct pm_region v[16];
	uint64_t b = a + n * ps, we;

	ck_assert_uint_le(vec_len, 16);
	memset(got, 0, n);
	for (uint64_t cur = a; cur < b; cur = we) {
		long r = pm_wtrack_collect(wt, cur, b, v, vec_len, flags, &we);

		ck_assert_msg(r >= 0, "collect: %ld", r);
		ck_assert_uint_gt(we, cur);
		for (long k = 0; k < r; k++) {
			ck_assert(v[k].categories == PM_CAT_WRITTEN);
			ck_assert(v[k].start >= cur && v[k].end <= b && v[k].start < v[k].end);
			ck_assert(k == 0 || v[k].start > v[k - 1].end); /* canonical: merged */
			for (uint64_t x = v[k].start; x < v[k].end; x += ps)
				got[(x - a) / ps] = true;
		}
	}
}

static void assert_pages(const bool *want, const bool *got, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(want[i] == got[i], "%s: page %zu written %d, reported %d", what, i,
			      want[i], got[i]);
}

static size_t count(const bool *b, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += b[i];
	return c;
}

static struct pm_wtrack *track(struct pm_handle *h, void *p, size_t pages, int method)
{
	struct pm_range r = { (uintptr_t)p, (uintptr_t)p + pages * ps };
	PM_OPTS(pm_wtrack_opts, o, .method = (uint64_t)method);
	struct pm_wtrack *wt = NULL;

	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &o, &wt), 0);
	return wt;
}

/* n pages of this process's memory (4 KiB pages, the first @populated
 * written), tracked with @method. */
struct own {
	char *p;
	size_t n;
	struct pm_handle *h;
	struct pm_wtrack *wt;
};

static void own_start(struct own *o, size_t n, size_t populated, int method)
{
	o->n = n;
	o->p = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	madvise(o->p, n * ps, MADV_NOHUGEPAGE);
	memset(o->p, 1, populated * ps);
	ck_assert_int_eq(pm_open(0, NULL, &o->h), 0);
	o->wt = track(o->h, o->p, n, method);
}

static void own_stop(struct own *o)
{
	pm_wtrack_free(o->wt);
	pm_close(o->h);
	munmap(o->p, o->n * ps);
}

/* ---- own memory, userfaultfd ---- */

/* Random page sets, half the mapping never populated before tracking, a
 * kernel write (pread into a page) and read faults: collect reports
 * exactly the pages written, identically with and without reset and for
 * any vector size; after a reset, nothing until written again. Three
 * ranges, two of them adjacent, and a collect clipped to part of them. */
START_TEST(uffd_exact)
{
	const size_t n = 1024;
	char *p = xmap(NULL, (n + 256) * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct pm_range ranges[] = {
		{ (uintptr_t)p + 512 * ps, (uintptr_t)p + n * ps },
		{ (uintptr_t)p, (uintptr_t)p + 512 * ps },
	};
	bool want[1024], got[1024];
	uint64_t seed = 42, a = (uintptr_t)p;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	int devzero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	volatile char sink;

	munmap(p + n * ps, 256 * ps);
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	memset(p, 7, n / 2 * ps);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_wtrack_new(h, ranges, 2, NULL, &wt), 0);
	ck_assert_int_eq(pm_wtrack_method(wt), PM_WT_UFFD);
	collect_all(wt, a, n, 0, 16, got);
	ck_assert_uint_eq(count(got, n), 0);
	for (int round = 0; round < 12; round++) {
		memset(want, 0, sizeof(want));
		for (size_t i = 0; i < n; i++) {
			uint64_t x = rnd(&seed) % 8;

			if (x == 0) {
				p[i * ps + x] = (char)round;
				want[i] = true;
			} else if (x == 1) {
				sink = p[i * ps];
			}
		}
		/* the kernel writing for the process counts too */
		ck_assert_int_eq(pread(devzero, p + (n - 3) * ps, 16, 0), 16);
		want[n - 3] = true;
		collect_all(wt, a, n, 0, 1 + round % 16, got);
		assert_pages(want, got, n, "collect");
		collect_all(wt, a, n, 0, 16, got);
		assert_pages(want, got, n, "collect again");
		if (round % 3 == 2) {
			ck_assert_int_eq(pm_wtrack_reset(wt), 0);
		} else {
			collect_all(wt, a, n, PM_WT_RESET, 1 + (round * 5) % 16, got);
			assert_pages(want, got, n, "collect and reset");
		}
		collect_all(wt, a, n, 0, 16, got);
		ck_assert_msg(count(got, n) == 0, "round %d: %zu pages after reset", round,
			      count(got, n));
	}
	/* clipped: [300, 700) across both ranges */
	{
		struct pm_region v[16];
		uint64_t we;
		long r;

		p[100 * ps] = p[400 * ps] = p[511 * ps] = p[512 * ps] = p[900 * ps] = 1;
		r = pm_wtrack_collect(wt, a + 300 * ps, a + 700 * ps, v, 16, PM_WT_RESET, &we);
		ck_assert_int_eq(r, 2);
		ck_assert(v[0].start == a + 400 * ps && v[0].end == a + 401 * ps);
		ck_assert(v[1].start == a + 511 * ps && v[1].end == a + 513 * ps);
		ck_assert_uint_eq(we, a + 700 * ps);
		collect_all(wt, a, n, PM_WT_RESET, 16, got);
		ck_assert_uint_eq(count(got, n), 2);
		ck_assert(got[100] && got[900]);
	}
	(void)sink;
	close(devzero);
	pm_wtrack_free(wt);
	pm_close(h);
	munmap(p, n * ps);
}
END_TEST

/* Shared anonymous memory, a shared file mapping and a private one:
 * exactly the pages written; MADV_DONTNEED on shared memory changes no
 * content and reports nothing. */
START_TEST(uffd_shared_and_file)
{
	const size_t n = 32;
	char path[] = "/tmp/pm-wtrack-XXXXXX";
	int fd = mkstemp(path);
	char *m[3];
	struct pm_handle *h;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, (off_t)(n * ps)), 0);
	m[0] = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	m[1] = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	m[2] = xmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	for (int k = 0; k < 3; k++) {
		bool want[32] = { false }, got[32];
		struct pm_wtrack *wt;

		memset(m[k], 1, n / 2 * ps);
		wt = track(h, m[k], n, PM_WT_UFFD);
		m[k][3 * ps] = m[k][20 * ps] = 2;
		want[3] = want[20] = true;
		collect_all(wt, (uintptr_t)m[k], n, PM_WT_RESET, 16, got);
		assert_pages(want, got, n, k == 0 ? "shmem" : k == 1 ? "shared file" : "private file");
		if (k < 2) {
			ck_assert_int_eq(madvise(m[k] + 5 * ps, ps, MADV_DONTNEED), 0);
			collect_all(wt, (uintptr_t)m[k], n, 0, 16, got);
			ck_assert_uint_eq(count(got, n), 0);
		}
		pm_wtrack_free(wt);
		munmap(m[k], n * ps);
	}
	pm_close(h);
	close(fd);
}
END_TEST

/* A THP written in one page after tracking starts: reported as that one
 * page (the kernel splits the PMD on the write-protect fault). */
START_TEST(uffd_thp_is_4k)
{
	char *t = make_thp();
	struct pm_handle *h;
	struct pm_wtrack *wt;
	struct pm_region v[4];
	PM_OPTS(pm_scan_opts, huge, .category_mask = PM_CAT_HUGE, .return_mask = PM_CAT_HUGE);
	bool got[512];

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_scan(h, (uintptr_t)t, (uintptr_t)t + HUGE_SZ, v, 4, &huge, NULL), 1);
	wt = track(h, t, 512, PM_WT_UFFD);
	t[77 * ps] = 2;
	collect_all(wt, (uintptr_t)t, 512, PM_WT_RESET, 16, got);
	ck_assert_uint_eq(count(got, 512), 1);
	ck_assert(got[77]);
	t[78 * ps] = t[300 * ps] = 3;
	collect_all(wt, (uintptr_t)t, 512, PM_WT_RESET, 16, got);
	ck_assert_uint_eq(count(got, 512), 2);
	ck_assert(got[78] && got[300]);
	pm_wtrack_free(wt);
	/* THP-eligible memory never touched before tracking: the markers make
	 * the first fault map a 4 KiB page, not a THP */
	{
		char *m = xmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);
		char *u = (char *)(((uintptr_t)m + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));

		ck_assert_int_eq(madvise(u, HUGE_SZ, MADV_HUGEPAGE), 0);
		wt = track(h, u, 512, PM_WT_UFFD);
		u[200 * ps] = 4;
		collect_all(wt, (uintptr_t)u, 512, PM_WT_RESET, 16, got);
		ck_assert_uint_eq(count(got, 512), 1);
		ck_assert(got[200]);
		ck_assert_int_eq(pm_scan(h, (uintptr_t)u, (uintptr_t)u + HUGE_SZ, v, 4, &huge, NULL), 0);
		pm_wtrack_free(wt);
		munmap(m, 2 * HUGE_SZ);
	}
	pm_close(h);
}
END_TEST

/* hugetlb: a write reports the whole huge page (it is the smallest unit
 * the kernel can protect). Needs a surplus huge page: root raises
 * nr_overcommit_hugepages by one for the test and puts it back. */
static bool sysctl_rw(const char *path, long *val, bool write)
{
	FILE *f = fopen(path, write ? "we" : "re");
	bool ok;

	if (!f)
		return false;
	ok = write ? fprintf(f, "%ld\n", *val) > 0 : fscanf(f, "%ld", val) == 1;
	return (fclose(f) == 0) && ok;
}

START_TEST(uffd_hugetlb_whole)
{
	const char *knob = "/proc/sys/vm/nr_overcommit_hugepages";
	long old, more;
	char *p;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	bool got[512];

	ck_assert(sysctl_rw(knob, &old, false));
	more = old + 1;
	ck_assert(sysctl_rw(knob, &more, true));
	p = mmap(NULL, HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		 -1, 0);
	if (p == MAP_FAILED) {
		sysctl_rw(knob, &old, true);
		ck_abort_msg("no huge page: %s", strerror(errno));
	}
	memset(p, 1, HUGE_SZ);
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	wt = track(h, p, 512, PM_WT_UFFD);
	collect_all(wt, (uintptr_t)p, 512, 0, 16, got);
	ck_assert_uint_eq(count(got, 512), 0);
	p[77 * ps] = 2;
	collect_all(wt, (uintptr_t)p, 512, PM_WT_RESET, 16, got);
	ck_assert_uint_eq(count(got, 512), 512);
	collect_all(wt, (uintptr_t)p, 512, 0, 16, got);
	ck_assert_uint_eq(count(got, 512), 0);
	pm_wtrack_free(wt);
	pm_close(h);
	munmap(p, HUGE_SZ);
	ck_assert(sysctl_rw(knob, &old, true));
}
END_TEST

/* Zapped pages count as written (their content is now zero), are
 * protected again, and read faults on them afterwards write nothing. */
START_TEST(uffd_dontneed)
{
	const size_t n = 256;
	bool want[256] = { false }, got[256];
	volatile char sink = 0;
	struct own o;

	own_start(&o, n, n, PM_WT_UFFD);
	ck_assert_int_eq(madvise(o.p + 10 * ps, 5 * ps, MADV_DONTNEED), 0);
	ck_assert_int_eq(madvise(o.p + 200 * ps, ps, MADV_DONTNEED), 0);
	for (size_t i = 10; i < 15; i++)
		want[i] = true;
	want[200] = true;
	collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_RESET, 3, got);
	assert_pages(want, got, n, "zapped");
	for (size_t i = 0; i < n; i++)
		sink += o.p[i * ps];
	collect_all(o.wt, (uintptr_t)o.p, n, 0, 16, got);
	ck_assert_uint_eq(count(got, n), 0);
	o.p[12 * ps] = 1;
	collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_RESET, 16, got);
	ck_assert_uint_eq(count(got, n), 1);
	ck_assert(got[12]);
	(void)sink;
	{
		PM_OPTS(pm_wtrack_stats, st);
		struct { uint64_t size, collects, sentinel; } old = { 16, 0, 77 };

		ck_assert_int_eq(pm_wtrack_stats(o.wt, &st), 0);
		ck_assert_uint_eq(st.pages_reported, 6 + 1);
		ck_assert_uint_eq(st.widened, 0);
		ck_assert_uint_eq(st.collects, 3);
		/* an older, shorter struct gets its prefix */
		ck_assert_int_eq(pm_wtrack_stats(o.wt, (struct pm_wtrack_stats *)&old), 0);
		ck_assert_uint_eq(old.collects, st.collects);
		ck_assert_uint_eq(old.sentinel, 77);
		ck_assert_uint_eq(old.size, 16);
	}
	own_stop(&o);
}
END_TEST

/* mprotect splitting and re-merging the tracked VMA changes nothing:
 * pages written after write access comes back are reported, nothing
 * else. */
START_TEST(uffd_mprotect)
{
	const size_t n = 128;
	bool want[128] = { false }, got[128];
	struct own o;

	own_start(&o, n, n / 2, PM_WT_UFFD);
	ck_assert_int_eq(mprotect(o.p + 32 * ps, 64 * ps, PROT_READ), 0);
	o.p[5 * ps] = 1;
	want[5] = true;
	collect_all(o.wt, (uintptr_t)o.p, n, 0, 16, got);
	assert_pages(want, got, n, "while read-only");
	ck_assert_int_eq(mprotect(o.p + 32 * ps, 64 * ps, PROT_NONE), 0);
	ck_assert_int_eq(mprotect(o.p + 32 * ps, 64 * ps, PROT_READ | PROT_WRITE), 0);
	o.p[40 * ps] = o.p[90 * ps] = o.p[100 * ps] = 1;
	want[40] = want[90] = want[100] = true;
	collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_RESET, 2, got);
	assert_pages(want, got, n, "after mprotect");
	collect_all(o.wt, (uintptr_t)o.p, n, 0, 16, got);
	ck_assert_uint_eq(count(got, n), 0);
	own_stop(&o);
}
END_TEST

/* fork: the child's memory is not tracked (the kernel drops the child's
 * registration, so its pages carry no uffd-wp bit) and the tracker says
 * so with -ECHILD; freeing it in the child leaves the parent's tracking
 * intact; the parent's writes after the fork (COW) are reported, the
 * child's are not. */
START_TEST(uffd_fork)
{
	const size_t n = 64;
	bool want[64] = { false }, got[64];
	struct own o;
	pid_t pid;
	int st;

	own_start(&o, n, n, PM_WT_UFFD);
	o.p[3 * ps] = 2;
	want[3] = true;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t a = (uintptr_t)o.p, e[64];
		struct pm_region v[4];
		int bad = 0;

		o.p[20 * ps] = 3;
		bad |= pm_wtrack_collect(o.wt, a, a + n * ps, v, 4, 0, NULL) != -ECHILD;
		bad |= (pm_wtrack_reset(o.wt) != -ECHILD) << 1;
		bad |= (pm_read(o.h, a, a + n * ps, e, NULL, NULL) != (long)n) << 2;
		for (size_t i = 0; i < n; i++)
			if (pm_entry_uffd_wp(e[i]))
				bad |= 8;
		pm_wtrack_free(o.wt);
		pm_close(o.h);
		_exit(bad);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %#x", st);
	o.p[30 * ps] = 4;
	want[30] = true;
	collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_RESET, 16, got);
	assert_pages(want, got, n, "parent after fork");
	o.p[31 * ps] = 5;
	collect_all(o.wt, (uintptr_t)o.p, n, 0, 16, got);
	ck_assert_uint_eq(count(got, n), 1);
	ck_assert(got[31]);
	/* a child still holding its copy of the userfaultfd keeps the kernel
	 * context alive: free must unregister, not just close */
	{
		int hold[2];
		char ch;

		ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(hold[1]);
			_exit(read(hold[0], &ch, 1) < 0);
		}
		close(hold[0]);
		pm_wtrack_free(o.wt);
		o.wt = track(o.h, o.p, n, PM_WT_UFFD);
		close(hold[1]);
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	}
	own_stop(&o);
}
END_TEST

/*
 * No lost writes under concurrency (after the kernel selftest's transact
 * test). Writer threads store unique, increasing sequence numbers into
 * random pages while this thread collects-and-resets in a loop. Every
 * write w (sequence s, page p) must be reported by a collect that ended
 * after s was taken and that began no later than the first collect
 * started after w completed. Reports that no write explains are counted.
 */
#define CC_PAGES   2048
#define CC_WRITERS 3
#define CC_MAX_COLLECTS 200000

struct cc_write {
	uint64_t seq;
	uint32_t page;
};

static uint64_t cc_writes;      /* per writer */
static uint64_t cc_pause_every; /* writes between 1 ms pauses (0: none) */

static struct {
	char *mem;
	_Atomic uint64_t next_seq;
	_Atomic uint64_t done[CC_WRITERS]; /* writes completed per writer */
	struct cc_write *log[CC_WRITERS];
	atomic_bool stop;
} cc;

static void *cc_writer(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t seed = 1000 + (uint64_t)id;

	for (uint64_t i = 0; i < cc_writes; i++) {
		uint32_t pg = (uint32_t)(rnd(&seed) % CC_PAGES);
		uint64_t s = atomic_fetch_add(&cc.next_seq, 1);

		*(volatile uint64_t *)(cc.mem + (size_t)pg * ps + 8 * (size_t)id) = s;
		cc.log[id][i].seq = s;
		cc.log[id][i].page = pg;
		atomic_store_explicit(&cc.done[id], i + 1, memory_order_release);
		if (cc_pause_every && i % cc_pause_every == 0)
			usleep(1000);
	}
	return NULL;
}

/* The first index in sorted a[0..n) with a[i] >= v. */
static size_t lower_bound(const uint64_t *a, size_t n, uint64_t v)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (a[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void concurrent(int method, uint64_t writes, uint64_t pause_every)
{
	struct collect_rec {
		uint64_t done_before[CC_WRITERS]; /* writes complete when it began */
		uint64_t seq_before, seq_after;   /* sequence numbers taken then */
	} *rec = calloc(CC_MAX_COLLECTS, sizeof(*rec));
	struct pm_region *v = malloc(CC_PAGES * sizeof(*v));
	/* per page: the collects that reported it, and the writes to it */
	uint64_t **rep = calloc(CC_PAGES, sizeof(*rep));
	struct cc_write **wr = calloc(CC_PAGES, sizeof(*wr)); /* .page: the writer's index */
	size_t *nrep = calloc(CC_PAGES, sizeof(size_t)), *caprep = calloc(CC_PAGES, sizeof(size_t));
	size_t *nwr = calloc(CC_PAGES, sizeof(size_t));
	uint64_t *seq_after = malloc(CC_MAX_COLLECTS * sizeof(uint64_t));
	uint64_t (*copy)[CC_WRITERS] = calloc(CC_PAGES, sizeof(*copy)); /* an incremental copy */
	pthread_t th[CC_WRITERS];
	struct pm_handle *h;
	struct pm_wtrack *wt;
	uint64_t a, b, lost = 0, extra = 0, total = 0, stale = 0;
	size_t nc = 0;
	bool running = true;

	cc_writes = writes;
	cc_pause_every = pause_every;
	ck_assert(rec && v && rep && wr && nrep && caprep && nwr && seq_after && copy);
	cc.mem = xmap(NULL, CC_PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	a = (uintptr_t)cc.mem;
	b = a + CC_PAGES * ps;
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	wt = track(h, cc.mem, CC_PAGES, method);
	for (int i = 0; i < CC_WRITERS; i++) {
		cc.log[i] = calloc(cc_writes, sizeof(struct cc_write));
		ck_assert_ptr_nonnull(cc.log[i]);
		ck_assert_int_eq(pthread_create(&th[i], NULL, cc_writer, (void *)(intptr_t)i), 0);
	}
	while (running) {
		uint64_t we;
		long r;

		ck_assert_uint_lt(nc, CC_MAX_COLLECTS);
		running = false;
		for (int i = 0; i < CC_WRITERS; i++) {
			rec[nc].done_before[i] = atomic_load_explicit(&cc.done[i], memory_order_acquire);
			running |= rec[nc].done_before[i] < cc_writes;
		}
		rec[nc].seq_before = atomic_load(&cc.next_seq);
		/* small vectors now and then: continuation must lose nothing */
		for (uint64_t cur = a; cur < b; cur = we) {
			r = pm_wtrack_collect(wt, cur, b, v, nc % 7 ? CC_PAGES : 3, PM_WT_RESET, &we);
			ck_assert_int_ge(r, 0);
			for (long k = 0; k < r; k++)
				for (uint64_t x = v[k].start; x < v[k].end; x += ps) {
					size_t pg = (x - a) / ps;

					if (nrep[pg] == caprep[pg]) {
						caprep[pg] = caprep[pg] ? 2 * caprep[pg] : 64;
						rep[pg] = realloc(rep[pg], caprep[pg] * sizeof(uint64_t));
						ck_assert_ptr_nonnull(rep[pg]);
					}
					rep[pg][nrep[pg]++] = nc;
					total++;
					memcpy(copy[pg], (void *)x, sizeof(copy[pg]));
				}
		}
		rec[nc].seq_after = atomic_load(&cc.next_seq);
		seq_after[nc] = rec[nc].seq_after;
		nc++;
	}
	for (int i = 0; i < CC_WRITERS; i++)
		pthread_join(th[i], NULL);
	/* the last collect began after every write: the copy must be exact */
	for (size_t pg = 0; pg < CC_PAGES; pg++)
		stale += memcmp(copy[pg], cc.mem + pg * ps, sizeof(copy[pg])) != 0;

	for (int w = 0; w < CC_WRITERS; w++)
		for (uint64_t i = 0; i < cc_writes; i++)
			nwr[cc.log[w][i].page]++;
	for (size_t pg = 0; pg < CC_PAGES; pg++) {
		wr[pg] = malloc((nwr[pg] + 1) * sizeof(struct cc_write));
		ck_assert_ptr_nonnull(wr[pg]);
		nwr[pg] = 0;
	}
	for (int w = 0; w < CC_WRITERS; w++) {
		size_t k = 0;

		for (uint64_t i = 0; i < cc_writes; i++) {
			const struct cc_write *x = &cc.log[w][i];
			size_t j0 = lower_bound(seq_after, nc, x->seq + 1), f;

			wr[x->page][nwr[x->page]++] =
				(struct cc_write){ .seq = x->seq, .page = (uint32_t)(w * cc_writes + i) };
			/* k: the first collect that began after this write completed */
			while (k < nc && rec[k].done_before[w] < i + 1)
				k++;
			/* some collect in [j0, k] must have reported the page */
			f = lower_bound(rep[x->page], nrep[x->page], j0);
			if (f == nrep[x->page] || rep[x->page][f] > k)
				lost++;
		}
	}
	/* extras: reports no write explains (one taken before the report's
	 * collect ended and not completed before the page's previous report
	 * began) */
	for (size_t pg = 0; pg < CC_PAGES; pg++) {
		for (size_t r = 0; r < nrep[pg]; r++) {
			const struct collect_rec *prev = r ? &rec[rep[pg][r - 1]] : NULL;
			bool explained = false;

			for (size_t i = 0; i < nwr[pg] && !explained; i++) {
				uint32_t w = wr[pg][i].page / cc_writes, idx = wr[pg][i].page % cc_writes;

				explained = wr[pg][i].seq < rec[rep[pg][r]].seq_after &&
					    (!prev || idx + 1 > prev->done_before[w]);
			}
			extra += !explained;
		}
		free(wr[pg]);
		free(rep[pg]);
	}
	fprintf(stderr,
		"concurrency (%s): %d writers x %" PRIu64 " writes on %d pages, %zu collects, %" PRIu64
		" pages reported, %" PRIu64 " unexplained by a write, %" PRIu64
		" writes lost, %" PRIu64 " pages of the copy stale\n",
		method == PM_WT_UFFD ? "uffd" : "soft-dirty", CC_WRITERS, cc_writes, CC_PAGES, nc,
		total, extra, lost, stale);
	ck_assert_uint_eq(lost, 0);
	ck_assert_uint_eq(stale, 0);
	ck_assert_uint_gt(nc, 10);
	for (int i = 0; i < CC_WRITERS; i++)
		free(cc.log[i]);
	pm_wtrack_free(wt);
	pm_close(h);
	munmap(cc.mem, CC_PAGES * ps);
	free(rec);
	free(v);
	free(rep);
	free(wr);
	free(nrep);
	free(caprep);
	free(nwr);
	free(seq_after);
	free(copy);
}

START_TEST(uffd_concurrent_no_lost_writes)
{
	concurrent(PM_WT_UFFD, 150000, 0);
}
END_TEST

/* The same on soft-dirty, for the calling process: the other threads'
 * faults during a reset widen it, this thread's own never hide one. */
START_TEST(sd_self_concurrent_no_lost_writes)
{
	/* collects are slow here (every page's entry read, the process
	 * cleared): writers pause so that many collects see them */
	concurrent(PM_WT_SOFT_DIRTY, 40000, 50);
}
END_TEST

static void idle(void *arg, uint64_t *shared)
{
	(void)arg;
	(void)shared;
}

/* pm_wtrack_supported says which method pm_wtrack_new would use, or why
 * none can work, for this process and for a child. */
START_TEST(supported)
{
	PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_UFFD);
	PM_OPTS(pm_wtrack_opts, exact, .flags = PM_WT_EXACT);
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
	ck_assert_int_eq(r, have_uffd ? PM_WT_UFFD : have_sd ? PM_WT_SOFT_DIRTY : 0);
	if (r) { /* what pm_wtrack_new picks */
		struct own o;

		own_start(&o, 4, 4, PM_WT_AUTO);
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
	ck_assert_int_eq(r, have_sd ? PM_WT_SOFT_DIRTY : 0);
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
	PM_OPTS(pm_wtrack_opts, unknown_flag, .flags = 2);
	PM_OPTS(pm_wtrack_opts, sd, .method = PM_WT_SOFT_DIRTY);
	PM_OPTS(pm_wtrack_opts, sd_exact, .method = PM_WT_SOFT_DIRTY, .flags = PM_WT_EXACT);
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
		PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_UFFD);
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
		ck_assert_int_eq(pm_wtrack_collect(wt, a, b, v, 4, PM_WT_RESET, &we), -EFAULT);
		ck_assert_int_eq(pm_wtrack_reset(wt), -EFAULT);
		/* the rest can still be collected, and page 1 was not lost */
		ck_assert_int_eq(pm_wtrack_collect(wt, a, a + 10 * ps, v, 4, 0, &we), 1);
		ck_assert(v[0].start == a + ps && v[0].end == a + 2 * ps);
		/* mapped again: new memory the tracker never saw */
		ck_assert_ptr_eq(mmap(p + 10 * ps, 2 * ps, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
				 p + 10 * ps);
		if (pm_wtrack_method(wt) == PM_WT_UFFD) {
			ck_assert_int_eq(pm_wtrack_collect(wt, a, b, v, 4, PM_WT_RESET, &we),
					 -EFAULT);
			ck_assert_int_eq(pm_wtrack_reset(wt), -EFAULT);
			/* the failed call reset nothing: page 1 is still written */
			ck_assert_int_eq(pm_wtrack_collect(wt, a, a + 10 * ps, v, 4, PM_WT_RESET,
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
	PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_UFFD);
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

	own_start(&o, 64, 64, PM_WT_UFFD);
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
	ck_assert_int_eq(pm_wtrack_collect(wt, a, a + 48 * ps, v, 4, PM_WT_RESET, &we), 1);
	ck_assert(v[0].start == a + 5 * ps && v[0].end == a + 6 * ps);
	ck_assert_uint_eq(we, a + 6 * ps);
	pm__sys.ioctl = real_ioctl;
	ck_assert_int_eq(pm_wtrack_collect(wt, we, a + 48 * ps, v, 4, PM_WT_RESET, &we), 1);
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
	PM_OPTS(pm_wtrack_opts, uffd, .method = PM_WT_UFFD);
	struct pm_handle *h;
	struct pm_wtrack *wt = NULL;
	int ret;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	real_ioctl = pm__sys.ioctl;
	pm__sys.ioctl = no_wp_async;
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &uffd, &wt), -EOPNOTSUPP);
	ret = pm_wtrack_new(h, &r, 1, NULL, &wt);
	if (have_sd) {
		ck_assert_int_eq(ret, 0);
		ck_assert_int_eq(pm_wtrack_method(wt), PM_WT_SOFT_DIRTY);
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

/* ---- any process, soft-dirty (kernels that have it: the 6.1 VM) ---- */

/* A child that runs commands on its memory: SD_PAGES pages (under 2 MiB,
 * so never a THP) and a 2 MiB THP candidate. */
#define SD_PAGES 384
enum { C_WRITE = 1, C_ZAP, C_MAP_NEXT, C_REMAP, C_BUSY, C_THP_WRITE, C_EXIT };

struct sd_child {
	pid_t pid;
	int cmd, ack;
	volatile uint64_t *sh; /* [0] mem, [1] thp, [2] n, [3] stop, [4] writes, [8..] pages */
	uint64_t mem, thp;
};

static void sd_child_loop(volatile uint64_t *sh, int cmd, int ack)
{
	/* inaccessible pages either side: nothing merges with it by chance */
	char *base = xmap(NULL, (SD_PAGES + 66) * ps, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *mem = base + ps;
	char *thp = make_thp();
	uint64_t seed = 5, seq = 1;
	unsigned char c;

	mprotect(base, ps, PROT_NONE);
	mprotect(mem + (SD_PAGES + 64) * ps, ps, PROT_NONE);
	munmap(mem + SD_PAGES * ps, 64 * ps);
	for (size_t i = 0; i < SD_PAGES; i += 2)
		mem[i * ps] = 1;
	sh[0] = (uintptr_t)mem;
	sh[1] = (uintptr_t)thp;
	while (write(ack, "r", 1) == 1 && read(cmd, &c, 1) == 1) {
		switch (c) {
		case C_WRITE:
			for (uint64_t i = 0; i < sh[2]; i++)
				mem[sh[8 + i] * ps + 8] = (char)seq++;
			break;
		case C_ZAP:
			for (uint64_t i = 0; i < sh[2]; i++)
				madvise(mem + sh[8 + i] * ps, ps, MADV_DONTNEED);
			break;
		case C_MAP_NEXT: /* merges with the tracked VMA */
			if (mmap(mem + SD_PAGES * ps, 64 * ps, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
				 0) != mem + SD_PAGES * ps)
				_exit(3);
			break;
		case C_REMAP: /* new memory over pages [100, 110) */
			if (mmap(mem + 100 * ps, 10 * ps, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != mem + 100 * ps)
				_exit(4);
			break;
		case C_BUSY: /* write sequence numbers until told to stop, in
			      * bursts, so that some collects find it quiet */
			while (!__atomic_load_n(&sh[3], __ATOMIC_ACQUIRE)) {
				for (int i = 0; i < 50; i++)
					*(volatile uint64_t *)(mem + rnd(&seed) % SD_PAGES * ps) =
						seq++;
				__atomic_store_n(&sh[4], seq, __ATOMIC_RELEASE);
				usleep(rnd(&seed) % 3000);
			}
			break;
		case C_THP_WRITE:
			if (thp)
				thp[33 * ps] = 9;
			break;
		default:
			_exit(0);
		}
	}
	_exit(2);
}

/* Wait until the child sleeps (in read: its faults after the ack are
 * done, so a collect now sees a quiet target). */
static void sd_wait_asleep(const struct sd_child *c)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)c->pid);
	for (;;) {
		FILE *f = fopen(path, "re");

		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
		fclose(f);
		p = strrchr(buf, ')');
		if (p && p[2] == 'S')
			return;
		usleep(100);
	}
}

static void sd_start(struct sd_child *c)
{
	int cmd[2], ack[2];
	char r;

	c->sh = xmap(NULL, 64 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	ck_assert_int_eq(pipe2(cmd, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(ack, O_CLOEXEC), 0);
	c->pid = fork();
	ck_assert_int_ge(c->pid, 0);
	if (c->pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		sd_child_loop(c->sh, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	c->cmd = cmd[1];
	c->ack = ack[0];
	ck_assert_int_eq(read(c->ack, &r, 1), 1);
	sd_wait_asleep(c);
	c->mem = c->sh[0];
	c->thp = c->sh[1];
}

/* Send a command and wait until the child has done it and sleeps. */
static void sd_do(struct sd_child *c, unsigned char what)
{
	char r;

	ck_assert_int_eq(write(c->cmd, &what, 1), 1);
	if (what == C_BUSY || what == C_EXIT)
		return;
	ck_assert_int_eq(read(c->ack, &r, 1), 1);
	sd_wait_asleep(c);
}

static void sd_stop(struct sd_child *c)
{
	int st;

	sd_do(c, C_EXIT);
	ck_assert_int_eq(waitpid(c->pid, &st, 0), c->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %#x", st);
	close(c->cmd);
	close(c->ack);
	munmap((void *)c->sh, 64 * ps);
}

/* Pick a random set of pages, have the child write them. */
static void sd_write_random(struct sd_child *c, uint64_t *seed, bool *want)
{
	uint64_t k = 0;

	memset(want, 0, SD_PAGES);
	for (size_t i = 0; i < SD_PAGES; i++)
		if (rnd(seed) % 6 == 0) {
			c->sh[8 + k++] = i;
			want[i] = true;
		}
	c->sh[2] = k;
	sd_do(c, C_WRITE);
}

/* An idle child: exactly the pages it wrote, zapped pages as written,
 * continuation and reset; then the kernel's own over-reports, passed on:
 * a VMA merged with new memory reads dirty whole, memory mapped anew
 * over tracked pages reads dirty; exact again after a reset. */
START_TEST(sd_child_exact)
{
	struct sd_child c;
	struct pm_handle *h;
	struct pm_wtrack *wt, *wt2 = NULL;
	bool want[SD_PAGES], got[SD_PAGES];
	uint64_t seed = 99;
	struct pm_range r;
	PM_OPTS(pm_wtrack_opts, exact, .flags = PM_WT_EXACT);

	sd_start(&c);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	r.start = c.mem;
	r.end = c.mem + SD_PAGES * ps;
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, &exact, &wt), -EOPNOTSUPP);
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, NULL, &wt), 0);
	ck_assert_int_eq(pm_wtrack_method(wt), PM_WT_SOFT_DIRTY);
	/* clear_refs is process-wide: one tracker per process */
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, NULL, &wt2), -EBUSY);
	collect_all(wt, c.mem, SD_PAGES, 0, 16, got);
	ck_assert_uint_eq(count(got, SD_PAGES), 0);
	for (int round = 0; round < 8; round++) {
		sd_write_random(&c, &seed, want);
		collect_all(wt, c.mem, SD_PAGES, 0, 16, got);
		assert_pages(want, got, SD_PAGES, "collect");
		if (round % 4 == 3) {
			ck_assert_int_eq(pm_wtrack_reset(wt), 0);
		} else {
			collect_all(wt, c.mem, SD_PAGES, PM_WT_RESET, 1 + round, got);
			assert_pages(want, got, SD_PAGES, "collect and reset");
		}
		collect_all(wt, c.mem, SD_PAGES, 0, 16, got);
		ck_assert_uint_eq(count(got, SD_PAGES), 0);
	}
	/* zapped: populated pages (even ones) dropped */
	memset(want, 0, sizeof(want));
	c.sh[2] = 0;
	for (uint64_t i = 0; i < SD_PAGES; i += 40) {
		c.sh[8 + c.sh[2]++] = i;
		want[i] = true;
	}
	sd_do(&c, C_ZAP);
	collect_all(wt, c.mem, SD_PAGES, PM_WT_RESET, 16, got);
	assert_pages(want, got, SD_PAGES, "zapped");
	/* new memory merged into the tracked VMA: all of it reads dirty */
	sd_do(&c, C_MAP_NEXT);
	collect_all(wt, c.mem, SD_PAGES, PM_WT_RESET, 16, got);
	fprintf(stderr, "soft-dirty: after a VMA merge %zu of %d pages reported\n",
		count(got, SD_PAGES), SD_PAGES);
	ck_assert_uint_eq(count(got, SD_PAGES), SD_PAGES);
	sd_write_random(&c, &seed, want);
	collect_all(wt, c.mem, SD_PAGES, PM_WT_RESET, 16, got);
	assert_pages(want, got, SD_PAGES, "exact again after the merge");
	/* tracked pages replaced by a new mapping: reported */
	sd_do(&c, C_REMAP);
	collect_all(wt, c.mem, SD_PAGES, PM_WT_RESET, 16, got);
	for (size_t i = 100; i < 110; i++)
		ck_assert_msg(got[i], "remapped page %zu not reported", i);
	fprintf(stderr, "soft-dirty: after a remap of 10 pages %zu reported\n",
		count(got, SD_PAGES));
	sd_write_random(&c, &seed, want);
	collect_all(wt, c.mem, SD_PAGES, PM_WT_RESET, 16, got);
	assert_pages(want, got, SD_PAGES, "exact again after the remap");
	{
		PM_OPTS(pm_wtrack_stats, st);

		ck_assert_int_eq(pm_wtrack_stats(wt, &st), 0);
		ck_assert_uint_eq(st.widened, 0); /* an idle child: every reset exact */
	}
	pm_wtrack_free(wt);
	/* freed: the process can be tracked again */
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, NULL, &wt), 0);
	pm_wtrack_free(wt);
	pm_close(h);
	sd_stop(&c);
}
END_TEST

static uint64_t anon_huge_kb(pid_t pid)
{
	char path[64], buf[4096];
	FILE *f;
	uint64_t kb = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "AnonHugePages: %" SCNu64, &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Soft-dirty granularity on a PMD-mapped THP: one write reports 2 MiB. */
START_TEST(sd_child_thp_granularity)
{
	struct sd_child c;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	struct pm_range r;
	bool got[512];

	sd_start(&c);
	ck_assert_msg(c.thp && anon_huge_kb(c.pid) >= 2048, "no THP in the child");
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	r.start = c.thp;
	r.end = c.thp + HUGE_SZ;
	ck_assert_int_eq(pm_wtrack_new(h, &r, 1, NULL, &wt), 0);
	sd_do(&c, C_THP_WRITE);
	collect_all(wt, c.thp, 512, PM_WT_RESET, 16, got);
	ck_assert_uint_eq(count(got, 512), 512);
	collect_all(wt, c.thp, 512, 0, 16, got);
	ck_assert_uint_eq(count(got, 512), 0);
	pm_wtrack_free(wt);
	pm_close(h);
	sd_stop(&c);
}
END_TEST

/* A child writing all the time while collects-and-resets copy what they
 * report (process_vm_readv): when it stops, the copy equals its memory,
 * so no write was lost between a read of the bits and the clear. */
START_TEST(sd_child_busy_no_lost_writes)
{
	struct sd_child c;
	struct pm_handle *h;
	struct pm_wtrack *wt;
	struct pm_region v[64];
	struct pm_range r;
	char *copy = calloc(SD_PAGES, ps), *live = calloc(SD_PAGES, ps);
	uint64_t reported = 0, writes;
	int rounds = 0, whole = 0;

	sd_start(&c);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	r.start = c.mem;
	r.end = c.mem + SD_PAGES * ps;
	/* the copy starts as the memory at tracking start */
	{
		struct iovec l = { copy, SD_PAGES * ps }, rm = { (void *)c.mem, SD_PAGES * ps };

		ck_assert_int_eq(pm_wtrack_new(h, &r, 1, NULL, &wt), 0);
		ck_assert_int_eq(process_vm_readv(c.pid, &l, 1, &rm, 1, 0), (ssize_t)(SD_PAGES * ps));
	}
	c.sh[3] = 0;
	sd_do(&c, C_BUSY);
	for (bool last = false;; rounds++) {
		uint64_t we;

		uint64_t this_round = 0;

		if (rounds == 60) {
			char x;

			__atomic_store_n(&c.sh[3], 1, __ATOMIC_RELEASE);
			ck_assert_int_eq(read(c.ack, &x, 1), 1); /* stopped */
			last = true;
		}
		for (uint64_t cur = r.start; cur < r.end; cur = we) {
			long n = pm_wtrack_collect(wt, cur, r.end, v, 64, PM_WT_RESET, &we);

			ck_assert_int_ge(n, 0);
			for (long k = 0; k < n; k++) {
				struct iovec l = { copy + (v[k].start - r.start), v[k].end - v[k].start };
				struct iovec rm = { (void *)v[k].start, v[k].end - v[k].start };

				ck_assert_int_eq(process_vm_readv(c.pid, &l, 1, &rm, 1, 0),
						 (ssize_t)(v[k].end - v[k].start));
				this_round += (v[k].end - v[k].start) / ps;
			}
		}
		reported += this_round;
		whole += this_round == SD_PAGES;
		if (last)
			break;
		usleep(2000);
	}
	writes = c.sh[4];
	{
		struct iovec l = { live, SD_PAGES * ps }, rm = { (void *)c.mem, SD_PAGES * ps };

		ck_assert_int_eq(process_vm_readv(c.pid, &l, 1, &rm, 1, 0), (ssize_t)(SD_PAGES * ps));
	}
	for (size_t i = 0; i < SD_PAGES; i++)
		ck_assert_msg(!memcmp(copy + i * ps, live + i * ps, ps),
			      "page %zu: the incremental copy is stale", i);
	{
		PM_OPTS(pm_wtrack_stats, st);

		ck_assert_int_eq(pm_wtrack_stats(wt, &st), 0);
		fprintf(stderr, "soft-dirty busy child: %" PRIu64 " of %" PRIu64
			" collects widened (the child faulted between read and clear)\n",
			st.widened, st.collects);
		ck_assert_uint_gt(st.widened, 0);
		ck_assert_uint_eq(st.pages_reported, reported);
	}
	fprintf(stderr, "soft-dirty busy child: %" PRIu64 " writes, %d collects (%d reporting every page), %" PRIu64
		" pages reported, copy exact\n", writes, rounds + 1, whole, reported);
	ck_assert_uint_gt(writes, 1000);
	pm_wtrack_free(wt);
	pm_close(h);
	free(copy);
	free(live);
	sd_stop(&c);
}
END_TEST

/* The calling process on a kernel without WP_ASYNC: AUTO picks
 * soft-dirty, and this thread's own faults inside the library do not
 * make it over-report. */
START_TEST(sd_self_exact)
{
	const size_t n = 256;
	bool want[256], got[256];
	uint64_t seed = 3;
	struct own o;
	struct pm_wtrack *wt2 = NULL;
	struct pm_range one;
	PM_OPTS(pm_wtrack_opts, sd, .method = PM_WT_SOFT_DIRTY);

	own_start(&o, n, n, have_uffd ? PM_WT_SOFT_DIRTY : PM_WT_AUTO);
	ck_assert_int_eq(pm_wtrack_method(o.wt), PM_WT_SOFT_DIRTY);
	one.start = (uintptr_t)o.p;
	one.end = one.start + ps;
	ck_assert_int_eq(pm_wtrack_new(o.h, &one, 1, &sd, &wt2), -EBUSY);
	for (int round = 0; round < 6; round++) {
		memset(want, 0, sizeof(want));
		for (size_t i = 0; i < n; i++)
			if (rnd(&seed) % 5 == 0) {
				o.p[i * ps] = (char)round;
				want[i] = true;
			}
		collect_all(o.wt, (uintptr_t)o.p, n, PM_WT_RESET, 4, got);
		assert_pages(want, got, n, "self");
	}
	{
		PM_OPTS(pm_wtrack_stats, st);

		ck_assert_int_eq(pm_wtrack_stats(o.wt, &st), 0);
		ck_assert_uint_eq(st.widened, 0); /* this thread's own faults never widen */
	}
	own_stop(&o);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wtrack");
	TCase *t = tcase_create("wtrack");
	int added = 0;

	test_init();
	have_uffd = pm_has_feature(PM_FEAT_UFFD_WP_ASYNC) == 1 &&
		    pm_has_feature(PM_FEAT_PAGEMAP_SCAN) == 1;
	have_sd = pm_has_feature(PM_FEAT_SOFT_DIRTY) == 1;
	tcase_set_timeout(t, 300);
	tcase_add_test(t, errors);
	tcase_add_test(t, supported);
	tcase_add_test(t, uffd_without_wp_async);
	if (have_uffd) {
		tcase_add_test(t, uffd_exact);
		tcase_add_test(t, uffd_dontneed);
		tcase_add_test(t, uffd_shared_and_file);
		tcase_add_test(t, uffd_mprotect);
		tcase_add_test(t, uffd_fork);
		tcase_add_test(t, uffd_error_midway);
		tcase_add_test(t, uffd_lost_zaps_refused);
		tcase_add_test(t, uffd_concurrent_no_lost_writes);
		if (thp_possible())
			tcase_add_test(t, uffd_thp_is_4k);
		if (access("/proc/sys/vm/nr_overcommit_hugepages", W_OK) == 0)
			tcase_add_test(t, uffd_hugetlb_whole);
		else
			fprintf(stderr, "SKIP uffd_hugetlb_whole: cannot make a surplus huge page\n");
		added++;
	} else {
		fprintf(stderr, "SKIP uffd tests: no uffd WP_ASYNC or PAGEMAP_SCAN\n");
	}
	if (have_sd) {
		tcase_add_test(t, sd_child_exact);
		tcase_add_test(t, sd_child_busy_no_lost_writes);
		tcase_add_test(t, sd_self_exact);
		tcase_add_test(t, sd_self_concurrent_no_lost_writes);
		if (thp_possible())
			tcase_add_test(t, sd_child_thp_granularity);
		added++;
	} else {
		fprintf(stderr, "SKIP soft-dirty tests: the kernel has no working soft-dirty\n");
	}
	(void)added;
	suite_add_tcase(s, t);
	return run_suite(s);
}
