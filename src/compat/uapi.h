/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel uAPI definitions newer than the build host's headers (Debian 12
 * ships 6.1's). Layouts are the kernel's: include/uapi/linux/fs.h,
 * mman-common.h and userfaultfd.h of Linux 6.12+.
 */
#ifndef PM_COMPAT_UAPI_H
#define PM_COMPAT_UAPI_H

#include <stdint.h>
#include <sys/ioctl.h>

/* PROCMAP_QUERY (6.11) */
struct pm__procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define PM__PROCMAP_QUERY _IOWR('f', 17, struct pm__procmap_query)
#define PM__PROCMAP_QUERY_VMA_READABLE       0x01
#define PM__PROCMAP_QUERY_VMA_WRITABLE       0x02
#define PM__PROCMAP_QUERY_VMA_EXECUTABLE     0x04
#define PM__PROCMAP_QUERY_VMA_SHARED         0x08
#define PM__PROCMAP_QUERY_COVERING_OR_NEXT_VMA 0x10

/* PAGEMAP_SCAN (6.7) */
struct pm__page_region {
	uint64_t start, end, categories;
};
struct pm__scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PM__PAGEMAP_SCAN _IOWR('f', 16, struct pm__scan_arg)

/* madvise guard regions (6.13) */
#define PM__MADV_GUARD_INSTALL 102

/* userfaultfd (features after 6.1) */
#define PM__UFFD_USER_MODE_ONLY 1
#define PM__UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#define PM__UFFD_FEATURE_WP_ASYNC       (1ULL << 15)

#endif
