/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The physical-page files (/proc/kpageflags, kpagecount, kpagecgroup),
 * opened once and read by several lookups (pm_kpages, pm_usage). */
#ifndef PM_KPAGES_H
#define PM_KPAGES_H

#include "internal.h"

#define PM__KPAGE_FILES 3

struct pm__kpf {
	uint64_t what;             /* PM_KPAGE_* opened */
	int fd[PM__KPAGE_FILES];   /* flags, count, cgroup; -1 when not asked */
};

/* Open the files @what names: 0, -EOPNOTSUPP (a file the kernel lacks),
 * or the open's errno (-EACCES, -EPERM without the rights). */
PM_HIDDEN int pm__kpf_open(struct pm__kpf *k, uint64_t what);
PM_HIDDEN void pm__kpf_close(struct pm__kpf *k);
/* Records [pfn, pfn + n) of file @f (0 flags, 1 count, 2 cgroup) in one
 * read; past the end of memory, flags read as KPF_NOPAGE, others 0. */
PM_HIDDEN int pm__kpf_pread(const struct pm__kpf *k, int f, uint64_t pfn, uint64_t *buf,
			    size_t n);
/* Whether mapcounts are per page (1) or per folio (0), decided once by
 * THPs of this process (probe-mapcount.c) read through @k (flags and
 * count open: the caller's); -1 while nothing could tell (no THP, no
 * rights): asked again a second later. */
PM_HIDDEN int pm__mapcount_per_page(const struct pm__kpf *k);
/* pm_kpages on open files: records for @n PFNs into @out. */
PM_HIDDEN int pm__kpf_read(const struct pm__kpf *k, const uint64_t *pfns, size_t n,
			   struct pm_kpage *out);

#endif
