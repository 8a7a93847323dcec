/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_scan against its floors, on the same layouts as bench-read, in the
 * same run, interleaved, medians:
 *   ioctl   a raw PAGEMAP_SCAN loop (continue at walk_end)
 *   scan    pm_scan, native, same query (present or swapped pages)
 *   pread   one pread of the whole span (the floor of any entry-based path)
 *   emul    pm_scan with PM_SCAN_F_EMULATE, same query
 * and on the THP layout the presence question answered from entries (one
 * pread, decoded) against pm_scan. Every caller gets a 32768-region vector,
 * as CRIU uses. The methods run in shuffled order in each repetition.
 *
 * Then the rows of issue 16's table:
 *   native   pm_scan against the raw ioctl, 10,000 VMAs
 *   emulated pm_scan (PM_SCAN_F_EMULATE) against the pread floor, 10,000
 *            VMAs of zero pages (read faults: own pages where the kernel maps
 *            no zero page), of file pages, and of anonymous pages shared
 *            copy-on-write with a forked copy (a process's own layout after
 *            fork: not exclusive, so their VMA's kind is looked up)
 *   text     emulated pm_scan on a PM_OPEN_MAPS_TEXT handle (the source of
 *            every kernel that needs emulation), 10,000 VMAs, vec_len 64,
 *            continued at walk_end, against the pread floor; shown beside
 *            it (not the floor): the span read raw in as many preads as
 *            pm_scan made calls, and with a stat pread after each, the
 *            identity check each call must make (#14)
 *   vmas     pm_vmas on the 10,000-VMA process against reading its maps text
 *            raw (no parse), and one raw PROCMAP_QUERY per VMA where the
 *            kernel has it (what pm_vmas cost before it read the text)
 * On a kernel without PAGEMAP_SCAN only the emulated rows run (benchmark
 * scan-6.1 runs them in the 6.1 VM).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "layouts.h"
#include "order.h"

static uint64_t order_seed = 16; /* the methods' order, per repetition */

#define REPS 15
#define MANY_REPS 101
#define VEC 32768 /* CRIU's PAGE_REGIONS_MAX_NR */

struct scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t inverted, mask, anyof, ret;
};
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct scan_arg)
#define QUERY (PM_CAT_PRESENT | PM_CAT_SWAPPED)

static struct pm_region vec[VEC];

static size_t raw_ioctl(int fd, struct span s)
{
	size_t n = 0;

	for (uint64_t cur = s.lo; cur < s.hi;) {
		struct scan_arg a = { .size = sizeof(a), .start = cur, .end = s.hi,
				      .vec = (uintptr_t)vec, .vec_len = VEC, .anyof = QUERY,
				      .ret = QUERY };
		int r = ioctl(fd, PAGEMAP_SCAN_, &a);

		if (r < 0) {
			perror("PAGEMAP_SCAN");
			exit(1);
		}
		n += (size_t)r;
		/* 6.18 reports walk_end short of its last region when vec_len is
		 * above its 512-region bounce buffer: continuing from walk_end
		 * alone would report those regions twice */
		cur = a.walk_end;
		if (r > 0 && vec[r - 1].end > cur)
			cur = vec[r - 1].end;
	}
	return n;
}

static size_t scan_calls; /* the calls of the last lib_scan_vec */

static size_t lib_scan_vec(struct pm_handle *h, struct span s, uint64_t flags, size_t vec_len)
{
	PM_OPTS(pm_scan_opts, o, .flags = flags, .category_anyof_mask = QUERY, .return_mask = QUERY);
	size_t n = 0;

	scan_calls = 0;
	for (uint64_t cur = s.lo; cur < s.hi;) {
		long r = pm_scan(h, cur, s.hi, vec, vec_len, &o, &cur);

		if (r < 0) {
			fprintf(stderr, "pm_scan: %ld\n", r);
			exit(1);
		}
		n += (size_t)r;
		scan_calls++;
	}
	return n;
}

/* The span in @calls preads (and a pread of @stat_fd after each, if >= 0). */
static void pread_pieces(int fd, struct span s, uint64_t *buf, size_t calls, int stat_fd)
{
	const uint64_t piece = ((s.hi - s.lo) / ps + calls - 1) / calls * ps;
	char text[1024];

	for (uint64_t a = s.lo; a < s.hi; a += piece) {
		pread_all(fd, buf, a, s.hi - a > piece ? a + piece : s.hi);
		if (stat_fd >= 0 && pread(stat_fd, text, sizeof(text), 0) <= 0) {
			perror("pread stat");
			exit(1);
		}
	}
}

static size_t lib_scan(struct pm_handle *h, struct span s, uint64_t flags)
{
	return lib_scan_vec(h, s, flags, VEC);
}

/* Present runs from entries: the fastest pread path to the same answer. */
static size_t pread_present(int fd, struct span s, uint64_t *buf)
{
	size_t n = (s.hi - s.lo) / ps, runs = 0;

	pread_all(fd, buf, s.lo, s.hi);
	for (size_t i = 0; i < n; i++)
		runs += pm_entry_present(buf[i]) && (i == 0 || !pm_entry_present(buf[i - 1]));
	return runs;
}

static void build_kinds(void *arg, struct span *out)
{
	(void)arg;
	out[0] = zero_vmas();
	out[1] = file_vmas();
	out[2] = cow_vmas();
}

/* Emulated pm_scan (vector of @vec_len, continued at walk_end) against
 * the pread floor, shuffled, medians; one ROW. */
static void emulated_row(pid_t pid, struct span s, uint64_t open_flags, size_t vec_len,
			 const char *what)
{
	PM_OPTS(pm_open_opts, oo, .flags = open_flags);
	uint64_t *buf = xmap((s.hi - s.lo) / ps * 8, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS);
	const int methods = vec_len < VEC ? 4 : 2;
	double t[4][REPS], cold;
	struct pm_handle *h;
	size_t regions = 0, calls;
	char path[64];
	int fd, stat_fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	stat_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || stat_fd < 0 || pm_open(pid, &oo, &h))
		exit(1);
	cold = now();
	lib_scan_vec(h, s, PM_SCAN_F_EMULATE, vec_len);
	cold = now() - cold;
	calls = scan_calls;
	for (int r = 0; r < REPS; r++) {
		int order[4];

		bench_order(order, methods, &order_seed);
		for (int k = 0; k < methods; k++) {
			double t0 = now();

			if (order[k] == 0)
				regions = lib_scan_vec(h, s, PM_SCAN_F_EMULATE, vec_len);
			else if (order[k] == 1)
				pread_present(fd, s, buf);
			else
				pread_pieces(fd, s, buf, calls, order[k] == 3 ? stat_fd : -1);
			t[order[k]][r] = now() - t0;
		}
	}
	double ml = median(t[0], REPS), mp = median(t[1], REPS);

	printf("%s: emulated %.3f ms (first call %.3f ms), pread %.3f ms, %zu regions\n", what,
	       ml * 1e3, cold * 1e3, mp * 1e3, regions);
	if (methods == 4)
		printf("%s: raw in %zu preads %.2fx pread, and a stat pread after each %.2fx\n",
		       what, calls, median(t[2], REPS) / mp, median(t[3], REPS) / mp);
	print_row(what, ml / mp, 1.25, false);
	pm_close(h);
	close(fd);
	close(stat_fd);
	munmap(buf, (s.hi - s.lo) / ps * 8);
}

struct query_arg {
	uint64_t size, flags, addr, start, end, vma_flags, page_size, offset, inode;
	uint32_t major, minor, name_size, build_id_size;
	uint64_t name, build_id;
};
#define PROCMAP_QUERY_ _IOWR('f', 17, struct query_arg)

/* The raw PROCMAP_QUERY walk, names included: VMAs listed. */
static size_t query_walk(int fd)
{
	static char name[4096];
	uint64_t addr = 0;
	size_t n = 0;

	for (;;) {
		struct query_arg q = { .size = sizeof(q), .flags = 0x10 /* COVERING_OR_NEXT */,
				       .addr = addr, .name_size = sizeof(name),
				       .name = (uintptr_t)name };

		if (ioctl(fd, PROCMAP_QUERY_, &q))
			return n;
		addr = q.end;
		n++;
	}
}

/* pm_vmas against the raw maps text read and the raw query walk. */
static void vmas_line(pid_t pid)
{
	static char text[1 << 16];
	const bool query = pm_has_feature(PM_FEAT_PROCMAP_QUERY) == 1;
	double t[3][REPS];
	struct pm_handle *h;
	char path[64];
	size_t n[3] = { 0 };
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (pm_open(pid, NULL, &h))
		exit(1);
	for (int r = 0; r < REPS; r++) {
		int order[3];

		bench_order(order, query ? 3 : 2, &order_seed);
		for (int k = 0; k < (query ? 3 : 2); k++) {
			double t0 = now();
			struct pm_vma_list *l;
			ssize_t got;

			switch (order[k]) {
			case 0:
				if (pm_vmas(h, &l))
					exit(1);
				n[0] = pm_vma_count(l);
				pm_vma_list_free(l);
				break;
			case 1:
				fd = open(path, O_RDONLY | O_CLOEXEC);
				n[1] = 0;
				while (fd >= 0 && (got = read(fd, text, sizeof(text))) > 0)
					for (ssize_t i = 0; i < got; i++)
						n[1] += text[i] == '\n';
				close(fd);
				break;
			default:
				fd = open(path, O_RDONLY | O_CLOEXEC);
				n[2] = query_walk(fd);
				close(fd);
			}
			t[order[k]][r] = now() - t0;
		}
	}
	printf("pm_vmas, %zu VMAs: %.3f ms, %.2fx reading the maps text raw (%.3f ms, %zu lines)",
	       n[0], median(t[0], REPS) * 1e3, median(t[0], REPS) / median(t[1], REPS),
	       median(t[1], REPS) * 1e3, n[1]);
	if (query)
		printf("; one PROCMAP_QUERY per VMA %.3f ms (%.2fx the text, %zu VMAs)",
		       median(t[2], REPS) * 1e3, median(t[2], REPS) / median(t[1], REPS), n[2]);
	printf("\n");
	pm_close(h);
}

static void build_many(void *arg, struct span *out)
{
	(void)arg;
	out[0] = many_vmas();
}

/* The emulated rows: all there is to measure on a kernel without
 * PAGEMAP_SCAN (the 6.1 VM: benchmark scan-6.1), where the maps text is
 * the VMA source whatever the handle asks. */
static void emulated_rows(pid_t pid, struct span many)
{
	struct span kinds[3];
	int hold;

	vmas_line(pid);
	emulated_row(pid, many, PM_OPEN_MAPS_TEXT, 64,
		     "emulated pm_scan, maps-text source, 10000 VMAs, vec_len 64, vs pread");
	pid = bench_child(build_kinds, NULL, kinds, 3, &hold);
	emulated_row(pid, kinds[0], 0, VEC, "emulated pm_scan, 10000 VMAs of zero pages, vs pread");
	emulated_row(pid, kinds[1], 0, VEC, "emulated pm_scan, 10000 VMAs of file pages, vs pread");
	emulated_row(pid, kinds[2], 0, VEC,
		     "emulated pm_scan, 10000 VMAs of copy-on-write pages, vs pread");
	layouts_stop(pid, hold);
}

int main(void)
{
	struct span spans[8];
	char path[64];
	int hold, fd;
	pid_t pid;
	struct pm_handle *h;

	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) != 1) {
		printf("no PAGEMAP_SCAN on this kernel: the emulated rows only (libpagemap %s)\n",
		       pm_version());
		pid = bench_child(build_many, NULL, spans, 1, &hold);
		emulated_rows(pid, spans[0]);
		layouts_stop(pid, hold);
		return 0;
	}
	pid = layouts_start(spans, &hold);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pm_open(pid, NULL, &h))
		return 1;
	printf("pm_scan vs its floors, medians of %d interleaved runs (%d for 10,000 VMAs; "
	       "libpagemap %s)\n", REPS, MANY_REPS, pm_version());
	for (size_t l = 0; l < nlayouts; l++) {
		struct span s = spans[l];
		uint64_t *buf = xmap((s.hi - s.lo) / ps * 8, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS);
		/* the 10,000-VMA row is a 5 % floor on a ~1 ms call: more runs */
		const int reps = l == 3 ? MANY_REPS : REPS;
		double io[MANY_REPS], sc[MANY_REPS], pr[MANY_REPS], em[MANY_REPS];
		size_t a = 0, b = 0, c = 0;

		for (int r = 0; r < reps; r++) {
			int order[4];

			bench_order(order, 4, &order_seed);
			for (int k = 0; k < 4; k++) {
				double t = now();

				switch (order[k]) {
				case 0:
					a = raw_ioctl(fd, s);
					io[r] = now() - t;
					break;
				case 1:
					b = lib_scan(h, s, 0);
					sc[r] = now() - t;
					break;
				case 2:
					pread_present(fd, s, buf);
					pr[r] = now() - t;
					break;
				default:
					c = lib_scan(h, s, PM_SCAN_F_EMULATE);
					em[r] = now() - t;
				}
			}
		}
		double mio = median(io, reps), msc = median(sc, reps), mpr = median(pr, reps),
		       mem = median(em, reps);

		printf("%-22s ioctl %8.3f ms  pm_scan %8.3f ms (%.3fx ioctl)  pread %8.3f ms  "
		       "emulated %8.3f ms (%.3fx pread)  regions %zu/%zu/%zu\n",
		       layouts[l].name, mio * 1e3, msc * 1e3, msc / mio, mpr * 1e3, mem * 1e3,
		       mem / mpr, a, b, c);
		if (layouts[l].big && strstr(layouts[l].name, "THP"))
			printf("%-22s presence: pread+decode %8.3f ms, pm_scan %8.3f ms: %.1fx faster "
			       "(raw ioctl %.1fx)\n",
			       "", mpr * 1e3, msc * 1e3, mpr / msc, mpr / mio);
		if (l == 3)
			print_row("pm_scan, 10000 VMAs, vs the raw PAGEMAP_SCAN loop", msc / mio, 1.05,
				  false);
		munmap(buf, (s.hi - s.lo) / ps * 8);
	}
	pm_close(h);
	close(fd);
	/* the 10,000-VMA layout, spans[3], through the maps text */
	emulated_rows(pid, spans[3]);
	layouts_stop(pid, hold);
	return 0;
}
