/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_scan emulated from pm_read entries and the VMAs, for kernels
 * without PAGEMAP_SCAN, categories the kernel lacks, and PM_SCAN_F_EMULATE.
 * Reads go through pm_read, so the consistency guard applies to them.
 *
 * Per category (the kernel's definitions, fs/proc/task_mmu.c):
 *   PRESENT    bit 63.
 *   SWAPPED    bit 62: every swap-format entry, PTE markers included, as
 *              the kernel's is_swap_pte().
 *   FILE       bit 61 (page not anonymous), except in private anonymous VMAs
 *              (no inode; unnamed, [heap], [stack*] or [anon:*]), where bit
 *              61 only ever comes from the huge zero page, which pagemap
 *              calls file and PAGEMAP_SCAN does not.
 *   SOFT_DIRTY bit 55, where the kernel proves soft-dirty works.
 *   GUARD      bit 58, where the kernel reports guard regions in pagemap.
 *   PFNZERO    a present page whose PFN is the zero page or inside the
 *              huge zero folio, from /proc/kpageflags (KPF_ZERO_PAGE on the
 *              page, or on a compound head 512-aligned below it: 6.1 flags
 *              only the huge zero head). Needs visible PFNs and kpageflags.
 * Not emulated (-EOPNOTSUPP): WPALLOWED (uffd registration is invisible),
 * HUGE (a PMD mapping is indistinguishable from a PTE-mapped THP), and
 * WRITTEN (for an empty entry the kernel's answer depends on whether a page
 * table exists there and on its stable fixes).
 * Like the kernel, only pages inside VMAs are considered, and VM_PFNMAP VMAs
 * are skipped: the vDSO data pages ("[vvar]", "[vvar_vclock]") are known to
 * be, and their present pages are the kind whose VMA is looked up; other
 * PFN maps (device memory) are not visible from user space and are
 * scanned.
 */
#include "internal.h"
#include "scan.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WINDOW 8192 /* entries per pm_read at most: 64 KiB buffers stay on the
		     * heap (below the mmap threshold), so a scan does not fault in
		     * fresh pages for them every call */
#define BIG_WINDOW 65536 /* at most, for a caller whose vector takes more than
			  * a WINDOW: in the 6.1 VM a read costs about 0.2 ms of
			  * its own, and 10,000 small VMAs took 10 of them */
#define FIRST_WINDOW 512 /* windows start small and grow: a caller with a
			  * small vector does not pay for reading far ahead */
#define GAP_SKIP_PAGES 1024 /* a gap worth confirming to skip it (read.c) */
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_ZERO_PAGE 24

struct emu {
	const struct pm__scan_req *q;
	struct pm__scan_out *o;
	bool zero_matches; /* pages with no category match: VMA membership counts */
	int kpf;           /* /proc/kpageflags, when PFNZERO is needed */
	uint64_t *flags;
	struct pm__vcursor vc;
	struct pm_vma v;   /* the VMA last looked up, v.end the end of its run */
	bool v_valid, v_anon_private, v_pfnmap;
	uint64_t v_vma_end; /* the VMA's own end */
	unsigned v_gen;     /* vc.gen at the lookup: the run holds while it is */
	uint64_t run_start, run_end, run_cats;
	bool run;
};

static int check_supported(uint64_t need, int *kpf)
{
	int r;

	*kpf = -1;
	if (need & (PM_CAT_WPALLOWED | PM_CAT_HUGE | PM_CAT_WRITTEN))
		return -EOPNOTSUPP;
	if ((need & PM_CAT_SOFT_DIRTY) && (r = pm__feature(PM_FEAT_SOFT_DIRTY)) != 1)
		return r < 0 ? r : -EOPNOTSUPP;
	if ((need & PM_CAT_GUARD) && (r = pm__feature(PM_FEAT_GUARD_REGIONS)) != 1)
		return r < 0 ? r : -EOPNOTSUPP;
	if (need & PM_CAT_PFNZERO) {
		if (pm_has_feature(PM_FEAT_PFN_VISIBLE) != 1)
			return -EOPNOTSUPP;
		*kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
		if (*kpf < 0)
			return -EOPNOTSUPP;
	}
	return 0;
}

static uint64_t kflags(struct emu *m, uint64_t pfn)
{
	uint64_t f = 0;

	if (pm__pread_full(m->kpf, &f, sizeof(f), pfn * 8, NULL))
		return 0;
	return f;
}

/* PFNZERO for present entries: one kpageflags read per PFN run. A present
 * entry without a PFN: the handle's pagemap was opened without the right
 * to see them (the kernel decides by the opener's credentials, which
 * check_supported() could not ask): -EOPNOTSUPP, as without the rights. */
static int zero_pages(struct emu *m, const uint64_t *e, size_t n, uint64_t *cats)
{
	const uint64_t huge_zero_pages = pm__pmd_pages();

	m->vc.ident_fresh = false; /* read after the last stat text */
	for (size_t i = 0; i < n;) {
		uint64_t pfn = pm_entry_pfn(e[i]), head, hf;
		size_t run = 1;

		if (!pfn) {
			if (pm_entry_present(e[i]) && cats[i] != ~0ULL)
				return -EOPNOTSUPP;
			i++;
			continue;
		}
		while (i + run < n && pm_entry_pfn(e[i + run]) == pfn + run && run < WINDOW)
			run++;
		if (pm__pread_full(m->kpf, m->flags, run * 8, pfn * 8, NULL) == 0) {
			bool tails = false;

			/* the head's flags matter only for tail pages (a huge zero
			 * folio's tails), and are in the run when it starts there */
			for (size_t j = 0; j < run && !tails; j++)
				tails = m->flags[j] >> KPF_COMPOUND_TAIL & 1;
			head = pfn & ~(huge_zero_pages - 1);
			hf = !tails ? 0 : head == pfn ? m->flags[0] : kflags(m, head);
			for (size_t j = 0; j < run; j++) {
				bool in_head = pfn + j - head < huge_zero_pages;

				if (cats[i + j] == ~0ULL)
					continue;
				if ((m->flags[j] >> KPF_ZERO_PAGE & 1) ||
				    (in_head && (hf >> KPF_ZERO_PAGE & 1) &&
				     (hf >> KPF_COMPOUND_HEAD & 1)))
					cats[i + j] |= PM_CAT_PFNZERO;
			}
		}
		i += run;
	}
	return 0;
}

/* The VMA holding @va (looked up when @va leaves the last one): 1 if
 * there is one, 0 if @va is in a gap, -errno. Where empty pages match,
 * what is a gap is a fact of this call; else @va holds a present page and
 * only the kind of its VMA is needed (vma-cache.c): m->v then reaches over
 * the VMAs of the same kind that follow it without a gap, one lookup and
 * one range for all of them (under TCG a lookup per VMA cost about as much
 * as the kernel's walk of a small VMA's pages). */
static int vma_at(struct emu *m, uint64_t va)
{
	unsigned kind;
	int r;

	if (m->v_valid && m->v_gen != m->vc.gen)
		m->v.end = m->v_vma_end; /* the run was a list's replaced since */
	if (m->v_valid && va >= m->v.start && va < m->v.end)
		return 1;
	if (m->v_valid && va < m->v.start)
		return 0;
	r = m->zero_matches ? pm__vcursor_next(&m->vc, va, &m->v, true)
			    : pm__vcursor_kind(&m->vc, va, &m->v);
	if (r <= 0) {
		m->v_valid = false;
		return r;
	}
	m->v_valid = true;
	kind = pm__vma_kind(&m->v);
	m->v_anon_private = kind == PM__VKIND_ANON_PRIVATE;
	m->v_pfnmap = kind == PM__VKIND_PFNMAP;
	m->v_vma_end = m->v.end;
	m->v_gen = m->vc.gen;
	if (!m->zero_matches)
		m->v.end = pm__vcursor_kind_end(&m->vc, &m->v);
	return va >= m->v.start;
}

static bool flush(struct emu *m)
{
	bool ok = !m->run || pm__out_add(m->o, m->run_start, m->run_end, m->run_cats);

	m->run = false;
	return ok;
}

/* Add [s, e) with return categories rc to the run being built. */
static bool emit(struct emu *m, uint64_t s, uint64_t e, uint64_t rc)
{
	if (m->run && m->run_end == s && m->run_cats == rc) {
		m->run_end = e;
		return true;
	}
	if (!flush(m))
		return false;
	m->run = true;
	m->run_start = s;
	m->run_end = e;
	m->run_cats = rc;
	return true;
}

static inline uint64_t entry_cats(uint64_t e, bool anon_private)
{
	uint64_t c = (e & PM_ENTRY_PRESENT ? PM_CAT_PRESENT : 0) |
		     (e & PM_ENTRY_SWAP ? PM_CAT_SWAPPED : 0) |
		     (e & PM_ENTRY_SOFT_DIRTY ? PM_CAT_SOFT_DIRTY : 0) |
		     (e & PM_ENTRY_GUARD ? PM_CAT_GUARD : 0);

	if ((e & PM_ENTRY_FILE) && (e & (PM_ENTRY_PRESENT | PM_ENTRY_SWAP)) &&
	    !((e & PM_ENTRY_PRESENT) && anon_private))
		c |= PM_CAT_FILE;
	return c;
}

/* Whether the kernel's view of a page with entry e depends on its VMA:
 * when empty pages match (membership), for FILE in private anonymous VMAs
 * (the huge zero page), and for present pages that are neither file nor
 * exclusive, the only kind a VM_PFNMAP VMA (skipped by the kernel) shows. */
static inline bool needs_vma(const struct emu *m, uint64_t e)
{
	return m->zero_matches ||
	       ((e & PM_ENTRY_PRESENT) && (e & (PM_ENTRY_FILE | PM_ENTRY_EXCLUSIVE)) != PM_ENTRY_EXCLUSIVE);
}

/* Pages [s, t) that all have entry flags e: split at VMA edges where the
 * VMA matters, matched, and emitted. */
static int range(struct emu *m, uint64_t s, uint64_t t, uint64_t e)
{
	const bool need_vma = needs_vma(m, e);

	if (!e && !m->zero_matches)
		return flush(m) ? 0 : 1;
	while (s < t) {
		uint64_t u = t, c;

		if (need_vma) {
			int in = vma_at(m, s);

			if (in < 0)
				return in;
			if (!in || m->v_pfnmap) {
				if (!in && m->v_valid && m->v.start < u)
					u = m->v.start;
				if (in && m->v.end < u)
					u = m->v.end;
				if (!flush(m))
					return 1;
				s = u;
				continue;
			}
			if (m->v.end < u)
				u = m->v.end;
		}
		c = entry_cats(e, need_vma && m->v_anon_private);
		if (pm__scan_match(m->q, c) ? !emit(m, s, u, c & m->q->ret) : !flush(m))
			return 1;
		s = u;
	}
	return 0;
}

/* Classify and emit one window: runs of entries with equal flags are one
 * range (a compare per entry); with PFNZERO each page is looked up. */
static int window(struct emu *m, uint64_t a, const uint64_t *buf, uint64_t *cats, size_t n,
		  uint64_t ps)
{
	const uint64_t fmask = ~PM_ENTRY_PFN_MASK;
	int r;

	if (m->kpf < 0) {
		for (size_t i = 0, j; i < n && !m->o->done; i = j) {
			uint64_t f = buf[i] & fmask;

			for (j = i + 1; j < n && (buf[j] & fmask) == f; j++)
				;
			r = range(m, a + i * ps, a + j * ps, f);
			if (r)
				return r < 0 ? r : 0;
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t e = buf[i], va = a + i * ps;
		bool need_vma = needs_vma(m, e);

		cats[i] = ~0ULL;
		if (!e && !m->zero_matches)
			continue;
		if (need_vma) {
			r = vma_at(m, va);
			if (r < 0)
				return r;
			if (!r || m->v_pfnmap)
				continue;
		}
		cats[i] = entry_cats(e, need_vma && m->v_anon_private);
	}
	r = zero_pages(m, buf, n, cats);
	if (r)
		return r;
	for (size_t i = 0; i < n && !m->o->done; i++) {
		uint64_t c = cats[i], va = a + i * ps;
		bool ok = c != ~0ULL && pm__scan_match(m->q, c) ? emit(m, va, va + ps, c & m->q->ret)
							   : flush(m);

		if (!ok)
			break;
	}
	return 0;
}

/* The entries @slots more regions need at @d (16 x pages per region,
 * each with the gap after it), and the first entry of the next region,
 * whose start is where the walk ends; and a margin: a read that falls
 * short costs a syscall (~40-60 entries' worth), one too long reads
 * entries again in the next call. */
static uint64_t need_window(uint64_t slots, uint64_t d)
{
	const uint64_t need = slots * d / 16 + 1;

	return need + need / 32 + 4;
}

/* The first window: without a page limit, what the caller's free slots
 * need at the density of regions the last emulated scan on this handle saw
 * (the caller's previous continuation call): for the slots and the next
 * region, whose start is where the walk ends. */
static uint64_t first_window(const struct pm_handle *h, const struct pm__scan_out *o,
			     uint64_t cap)
{
	const uint64_t d = atomic_load_explicit(&h->emu_pages, memory_order_relaxed);
	const uint64_t slots = o->vec_len - o->n;
	uint64_t win;

	if (o->max_pages != UINT64_MAX)
		return FIRST_WINDOW;
	if (!d) /* a vector as large as a window cannot fill before its end */
		return slots >= WINDOW ? WINDOW : FIRST_WINDOW;
	win = need_window(slots, d);
	return win < cap ? win : cap;
}

/* The next window: what the caller's free slots need at the density of
 * regions seen so far in this call (a caller with a small vector must not
 * pay for reading far past where its vector fills; one that fell just
 * short reads the few entries it lacks), with the first window's margin;
 * doubled after a window that added no region (a long run, or none yet,
 * from FIRST_WINDOW); never above @cap, the buffer's size. */
static uint64_t next_window(uint64_t win, const struct pm__scan_out *o, uint64_t pages,
			    size_t n0, size_t n_before, uint64_t cap)
{
	size_t found = o->n - n0, free_slots = o->vec_len - o->n;

	if (!found)
		win = win < FIRST_WINDOW ? FIRST_WINDOW : win + win / 2;
	else if (o->n == n_before || o->max_pages != UINT64_MAX)
		win *= 2;
	else
		win = need_window(free_slots, pages * 16 / found);
	return win < cap ? win : cap;
}

/* A window the guard could not certify from @cut on: the call ends with
 * what was certified before it, walk_end at @cut, or at the start of a
 * run that reaches @cut (it may go on past it: reported, it would be
 * split across calls), unless max_pages cuts that run anyway; -EAGAIN
 * when that leaves nothing to report. */
static int stop_short(struct emu *m, uint64_t start, size_t n0, uint64_t cut)
{
	struct pm__scan_out *o = m->o;
	const uint64_t ps = pm__kernel()->page_size;

	if (o->done)
		return 0;
	if (m->run && m->run_end == cut &&
	    (m->run_end - m->run_start) / ps < o->max_pages - o->found) {
		cut = m->run_start;
		m->run = false;
	} else if (!flush(m)) {
		return 0; /* the vector filled: walk_end is set */
	}
	if (cut <= start && o->n == n0)
		return -EAGAIN;
	o->done = true;
	o->walk_end = cut;
	return 0;
}

/* What this call saw, for the next one's first window. */
static void remember_density(struct pm_handle *h, const struct pm__scan_out *o, size_t n0,
			     uint64_t start, uint64_t a, uint64_t ps)
{
	const uint64_t to = o->done ? o->walk_end : a;

	if (o->n > n0 && to > start)
		atomic_store_explicit(&h->emu_pages, (to - start) / ps * 16 / (o->n - n0),
				      memory_order_relaxed);
}

/* A call's buffers, and /proc/kpageflags when PFNZERO is asked (then
 * cats and flags too): allocated and opened once for both attempts of a
 * call, before its token (heap growth and first writes move the counters
 * a scan of this process reads). What a self scan's first call still
 * allocates inside the bracket, its handle's VMA list (an mmap of ~230
 * KiB for 10,000 VMAs), trips that bracket: the first call runs twice. */
struct emu_mem {
	int kpf;
	uint64_t *buf, *cats, *flags;
	uint64_t cap; /* entries buf holds: WINDOW, or BIG_WINDOW */
};

/* One BIG_WINDOW buffer kept for the next call that needs one: 512 KiB is
 * past malloc's mmap threshold, so a buffer freed is unmapped and the next
 * one faulted in again, page by page. */
static uint64_t *_Atomic spare_big;

/* Whether windows above WINDOW entries can be worth it: without PFNZERO
 * (whose per-page buffers stay at WINDOW) or a page limit, over more than a
 * window, for a vector that takes a window whole or at the density of
 * regions last seen on the handle. */
static bool big_windows(const struct pm_handle *h, uint64_t start, uint64_t end,
			const struct pm__scan_out *o, const struct emu_mem *mem)
{
	const uint64_t d = atomic_load_explicit(&h->emu_pages, memory_order_relaxed);
	const uint64_t slots = o->vec_len - o->n;

	return mem->kpf < 0 && o->max_pages == UINT64_MAX &&
	       (end - start) / pm__kernel()->page_size > WINDOW &&
	       (slots >= WINDOW || (d && need_window(slots, d) > WINDOW));
}

/* One emulated call; @read_flags: pm_read's for each window. */
static int emulate(struct pm_handle *h, uint64_t start, uint64_t end, const struct pm__scan_req *q,
		   struct pm__scan_out *o, uint64_t read_flags, const struct emu_mem *mem)
{
	/* guarded windows ask for best effort: the first uncertain page is
	 * where the call stops (stop_short()) */
	PM_OPTS(pm_read_opts, ro,
		.flags = PM__READ_UNCHECKED | read_flags |
			 (read_flags & PM__READ_UNGUARDED ? 0 : PM_READ_F_BEST_EFFORT));
	const uint64_t ps = pm__kernel()->page_size;
	struct emu m = { .q = q, .o = o, .kpf = mem->kpf, .flags = mem->flags };
	uint64_t *buf = mem->buf, *cats = mem->cats, a = start;
	const size_t n0 = o->n;
	int r = 0;

	m.zero_matches = pm__scan_match(q, 0);
	pm__vcursor_init(&m.vc, h);
	/* windows of the range, jumping over gaps between VMAs; the read
	 * engine plans (and guards) the reads inside each window, on the same
	 * VMA cursor, so a VMA is looked up once, and a list the handle kept
	 * from an earlier call (the caller's previous continuation call) plans
	 * them without reading the maps again */
	for (uint64_t win = first_window(h, o, mem->cap), pages = 0, nb = n0; a < end && !o->done;
	     win = next_window(win, o, pages, n0, nb, mem->cap)) {
		struct pm_range unc;
		PM_OPTS(pm_read_info, info, .uncertain = (uintptr_t)&unc, .uncertain_cap = 1);
		struct pm_vma v;
		uint64_t b;
		long n;

		r = pm__vcursor_plan(&m.vc, a, &v);
		if (r < 0)
			break;
		/* a gap by the plan: skipped only when a fact says it is one,
		 * and only when it is worth it or membership matters (pagemap
		 * says empty for the pages of a gap read) */
		if ((r == 0 || v.start > a) &&
		    (m.zero_matches || r == 0 || (v.start - a) / ps >= GAP_SKIP_PAGES)) {
			r = pm__vcursor_next(&m.vc, a, &v, false);
			if (r <= 0)
				break;
			if (v.start > a) {
				if (!flush(&m))
					break;
				a = v.start;
			}
		}
		if (a >= end)
			break;
		b = end - a > win * ps ? a + win * ps : end;
		pages += (b - a) / ps;
		nb = o->n;
		n = pm__read(h, a, b, buf, &ro, &info, &m.vc);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (info.flags & PM_READ_INFO_UNSTABLE) {
			const uint64_t cut = unc.start > a ? unc.start : a;

			r = window(&m, a, buf, cats, (size_t)((cut - a) / ps), ps);
			if (r)
				goto out;
			r = stop_short(&m, start, n0, cut);
			a = cut;
			break;
		}
		r = window(&m, a, buf, cats, (size_t)n, ps);
		if (r)
			goto out;
		a = b;
	}
	if (r >= 0 && !o->done)
		flush(&m);
	r = r < 0 ? r : 0;
	if (!r)
		remember_density(h, o, n0, start, a, ps);
	/* nothing read goes out before the handle's check; a bracketed
	 * call's closing token makes it (pm__scan_emulated) */
	if (!r && !(read_flags & PM__READ_UNGUARDED))
		r = pm__vcursor_check(&m.vc);
out:
	pm__vcursor_fini(&m.vc);
	return r;
}

/*
 * Where reads need the guard, one token pair brackets the whole call
 * instead of one pair per window (a call over 10,000 small VMAs read ten
 * windows: twenty tokens, 1.49x the pread floor in the 6.1 VM against
 * 1.24x unguarded). When the bracket does not certify the call, its
 * output is taken back and the call made again with every window under
 * the guard's own rules (certifying passes, -EAGAIN).
 */
int pm__scan_emulated(struct pm_handle *h, uint64_t start, uint64_t end,
		      const struct pm__scan_req *q, struct pm__scan_out *o)
{
	/* pm_scan's output starts empty: taking a call back restores it whole */
	const struct pm__scan_out saved = *o;
	struct pm__token before, after;
	struct emu_mem mem = { .kpf = -1 };
	int r = check_supported(q->mask | q->inverted | q->anyof | q->ret, &mem.kpf);

	if (r)
		return r;
	mem.cap = big_windows(h, start, end, o, &mem) ? BIG_WINDOW : WINDOW;
	if (mem.cap == BIG_WINDOW)
		mem.buf = atomic_exchange(&spare_big, NULL);
	if (!mem.buf)
		mem.buf = malloc(mem.cap * sizeof(*mem.buf));
	if (mem.buf && mem.kpf >= 0) { /* per-page categories and flags: PFNZERO only */
		mem.cats = malloc(WINDOW * sizeof(*mem.cats));
		mem.flags = malloc(WINDOW * sizeof(*mem.flags));
	}
	if (!mem.buf || (mem.kpf >= 0 && (!mem.cats || !mem.flags))) {
		r = -ENOMEM;
		goto out;
	}
	if (pm__guard_wanted(0)) {
		/* their first writes must not fault inside a bracket (the
		 * caller's fresh vector can) */
		pm__prefault(mem.buf, mem.cap);
		if (mem.flags) {
			pm__prefault(mem.flags, WINDOW);
			pm__prefault(mem.cats, WINDOW);
		}
	}
	if (!pm__guard_wanted(0) || pm__token_open(h, &before)) {
		r = emulate(h, start, end, q, o, 0, &mem);
	} else {
		r = emulate(h, start, end, q, o, PM__READ_UNGUARDED, &mem);
		if (!r && (pm__token_after(h, &after) || !pm__token_certifies(&before, &after))) {
			*o = saved;
			r = emulate(h, start, end, q, o, 0, &mem);
		} else if (!r) {
			/* the closing token's stat text, read after everything,
			 * answers the identity check (1: a text it does not know) */
			r = after.ident != 1 ? after.ident : pm__handle_check(h);
		}
	}
out:
	if (mem.cap == BIG_WINDOW)
		mem.buf = atomic_exchange(&spare_big, mem.buf);
	free(mem.buf);
	free(mem.cats);
	free(mem.flags);
	if (mem.kpf >= 0)
		close(mem.kpf);
	return r;
}
