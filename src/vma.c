/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pm_vmas and the list accessors: the choice of source (PROCMAP_QUERY,
 * else the maps text). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

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
	if (r == 0)
		r = pm__list_finish(l);
	if (r == -ENOTTY) {
		pm__list_release(l);
		r = pm__maps_list(h, l);
	}
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
