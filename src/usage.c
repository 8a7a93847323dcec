/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_usage: smaps' numbers for any range, from the page tables.
 *
 * smaps (fs/proc/task_mmu.c, smaps_account) counts a present page that
 * vm_normal_page() finds: not the zero page or the huge zero page, not a
 * VM_PFNMAP page, and hugetlb pages only in the *_Hugetlb fields. Per page
 * it adds (PAGE_SIZE << 12) / mapcount to Pss when the mapcount is 2 or
 * more, else PAGE_SIZE << 12, to Pss_Anon, Pss_Shmem or Pss_File by the
 * folio's anon and swap-backed bits, and counts the page Private when its
 * mapcount is below 2, else Shared. The mapcount is the page's precise
 * one, which /proc/kpagecount reports; kernels built with
 * CONFIG_NO_PAGE_MAPCOUNT (6.15+) use the folio's average mapcount for
 * both (kpagecount reports that average too) and decide Private per folio
 * (!folio_maybe_mapped_shared), which is what pagemap's exclusive bit says
 * there; no file says which, a round trip does (probe-mapcount.c).
 * AnonHugePages counts PMD-mapped anonymous folios.
 *
 * Sources per field, cheapest first:
 *   swap, guard      the pagemap entry (bits 62, 58)
 *   zero, anon_thp   PAGEMAP_SCAN PFNZERO and HUGE (PMD-mapped), unprivileged;
 *                    else kpageflags for the zero pages
 *   rss, uss, shared PAGEMAP_SCAN plus the exclusive bit where that decides
 *                    every page, else kpageflags and kpagecount
 *   pss*, hugetlb    kpageflags and kpagecount (visible PFNs, root)
 * A field some page of the range cannot be decided for with the caller's
 * rights is left out of `valid`, never guessed.
 *
 * Here the walks over a range; usage-scan.c counts what PAGEMAP_SCAN
 * answers alone, usage-kp.c a page from its physical page.
 */
#include "internal.h"
#include "kpages.h"
#include "scan.h"
#include "usage.h"

#include <stdlib.h>
#include <string.h>

#define SCAN_VEC 512 /* regions per PAGEMAP_SCAN call */
#define PM__USAGE_FIELDS 12 /* rss .. guard, in PM_USAGE_* bit order */

/* The VMA holding @va or the next one into *v: 1, 0 (none), -errno. */
static int vma_at(struct pm__uctx *c, uint64_t va, struct pm__uvma *v)
{
	struct pm_vma m;

	if (c->list) {
		while (c->li < c->list->count && c->list->v[c->li].end <= va)
			c->li++;
		if (c->li == c->list->count)
			return 0;
		m = c->list->v[c->li];
		v->a = &c->acc[c->li];
	} else {
		int r = pm__vcursor_next(&c->vc, va, &m, true);

		if (r <= 0)
			return r;
		v->a = &c->acc[0];
	}
	v->start = m.start;
	v->end = m.end;
	v->anon = !m.inode;
	v->pfnmap = pm__vma_kind(&m) == PM__VKIND_PFNMAP;
	v->hugetlb = -1;
	return 1;
}

/* A guard or swapped page's entry counted into @a: true, or false for a
 * present page (left to the caller). */
static bool absent_page(struct pm__usage_acc *a, uint64_t e, uint64_t ps)
{
	if (pm_entry_guard(e))
		a->u.guard += ps;
	else if (pm_entry_present(e))
		return false;
	else if (pm_entry_swapped(e))
		a->u.swap += ps;
	return true;
}

/*
 * Whether page i (present, file, in file VMA *v) is one whose flags tell
 * only hugetlb from page cache: without PAGEMAP_SCAN, when no Pss split
 * asks shmem from page cache. A VMA is hugetlb or not as a whole, so the
 * flags of its first such page (the probe) tell the others: a library's
 * scattered pages cost a kpageflags read each otherwise (pm-dump --all,
 * Rss, on 6.1). A present file page has a struct page (no NOPAGE) and
 * is not a zero page.
 */
static bool file_probe(const struct pm__uctx *c, uint64_t e, const struct pm__uvma *v)
{
	return !c->scan && !v->anon && (e & PM_ENTRY_FILE) &&
	       !(c->want & (PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE | PM_USAGE_PSS_SHMEM));
}

/* Whether pages [i, z) of the window, page k of a PMD-aligned block on,
 * may be (part of) one PMD mapping: every page present, and with visible
 * PFNs those consecutive from an aligned one. */
static bool maybe_pmd(const struct pm__uctx *c, size_t i, size_t z, size_t k)
{
	const uint64_t pfn = pm_entry_pfn(c->e[i]), pmd = pm__pmd_pages();

	if (pfn && ((pfn - k) & (pmd - 1)))
		return false;
	for (size_t j = i; j < z; j++)
		if (!pm_entry_present(c->e[j]) || (pfn && pm_entry_pfn(c->e[j]) != pfn + (j - i)))
			return false;
	return true;
}

/* The end of the PMD-aligned block holding page i of [0, n) (page 0 at
 * address @a), and in *k page i's place in that block. */
static size_t pmd_block(const struct pm__uctx *c, uint64_t a, size_t i, size_t n, size_t *k)
{
	const size_t pmd = (size_t)pm__pmd_pages();

	*k = (size_t)((a / c->ps + i) & (pmd - 1));
	return i + pmd - *k < n ? i + pmd - *k : n;
}

/* Without PAGEMAP_SCAN, on kernels with per-page mapcounts: mark the pages
 * of [a, b) that may be part of a PMD mapping (whose exclusive bit is the
 * head page's), so that mapped_once() may take the others' bit for their
 * mapcount (usage-kp.c). */
static void mark_maybe_pmd(struct pm__uctx *c, uint64_t a, size_t n)
{
	for (size_t i = 0, z, k; i < n; i = z) {
		uint64_t m;

		z = pmd_block(c, a, i, n, &k);
		m = maybe_pmd(c, i, z, k) ? PM__CAT_MAYBE_PMD : 0;
		for (size_t j = i; j < z; j++)
			c->cat[j] = m;
	}
}

/* Without PAGEMAP_SCAN, pages [a, b): one pagemap read, the physical
 * pages' records, then each page counted for the VMA it is in (*v moves
 * along). */
static int chunk(struct pm__uctx *c, uint64_t a, uint64_t b, struct pm__uvma *v)
{
	const size_t n = (size_t)((b - a) / c->ps);
	uint64_t probe_vma = UINT64_MAX; /* the VMA whose probe is in this chunk */
	size_t probe = 0;
	long got;
	int r = 0;

	got = pm__read(c->h, a, b, c->e, &c->ro, NULL, &c->vc);
	if (got < 0)
		return (int)got;
	for (size_t i = 0; i < n; i++) {
		const uint64_t va = a + i * c->ps, e = c->e[i];

		while (v->end && v->end <= va) {
			int k = vma_at(c, va, v);

			if (k < 0)
				return k;
			if (!k)
				v->start = v->end = 0;
		}
		c->pv[i] = *v;
		c->pv[i].probe = PM__PROBE_NONE;
		if (!v->end || va < v->start)
			c->pv[i].a = NULL; /* not in a VMA: the kernel has no page there */
		c->pfn[i] = 0;
		c->flags[i] = PM__NOT_READ;
		if (!c->kp_decided && c->pv[i].a && pm_entry_present(e))
			pm__usage_kp_decide(c, e);
		if (c->kp && c->pv[i].a && pm_entry_present(e) && !v->pfnmap) {
			const bool told = file_probe(c, e, v);

			c->pfn[i] = pm_entry_pfn(e);
			if (told && (v->hugetlb >= 0 || probe_vma == v->start)) {
				c->pv[i].probe = v->hugetlb > 0 ? PM__PROBE_HUGE
						 : v->hugetlb == 0 ? PM__PROBE_NO
								   : probe;
				continue;
			}
			if (told) {
				probe_vma = v->start;
				probe = i;
			}
			/* kpageflags costs twice kpagecount: read where needed */
			if (pm__usage_need_flags(c, e, c->cat[i], v))
				c->flags[i] = 0;
		}
	}
	if (c->kp) {
		if (c->page_mapcount)
			mark_maybe_pmd(c, a, n);
		r = pm__usage_kp_records(c, n);
		if (r)
			return r;
	}
	/* the probes told: their VMAs' other pages are hugetlb or not */
	for (size_t i = 0; i < n; i++) {
		const size_t p = c->pv[i].probe;

		if (p == PM__PROBE_HUGE || (p < n && (c->flags[p] & (1ULL << PM_KPF_HUGE))))
			c->flags[i] = 1ULL << PM_KPF_HUGE;
	}
	if (probe_vma == v->start)
		v->hugetlb = !!(c->flags[probe] & (1ULL << PM_KPF_HUGE));
	for (size_t i = 0; i < n && !r; i++) {
		const uint64_t e = c->e[i];
		const struct pm__uvma *pv = &c->pv[i];
		struct pm__usage_acc *acc = pv->a;

		if (!acc)
			continue;
		if (absent_page(acc, e, c->ps) || pv->pfnmap)
			continue;
		if (c->kp)
			r = pm__usage_page_kp(c, i, acc);
		else
			acc->unknown |= PM__NEED_CLASS;
	}
	return r;
}

/* Entries between pieces of pages (or VMAs) this close are read rather
 * than skipped: ~3 ns an unmapped entry against ~2 us a pread. */
#define WIN_GAP 512

/* Where the chunk from @cur (in VMA *v) ends: after the VMAs from there
 * while each next one starts within WIN_GAP pages of the last one's end,
 * at most PM__USAGE_CHUNK pages on and at @end. A chunk of a fixed
 * 8,192 pages counted every entry after a 33-page stack: ~0.7 ms per call
 * here without PAGEMAP_SCAN, 5 ms in the 6.1 VM. The list's position
 * (c->li) is left where it is: chunk() walks these VMAs again. */
static int chunk_end(struct pm__uctx *c, uint64_t cur, uint64_t end, const struct pm__uvma *v,
		     uint64_t *b)
{
	const uint64_t max = end - cur > PM__USAGE_CHUNK * c->ps ? cur + PM__USAGE_CHUNK * c->ps : end;
	uint64_t to = v->end;
	size_t k = c->li;

	while (to < max) {
		struct pm_vma m;

		if (c->list) {
			while (k < c->list->count && c->list->v[k].end <= to)
				k++;
			if (k == c->list->count)
				break;
			m = c->list->v[k];
		} else {
			int r = pm__vcursor_next(&c->vc, to, &m, true);

			if (r < 0)
				return r;
			if (!r)
				break;
		}
		if (m.start > to && m.start - to > WIN_GAP * c->ps)
			break;
		to = m.end;
	}
	*b = to < max ? to : max;
	return 0;
}

/* Without PAGEMAP_SCAN, count the pages of [start, end), read in chunks
 * that skip the gaps between VMAs and span small VMAs. */
static int walk(struct pm__uctx *c, uint64_t start, uint64_t end)
{
	struct pm__uvma v;
	uint64_t cur = start;
	int r = vma_at(c, cur, &v);

	while (r > 0 && cur < end) {
		uint64_t b;

		if (v.start > cur)
			cur = v.start;
		if (cur >= end)
			break;
		r = chunk_end(c, cur, end, &v, &b);
		if (!r)
			r = chunk(c, cur, b, &v);
		if (r)
			return r;
		cur = b;
		if (!v.end)
			break;
		r = v.end <= cur ? vma_at(c, cur, &v) : 1;
	}
	return r < 0 ? r : 0;
}

/* With PAGEMAP_SCAN: its walk counted swap, guard and zero pages and
 * listed the present pages (usage-scan.c); only their entries are read,
 * in windows of at most PM__USAGE_CHUNK pages over pieces at most WIN_GAP pages
 * apart. No VMA list: the
 * pieces say where the pages are, PMD-mapped or not, and their VMA's
 * kind where that matters. */

struct wread {
	struct pm__uctx *c;
	struct pm__guard *g;
	uint64_t w0;
};

static int wpass(void *arg, uint64_t from, uint64_t to)
{
	const struct wread *w = arg;
	const uint64_t ps = w->c->ps;

	return pm__span_read(w->g, w->c->h, from, w->c->e + (from - w->w0) / ps,
			     (size_t)((to - from) / ps));
}

/* The entries of [w0, w1) into c->e, read whole under pm_read's guard
 * (the caller checks the handle once, after every window). */
static int window_entries(struct pm__uctx *c, uint64_t w0, uint64_t w1)
{
	struct pm__guard g;
	struct wread w = { c, &g, w0 };
	int r = pm__guard_init(&g, c->ro.flags, c->ro.max_retries);

	if (r)
		return r;
	if (g.active)
		pm__prefault(c->e, (size_t)((w1 - w0) / c->ps));
	r = pm__guarded(&g, c->h, w0, w1, wpass, &w);
	pm__guard_fini(&g);
	return r;
}

/* Pages that need their physical page are counted in batches of at most
 * this many: their per-page records stay small. Grown to a window's
 * 2,048 pages, they cost page faults to fill and, freed at the end of the
 * call, a heap trim with its TLB flush: 1.1 ms of a 1.2 ms pm_usage of a
 * process with 8 MiB of THPs, where smaps_rollup takes 20 us. */
#define SLOW_BATCH 512

static int slow_cap(struct pm__uctx *c, size_t m);

/* A present page of piece @v whose physical page is needed (or, without
 * the physical pages, a PMD-mapped one), moved to slot m of the chunk's
 * arrays (m <= its own slot: the entries are compacted in place). */
static int slow_page(struct pm__uctx *c, size_t m, uint64_t e, const struct pm__uvma *v, bool huge)
{
	int r = slow_cap(c, m + 1);

	if (r)
		return r;
	c->e[m] = e;
	c->cat[m] = (huge ? PM_CAT_HUGE : 0) | (e & PM_ENTRY_FILE ? PM_CAT_FILE : 0);
	c->pv[m] = *v;
	c->pfn[m] = c->kp ? pm_entry_pfn(e) : 0;
	/* kpageflags costs twice kpagecount: read where needed */
	c->flags[m] = c->kp && pm__usage_need_flags(c, e, c->cat[m], v) ? 0 : PM__NOT_READ;
	return 0;
}

/* The first @m pages of the chunk's arrays, from their physical pages
 * (or, without them, from PAGEMAP_SCAN's categories). */
static int slow_count(struct pm__uctx *c, size_t m)
{
	int r = c->kp ? pm__usage_kp_records(c, m) : 0;

	for (size_t i = 0; i < m && !r; i++) {
		if (c->kp)
			r = pm__usage_page_kp(c, i, c->pv[i].a);
		else
			pm__usage_page_scan(c, i, &c->pv[i]);
	}
	return r;
}

/* Window [w0, w1) over pieces p[0, n), the first from w0. Present 4K
 * pages mapped once by an anonymous mapping (the common case) count
 * straight away: full Pss, Uss, mapcount 1 (mapped_once() in usage-kp.c);
 * the others with their physical pages' records. */
static int window_count(struct pm__uctx *c, uint64_t w0, uint64_t w1, const struct pm__upiece *p,
			size_t n)
{
	const uint64_t ps = c->ps, full = ps << PM__PSS_SHIFT;
	size_t m = 0;
	int r = 0;

	for (size_t k = 0; k < n && !r; k++) {
		const uint64_t s = p[k].start > w0 ? p[k].start : w0, t = p[k].end < w1 ? p[k].end : w1;
		const struct pm__uvma v = { p[k].start, p[k].end,    p[k].anon, false,
					    &c->acc[p[k].acc], -1, PM__PROBE_NONE };
		struct pm__usage_acc *a = v.a;
		uint64_t once = 0;

		for (size_t i = (size_t)((s - w0) / ps), z = (size_t)((t - w0) / ps); i < z && !r; i++) {
			const uint64_t e = c->e[i];

			if (!pm_entry_present(e))
				continue; /* gone since the scan */
			if (!c->kp_decided)
				pm__usage_kp_decide(c, e);
			if (p[k].huge || (c->kp && !pm__usage_once(e))) {
				r = slow_page(c, m++, e, &v, p[k].huge);
				if (!r && m == SLOW_BATCH) {
					r = slow_count(c, m);
					m = 0;
				}
			} else if (!c->kp) {
				a->u.rss += ps;
				pm__usage_add_shared(a, ps, pm_entry_exclusive(e));
			} else {
				once++;
			}
		}
		a->u.rss += once * ps;
		a->u.uss += once * ps;
		a->u.pss += once * full;
		a->u.pss_anon += once * full;
	}
	return r ? r : slow_count(c, m);
}

static int window(struct pm__uctx *c, uint64_t w0, uint64_t w1, const struct pm__upiece *p,
		  size_t n)
{
	int r = window_entries(c, w0, w1);

	return r ? r : window_count(c, w0, w1, p, n);
}

/* The window from @from in piece p[i] (of n): its end, and in *k the
 * piece after its last. */
static uint64_t window_end(const struct pm__uctx *c, const struct pm__upiece *p, size_t n, size_t i,
			   uint64_t from, size_t *k)
{
	const uint64_t max = PM__USAGE_CHUNK * c->ps;
	uint64_t w1 = p[i].end - from > max ? from + max : p[i].end;

	*k = i + 1;
	if (w1 == p[i].end)
		while (*k < n && p[*k].start - w1 <= WIN_GAP * c->ps && p[*k].end - from <= max)
			w1 = p[(*k)++].end;
	return w1;
}

static int ctx_pages(struct pm__uctx *c, size_t pages);

/* The pieces window by window, with buffers for the longest window (a
 * small process needs far less than PM__USAGE_CHUNK pages: pm-dump --all makes a
 * call per process). */
static int walk_pieces(struct pm__uctx *c, const struct pm__upiece *p, size_t n)
{
	size_t i = 0, k, most = 0;
	uint64_t from = n ? p[0].start : 0;
	int r;

	while (i < n) {
		uint64_t w1 = window_end(c, p, n, i, from, &k);

		if ((w1 - from) / c->ps > most)
			most = (size_t)((w1 - from) / c->ps);
		if (w1 < p[i].end)
			from = w1;
		else if ((i = k) < n)
			from = p[i].start;
	}
	r = ctx_pages(c, most);
	for (i = 0, from = n ? p[0].start : 0; i < n && !r;) {
		uint64_t w1 = window_end(c, p, n, i, from, &k);

		r = window(c, from, w1, p + i, k - i);
		if (w1 < p[i].end)
			from = w1; /* a piece longer than a window */
		else if ((i = k) < n)
			from = p[i].start;
	}
	return r;
}

static int ctx_init(struct pm__uctx *c, struct pm_handle *h, const struct pm_usage_opts *opts,
		    size_t nacc)
{
	const struct pm__kernel *k = pm__kernel();
	const uint64_t read_known = PM_READ_F_SNAPSHOT | PM_READ_F_BEST_EFFORT;
	const uint64_t scan_cats = PM_CAT_HUGE | PM_CAT_PFNZERO | PM_CAT_FILE;
	int r = pm__opts_check(opts, sizeof(struct pm_usage_opts));

	memset(c, 0, sizeof(*c));
	for (int i = 0; i < PM__KPAGE_FILES; i++)
		c->kf.fd[i] = -1;
	if (r)
		return r;
	c->want = PM__OPT(opts, struct pm_usage_opts, fields, 0);
	c->want = c->want ? c->want : PM_USAGE_ALL;
	c->ro.size = sizeof(c->ro);
	c->ro.flags = PM__OPT(opts, struct pm_usage_opts, read_flags, 0);
	c->ro.max_retries = PM__OPT(opts, struct pm_usage_opts, max_retries, 0);
	c->cache = (struct pm_usage_cache *)(uintptr_t)PM__OPT(opts, struct pm_usage_opts, cache, 0);
	if ((c->want & ~PM_USAGE_ALL) || (c->ro.flags & ~read_known))
		return -EINVAL;
	r = pm__handle_ready(h);
	if (r)
		return r;
	c->h = h;
	c->ps = k->page_size;
	c->avail = PM_USAGE_SWAP;
	if (pm__feature(PM_FEAT_GUARD_REGIONS) == 1)
		c->avail |= PM_USAGE_GUARD;
	if ((pm__scan_categories() & scan_cats) == scan_cats &&
	    (c->want & (PM__NEED_CLASS | PM_USAGE_ANON_THP))) {
		c->scan = true;
		c->avail |= PM_USAGE_ANON_THP | (PM__NEED_CLASS & ~PM__NEED_KPAGE);
	}
	c->acc = calloc(nacc ? nacc : 1, sizeof(*c->acc));
	if (!c->acc)
		return -ENOMEM;
	pm__vcursor_init(&c->vc, h);
	return 0;
}

/*
 * A whole range without a VMA list (pm_usage): PAGEMAP_SCAN walks every
 * VMA as a pagemap read does, at about the cost of smaps_rollup's walk
 * on 10,000 small VMAs, so the entries come first, read blind from the
 * VMA PROCMAP_QUERY finds over windows that double while the mappings
 * continue (gaps read as empty entries), and PAGEMAP_SCAN asks only
 * about the pages the entries leave open: a present page neither
 * exclusive nor page cache may be a zero page or a VM_PFNMAP page (which
 * smaps skips and the scan does not report), and a PMD-aligned block of
 * present pages (with visible PFNs, consecutive from an aligned one) may
 * be one PMD mapping. Every other present page has a struct page of its
 * own mapped by a PTE.
 */
#define RA_PAGES 512
/* at most per window: 32 KiB of entries and categories, reused (fresh
 * memory costs a fault per page; 2048 entries already amortize a read) */
#define BLIND_PAGES 2048

/* PAGEMAP_SCAN over pages [lo, hi) of window w0: their categories, with
 * PRESENT set on the pages it reports (cat[] zeroed first). */
static int blind_scan(struct pm__uctx *c, uint64_t w0, size_t lo, size_t hi)
{
	const struct pm__scan_req q = {
		.anyof = PM_CAT_PRESENT,
		.ret = PM_CAT_PRESENT | PM_CAT_PFNZERO | PM_CAT_HUGE,
	};
	struct pm_region vec[SCAN_VEC];
	const uint64_t ps = c->ps, end = w0 + hi * ps;

	memset(c->cat + lo, 0, (hi - lo) * sizeof(*c->cat));
	for (uint64_t cur = w0 + lo * ps; cur < end;) {
		struct pm__scan_out o;
		int r;

		pm__out_init(&o, vec, SCAN_VEC, 0);
		r = pm__scan_native(c->h, cur, end, &q, &o);
		if (r)
			return r;
		for (size_t j = 0; j < o.n; j++)
			for (uint64_t p = vec[j].start; p < vec[j].end; p += ps)
				c->cat[(p - w0) / ps] = vec[j].categories;
		if (!o.done)
			break;
		cur = o.walk_end;
	}
	return 0;
}

/* Present page i of window w0 into the pieces, PMD-mapped or not (a
 * PMD-mapped one with its VMA's kind, asked once per VMA). */
static int blind_piece(struct pm__uctx *c, struct pm__upieces *p, uint64_t w0, size_t i, bool huge,
		       struct pm_vma *hv)
{
	const uint64_t va = w0 + i * c->ps;

	if (huge && (!hv->end || va >= hv->end || va < hv->start)) {
		int r = pm__vcursor_next(&c->vc, va, hv, false);

		if (r <= 0 || hv->start > va)
			return r < 0 ? r : -EIO; /* the scan saw a page of a VMA */
	}
	return pm__upieces_add(p, va, va + c->ps, 0, huge, huge && !hv->inode);
}

/* One window [w0, w1), @first or @last of the range: entries, swap and
 * guard pages from them, the scan where they leave a question, then the
 * present pages as pieces. */
static int blind_window(struct pm__uctx *c, uint64_t w0, uint64_t w1, bool first, bool last,
			struct pm__upieces *p)
{
	const uint64_t ps = c->ps;
	const size_t n = (size_t)((w1 - w0) / ps), pmd = (size_t)pm__pmd_pages();
	struct pm__usage_acc *a = &c->acc[0];
	struct pm_vma hv = { 0 };
	size_t lo = n, hi = 0;
	int r = window_entries(c, w0, w1);

	for (size_t i = 0; i < n && !r; i++) {
		const uint64_t e = c->e[i];

		if (!absent_page(a, e, ps) && !pm_entry_exclusive(e) && !(e & PM_ENTRY_FILE)) {
			lo = i < lo ? i : lo;
			hi = i + 1;
		}
	}
	/* the window's PMD-aligned blocks, and the part of one that the
	 * range's start or end cuts (a window's other ends are a VMA's, or
	 * PMD-aligned) */
	for (size_t i = 0, z, k; i < n && !r; i = z) {
		z = pmd_block(c, w0, i, n, &k);
		if ((z - i == pmd || (!i && first) || (z == n && last)) && maybe_pmd(c, i, z, k)) {
			lo = i < lo ? i : lo;
			hi = z > hi ? z : hi;
		}
	}
	if (!r && lo < hi)
		r = blind_scan(c, w0, lo, hi);
	p->n = 0;
	for (size_t i = 0; i < n && !r; i++) {
		uint64_t cat = 0;

		if (!pm_entry_present(c->e[i]))
			continue;
		if (i >= lo && i < hi) {
			cat = c->cat[i];
			if (!(cat & PM_CAT_PRESENT))
				continue; /* VM_PFNMAP, or gone since the read */
			if (cat & PM_CAT_PFNZERO) {
				a->u.zero += ps;
				continue;
			}
		}
		r = blind_piece(c, p, w0, i, cat & PM_CAT_HUGE, &hv);
	}
	return r ? r : window_count(c, w0, w1, p->v, p->n);
}

/* After an empty window: the first page in [from, to) that PAGEMAP_SCAN
 * sees present or swapped (guard pages report swapped), or @to. A sparse
 * reservation of terabytes is then not read 2,048 entries at a time (16
 * TiB: 2 million preads, 13 s). */
static int next_used(struct pm__uctx *c, uint64_t from, uint64_t to, uint64_t *next)
{
	const struct pm__scan_req q = { .anyof = PM_CAT_PRESENT | PM_CAT_SWAPPED,
					.ret = PM_CAT_PRESENT };
	struct pm_region v;
	struct pm__scan_out o;
	int r;

	pm__out_init(&o, &v, 1, 0);
	r = pm__scan_native(c->h, from, to, &q, &o);
	if (!r)
		*next = o.n ? v.start : to;
	return r;
}

static bool window_empty(const struct pm__uctx *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (c->e[i])
			return false;
	return true;
}

static int walk_blind(struct pm__uctx *c, uint64_t start, uint64_t end)
{
	const uint64_t ps = c->ps, max = BLIND_PAGES * ps, pmd = pm__pmd_pages() * ps;
	struct pm__upieces p = { 0 };
	uint64_t cur = start, ra = RA_PAGES * ps;
	int r = ctx_pages(c, BLIND_PAGES);

	while (cur < end && !r) {
		struct pm_vma v;
		uint64_t w1;

		r = pm__vcursor_next(&c->vc, cur, &v, false);
		if (r <= 0)
			break;
		if (v.start > cur && v.start - cur > WIN_GAP * ps) {
			cur = v.start; /* a gap worth a read of its own */
			ra = RA_PAGES * ps;
		}
		if (cur >= end)
			break;
		w1 = end - cur > ra ? cur + ra : end;
		if (w1 < v.end)
			w1 = end - cur > max ? cur + max : end;
		if (w1 > v.end && v.end > cur + ra)
			w1 = v.end;
		/* a PMD mapping must lie in one window to be seen whole */
		if (w1 < end && (w1 & ~(pmd - 1)) > cur)
			w1 &= ~(pmd - 1);
		r = blind_window(c, cur, w1, cur == start, w1 == end, &p);
		if (!r && w1 < end && v.end > w1 + max && window_empty(c, (size_t)((w1 - cur) / ps))) {
			uint64_t next;

			r = next_used(c, w1, v.end < end ? v.end : end, &next);
			/* from its PMD's start: a PMD mapping lies in one window */
			if (!r && (next & ~(pmd - 1)) > w1)
				w1 = next & ~(pmd - 1);
		}
		cur = w1;
		ra = 2 * ra < max ? 2 * ra : max;
	}
	free(p.v);
	return r > 0 ? 0 : r; /* > 0: the loop ended at a VMA past the range */
}

static int grow(void *pp, size_t n, size_t size)
{
	void **p = pp, *q = realloc(*p, n * size);

	if (!q)
		return -ENOMEM;
	*p = q;
	return 0;
}

/* Buffers for windows of @pages pages, grown as windows grow (fresh
 * memory costs a page fault per page: the per-page records of the
 * physical pages are kept to the pages that need them, slow_cap()); cat
 * starts zeroed (the walk without PAGEMAP_SCAN has no categories). */
static int ctx_pages(struct pm__uctx *c, size_t pages)
{
	const size_t n = pages ? pages : 1;

	if (!c->kbuf && grow(&c->kbuf, PM__KP_WINDOW, sizeof(*c->kbuf)))
		return -ENOMEM;
	if (n <= c->cap)
		return 0;
	if (grow(&c->e, n, sizeof(*c->e)) || grow(&c->cat, n, sizeof(*c->cat)))
		return -ENOMEM;
	memset(c->cat + c->cap, 0, (n - c->cap) * sizeof(*c->cat));
	c->cap = n;
	return 0;
}

/* Room for @m pages' physical-page records. */
static int slow_cap(struct pm__uctx *c, size_t m)
{
	size_t n = c->scap ? c->scap : SLOW_BATCH;

	if (m <= c->scap)
		return 0;
	while (n < m)
		n *= 2;
	if (grow(&c->pfn, n, sizeof(*c->pfn)) || grow(&c->flags, n, sizeof(*c->flags)) ||
	    grow(&c->count, n, sizeof(*c->count)) || grow(&c->cpfn, n, sizeof(*c->cpfn)) ||
	    grow(&c->pv, n, sizeof(*c->pv)) || grow(&c->idx, n, sizeof(*c->idx)) ||
	    grow(&c->rlen, n, sizeof(*c->rlen)))
		return -ENOMEM;
	c->scap = n;
	return 0;
}

static void ctx_fini(struct pm__uctx *c)
{
	if (c->h)
		pm__vcursor_fini(&c->vc);
	if (!c->kf_shared)
		pm__kpf_close(&c->kf);
	free(c->acc);
	free(c->e);
	free(c->cat);
	free(c->pfn);
	free(c->flags);
	free(c->count);
	free(c->cpfn);
	free(c->pv);
	free(c->idx);
	free(c->rlen);
	free(c->kbuf);
}

static int out_check(const struct pm_usage *out)
{
	/* at least size and valid; the cap keeps a bad size from having us
	 * clear a caller's memory far beyond the struct */
	return !out || pm__out_size_check(out->size, 2 * sizeof(uint64_t)) || out->size > 4096
		       ? -EINVAL
		       : 0;
}

/* Every page of [start, end), or of the list's VMAs, into c->acc. */
static int count_pages(struct pm__uctx *c, uint64_t start, uint64_t end)
{
	struct pm__upieces present = { 0 };
	int r;

	if (!c->scan) {
		r = ctx_pages(c, PM__USAGE_CHUNK);
		if (!r)
			r = slow_cap(c, PM__USAGE_CHUNK);
		if (!r)
			r = walk(c, start, end);
	} else if (!c->list) {
		r = walk_blind(c, start, end);
	} else {
		r = pm__usage_scan(c->h, start, end, c->list, c->acc, &present);
		if (!r)
			r = walk_pieces(c, present.v, present.n);
		free(present.v);
	}
	return r;
}

/* The count, then the identity check (the walk without PAGEMAP_SCAN
 * reads through pm__read, which checks). */
static int count_checked(struct pm__uctx *c, uint64_t start, uint64_t end)
{
	int r = count_pages(c, start, end);

	return r || !c->scan ? r : pm__handle_check(c->h);
}

/*
 * Where the guard is on, one token pair around the whole count of another
 * process: a certificate per call, where each window of entries took a
 * pair of its own (pm-dump --all --pss 1.55x guard off on 6.18 with
 * LIBPAGEMAP_ASSUME_RETRY_FIX=0, --all 1.18x in the 6.1 VM). The reads
 * inside are neither guarded nor checked one by one; the closing token's
 * stat text is the identity check. A token that moved takes the counts
 * back, and the count is made again with every read under the guard's
 * own rules. A process reading itself keeps those throughout: its own
 * buffers fault in during the count and would move its token.
 */
static int count_bracketed(struct pm__uctx *c, uint64_t start, uint64_t end, size_t nacc)
{
	const uint64_t flags = c->ro.flags;
	struct pm__token before, after;
	int r;

	if (c->h->self || !pm__guard_wanted(flags) || pm__token_open(c->h, &before))
		return count_checked(c, start, end);
	c->ro.flags = flags | PM__READ_UNGUARDED | PM__READ_UNCHECKED;
	r = count_pages(c, start, end);
	c->ro.flags = flags;
	if (r)
		return r;
	if (!pm__token_after(c->h, &after) && pm__token_certifies(&before, &after))
		return after.ident != 1 ? after.ident : pm__handle_check(c->h);
	memset(c->acc, 0, nacc * sizeof(*c->acc));
	c->li = 0;
	c->head_end = 0;
	pm__vcursor_fini(&c->vc);
	pm__vcursor_init(&c->vc, c->h);
	return count_checked(c, start, end);
}

/* Count [start, end), or the VMAs of @l, through PAGEMAP_SCAN alone when
 * it answers every field asked for (usage-scan.c), else page by page. */
static int count_all(struct pm__uctx *c, uint64_t start, uint64_t end, size_t nacc)
{
	const uint64_t cats = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE | PM_CAT_PFNZERO |
			      PM_CAT_HUGE | PM_CAT_GUARD;
	int r = 1;

	if (!(c->want & ~PM__USAGE_SCAN_FIELDS) && !c->ro.flags &&
	    (pm__scan_categories() & cats) == cats) {
		/* asking whether PFNs are visible costs a probe: only then */
		r = pm__usage_scan(c->h, start, end, c->list, c->acc, NULL);
		if (r < 0)
			return r;
		if (!r || !pm__usage_kp_allowed(c))
			return pm__handle_check(c->h); /* as pm__read does for its answers */
		memset(c->acc, 0, nacc * sizeof(*c->acc));
	}
	r = count_bracketed(c, start, end, nacc);
	/* no present page: the fields are 0, valid as far as the caller's
	 * rights go */
	if (!r && !c->kp_decided)
		pm__usage_kp_probe(c);
	return r;
}

/* Write one answer: the fields asked for that every page decided. */
static void put(const struct pm__uctx *c, const struct pm__usage_acc *a, struct pm_usage *out, uint64_t size)
{
	struct pm_usage u = a->u;
	uint64_t vals[PM__USAGE_FIELDS];

	u.valid = c->want & c->avail & ~a->unknown;
	memcpy(vals, &u.rss, sizeof(vals));
	for (unsigned i = 0; i < PM__USAGE_FIELDS; i++)
		if (!(u.valid & (1ULL << i)))
			vals[i] = 0;
	memcpy(&u.rss, vals, sizeof(vals));
	/* fields of a newer caller's struct that this library does not know */
	if (size > sizeof(*out))
		memset((char *)out + sizeof(*out), 0, (size_t)(size - sizeof(*out)));
	out->size = size;
	pm__out_copy(out, &u, sizeof(u));
}

PM_EXPORT int pm_usage(struct pm_handle *h, uint64_t start, uint64_t end,
		       const struct pm_usage_opts *opts, struct pm_usage *out)
{
	const struct pm__kernel *k = pm__kernel();
	struct pm__uctx c;
	int r;

	if (end > k->user_top)
		end = k->user_top;
	if (!h || out_check(out) || !pm__range_ok(start, end))
		return (int)pm__ret(-EINVAL);
	r = ctx_init(&c, h, opts, 1);
	if (!r)
		r = count_all(&c, start, end, 1);
	if (!r)
		put(&c, &c.acc[0], out, out->size);
	ctx_fini(&c);
	return (int)pm__ret(r);
}

PM_EXPORT long pm_usage_vmas(struct pm_handle *h, const struct pm_vma_list *l,
			     const struct pm_usage_opts *opts, struct pm_usage *out)
{
	const size_t n = pm_vma_count(l);
	struct pm__uctx c;
	uint64_t stride;
	long r;

	if (!h || !l || out_check(out))
		return pm__ret(-EINVAL);
	stride = out->size;
	r = ctx_init(&c, h, opts, n);
	c.list = l;
	/* one walk over the span of the list, each page counted for its VMA */
	if (!r && n)
		r = count_all(&c, l->v[0].start, l->v[n - 1].end, n);
	for (size_t i = 0; i < n && !r; i++)
		put(&c, &c.acc[i], (struct pm_usage *)((char *)out + i * stride), stride);
	ctx_fini(&c);
	return r ? pm__ret(r) : (long)n;
}
