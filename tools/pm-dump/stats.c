/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a run of pagemap entries adds to a row: one tally for the per-VMA
 * dump and for --all. */
#include "pm-dump.h"

void stats_tally(struct stats *st, const uint64_t *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		st->present += pm_entry_present(e[i]);
		st->swapped += pm_entry_swapped(e[i]);
		st->file += pm_entry_present(e[i]) && pm_entry_file(e[i]);
		st->exclusive += pm_entry_exclusive(e[i]);
		st->soft_dirty += pm_entry_soft_dirty(e[i]);
		st->guard += pm_entry_guard(e[i]);
	}
}

void stats_add(struct stats *to, const struct stats *from)
{
	to->size += from->size;
	to->present += from->present;
	to->swapped += from->swapped;
	to->file += from->file;
	to->exclusive += from->exclusive;
	to->soft_dirty += from->soft_dirty;
	to->guard += from->guard;
}
