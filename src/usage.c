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

#include <stdlib.h>
#include <string.h>

#define CHUNK 8192   /* pages per pagemap read */
#define SCAN_VEC 512 /* regions per PAGEMAP_SCAN call */
#define PSS_SHIFT 12
#define MAX_FOLIO_ORDER 9 /* PMD order on x86-64 with 4 KiB pages */

#define F(b) (1ULL << PM_KPF_##b)
#define PM__USAGE_FIELDS 12 /* rss .. guard, in PM_USAGE_* bit order */

/* fields that need kpageflags and kpagecount */
#define NEED_KPAGE (PM_USAGE_PSS | PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE | PM_USAGE_PSS_SHMEM)
/* fields that need to know which present pages smaps counts */
#define NEED_CLASS                                                                        \
	(NEED_KPAGE | PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_HUGETLB | \
	 PM_USAGE_ZERO)

struct uctx {
	struct pm_handle *h;
	struct pm_read_opts ro;
	uint64_t want, avail, unknown;
	uint64_t ps;
	bool kp, scan, old_mapcount;
	struct pm__kpf kf;
	struct pm__vcursor vc;
	uint64_t *e, *pfn, *cat;
	struct pm_kpage *rec;
	uint64_t head_pfn, head_end, head_flags; /* the last compound head found */
	struct pm_usage acc;
};

/* The folio's flags for page i of the chunk: a tail page's head's (6.1
 * reports ANON, SWAPBACKED and ZERO_PAGE on the head only). The head of
 * a naturally aligned folio is the first compound head at an alignment
 * below the page. */
static int folio_flags(struct uctx *c, size_t i, uint64_t *out)
{
	const uint64_t pfn = c->pfn[i];

	*out = c->rec[i].flags;
	if (!(*out & F(COMPOUND_TAIL)))
		return 0;
	if (pfn >= c->head_pfn && pfn < c->head_end) {
		*out = c->head_flags;
		return 0;
	}
	for (unsigned o = 1; o <= MAX_FOLIO_ORDER; o++) {
		uint64_t cand = pfn & ~((1ULL << o) - 1), d = pfn - cand, f;
		struct pm_kpage k;

		if (d <= i && c->pfn[i - d] == cand) {
			f = c->rec[i - d].flags;
		} else {
			int r = pm__kpf_read(&c->kf, &cand, 1, &k);

			if (r)
				return r;
			f = k.flags;
		}
		if (f & F(COMPOUND_HEAD)) {
			c->head_pfn = cand;
			c->head_end = cand + (1ULL << o);
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
 * differ for a PTE-mapped page. */
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

struct vinfo {
	bool anon;   /* no file: only these hold anonymous PMD mappings */
	bool pfnmap; /* the vDSO data pages: smaps skips VM_PFNMAP */
};

static void add_shared(struct uctx *c, int priv)
{
	if (priv < 0)
		c->unknown |= PM_USAGE_USS | PM_USAGE_SHARED;
	else if (priv)
		c->acc.uss += c->ps;
	else
		c->acc.shared += c->ps;
}

/* A present page, with the physical page's records. */
static int page_kp(struct uctx *c, size_t i)
{
	const uint64_t ps = c->ps, e = c->e[i], cat = c->cat[i];
	const struct pm_kpage *k = &c->rec[i];
	uint64_t ff, pss;
	int r;

	if (!c->pfn[i] || (k->flags & F(NOPAGE))) {
		c->unknown |= NEED_CLASS;
		return 0;
	}
	r = folio_flags(c, i, &ff);
	if (r)
		return r;
	if ((k->flags | ff) & F(ZERO_PAGE)) {
		c->acc.zero += ps;
		return 0;
	}
	if (ff & F(HUGE)) {
		c->acc.hugetlb += ps;
		return 0;
	}
	c->acc.rss += ps;
	pss = k->count >= 2 ? (ps << PSS_SHIFT) / k->count : ps << PSS_SHIFT;
	c->acc.pss += pss;
	if (ff & F(ANON))
		c->acc.pss_anon += pss;
	else if (ff & F(SWAPBACKED))
		c->acc.pss_shmem += pss;
	else
		c->acc.pss_file += pss;
	add_shared(c, private_page(c, e, k->count, k->flags, cat));
	if ((cat & PM_CAT_HUGE) && (ff & F(ANON)))
		c->acc.anon_thp += ps;
	return 0;
}

/* A present page, from PAGEMAP_SCAN's categories and the entry alone. */
static void page_scan(struct uctx *c, size_t i, const struct vinfo *v)
{
	const uint64_t ps = c->ps, cat = c->cat[i];

	if (cat & PM_CAT_PFNZERO) {
		c->acc.zero += ps;
	} else if (!(cat & PM_CAT_HUGE)) {
		c->acc.rss += ps;
		add_shared(c, pm_entry_exclusive(c->e[i]));
	} else if (v->anon && !(cat & PM_CAT_FILE)) {
		/* the exclusive bit of a PMD mapping is its head page's */
		c->acc.rss += ps;
		c->acc.anon_thp += ps;
		c->unknown |= PM_USAGE_USS | PM_USAGE_SHARED;
	} else {
		/* hugetlb, or a file or shmem THP: only the page knows */
		c->unknown |= PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_HUGETLB;
	}
}

/* PAGEMAP_SCAN's HUGE, PFNZERO and FILE categories of [a, b) into cat. */
static int scan_chunk(struct uctx *c, uint64_t a, uint64_t b)
{
	const struct pm__scan_req q = {
		.anyof = PM_CAT_HUGE | PM_CAT_PFNZERO,
		.ret = PM_CAT_HUGE | PM_CAT_PFNZERO | PM_CAT_FILE,
	};
	struct pm_region vec[SCAN_VEC];

	memset(c->cat, 0, (size_t)((b - a) / c->ps) * sizeof(*c->cat));
	for (uint64_t cur = a; cur < b;) {
		struct pm__scan_out o = { .vec = vec, .vec_len = SCAN_VEC, .max_pages = UINT64_MAX };
		int r = pm__scan_native(c->h, cur, b, &q, &o);

		if (r)
			return r;
		for (size_t j = 0; j < o.n; j++)
			for (uint64_t p = vec[j].start; p < vec[j].end; p += c->ps)
				c->cat[(p - a) / c->ps] = vec[j].categories;
		if (!o.done)
			break;
		cur = o.walk_end;
	}
	return 0;
}

static int chunk(struct uctx *c, uint64_t a, uint64_t b, const struct vinfo *v)
{
	const size_t n = (size_t)((b - a) / c->ps);
	long got;
	int r = 0;

	got = pm__read(c->h, a, b, c->e, &c->ro, NULL, &c->vc);
	if (got < 0)
		return (int)got;
	if (c->scan) {
		r = scan_chunk(c, a, b);
		if (r)
			return r;
	}
	if (c->kp) {
		for (size_t i = 0; i < n; i++)
			c->pfn[i] = pm_entry_present(c->e[i]) && !v->pfnmap ? pm_entry_pfn(c->e[i]) : 0;
		r = pm__kpf_read(&c->kf, c->pfn, n, c->rec);
		if (r)
			return r;
	}
	for (size_t i = 0; i < n && !r; i++) {
		const uint64_t e = c->e[i];

		if (pm_entry_guard(e)) {
			c->acc.guard += c->ps;
		} else if (!pm_entry_present(e)) {
			if (pm_entry_swapped(e))
				c->acc.swap += c->ps;
		} else if (v->pfnmap) {
			continue;
		} else if (c->kp) {
			r = page_kp(c, i);
		} else if (c->scan) {
			page_scan(c, i, v);
		} else {
			c->unknown |= NEED_CLASS;
		}
	}
	return r;
}

/* Account [start, end) VMA by VMA into c->acc. */
static int walk(struct uctx *c, uint64_t start, uint64_t end)
{
	uint64_t cur = start;

	while (cur < end) {
		struct pm_vma vma;
		struct vinfo v;
		uint64_t to;
		int r = pm__vcursor_next(&c->vc, cur, &vma, true);

		if (r <= 0)
			return r;
		if (vma.start >= end)
			break;
		if (vma.start > cur)
			cur = vma.start;
		to = vma.end < end ? vma.end : end;
		v.anon = !vma.inode;
		v.pfnmap = !strncmp(vma.name, "[vvar", 5);
		while (cur < to) {
			uint64_t b = to - cur > CHUNK * c->ps ? cur + CHUNK * c->ps : to;

			r = chunk(c, cur, b, &v);
			if (r)
				return r;
			cur = b;
		}
	}
	return 0;
}

static int ctx_init(struct uctx *c, struct pm_handle *h, const struct pm_usage_opts *opts)
{
	const struct pm__kernel *k = pm__kernel();
	const uint64_t read_known = PM_READ_SNAPSHOT | PM_READ_BEST_EFFORT;
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
	if (k->features & PM_FEAT_GUARD_REGIONS)
		c->avail |= PM_USAGE_GUARD;
	if ((k->features & PM_FEAT_PAGEMAP_SCAN) && (k->scan_categories & scan_cats) == scan_cats &&
	    (c->want & (NEED_CLASS | PM_USAGE_ANON_THP))) {
		c->scan = true;
		c->avail |= PM_USAGE_ANON_THP | (NEED_CLASS & ~NEED_KPAGE);
	}
	/* the physical pages are read when they answer a field asked for;
	 * without the rights the fields needing them are just not valid */
	if ((c->want & NEED_CLASS) && pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1 &&
	    pm__kpf_open(&c->kf, PM_KPAGE_FLAGS | PM_KPAGE_COUNT) == 0) {
		c->kp = true;
		c->avail |= NEED_CLASS;
	}
	c->e = malloc(CHUNK * sizeof(*c->e));
	c->cat = calloc(CHUNK, sizeof(*c->cat));
	c->pfn = malloc(CHUNK * sizeof(*c->pfn));
	c->rec = malloc(CHUNK * sizeof(*c->rec));
	if (!c->e || !c->cat || !c->pfn || !c->rec)
		return -ENOMEM;
	pm__vcursor_init(&c->vc, h);
	return 0;
}

static void ctx_fini(struct uctx *c)
{
	if (c->h)
		pm__vcursor_fini(&c->vc);
	pm__kpf_close(&c->kf);
	free(c->e);
	free(c->cat);
	free(c->pfn);
	free(c->rec);
}

static int out_check(const struct pm_usage *out)
{
	return !out || out->size < 2 * sizeof(uint64_t) || out->size % sizeof(uint64_t) ||
			       out->size > 4096
		       ? -EINVAL
		       : 0;
}

/* One range's answer: the fields asked for that every page decided. */
static int usage_range(struct uctx *c, uint64_t start, uint64_t end, struct pm_usage *out)
{
	uint64_t vals[PM__USAGE_FIELDS], size = out->size, valid;
	int r;

	memset(&c->acc, 0, sizeof(c->acc));
	c->unknown = 0;
	r = walk(c, start, end);
	if (r)
		return r;
	valid = c->want & c->avail & ~c->unknown;
	memcpy(vals, &c->acc.rss, sizeof(vals));
	for (unsigned i = 0; i < PM__USAGE_FIELDS; i++)
		if (!(valid & (1ULL << i)))
			vals[i] = 0;
	if (size > sizeof(*out))
		memset((char *)out + sizeof(*out), 0, (size_t)(size - sizeof(*out)));
	out->valid = valid;
	memcpy(&out->rss, vals,
	       (size_t)((size < sizeof(*out) ? size : sizeof(*out)) - 2 * sizeof(uint64_t)));
	return 0;
}

PM_EXPORT int pm_usage(struct pm_handle *h, uint64_t start, uint64_t end,
		       const struct pm_usage_opts *opts, struct pm_usage *out)
{
	const struct pm__kernel *k = pm__kernel();
	struct uctx c;
	int r;

	if (end > k->user_top)
		end = k->user_top;
	if (!h || out_check(out) || (start | end) & (k->page_size - 1) || end <= start)
		return (int)pm__ret(-EINVAL);
	r = ctx_init(&c, h, opts);
	if (!r)
		r = usage_range(&c, start, end, out);
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
	r = ctx_init(&c, h, opts);
	for (size_t i = 0; i < n && !r; i++) {
		struct pm_usage *o = (struct pm_usage *)((char *)out + i * stride);

		o->size = stride;
		r = usage_range(&c, l->v[i].start, l->v[i].end, o);
	}
	ctx_fini(&c);
	return r ? pm__ret(r) : (long)n;
}
