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
 * be; other PFN maps (device memory) are not visible from user space and
 * are scanned.
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
#define FIRST_WINDOW 512 /* windows start small and double: a caller with a
			  * small vector does not pay for reading far ahead */
#define KPF_COMPOUND_HEAD 15
#define KPF_ZERO_PAGE 24
#define HUGE_ZERO_PAGES 512 /* PMD_SIZE / PAGE_SIZE on x86-64 with 4K pages */

struct emu {
	const struct pm__scan_req *q;
	struct pm__scan_out *o;
	struct pm_handle *h;
	bool zero_matches; /* pages with no category match: VMA membership counts */
	int kpf;           /* /proc/kpageflags, when PFNZERO is needed */
	uint64_t *flags;
	struct pm__vcursor vc;
	struct pm_vma v;   /* the VMA last looked up */
	bool v_valid, v_anon_private;
	uint64_t pfnmap_lo, pfnmap_hi; /* the vDSO data pages: VM_PFNMAP, skipped */
	uint64_t run_start, run_end, run_cats;
	bool run;
};

static int check_supported(uint64_t need, int *kpf)
{
	const uint64_t features = pm__kernel()->features;

	*kpf = -1;
	if (need & (PM_CAT_WPALLOWED | PM_CAT_HUGE | PM_CAT_WRITTEN))
		return -EOPNOTSUPP;
	if ((need & PM_CAT_SOFT_DIRTY) && !(features & PM_FEAT_SOFT_DIRTY))
		return -EOPNOTSUPP;
	if ((need & PM_CAT_GUARD) && !(features & PM_FEAT_GUARD_REGIONS))
		return -EOPNOTSUPP;
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

/* PFNZERO for present entries: one kpageflags read per PFN run. */
static void zero_pages(struct emu *m, const uint64_t *e, size_t n, uint64_t *cats)
{
	for (size_t i = 0; i < n;) {
		uint64_t pfn = pm_entry_pfn(e[i]), head, hf;
		size_t run = 1;

		if (!pfn) {
			i++;
			continue;
		}
		while (i + run < n && pm_entry_pfn(e[i + run]) == pfn + run && run < WINDOW)
			run++;
		if (pm__pread_full(m->kpf, m->flags, run * 8, pfn * 8, NULL) == 0) {
			head = pfn & ~(uint64_t)(HUGE_ZERO_PAGES - 1);
			hf = kflags(m, head);
			for (size_t j = 0; j < run; j++) {
				bool in_head = pfn + j - head < HUGE_ZERO_PAGES;

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
}

static bool anon_private(const struct pm_vma *v)
{
	const char *n = v->name;

	return !(v->flags & PM_VMA_SHARED) && !v->inode &&
	       (!n[0] || !strcmp(n, "[heap]") || !strncmp(n, "[stack", 6) ||
		!strncmp(n, "[anon:", 6));
}

/* The VMA holding @va (looked up when @va leaves the last one): 1 if
 * there is one, 0 if @va is in a gap, -errno. */
static int vma_at(struct emu *m, uint64_t va)
{
	int r;

	if (m->v_valid && va >= m->v.start && va < m->v.end)
		return 1;
	if (m->v_valid && va < m->v.start)
		return 0;
	r = pm__vcursor_next(&m->vc, va, &m->v, true);
	if (r <= 0) {
		m->v_valid = false;
		return r;
	}
	m->v_valid = true;
	m->v_anon_private = anon_private(&m->v);
	return va >= m->v.start;
}

static bool flush(struct emu *m)
{
	bool ok = !m->run || pm__out_add(m->o, m->run_start, m->run_end, m->run_cats);

	m->run = false;
	return ok;
}

/* The vDSO's data VMAs ("[vvar]", "[vvar_vclock]") are VM_PFNMAP, which the
 * kernel's scan skips. They sit right below the vDSO, whose address the
 * target's auxv gives (AT_SYSINFO_EHDR): a few lookups, not a VMA walk. */
static int find_pfnmap(struct emu *m)
{
	uint64_t aux[2 * 64], vdso = 0;
	struct pm_vma v;
	ssize_t n;
	int fd = openat(m->h->dirfd, "auxv", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = pm__sys.pread(fd, aux, sizeof(aux), 0);
	close(fd);
	for (ssize_t i = 0; i + 1 < n / 8; i += 2)
		if (aux[i] == 33 /* AT_SYSINFO_EHDR */)
			vdso = aux[i + 1];
	m->pfnmap_lo = m->pfnmap_hi = vdso;
	while (m->pfnmap_lo) {
		int r = pm__vcursor_next(&m->vc, m->pfnmap_lo - 1, &v, true);

		if (r < 0)
			return r;
		if (r == 0 || v.end != m->pfnmap_lo || strncmp(v.name, "[vvar", 5))
			break;
		m->pfnmap_lo = v.start;
	}
	/* the cursor walked backwards; let the scan start it afresh */
	pm__vcursor_fini(&m->vc);
	pm__vcursor_init(&m->vc, m->h);
	return 0;
}

/* Categories of one page, or ~0 for pages the kernel would not scan. */
static int page_cats(struct emu *m, uint64_t va, uint64_t e, uint64_t *c)
{
	/* an empty entry matters only if empty pages match; a non-empty one
	 * is always inside a VMA, whose kind matters only for FILE (pagemap
	 * calls the huge zero page file, the kernel's scan does not) */
	if ((!e && !m->zero_matches) || (va >= m->pfnmap_lo && va < m->pfnmap_hi)) {
		*c = ~0ULL;
		return 0;
	}
	if (m->zero_matches || ((e & PM_ENTRY_FILE) && (e & PM_ENTRY_PRESENT))) {
		int in = vma_at(m, va);

		if (in <= 0) {
			*c = ~0ULL;
			return in;
		}
	}
	*c = (e >> 63 & 1) << 3 | (e >> 62 & 1) << 4 | (e >> 55 & 1) << 7 | (e >> 58 & 1) << 8;
	if ((e & PM_ENTRY_FILE) && (e & (PM_ENTRY_PRESENT | PM_ENTRY_SWAP)) &&
	    !((e & PM_ENTRY_PRESENT) && m->v_anon_private))
		*c |= PM_CAT_FILE;
	return 0;
}

/* Feed one page to the output as part of a run. */
static inline bool emit(struct emu *m, uint64_t va, uint64_t rc, uint64_t ps)
{
	if (m->run && m->run_end == va && m->run_cats == rc) {
		m->run_end += ps;
		return true;
	}
	if (!flush(m))
		return false;
	m->run = true;
	m->run_start = va;
	m->run_end = va + ps;
	m->run_cats = rc;
	return true;
}

/* Classify and emit one window. Entries with the flags of the previous one
 * have its categories (the PFN aside, which only PFNZERO reads, and FILE,
 * whose VMA matters), so the common case is a compare and a run extension;
 * the match is computed once per distinct category value. */
static int window(struct emu *m, uint64_t a, const uint64_t *buf, uint64_t *cats, size_t n,
		  uint64_t ps)
{
	const uint64_t fmask = ~PM_ENTRY_PFN_MASK;
	uint64_t last_f = ~0ULL, last_c = ~0ULL, match_c = ~0ULL, rc = 0;
	bool matched = false;
	int r;

	for (size_t i = 0; i < n; i++) {
		uint64_t e = buf[i], f = e & fmask, va = a + i * ps;

		if (f == last_f && !m->zero_matches && !(f & PM_ENTRY_FILE) &&
		    !(va >= m->pfnmap_lo && va < m->pfnmap_hi)) {
			cats[i] = last_c;
			continue;
		}
		r = page_cats(m, va, e, &cats[i]);
		if (r)
			return r;
		last_f = f;
		last_c = cats[i];
	}
	if (m->kpf >= 0)
		zero_pages(m, buf, n, cats);
	for (size_t i = 0; i < n && !m->o->done; i++) {
		uint64_t c = cats[i];

		if (c != match_c) {
			match_c = c;
			matched = c != ~0ULL && pm__scan_match(m->q, c);
			rc = c & m->q->ret;
		}
		if (!matched) {
			if (m->run && !flush(m))
				break;
			continue;
		}
		if (!emit(m, a + i * ps, rc, ps))
			break;
	}
	return 0;
}

int pm__scan_emulated(struct pm_handle *h, uint64_t start, uint64_t end,
		      const struct pm__scan_req *q, struct pm__scan_out *o)
{
	const uint64_t ps = pm__kernel()->page_size;
	struct emu m = { .q = q, .o = o, .h = h };
	uint64_t *buf = NULL, *cats = NULL, a = start;
	int r;

	r = check_supported(q->mask | q->inverted | q->anyof | q->ret, &m.kpf);
	if (r)
		return r;
	m.zero_matches = pm__scan_match(q, 0);
	pm__vcursor_init(&m.vc, h);
	r = find_pfnmap(&m);
	if (r)
		goto out;
	buf = malloc(WINDOW * sizeof(*buf));
	cats = malloc(WINDOW * sizeof(*cats));
	m.flags = malloc(WINDOW * sizeof(*m.flags));
	if (!buf || !cats || !m.flags) {
		r = -ENOMEM;
		goto out;
	}
	/* windows of the range, jumping over gaps between VMAs; pm_read plans
	 * (and guards) the reads inside each window */
	for (uint64_t win = FIRST_WINDOW; a < end && !o->done; win = win < WINDOW ? win * 2 : WINDOW) {
		struct pm_vma v;
		uint64_t b;
		long n;

		r = pm__vcursor_next(&m.vc, a, &v, false);
		if (r <= 0)
			break;
		if (v.start > a) {
			if (!flush(&m))
				break;
			a = v.start;
		}
		if (a >= end)
			break;
		b = end - a > win * ps ? a + win * ps : end;
		n = pm_read(h, a, b, buf, NULL, NULL);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		r = window(&m, a, buf, cats, (size_t)n, ps);
		if (r)
			goto out;
		a = b;
	}
	if (r >= 0 && !o->done)
		flush(&m);
	r = r < 0 ? r : 0;
out:
	pm__vcursor_fini(&m.vc);
	free(buf);
	free(cats);
	free(m.flags);
	if (m.kpf >= 0)
		close(m.kpf);
	return r;
}
