/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_usage's count of a present page from its physical page, as smaps
 * counts it (the rules: usage.c), and the reads of kpageflags and
 * kpagecount that takes, in runs of nearby PFNs.
 */
#include "kpages.h"
#include "usage.h"

#include <stdlib.h>
#include <string.h>

/* Physical pages are scattered. Measured on the development machine (a
 * 6.18 guest): a pread of these files costs ~5 us, a record ~130 ns, so
 * PFNs this close share one read. */
#define KP_GAP 32

#define F(b) (1ULL << PM_KPF_##b)
#define PSS_SPLIT (PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE | PM_USAGE_PSS_SHMEM)

/* Runs packed as (first page << RUN_SHIFT | length), by their first PFN;
 * both below 1 << RUN_SHIFT, and the pair fits a 32-bit size_t. */
#define RUN_SHIFT 16
_Static_assert(PM__USAGE_CHUNK < (1 << RUN_SHIFT) && PM__KP_WINDOW < (1 << RUN_SHIFT),
	       "run packing");

static int by_pfn(const void *x, const void *y, void *arg)
{
	const uint64_t *pfn = arg;
	const uint64_t a = pfn[*(const size_t *)x >> RUN_SHIFT];
	const uint64_t b = pfn[*(const size_t *)y >> RUN_SHIFT];

	return a < b ? -1 : a > b;
}

/* Records of file @f for the pages of the chunk with pfn[i] != 0 into
 * out[i]. Pages in a row with consecutive PFNs (a large folio, or pages
 * allocated together) form runs; the runs are sorted by PFN (unless they
 * already are) and read in windows of nearby ones: a sort of the runs
 * rather than the pages, which for 2 MiB THPs is 512 times fewer. */
static int kp_sparse(struct pm__uctx *c, int f, const uint64_t *pfn, size_t n, uint64_t *out)
{
	uint64_t *buf = c->kbuf;
	size_t m = 0;
	bool sorted = true;

	for (size_t i = 0, j; i < n; i = j) {
		j = i + 1;
		if (!pfn[i])
			continue;
		while (j < n && j - i < PM__KP_WINDOW && pfn[j] == pfn[j - 1] + 1)
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

			if (p > hi + KP_GAP || (e > hi ? e : hi) - lo > PM__KP_WINDOW)
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
static int folio_flags(struct pm__uctx *c, size_t i, uint64_t *out)
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

		if (d <= i && c->pfn[i - d] == cand && c->flags[i - d] != PM__NOT_READ) {
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
 * differ for a PTE-mapped page. @flags PM__NOT_READ: maybe a large folio;
 * @count PM__NOT_READ: not read, as bit_decides() allowed. */
static int private_page(const struct pm__uctx *c, uint64_t e, uint64_t count, uint64_t flags,
			uint64_t cat)
{
	const bool by_count = count < 2, by_bit = pm_entry_exclusive(e);

	if (count == PM__NOT_READ)
		return by_bit;
	if (by_count == by_bit || !(flags & (F(COMPOUND_HEAD) | F(COMPOUND_TAIL))) ||
	    c->page_mapcount)
		return by_count;
	if (c->scan && !(cat & PM_CAT_HUGE))
		return by_bit;
	return -1;
}

void pm__usage_add_shared(struct pm__usage_acc *a, uint64_t ps, int priv)
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
 * the exclusive bit, see private_page()). Without PAGEMAP_SCAN an
 * anonymous VMA's page the entry calls exclusive and not file is an
 * anonymous page in Rss too: a zero page (4K or huge) is never exclusive
 * (no mapcount of its own: the 4K one has no struct page for pagemap, the
 * huge one is not anonymous), and hugetlb VMAs have a file. That is most
 * of a process: pm-dump --all in the 6.1 VM read the flags of every
 * present page. */
bool pm__usage_need_flags(const struct pm__uctx *c, uint64_t e, uint64_t cat,
			  const struct pm__uvma *v)
{
	if (!c->scan)
		return !(v->anon && pm__usage_once(e));
	return ((e & PM_ENTRY_FILE) && (c->want & PSS_SPLIT)) || ((cat & PM_CAT_HUGE) && !v->anon);
}

/*
 * Whether page i's mapcount is 1 without reading it, the entry calling it
 * exclusive. On a small folio (its flags read) the bit is mapcount == 1
 * on every kernel, for any kind of page. Outside any PMD mapping it is the
 * page's own mapcount == 1 where mapcounts are per page (every kernel
 * before 6.15, and 6.15+ built with CONFIG_PAGE_MAPCOUNT: a round trip
 * tells, probe-mapcount.c); with CONFIG_NO_PAGE_MAPCOUNT it is "no other
 * mm maps the folio", where kpagecount's
 * average over the folio is at most 1 for an anonymous page (one mm maps
 * it once), while a page-cache folio may be mapped twice by one mm, so
 * there its average is read. A PMD mapping carries its head page's bit
 * (see private_page()): PAGEMAP_SCAN tells one (HUGE); without it the
 * flags tell a large folio, and pages whose block is not present with
 * consecutive PFNs from an aligned one are not PMD-mapped.
 * The bit is from the pagemap read, the flags from a later one: a folio
 * split between them reads small, as a mapcount read later may have
 * moved; only a quiescent target's counts are exact (libpagemap(3)).
 */
static bool small_folio(const struct pm__uctx *c, size_t i)
{
	return c->flags[i] != PM__NOT_READ &&
	       !(c->flags[i] & (F(COMPOUND_HEAD) | F(COMPOUND_TAIL) | F(NOPAGE)));
}

/* Whether page i is not part of a PMD mapping, whose pages carry the
 * head's exclusive bit: PAGEMAP_SCAN says (HUGE); without it, a page
 * outside every block that may be one. */
static bool pte_mapped(const struct pm__uctx *c, size_t i)
{
	return !(c->cat[i] & (c->scan ? PM_CAT_HUGE : PM__CAT_MAYBE_PMD));
}

static bool mapped_once(const struct pm__uctx *c, size_t i)
{
	const uint64_t e = c->e[i];

	if (!c->pfn[i] || !pm_entry_exclusive(e))
		return false;
	return small_folio(c, i) ||
	       (pte_mapped(c, i) && (c->page_mapcount || (c->scan && pm__usage_once(e))));
}

/* A present page, with the physical page's records. */
int pm__usage_page_kp(struct pm__uctx *c, size_t i, struct pm__usage_acc *a)
{
	const uint64_t ps = c->ps, e = c->e[i], cat = c->cat[i], count = c->count[i];
	uint64_t ff, pss;
	int r;

	if (c->flags[i] == PM__NOT_READ) {
		/* as pm__usage_need_flags() decided: anonymous (a zero page is not
		 * here: PAGEMAP_SCAN counted it, or the entry said exclusive),
		 * or a page-cache or shmem page where nobody asked which */
		ff = e & PM_ENTRY_FILE ? 0 : F(ANON);
		if (e & PM_ENTRY_FILE)
			a->unknown |= PSS_SPLIT;
	} else {
		if (c->flags[i] & F(NOPAGE)) {
			a->unknown |= PM__NEED_CLASS;
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
	pss = count >= 2 ? (ps << PM__PSS_SHIFT) / count : ps << PM__PSS_SHIFT;
	a->u.pss += pss;
	if (ff & F(ANON))
		a->u.pss_anon += pss;
	else if (ff & F(SWAPBACKED))
		a->u.pss_shmem += pss;
	else
		a->u.pss_file += pss;
	pm__usage_add_shared(a, ps, private_page(c, e, count, c->flags[i], cat));
	if ((cat & PM_CAT_HUGE) && (ff & F(ANON)))
		a->u.anon_thp += ps;
	return 0;
}

/* A present page, from PAGEMAP_SCAN's categories and the entry alone. */
void pm__usage_page_scan(struct pm__uctx *c, size_t i, const struct pm__uvma *v)
{
	const uint64_t ps = c->ps, cat = c->cat[i];
	struct pm__usage_acc *a = v->a;

	if (cat & PM_CAT_PFNZERO) {
		a->u.zero += ps;
	} else if (!(cat & PM_CAT_HUGE)) {
		a->u.rss += ps;
		pm__usage_add_shared(a, ps, pm_entry_exclusive(c->e[i]));
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

/* Whether page i's exclusive bit tells Private from Shared as smaps does
 * (private_page()), so that Uss and Shared need no mapcount: on a small
 * folio, and on any PTE mapping where PAGEMAP_SCAN tells PMD mappings
 * (CONFIG_NO_PAGE_MAPCOUNT decides by the folio, as the bit does) or
 * mapcounts are per page (the bit is the page's mapcount == 1). Only a
 * page that is or may be PMD-mapped carries another page's bit. Without
 * this every page shared copy-on-write after a fork had its count read:
 * 28 ms for 40,000 of them, against 1.4 ms for smaps_rollup. */
static bool bit_decides(const struct pm__uctx *c, size_t i)
{
	return small_folio(c, i) || (pte_mapped(c, i) && (c->scan || c->page_mapcount));
}

/* Whether page i of a chunk of @n is hugetlb by its flags or its VMA's
 * probe, read so far: its mapcount is not used (pm__usage_page_kp()). */
static bool hugetlb_page(const struct pm__uctx *c, size_t i, size_t n)
{
	const size_t p = c->pv[i].probe;

	if (c->flags[i] != PM__NOT_READ)
		return c->flags[i] & F(HUGE);
	return p == PM__PROBE_HUGE ||
	       (p < n && c->flags[p] != PM__NOT_READ && (c->flags[p] & F(HUGE)));
}

/* The physical pages' records of pages [0, n) of the chunk's arrays:
 * flags where flags[i] is not PM__NOT_READ, mapcounts where mapped_once()
 * does not tell them and Pss needs them, or Uss and Shared do
 * (bit_decides()); count[i] PM__NOT_READ where neither does. */
int pm__usage_kp_records(struct pm__uctx *c, size_t n)
{
	/* Rss alone (pm-dump --all) needs no mapcount */
	const bool pss = c->want & PM__NEED_KPAGE,
		   counts = c->want & (PM__NEED_KPAGE | PM_USAGE_USS | PM_USAGE_SHARED);
	int r;

	if (!n)
		return 0; /* the arrays may not be there yet */
	for (size_t i = 0; i < n; i++)
		c->idx[i] = c->flags[i] == PM__NOT_READ ? 0 : c->pfn[i];
	memcpy(c->count, c->idx, n * sizeof(*c->count));
	r = kp_sparse(c, 0, c->count, n, c->flags);
	for (size_t i = 0; i < n && !r; i++) {
		const bool once = !counts || mapped_once(c, i);

		c->cpfn[i] = !once && !hugetlb_page(c, i, n) && (pss || !bit_decides(c, i))
				     ? c->pfn[i]
				     : 0;
		c->count[i] = once || pss ? 1 : PM__NOT_READ;
	}
	if (r || !counts)
		return r;
	if (c->cache)
		pm__ucache_take(c->cache, c->e, c->cpfn, c->count, n);
	r = kp_sparse(c, 1, c->cpfn, n, c->count);
	if (!r && c->cache)
		pm__ucache_keep(c->cache, c->e, c->cpfn, c->count, n);
	return r;
}

/* Open the physical pages' files: a pass's cache keeps its own open for
 * all its calls (two opens and closes a process saved). */
static int kp_open(struct pm__uctx *c)
{
	int r;

	if (!c->cache)
		return pm__kpf_open(&c->kf, PM_KPAGE_FLAGS | PM_KPAGE_COUNT);
	r = pm__ucache_files(c->cache, &c->kf);
	c->kf_shared = r == 0;
	return r;
}

static void kp_opened(struct pm__uctx *c)
{
	c->kp = true;
	c->avail |= PM__NEED_CLASS;
}

/* Whether the handle shows PFNs, told by its first present entry (PFN 0
 * is what a hidden one reads: pm_kpages' rule), rather than by
 * pm_has_feature(), which maps, faults and reads a page of this process
 * per call and asks about the caller's credentials, not those the
 * handle's pagemap was opened with; the physical pages' files opened when
 * it does. */
void pm__usage_kp_decide(struct pm__uctx *c, uint64_t e)
{
	c->kp_decided = true;
	if ((c->want & PM__NEED_CLASS) && pm_entry_pfn(e) && kp_open(c) == 0) {
		kp_opened(c);
		/* where mapcounts are wanted, whether they are per page
		 * (mapped_once(), private_page()): asked at the first count
		 * that meets a present page, not by one of an empty range
		 * (pm-dump asks one what it may show). The first time it
		 * faults and splits a THP of this process, which trips a
		 * guard bracket around this count once (counted again). */
		if (c->want & (PM__NEED_KPAGE | PM_USAGE_USS | PM_USAGE_SHARED))
			c->page_mapcount = pm__mapcount_per_page(&c->kf) == 1;
	}
}

/* Whether the caller may read physical pages, by a probe of its own
 * credentials: asked only where no entry of the handle said (pm__usage_kp_decide()),
 * for a range without a present page, or before a walk that may need
 * them. Without the rights the fields needing them are just not valid. */
bool pm__usage_kp_allowed(const struct pm__uctx *c)
{
	return (c->want & PM__NEED_CLASS) && pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1;
}

void pm__usage_kp_probe(struct pm__uctx *c)
{
	if (pm__usage_kp_allowed(c) && kp_open(c) == 0)
		kp_opened(c);
}
