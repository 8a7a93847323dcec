/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The public header compiles as strict C11 (-pedantic -Werror), and its
 * macros and inline decoders work there. The flag names of 0.1 and 0.2
 * still build, with the values of the names that replaced them. */
#include <pagemap/pagemap.h>

_Static_assert(PM_READ_SNAPSHOT == PM_READ_F_SNAPSHOT, "alias");
_Static_assert(PM_READ_BEST_EFFORT == PM_READ_F_BEST_EFFORT, "alias");
_Static_assert(PM_READ_GUARDED == PM_READ_INFO_GUARDED, "alias");
_Static_assert(PM_READ_RETRIED == PM_READ_INFO_RETRIED, "alias");
_Static_assert(PM_READ_UNSTABLE == PM_READ_INFO_UNSTABLE, "alias");
_Static_assert(PM_WT_AUTO == PM_WT_METHOD_AUTO, "alias");
_Static_assert(PM_WT_UFFD == PM_WT_METHOD_UFFD, "alias");
_Static_assert(PM_WT_SOFT_DIRTY == PM_WT_METHOD_SOFT_DIRTY, "alias");
_Static_assert(PM_WT_EXACT == PM_WT_F_EXACT, "alias");
_Static_assert(PM_WT_RESET == PM_WT_COLLECT_RESET, "alias");
/* the values of 0.2, which the ABI fixes */
_Static_assert(PM_READ_F_SNAPSHOT == 1 && PM_READ_F_BEST_EFFORT == 2, "abi");
_Static_assert(PM_READ_INFO_GUARDED == 1 && PM_READ_INFO_RETRIED == 2 &&
		       PM_READ_INFO_UNSTABLE == 4,
	       "abi");
_Static_assert(PM_WT_METHOD_AUTO == 0 && PM_WT_METHOD_UFFD == 1 && PM_WT_METHOD_SOFT_DIRTY == 2,
	       "abi");
_Static_assert(PM_WT_F_EXACT == 1 && PM_WT_COLLECT_RESET == 1, "abi");

int main(void)
{
	PM_OPTS(pm_read_opts, o, .flags = PM_READ_F_SNAPSHOT);
	PM_OPTS(pm_wtrack_opts, w, .method = PM_WT_UFFD, .flags = PM_WT_EXACT);
	uint64_t e = PM_ENTRY_PRESENT | 42;

	if (o.size != sizeof(o) || w.method != PM_WT_METHOD_UFFD || pm_entry_pfn(e) != 42 ||
	    !PM_CHECK_VERSION(0, 1))
		return 1;
	return 0;
}
