/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The public header compiles as strict C11 (-pedantic -Werror), and its
 * macros and inline decoders work there. */
#include <pagemap/pagemap.h>

int main(void)
{
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_SNAPSHOT);
	uint64_t e = PM_ENTRY_PRESENT | 42;

	if (o.size != sizeof(o) || pm_entry_pfn(e) != 42 || !PM_CHECK_VERSION(0, 1))
		return 1;
	return 0;
}
