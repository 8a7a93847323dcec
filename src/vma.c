/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VMA lists: building, accessors, and the choice of source. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		n *= 2;
	}
	q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

int pm__list_add(struct pm_vma_list *l, const struct pm_vma *v, const char *name,
		 size_t name_len)
{
	int r;

	r = grow((void **)&l->v, &l->cap, l->count + 1, sizeof(*l->v));
	if (!r)
		r = grow((void **)&l->name_off, &l->off_cap, l->count + 1, sizeof(*l->name_off));
	if (!r)
		r = grow((void **)&l->names, &l->names_cap, l->names_len + name_len + 1, 1);
	if (r)
		return r;
	memcpy(l->names + l->names_len, name, name_len);
	l->names[l->names_len + name_len] = '\0';
	l->name_off[l->count] = l->names_len;
	l->names_len += name_len + 1;
	l->v[l->count++] = *v;
	return 0;
}

int pm__list_finish(struct pm_vma_list *l)
{
	size_t n = 0;
	uint64_t prev_end = 0;

	/* A maps text read is several snapshots; whatever a concurrent change
	 * left out of order is dropped or clipped so the list stays sorted and
	 * non-overlapping, which every consumer relies on. */
	for (size_t i = 0; i < l->count; i++) {
		struct pm_vma v = l->v[i];

		if (v.end <= prev_end)
			continue;
		if (v.start < prev_end)
			v.start = prev_end;
		v.name = l->names + l->name_off[i];
		prev_end = v.end;
		l->v[n++] = v;
	}
	l->count = n;
	free(l->name_off);
	l->name_off = NULL;
	return 0;
}

void pm__list_release(struct pm_vma_list *l)
{
	free(l->v);
	free(l->names);
	free(l->name_off);
	memset(l, 0, sizeof(*l));
}

bool pm__use_query(const struct pm_handle *h)
{
	return (pm__kernel()->features & PM_FEAT_PROCMAP_QUERY) &&
	       !(h->open_flags & PM_OPEN_MAPS_TEXT);
}

static int text_list(struct pm_handle *h, struct pm_vma_list *l)
{
	char *buf = NULL;
	size_t len = 0;
	int r = pm__maps_read(h, &buf, &len);

	if (r == 0)
		r = pm__maps_parse(buf, len, pm__kernel()->user_top, l);
	free(buf);
	return r;
}

PM_EXPORT int pm_vmas(struct pm_handle *h, struct pm_vma_list **out)
{
	struct pm_vma_list *l;
	int r;

	if (!h || !out)
		return (int)pm__ret(-EINVAL);
	r = pm__handle_ready(h);
	if (r)
		return (int)pm__ret(r);
	l = calloc(1, sizeof(*l));
	if (!l)
		return (int)pm__ret(-ENOMEM);
	r = -ENOTTY;
	if (pm__use_query(h))
		r = pm__query_list(h, l);
	if (r == -ENOTTY) {
		pm__list_release(l);
		r = text_list(h, l);
	}
	if (r == 0)
		r = pm__list_finish(l);
	if (r) {
		pm_vma_list_free(l);
		return (int)pm__ret(r);
	}
	*out = l;
	return 0;
}

PM_EXPORT size_t pm_vma_count(const struct pm_vma_list *l)
{
	return l ? l->count : 0;
}

PM_EXPORT const struct pm_vma *pm_vma_at(const struct pm_vma_list *l, size_t i)
{
	return l && i < l->count ? &l->v[i] : NULL;
}

PM_EXPORT void pm_vma_list_free(struct pm_vma_list *l)
{
	if (!l)
		return;
	pm__list_release(l);
	free(l);
}
