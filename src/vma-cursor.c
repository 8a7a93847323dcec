/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A forward cursor over the target's VMAs for the read engine and the
 * emulated scan: one PROCMAP_QUERY per step where the kernel has it, else
 * the maps text parsed once and walked. */
#include "internal.h"
#include "compat/uapi.h"

#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

void pm__vcursor_init(struct pm__vcursor *c, struct pm_handle *h)
{
	memset(c, 0, sizeof(*c));
	c->h = h;
	c->use_query = pm__use_query(h);
}

void pm__vcursor_fini(struct pm__vcursor *c)
{
	pm__list_release(&c->list);
	free(c->name);
	c->name = NULL;
}

static int load_list(struct pm__vcursor *c)
{
	char *buf = NULL;
	size_t len = 0;
	int r = pm__maps_read(c->h, &buf, &len);

	if (r == 0)
		r = pm__maps_parse(buf, len, pm__kernel()->user_top, &c->list);
	if (r == 0)
		r = pm__list_finish(&c->list);
	free(buf);
	c->have_list = r == 0;
	return r;
}

static int query(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v, bool want_name)
{
	struct pm__procmap_query q;
	int r;

	for (;;) {
		memset(&q, 0, sizeof(q));
		q.size = sizeof(q);
		q.query_flags = PM__PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
		q.query_addr = addr;
		if (want_name) {
			if (!c->name) {
				c->name_cap = 4096;
				c->name = malloc(c->name_cap);
				if (!c->name)
					return -ENOMEM;
			}
			q.vma_name_addr = (uint64_t)(uintptr_t)c->name;
			q.vma_name_size = (uint32_t)c->name_cap;
		}
		r = pm__ioctl(c->h->maps_fd, PM__PROCMAP_QUERY, &q);
		/* the kernel's code says ENAMETOOLONG, its header says E2BIG */
		if ((r == -ENAMETOOLONG || r == -E2BIG) && want_name && c->name_cap < (1U << 20)) {
			char *n = realloc(c->name, c->name_cap * 4);

			if (!n)
				return -ENOMEM;
			c->name = n;
			c->name_cap *= 4;
			continue;
		}
		break;
	}
	if (r == -ENOENT)
		return 0;
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
	v->name = want_name && q.vma_name_size ? c->name : "";
	return 1;
}

int pm__vcursor_next(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v, bool want_name)
{
	if (c->use_query) {
		int r = query(c, addr, v, want_name);

		if (r != -ENOTTY)
			return r;
		c->use_query = false;
	}
	if (!c->have_list) {
		int r = load_list(c);

		if (r)
			return r;
	}
	if (c->idx && c->idx <= c->list.count && c->list.v[c->idx - 1].end > addr)
		c->idx = 0; /* addresses went back: walk again */
	while (c->idx < c->list.count && c->list.v[c->idx].end <= addr)
		c->idx++;
	if (c->idx == c->list.count)
		return 0;
	*v = c->list.v[c->idx];
	return 1;
}
