/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PROCMAP_QUERY (6.11+): one VMA per ioctl, for lookups at an address and
 * the names the maps text leaves ambiguous. */
#include "internal.h"
#include "compat/uapi.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

bool pm__use_query(const struct pm_handle *h)
{
	return pm__feature(PM_FEAT_PROCMAP_QUERY) == 1 &&
	       !(h->open_flags & PM_OPEN_MAPS_TEXT);
}

int pm__query_vma(struct pm_handle *h, uint64_t addr, struct pm_vma *v, char **name,
		  size_t *name_cap)
{
	struct pm__procmap_query q;
	int r, fd = pm__handle_fd(h, &h->maps_fd, "maps");

	if (fd < 0)
		return fd;
	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.query_flags = PM__PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
	q.query_addr = addr;
	if (name) {
		/* the kernel prints a name into PATH_MAX bytes at most: a
		 * bigger buffer gets no longer one */
		if (!*name) {
			*name_cap = PATH_MAX;
			*name = malloc(*name_cap);
			if (!*name)
				return -ENOMEM;
		}
		q.vma_name_addr = (uint64_t)(uintptr_t)*name;
		q.vma_name_size = (uint32_t)*name_cap;
	}
	r = pm__ioctl(fd, PM__PROCMAP_QUERY, &q);
	if (r == -ENOENT)
		return 0;
	/* a path of PATH_MAX or more (the kernel's code says ENAMETOOLONG,
	 * its header E2BIG): only the maps text lists that VMA, so the caller
	 * takes the text */
	if ((r == -ENAMETOOLONG || r == -E2BIG) && name)
		return -ENOTTY;
	if (r < 0)
		return r;
	if (q.vma_start >= pm__kernel()->user_top)
		return 0;
	v->start = q.vma_start;
	v->end = q.vma_end;
	v->pgoff = q.vma_offset;
	v->flags = q.vma_flags & (PM_VMA_READ | PM_VMA_WRITE | PM_VMA_EXEC | PM_VMA_SHARED);
	v->dev = makedev(q.dev_major, q.dev_minor);
	v->inode = q.inode;
	v->name = name && q.vma_name_size ? *name : "";
	return 1;
}
