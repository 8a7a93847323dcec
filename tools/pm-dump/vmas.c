/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The modes that read every entry: one row per VMA like `pmap -X`
 * (default), one per page (--pages), one per run of equal flags (--ranges). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#include "pm-dump.h"

#define WINDOW_PAGES 65536UL /* entries read per pm_read: 512 KiB of buffer */
#define KPF_THP 22

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
	struct out *o = &d->out;
	char f[8];

	flag_letters(e, f);
	out_row(o);
	out_u64(o, "addr", "%016" PRIx64, addr);
	out_u64(o, "entry", " %016" PRIx64, e);
	out_str(o, "flags", " %s", f);
	out_u64(o, "pfn", " pfn=%" PRIx64, pm_entry_pfn(e));
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
	out_u64(o, "start", "%016" PRIx64, d->run_start);
	out_u64(o, "end", "-%016" PRIx64, d->run_end);
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
		st->thp += count_thp(d, d->buf, (size_t)n);
		a = to;
	}
	st->size += end - start;
}

/* the sizes of one row, in KiB */
static void sizes(struct dump *d, const struct stats *st)
{
	struct out *o = &d->out;
	const uint64_t k = d->page_size / 1024;

	out_u64(o, "size_kib", " %10" PRIu64, st->size / 1024);
	out_u64(o, "present_kib", " %10" PRIu64, st->present * k);
	out_u64(o, "swapped_kib", " %8" PRIu64, st->swapped * k);
	out_u64(o, "thp_kib", " %8" PRIu64, st->thp * k);
	out_u64(o, "file_kib", " %8" PRIu64, st->file * k);
	out_u64(o, "exclusive_kib", " %10" PRIu64, st->exclusive * k);
	out_u64(o, "guard_kib", " %6" PRIu64, st->guard * k);
	if (d->soft_dirty)
		out_u64(o, "soft_dirty_kib", " %8" PRIu64, st->soft_dirty * k);
}

static void vma_row(struct dump *d, const struct pm_vma *v, uint64_t s, uint64_t e,
		    const struct stats *st)
{
	struct out *o = &d->out;
	const char *label = demo_label(v);
	char p[5];

	perms(v, p);
	out_row(o);
	out_u64(o, "start", "%016" PRIx64, s);
	out_json_u64(o, "end", e);
	out_str(o, "perms", " %s", p);
	sizes(d, st);
	out_str(o, "name", " %s", v->name);
	if (label)
		out_str(o, "demo", " [demo: %s]", label);
	out_row_end(o);
}

/* One VMA's part [s, e) of the dump; its counts are added to *total. */
void vmas_dump(struct dump *d, const struct pm_vma *v, uint64_t s, uint64_t e,
	       struct stats *total)
{
	struct stats st = { 0 };

	read_range(d, s, e, &st);
	if (d->mode == MODE_VMAS)
		vma_row(d, v, s, e, &st);
	stats_add(total, &st);
}

/* Closes the rows and adds the totals and the read counts. */
void vmas_finish(struct dump *d, const struct stats *total)
{
	struct out *o = &d->out;

	flush_run(d);
	out_close(o, NULL);
	if (d->mode == MODE_VMAS || o->json) {
		out_open(o, '{', "totals", false, NULL);
		out_text(o, "%-16s %-4s", "total", "");
		sizes(d, total);
		out_close(o, "\n");
	}
	out_open(o, '{', "reads", false, NULL);
	out_u64(o, "kernel_reads", "# %" PRIu64 " kernel reads", d->kernel_reads);
	out_u64(o, "retries", ", %" PRIu64 " re-reads", d->retries);
	out_bool(o, "guarded", d->guarded, ", guard on", ", guard off");
	out_close(o, "\n");
}
