/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VMA list arena that both sources fill: VMAs and their names, grown
 * as added, made sorted and non-overlapping when finished. */
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

int pm__list_reserve(struct pm_vma_list *l, size_t count, size_t names_len)
{
	int r = grow((void **)&l->v, &l->cap, count, sizeof(*l->v));

	if (!r)
		r = grow((void **)&l->name_off, &l->off_cap, count, sizeof(*l->name_off));
	if (!r)
		r = grow((void **)&l->names, &l->names_cap, names_len, 1);
	return r;
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

unsigned pm__vma_kind(const struct pm_vma *v)
{
	const char *n = v->name;

	if (!strncmp(n, "[vvar", 5))
		return PM__VKIND_PFNMAP;
	return !(v->flags & PM_VMA_SHARED) && !v->inode &&
			       (!n[0] || !strcmp(n, "[heap]") || !strncmp(n, "[stack", 6) ||
				!strncmp(n, "[anon:", 6))
		       ? PM__VKIND_ANON_PRIVATE
		       : 0;
}

size_t pm__list_find(const struct pm_vma_list *l, uint64_t addr)
{
	size_t lo = 0, hi = l->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->v[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void pm__list_release(struct pm_vma_list *l)
{
	free(l->v);
	free(l->names);
	free(l->name_off);
	memset(l, 0, sizeof(*l));
}
