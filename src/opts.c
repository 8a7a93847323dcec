/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The caller's arguments: size-prefixed options and output structs, ranges. */
#include "internal.h"

#include <string.h>

/* Options structs have only 64-bit fields, so a well-formed size is a
 * multiple of 8 holding at least the size field. A caller compiled against
 * newer headers may pass a larger struct, but only if the fields this
 * library does not know are zero: silently ignoring a request is worse than
 * refusing it. */
int pm__opts_check(const void *opts, size_t known)
{
	const unsigned char *p = opts;
	uint64_t size;

	if (!opts)
		return 0;
	memcpy(&size, opts, sizeof(size));
	if (size < sizeof(uint64_t) || size % sizeof(uint64_t) || size > 4096)
		return -EINVAL;
	for (uint64_t i = known; i < size; i++)
		if (p[i])
			return -EINVAL;
	return 0;
}

int pm__out_size_check(uint64_t size, size_t min)
{
	return size < min || size % sizeof(uint64_t) ? -EINVAL : 0;
}

void pm__out_copy(void *dst, const void *src, size_t len)
{
	uint64_t size;

	memcpy(&size, dst, sizeof(size));
	memcpy(dst, src, size < len ? size : len);
	memcpy(dst, &size, sizeof(size));
}

bool pm__range_ok(uint64_t start, uint64_t end)
{
	const struct pm__kernel *k = pm__kernel();

	return !((start | end) & (k->page_size - 1)) && start < end && end <= k->user_top;
}
