/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_vmas and the list accessors: the maps text, and PROCMAP_QUERY for
 * the names the text leaves ambiguous. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * The maps text writes a newline in a path as "\012" and a backslash as it
 * is, so a name holding a backslash may stand for either: where the kernel
 * answers PROCMAP_QUERY that VMA's name is asked of it (the same VMA still:
 * same bounds, offset and file), so the list's names are the kernel's
 * exactly. The copy is made only when such a name is there.
 */
static int exact_names(struct pm_handle *h, struct pm_vma_list *l)
{
	struct pm_vma_list x = { 0 };
	char *buf = NULL;
	size_t cap = 0, i;
	int r = 0;

	for (i = 0; i < l->count && !strchr(l->v[i].name, '\\'); i++)
		;
	if (i == l->count)
		return 0;
	for (i = 0; i < l->count && !r; i++) {
		const struct pm_vma *v = &l->v[i];
		const char *name = v->name;
		struct pm_vma q;

		if (strchr(name, '\\')) {
			r = pm__query_vma(h, v->start, &q, &buf, &cap);
			if (r == 1 && q.start == v->start && q.end == v->end && q.pgoff == v->pgoff &&
			    q.dev == v->dev && q.inode == v->inode)
				name = q.name;
			/* no VMA there now, or a name the query does not print
			 * (PATH_MAX bytes with its " (deleted)", -ENOTTY): the
			 * text's name */
			r = r == 0 || r == 1 || r == -ENOTTY ? 0 : r;
		}
		if (!r)
			r = pm__list_add(&x, v, name, strlen(name));
	}
	free(buf);
	if (!r)
		r = pm__list_finish(&x);
	if (r) {
		pm__list_release(&x);
		return r;
	}
	pm__list_release(l);
	*l = x;
	return 0;
}

/* The maps text, not one PROCMAP_QUERY per VMA: its line costs a small
 * fraction of a query (10,000 VMAs here: 13.7-15.7 ms of queries, the text
 * read raw 1.2-1.5 ms, pm_vmas 1.7-2.1 ms). */
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
	r = pm__maps_list(h, l);
	if (r == 0 && pm__use_query(h))
		r = exact_names(h, l);
	if (r == 0)
		r = pm__handle_check(h);
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
