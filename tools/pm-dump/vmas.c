/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The modes that read every entry: one row per VMA like `pmap -X`
 * (default), one per page (--pages), one per run of equal flags (--ranges). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pm-dump.h"

#define WINDOW_PAGES 65536UL /* entries read per pm_read: 512 KiB of buffer */

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

static void emit_page(struct dump *d, uint64_t addr, uint64_t e)
{
	struct out *o = &d->out;
	char f[8];

	flag_letters(e, f);
	out_row(o);
	out_hex(o, "addr", "%016" PRIx64, addr);
	out_hex(o, "entry", " %016" PRIx64, e);
	out_str(o, "flags", " %s", f);
	out_hex(o, "pfn", " pfn=%" PRIx64, pm_entry_pfn(e));
	out_row_end(o);
}

static void flush_run(struct dump *d)
{
	struct out *o = &d->out;
	char f[8];

	if (!d->run_open)
		return;
	flag_letters(d->run_flags, f);
	out_row(o);
	out_hex(o, "start", "%016" PRIx64, d->run_start);
	out_hex(o, "end", "-%016" PRIx64, d->run_end);
	out_text(o, " %8" PRIu64 " pages", (d->run_end - d->run_start) / d->page_size);
	out_str(o, "flags", " %s", f);
	out_row_end(o);
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

static void read_range(struct dump *d, uint64_t start, uint64_t end, struct stats *st)
{
	if (!d->buf && !(d->buf = malloc(WINDOW_PAGES * sizeof(uint64_t))))
		die("malloc", ENOMEM);
	for (uint64_t a = start; a < end;) {
		uint64_t to = end - a > WINDOW_PAGES * d->page_size ? a + WINDOW_PAGES * d->page_size
								     : end;
		PM_OPTS(pm_read_info, info);
		long n = pm_read(d->h, a, to, d->buf, NULL, &info);

		if (n < 0)
			die("pm_read", (int)n);
		d->kernel_reads += info.kernel_reads;
		d->retries += info.retries;
		d->guarded |= info.flags & PM_READ_INFO_GUARDED;
		stats_tally(st, d->buf, (size_t)n);
		for (long i = 0; i < n; i++) {
			uint64_t va = a + (uint64_t)i * d->page_size;

			if (d->mode == MODE_PAGES)
				emit_page(d, va, d->buf[i]);
			else if (d->mode == MODE_RANGES)
				add_to_run(d, va, d->buf[i]);
		}
		a = to;
	}
	st->size += end - start;
}

/* the sizes of one row, in KiB: smaps' fields where it has them */
static void sizes(struct dump *d, const struct stats *st, const struct pm_usage *u)
{
	struct out *o = &d->out;
	const uint64_t k = d->page_size / 1024;
#define USAGE(key, w, bit, v) out_opt_u64(o, key, w, u->valid & (bit), (v) >> 10)

	out_u64(o, "size_kib", " %10" PRIu64, st->size / 1024);
	USAGE("rss_kib", 9, PM_USAGE_RSS, u->rss);
	USAGE("pss_kib", 9, PM_USAGE_PSS, u->pss >> 12);
	USAGE("uss_kib", 9, PM_USAGE_USS, u->uss);
	USAGE("swap_kib", 8, PM_USAGE_SWAP, u->swap);
	USAGE("anon_huge_kib", 8, PM_USAGE_ANON_THP, u->anon_thp);
	USAGE("zero_kib", 8, PM_USAGE_ZERO, u->zero);
	USAGE("hugetlb_kib", 8, PM_USAGE_HUGETLB, u->hugetlb);
	out_u64(o, "file_kib", " %8" PRIu64, st->file * k);
	USAGE("guard_kib", 6, PM_USAGE_GUARD, u->guard);
#undef USAGE
	if (d->soft_dirty)
		out_u64(o, "soft_dirty_kib", " %8" PRIu64, st->soft_dirty * k);
	/* the raw pagemap counts, JSON only */
	out_json_u64(o, "present_kib", st->present * k);
	out_json_u64(o, "exclusive_kib", st->exclusive * k);
}

/* Add one range's usage to a total: a field stays valid only if it was
 * valid in every part. */
void usage_add(struct pm_usage *to, const struct pm_usage *from, bool first)
{
	to->valid = first ? from->valid : to->valid & from->valid;
	to->rss += from->rss;
	to->pss += from->pss;
	to->uss += from->uss;
	to->swap += from->swap;
	to->anon_thp += from->anon_thp;
	to->zero += from->zero;
	to->hugetlb += from->hugetlb;
	to->guard += from->guard;
}

static char *dev_name(uint64_t dev, char out[16])
{
	snprintf(out, 16, "%x:%x", major((dev_t)dev), minor((dev_t)dev));
	return out;
}

static void vma_row(struct dump *d, const struct pm_vma *v, uint64_t s, uint64_t e,
		    const struct stats *st, const struct pm_usage *u)
{
	struct out *o = &d->out;
	const char *label = demo_label(v);
	char p[5];

	perms(v, p);
	out_row(o);
	out_hex(o, "start", "%016" PRIx64, s);
	if (o->json)
		out_hex(o, "end", "%" PRIx64, e);
	out_str(o, "perms", " %s", p);
	sizes(d, st, u);
	if (d->extended) {
		out_hex(o, "offset", " %10" PRIx64, v->pgoff);
		out_str(o, "dev", " %5s", dev_name(v->dev, (char[16]){ 0 }));
		out_u64(o, "inode", " %10" PRIu64, v->inode);
	}
	out_str(o, "name", " %s", v->name);
	if (label)
		out_str(o, "demo", " [demo: %s]", label);
	out_row_end(o);
}

/* One VMA's part [s, e) of the dump; its counts are added to the totals. */
void vmas_dump(struct dump *d, const struct pm_vma *v, uint64_t s, uint64_t e,
	       struct stats *total, struct pm_usage *utotal)
{
	struct stats st = { 0 };
	struct pm_usage u = { .size = sizeof(u) };

	read_range(d, s, e, &st);
	/* in a VMA without a file, bit 61 comes only from the huge zero
	 * page, which is not file memory */
	if (!v->inode)
		st.file = 0;
	if (d->mode == MODE_VMAS) {
		int r = pm_usage(d->h, s, e, NULL, &u);

		if (r < 0)
			die("pm_usage", r);
		/* hugetlb pages have bit 61 when shared, and are not in Rss */
		if (u.valid & PM_USAGE_HUGETLB)
			st.file -= st.file < u.hugetlb / d->page_size ? st.file
								     : u.hugetlb / d->page_size;
		vma_row(d, v, s, e, &st, &u);
		usage_add(utotal, &u, !d->rows++);
	}
	stats_add(total, &st);
}

/* Closes the rows and adds the totals and the read counts. */
void vmas_finish(struct dump *d, const struct stats *total, const struct pm_usage *utotal)
{
	struct out *o = &d->out;

	flush_run(d);
	out_close(o, NULL);
	if (d->mode == MODE_VMAS || o->json) {
		out_open(o, '{', "totals", false, NULL);
		out_text(o, "%-16s %-4s", "total", "");
		sizes(d, total, utotal);
		out_close(o, "\n");
	}
	out_open(o, '{', "reads", false, NULL);
	out_u64(o, "kernel_reads", "# %" PRIu64 " kernel reads", d->kernel_reads);
	out_u64(o, "retries", ", %" PRIu64 " re-reads", d->retries);
	out_bool(o, "guarded", d->guarded, ", guard on", ", guard off");
	out_close(o, "\n");
}

void usage_unavailable(struct dump *d)
{
	static const struct {
		uint64_t bit;
		const char *key, *name;
	} cols[] = {
		{ PM_USAGE_RSS, "rss", "Rss" },           { PM_USAGE_PSS, "pss", "Pss" },
		{ PM_USAGE_USS, "uss", "Uss" },           { PM_USAGE_SWAP, "swap", "Swap" },
		{ PM_USAGE_ANON_THP, "anon_huge", "AnonHuge" },
		{ PM_USAGE_ZERO, "zero", "Zero" },        { PM_USAGE_HUGETLB, "hugetlb", "Hugetlb" },
		{ PM_USAGE_GUARD, "guard", "Guard" },
	};
	struct out *o = &d->out;
	struct pm_usage u = { .size = sizeof(u) };
	const bool pfns = pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1;
	bool any = false;
	/* no page in the range: valid says what this caller and kernel can do */
	int r = pm_usage(d->h, 0, d->page_size, NULL, &u);

	if (r < 0)
		die("pm_usage", r);
	out_open(o, '{', "unavailable", false, NULL);
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		const uint64_t b = cols[i].bit;
		const char *why;

		if (u.valid & b)
			continue;
		why = b == PM_USAGE_GUARD	? "the kernel does not report guard regions (6.15+)"
		      : b == PM_USAGE_ANON_THP ? "needs PAGEMAP_SCAN (Linux 6.7+)"
		      : b == PM_USAGE_PSS && pfns ? "/proc/kpagecount is not readable"
		      : b == PM_USAGE_PSS	? "PFNs are hidden without CAP_SYS_ADMIN"
					: "needs PAGEMAP_SCAN (Linux 6.7+) or PFNs (CAP_SYS_ADMIN)";
		out_text(o, "%s%s: %s", any ? "; " : "# n/a: ", cols[i].name, why);
		out_str(o, cols[i].key, "%.0s", why);
		any = true;
	}
	out_close(o, any ? "\n" : NULL);
}
