/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write tracking of the caller's own memory with userfaultfd async
 * write-protection (6.7+).
 *
 * The ranges are registered in write-protect mode on a userfaultfd with
 * WP_ASYNC (the kernel resolves a write fault itself and clears the page's
 * uffd-wp bit) and WP_UNPOPULATED (markers protect never-touched pages).
 * "Written" is then PAGE_IS_WRITTEN, and PAGEMAP_SCAN with WP_MATCHING
 * reports the written pages and protects them again under the page-table
 * lock, so a racing write is either seen now or faults again afterwards.
 * The scan goes through the verified native path, which never protects a
 * page it cannot hand to the caller.
 *
 * Granularity: a write to a write-protected PMD-mapped THP splits the PMD
 * (wp_huge_pmd in async mode), so reports are per 4 KiB page; a hugetlb
 * page is reported whole.
 *
 * Kernels between 6.7 and the 2026 stable fixes ("fix PAGEMAP_SCAN written
 * state for unpopulated ptes / PMD holes") report zapped memory as clean
 * and never protect it again: writes there are lost. That is probed once
 * by behaviour, and such kernels get -EOPNOTSUPP.
 */
#include "wtrack.h"
#include "compat/uapi.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>


/* A userfaultfd with async write-protection, or -EOPNOTSUPP. */
static int uffd_new(void)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = PM__UFFD_FEATURE_WP_ASYNC | PM__UFFD_FEATURE_WP_UNPOPULATED,
	};
	int fd = pm__uffd_open(O_NONBLOCK), r;

	if (fd < 0)
		return fd == -ENOSYS ? -EOPNOTSUPP : fd;
	r = pm__ioctl(fd, UFFDIO_API, &api);
	if (r == 0 && !(api.features & PM__UFFD_FEATURE_WP_ASYNC))
		r = -EINVAL;
	if (r) {
		close(fd);
		return r == -EINVAL ? -EOPNOTSUPP : r;
	}
	return fd;
}

static int uffd_register(int fd, uint64_t start, uint64_t end)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return pm__ioctl(fd, UFFDIO_REGISTER, &reg);
}

static void uffd_unregister(int fd, uint64_t start, uint64_t end)
{
	struct uffdio_range range = { .start = start, .len = end - start };

	pm__ioctl(fd, UFFDIO_UNREGISTER, &range);
}

/*
 * Is every VMA of the sub-ranges still registered (a mapping that replaced
 * tracked memory is not)? Asked before a collect write-protects anything:
 * a PAGEMAP_SCAN that meets such a VMA under CHECK_WPASYNC fails with
 * EPERM after it has write-protected, and copied out, the written pages
 * before it, so those would be lost to a caller that gets only the error.
 * The VMAs that match are skipped whole by the kernel, so this is cheap.
 *
 * With @join, one scan covers each run of joined ranges. A VMA in the gap
 * between two of them is no tracked memory: that pair is no longer
 * joined, and the run is checked again.
 */
static int unregistered_at(struct pm_handle *h, uint64_t start, uint64_t end, uint64_t *at)
{
	const struct pm__scan_req q = {
		.mask = PM_CAT_WPALLOWED,
		.inverted = PM_CAT_WPALLOWED,
		.ret = PM_CAT_WPALLOWED,
	};
	struct pm_region v[1];
	struct pm__scan_out o;
	int err;

	pm__out_init(&o, v, 1, 0);
	err = pm__scan_native(h, start, end, &q, &o);
	if (err)
		return err;
	*at = v[0].start;
	return o.n != 0;
}

/* The end of the run of joined ranges that starts with r[i], as an index. */
static size_t run_last(const bool *join, size_t i, size_t n)
{
	while (join && i + 1 < n && join[i])
		i++;
	return i;
}

static int registered(struct pm_handle *h, const struct pm_range *r, size_t n, bool *join)
{
	for (size_t i = 0; i < n;) {
		size_t j = run_last(join, i, n), k = i;
		uint64_t at = 0;
		int err = unregistered_at(h, r[i].start, r[j].end, &at);

		if (err <= 0) {
			if (err)
				return err;
			i = j + 1;
			continue;
		}
		while (k < j && r[k].end <= at)
			k++;
		if (at >= r[k].start)
			return -EFAULT;
		join[k - 1] = false; /* in the gap before r[k] */
	}
	return 0;
}

/* Write-protect every written page of [start, end). */
static int protect(struct pm_handle *h, uint64_t start, uint64_t end)
{
	const struct pm__scan_req q = {
		.flags = PM_SCAN_F_WP_MATCHING,
		.mask = PM_CAT_WRITTEN,
		.ret = PM_CAT_WRITTEN,
	};
	struct pm__scan_out o;

	pm__out_init(&o, NULL, 0, 0);
	return pm__scan_native(h, start, end, &q, &o);
}

/*
 * Does this kernel report zapped memory as written (and protect it again)?
 * Three 2 MiB blocks, populated and protected: the first (a THP where the
 * kernel gives one) and the second (4 KiB pages, so its page table can be
 * reclaimed) zapped whole, the third in one page. All of the first two
 * and that one page must come back written.
 */
static int zaps_ok = -1; /* once known: 1 or 0 */
static pthread_mutex_t zaps_lock = PTHREAD_MUTEX_INITIALIZER;

/* 1 or 0, or -errno when the probe itself could not run (not cached). */
static int probe_zaps(void)
{
	const uint64_t ps = pm__kernel()->page_size, huge = pm__pmd_pages() * ps;
	const struct pm__scan_req q = { .mask = PM_CAT_WRITTEN, .ret = PM_CAT_WRITTEN };
	struct pm_region vec[4];
	struct pm__scan_out o;
	struct pm_handle *h = NULL;
	size_t len = 4 * huge;
	char *map, *p;
	int fd = -1, r;

	pm__out_init(&o, vec, 4, 0);
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return -errno;
	p = (char *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
	madvise(p, huge, MADV_HUGEPAGE);
	madvise(p + huge, 2 * huge, MADV_NOHUGEPAGE);
	memset(p, 1, 3 * huge);
	r = pm_open(0, NULL, &h);
	if (!r)
		r = fd = uffd_new();
	if (r >= 0)
		r = uffd_register(fd, (uintptr_t)p, (uintptr_t)p + 3 * huge);
	if (!r)
		r = protect(h, (uintptr_t)p, (uintptr_t)p + 3 * huge);
	if (!r) {
		madvise(p, 2 * huge, MADV_DONTNEED);
		madvise(p + 2 * huge + ps, ps, MADV_DONTNEED);
		r = pm__scan_native(h, (uintptr_t)p, (uintptr_t)p + 3 * huge, &q, &o);
	}
	if (!r)
		r = o.n == 2 && vec[0].start == (uintptr_t)p &&
		    vec[0].end == (uintptr_t)p + 2 * huge &&
		    vec[1].start == (uintptr_t)p + 2 * huge + ps &&
		    vec[1].end == (uintptr_t)p + 2 * huge + 2 * ps;
	if (fd >= 0)
		close(fd);
	pm_close(h);
	munmap(map, len);
	return r;
}

static int zaps_reported(void)
{
	int r;

	pthread_mutex_lock(&zaps_lock);
	if (zaps_ok < 0) {
		r = probe_zaps();
		if (r >= 0)
			zaps_ok = r;
	} else {
		r = zaps_ok;
	}
	pthread_mutex_unlock(&zaps_lock);
	return r;
}

const char *pm__wt_uffd_why_not(const struct pm_handle *h)
{
	if (!h->self)
		return "tracks the calling process's own memory only";
	if (pm__feature(PM_FEAT_PAGEMAP_SCAN) != 1)
		return "no PAGEMAP_SCAN (Linux 6.7+)";
	if (pm__feature(PM_FEAT_UFFD_WP_ASYNC) != 1)
		return "no WP_ASYNC (Linux 6.7+), or userfaultfd not permitted";
	switch (zaps_reported()) {
	case 1:
		return NULL;
	case 0:
		return "PAGEMAP_SCAN reports zapped memory as clean on this kernel (fixed by the "
		       "2026 stable updates): writes there would be lost";
	default:
		return "could not probe how PAGEMAP_SCAN reports zapped memory";
	}
}

int pm__wt_uffd_start(struct pm_wtrack *wt)
{
	size_t i;
	int r;

	if (pm__wt_uffd_why_not(wt->h))
		return -EOPNOTSUPP;
	/* the probe's answer can be older than a seccomp filter or a
	 * changed sysctl: the real userfaultfd decides */
	wt->uffd = uffd_new();
	if (wt->uffd < 0)
		return wt->uffd;
	/* -EBUSY: registered already, by another tracker or the application */
	for (i = 0; i < wt->nranges; i++) {
		r = uffd_register(wt->uffd, wt->ranges[i].start, wt->ranges[i].end);
		if (r)
			break;
	}
	if (!r)
		r = pm__wt_uffd_reset(wt);
	if (r) {
		while (i-- > 0)
			uffd_unregister(wt->uffd, wt->ranges[i].start, wt->ranges[i].end);
		close(wt->uffd);
		wt->uffd = -1;
	}
	return r;
}

/* Ranges checked and scanned together: a call checks the ranges it
 * reaches, at most this many past the one where its output fills; about
 * one query each, fewer than the cursor's QUERY_STEPS. */
#define CHUNK 30

int pm__wt_uffd_collect(struct pm_wtrack *wt, const struct pm_range *r, size_t n,
			struct pm__scan_out *o, bool reset)
{
	/* no CHECK_WPASYNC (see registered()): a VMA replaced after the
	 * check reads all written, an over-report, and fails the next call */
	const struct pm__scan_req q = {
		.flags = reset ? PM_SCAN_F_WP_MATCHING : 0,
		.mask = PM_CAT_WRITTEN,
		.ret = PM_CAT_WRITTEN,
	};
	int err = 0;

	/* Whether a gap holds no VMA is a fact of this call (the check of a
	 * pass's first call cannot answer for memory another userfaultfd
	 * registers there since: the registration check takes it for
	 * tracked), so each chunk is checked just before its scans; what is
	 * mapped in a gap between the two is the residual. */
	for (size_t i = 0, m; !err && i < n && !o->done; i += m) {
		struct pm__vcursor vc, *c = wt->vc;
		bool join[CHUNK];

		m = n - i < CHUNK ? n - i : CHUNK;
		/* where lookups are PROCMAP_QUERYs, a cursor of its own per
		 * chunk: a call that reaches many ranges would otherwise read
		 * the whole maps text (vma-cursor.c) */
		if (c->use_query) {
			pm__vcursor_init(&vc, wt->h);
			c = &vc;
		}
		err = pm__wt_mapped(c, r + i, m, join);
		if (c == &vc)
			pm__vcursor_fini(&vc);
		if (!err)
			err = registered(wt->h, r + i, m, join);
		for (size_t a = i, b; !err && a < i + m && !o->done; a = b + 1) {
			b = i + run_last(join, a - i, m);
			err = pm__scan_native(wt->h, r[a].start, r[b].end, &q, o);
		}
	}
	return err;
}

int pm__wt_uffd_reset(struct pm_wtrack *wt)
{
	int r = registered(wt->h, wt->ranges, wt->nranges, NULL);

	for (size_t i = 0; !r && i < wt->nranges; i++)
		r = protect(wt->h, wt->ranges[i].start, wt->ranges[i].end);
	return r;
}

void pm__wt_uffd_stop(struct pm_wtrack *wt, bool owner)
{
	if (wt->uffd < 0)
		return;
	/* Unregister explicitly: closing releases the registration only with
	 * the last reference, and a forked child may hold one. A child must
	 * not: the ioctls act on the creator's mm. */
	for (size_t i = 0; owner && i < wt->nranges; i++)
		uffd_unregister(wt->uffd, wt->ranges[i].start, wt->ranges[i].end);
	close(wt->uffd);
	wt->uffd = -1;
}
