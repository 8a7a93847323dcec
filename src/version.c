/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)

PM_EXPORT const char *pm_version(void)
{
	return STR(PM_VERSION_MAJOR) "." STR(PM_VERSION_MINOR) "." STR(PM_VERSION_MICRO);
}
