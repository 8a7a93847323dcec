/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm-dump: show what the page tables say about a process, per VMA like
 * `pmap -X`, per page, or as runs of identical pages. Uses only the public
 * API of libpagemap:
 *
 *   cc -o pm-dump pm-dump.c $(pkg-config --cflags --libs libpagemap)
 *
 * Without --pid it runs a demo: a child with a known, varied layout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#define WINDOW_PAGES 65536UL /* entries read per pm_read: 512 KiB of buffer */
#define KPF_THP 22

enum mode { MODE_VMAS, MODE_PAGES, MODE_RANGES, MODE_SCAN, MODE_CHECK };

struct stats {
	uint64_t size, present, swapped, thp, file, exclusive, soft_dirty, guard;
};

struct dump {
	struct pm_handle *h;
	enum mode mode;
	bool json;
	bool soft_dirty;
	int kpageflags; /* -1 when PFNs or kpageflags are not readable */
	uint64_t page_size;
	uint64_t *buf;
	uint64_t kernel_reads, retries, guarded;
	bool first; /* JSON array separator state */
	/* --scan: the request; --check: the categories compared */
	struct pm_scan_opts scan;
	uint64_t differences;
	/* --ranges: the run being built */
	uint64_t run_start, run_end, run_flags;
	bool run_open;
};

/* What each demo mapping is, sent to the parent so the dump can say
 * which row is which. */
struct demo_label {
	uint64_t addr;
	char label[40];
};
#define DEMO_LABELS 7
static struct demo_label demo_labels[DEMO_LABELS];
static int demo_nlabels;

static const char *demo_label(const struct pm_vma *v)
{
	for (int i = 0; i < demo_nlabels; i++)
		if (demo_labels[i].addr >= v->start && demo_labels[i].addr < v->end)
			return demo_labels[i].label;
	return NULL;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "pm-dump: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static const struct {
	uint64_t bit;
	const char *name;
} features[] = {
	{ PM_FEAT_PAGEMAP_SCAN, "pagemap_scan" },   { PM_FEAT_PROCMAP_QUERY, "procmap_query" },
	{ PM_FEAT_SOFT_DIRTY, "soft_dirty" },       { PM_FEAT_UFFD_WP_ASYNC, "uffd_wp_async" },
	{ PM_FEAT_IO_URING, "io_uring" },           { PM_FEAT_PFN_VISIBLE, "pfn_visible" },
	{ PM_FEAT_GUARD_REGIONS, "guard_regions" }, { PM_FEAT_WALK_RETRY_FIX, "walk_retry_fix" },
};

static const char *fix_name(int64_t f)
{
	return f == PM_FIX_PRESENT ? "present" : f == PM_FIX_ABSENT ? "absent" : "unknown";
}

static void header(struct dump *d, const struct pm_kernel_info *ki)
{
	struct utsname u;

	uname(&u);
	if (!d->json) {
		printf("# libpagemap %s, kernel %s, page size %" PRIu64 ", pid %d\n", pm_version(),
		       u.release, d->page_size, (int)pm_pid(d->h));
		printf("# features:");
		for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
			if (ki->features & features[i].bit)
				printf(" %s", features[i].name);
		printf("\n# walk retry fix: %s (%s)\n", fix_name(ki->walk_retry_fix),
		       ki->walk_retry_reason);
		return;
	}
	printf("{\n  \"library_version\": \"%s\",\n  \"kernel_version\": ", pm_version());
	json_str(u.release);
	printf(",\n  \"page_size\": %" PRIu64 ",\n  \"pid\": %d,\n  \"features\": [", d->page_size,
	       (int)pm_pid(d->h));
	bool first = true;
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		if (!(ki->features & features[i].bit))
			continue;
		printf("%s\"%s\"", first ? "" : ", ", features[i].name);
		first = false;
	}
	printf("],\n  \"scan_categories\": %" PRIu64 ",\n", ki->scan_categories);
	printf("  \"walk_retry_fix\": {\"status\": \"%s\", \"reason\": ",
	       fix_name(ki->walk_retry_fix));
	json_str(ki->walk_retry_reason);
	printf("},\n");
}

static void perms(const struct pm_vma *v, char out[5])
{
	out[0] = v->flags & PM_VMA_READ ? 'r' : '-';
	out[1] = v->flags & PM_VMA_WRITE ? 'w' : '-';
	out[2] = v->flags & PM_VMA_EXEC ? 'x' : '-';
	out[3] = v->flags & PM_VMA_SHARED ? 's' : 'p';
	out[4] = '\0';
}

/* Flags shown per page and per run; the PFN is left out so runs can form. */
static uint64_t page_flags(uint64_t e)
{
	return e & ~PM_ENTRY_PFN_MASK;
}

static void flag_letters(uint64_t e, char out[8])
{
	out[0] = pm_entry_present(e) ? 'P' : '-';
	out[1] = pm_entry_swapped(e) ? 'S' : '-';
	out[2] = pm_entry_file(e) ? 'F' : '-';
	out[3] = pm_entry_exclusive(e) ? 'X' : '-';
	out[4] = pm_entry_soft_dirty(e) ? 'D' : '-';
	out[5] = pm_entry_uffd_wp(e) ? 'W' : '-';
	out[6] = pm_entry_guard(e) ? 'G' : '-';
	out[7] = '\0';
}

/* Count the THP-backed pages among present entries by PFN (kpageflags),
 * reading one run of consecutive PFNs at a time. */
static uint64_t count_thp(struct dump *d, const uint64_t *e, size_t n)
{
	uint64_t flags[512], count = 0;

	if (d->kpageflags < 0)
		return 0;
	for (size_t i = 0; i < n;) {
		uint64_t pfn = pm_entry_pfn(e[i]);
		size_t run = 1;

		if (!pfn) {
			i++;
			continue;
		}
		while (i + run < n && run < 512 && pm_entry_pfn(e[i + run]) == pfn + run)
			run++;
		if (pread(d->kpageflags, flags, run * 8, (off_t)(pfn * 8)) == (ssize_t)(run * 8))
			for (size_t j = 0; j < run; j++)
				count += (flags[j] >> KPF_THP) & 1;
		i += run;
	}
	return count;
}

static void emit_page(struct dump *d, uint64_t addr, uint64_t e)
{
	char f[8];

	flag_letters(e, f);
	if (!d->json) {
		printf("%016" PRIx64 " %016" PRIx64 " %s pfn=%" PRIx64 "\n", addr, e, f,
		       pm_entry_pfn(e));
		return;
	}
	printf("%s\n    {\"addr\": %" PRIu64 ", \"entry\": %" PRIu64 ", \"flags\": \"%s\", "
	       "\"pfn\": %" PRIu64 "}",
	       d->first ? "" : ",", addr, e, f, pm_entry_pfn(e));
	d->first = false;
}

static void flush_run(struct dump *d)
{
	char f[8];

	if (!d->run_open)
		return;
	flag_letters(d->run_flags, f);
	if (!d->json)
		printf("%016" PRIx64 "-%016" PRIx64 " %8" PRIu64 " pages %s\n", d->run_start,
		       d->run_end, (d->run_end - d->run_start) / d->page_size, f);
	else
		printf("%s\n    {\"start\": %" PRIu64 ", \"end\": %" PRIu64 ", \"flags\": \"%s\"}",
		       d->first ? "" : ",", d->run_start, d->run_end, f);
	d->first = false;
	d->run_open = false;
}

static void add_to_run(struct dump *d, uint64_t addr, uint64_t e)
{
	uint64_t f = page_flags(e);

	if (d->run_open && d->run_end == addr && d->run_flags == f) {
		d->run_end += d->page_size;
		return;
	}
	flush_run(d);
	d->run_open = true;
	d->run_start = addr;
	d->run_end = addr + d->page_size;
	d->run_flags = f;
}

static void scan_range(struct dump *d, uint64_t start, uint64_t end, struct stats *st)
{
	for (uint64_t a = start; a < end;) {
		uint64_t to = end - a > WINDOW_PAGES * d->page_size ? a + WINDOW_PAGES * d->page_size
								     : end;
		PM_OPTS(pm_read_info, info);
		long n = pm_read(d->h, a, to, d->buf, NULL, &info);

		if (n < 0)
			die("pm_read", (int)n);
		d->kernel_reads += info.kernel_reads;
		d->retries += info.retries;
		d->guarded |= info.flags & PM_READ_GUARDED;
		for (long i = 0; i < n; i++) {
			uint64_t e = d->buf[i], va = a + (uint64_t)i * d->page_size;

			st->present += pm_entry_present(e);
			st->swapped += pm_entry_swapped(e);
			st->file += pm_entry_present(e) && pm_entry_file(e);
			st->exclusive += pm_entry_exclusive(e);
			st->soft_dirty += pm_entry_soft_dirty(e);
			st->guard += pm_entry_guard(e);
			if (d->mode == MODE_PAGES)
				emit_page(d, va, e);
			else if (d->mode == MODE_RANGES)
				add_to_run(d, va, e);
		}
		st->thp += count_thp(d, d->buf, (size_t)n);
		a = to;
	}
	st->size += end - start;
}

static void print_row(struct dump *d, const struct pm_vma *v, uint64_t s, uint64_t e,
		      const struct stats *st, bool total)
{
	const uint64_t k = d->page_size / 1024;
	char p[5];

	if (d->json) {
		printf("%s\n    {", d->first ? "" : ",");
		d->first = false;
		if (!total) {
			perms(v, p);
			printf("\"start\": %" PRIu64 ", \"end\": %" PRIu64 ", \"perms\": \"%s\", "
			       "\"name\": ",
			       s, e, p);
			json_str(v->name);
			if (demo_label(v)) {
				printf(", \"demo\": ");
				json_str(demo_label(v));
			}
			printf(", ");
		}
		printf("\"size_kib\": %" PRIu64 ", \"present_kib\": %" PRIu64
		       ", \"swapped_kib\": %" PRIu64 ", \"thp_kib\": %" PRIu64
		       ", \"file_kib\": %" PRIu64 ", \"exclusive_kib\": %" PRIu64
		       ", \"guard_kib\": %" PRIu64,
		       st->size / 1024, st->present * k, st->swapped * k, st->thp * k,
		       st->file * k, st->exclusive * k, st->guard * k);
		if (d->soft_dirty)
			printf(", \"soft_dirty_kib\": %" PRIu64, st->soft_dirty * k);
		printf("}");
		return;
	}
	if (total) {
		printf("%-16s %-4s %10" PRIu64, "total", "", st->size / 1024);
	} else {
		perms(v, p);
		printf("%016" PRIx64 " %s %10" PRIu64, s, p, st->size / 1024);
	}
	printf(" %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %10" PRIu64 " %6" PRIu64,
	       st->present * k, st->swapped * k, st->thp * k, st->file * k, st->exclusive * k,
	       st->guard * k);
	if (d->soft_dirty)
		printf(" %8" PRIu64, st->soft_dirty * k);
	if (total)
		printf("\n");
	else if (demo_label(v))
		printf(" %s [demo: %s]\n", v->name, demo_label(v));
	else
		printf(" %s\n", v->name);
}

static const char *const cat_names[] = { "wpallowed", "written", "file",   "present", "swapped",
					 "pfnzero",   "huge",    "soft_dirty", "guard" };
#define NCATS (sizeof(cat_names) / sizeof(cat_names[0]))

static void cat_list(uint64_t c, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < NCATS; i++)
		if (c & (1ULL << i))
			n += (size_t)snprintf(out + n, len - n, "%s%s", n ? "," : "", cat_names[i]);
}

/* "present,!file": names that must be set, or (with !) clear */
static int parse_cats(const char *arg, struct pm_scan_opts *o)
{
	char *copy = strdup(arg), *save = NULL;
	int r = 0;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		bool neg = t[0] == '!';
		size_t i;

		for (i = 0; i < NCATS && strcmp(t + neg, cat_names[i]); i++)
			;
		if (i == NCATS) {
			r = -1;
			break;
		}
		o->category_mask |= 1ULL << i;
		if (neg)
			o->category_inverted |= 1ULL << i;
	}
	free(copy);
	return r;
}

static void emit_region(struct dump *d, const struct pm_region *r)
{
	char names[128];

	cat_list(r->categories, names, sizeof(names));
	if (!d->json)
		printf("%016" PRIx64 "-%016" PRIx64 " %8" PRIu64 " pages %s\n", r->start, r->end,
		       (r->end - r->start) / d->page_size, names);
	else
		printf("%s\n    {\"start\": %" PRIu64 ", \"end\": %" PRIu64 ", \"categories\": \"%s\"}",
		       d->first ? "" : ",", r->start, r->end, names);
	d->first = false;
}

#define SCAN_VEC 4096

static void scan_span(struct dump *d, uint64_t s, uint64_t e)
{
	struct pm_region vec[SCAN_VEC];

	for (uint64_t cur = s, we; cur < e; cur = we) {
		long n = pm_scan(d->h, cur, e, vec, SCAN_VEC, &d->scan, &we);

		if (n < 0)
			die("pm_scan", (int)n);
		for (long i = 0; i < n; i++)
			emit_region(d, &vec[i]);
	}
}

static void emit_diff(struct dump *d, uint64_t at, const char *what)
{
	if (d->json) {
		printf("%s\n    {\"addr\": %" PRIu64 ", \"difference\": ", d->first ? "" : ",", at);
		json_str(what);
		printf("}");
	} else {
		printf("DIFF %016" PRIx64 ": %s\n", at, what);
	}
	d->first = false;
	d->differences++;
}

static long scan_fill(struct dump *d, uint64_t *cur, uint64_t e, struct pm_region *v,
		      const struct pm_scan_opts *o)
{
	long n = pm_scan(d->h, *cur, e, v, SCAN_VEC, o, cur);

	if (n < 0)
		die(o->flags & PM_SCAN_F_EMULATE ? "pm_scan (emulated)" : "pm_scan", (int)n);
	return n;
}

/* Every page of [s, e) by the categories both paths can compute, natively
 * and emulated; differences are printed with their address. */
static void check_vma(struct dump *d, uint64_t s, uint64_t e)
{
	static struct pm_region a[SCAN_VEC], b[SCAN_VEC];
	PM_OPTS(pm_scan_opts, on, .return_mask = d->scan.return_mask);
	PM_OPTS(pm_scan_opts, oe, .flags = PM_SCAN_F_EMULATE, .return_mask = d->scan.return_mask);
	uint64_t wa = s, wb = s;
	long na = 0, nb = 0, ia = 0, ib = 0;
	char x[128], y[128], what[400];

	/* walk both answers region by region, refilling each as it runs out */
	for (;;) {
		if (ia == na && wa < e) {
			na = scan_fill(d, &wa, e, a, &on);
			ia = 0;
		}
		if (ib == nb && wb < e) {
			nb = scan_fill(d, &wb, e, b, &oe);
			ib = 0;
		}
		if (ia == na || ib == nb) {
			if (ia != na || ib != nb)
				emit_diff(d, ia != na ? a[ia].start : b[ib].start,
					  "only one path reports a region here");
			return;
		}
		if (memcmp(&a[ia], &b[ib], sizeof(a[0]))) {
			cat_list(a[ia].categories, x, sizeof(x));
			cat_list(b[ib].categories, y, sizeof(y));
			snprintf(what, sizeof(what),
				 "native %016" PRIx64 "-%016" PRIx64 " %s, emulated %016" PRIx64
				 "-%016" PRIx64 " %s",
				 a[ia].start, a[ia].end, x, b[ib].start, b[ib].end, y);
			emit_diff(d, a[ia].start < b[ib].start ? a[ia].start : b[ib].start, what);
		}
		ia++;
		ib++;
	}
}

/* ---- --all: every process this caller may read, through one batch ---- */

#define ALL_BUDGET (4UL << 20) /* entries per batch run: 32 MiB of buffer */

struct proc_stats {
	int pid;
	char comm[32];
	struct stats st;
	int err;
};

struct all_read {
	struct proc_stats *p;
	uint64_t start, n;
	uint64_t *buf;
	long res;
};

static void tally(struct all_read *r)
{
	if (r->res < 0) {
		if (!r->p->err)
			r->p->err = (int)r->res;
		return;
	}
	for (long i = 0; i < r->res; i++) {
		uint64_t e = r->buf[i];

		r->p->st.present += pm_entry_present(e);
		r->p->st.swapped += pm_entry_swapped(e);
		r->p->st.file += pm_entry_present(e) && pm_entry_file(e);
		r->p->st.exclusive += pm_entry_exclusive(e);
	}
}

#define ALL_REGIONS 4096

static void run_round(struct pm_batch *b, struct all_read *q, size_t *nq, size_t *used);

/* Queue the reads of one populated region, running the batch whenever the
 * buffer or the queue is full. */
static void queue_region(struct dump *d, struct pm_batch *b, struct pm_handle *h,
			 struct proc_stats *p, const struct pm_region *reg, uint64_t *buf,
			 struct all_read *q, size_t *nq, size_t *used)
{
	for (uint64_t a = reg->start; a < reg->end;) {
		uint64_t n = (reg->end - a) / d->page_size;
		int r;

		if (n > ALL_BUDGET - *used)
			n = ALL_BUDGET - *used;
		if (n > ALL_BUDGET / 16)
			n = ALL_BUDGET / 16;
		q[*nq] = (struct all_read){ p, a, n, buf + *used, 0 };
		r = pm_batch_add_read(b, h, a, a + n * d->page_size, buf + *used, NULL,
				      &q[*nq].res);
		if (r < 0)
			die("pm_batch_add_read", r);
		(*nq)++;
		*used += n;
		a += n * d->page_size;
		if (*used == ALL_BUDGET || *nq == ALL_BUDGET / 16)
			run_round(b, q, nq, used);
	}
}

static void run_round(struct pm_batch *b, struct all_read *q, size_t *nq, size_t *used)
{
	int r = pm_batch_run(b);

	if (r < 0)
		die("pm_batch_run", r);
	for (size_t i = 0; i < *nq; i++)
		tally(&q[i]);
	*nq = 0;
	*used = 0;
}

static int dump_all(struct dump *d, uint64_t backend)
{
	PM_OPTS(pm_batch_opts, bo, .backend = backend);
	PM_OPTS(pm_scan_opts, populated, .category_anyof_mask = PM_CAT_PRESENT | PM_CAT_SWAPPED);
	static struct pm_region regs[ALL_REGIONS];
	uint64_t *buf = malloc(ALL_BUDGET * sizeof(*buf));
	struct all_read *q = malloc(ALL_BUDGET / 16 * sizeof(*q));
	struct proc_stats *ps = NULL;
	struct pm_handle **hs = NULL;
	size_t nps = 0, nq = 0, used = 0, skipped = 0;
	bool tty = isatty(2);
	struct pm_batch *b;
	struct dirent *de;
	DIR *dir;
	int r;

	if (!buf || !q)
		die("malloc", ENOMEM);
	r = pm_batch_new(&bo, &b);
	if (r < 0)
		die("pm_batch_new", r);
	dir = opendir("/proc");
	if (!dir)
		die("/proc", errno);
	while ((de = readdir(dir))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		ps = realloc(ps, (nps + 1) * sizeof(*ps));
		hs = realloc(hs, (nps + 1) * sizeof(*hs));
		if (!ps || !hs)
			die("realloc", ENOMEM);
		memset(&ps[nps], 0, sizeof(ps[nps]));
		ps[nps].pid = (int)pid;
		hs[nps] = NULL;
		nps++;
	}
	closedir(dir);
	for (size_t i = 0; i < nps; i++) {
		struct proc_stats *p = &ps[i];
		struct pm_vma_list *l;
		char path[64];
		FILE *f;

		if (tty)
			fprintf(stderr, "\rpm-dump: %zu/%zu processes", i + 1, nps);
		snprintf(path, sizeof(path), "/proc/%d/comm", p->pid);
		if ((f = fopen(path, "re"))) {
			if (fgets(p->comm, sizeof(p->comm), f))
				p->comm[strcspn(p->comm, "\n")] = '\0';
			fclose(f);
		}
		/* not ours to read, gone, or a kernel thread (no memory) */
		if (pm_open(p->pid, NULL, &hs[i]) < 0 || pm_vmas(hs[i], &l) < 0) {
			p->err = -EACCES;
			continue;
		}
		for (size_t v = 0; v < pm_vma_count(l); v++) {
			const struct pm_vma *m = pm_vma_at(l, v);

			p->st.size += m->end - m->start;
			/* read only the populated parts: pm_scan finds them without
			 * reading the entries of huge sparse reservations */
			for (uint64_t cur = m->start; cur < m->end;) {
				long nr = pm_scan(hs[i], cur, m->end, regs, ALL_REGIONS, &populated,
						  &cur);

				if (nr < 0) {
					p->err = (int)nr;
					break;
				}
				for (long k = 0; k < nr; k++)
					queue_region(d, b, hs[i], p, &regs[k], buf, q, &nq, &used);
			}
		}
		pm_vma_list_free(l);
	}
	run_round(b, q, &nq, &used);
	if (tty)
		fprintf(stderr, "\n");
	if (!d->json)
		printf("%8s %-16s %12s %12s %10s %10s %12s\n", "PID", "Command", "Size", "Present",
		       "Swapped", "File", "Exclusive");
	else
		printf("{\n  \"library_version\": \"%s\",\n  \"processes\": [", pm_version());
	for (size_t i = 0; i < nps; i++) {
		struct proc_stats *p = &ps[i];
		const uint64_t k = d->page_size / 1024;

		pm_close(hs[i]);
		if (p->err) {
			skipped++;
			continue;
		}
		if (!d->json) {
			printf("%8d %-16s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %10" PRIu64
			       " %12" PRIu64 "\n",
			       p->pid, p->comm, p->st.size / 1024, p->st.present * k,
			       p->st.swapped * k, p->st.file * k, p->st.exclusive * k);
			continue;
		}
		printf("%s\n    {\"pid\": %d, \"comm\": ", d->first ? "" : ",", p->pid);
		json_str(p->comm);
		printf(", \"size_kib\": %" PRIu64 ", \"present_kib\": %" PRIu64
		       ", \"swapped_kib\": %" PRIu64 ", \"file_kib\": %" PRIu64
		       ", \"exclusive_kib\": %" PRIu64 "}",
		       p->st.size / 1024, p->st.present * k, p->st.swapped * k, p->st.file * k,
		       p->st.exclusive * k);
		d->first = false;
	}
	if (d->json)
		printf("\n  ],\n  \"skipped\": %zu,\n  \"backend\": \"%s\"\n}\n", skipped,
		       pm_batch_backend(b) == PM_BACKEND_URING ? "uring" : "sync");
	else
		printf("# %zu processes not readable (permission, exited, or no memory); backend %s\n",
		       skipped, pm_batch_backend(b) == PM_BACKEND_URING ? "uring" : "sync");
	pm_batch_free(b);
	free(buf);
	free(q);
	free(ps);
	free(hs);
	return 0;
}

static int parse_range(const char *s, uint64_t *start, uint64_t *end)
{
	char *p;

	errno = 0;
	*start = strtoull(s, &p, 16);
	if (errno || *p != '-')
		return -1;
	*end = strtoull(p + 1, &p, 16);
	if (errno || *p)
		return -1;
	return 0;
}

/* ---- the demo child ---- */

static void *map(size_t len, int prot, int flags, int fd, const char *label)
{
	void *p = mmap(NULL, len, prot, flags, fd, 0);

	if (p == MAP_FAILED)
		_exit(3);
	demo_labels[demo_nlabels].addr = (uint64_t)(uintptr_t)p;
	snprintf(demo_labels[demo_nlabels].label, sizeof(demo_labels[0].label), "%s", label);
	demo_nlabels++;
	return p;
}


/* Builds a layout with one VMA of each kind, reports ready, and lives until
 * the parent closes the pipe. */
static void demo_child(int ready, int hold, uint64_t ps)
{
	const size_t huge = 2UL << 20;
	char path[] = "/tmp/pm-dump-demo-XXXXXX";
	volatile char *p;
	char c = 'r';
	int fd;

	/* 4K anon: every other page of 16 written */
	p = map(16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "4K anon, 8 of 16 pages written");
	for (int i = 0; i < 16; i += 2)
		p[i * ps] = 1;
	/* THP: a 2 MiB-aligned block advised huge, then written */
	p = map(2 * huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "THP, 2 MiB written");
	p = (volatile char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
	madvise((void *)p, huge, MADV_HUGEPAGE);
	for (size_t i = 0; i < huge; i += ps)
		p[i] = 1;
	/* file: 8 pages of a temporary file, 4 read in */
	fd = mkstemp(path);
	if (fd >= 0 && ftruncate(fd, (off_t)(8 * ps)) == 0) {
		unlink(path);
		p = map(8 * ps, PROT_READ, MAP_PRIVATE, fd, "file, 4 of 8 pages read");
		for (int i = 0; i < 4; i++)
			(void)p[i * ps];
		close(fd);
	}
	/* shmem: 8 shared anonymous pages, all written */
	p = map(8 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, "shmem, 8 pages written");
	for (int i = 0; i < 8; i++)
		p[i * ps] = 1;
	/* zero page: 8 private pages only read */
	p = map(8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "zero page, 8 pages read");
	madvise((void *)p, 8 * ps, MADV_NOHUGEPAGE);
	for (int i = 0; i < 8; i++)
		(void)p[i * ps];
	/* PROT_NONE reservation */
	map(32 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "PROT_NONE reservation");
	/* guard pages: 2 of 8 (kernels with MADV_GUARD_INSTALL, 6.13+) */
	p = map(8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "2 guard pages, 1 page written");
	p[0] = 1;
	madvise((void *)(p + 2 * ps), 2 * ps, 102 /* MADV_GUARD_INSTALL */);
	if (write(ready, demo_labels, sizeof(demo_labels)) != sizeof(demo_labels))
		_exit(4);
	(void)!read(hold, &c, 1);
	_exit(0);
}

static pid_t start_demo(int *hold_fd, uint64_t ps)
{
	int ready[2], hold[2];
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) || pipe2(hold, O_CLOEXEC))
		die("pipe", errno);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		demo_child(ready[1], hold[0], ps);
	}
	close(ready[1]);
	close(hold[0]);
	if (read(ready[0], demo_labels, sizeof(demo_labels)) != sizeof(demo_labels))
		die("demo child", ECHILD);
	demo_nlabels = DEMO_LABELS;
	close(ready[0]);
	*hold_fd = hold[1];
	return pid;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pm-dump [--pid PID] [--json] [--pages | --ranges | --scan CATS | --check]\n"
		   "               [--range START-END]\n"
		   "       pm-dump --all [--json] [--backend auto|uring|sync]\n"
		   "Without --pid, dumps a demo child with a known layout.\n"
		   "CATS: comma-separated wpallowed, written, file, present, swapped, pfnzero,\n"
		   "huge, soft_dirty, guard; !name for pages without it.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' }, { "json", no_argument, NULL, 'j' },
		{ "pages", no_argument, NULL, 'P' },     { "ranges", no_argument, NULL, 'R' },
		{ "range", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ "scan", required_argument, NULL, 's' },  { "check", no_argument, NULL, 'c' },
		{ "all", no_argument, NULL, 'a' },         { "backend", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	PM_OPTS(pm_kernel_info, ki);
	struct dump d = { .mode = MODE_VMAS, .first = true, .kpageflags = -1 };
	struct pm_vma_list *l;
	struct stats total = { 0 };
	uint64_t rs = 0, re = UINT64_MAX;
	pid_t pid = -1, demo = -1;
	int c, r, hold = -1;
	uint64_t backend = PM_BACKEND_AUTO;
	bool all = false;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0 || v > INT32_MAX) {
				fprintf(stderr, "pm-dump: bad pid '%s'\n", optarg);
				return 2;
			}
			pid = (pid_t)v;
			break;
		}
		case 'j':
			d.json = true;
			break;
		case 'P':
		case 'R':
		case 's':
		case 'c':
			if (d.mode != MODE_VMAS) {
				usage(stderr);
				return 2;
			}
			d.mode = c == 'P' ? MODE_PAGES : c == 'R' ? MODE_RANGES : c == 's' ? MODE_SCAN
											   : MODE_CHECK;
			if (c == 's' && parse_cats(optarg, &d.scan)) {
				fprintf(stderr, "pm-dump: bad categories '%s'\n", optarg);
				return 2;
			}
			break;
		case 'r':
			if (parse_range(optarg, &rs, &re) || re <= rs) {
				fprintf(stderr, "pm-dump: bad range '%s' (hex START-END)\n", optarg);
				return 2;
			}
			break;
		case 'a':
			all = true;
			break;
		case 'b':
			if (!strcmp(optarg, "auto"))
				backend = PM_BACKEND_AUTO;
			else if (!strcmp(optarg, "uring"))
				backend = PM_BACKEND_URING;
			else if (!strcmp(optarg, "sync"))
				backend = PM_BACKEND_SYNC;
			else {
				fprintf(stderr, "pm-dump: bad backend '%s' (auto, uring, sync)\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	d.page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	if (rs % d.page_size || (re != UINT64_MAX && re % d.page_size)) {
		fprintf(stderr, "pm-dump: range must be page aligned\n");
		return 2;
	}
	if (all) {
		if (pid > 0 || d.mode != MODE_VMAS) {
			usage(stderr);
			return 2;
		}
		return dump_all(&d, backend);
	}
	if (pid < 0)
		pid = demo = start_demo(&hold, d.page_size);
	r = pm_open(pid, NULL, &d.h);
	if (r < 0)
		die("pm_open", r);
	r = pm_kernel_probe(&ki);
	if (r < 0)
		die("pm_kernel_probe", r);
	d.soft_dirty = ki.features & PM_FEAT_SOFT_DIRTY;
	d.scan.size = sizeof(d.scan);
	if (d.mode == MODE_SCAN) {
		/* report every category this kernel's scan can tell (emulation:
		 * the ones it computes honestly) */
		d.scan.return_mask = (ki.features & PM_FEAT_PAGEMAP_SCAN)
					     ? ki.scan_categories
					     : PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE;
	} else if (d.mode == MODE_CHECK) {
		d.scan.return_mask = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE;
		if (ki.features & PM_FEAT_GUARD_REGIONS)
			d.scan.return_mask |= PM_CAT_GUARD;
		if (ki.features & PM_FEAT_SOFT_DIRTY)
			d.scan.return_mask |= PM_CAT_SOFT_DIRTY;
		if ((ki.features & PM_FEAT_PFN_VISIBLE) && !access("/proc/kpageflags", R_OK))
			d.scan.return_mask |= PM_CAT_PFNZERO;
	}
	if (ki.features & PM_FEAT_PFN_VISIBLE)
		d.kpageflags = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	d.buf = malloc(WINDOW_PAGES * sizeof(uint64_t));
	if (!d.buf)
		die("malloc", ENOMEM);
	r = pm_vmas(d.h, &l);
	if (r < 0)
		die("pm_vmas", r);

	header(&d, &ki);
	if (d.json)
		printf("  \"%s\": [", d.mode == MODE_PAGES    ? "pages"
				     : d.mode == MODE_RANGES ? "ranges"
				     : d.mode == MODE_SCAN   ? "regions"
				     : d.mode == MODE_CHECK  ? "differences"
							     : "vmas");
	else if (d.mode == MODE_VMAS)
		printf("%-16s %-4s %10s %10s %8s %8s %8s %10s %6s%s %s\n", "Address", "Perm",
		       "Size", "Present", "Swapped", "THP", "File", "Exclusive", "Guard",
		       d.soft_dirty ? " SoftDirt" : "", "Mapping (KiB)");
	for (size_t i = 0; i < pm_vma_count(l); i++) {
		const struct pm_vma *v = pm_vma_at(l, i);
		uint64_t s = v->start > rs ? v->start : rs, e = v->end < re ? v->end : re;
		struct stats st = { 0 };

		if (s >= e || d.mode == MODE_SCAN)
			continue;
		if (d.mode == MODE_CHECK) {
			check_vma(&d, s, e);
			continue;
		}
		scan_range(&d, s, e, &st);
		if (d.mode == MODE_VMAS)
			print_row(&d, v, s, e, &st, false);
		total.size += st.size;
		total.present += st.present;
		total.swapped += st.swapped;
		total.thp += st.thp;
		total.file += st.file;
		total.exclusive += st.exclusive;
		total.soft_dirty += st.soft_dirty;
		total.guard += st.guard;
	}
	/* one scan over the whole span, so regions merge across VMAs */
	if (d.mode == MODE_SCAN && pm_vma_count(l)) {
		uint64_t lo = pm_vma_at(l, 0)->start, hi = pm_vma_at(l, pm_vma_count(l) - 1)->end;

		if (lo < rs)
			lo = rs;
		if (hi > re)
			hi = re;
		if (lo < hi)
			scan_span(&d, lo, hi);
	}
	flush_run(&d);
	if (d.mode == MODE_CHECK) {
		char cats[128];

		cat_list(d.scan.return_mask, cats, sizeof(cats));
		if (d.json)
			printf("],\n  \"checked_categories\": \"%s\",\n  \"difference_count\": %" PRIu64
			       "\n}\n",
			       cats, d.differences);
		else
			printf("# check of native against emulated pm_scan (%s): %" PRIu64
			       " differences\n",
			       cats, d.differences);
	} else if (d.mode == MODE_SCAN) {
		if (d.json)
			printf("\n  ]\n}\n");
	} else if (d.json) {
		printf("\n  ],\n  \"totals\": ");
		d.first = true;
		print_row(&d, NULL, 0, 0, &total, true);
		printf(",\n  \"reads\": {\"kernel_reads\": %" PRIu64 ", \"retries\": %" PRIu64
		       ", \"guarded\": %s}\n}\n",
		       d.kernel_reads, d.retries, d.guarded ? "true" : "false");
	} else {
		if (d.mode == MODE_VMAS)
			print_row(&d, NULL, 0, 0, &total, true);
		printf("# %" PRIu64 " kernel reads, %" PRIu64 " re-reads, guard %s\n",
		       d.kernel_reads, d.retries, d.guarded ? "on" : "off");
	}
	pm_vma_list_free(l);
	pm_close(d.h);
	free(d.buf);
	if (d.kpageflags >= 0)
		close(d.kpageflags);
	if (demo > 0) {
		close(hold);
		waitpid(demo, NULL, 0);
	}
	return d.differences ? 1 : 0;
}
