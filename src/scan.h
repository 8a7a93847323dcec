/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The two paths of pm_scan: PAGEMAP_SCAN and the emulation. */
#ifndef PM_SCAN_H
#define PM_SCAN_H

#include "internal.h"
#include "scan-out.h"

PM_HIDDEN int pm__scan_native(struct pm_handle *h, uint64_t start, uint64_t end,
			      const struct pm__scan_req *q, struct pm__scan_out *o);
PM_HIDDEN int pm__scan_emulated(struct pm_handle *h, uint64_t start, uint64_t end,
				const struct pm__scan_req *q, struct pm__scan_out *o);

#endif
