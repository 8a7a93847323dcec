/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fault injection for what the machine cannot produce on demand: EINTR,
 * short reads, EOF, I/O errors, a kernel without PROCMAP_QUERY, and reads
 * that disagree (what a shifted read looks like to the guard). */
#include "common.h"
#include "internal.h"
#include "batch.h"
#include "compat/uapi.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static ssize_t (*real_pread)(int, void *, size_t, off_t);
static int (*real_ioctl)(int, unsigned long, void *);
static int mode;
static uint64_t calls, bytes;
static int counted_fd = -1; /* bytes counts reads of this fd only */
static int maps_watch_fd = -1; /* whole-text loads of this maps fd are counted */
static int eof_fd = -1; /* M_EOF: the fd at EOF (-1: all) */
static int maps_loads, query_calls;
static off_t flip_off = -1;
static struct pm_handle *guarded_h; /* whose status reads the token moves */
/* status reads during which the guard's token moves (UINT64_MAX: always) */
static uint64_t token_moves;
static uint64_t status_reads;
static bool flipped;
/* /proc/vmstat reads, and the guarded handle's pagemap reads: a THP split
 * (thp_split_pmd 1) happens during the split_at-th one (0: never) */
static uint64_t vmstat_reads, pagemap_reads, split_at;
/* the token's VM size also moves with every read of the guarded handle's
 * pagemap that covers this offset or later ones (-1: none), as a churned
 * PMD moves it */
static off_t move_from;
static uint64_t moves;
/* after the first read of gain_fd, the target gain_pid gains a page at
 * gain_va (written into it by this process) */
static int gain_fd = -1;
static pid_t gain_pid;
static uint64_t gain_va;

enum { M_EINTR = 1, M_SHORT, M_EOF, M_EIO, M_FLIP_ONCE, M_FLIP_ALWAYS };

__attribute__((format(printf, 3, 4))) static ssize_t fake_file(void *buf, size_t n,
								const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if ((size_t)len > n)
		len = (int)n;
	memcpy(buf, tmp, (size_t)len);
	return len;
}

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
		if (eof_fd < 0 || fd == eof_fd)
			return 0;
		break;
	case M_EIO:
		errno = EIO;
		return -1;
	}
	/* the guard's token: constant, or its VM size moving on each of the
	 * first token_moves reads (nothing else on the machine may move it) */
	if (guarded_h && fd == guarded_h->status_fd) {
		if (off)
			return 0;
		status_reads++;
		return fake_file(buf, n, "Name:\tt\nVmSize:\t%lu kB\nVmRSS:\t4 kB\nVmPTE:\t4 kB\n",
				 (unsigned long)(moves + (status_reads < token_moves ? status_reads
											     : token_moves + 1)));
	}
	if (guarded_h && fd == guarded_h->stat_fd)
		return off ? 0 : fake_file(buf, n, "1 (t) S 0 0 0 0 0 0 5 0 6 0\n%.0lu", 0UL);
	if (guarded_h && fd == guarded_h->pagemap_fd) {
		pagemap_reads++;
		moves += move_from >= 0 && off + (off_t)n > move_from;
	}
	r = real_pread(fd, buf, n, off);
	if (fd == gain_fd && gain_fd >= 0) {
		char one = 1;
		struct iovec l = { &one, 1 }, t = { (void *)(uintptr_t)gain_va, 1 };

		gain_fd = -1;
		ck_assert_int_eq(process_vm_writev(gain_pid, &l, 1, &t, 1, 0), 1);
	}
	if (guarded_h && r > 0 && off == 0 && !strncmp(buf, "nr_free_pages", 13)) {
		vmstat_reads++;
		return fake_file(buf, n, "nr_free_pages 1\nthp_split_pmd %d\n",
				 split_at && pagemap_reads >= split_at);
	}
	if (guarded_h && r > 0 && off > 0 && fd != guarded_h->pagemap_fd &&
	    fd != guarded_h->maps_fd)
		return 0; /* the rest of the faked vmstat */
	if (r > 0 && fd == counted_fd)
		bytes += (uint64_t)r;
	if (r > 0 && fd == maps_watch_fd && off == 0)
		maps_loads++;
	/* a disturbed read: the first (or every) read covering flip_off sees
	 * the entry there changed, as a shifted read would show it */
	if (r > 0 && flip_off >= off && flip_off < off + r &&
	    (mode == M_FLIP_ALWAYS || (mode == M_FLIP_ONCE && !flipped))) {
		((uint64_t *)buf)[(flip_off - off) / 8] ^= calls << 3;
		flipped = true;
	}
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
	/* every feature probed before faults are injected: probes run at
	 * first use, and a faked read would make one look absent */
	PM_OPTS(pm_kernel_info, ki);

	(void)pm_kernel_probe(&ki);
	real_pread = pm__sys.pread;
	real_ioctl = pm__sys.ioctl;
	pm__sys.pread = fake_pread;
	mode = 0;
	calls = bytes = 0;
	counted_fd = -1;
	maps_watch_fd = -1;
	eof_fd = -1;
	maps_loads = query_calls = 0;
	flip_off = -1;
	guarded_h = NULL;
	token_moves = 0;
	status_reads = 0;
	flipped = false;
	vmstat_reads = pagemap_reads = split_at = 0;
	move_from = -1;
	moves = 0;
	gain_fd = -1;
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

static void build_layout(void *arg, uint64_t *sh)
{
	sh[0] = (uintptr_t)layout(64);
}

/* A one-read sync batch: the read's result. */
static long batch_read(struct pm_handle *h, uint64_t a, uint64_t *e, size_t n)
{
	PM_OPTS(pm_batch_opts, o, .backend = PM_BACKEND_SYNC);
	struct pm_batch *b;
	long res = 0;

	ck_assert_int_eq(pm_batch_new(&o, &b), 0);
	ck_assert_int_eq(pm_batch_add_read(b, h, a, a + n * ps, e, NULL, &res), 0);
	ck_assert_int_eq(pm_batch_run(b), 0);
	pm_batch_free(b);
	return res;
}

/* pagemap EOF from a live process is the top of its address space (a
 * 32-bit target's, test-compat32; no process here ends below our top):
 * not mapped; from an exited one, -ESRCH. */
START_TEST(eof_is_top_or_exit_and_eio_passes)
{
	char *p = layout(8);
	uint64_t e[8], a;
	struct pm_handle *h;
	struct pm_vma_list *l;
	struct child c;
	PM_OPTS(pm_open_opts, text, .flags = PM_OPEN_MAPS_TEXT);

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	/* the pagemap only: the guard's counters (6.1) must stay readable */
	eof_fd = h->pagemap_fd;
	mode = M_EOF;
	memset(e, 0xa5, sizeof(e));
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + 8 * ps, e, NULL, NULL), 8);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(e[i], 0);
	mode = M_EIO;
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + 8 * ps, e, NULL, NULL), -EIO);
	ck_assert_int_eq(errno, EIO);
	pm_close(h);
	/* another process, alive and then gone: pm_read and the sync batch */
	mode = 0;
	child_start(&c, build_layout, NULL);
	a = c.shared[0];
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	eof_fd = h->pagemap_fd;
	mode = M_EOF;
	memset(e, 0xa5, sizeof(e));
	ck_assert_int_eq(pm_read(h, a, a + 8 * ps, e, NULL, NULL), 8);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(e[i], 0);
	memset(e, 0xa5, sizeof(e));
	ck_assert_int_eq(batch_read(h, a, e, 8), 8);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(e[i], 0);
	mode = 0;
	child_stop(&c);
	mode = M_EOF;
	ck_assert_int_eq(pm_read(h, a, a + 8 * ps, e, NULL, NULL), -ESRCH);
	ck_assert_int_eq(batch_read(h, a, e, 8), -ESRCH);
	pm_close(h);
	/* the maps text source: an empty file is an exited process (the
	 * open reads procfs files too: no fault there) */
	mode = 0;
	ck_assert_int_eq(pm_open(0, &text, &h), 0);
	eof_fd = -1;
	mode = M_EOF;
	ck_assert_int_eq(pm_vmas(h, &l), -ESRCH);
	pm_close(h);
	munmap(p, 8 * ps);
}
END_TEST


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

		PM_OPTS(pm_read_info, info);

		ck_assert_int_eq(pm_open(0, &oo, &h), 0);
		bytes = 0;
		counted_fd = h->pagemap_fd;
		ck_assert_int_eq(pm_read(h, (uintptr_t)base, (uintptr_t)base + n * ps, buf, NULL, &info),
				 (long)n);
		/* the two VMAs plus at most one read-ahead window each, per
		 * pass (a guarded read that tripped reads again) */
		ck_assert_uint_lt(bytes, 3 * 512 * 8 * (1 + info.retries));
		pm_close(h);
	}
	free(buf);
	munmap(base, 8 * ps);
	munmap(base + 8 * ps + gap, 8 * ps);
}
END_TEST

/* An emulated scan and the reads it plans share one VMA cursor: over one
 * large VMA the kernel is asked about it once (PROCMAP_QUERY), or, without
 * PROCMAP_QUERY, the maps text is read once. */
static int count_queries(int fd, unsigned long req, void *arg)
{
	if (req == PM__PROCMAP_QUERY)
		query_calls++;
	return real_ioctl(fd, req, arg);
}

START_TEST(emulated_scan_looks_up_a_vma_once)
{
	const size_t n = 16384;
	char *p = layout(n);
	struct pm_region *v = malloc(n * sizeof(*v));
	PM_OPTS(pm_scan_opts, o, .flags = PM_SCAN_F_EMULATE, .category_anyof_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	struct pm_handle *h;
	uint64_t we;
	bool has_query;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	/* features are probed at first use: count the scan's queries only */
	has_query = expect_feature(PM_FEAT_PROCMAP_QUERY); /* 6.12, not 6.1 */
	pm__sys.ioctl = count_queries;
	/* opened on first use where the kernel has PAGEMAP_SCAN */
	maps_watch_fd = pm__handle_fd(h, &h->maps_fd, "maps");
	ck_assert_int_gt(pm_scan(h, (uintptr_t)p, (uintptr_t)p + n * ps, v, n, &o, &we), 1000);
	ck_assert_uint_eq(we, (uintptr_t)p + n * ps);
	if (has_query) {
		ck_assert_int_eq(query_calls, 1);
		ck_assert_int_eq(maps_loads, 0);
	} else {
		ck_assert_int_eq(maps_loads, 1);
	}
	pm_close(h);
	free(v);
	munmap(p, n * ps);
}
END_TEST

static void open_guarded(char **p, uint64_t *truth)
{
	*p = layout(64);
	raw_read(getpid(), (uintptr_t)*p, (uintptr_t)*p + 64 * ps, truth);
	ck_assert_int_eq(pm_open(0, NULL, &guarded_h), 0);
	flip_off = (off_t)(((uintptr_t)*p / ps + 10) * 8);
}

/* pm_read of the 64 pages open_guarded() laid out. */
static long read_guarded(char *p, uint64_t *b, const struct pm_read_opts *o,
			 struct pm_read_info *info)
{
	return pm_read(guarded_h, (uintptr_t)p, (uintptr_t)p + 64 * ps, b, o, info);
}

static void close_guarded(char *p)
{
	pm_close(guarded_h);
	guarded_h = NULL;
	munmap(p, 64 * ps);
}

/* Pieces of the range: its PMD-aligned parts. */
static uint64_t pmd_pieces(const char *p, size_t n)
{
	const uint64_t pmd = ps * (ps / 8);

	return ((uintptr_t)p + n * ps - 1) / pmd - (uintptr_t)p / pmd + 1;
}

/* A disturbed first read while the token moves: the certifying pass
 * reads the range again piece by piece, and the token, still now,
 * certifies every piece. */
START_TEST(guard_trip_rereads)
{
	char *p;
	uint64_t truth[64], b[64];
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_SNAPSHOT);
	PM_OPTS(pm_read_info, info);

	open_guarded(&p, truth);
	mode = M_FLIP_ONCE;
	token_moves = 2; /* the first pass's two tokens differ */
	calls = 0;
	ck_assert_int_eq(read_guarded(p, b, &o, &info), 64);
	ck_assert_mem_eq(truth, b, sizeof(b));
	ck_assert_uint_eq(info.retries, 1);
	ck_assert_uint_eq(info.kernel_reads, 1 + pmd_pieces(p, 64));
	ck_assert(info.flags & PM_READ_INFO_GUARDED);
	ck_assert(info.flags & PM_READ_INFO_RETRIED);
	ck_assert(!(info.flags & PM_READ_INFO_UNSTABLE));
	close_guarded(p);
}
END_TEST

/* A still token certifies the first pass: no verification without cause. */
START_TEST(guard_still_token_reads_once)
{
	char *p;
	uint64_t truth[64], b[64];
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_SNAPSHOT);
	PM_OPTS(pm_read_info, info);

	open_guarded(&p, truth);
	ck_assert_int_eq(read_guarded(p, b, &o, &info), 64);
	ck_assert_mem_eq(truth, b, sizeof(b));
	ck_assert(info.flags & PM_READ_INFO_GUARDED);
	ck_assert_uint_eq(info.retries, 0);
	ck_assert_uint_eq(info.kernel_reads, 1);
	ck_assert_uint_eq(status_reads, 2);
	close_guarded(p);
}
END_TEST

/* The token never stills: passes that read the same data certify
 * nothing (agreement is no evidence against a shift repeated in step).
 * With BEST_EFFORT the data comes back, the whole range uncertain. */
START_TEST(guard_agreement_is_not_evidence)
{
	char *p;
	uint64_t truth[64], b[64];
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_SNAPSHOT, .max_retries = 3);
	PM_OPTS(pm_read_opts, be, .flags = PM_READ_F_SNAPSHOT | PM_READ_F_BEST_EFFORT,
		.max_retries = 3);
	struct pm_range unc[4];
	PM_OPTS(pm_read_info, info, .uncertain = (uintptr_t)unc, .uncertain_cap = 4);

	open_guarded(&p, truth);
	token_moves = UINT64_MAX;
	ck_assert_int_eq(read_guarded(p, b, &o, &info), -EAGAIN);
	ck_assert_int_eq(read_guarded(p, b, &be, &info), 64);
	ck_assert_mem_eq(truth, b, sizeof(b));
	ck_assert(info.flags & PM_READ_INFO_UNSTABLE);
	ck_assert_uint_eq(info.retries, 3);
	ck_assert_uint_eq(info.uncertain_count, 1);
	ck_assert_uint_eq(unc[0].start, (uintptr_t)p);
	ck_assert_uint_eq(unc[0].end, (uintptr_t)p + 64 * ps);
	close_guarded(p);
}
END_TEST

/* Certifying passes bracket many pieces at first, then fewer, down to
 * one per piece. The token moves in the first three passes and during the
 * first piece of the fourth only: the second piece is certified, and the
 * best-effort read names the first as the one uncertain range. */
START_TEST(guard_certifies_piece_by_piece)
{
	const uint64_t pmd = ps * (ps / 8);
	char *r = xmap(NULL, 3 * pmd, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = (char *)(((uintptr_t)r + pmd - 1) & ~(pmd - 1)) + pmd - 32 * ps;
	uint64_t truth[64], b[64];
	PM_OPTS(pm_read_opts, be, .flags = PM_READ_F_SNAPSHOT | PM_READ_F_BEST_EFFORT,
		.max_retries = 4);
	struct pm_range unc[4];
	PM_OPTS(pm_read_info, info, .uncertain = (uintptr_t)unc, .uncertain_cap = 4,
		.uncertain_count = 9);

	/* 64 pages: the last 32 of one PMD, the first 32 of the next */
	ck_assert_ptr_eq(mmap(p, 64 * ps, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), p);
	for (int i = 0; i < 64; i += 3)
		p[i * ps] = 1;
	raw_read(getpid(), (uintptr_t)p, (uintptr_t)p + 64 * ps, truth);
	ck_assert_int_eq(pm_open(0, NULL, &guarded_h), 0);
	/* status reads: the first pass's two; two for each of the three
	 * certifying passes with one bracket; in the fourth one at its start
	 * and one after each piece: moving until after the first piece */
	token_moves = 10;
	ck_assert_int_eq(read_guarded(p, b, &be, &info), 64);
	ck_assert_mem_eq(truth, b, sizeof(b));
	ck_assert(info.flags & PM_READ_INFO_UNSTABLE);
	ck_assert_uint_eq(info.uncertain_count, 1);
	ck_assert_uint_eq(unc[0].start, (uintptr_t)p);
	ck_assert_uint_eq(unc[0].end, (uintptr_t)p + 32 * ps);
	/* with one more pass, the first piece is certified too */
	status_reads = 0;
	be.max_retries = 5;
	ck_assert_int_eq(read_guarded(p, b, &be, &info), 64);
	ck_assert(!(info.flags & PM_READ_INFO_UNSTABLE));
	ck_assert_uint_eq(info.uncertain_count, 0);
	ck_assert_uint_eq(info.retries, 5);
	pm_close(guarded_h);
	guarded_h = NULL;
	munmap(r, 3 * pmd);
}
END_TEST

/* A guarded emulated scan stops at the first page the guard cannot
 * certify. The token moves whenever a read covers the second half of the
 * range (another PMD, as a churned PMD moves it): the call returns the
 * regions of the first half, walk_end where the second starts, and a call
 * from there certifies nothing: -EAGAIN. A region that reaches the
 * uncertain page may go on past it: it is left to the next call, unless
 * max_pages ends the answer inside it. (Before, the whole call failed
 * with -EAGAIN.) */
START_TEST(emulated_scan_stops_at_an_uncertain_pmd)
{
	const uint64_t pmd = ps * (ps / 8);
	char *r = xmap(NULL, 3 * pmd, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *p = (char *)(((uintptr_t)r + pmd - 1) & ~(pmd - 1)) + pmd - 32 * ps;
	const uint64_t lo = (uintptr_t)p, hi = lo + 64 * ps;
	PM_OPTS(pm_scan_opts, o, .flags = PM_SCAN_F_EMULATE, .category_anyof_mask = PM_CAT_PRESENT,
		.return_mask = PM_CAT_PRESENT);
	struct pm_region v[64];
	uint64_t we = 0, we2 = 0;

	/* 64 pages: the last 32 of one PMD, the first 32 of the next */
	ck_assert_ptr_eq(mmap(p, 64 * ps, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), p);
	for (int i = 0; i < 30; i += 3)
		p[i * ps] = 1; /* ten regions, the last one page 27 */
	memset(p + 32 * ps, 1, 32 * ps);
	ck_assert_int_eq(pm_open(0, NULL, &guarded_h), 0);
	move_from = (off_t)((lo / ps + 32) * 8);
	ck_assert_int_eq(pm_scan(guarded_h, lo, hi, v, 64, &o, &we), 10);
	ck_assert_uint_eq(we, lo + 32 * ps);
	for (int i = 0; i < 10; i++) {
		ck_assert_uint_eq(v[i].start, lo + 3 * (uint64_t)i * ps);
		ck_assert_uint_eq(v[i].end, v[i].start + ps);
		ck_assert_uint_eq(v[i].categories, PM_CAT_PRESENT);
	}
	ck_assert_int_eq(pm_scan(guarded_h, we, hi, v, 64, &o, &we2), -EAGAIN);
	/* page 31 present: its region reaches the uncertain PMD */
	p[31 * ps] = 1;
	ck_assert_int_eq(pm_scan(guarded_h, lo, hi, v, 64, &o, &we), 10);
	ck_assert_uint_eq(we, lo + 31 * ps);
	ck_assert_uint_eq(v[9].end, lo + 28 * ps);
	/* unless max_pages ends the answer inside that run */
	o.max_pages = 11;
	ck_assert_int_eq(pm_scan(guarded_h, lo, hi, v, 64, &o, &we), 11);
	ck_assert_uint_eq(v[10].start, lo + 31 * ps);
	ck_assert_uint_eq(v[10].end, lo + 32 * ps);
	ck_assert_uint_eq(we, lo + 32 * ps);
	pm_close(guarded_h);
	guarded_h = NULL;
	munmap(r, 3 * pmd);
}
END_TEST

/* Moving token and reads that never agree: -EAGAIN, or flagged data with
 * BEST_EFFORT. */
START_TEST(guard_budget_exhausted)
{
	char *p;
	uint64_t truth[64], b[64];
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_SNAPSHOT, .max_retries = 3);
	PM_OPTS(pm_read_opts, be, .flags = PM_READ_F_SNAPSHOT | PM_READ_F_BEST_EFFORT,
		.max_retries = 2);
	PM_OPTS(pm_read_info, info);

	open_guarded(&p, truth);
	token_moves = UINT64_MAX;
	mode = M_FLIP_ALWAYS;
	info.retries = 77;
	ck_assert_int_eq(read_guarded(p, b, &o, &info), -EAGAIN);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_uint_eq(info.retries, 77); /* info is written on success only */
	ck_assert_int_eq(read_guarded(p, b, &be, &info), 64);
	ck_assert(info.flags & PM_READ_INFO_UNSTABLE);
	ck_assert_uint_eq(info.retries, 2);
	close_guarded(p);
}
END_TEST

/* A soft-dirty tracker whose pagemap reads the guard cannot certify (the
 * token moves and no two passes agree, as under a faulting target before
 * 6.5) trusts nothing in them: every page counts as written, and the
 * collect succeeds instead of failing with -EAGAIN. The target is a child
 * (whose token the injection fakes whole). Needs soft-dirty and a kernel
 * without the retry fix: runs in the 6.1 VM. */
static void child_layout(void *arg, uint64_t *shared)
{
	(void)arg;
	shared[0] = (uintptr_t)layout(64);
}

START_TEST(soft_dirty_distrusts_uncertified_reads)
{
	PM_OPTS(pm_wtrack_opts, sd, .method = PM_WT_METHOD_SOFT_DIRTY);
	struct pm_region v[4];
	struct pm_wtrack *wt;
	struct pm_range r;
	struct child c;
	uint64_t we;

	child_start(&c, child_layout, NULL);
	r.start = c.shared[0];
	r.end = r.start + 64 * ps;
	ck_assert_int_eq(pm_open(c.pid, NULL, &guarded_h), 0);
	flip_off = (off_t)((r.start / ps + 10) * 8);
	ck_assert_int_eq(pm_wtrack_new(guarded_h, &r, 1, &sd, &wt), 0);
	ck_assert_int_eq(pm_wtrack_collect(wt, r.start, r.end, v, 4, 0, &we), 0);
	token_moves = UINT64_MAX;
	mode = M_FLIP_ALWAYS;
	ck_assert_int_eq(pm_wtrack_collect(wt, r.start, r.end, v, 4, 0, &we), 1);
	ck_assert(v[0].start == r.start && v[0].end == r.end);
	ck_assert_uint_eq(we, r.end);
	mode = 0;
	pm_wtrack_free(wt);
	pm_close(guarded_h);
	guarded_h = NULL;
	child_stop(&c);
}
END_TEST

/* io_uring refused at setup (ENOSYS: an old kernel; EPERM: seccomp or
 * io_uring_disabled): the batch runs the same reads sync and says so. */
static int refuse_errno;
static int refuse_uring(unsigned entries, void *ring, unsigned flags)
{
	(void)entries;
	(void)ring;
	(void)flags;
	return -refuse_errno;
}

START_TEST(batch_uring_refused_runs_sync)
{
	static const int errs[] = { ENOSYS, EPERM };
	int (*real_init)(unsigned, void *, unsigned) = pm__uring_sys.init;
	char *p = layout(256);
	uint64_t want[256], got[256];
	struct pm_handle *h;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, (uintptr_t)p, (uintptr_t)p + 256 * ps, want, NULL, NULL), 256);
	pm__uring_sys.init = refuse_uring;
	for (size_t i = 0; i < 2; i++) {
		PM_OPTS(pm_batch_opts, o, .backend = PM_BACKEND_URING);
		struct pm_batch *b;
		long res = 0;

		refuse_errno = errs[i];
		ck_assert_int_eq(pm_batch_new(&o, &b), 0);
		ck_assert_int_eq(pm_batch_add_read(b, h, (uintptr_t)p, (uintptr_t)p + 256 * ps, got,
						   NULL, &res),
				 0);
		ck_assert_int_eq(pm_batch_run(b), 0);
		ck_assert_int_eq(pm_batch_backend(b), PM_BACKEND_SYNC);
		ck_assert_int_eq(res, 256);
		ck_assert_mem_eq(want, got, sizeof(want));
		pm_batch_free(b);
	}
	pm__uring_sys.init = real_init;
	pm_close(h);
	munmap(p, 256 * ps);
}
END_TEST

/* A guarded batch whose handle's reads make two groups (a read of
 * another handle between them) reads /proc/vmstat three times on sync,
 * not four: a new batch settles its first group alone, the second group
 * opens with that sum and settles with the sum read at the end. io_uring
 * (where the build and the kernel have it) reads it twice: the first
 * group's opening token, one sum after every completion. A split during the second group's read still moves its
 * bracket: that read alone is read again, certified (sync: io_uring's
 * reads do not pass through here). */
START_TEST(batch_groups_share_vmstat)
{
	char *p;
	uint64_t truth[64], b[2][64];
	struct pm_handle *other;

	open_guarded(&p, truth);
	ck_assert_int_eq(pm_open(0, NULL, &other), 0);
	for (int split = 0; split < 3; split++) {
		PM_OPTS(pm_batch_opts, o, .backend = split == 2 ? PM_BACKEND_URING : PM_BACKEND_SYNC,
			.read_flags = PM_READ_F_SNAPSHOT);
		PM_OPTS(pm_read_info, i0);
		PM_OPTS(pm_read_info, i1);
		struct pm_batch *bt;
		long res[3];

		ck_assert_int_eq(pm_batch_new(&o, &bt), 0);
		ck_assert_int_eq(pm_batch_add_read(bt, guarded_h, (uintptr_t)p,
						   (uintptr_t)p + 64 * ps, b[0], &i0, &res[0]),
				 0);
		ck_assert_int_eq(pm_batch_add_read(bt, other, 1, ps, b[1], NULL, &res[1]), 0);
		ck_assert_int_eq(pm_batch_add_read(bt, guarded_h, (uintptr_t)p,
						   (uintptr_t)p + 64 * ps, b[1], &i1, &res[2]),
				 0);
		vmstat_reads = pagemap_reads = 0;
		split_at = split == 1 ? 2 : 0;
		ck_assert_int_eq(pm_batch_run(bt), 0);
		if (split == 2 && pm_has_feature(PM_FEAT_IO_URING) == 1)
			ck_assert_int_eq(pm_batch_backend(bt), PM_BACKEND_URING);
		ck_assert_int_eq(res[0], 64);
		ck_assert_int_eq(res[1], -EINVAL);
		ck_assert_int_eq(res[2], 64);
		ck_assert_mem_eq(truth, b[0], sizeof(truth));
		ck_assert_mem_eq(truth, b[1], sizeof(truth));
		ck_assert(!(i0.flags & PM_READ_INFO_RETRIED));
		if (split == 1) {
			ck_assert(i1.flags & PM_READ_INFO_RETRIED);
		} else {
			ck_assert(!(i1.flags & PM_READ_INFO_RETRIED));
			ck_assert_uint_eq(vmstat_reads,
					  pm_batch_backend(bt) == PM_BACKEND_URING ? 2 : 3);
		}
		pm_batch_free(bt);
	}
	pm_close(other);
	close_guarded(p);
}
END_TEST

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Guarded reads back to back: the second one opens with the THP event
 * sum the first one's closing token read (less than a millisecond old),
 * so two reads take three /proc/vmstat reads, not four; a split between
 * them is still seen by the second one's closing token, which reads it
 * afresh: that read is read again, certified. */
START_TEST(guard_opening_reuses_a_recent_thp_sum)
{
	char *p;
	uint64_t truth[64], b[64];
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_SNAPSHOT);

	open_guarded(&p, truth);
	for (int split = 0; split < 2; split++) {
		PM_OPTS(pm_read_info, info);
		uint64_t t0, t1;

		vmstat_reads = pagemap_reads = 0;
		split_at = split ? 2 : 0; /* during the second read's pagemap read */
		t0 = mono_us();
		ck_assert_int_eq(read_guarded(p, b, &o, NULL), 64);
		t1 = mono_us();
		ck_assert_int_eq(read_guarded(p, b, &o, &info), 64);
		ck_assert_mem_eq(truth, b, sizeof(b));
		if (split) {
			ck_assert(info.flags & PM_READ_INFO_RETRIED);
		} else if (t1 - t0 < 900) {
			ck_assert(!(info.flags & PM_READ_INFO_RETRIED));
			ck_assert_uint_eq(vmstat_reads, 3);
		} else {
			fprintf(stderr, "guard_opening_reuses_a_recent_thp_sum: a read took %" PRIu64
				" us, the sum may be too old: count not checked\n", t1 - t0);
		}
	}
	close_guarded(p);
}
END_TEST

/* 16 pages, the first 15 written (a 16th left for the test to write). */
static void build_gain(void *arg, uint64_t *sh)
{
	char *p = xmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	(void)arg;
	madvise(p, 16 * ps, MADV_NOHUGEPAGE);
	memset(p, 1, 15 * ps);
	sh[0] = (uintptr_t)p;
}

/* pm_usage of another process with the guard on takes one token pair
 * around its whole count. A page the target gains during the count (after
 * its first pagemap read) moves that pair: the count is taken back and
 * made again, and it has the page. Real tokens of a real child. */
START_TEST(usage_bracket_trip_counts_again)
{
	PM_OPTS(pm_usage_opts, uo, .fields = PM_USAGE_RSS | PM_USAGE_USS,
		.read_flags = PM_READ_F_SNAPSHOT);
	struct pm_usage u = { .size = sizeof(u) };
	struct pm_handle *h;
	struct child c;
	uint64_t va;

	child_start(&c, build_gain, NULL);
	va = c.shared[0];
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_usage(h, va, va + 16 * ps, &uo, &u), 0);
	ck_assert_uint_eq(u.rss, 15 * ps);
	gain_pid = c.pid;
	gain_va = va + 15 * ps;
	gain_fd = h->pagemap_fd;
	ck_assert_int_eq(pm_usage(h, va, va + 16 * ps, &uo, &u), 0);
	ck_assert_int_eq(gain_fd, -1); /* the page came during the count */
	ck_assert_uint_eq(u.rss, 16 * ps);
	if (u.valid & PM_USAGE_USS)
		ck_assert_uint_eq(u.uss, 16 * ps);
	pm_close(h);
	child_stop(&c);
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
	tcase_add_test(t, eof_is_top_or_exit_and_eio_passes);
	tcase_add_test(t, enotty_falls_back_to_text);
	tcase_add_test(t, gaps_are_not_read);
	tcase_add_test(t, emulated_scan_looks_up_a_vma_once);
	tcase_add_test(t, guard_trip_rereads);
	tcase_add_test(t, guard_still_token_reads_once);
	tcase_add_test(t, guard_agreement_is_not_evidence);
	tcase_add_test(t, guard_certifies_piece_by_piece);
	tcase_add_test(t, guard_budget_exhausted);
	tcase_add_test(t, batch_uring_refused_runs_sync);
	tcase_add_test(t, batch_groups_share_vmstat);
	tcase_add_test(t, usage_bracket_trip_counts_again);
	tcase_add_test(t, guard_opening_reuses_a_recent_thp_sum);
	/* 6.1 only: with the retry fix (6.12) reads are not guarded, so there
	 * is no uncertified read to distrust */
	/* where reads are guarded without being asked: the emulated scan has
	 * no flag to ask (6.1; the host and 6.12 have the retry fix) */
	add_test_if(t, emulated_scan_stops_at_an_uncertain_pmd,
		    !expect_feature(PM_FEAT_WALK_RETRY_FIX),
		    "the retry fix: emulated scans are not guarded");
	add_test_if(t, soft_dirty_distrusts_uncertified_reads,
		    expect_feature(PM_FEAT_SOFT_DIRTY) && !expect_feature(PM_FEAT_WALK_RETRY_FIX),
		    expect_feature(PM_FEAT_SOFT_DIRTY) ? "the retry fix: reads are not guarded"
						       : lacks(PM_FEAT_SOFT_DIRTY));
	suite_add_tcase(s, t);
	return run_suite(s);
}
