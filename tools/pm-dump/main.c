/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm-dump: show what the page tables say about a process, per VMA like
 * `pmap -X`, per page, or as runs of identical pages (pm-dump(1)). Uses
 * only the public API of libpagemap. Without --pid it runs a demo: a child
 * with a known, varied layout. This file: the options and the modes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "pm-dump.h"

void die(const char *what, int err)
{
	fprintf(stderr, "pm-dump: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
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

/* Opens every document: schema, versions, page size, pid (none for
 * --all), what the kernel can do. */
void header(struct dump *d, const struct pm_kernel_info *ki)
{
	struct out *o = &d->out;
	struct utsname u;

	uname(&u);
	out_open(o, '{', NULL, true, NULL);
	out_json_u64(o, "schema", PM_DUMP_SCHEMA);
	out_str(o, "library_version", "# libpagemap %s", pm_version());
	out_str(o, "kernel_version", ", kernel %s", u.release);
	out_u64(o, "page_size", ", page size %" PRIu64, d->page_size);
	if (d->h)
		out_u64(o, "pid", ", pid %" PRIu64, (uint64_t)pm_pid(d->h));
	out_text(o, "\n");
	out_open(o, '[', "features", false, "# features:");
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		if (ki->features & features[i].bit)
			out_str(o, NULL, " %s", features[i].name);
	out_close(o, "\n");
	out_json_u64(o, "scan_categories", ki->scan_categories);
	out_open(o, '{', "walk_retry_fix", false, "# walk retry fix: ");
	out_str(o, "status", "%s", fix_name(ki->walk_retry_fix));
	out_str(o, "reason", " (%s)", ki->walk_retry_reason);
	out_close(o, "\n");
}

static const char *const mode_rows[] = {
	[MODE_VMAS] = "vmas",       [MODE_PAGES] = "pages",        [MODE_RANGES] = "ranges",
	[MODE_SCAN] = "regions",    [MODE_CHECK] = "differences",
};

/* The categories --scan reports and --check compares on this kernel. */
static uint64_t mode_categories(const struct dump *d, const struct pm_kernel_info *ki)
{
	uint64_t m;

	if (d->mode == MODE_SCAN)
		/* every category this kernel's scan can tell (emulation: the
		 * ones it computes honestly) */
		return ki->features & PM_FEAT_PAGEMAP_SCAN
			       ? ki->scan_categories
			       : PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE;
	m = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE;
	if (ki->features & PM_FEAT_GUARD_REGIONS)
		m |= PM_CAT_GUARD;
	if (ki->features & PM_FEAT_SOFT_DIRTY)
		m |= PM_CAT_SOFT_DIRTY;
	if ((ki->features & PM_FEAT_PFN_VISIBLE) && !access("/proc/kpageflags", R_OK))
		m |= PM_CAT_PFNZERO;
	return m;
}

/* The part [rs, re) of one process in the chosen mode. */
static void dump(struct dump *d, const struct pm_kernel_info *ki, uint64_t rs, uint64_t re)
{
	struct out *o = &d->out;
	struct stats total = { 0 };
	struct pm_usage utotal = { .size = sizeof(utotal) };
	struct pm_vma_list *l;
	int r = pm_vmas(d->h, &l);

	if (r < 0)
		die("pm_vmas", r);
	header(d, ki);
	if (d->mode == MODE_VMAS)
		usage_unavailable(d);
	out_open(o, '[', mode_rows[d->mode], true, NULL);
	if (d->mode == MODE_VMAS)
		out_text(o, "%-16s %-4s %10s %9s %9s %9s %8s %8s %8s %8s %8s %6s%s%s %s\n",
			 "Address", "Perm", "Size", "Rss", "Pss", "Uss", "Swap", "AnonHuge", "Zero",
			 "Hugetlb", "File", "Guard", d->soft_dirty ? " SoftDirt" : "",
			 d->extended ? "     Offset   Dev      Inode" : "", "Mapping (KiB)");
	if (d->mode == MODE_SCAN && pm_vma_count(l)) {
		/* one scan over the whole span, so regions merge across VMAs */
		uint64_t lo = pm_vma_at(l, 0)->start, hi = pm_vma_at(l, pm_vma_count(l) - 1)->end;

		if (lo < rs)
			lo = rs;
		if (hi > re)
			hi = re;
		if (lo < hi)
			scan_span(d, lo, hi);
	}
	for (size_t i = 0; i < pm_vma_count(l) && d->mode != MODE_SCAN; i++) {
		const struct pm_vma *v = pm_vma_at(l, i);
		uint64_t s = v->start > rs ? v->start : rs, e = v->end < re ? v->end : re;

		if (s >= e)
			continue;
		if (d->mode == MODE_CHECK)
			scan_check_vma(d, s, e);
		else
			vmas_dump(d, v, s, e, &total, &utotal);
	}
	if (d->mode == MODE_CHECK) {
		char cats[128];

		out_close(o, NULL);
		scan_cat_list(d->scan.return_mask, cats, sizeof(cats));
		out_str(o, "checked_categories", "# check of native against emulated pm_scan (%s)",
			cats);
		out_u64(o, "difference_count", ": %" PRIu64 " differences\n", d->differences);
	} else if (d->mode == MODE_SCAN) {
		out_close(o, NULL);
	} else {
		vmas_finish(d, &total, &utotal);
	}
	out_close(o, NULL);
	pm_vma_list_free(l);
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

static int usage(FILE *f)
{
	fprintf(f, "usage: pm-dump [--pid PID] [--json] [--pages | --ranges | --scan CATS | --check]\n"
		   "               [--range START-END] [-x|--extended]\n"
		   "       pm-dump --all [--json] [--pss] [--sort pss|rss|uss|swap]\n"
		   "Without --pid, dumps a demo child with a known layout.\n"
		   "CATS: comma-separated wpallowed, written, file, present, swapped, pfnzero,\n"
		   "huge, soft_dirty, guard; !name for pages without it.\n");
	return f == stdout ? 0 : 2;
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "pm-dump: bad %s '%s'\n", what, arg);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' }, { "json", no_argument, NULL, 'j' },
		{ "pages", no_argument, NULL, 'P' },     { "ranges", no_argument, NULL, 'R' },
		{ "range", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ "scan", required_argument, NULL, 's' },  { "check", no_argument, NULL, 'c' },
		{ "all", no_argument, NULL, 'a' },         { "pss", no_argument, NULL, 'b' },
		{ "extended", no_argument, NULL, 'x' },    { "sort", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	PM_OPTS(pm_kernel_info, ki);
	struct dump d = { .mode = MODE_VMAS };
	uint64_t rs = 0, re = UINT64_MAX;
	pid_t pid = -1, demo = -1;
	bool json = false, all = false;
	int c, r, hold = -1;

	while ((c = getopt_long(argc, argv, "x", opts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0 || v > INT32_MAX)
				return bad("pid", optarg);
			pid = (pid_t)v;
			break;
		}
		case 'j':
			json = true;
			break;
		case 'P':
		case 'R':
		case 's':
		case 'c':
			if (d.mode != MODE_VMAS)
				return usage(stderr);
			d.mode = c == 'P' ? MODE_PAGES : c == 'R' ? MODE_RANGES : c == 's' ? MODE_SCAN
											   : MODE_CHECK;
			if (c == 's' && scan_parse_cats(optarg, &d.scan))
				return bad("categories", optarg);
			break;
		case 'r':
			if (parse_range(optarg, &rs, &re) || re <= rs)
				return bad("range (hex START-END)", optarg);
			break;
		case 'a':
			all = true;
			break;
		case 'x':
			d.extended = true;
			break;
		case 'S':
			d.sort = all_sort_key(optarg);
			if (d.sort < 0)
				return bad("sort key (pss, rss, uss, swap)", optarg);
			break;
		case 'b':
			d.pss = true;
			break;
		case 'h':
			return usage(stdout);
		default:
			return usage(stderr);
		}
	}
	if (optind != argc)
		return usage(stderr);
	out_init(&d.out, json);
	d.page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	if (rs % d.page_size || (re != UINT64_MAX && re % d.page_size)) {
		fprintf(stderr, "pm-dump: range must be page aligned\n");
		return 2;
	}
	r = pm_kernel_probe(&ki);
	if (r < 0)
		die("pm_kernel_probe", r);
	if (all) {
		if (pid > 0 || d.mode != MODE_VMAS || d.extended)
			return usage(stderr);
		return all_dump(&d, &ki);
	}
	if (d.sort || d.pss)
		return usage(stderr);
	if (pid < 0)
		pid = demo = demo_start(&hold, d.page_size);
	r = pm_open(pid, NULL, &d.h);
	if (r < 0)
		die("pm_open", r);
	d.soft_dirty = ki.features & PM_FEAT_SOFT_DIRTY;
	d.scan.size = sizeof(d.scan);
	if (d.mode == MODE_SCAN || d.mode == MODE_CHECK)
		d.scan.return_mask = mode_categories(&d, &ki);
	dump(&d, &ki, rs, re);
	pm_close(d.h);
	free(d.buf);
	if (demo > 0)
		demo_stop(demo, hold);
	return d.differences ? 1 : 0;
}
