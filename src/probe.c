/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Kernel probe: every feature decided by a real round trip, once per process. */
#include "config.h"
#include "internal.h"
#include "compat/uapi.h"

#include <fcntl.h>
#include <sched.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static struct pm__kernel kernel;
static pthread_once_t kernel_once = PTHREAD_ONCE_INIT;

static int open_self(const char *name, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/%s", name);
	return open(path, flags | O_CLOEXEC);
}

/* One entry of this process's pagemap for @addr, or 0 on failure. */
static uint64_t self_entry(uint64_t addr)
{
	uint64_t e = 0;
	int fd = open_self("pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pm__pread_full(fd, &e, sizeof(e), addr / kernel.page_size * 8, NULL))
		e = 0;
	close(fd);
	return e;
}

static void parse_version(void)
{
	struct utsname u;
	unsigned long v[3] = { 0, 0, 0 };

	if (uname(&u) == 0 && sscanf(u.release, "%lu.%lu.%lu", &v[0], &v[1], &v[2]) >= 2) {
		for (int i = 0; i < 3; i++)
			kernel.version[i] = v[i];
	}
}

/* The user address-space limit is TASK_SIZE, which depends on the paging
 * depth the kernel booted with. Find it by asking where mmap can place a
 * page: MAP_FIXED_NOREPLACE answers ENOMEM above TASK_SIZE and EEXIST (or
 * success) below it. */
static bool mappable(uint64_t addr)
{
	void *p = mmap((void *)(uintptr_t)addr, kernel.page_size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return errno == EEXIST;
	munmap(p, kernel.page_size);
	return (uint64_t)(uintptr_t)p == addr;
}

static void probe_user_top(void)
{
	static const unsigned bits[] = { 57, 56, 52, 48, 47, 39 };

	kernel.user_top = 1ULL << 47;
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		uint64_t top = 1ULL << bits[i];

		if (sizeof(void *) < 8 && bits[i] >= 32)
			continue;
		if (!mappable(top - 2 * kernel.page_size))
			continue;
		/* x86 keeps the last page below the boundary out of TASK_SIZE */
		kernel.user_top = mappable(top - kernel.page_size) ? top : top - kernel.page_size;
		return;
	}
}

static void probe_scan(void)
{
	struct pm__scan_arg a;
	int fd = open_self("pagemap", O_RDONLY);

	if (fd < 0)
		return;
	/* start == end is a valid no-op scan that still validates every mask */
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.start = a.end = kernel.page_size;
	if (pm__ioctl(fd, PM__PAGEMAP_SCAN, &a) == 0) {
		kernel.features |= PM_FEAT_PAGEMAP_SCAN;
		for (unsigned bit = 0; bit < 16; bit++) {
			a.return_mask = 1ULL << bit;
			if (pm__ioctl(fd, PM__PAGEMAP_SCAN, &a) == 0)
				kernel.scan_categories |= 1ULL << bit;
		}
	}
	close(fd);
}

static void probe_query(void)
{
	struct pm__procmap_query q;
	int fd = open_self("maps", O_RDONLY);
	int r;

	if (fd < 0)
		return;
	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.query_flags = PM__PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
	r = pm__ioctl(fd, PM__PROCMAP_QUERY, &q);
	if (r == 0 || r == -ENOENT)
		kernel.features |= PM_FEAT_PROCMAP_QUERY;
	close(fd);
}

static void probe_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	/* unprivileged_userfaultfd=0 still allows user-mode-only faults */
	if (fd < 0 && errno == EPERM)
		fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | PM__UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return;
	if (ioctl((int)fd, UFFDIO_API, &api) == 0 && (api.features & PM__UFFD_FEATURE_WP_ASYNC))
		kernel.features |= PM_FEAT_UFFD_WP_ASYNC;
	close((int)fd);
}

static void probe_io_uring(void)
{
#if HAVE_LIBURING
	unsigned char params[120]; /* struct io_uring_params */
	long fd;

	memset(params, 0, sizeof(params));
	fd = syscall(SYS_io_uring_setup, 1, params);
	if (fd >= 0) {
		kernel.features |= PM_FEAT_IO_URING;
		close((int)fd);
	}
#endif
}

static void probe_guard(void)
{
	uint64_t ps = kernel.page_size;
	char *p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	if (madvise(p, ps, PM__MADV_GUARD_INSTALL) == 0 &&
	    (self_entry((uint64_t)(uintptr_t)p) & PM_ENTRY_GUARD))
		kernel.features |= PM_FEAT_GUARD_REGIONS;
	munmap(p, 2 * ps);
}

/* Writing clear_refs "succeeds" on kernels without soft-dirty, so prove it
 * works: a new VMA reads dirty, clearing makes it clean, a write makes it
 * dirty again. Done on a child so the caller's own soft-dirty state is left
 * alone. The child is a raw clone with no exit signal: the caller gets no
 * SIGCHLD and its own reaper (waitpid(-1)) cannot take our child; it makes
 * only plain system calls. */
static uint64_t child_entry(int fd, uint64_t addr)
{
	uint64_t e = 0;

	if (pm__pread_full(fd, &e, sizeof(e), addr / kernel.page_size * 8, NULL))
		return 0;
	return e;
}

static void probe_soft_dirty(void)
{
	int to_child[2], to_parent[2];
	char path[64], c = 'x';
	uint64_t addr = 0, e1 = 0, e2 = 0, e3 = 0;
	int pm = -1, cr = -1;
	pid_t pid;

	if (pipe2(to_child, O_CLOEXEC))
		return;
	if (pipe2(to_parent, O_CLOEXEC)) {
		close(to_child[0]);
		close(to_child[1]);
		return;
	}
	pid = (pid_t)syscall(SYS_clone, 0UL, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		char *p;

		close(to_child[1]);
		close(to_parent[0]);
		p = mmap(NULL, kernel.page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);

		if (p == MAP_FAILED)
			_exit(1);
		p[0] = 1;
		addr = (uint64_t)(uintptr_t)p;
		if (write(to_parent[1], &addr, sizeof(addr)) != sizeof(addr) ||
		    read(to_child[0], &c, 1) != 1)
			_exit(1);
		p[0] = 2;
		if (write(to_parent[1], &c, 1) != 1)
			_exit(1);
		(void)!read(to_child[0], &c, 1);
		_exit(0);
	}
	close(to_child[0]);
	close(to_parent[1]);
	if (pid < 0)
		goto out;
	if (read(to_parent[0], &addr, sizeof(addr)) != sizeof(addr))
		goto reap;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
	cr = open(path, O_WRONLY | O_CLOEXEC);
	if (pm < 0 || cr < 0)
		goto reap;
	e1 = child_entry(pm, addr);
	if (write(cr, "4", 1) != 1)
		goto reap;
	e2 = child_entry(pm, addr);
	if (write(to_child[1], &c, 1) != 1 || read(to_parent[0], &c, 1) != 1)
		goto reap;
	e3 = child_entry(pm, addr);
	if ((e1 & e3 & PM_ENTRY_SOFT_DIRTY) && (e2 & PM_ENTRY_PRESENT) &&
	    !(e2 & PM_ENTRY_SOFT_DIRTY))
		kernel.features |= PM_FEAT_SOFT_DIRTY;
reap:
	close(to_child[1]);
	to_child[1] = -1;
	while (waitpid(pid, NULL, __WCLONE) < 0 && errno == EINTR)
		;
out:
	if (to_child[1] >= 0)
		close(to_child[1]);
	close(to_parent[0]);
	if (pm >= 0)
		close(pm);
	if (cr >= 0)
		close(cr);
}

static void decide_retry_fix(void)
{
	const char *env = getenv("LIBPAGEMAP_ASSUME_RETRY_FIX");
	const uint64_t *v = kernel.version;
	struct stat st;

	if (env && (!strcmp(env, "0") || !strcmp(env, "1"))) {
		kernel.fix = env[0] == '1' ? PM_FIX_PRESENT : PM_FIX_ABSENT;
		snprintf(kernel.fix_reason, sizeof(kernel.fix_reason),
			 "LIBPAGEMAP_ASSUME_RETRY_FIX=%s in the environment", env);
	} else if (v[0] == 0) {
		kernel.fix = PM_FIX_UNKNOWN;
		snprintf(kernel.fix_reason, sizeof(kernel.fix_reason),
			 "kernel release not parseable; treated as unfixed");
	} else if (v[0] > 6 || (v[0] == 6 && v[1] >= 5)) {
		kernel.fix = PM_FIX_PRESENT;
		snprintf(kernel.fix_reason, sizeof(kernel.fix_reason),
			 "kernel %lu.%lu >= 6.5 (upstream 7780d04046a2)", (unsigned long)v[0],
			 (unsigned long)v[1]);
	} else if (kernel.features & PM_FEAT_PAGEMAP_SCAN) {
		kernel.fix = PM_FIX_PRESENT;
		snprintf(kernel.fix_reason, sizeof(kernel.fix_reason),
			 "kernel %lu.%lu has PAGEMAP_SCAN (6.7 code, after the 6.5 fix)",
			 (unsigned long)v[0], (unsigned long)v[1]);
	} else if (stat("/sys/kernel/mm/transparent_hugepage", &st) != 0) {
		kernel.fix = PM_FIX_PRESENT;
		snprintf(kernel.fix_reason, sizeof(kernel.fix_reason),
			 "kernel %lu.%lu has no THP, so no unstable PMD can shift a read",
			 (unsigned long)v[0], (unsigned long)v[1]);
	} else {
		kernel.fix = PM_FIX_ABSENT;
		snprintf(kernel.fix_reason, sizeof(kernel.fix_reason),
			 "kernel %lu.%lu < 6.5 without PAGEMAP_SCAN: reads can shift",
			 (unsigned long)v[0], (unsigned long)v[1]);
	}
	if (kernel.fix == PM_FIX_PRESENT)
		kernel.features |= PM_FEAT_WALK_RETRY_FIX;
}

static void probe_all(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	kernel.page_size = ps > 0 ? (uint64_t)ps : 4096;
	while ((1ULL << kernel.page_shift) < kernel.page_size)
		kernel.page_shift++;
	parse_version();
	probe_user_top();
	probe_scan();
	probe_query();
	probe_uffd();
	probe_io_uring();
	probe_guard();
	probe_soft_dirty();
	decide_retry_fix();
}

const struct pm__kernel *pm__kernel(void)
{
	pthread_once(&kernel_once, probe_all);
	return &kernel;
}

/* PFN visibility is decided by the opener's credentials, which can change
 * (setuid, capset), so it is checked afresh instead of cached. */
static bool pfn_visible(void)
{
	const struct pm__kernel *k = pm__kernel();
	volatile char *p = mmap(NULL, k->page_size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool r;

	if (p == MAP_FAILED)
		return false;
	p[0] = 1;
	r = pm_entry_pfn(self_entry((uint64_t)(uintptr_t)p)) != 0;
	munmap((void *)p, k->page_size);
	return r;
}

int pm__ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return CPU_COUNT(&set);
}

PM_EXPORT int pm_kernel_probe(struct pm_kernel_info *ki)
{
	const struct pm__kernel *k;
	struct pm_kernel_info out;
	uint64_t size;

	if (!ki)
		return (int)pm__ret(-EINVAL);
	size = ki->size;
	/* an output struct: older callers get the prefix they know */
	if (size < offsetof(struct pm_kernel_info, features) || size % 8)
		return (int)pm__ret(-EINVAL);
	k = pm__kernel();
	memset(&out, 0, sizeof(out));
	out.size = size < sizeof(out) ? size : sizeof(out);
	out.version_major = k->version[0];
	out.version_minor = k->version[1];
	out.version_patch = k->version[2];
	out.features = k->features | (pfn_visible() ? PM_FEAT_PFN_VISIBLE : 0);
	out.scan_categories = k->scan_categories;
	out.walk_retry_fix = k->fix;
	memcpy(out.walk_retry_reason, k->fix_reason, sizeof(out.walk_retry_reason));
	pm__out_copy(ki, &out, sizeof(out));
	ki->size = size;
	return 0;
}

PM_EXPORT int pm_has_feature(uint64_t bit)
{
	const uint64_t known = PM_FEAT_WALK_RETRY_FIX * 2 - 1;

	if (bit == 0 || (bit & (bit - 1)) || (bit & ~known))
		return (int)pm__ret(-EINVAL);
	if (bit == PM_FEAT_PFN_VISIBLE)
		return pfn_visible();
	return (pm__kernel()->features & bit) != 0;
}
