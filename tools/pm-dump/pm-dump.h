/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm-dump: show what the page tables say about a process. Uses only the
 * public API of libpagemap. One file per job: main.c options and modes,
 * out.c the one text/JSON emitter, stats.c the entry tally, vmas.c the
 * per-VMA, per-page and per-run dumps, scan.c --scan and --check, all.c
 * --all, demo.c the demo child.
 */
#ifndef PM_DUMP_H
#define PM_DUMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <pagemap/pagemap.h>

#define PRINTF(f, a) __attribute__((format(printf, f, a)))

/* The JSON documents' "schema": 2 added it, the usage columns, hex
 * strings for raw 64-bit values and addresses, and *_hex for names that
 * are not UTF-8; 3: --all without the raw counts and "backend", Pss and
 * Uss with --pss only. */
#define PM_DUMP_SCHEMA 3

/* ---- out.c: every row and document, in text or JSON ----
 * Each value has a JSON key and a text format; the text format takes the
 * one value and prints it in the text layout. Containers nest: the whole
 * document, arrays of rows, rows. */
#define OUT_DEPTH 8

struct out {
	bool json;
	int depth; /* -1 outside the document */
	bool first[OUT_DEPTH];
	bool lines[OUT_DEPTH]; /* members on lines of their own */
	char close[OUT_DEPTH];
};

void out_init(struct out *o, bool json);
/* kind '{' or '['; key NULL inside arrays; text printed in text mode */
void out_open(struct out *o, char kind, const char *key, bool lines, const char *text);
void out_close(struct out *o, const char *text);
/* a row: an object on one line; in text, one line */
void out_row(struct out *o);
void out_row_end(struct out *o);
void out_u64(struct out *o, const char *key, const char *text, ...) PRINTF(3, 4);
void out_str(struct out *o, const char *key, const char *text, ...) PRINTF(3, 4);
void out_bool(struct out *o, const char *key, bool v, const char *yes, const char *no);
/* a raw 64-bit value: a hex string in JSON; text takes the one value */
void out_hex(struct out *o, const char *key, const char *text, ...) PRINTF(3, 4);
/* a number, or (not valid) null in JSON and "n/a" in text; in text a
 * space and the value right-aligned in width */
void out_opt_u64(struct out *o, const char *key, int width, bool valid, uint64_t v);
/* only in JSON, or only in text */
void out_json_u64(struct out *o, const char *key, uint64_t v);
void out_text(struct out *o, const char *fmt, ...) PRINTF(2, 3);

/* ---- stats.c ---- */
struct stats {
	uint64_t size, present, swapped, file, exclusive, soft_dirty, guard;
};

void stats_tally(struct stats *st, const uint64_t *e, size_t n);
void stats_add(struct stats *to, const struct stats *from);

/* ---- the dump ---- */
enum mode { MODE_VMAS, MODE_PAGES, MODE_RANGES, MODE_SCAN, MODE_CHECK };

struct dump {
	struct pm_handle *h;
	struct out out;
	enum mode mode;
	bool soft_dirty;
	bool extended; /* -x: offset, device, inode */
	int sort;      /* --all --sort: an ALL_SORT_* key, 0 = by pid */
	bool pss;      /* --all --pss: Pss and Uss too */
	uint64_t rows;
	uint64_t page_size;
	uint64_t *buf;
	uint64_t kernel_reads, retries, guarded;
	/* --scan: the request; --check: the categories compared */
	struct pm_scan_opts scan;
	uint64_t differences;
	/* --ranges: the run being built */
	uint64_t run_start, run_end, run_flags;
	bool run_open;
};

void die(const char *what, int err) __attribute__((noreturn));

/* vmas.c */
void vmas_dump(struct dump *d, const struct pm_vma *v, uint64_t s, uint64_t e,
	       struct stats *total, struct pm_usage *utotal);
void vmas_finish(struct dump *d, const struct stats *total, const struct pm_usage *utotal);
void usage_add(struct pm_usage *to, const struct pm_usage *from, bool first);
/* the header's line on the columns this caller cannot have, and why */
void usage_unavailable(struct dump *d);

/* scan.c */
int scan_parse_cats(const char *arg, struct pm_scan_opts *o);
void scan_cat_list(uint64_t c, char *out, size_t len);
void scan_span(struct dump *d, uint64_t s, uint64_t e);
void scan_check_vma(struct dump *d, uint64_t s, uint64_t e);

/* main.c */
void header(struct dump *d, const struct pm_kernel_info *ki);

/* all.c */
int all_sort_key(const char *name); /* -1 if unknown */
int all_dump(struct dump *d, const struct pm_kernel_info *ki);

/* demo.c */
pid_t demo_start(int *hold_fd, uint64_t page_size);
void demo_stop(pid_t pid, int hold_fd);
const char *demo_label(const struct pm_vma *v);

#endif
