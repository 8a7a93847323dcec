/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The public header compiles as strict C11 (-pedantic -Werror). */
#include <pagemap/pagemap.h>

int main(void)
{
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_SNAPSHOT);
	uint64_t e = PM_ENTRY_PRESENT | 42;

	return (o.size == sizeof(o) && pm_entry_pfn(e) == 42 && PM_CHECK_VERSION(0, 1)) ? 0 : 1;
}
