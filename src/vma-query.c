/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PROCMAP_QUERY source (6.11+): one ioctl per VMA, no text. */
#include "internal.h"
#include "compat/uapi.h"

#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

static int query(struct pm_handle *h, uint64_t addr, struct pm__procmap_query *q, char *name,
		 size_t name_cap)
{
	memset(q, 0, sizeof(*q));
	q->size = sizeof(*q);
	q->query_flags = PM__PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
	q->query_addr = addr;
	if (name) {
		q->vma_name_addr = (uint64_t)(uintptr_t)name;
		q->vma_name_size = (uint32_t)name_cap;
	}
	return pm__ioctl(h->maps_fd, PM__PROCMAP_QUERY, q);
}

int pm__query_list(struct pm_handle *h, struct pm_vma_list *l)
{
	const uint64_t top = pm__kernel()->user_top;
	size_t cap = 4096;
	char *name = malloc(cap);
	uint64_t addr = 0;
	int r = 0;

	if (!name)
		return -ENOMEM;
	while (addr < top) {
		struct pm__procmap_query q;
		struct pm_vma v;

		r = query(h, addr, &q, name, cap);
		/* the kernel's code says ENAMETOOLONG, its header says E2BIG */
		if ((r == -ENAMETOOLONG || r == -E2BIG) && cap < (1U << 20)) {
			char *nn = realloc(name, cap * 4);

			if (!nn) {
				r = -ENOMEM;
				break;
			}
			name = nn;
			cap *= 4;
			continue;
		}
		if (r == -ENOENT) {
			r = 0;
			break;
		}
		if (r < 0 || q.vma_start >= top)
			break;
		v.start = q.vma_start;
		v.end = q.vma_end;
		v.pgoff = q.vma_offset;
		v.flags = q.vma_flags & (PM_VMA_READ | PM_VMA_WRITE | PM_VMA_EXEC | PM_VMA_SHARED);
		v.dev = makedev(q.dev_major, q.dev_minor);
		v.inode = q.inode;
		v.name = NULL;
		r = pm__list_add(l, &v, name, q.vma_name_size ? q.vma_name_size - 1 : 0);
		if (r)
			break;
		addr = q.vma_end;
	}
	free(name);
	return r;
}
