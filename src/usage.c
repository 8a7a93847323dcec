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
 * there. AnonHugePages counts PMD-mapped anonymous folios.
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
 */
#include "internal.h"
#include "kpages.h"
#include "scan.h"
#include "usage.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK 8192   /* pages per pagemap read */
#define SCAN_VEC 512 /* regions per PAGEMAP_SCAN call */
#define PSS_SHIFT 12
/* Physical pages are scattered. Measured on the development machine (a
 * 6.18 guest): a pread of these files costs ~5 us, a record ~130 ns, so
 * PFNs this close share one read. */
#define KP_GAP 32
#define KP_WINDOW 4096 /* records per pread at most */
#define NOT_READ UINT64_MAX /* a flags record not read (no flags are all set) */

#define F(b) (1ULL << PM_KPF_##b)
#define PSS_SPLIT (PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE | PM_USAGE_PSS_SHMEM)
#define PM__USAGE_FIELDS 12 /* rss .. guard, in PM_USAGE_* bit order */

/* fields that need kpageflags and kpagecount */
#define NEED_KPAGE (PM_USAGE_PSS | PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE | PM_USAGE_PSS_SHMEM)
/* fields that need to know which present pages smaps counts */
#define NEED_CLASS                                                                        \
	(NEED_KPAGE | PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_HUGETLB | \
	 PM_USAGE_ZERO)

/* The VMA a page is in, as far as the count goes. */
struct vinfo {
	uint64_t start, end; /* end 0: no VMA at or above the address */
	bool anon;           /* no file: only these hold anonymous PMD mappings */
	bool pfnmap;         /* the vDSO data pages: smaps skips VM_PFNMAP */
	struct pm__usage_acc *a;
};

struct uctx {
	struct pm_handle *h;
	struct pm_read_opts ro;
	uint64_t want, avail;
	uint64_t ps;
	bool kp, scan, old_mapcount;
	bool kp_decided; /* kp set at the first present entry (kp_decide()) */
	struct pm__kpf kf;
	struct pm__vcursor vc;
	const struct pm_vma_list *list; /* pm_usage_vmas: pages count for its VMAs */
	size_t li;
	struct pm__usage_acc *acc;
	/* per page of a chunk */
	uint64_t *e, *pfn, *cat, *flags, *count, *cpfn, *kbuf;
	struct vinfo *pv;
	size_t *idx, *rlen; /* kp_sparse()'s runs: first page, length */
	size_t cap, scap;   /* pages e and cat hold; pages the others hold */
	uint64_t head_pfn, head_end, head_flags; /* the last compound head found */
};

/* The VMA holding @va or the next one into *v: 1, 0 (none), -errno. */
static int vma_at(struct uctx *c, uint64_t va, struct vinfo *v)
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
	v->pfnmap = !strncmp(m.name, "[vvar", 5);
	return 1;
}

/* Runs packed as (first page << RUN_SHIFT | length), by their first PFN;
 * both below 1 << RUN_SHIFT, and the pair fits a 32-bit size_t. */
#define RUN_SHIFT 16
_Static_assert(CHUNK < (1 << RUN_SHIFT) && KP_WINDOW < (1 << RUN_SHIFT), "run packing");

static int by_pfn(const void *x, const void *y, void *arg)
{
	const uint64_t *pfn = arg;
	const uint64_t a = pfn[*(const size_t *)x >> RUN_SHIFT], b = pfn[*(const size_t *)y >> RUN_SHIFT];

	return a < b ? -1 : a > b;
}

/* Records of file @f for the pages of the chunk with pfn[i] != 0 into
 * out[i]. Pages in a row with consecutive PFNs (a large folio, or pages
 * allocated together) form runs; the runs are sorted by PFN (unless they
 * already are) and read in windows of nearby ones: a sort of the runs
 * rather than the pages, which for 2 MiB THPs is 512 times fewer. */
static int kp_sparse(struct uctx *c, int f, const uint64_t *pfn, size_t n, uint64_t *out)
{
	uint64_t *buf = c->kbuf;
	size_t m = 0;
	bool sorted = true;

	for (size_t i = 0, j; i < n; i = j) {
		j = i + 1;
		if (!pfn[i])
			continue;
		while (j < n && j - i < KP_WINDOW && pfn[j] == pfn[j - 1] + 1)
			j++;
		sorted &= !m || pfn[c->idx[m - 1]] < pfn[i];
		c->idx[m] = i;
		c->rlen[m++] = j - i;
	}
	if (!sorted) {
		/* the lengths travel with the runs: sort (start, length) pairs */
		for (size_t j = 0; j < m; j++)
			c->rlen[j] |= c->idx[j] << RUN_SHIFT;
		qsort_r(c->rlen, m, sizeof(*c->rlen), by_pfn, (void *)pfn);
		for (size_t j = 0; j < m; j++) {
			c->idx[j] = c->rlen[j] >> RUN_SHIFT;
			c->rlen[j] &= ((size_t)1 << RUN_SHIFT) - 1;
		}
	}
	for (size_t j = 0, k; j < m; j = k) {
		const uint64_t lo = pfn[c->idx[j]];
		uint64_t hi = lo + c->rlen[j];
		int r;

		for (k = j + 1; k < m; k++) {
			const uint64_t p = pfn[c->idx[k]], e = p + c->rlen[k];

			if (p > hi + KP_GAP || (e > hi ? e : hi) - lo > KP_WINDOW)
				break;
			hi = e > hi ? e : hi;
		}
		r = pm__kpf_pread(&c->kf, f, lo, buf, (size_t)(hi - lo));
		if (r)
			return r;
		for (size_t q = j; q < k; q++)
			for (size_t i = c->idx[q], z = i + c->rlen[q]; i < z; i++)
				out[i] = buf[pfn[i] - lo];
	}
	return 0;
}

/* The folio's flags for page i of the chunk: a tail page's head's (6.1
 * reports ANON, SWAPBACKED and ZERO_PAGE on the head only). The head of
 * a naturally aligned folio is the first compound head at an alignment
 * below the page. */
static int folio_flags(struct uctx *c, size_t i, uint64_t *out)
{
	const uint64_t pfn = c->pfn[i];

	*out = c->flags[i];
	if (!(*out & F(COMPOUND_TAIL)))
		return 0;
	if (pfn >= c->head_pfn && pfn < c->head_end) {
		*out = c->head_flags;
		return 0;
	}
	/* up to PMD-sized folios */
	for (uint64_t sz = 2; sz <= pm__pmd_pages(); sz <<= 1) {
		uint64_t cand = pfn & ~(sz - 1), d = pfn - cand, f;

		if (d <= i && c->pfn[i - d] == cand && c->flags[i - d] != NOT_READ) {
			f = c->flags[i - d];
		} else {
			int r = pm__kpf_pread(&c->kf, 0, cand, &f, 1);

			if (r)
				return r;
		}
		if (f & F(COMPOUND_HEAD)) {
			c->head_pfn = cand;
			c->head_end = cand + sz;
			c->head_flags = f;
			*out = f;
			return 0;
		}
	}
	return 0;
}

/* Whether smaps counts the page Private: 1, 0, or -1 when this kernel's
 * rule cannot be told from here. The mapcount and the exclusive bit agree
 * except on large folios: with per-page mapcounts a PMD mapping carries
 * the head's exclusive bit for all its pages (the mapcount is right);
 * with CONFIG_NO_PAGE_MAPCOUNT (6.15+) the bit is the folio's answer and
 * the mapcount an average (the bit is right), and there only they can
 * differ for a PTE-mapped page. @flags NOT_READ: maybe a large folio. */
static int private_page(const struct uctx *c, uint64_t e, uint64_t count, uint64_t flags,
			uint64_t cat)
{
	const bool by_count = count < 2, by_bit = pm_entry_exclusive(e);

	if (by_count == by_bit || !(flags & (F(COMPOUND_HEAD) | F(COMPOUND_TAIL))) ||
	    c->old_mapcount)
		return by_count;
	if (c->scan && !(cat & PM_CAT_HUGE))
		return by_bit;
	return -1;
}

static void add_shared(struct pm__usage_acc *a, uint64_t ps, int priv)
{
	if (priv < 0)
		a->unknown |= PM_USAGE_USS | PM_USAGE_SHARED;
	else if (priv)
		a->u.uss += ps;
	else
		a->u.shared += ps;
}

/* Whether a present page's flags are needed: PAGEMAP_SCAN and the entry
 * tell an anonymous page that is not a zero page or hugetlb without
 * them; file pages need them for shmem against page cache, when asked
 * (Pss itself takes the mapcount alone, Uss and Shared the mapcount and
 * the exclusive bit, see private_page()). */
static bool need_flags(const struct uctx *c, uint64_t e, uint64_t cat, const struct vinfo *v)
{
	return !c->scan || ((e & PM_ENTRY_FILE) && (c->want & PSS_SPLIT)) ||
	       ((cat & PM_CAT_HUGE) && !v->anon);
}

/*
 * Whether page i's mapcount is 1 without reading it: an anonymous page
 * the entry calls exclusive, outside any PMD mapping. Its exclusive bit is
 * then the page's own mapcount == 1 (per-page mapcounts), or, with
 * CONFIG_NO_PAGE_MAPCOUNT (6.15+), "no other mm maps the folio", where
 * kpagecount's average over the folio is at most 1 because one mm maps an
 * anonymous page once. A PMD mapping carries its head page's bit (see
 * private_page()); without PAGEMAP_SCAN the flags tell a large folio.
 */
static bool mapped_once(const struct uctx *c, size_t i)
{
	const uint64_t e = c->e[i];

	if (!c->pfn[i] || !pm_entry_exclusive(e) || (e & PM_ENTRY_FILE))
		return false;
	if (c->scan)
		return !(c->cat[i] & PM_CAT_HUGE);
	return c->flags[i] != NOT_READ &&
	       !(c->flags[i] & (F(COMPOUND_HEAD) | F(COMPOUND_TAIL) | F(NOPAGE)));
}

/* A present page, with the physical page's records. */
static int page_kp(struct uctx *c, size_t i, struct pm__usage_acc *a)
{
	const uint64_t ps = c->ps, e = c->e[i], cat = c->cat[i], count = c->count[i];
	uint64_t ff, pss;
	int r;

	if (c->flags[i] == NOT_READ) {
		/* as need_flags() decided: anonymous (a zero page is not
		 * here: PAGEMAP_SCAN counted it), or a page-cache or shmem
		 * page where nobody asked which */
		ff = e & PM_ENTRY_FILE ? 0 : F(ANON);
		if (e & PM_ENTRY_FILE)
			a->unknown |= PSS_SPLIT;
	} else {
		if (c->flags[i] & F(NOPAGE)) {
			a->unknown |= NEED_CLASS;
			return 0;
		}
		r = folio_flags(c, i, &ff);
		if (r)
			return r;
		if ((c->flags[i] | ff) & F(ZERO_PAGE)) {
			a->u.zero += ps;
			return 0;
		}
		if (ff & F(HUGE)) {
			a->u.hugetlb += ps;
			return 0;
		}
	}
	a->u.rss += ps;
	pss = count >= 2 ? (ps << PSS_SHIFT) / count : ps << PSS_SHIFT;
	a->u.pss += pss;
	if (ff & F(ANON))
		a->u.pss_anon += pss;
	else if (ff & F(SWAPBACKED))
		a->u.pss_shmem += pss;
	else
		a->u.pss_file += pss;
	add_shared(a, ps, private_page(c, e, count, c->flags[i], cat));
	if ((cat & PM_CAT_HUGE) && (ff & F(ANON)))
		a->u.anon_thp += ps;
	return 0;
}

/* A present page, from PAGEMAP_SCAN's categories and the entry alone. */
static void page_scan(struct uctx *c, size_t i, const struct vinfo *v)
{
	const uint64_t ps = c->ps, cat = c->cat[i];
	struct pm__usage_acc *a = v->a;

	if (cat & PM_CAT_PFNZERO) {
		a->u.zero += ps;
	} else if (!(cat & PM_CAT_HUGE)) {
		a->u.rss += ps;
		add_shared(a, ps, pm_entry_exclusive(c->e[i]));
	} else if (v->anon && !(cat & PM_CAT_FILE)) {
		/* the exclusive bit of a PMD mapping is its head page's */
		a->u.rss += ps;
		a->u.anon_thp += ps;
		a->unknown |= PM_USAGE_USS | PM_USAGE_SHARED;
	} else {
		/* hugetlb, or a file or shmem THP: only the page knows */
		a->unknown |= PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_HUGETLB;
	}
}

/* The physical pages' records of pages [0, n) of the chunk's arrays:
 * flags where flags[i] is not NOT_READ, mapcounts where mapped_once()
 * does not tell them. */
static int kp_records(struct uctx *c, size_t n)
{
	int r;

	for (size_t i = 0; i < n; i++)
		c->idx[i] = c->flags[i] == NOT_READ ? 0 : c->pfn[i];
	memcpy(c->count, c->idx, n * sizeof(*c->count));
	r = kp_sparse(c, 0, c->count, n, c->flags);
	for (size_t i = 0; i < n && !r; i++) {
		c->cpfn[i] = mapped_once(c, i) ? 0 : c->pfn[i];
		c->count[i] = 1;
	}
	return r ? r : kp_sparse(c, 1, c->cpfn, n, c->count);
}

/* Whether the handle shows PFNs, told by its first present entry (PFN 0
 * is what a hidden one reads: pm_kpages' rule), rather than by
 * pm_has_feature(), which maps, faults and reads a page of this process
 * per call and asks about the caller's credentials, not those the
 * handle's pagemap was opened with; the physical pages' files opened when
 * it does. */
static void kp_decide(struct uctx *c, uint64_t e)
{
	c->kp_decided = true;
	if ((c->want & NEED_CLASS) && pm_entry_pfn(e) &&
	    pm__kpf_open(&c->kf, PM_KPAGE_FLAGS | PM_KPAGE_COUNT) == 0) {
		c->kp = true;
		c->avail |= NEED_CLASS;
	}
}

/* Without PAGEMAP_SCAN, pages [a, b): one pagemap read, the physical
 * pages' records, then each page counted for the VMA it is in (*v moves
 * along). */
static int chunk(struct uctx *c, uint64_t a, uint64_t b, struct vinfo *v)
{
	const size_t n = (size_t)((b - a) / c->ps);
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
		if (!v->end || va < v->start)
			c->pv[i].a = NULL; /* not in a VMA: the kernel has no page there */
		c->pfn[i] = 0;
		c->flags[i] = NOT_READ;
		if (!c->kp_decided && c->pv[i].a && pm_entry_present(e))
			kp_decide(c, e);
		if (c->kp && c->pv[i].a && pm_entry_present(e) && !v->pfnmap) {
			c->pfn[i] = pm_entry_pfn(e);
			/* kpageflags costs twice kpagecount: read where needed */
			if (need_flags(c, e, c->cat[i], v))
				c->flags[i] = 0;
		}
	}
	if (c->kp) {
		r = kp_records(c, n);
		if (r)
			return r;
	}
	for (size_t i = 0; i < n && !r; i++) {
		const uint64_t e = c->e[i];
		const struct vinfo *pv = &c->pv[i];
		struct pm__usage_acc *acc = pv->a;

		if (!acc)
			continue;
		if (pm_entry_guard(e)) {
			acc->u.guard += c->ps;
		} else if (!pm_entry_present(e)) {
			if (pm_entry_swapped(e))
				acc->u.swap += c->ps;
		} else if (pv->pfnmap) {
			continue;
		} else if (c->kp) {
			r = page_kp(c, i, acc);
		} else {
			acc->unknown |= NEED_CLASS;
		}
	}
	return r;
}

/* Without PAGEMAP_SCAN, count the pages of [start, end), read in chunks
 * that skip the gaps between VMAs and span small VMAs. */
static int walk(struct uctx *c, uint64_t start, uint64_t end)
{
	struct vinfo v;
	uint64_t cur = start;
	int r = vma_at(c, cur, &v);

	while (r > 0 && cur < end) {
		uint64_t b;

		if (v.start > cur)
			cur = v.start;
		if (cur >= end)
			break;
		b = end - cur > CHUNK * c->ps ? cur + CHUNK * c->ps : end;
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
 * in windows of at most CHUNK pages over pieces at most WIN_GAP pages
 * apart (reading the entries between costs less than a read of their
 * own: ~3 ns an unmapped entry against ~2 us a pread). No VMA list: the
 * pieces say where the pages are, PMD-mapped or not, and their VMA's
 * kind where that matters. */
#define WIN_GAP 512

struct wread {
	struct uctx *c;
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
static int window_entries(struct uctx *c, uint64_t w0, uint64_t w1)
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

static int slow_cap(struct uctx *c, size_t m);

/* A present page of piece @v whose physical page is needed (or, without
 * the physical pages, a PMD-mapped one), moved to slot m of the chunk's
 * arrays (m <= its own slot: the entries are compacted in place). */
static int slow_page(struct uctx *c, size_t m, uint64_t e, const struct vinfo *v, bool huge)
{
	int r = slow_cap(c, m + 1);

	if (r)
		return r;
	c->e[m] = e;
	c->cat[m] = (huge ? PM_CAT_HUGE : 0) | (e & PM_ENTRY_FILE ? PM_CAT_FILE : 0);
	c->pv[m] = *v;
	c->pfn[m] = c->kp ? pm_entry_pfn(e) : 0;
	/* kpageflags costs twice kpagecount: read where needed */
	c->flags[m] = c->kp && need_flags(c, e, c->cat[m], v) ? 0 : NOT_READ;
	return 0;
}

/* Window [w0, w1) over pieces p[0, n), the first from w0. Present 4K
 * pages mapped once by an anonymous mapping (the common case) count
 * straight away: full Pss, Uss, mapcount 1 (mapped_once()); the others
 * with their physical pages' records. */
static int window_count(struct uctx *c, uint64_t w0, uint64_t w1, const struct pm__upiece *p,
			size_t n)
{
	const uint64_t ps = c->ps, full = ps << PSS_SHIFT;
	size_t m = 0;
	int r = 0;

	for (size_t k = 0; k < n && !r; k++) {
		const uint64_t s = p[k].start > w0 ? p[k].start : w0, t = p[k].end < w1 ? p[k].end : w1;
		const struct vinfo v = { p[k].start, p[k].end, p[k].anon, false, &c->acc[p[k].acc] };
		struct pm__usage_acc *a = v.a;
		uint64_t once = 0;

		for (size_t i = (size_t)((s - w0) / ps), z = (size_t)((t - w0) / ps); i < z && !r; i++) {
			const uint64_t e = c->e[i];

			if (!pm_entry_present(e))
				continue; /* gone since the scan */
			if (!c->kp_decided)
				kp_decide(c, e);
			if (p[k].huge) {
				r = slow_page(c, m++, e, &v, true);
			} else if (!c->kp) {
				a->u.rss += ps;
				add_shared(a, ps, pm_entry_exclusive(e));
			} else if (pm_entry_exclusive(e) && !(e & PM_ENTRY_FILE) && pm_entry_pfn(e)) {
				once++;
			} else {
				r = slow_page(c, m++, e, &v, false);
			}
		}
		a->u.rss += once * ps;
		a->u.uss += once * ps;
		a->u.pss += once * full;
		a->u.pss_anon += once * full;
	}
	if (!r && c->kp)
		r = kp_records(c, m);
	for (size_t i = 0; i < m && !r; i++) {
		if (c->kp)
			r = page_kp(c, i, c->pv[i].a);
		else
			page_scan(c, i, &c->pv[i]);
	}
	return r;
}

static int window(struct uctx *c, uint64_t w0, uint64_t w1, const struct pm__upiece *p, size_t n)
{
	int r = window_entries(c, w0, w1);

	return r ? r : window_count(c, w0, w1, p, n);
}

/* The window from @from in piece p[i] (of n): its end, and in *k the
 * piece after its last. */
static uint64_t window_end(const struct uctx *c, const struct pm__upiece *p, size_t n, size_t i,
			   uint64_t from, size_t *k)
{
	const uint64_t max = CHUNK * c->ps;
	uint64_t w1 = p[i].end - from > max ? from + max : p[i].end;

	*k = i + 1;
	if (w1 == p[i].end)
		while (*k < n && p[*k].start - w1 <= WIN_GAP * c->ps && p[*k].end - from <= max)
			w1 = p[(*k)++].end;
	return w1;
}

static int ctx_pages(struct uctx *c, size_t pages);

/* The pieces window by window, with buffers for the longest window (a
 * small process needs far less than CHUNK pages: pm-dump --all makes a
 * call per process). */
static int walk_pieces(struct uctx *c, const struct pm__upiece *p, size_t n)
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

static int ctx_init(struct uctx *c, struct pm_handle *h, const struct pm_usage_opts *opts,
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
	if ((c->want & ~PM_USAGE_ALL) || (c->ro.flags & ~read_known))
		return -EINVAL;
	r = pm__handle_ready(h);
	if (r)
		return r;
	c->h = h;
	c->ps = k->page_size;
	c->old_mapcount = k->version[0] < 6 || (k->version[0] == 6 && k->version[1] < 15);
	c->avail = PM_USAGE_SWAP;
	if (pm__feature(PM_FEAT_GUARD_REGIONS) == 1)
		c->avail |= PM_USAGE_GUARD;
	if ((pm__scan_categories() & scan_cats) == scan_cats &&
	    (c->want & (NEED_CLASS | PM_USAGE_ANON_THP))) {
		c->scan = true;
		c->avail |= PM_USAGE_ANON_THP | (NEED_CLASS & ~NEED_KPAGE);
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
static int blind_scan(struct uctx *c, uint64_t w0, size_t lo, size_t hi)
{
	const struct pm__scan_req q = {
		.anyof = PM_CAT_PRESENT,
		.ret = PM_CAT_PRESENT | PM_CAT_PFNZERO | PM_CAT_HUGE,
	};
	struct pm_region vec[SCAN_VEC];
	const uint64_t ps = c->ps, end = w0 + hi * ps;

	memset(c->cat + lo, 0, (hi - lo) * sizeof(*c->cat));
	for (uint64_t cur = w0 + lo * ps; cur < end;) {
		struct pm__scan_out o = { .vec = vec, .vec_len = SCAN_VEC, .max_pages = UINT64_MAX };
		int r = pm__scan_native(c->h, cur, end, &q, &o);

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

/* Whether pages [i, z) of the window, page k of a PMD-aligned block on,
 * may be (part of) one PMD mapping: every page present, and with visible
 * PFNs those consecutive from an aligned one. */
static bool maybe_pmd(const struct uctx *c, size_t i, size_t z, size_t k)
{
	const uint64_t pfn = pm_entry_pfn(c->e[i]), pmd = pm__pmd_pages();

	if (pfn && ((pfn - k) & (pmd - 1)))
		return false;
	for (size_t j = i; j < z; j++)
		if (!pm_entry_present(c->e[j]) || (pfn && pm_entry_pfn(c->e[j]) != pfn + (j - i)))
			return false;
	return true;
}

/* Present page i of window w0 into the pieces, PMD-mapped or not (a
 * PMD-mapped one with its VMA's kind, asked once per VMA). */
static int blind_piece(struct uctx *c, struct pm__upieces *p, uint64_t w0, size_t i, bool huge,
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
static int blind_window(struct uctx *c, uint64_t w0, uint64_t w1, bool first, bool last,
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

		if (pm_entry_guard(e)) {
			a->u.guard += ps;
		} else if (!pm_entry_present(e)) {
			if (pm_entry_swapped(e))
				a->u.swap += ps;
		} else if (!pm_entry_exclusive(e) && !(e & PM_ENTRY_FILE)) {
			lo = i < lo ? i : lo;
			hi = i + 1;
		}
	}
	/* the window's PMD-aligned blocks, and the part of one that the
	 * range's start or end cuts (a window's other ends are a VMA's, or
	 * PMD-aligned) */
	for (size_t i = 0, z, k; i < n && !r; i = z) {
		k = (size_t)((w0 / ps + i) & (pmd - 1));
		z = i + pmd - k < n ? i + pmd - k : n;
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

static int walk_blind(struct uctx *c, uint64_t start, uint64_t end)
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
		cur = w1;
		ra = 2 * ra < max ? 2 * ra : max;
	}
	free(p.v);
	return r > 0 ? 0 : r; /* > 0: the loop ended at a VMA past the range */
}

/* Whether the caller may read physical pages, by a probe of its own
 * credentials: asked only where no entry of the handle said (kp_decide()),
 * for a range without a present page, or before a walk that may need
 * them. Without the rights the fields needing them are just not valid. */
static bool want_kpages(const struct uctx *c)
{
	return (c->want & NEED_CLASS) && pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1;
}

static void ctx_kp(struct uctx *c)
{
	if (want_kpages(c) && pm__kpf_open(&c->kf, PM_KPAGE_FLAGS | PM_KPAGE_COUNT) == 0) {
		c->kp = true;
		c->avail |= NEED_CLASS;
	}
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
static int ctx_pages(struct uctx *c, size_t pages)
{
	const size_t n = pages ? pages : 1;

	if (!c->kbuf && grow(&c->kbuf, KP_WINDOW, sizeof(*c->kbuf)))
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
static int slow_cap(struct uctx *c, size_t m)
{
	size_t n = c->scap ? c->scap : 64;

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

static void ctx_fini(struct uctx *c)
{
	if (c->h)
		pm__vcursor_fini(&c->vc);
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

/* Count [start, end), or the VMAs of @l, through PAGEMAP_SCAN alone when
 * it answers every field asked for (usage-scan.c), else page by page. */
static int count_all(struct uctx *c, uint64_t start, uint64_t end, size_t nacc)
{
	const uint64_t cats = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE | PM_CAT_PFNZERO |
			      PM_CAT_HUGE | PM_CAT_GUARD;
	struct pm__upieces present = { 0 };
	int r = 1;

	if (!(c->want & ~PM__USAGE_SCAN_FIELDS) && !c->ro.flags &&
	    (pm__scan_categories() & cats) == cats) {
		/* asking whether PFNs are visible costs a probe: only then */
		r = pm__usage_scan(c->h, start, end, c->list, c->acc, NULL);
		if (r < 0)
			return r;
		if (!r || !want_kpages(c))
			return pm__handle_check(c->h); /* as pm__read does for its answers */
		memset(c->acc, 0, nacc * sizeof(*c->acc));
	}
	if (!c->scan) {
		r = ctx_pages(c, CHUNK);
		if (!r)
			r = slow_cap(c, CHUNK);
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
	/* no present page: the fields are 0, valid as far as the caller's
	 * rights go */
	if (!r && !c->kp_decided)
		ctx_kp(c);
	/* the walk without PAGEMAP_SCAN reads through pm__read, which checks */
	return r || !c->scan ? r : pm__handle_check(c->h);
}

/* Write one answer: the fields asked for that every page decided. */
static void put(const struct uctx *c, const struct pm__usage_acc *a, struct pm_usage *out, uint64_t size)
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
	struct uctx c;
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
	struct uctx c;
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
