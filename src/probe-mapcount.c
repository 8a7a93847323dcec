/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Whether the kernel keeps a mapcount per page (every kernel before 6.15,
 * and 6.15+ built with CONFIG_PAGE_MAPCOUNT) or per folio
 * (CONFIG_NO_PAGE_MAPCOUNT, 6.15+), which no file tells user space. It
 * decides what pagemap's exclusive bit means for a page of a large folio:
 * per page, the page's own mapcount is 1, so pm_usage needs no kpagecount
 * read for it; per folio, only that no other process maps the folio.
 *
 * Told by a round trip: a THP of this process with its last page unmapped
 * (the PMD split, the folio whole). kpagecount of that unmapped page is its
 * own mapcount, 0, per page; per folio it is the folio's average mapcount,
 * rounded: 511 mappings over 512 pages read 1.
 */
#include "kpages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#define F(b) (1ULL << PM_KPF_##b)

static _Atomic int verdict = -1;

/* This process's pagemap entry for @addr, 0 when unreadable. */
static uint64_t own_entry(int fd, uint64_t addr)
{
	uint64_t e = 0;

	if (pm__pread_full(fd, &e, sizeof(e), addr / pm__kernel()->page_size * 8, NULL))
		return 0;
	return e;
}

/* 1 per page, 0 per folio; -1 when this machine gives no THP to tell by
 * (THP off, no PFNs for this caller, the folio split meanwhile). */
static int round_trip(const struct pm__kpf *k)
{
	const uint64_t ps = pm__kernel()->page_size, n = pm__pmd_pages(), pmd = n * ps;
	uint64_t head = 0, last = 0, e, rec[3];
	int fd, r = -1;
	char *map, *p;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	map = mmap(NULL, 2 * pmd, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		close(fd);
		return -1;
	}
	p = (char *)(((uintptr_t)map + pmd - 1) & ~(uintptr_t)(pmd - 1));
	if (madvise(p, pmd, MADV_HUGEPAGE) == 0) {
		p[0] = 1;
		e = own_entry(fd, (uintptr_t)p);
		head = pm_entry_present(e) ? pm_entry_pfn(e) : 0;
		e = own_entry(fd, (uintptr_t)p + pmd - ps);
		last = pm_entry_present(e) ? pm_entry_pfn(e) : 0;
	}
	if (head && last == head + n - 1 && !pm__kpf_pread(k, 0, head, rec, 1) &&
	    (rec[0] & (F(THP) | F(COMPOUND_HEAD))) == (F(THP) | F(COMPOUND_HEAD)) &&
	    madvise(p + pmd - ps, ps, MADV_DONTNEED) == 0 &&
	    !pm__kpf_pread(k, 1, last, &rec[1], 1) && !pm__kpf_pread(k, 0, last, &rec[2], 1) &&
	    !pm__kpf_pread(k, 0, head, rec, 1) && (rec[0] & F(COMPOUND_HEAD)) &&
	    (rec[2] & F(COMPOUND_TAIL)) && rec[1] <= 1)
		r = rec[1] == 0;
	munmap(map, 2 * pmd);
	close(fd);
	return r;
}

int pm__mapcount_per_page(const struct pm__kpf *k)
{
	const uint64_t *v = pm__kernel()->version;
	int r = atomic_load(&verdict);

	if (r >= 0)
		return r;
	if (v[0] < 6 || (v[0] == 6 && v[1] < 15)) {
		r = 1;
	} else {
		/* no THP to tell by: per folio, the answer that reads more */
		r = round_trip(k) == 1;
	}
	atomic_store(&verdict, r);
	return r;
}
