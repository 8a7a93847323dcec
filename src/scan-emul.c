/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_scan emulated from pm_read entries and the VMA list, for kernels
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

#define WINDOW 65536 /* entries per pm_read: 512 KiB */
#define KPF_COMPOUND_HEAD 15
#define KPF_ZERO_PAGE 24
#define HUGE_ZERO_PAGES 512 /* PMD_SIZE / PAGE_SIZE on x86-64 with 4K pages */

struct emu {
	const struct pm__scan_req *q;
	struct pm__scan_out *o;
	uint64_t need;
	int kpf; /* /proc/kpageflags, when PFNZERO is needed */
	uint64_t *flags;
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

/* PFNZERO for a present entry: one kpageflags read per PFN run. */
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

				if ((m->flags[j] >> KPF_ZERO_PAGE & 1) ||
				    (in_head && (hf >> KPF_ZERO_PAGE & 1) &&
				     (hf >> KPF_COMPOUND_HEAD & 1)))
					cats[i + j] |= PM_CAT_PFNZERO;
			}
		}
		i += run;
	}
}

static uint64_t categories(uint64_t e, bool anon_private)
{
	uint64_t c = 0;

	if (e & PM_ENTRY_PRESENT)
		c |= PM_CAT_PRESENT;
	if (e & PM_ENTRY_SWAP)
		c |= PM_CAT_SWAPPED;
	if ((e & PM_ENTRY_FILE) && (e & (PM_ENTRY_PRESENT | PM_ENTRY_SWAP)) && !anon_private)
		c |= PM_CAT_FILE;
	if (e & PM_ENTRY_SOFT_DIRTY)
		c |= PM_CAT_SOFT_DIRTY;
	if (e & PM_ENTRY_GUARD)
		c |= PM_CAT_GUARD;
	return c;
}

/* Feed runs of matching pages to the output. */
static bool emit(struct emu *m, uint64_t va, uint64_t c, uint64_t ps)
{
	if (!pm__scan_match(m->q, c)) {
		if (m->run && !pm__out_add(m->o, m->run_start, m->run_end, m->run_cats))
			return false;
		m->run = false;
		return true;
	}
	c &= m->q->ret;
	if (m->run && m->run_end == va && m->run_cats == c) {
		m->run_end += ps;
		return true;
	}
	if (m->run && !pm__out_add(m->o, m->run_start, m->run_end, m->run_cats))
		return false;
	m->run = true;
	m->run_start = va;
	m->run_end = va + ps;
	m->run_cats = c;
	return true;
}

static int scan_span(struct emu *m, struct pm_handle *h, uint64_t s, uint64_t e,
		     bool anon_private, uint64_t *buf, uint64_t *cats)
{
	const uint64_t ps = pm__kernel()->page_size;

	for (uint64_t a = s; a < e;) {
		uint64_t b = e - a > WINDOW * ps ? a + WINDOW * ps : e;
		long n = pm_read(h, a, b, buf, NULL, NULL);

		if (n < 0)
			return (int)n;
		for (long i = 0; i < n; i++)
			cats[i] = categories(buf[i], anon_private);
		if (m->kpf >= 0)
			zero_pages(m, buf, (size_t)n, cats);
		for (long i = 0; i < n; i++)
			if (!emit(m, a + (uint64_t)i * ps, cats[i], ps))
				return 0;
		a = b;
	}
	return 0;
}

static bool anon_private(const struct pm_vma *v)
{
	const char *n = v->name;

	return !(v->flags & PM_VMA_SHARED) && !v->inode &&
	       (!n[0] || !strcmp(n, "[heap]") || !strncmp(n, "[stack", 6) ||
		!strncmp(n, "[anon:", 6));
}

static bool pfnmap(const struct pm_vma *v)
{
	return !strncmp(v->name, "[vvar", 5);
}

int pm__scan_emulated(struct pm_handle *h, uint64_t start, uint64_t end,
		      const struct pm__scan_req *q, struct pm__scan_out *o)
{
	struct emu m = { .q = q, .o = o };
	struct pm_vma_list *l = NULL;
	uint64_t *buf, *cats;
	int r;

	m.need = q->mask | q->inverted | q->anyof | q->ret;
	r = check_supported(m.need, &m.kpf);
	if (r)
		return r;
	buf = malloc(WINDOW * sizeof(*buf));
	cats = malloc(WINDOW * sizeof(*cats));
	m.flags = malloc(WINDOW * sizeof(*m.flags));
	if (!buf || !cats || !m.flags) {
		r = -ENOMEM;
		goto out;
	}
	r = pm_vmas(h, &l);
	for (size_t i = 0; r == 0 && i < pm_vma_count(l) && !o->done; i++) {
		const struct pm_vma *v = pm_vma_at(l, i);
		uint64_t s = v->start > start ? v->start : start, e = v->end < end ? v->end : end;

		if (s < e && !pfnmap(v))
			r = scan_span(&m, h, s, e, anon_private(v), buf, cats);
	}
	if (r == 0 && m.run && !o->done)
		pm__out_add(o, m.run_start, m.run_end, m.run_cats);
out:
	pm_vma_list_free(l);
	free(buf);
	free(cats);
	free(m.flags);
	if (m.kpf >= 0)
		close(m.kpf);
	return r;
}
