// SPDX-License-Identifier: LGPL-2.1-or-later
// The public header compiles as C++ (-pedantic -Werror) and links.
#include <pagemap/pagemap.h>

int main()
{
	struct pm_read_opts o = {};
	o.size = sizeof(o);
	uint64_t e = PM_ENTRY_SWAP | (3ULL << 5) | 2;

	return (pm_entry_swapped(e) && pm_entry_swap_type(e) == 2 && pm_entry_swap_offset(e) == 3 &&
		pm_version() != nullptr && o.size == sizeof(o))
		       ? 0
		       : 1;
}
