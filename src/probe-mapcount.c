/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Whether the kernel keeps a mapcount per page (every kernel before 6.15,
 * and 6.15+ built with CONFIG_PAGE_MAPCOUNT) or per folio
 * (CONFIG_NO_PAGE_MAPCOUNT, 6.15+), which no interface of the kernel's
 * tells user space. It decides what pagemap's exclusive bit means for a
 * page of a large folio: per page, the page's own mapcount is 1, so
 * pm_usage needs no kpagecount read for it; per folio, only that no other
 * process maps the folio.
 *
 * Told by a round trip: a THP of this process with its last page unmapped
 * (the PMD split, the folio whole), its last two pages' kpagecount read in
 * one read. Per page they are the pages' own mapcounts, 1 and 0; per folio
 * both are the folio's average, rounded (with 4 KiB pages 511 mappings
 * over 512 pages: 1 and 1). A folio split or migrated meanwhile mostly
 * shows in its flags or PFNs afterwards, and such a trip tells nothing.
 * What the checks cannot see: on a per-folio kernel, a migration that
 * unmaps the folio between the two records (read one PFN at a time, so
 * 1 then 0) and then fails, putting the same PFNs back. So two trips on
 * two THPs must both say per page before it is believed.
 */
#include "kpages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#define F(b) (1ULL << PM_KPF_##b)
#define MAX_PMD (32ULL << 20) /* larger THPs (64 KiB pages: 512 MiB) are not tried */
#define RETRY_NS 1000000000LL /* a trip that told nothing: tried again after 1 s */

static _Atomic int verdict = -1;
static _Atomic int64_t last_try = INT64_MIN / 2;

/* This process's pagemap entry for @addr's page: its PFN if present, else 0. */
static uint64_t own_pfn(int fd, const void *addr)
{
	uint64_t e = 0;

	if (pm__pread_full(fd, &e, sizeof(e), (uintptr_t)addr / pm__kernel()->page_size * 8, NULL))
		return 0;
	return pm_entry_present(e) ? pm_entry_pfn(e) : 0;
}

/* Whether @pfn's flags have every one of @bits. */
static bool flags_have(const struct pm__kpf *k, uint64_t pfn, uint64_t bits)
{
	uint64_t f;

	return !pm__kpf_pread(k, 0, pfn, &f, 1) && (f & bits) == bits;
}

/* 1 per page, 0 per folio, -1 when the trip told nothing (no THP here,
 * no PFNs for this caller, the folio moved or split meanwhile). */
static int round_trip(const struct pm__kpf *k, int fd)
{
	const uint64_t ps = pm__kernel()->page_size, n = pm__pmd_pages(), pmd = n * ps;
	uint64_t head = 0, rec[2] = { 2, 2 };
	int r = -1;
	char *map, *p;

	/* inaccessible until unlocked: under mlockall(MCL_FUTURE) a mapping
	 * is populated and locked at once (no THP fault of ours, and
	 * MADV_DONTNEED refused) */
	map = mmap(NULL, 2 * pmd, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return -1;
	p = (char *)(((uintptr_t)map + pmd - 1) & ~(uintptr_t)(pmd - 1));
	(void)munlock(map, 2 * pmd);
	/* not into a child forked meanwhile by another thread */
	if (madvise(map, 2 * pmd, MADV_DONTFORK) == 0 && madvise(p, pmd, MADV_HUGEPAGE) == 0 &&
	    mprotect(map, 2 * pmd, PROT_READ | PROT_WRITE) == 0) {
		p[0] = 1;
		head = own_pfn(fd, p);
	}
	if (head && own_pfn(fd, p + pmd - ps) == head + n - 1 &&
	    flags_have(k, head, F(THP) | F(COMPOUND_HEAD)) &&
	    madvise(p + pmd - ps, ps, MADV_DONTNEED) == 0 &&
	    !pm__kpf_pread(k, 1, head + n - 2, rec, 2) &&
	    /* the same folio, still whole and mapped where it was */
	    flags_have(k, head, F(COMPOUND_HEAD)) && flags_have(k, head + n - 1, F(COMPOUND_TAIL)) &&
	    own_pfn(fd, p) == head && own_pfn(fd, p + pmd - 2 * ps) == head + n - 2) {
		if (rec[0] == 1 && rec[1] == 0)
			r = 1;
		else if (rec[0] == 1 && rec[1] == 1)
			r = 0;
	}
	munmap(map, 2 * pmd);
	return r;
}

/* Two trips that agree on per page, or one that says per folio. */
static int ask(const struct pm__kpf *k)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r = -1;

	if (fd >= 0) {
		r = round_trip(k, fd);
		if (r == 1 && round_trip(k, fd) != 1)
			r = -1;
		close(fd);
	}
	return r;
}

int pm__mapcount_per_page(const struct pm__kpf *k)
{
	const uint64_t *v = pm__kernel()->version;
	int r = atomic_load(&verdict);
	int64_t t, last;

	if (r >= 0)
		return r;
	if (v[0] && (v[0] < 6 || (v[0] == 6 && v[1] < 15))) {
		r = 1;
	} else if (pm__pmd_pages() * pm__kernel()->page_size > MAX_PMD) {
		r = 0;
	} else {
		/* one asker at a time; a trip that told nothing is not
		 * remembered, but not repeated by every call either. Callers
		 * meanwhile take the per-folio rule for their count. */
		t = (int64_t)pm__mono_ns();
		last = atomic_load(&last_try);
		if (t - last < RETRY_NS || !atomic_compare_exchange_strong(&last_try, &last, t))
			return -1;
		r = ask(k);
		atomic_store(&last_try, (int64_t)pm__mono_ns());
		if (r < 0)
			return -1;
	}
	atomic_store(&verdict, r);
	return r;
}
