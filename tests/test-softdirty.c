/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Soft-dirty where PAGEMAP_SCAN reads it too (6.8+: the 6.12 VM): native
 * and emulated pm_scan with PM_CAT_SOFT_DIRTY against a reference from raw
 * entries, PFNZERO on the huge zero page (fixed in 6.12.37), soft-dirty
 * write tracking racing a writer thread in another process and in the
 * caller, PM_WT_AUTO's choice when both methods work, and pm-dump's
 * soft-dirty column. The scan differential and pm-dump run on 6.1 as well
 * (emulated scans only).
 */
#include "common.h"
#include "scan-ref.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define KPF_COMPOUND_HEAD 15
#define KPF_ZERO_PAGE     24

static void clear_soft_dirty(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, "4", 1) != 1)
		_exit(3);
	close(fd);
}

/* 2 MiB-aligned, MADV_HUGEPAGE, read-faulted: the huge zero page where
 * the kernel gives it. */
static char *huge_zero(void)
{
	char *z = xmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	z = (char *)(((uintptr_t)z + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
	madvise(z, HUGE_SZ, MADV_HUGEPAGE);
	(void)*(volatile char *)z;
	return z;
}

/* ---- native vs emulated vs reference, soft-dirty included ---- */

/* In one PROT_NONE reservation: 4K anon pages (written, read-faulted to
 * the zero page, untouched), two THPs, the huge zero page, shmem, a
 * private file mapping; then clear_refs, and writes to some of each
 * (one THP whole, the other not), and a new mapping, soft-dirty whole. */
static void build_sd_layout(void *arg, uint64_t *sh)
{
	const uint64_t n = 4096;
	uint64_t seed = (uintptr_t)arg;
	char path[] = "/tmp/pm-sd-XXXXXX";
	char *base = xmap(NULL, n * ps + HUGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = (char *)(((uintptr_t)base + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
	char *anon = p, *thp = p + 512 * ps, *zero = thp + 2 * HUGE_SZ, *shm, *file, *fresh;
	int fd;

	xmap(anon, 512 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	madvise(anon, 512 * ps, MADV_NOHUGEPAGE);
	touch_random(anon, 512, &seed, 3);
	xmap(thp, 3 * HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	madvise(thp, 3 * HUGE_SZ, MADV_HUGEPAGE);
	memset(thp, 1, 2 * HUGE_SZ);
	(void)*(volatile char *)zero;
	shm = zero + HUGE_SZ + 16 * ps;
	xmap(shm, 256 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1);
	for (uint64_t i = 0; i < 256; i++)
		if (rnd(&seed) & 1)
			shm[i * ps] = 1;
	file = shm + 256 * ps + 16 * ps;
	fd = mkstemp(path);
	unlink(path);
	if (fd < 0 || ftruncate(fd, (off_t)(256 * ps)))
		_exit(2);
	xmap(file, 256 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd);
	for (uint64_t i = 0; i < 256; i += 1 + rnd(&seed) % 8)
		(void)*(volatile char *)(file + i * ps);
	close(fd);

	clear_soft_dirty();
	for (uint64_t i = 0; i < 512; i++)
		if (rnd(&seed) % 4 == 0)
			anon[i * ps] = 2;
	thp[HUGE_SZ + 5 * ps] = 2; /* the second THP only */
	for (uint64_t i = 0; i < 256; i++)
		if (rnd(&seed) % 4 == 0)
			shm[i * ps] = 2;
	for (uint64_t i = 0; i < 256; i += 1 + rnd(&seed) % 16)
		file[i * ps] = 2; /* a private copy */
	fresh = file + 256 * ps + 16 * ps;
	xmap(fresh, 64 * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	for (uint64_t i = 0; i < 64; i += 3)
		(void)*(volatile char *)(fresh + i * ps);
	sh[0] = (uintptr_t)p;
	sh[1] = (uintptr_t)fresh + 80 * ps;
	sh[2] = (uintptr_t)thp;
	sh[3] = (uintptr_t)zero;
}

/* Every mask combination over PRESENT, SWAPPED, FILE, PFNZERO and
 * SOFT_DIRTY: on 6.12 the native answer, the emulated one and the
 * reference agree; on 6.1 the default (emulated) one and the reference. */
START_TEST(sd_scan_differential)
{
	uint64_t cats = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE | PM_CAT_SOFT_DIRTY;
	struct child c;
	struct ref r;
	struct pm_handle *h;
	size_t dirty = 0, clean = 0;

	if (expect_feature(PM_FEAT_PFN_VISIBLE) && !access("/proc/kpageflags", R_OK))
		cats |= PM_CAT_PFNZERO;
	child_start(&c, build_sd_layout, (void *)7);
	/* the layout has both kinds of page, or the test proves little */
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ref_build(h, c.shared[0], c.shared[1], &r);
	for (size_t i = 0; i < r.n; i++)
		if (r.cats[i] != ~0ULL && (r.cats[i] & PM_CAT_PRESENT)) {
			dirty += !!(r.cats[i] & PM_CAT_SOFT_DIRTY);
			clean += !(r.cats[i] & PM_CAT_SOFT_DIRTY);
		}
	fprintf(stderr, "soft-dirty layout: %zu present pages soft-dirty, %zu clean\n", dirty, clean);
	ck_assert_uint_gt(dirty, 512);
	ck_assert_uint_gt(clean, 512);
	free(r.cats);
	pm_close(h);
	/* the emulated path on a third of the table: CI time under TCG */
	differential(c.pid, c.shared[0], c.shared[1], cats, 3);
	/* mid-THP and mid-VMA edges */
	differential(c.pid, c.shared[2] + 100 * ps, c.shared[3] + 7 * ps, cats, 3);
	child_stop(&c);
}
END_TEST

/* ---- pm-dump's soft-dirty column ---- */

static const char *pm_dump; /* argv[1]: the pm-dump to check */

/* pm-dump --pages on the soft-dirty layout: its D column (the fifth flag
 * letter) is bit 55 of a raw pagemap read of the same page, for every
 * page, and every page of the range has a row. */
START_TEST(sd_pm_dump_column)
{
	struct child c;
	uint64_t *before, *after, s, e, n, rows = 0, dirty = 0;
	char cmd[512], line[256];
	FILE *f;

	child_start(&c, build_sd_layout, (void *)5);
	s = c.shared[0];
	e = c.shared[1];
	n = (e - s) / ps;
	before = calloc(n, 8);
	after = calloc(n, 8);
	raw_read(c.pid, s, e, before);
	snprintf(cmd, sizeof(cmd), "%s --pid %d --pages --range %" PRIx64 "-%" PRIx64, pm_dump,
		 (int)c.pid, s, e);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		uint64_t addr, entry;
		char flags[16];

		if (line[0] == '#' || sscanf(line, "%" SCNx64 " %" SCNx64 " %15s", &addr, &entry,
					     flags) != 3)
			continue;
		ck_assert_msg(addr >= s && addr < e && strlen(flags) == 7, "row: %s", line);
		ck_assert_msg((flags[4] == 'D') == pm_entry_soft_dirty(before[(addr - s) / ps]),
			      "page %#" PRIx64 ": pm-dump says %s, pagemap %#" PRIx64, addr, flags,
			      before[(addr - s) / ps]);
		ck_assert_uint_eq(entry, before[(addr - s) / ps]);
		dirty += flags[4] == 'D';
		rows++;
	}
	ck_assert_int_eq(pclose(f), 0);
	/* an idle child: the reference did not move under pm-dump */
	raw_read(c.pid, s, e, after);
	ck_assert_mem_eq(before, after, n * 8);
	ck_assert_uint_eq(rows, n);
	fprintf(stderr, "pm-dump: %" PRIu64 " pages, %" PRIu64 " soft-dirty, as pagemap says\n",
		rows, dirty);
	ck_assert_uint_gt(dirty, 0);
	ck_assert_uint_lt(dirty, rows);
	free(before);
	free(after);
	child_stop(&c);
}
END_TEST

/* ---- PFNZERO on the huge zero page ---- */

static void build_huge_zero(void *arg, uint64_t *sh)
{
	(void)arg;
	sh[0] = (uintptr_t)huge_zero();
}

/* Whether a read fault here maps the huge zero page (the 6.12 VM must:
 * THP always, use_zero_page 1). */
static bool huge_zero_here(void)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0, f = 0;
	char *z;

	if (!kline() && thp_possible() && pm >= 0 && kpf >= 0) {
		char *m = mmap(NULL, 2 * HUGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		z = (char *)(((uintptr_t)m + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
		if (m != MAP_FAILED && !madvise(z, HUGE_SZ, MADV_HUGEPAGE)) {
			(void)*(volatile char *)z;
			(void)!pread(pm, &e, 8, (off_t)((uintptr_t)z / ps * 8));
		}
		if (pm_entry_pfn(e))
			(void)!pread(kpf, &f, 8, (off_t)(pm_entry_pfn(e) * 8));
		if (m != MAP_FAILED)
			munmap(m, 2 * HUGE_SZ);
	}
	if (pm >= 0)
		close(pm);
	if (kpf >= 0)
		close(kpf);
	return kline() || (f >> KPF_ZERO_PAGE & 1);
}

/* Native (fixed in 6.12.37) and emulated agree: the whole 2 MiB is
 * PFNZERO, present and not file. */
START_TEST(sd_huge_zero_pfnzero)
{
	PM_OPTS(pm_scan_opts, o, .category_mask = PM_CAT_PFNZERO,
		.return_mask = PM_CAT_PFNZERO | PM_CAT_PRESENT | PM_CAT_FILE);
	PM_OPTS(pm_scan_opts, oe, .flags = PM_SCAN_F_EMULATE, .category_mask = PM_CAT_PFNZERO,
		.return_mask = PM_CAT_PFNZERO | PM_CAT_PRESENT | PM_CAT_FILE);
	struct pm_region v[4], ve[4];
	struct child c;
	struct pm_handle *h;
	uint64_t e, z;
	long n;

	child_start(&c, build_huge_zero, NULL);
	z = c.shared[0];
	raw_read(c.pid, z, z + ps, &e);
	if (!pm_entry_pfn(e) || (kpageflags(pm_entry_pfn(e)) & (1ULL << KPF_ZERO_PAGE |
							      1ULL << KPF_COMPOUND_HEAD)) !=
					(1ULL << KPF_ZERO_PAGE | 1ULL << KPF_COMPOUND_HEAD)) {
		child_stop(&c);
		ck_abort_msg("no huge zero page: entry %#" PRIx64 " (THP or use_zero_page off?)", e);
	}
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	n = pm_scan(h, z - HUGE_SZ / 2, z + HUGE_SZ + HUGE_SZ / 2, v, 4, &o, NULL);
	ck_assert_int_eq(pm_scan(h, z - HUGE_SZ / 2, z + HUGE_SZ + HUGE_SZ / 2, ve, 4, &oe, NULL),
			 n);
	ck_assert_int_eq(n, 1);
	ck_assert_mem_eq(v, ve, sizeof(v[0]));
	ck_assert_uint_eq(v[0].start, z);
	ck_assert_uint_eq(v[0].end, z + HUGE_SZ);
	ck_assert_uint_eq(v[0].categories, PM_CAT_PFNZERO | PM_CAT_PRESENT);
	pm_close(h);
	child_stop(&c);
}
END_TEST

/* ---- no lost write: a writer thread against collect-with-reset ---- */

#define RACE_PAGES  64
#define RACE_ROUNDS 2000

/* Shared by writer and checker: the writer stores an ever larger sequence
 * number in the first word of a random page, then publishes it in done[];
 * it counts its writes and acknowledges a stop. */
struct race {
	uint64_t mem, stop, stopped, writes;
	uint64_t done[RACE_PAGES];
};

static void *writer(void *arg)
{
	struct race *x = arg;
	uint64_t seed = 11, seq = 0;

	while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
		uint64_t pg = rnd(&seed) % RACE_PAGES;

		seq++;
		__atomic_store_n((uint64_t *)(uintptr_t)(x->mem + pg * ps), seq, __ATOMIC_RELAXED);
		__atomic_store_n(&x->done[pg], seq, __ATOMIC_RELEASE);
		__atomic_store_n(&x->writes, seq, __ATOMIC_RELAXED);
		if (rnd(&seed) % 8 == 0)
			usleep(100); /* quiet spells: resets that are exact, not widened */
	}
	__atomic_store_n(&x->stopped, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *race_mem(void)
{
	void *m = xmap(NULL, RACE_PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	madvise(m, RACE_PAGES * ps, MADV_NOHUGEPAGE);
	memset(m, 0, RACE_PAGES * ps);
	return m;
}

static void build_race_child(void *arg, uint64_t *sh)
{
	struct race *x = (struct race *)sh;
	pthread_t t;

	(void)arg;
	x->mem = (uintptr_t)race_mem();
	if (pthread_create(&t, NULL, writer, x))
		_exit(4);
}

/* The first word of page pg of the target, now. */
static uint64_t word(pid_t pid, uint64_t a)
{
	uint64_t w = 0;
	struct iovec l = { &w, 8 }, r = { (void *)(uintptr_t)a, 8 };

	if (!pid)
		return __atomic_load_n((uint64_t *)(uintptr_t)a, __ATOMIC_RELAXED);
	ck_assert_int_eq(process_vm_readv(pid, &l, 1, &r, 1, 0), 8);
	return w;
}

/* Every round: note what the writer has completed, collect with reset,
 * read the first word of every page reported. A write completed before a
 * collect began must be in the copy after it: copy >= done, per page. */
static void race(pid_t pid, struct race *x, struct pm_handle *h)
{
	struct pm_range rg = { x->mem, x->mem + RACE_PAGES * ps };
	PM_OPTS(pm_wtrack_opts, o, .method = PM_WT_SOFT_DIRTY);
	PM_OPTS(pm_wtrack_stats, st);
	uint64_t copy[RACE_PAGES], snap[RACE_PAGES], lost = 0, exact = 0;
	struct pm_wtrack *wt;
	struct pm_region v[8];

	ck_assert_int_eq(pm_wtrack_new(h, &rg, 1, &o, &wt), 0);
	ck_assert_int_eq(pm_wtrack_method(wt), PM_WT_SOFT_DIRTY);
	/* the copy starts as the memory once tracking has started: a write
	 * before it is in it, one after must be reported */
	for (int pg = 0; pg < RACE_PAGES; pg++)
		copy[pg] = word(pid, rg.start + pg * ps);
	for (int round = 0; round <= RACE_ROUNDS; round++) {
		uint64_t we, reported = 0;

		if (round == RACE_ROUNDS) { /* the last round sees a stopped writer */
			__atomic_store_n(&x->stop, 1, __ATOMIC_RELEASE);
			while (!__atomic_load_n(&x->stopped, __ATOMIC_ACQUIRE))
				usleep(1000);
		}
		for (int pg = 0; pg < RACE_PAGES; pg++)
			snap[pg] = __atomic_load_n(&x->done[pg], __ATOMIC_ACQUIRE);
		for (uint64_t cur = rg.start; cur < rg.end; cur = we) {
			long n = pm_wtrack_collect(wt, cur, rg.end, v, 8, PM_WT_RESET, &we);

			ck_assert_msg(n >= 0, "collect: %ld", n);
			for (long k = 0; k < n; k++)
				for (uint64_t a = v[k].start; a < v[k].end; a += ps) {
					copy[(a - rg.start) / ps] = word(pid, a);
					reported++;
				}
		}
		exact += reported < RACE_PAGES;
		for (int pg = 0; pg < RACE_PAGES; pg++)
			if (copy[pg] < snap[pg] && !lost++)
				fprintf(stderr, "round %d: page %d holds write %" PRIu64
					", the copy %" PRIu64 "\n", round, pg, snap[pg], copy[pg]);
	}
	for (int pg = 0; pg < RACE_PAGES; pg++)
		ck_assert_uint_eq(copy[pg], word(pid, rg.start + pg * ps));
	ck_assert_int_eq(pm_wtrack_stats(wt, &st), 0);
	fprintf(stderr, "soft-dirty race (%s): %" PRIu64 " writes, %d collects with reset (%" PRIu64
		" reporting fewer than all pages, %" PRIu64 " widened), %" PRIu64 " pages stale after a collect\n",
		pid ? "another process" : "the caller", x->writes, RACE_ROUNDS + 1, exact, st.widened,
		lost);
	ck_assert_uint_eq(lost, 0);
	ck_assert_uint_gt(x->writes, RACE_ROUNDS); /* the writer really raced */
	pm_wtrack_free(wt);
}

START_TEST(sd_race_other_process)
{
	struct child c;
	struct pm_handle *h;

	child_start(&c, build_race_child, NULL);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	race(c.pid, (struct race *)c.shared, h);
	pm_close(h);
	child_stop(&c);
}
END_TEST

/* The caller's own memory with PM_WT_SOFT_DIRTY forced (AUTO would take
 * userfaultfd on 6.12). */
START_TEST(sd_race_caller)
{
	struct race *x = calloc(1, sizeof(*x));
	struct pm_handle *h;
	pthread_t t;

	x->mem = (uintptr_t)race_mem();
	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, writer, x), 0);
	race(0, x, h);
	pthread_join(t, NULL);
	pm_close(h);
	munmap((void *)(uintptr_t)x->mem, RACE_PAGES * ps);
	free(x);
}
END_TEST

/* ---- PM_WT_AUTO where both methods work ---- */

static void idle(void *arg, uint64_t *sh)
{
	(void)arg;
	sh[0] = (uintptr_t)race_mem();
}

START_TEST(sd_auto_choice)
{
	char why[256];
	struct child c;
	struct pm_handle *self, *hc;
	struct pm_wtrack *wt;
	char *m = race_mem();
	struct pm_range own = { (uintptr_t)m, (uintptr_t)m + RACE_PAGES * ps }, theirs;

	child_start(&c, idle, NULL);
	theirs.start = c.shared[0];
	theirs.end = theirs.start + RACE_PAGES * ps;
	ck_assert_int_eq(pm_open(0, NULL, &self), 0);
	ck_assert_int_eq(pm_open(c.pid, NULL, &hc), 0);
	ck_assert_int_eq(pm_wtrack_supported(self, NULL, why, sizeof(why)), PM_WT_UFFD);
	ck_assert_int_eq(pm_wtrack_new(self, &own, 1, NULL, &wt), 0);
	ck_assert_int_eq(pm_wtrack_method(wt), PM_WT_UFFD);
	pm_wtrack_free(wt);
	ck_assert_int_eq(pm_wtrack_supported(hc, NULL, why, sizeof(why)), PM_WT_SOFT_DIRTY);
	ck_assert_int_eq(pm_wtrack_new(hc, &theirs, 1, NULL, &wt), 0);
	ck_assert_int_eq(pm_wtrack_method(wt), PM_WT_SOFT_DIRTY);
	pm_wtrack_free(wt);
	pm_close(hc);
	pm_close(self);
	child_stop(&c);
	munmap(m, RACE_PAGES * ps);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s = suite_create("softdirty");
	TCase *t = tcase_create("softdirty");
	bool sd, scan;

	test_init();
	pm_dump = argc > 1 ? argv[1] : NULL;
	sd = expect_feature(PM_FEAT_SOFT_DIRTY);
	scan = expect_feature(PM_FEAT_PAGEMAP_SCAN);
	tcase_set_timeout(t, 600);
	add_test_if(t, sd_scan_differential, sd, lacks(PM_FEAT_SOFT_DIRTY));
	/* the races are for a kernel whose PAGEMAP_SCAN reads soft-dirty;
	 * test-wtrack-sd races soft-dirty on 6.1 already */
	add_test_if(t, sd_race_other_process, sd && scan,
		    sd ? lacks(PM_FEAT_PAGEMAP_SCAN) : lacks(PM_FEAT_SOFT_DIRTY));
	add_test_if(t, sd_race_caller, sd && scan,
		    sd ? lacks(PM_FEAT_PAGEMAP_SCAN) : lacks(PM_FEAT_SOFT_DIRTY));
	add_test_if(t, sd_huge_zero_pfnzero,
		    scan && expect_feature(PM_FEAT_PFN_VISIBLE) && huge_zero_here(),
		    !scan ? lacks(PM_FEAT_PAGEMAP_SCAN)
		    : !expect_feature(PM_FEAT_PFN_VISIBLE) ? lacks(PM_FEAT_PFN_VISIBLE)
							: "a read fault maps no huge zero page here");
	add_test_if(t, sd_pm_dump_column, sd && pm_dump,
		    !sd ? lacks(PM_FEAT_SOFT_DIRTY) : "no pm-dump given (argv[1])");
	add_test_if(t, sd_auto_choice, sd && scan && expect_feature(PM_FEAT_UFFD_WP_ASYNC),
		    !sd ? lacks(PM_FEAT_SOFT_DIRTY)
		    : !scan ? lacks(PM_FEAT_PAGEMAP_SCAN) : lacks(PM_FEAT_UFFD_WP_ASYNC));
	suite_add_tcase(s, t);
	return run_suite(s);
}
