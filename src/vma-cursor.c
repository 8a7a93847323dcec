/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A forward cursor over the target's VMAs for the read engine and the
 * emulated scan: one PROCMAP_QUERY per step where the kernel has it, else
 * the maps text parsed once and walked. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

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

void pm__vcursor_forget(struct pm__vcursor *c)
{
	c->have_last = false;
}

int pm__vcursor_next(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v, bool want_name)
{
	if (c->use_query) {
		int r;

		/* nothing starts between the last query and the VMA it found */
		if (c->have_last && addr >= c->last_addr && (!want_name || c->last_named) &&
		    (c->last_r == 0 || addr < c->last.end)) {
			if (c->last_r)
				*v = c->last;
			return c->last_r;
		}
		r = pm__query_vma(c->h, addr, v, want_name ? &c->name : NULL, &c->name_cap);
		if (r != -ENOTTY) {
			c->have_last = r >= 0;
			c->last_r = r;
			c->last_addr = addr;
			c->last_named = want_name;
			if (r == 1)
				c->last = *v;
			return r;
		}
		c->use_query = false;
	}
	if (!c->have_list) {
		int r = pm__maps_list(c->h, &c->list);

		if (r)
			return r;
		c->have_list = true;
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
