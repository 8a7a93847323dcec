/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel probe: every feature decided by a real round trip, at the first
 * use that needs it (a pm_read needs none of the optional ones). An answer
 * is remembered; a probe that failed for lack of an fd, of memory or to a
 * signal is not, and runs again at the next use. Only the soft-dirty probe
 * creates a process.
 */
#include "config.h"
#include "internal.h"
#include "compat/uapi.h"

#include <fcntl.h>
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

/* ---- the basic facts: no fd, no process ---- */

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

static void probe_basic(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	kernel.page_size = ps > 0 ? (uint64_t)ps : 4096;
	while ((1ULL << kernel.page_shift) < kernel.page_size)
		kernel.page_shift++;
	parse_version();
	probe_user_top();
}

const struct pm__kernel *pm__kernel(void)
{
	pthread_once(&kernel_once, probe_basic);
	return &kernel;
}

/* ---- one probe per feature: 1, 0, or -errno ---- */

/* Failures that say nothing about the kernel: try again later. */
static bool transient(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOMEM || e == EINTR || e == EAGAIN;
}

/* A probe's verdict from a failed call: absent, unless transient. */
static int failed(int e)
{
	return transient(e) ? -e : 0;
}

static int open_self(const char *name, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/%s", name);
	return open(path, flags | O_CLOEXEC);
}

static uint64_t scan_categories;

static int probe_scan(void)
{
	struct pm__scan_arg a;
	int fd = open_self("pagemap", O_RDONLY), r;
	uint64_t cats = 0;

	if (fd < 0)
		return failed(errno);
	/* start == end is a valid no-op scan that still validates every mask */
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.start = a.end = pm__kernel()->page_size;
	r = pm__ioctl(fd, PM__PAGEMAP_SCAN, &a);
	/* only the categories the library knows: a newer kernel's are of no
	 * use to a caller who cannot name them, and would make a scan asking
	 * for "every category" invalid */
	for (unsigned bit = 0; r == 0 && bit < 64 && (1ULL << bit) <= PM_CAT_ALL; bit++) {
		a.return_mask = 1ULL << bit;
		if (pm__ioctl(fd, PM__PAGEMAP_SCAN, &a) == 0)
			cats |= 1ULL << bit;
	}
	close(fd);
	if (r)
		return failed(-r);
	scan_categories = cats;
	return 1;
}

static int probe_query(void)
{
	struct pm__procmap_query q;
	int fd = open_self("maps", O_RDONLY);
	int r;

	if (fd < 0)
		return failed(errno);
	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.query_flags = PM__PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
	r = pm__ioctl(fd, PM__PROCMAP_QUERY, &q);
	close(fd);
	if (r == 0 || r == -ENOENT)
		return 1;
	return failed(-r);
}

int pm__uffd_open(int flags)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | flags);

	/* vm.unprivileged_userfaultfd=0 still allows user-mode-only faults
	 * (async write faults are resolved before that distinction matters) */
	if (fd < 0 && errno == EPERM)
		fd = syscall(SYS_userfaultfd, O_CLOEXEC | flags | PM__UFFD_USER_MODE_ONLY);
	return fd < 0 ? -errno : (int)fd;
}

static int probe_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = pm__uffd_open(O_NONBLOCK), r;

	if (fd < 0)
		return failed(-fd);
	r = pm__ioctl(fd, UFFDIO_API, &api);
	close(fd);
	if (r)
		return failed(-r);
	return (api.features & PM__UFFD_FEATURE_WP_ASYNC) != 0;
}

static int probe_io_uring(void)
{
#if HAVE_LIBURING
	unsigned char params[120]; /* struct io_uring_params */
	long fd;

	memset(params, 0, sizeof(params));
	fd = syscall(SYS_io_uring_setup, 1, params);
	if (fd < 0)
		return failed(errno);
	close((int)fd);
	return 1;
#else
	return 0;
#endif
}

/* One entry of this process's pagemap for @addr: 0 on success or -errno. */
static int self_entry(uint64_t addr, uint64_t *e)
{
	int fd = open_self("pagemap", O_RDONLY), r;

	if (fd < 0)
		return -errno;
	*e = 0;
	r = pm__pread_full(fd, e, sizeof(*e), addr / pm__kernel()->page_size * 8, NULL);
	close(fd);
	return r;
}

static int probe_guard(void)
{
	uint64_t ps = pm__kernel()->page_size, e = 0;
	char *p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r = 0;

	if (p == MAP_FAILED)
		return failed(errno);
	if (madvise(p, ps, PM__MADV_GUARD_INSTALL) == 0) {
		r = self_entry((uint64_t)(uintptr_t)p, &e);
		r = r ? failed(-r) : (e & PM_ENTRY_GUARD) != 0;
	}
	munmap(p, 2 * ps);
	return r;
}

/* Pipe I/O of the soft-dirty probe: all @n bytes, EINTR retried (a
 * signal must not decide that the kernel has no soft-dirty). */
static bool xfer(int fd, void *buf, size_t n, bool out)
{
	return PM__NOINTR(out ? write(fd, buf, n) : read(fd, buf, n)) == (long)n;
}

static int child_entry(int fd, uint64_t addr, uint64_t *e)
{
	*e = 0;
	return pm__pread_full(fd, e, sizeof(*e), addr / pm__kernel()->page_size * 8, NULL);
}

/* The child of the soft-dirty probe: a page written, reported, written
 * again when told. Only raw system calls. */
static void soft_dirty_child(int in, int out)
{
	uint64_t addr;
	char *p, c;

	p = mmap(NULL, pm__kernel()->page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(1);
	p[0] = 1;
	addr = (uint64_t)(uintptr_t)p;
	if (!xfer(out, &addr, sizeof(addr), true) || !xfer(in, &c, 1, false))
		_exit(1);
	p[0] = 2;
	if (!xfer(out, &c, 1, true))
		_exit(1);
	(void)xfer(in, &c, 1, false);
	_exit(0);
}

/* Whether a page of a new VMA of ours reads soft-dirty: a kernel with
 * soft-dirty marks every new VMA so (VM_SOFTDIRTY) and its written pages;
 * one without never sets bit 55. Someone clearing our soft-dirty bits
 * (clear_refs: CRIU's pre-dump, a collector's incremental mode) between
 * the write and the read makes the page read clean; the write faults
 * again after a clear, so a clean reading is taken only when three
 * writes in a row read clean. 1, 0, or a failed() result. */
static int self_new_page_dirty(void)
{
	const uint64_t ps = pm__kernel()->page_size;
	char *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e = 0;
	int r = 0;

	if (p == MAP_FAILED)
		return failed(errno);
	for (int i = 0; i < 3 && !r && !(e & PM_ENTRY_SOFT_DIRTY); i++) {
		p[0] = (char)i;
		r = self_entry((uint64_t)(uintptr_t)p, &e);
		if (!r && !(e & PM_ENTRY_PRESENT))
			r = -EAGAIN;
	}
	munmap(p, ps);
	return r ? failed(-r) : (e & PM_ENTRY_SOFT_DIRTY) != 0;
}

/* Writing clear_refs "succeeds" on kernels without soft-dirty, so prove it
 * works: a new VMA reads dirty, clearing makes it clean, a write makes it
 * dirty again. Done on a child so the caller's own soft-dirty state is left
 * alone. The child is a raw clone with no exit signal: the caller gets no
 * SIGCHLD and its own reaper (waitpid(-1)) cannot take our child. A kernel
 * whose new pages never read dirty needs no child to say no. */
static int probe_soft_dirty(void)
{
	int to_child[2], to_parent[2];
	char path[64], c = 'x';
	uint64_t addr = 0, e1 = 0, e2 = 0, e3 = 0;
	int pm = -1, cr = -1, r = self_new_page_dirty();
	pid_t pid;

	if (r != 1)
		return r;
	r = 0;
	if (pipe2(to_child, O_CLOEXEC))
		return failed(errno);
	if (pipe2(to_parent, O_CLOEXEC)) {
		r = failed(errno);
		close(to_child[0]);
		close(to_child[1]);
		return r;
	}
	pid = (pid_t)syscall(SYS_clone, 0UL, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		close(to_child[1]);
		close(to_parent[0]);
		soft_dirty_child(to_child[0], to_parent[1]);
	}
	close(to_child[0]);
	close(to_parent[1]);
	if (pid < 0) {
		r = failed(errno);
		goto out;
	}
	if (!xfer(to_parent[0], &addr, sizeof(addr), false))
		goto reap;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		r = failed(errno);
	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
	cr = pm < 0 ? -1 : open(path, O_WRONLY | O_CLOEXEC);
	if (pm >= 0 && cr < 0)
		r = failed(errno);
	if (pm < 0 || cr < 0 || child_entry(pm, addr, &e1) || !xfer(cr, "4", 1, true) ||
	    child_entry(pm, addr, &e2) || !xfer(to_child[1], &c, 1, true) ||
	    !xfer(to_parent[0], &c, 1, false) || child_entry(pm, addr, &e3))
		goto reap;
	r = (e1 & e3 & PM_ENTRY_SOFT_DIRTY) && (e2 & PM_ENTRY_PRESENT) &&
	    !(e2 & PM_ENTRY_SOFT_DIRTY);
reap:
	close(to_child[1]);
	to_child[1] = -1;
	(void)PM__NOINTR(waitpid(pid, NULL, __WCLONE));
out:
	if (to_child[1] >= 0)
		close(to_child[1]);
	close(to_parent[0]);
	if (pm >= 0)
		close(pm);
	if (cr >= 0)
		close(cr);
	return r;
}

/* ---- the lazily probed features ---- */

static const struct {
	uint64_t feat;
	int (*probe)(void);
} probes[] = {
	{ PM_FEAT_PAGEMAP_SCAN, probe_scan },	  { PM_FEAT_PROCMAP_QUERY, probe_query },
	{ PM_FEAT_UFFD_WP_ASYNC, probe_uffd },	  { PM_FEAT_IO_URING, probe_io_uring },
	{ PM_FEAT_GUARD_REGIONS, probe_guard },	  { PM_FEAT_SOFT_DIRTY, probe_soft_dirty },
};
#define NPROBES (sizeof(probes) / sizeof(probes[0]))

/* Per feature: 0 not known yet, 1 present, 2 absent. The mutex keeps one
 * prober per feature at a time (and the data a probe leaves, such as the
 * scan categories, written before its verdict is published). */
static _Atomic int verdict[NPROBES];
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

static int feature_at(size_t i)
{
	int v = atomic_load_explicit(&verdict[i], memory_order_acquire), r;

	if (v)
		return v == 1;
	pthread_mutex_lock(&probe_lock);
	v = atomic_load_explicit(&verdict[i], memory_order_relaxed);
	if (v) {
		r = v == 1;
	} else {
		r = probes[i].probe();
		if (r >= 0)
			atomic_store_explicit(&verdict[i], r ? 1 : 2, memory_order_release);
	}
	pthread_mutex_unlock(&probe_lock);
	return r;
}

int pm__feature(uint64_t feat)
{
	for (size_t i = 0; i < NPROBES; i++)
		if (probes[i].feat == feat)
			return feature_at(i);
	return feat == PM_FEAT_WALK_RETRY_FIX && pm__retry_fix(NULL) == PM_FIX_PRESENT;
}

uint64_t pm__scan_categories(void)
{
	return pm__feature(PM_FEAT_PAGEMAP_SCAN) == 1 ? scan_categories : 0;
}

/* ---- the walk-retry fix ---- */

static int64_t decide_fix(char *why, size_t len)
{
	const char *env = getenv("LIBPAGEMAP_ASSUME_RETRY_FIX");
	const uint64_t *v = pm__kernel()->version;
	struct stat st;
	int scan;

	if (env && (!strcmp(env, "0") || !strcmp(env, "1"))) {
		snprintf(why, len, "LIBPAGEMAP_ASSUME_RETRY_FIX=%s in the environment", env);
		return env[0] == '1' ? PM_FIX_PRESENT : PM_FIX_ABSENT;
	}
	if (v[0] == 0) {
		snprintf(why, len, "kernel release not parseable; treated as unfixed");
		return PM_FIX_UNKNOWN;
	}
	if (v[0] > 6 || (v[0] == 6 && v[1] >= 5)) {
		snprintf(why, len, "kernel %lu.%lu >= 6.5 (upstream 7780d04046a2)",
			 (unsigned long)v[0], (unsigned long)v[1]);
		return PM_FIX_PRESENT;
	}
	scan = pm__feature(PM_FEAT_PAGEMAP_SCAN);
	if (scan < 0) {
		snprintf(why, len, "kernel %lu.%lu < 6.5, PAGEMAP_SCAN not yet probed: unfixed",
			 (unsigned long)v[0], (unsigned long)v[1]);
		return -1; /* transient: decided again next time */
	}
	if (scan) {
		snprintf(why, len, "kernel %lu.%lu has PAGEMAP_SCAN (6.7 code, after the 6.5 fix)",
			 (unsigned long)v[0], (unsigned long)v[1]);
		return PM_FIX_PRESENT;
	}
	if (stat("/sys/kernel/mm/transparent_hugepage", &st) != 0) {
		snprintf(why, len, "kernel %lu.%lu has no THP, so no unstable PMD can shift a read",
			 (unsigned long)v[0], (unsigned long)v[1]);
		return PM_FIX_PRESENT;
	}
	snprintf(why, len, "kernel %lu.%lu < 6.5 without PAGEMAP_SCAN: reads can shift",
		 (unsigned long)v[0], (unsigned long)v[1]);
	return PM_FIX_ABSENT;
}

static _Atomic bool fix_known;
static int64_t fix;
static char fix_reason[96];

int64_t pm__retry_fix(char *why)
{
	char buf[sizeof(fix_reason)];
	int64_t f;

	if (atomic_load_explicit(&fix_known, memory_order_acquire)) {
		if (why)
			memcpy(why, fix_reason, sizeof(fix_reason));
		return fix;
	}
	f = decide_fix(buf, sizeof(buf));
	if (f >= 0) {
		pthread_mutex_lock(&probe_lock);
		if (!atomic_load_explicit(&fix_known, memory_order_relaxed)) {
			fix = f;
			memcpy(fix_reason, buf, sizeof(buf));
			atomic_store_explicit(&fix_known, true, memory_order_release);
		}
		pthread_mutex_unlock(&probe_lock);
	} else {
		f = PM_FIX_ABSENT;
	}
	if (why)
		memcpy(why, buf, sizeof(buf));
	return f;
}

bool pm__guard_wanted(uint64_t read_flags)
{
	return pm__retry_fix(NULL) != PM_FIX_PRESENT || (read_flags & PM_READ_F_SNAPSHOT);
}

/* ---- the public probe ---- */

/* PFN visibility is decided by the opener's credentials, which can change
 * (setuid, capset), so it is checked afresh instead of cached: 1, 0 or a
 * transient -errno. */
static int pfn_visible(void)
{
	const uint64_t ps = pm__kernel()->page_size;
	volatile char *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	uint64_t e = 0;
	int r;

	if (p == MAP_FAILED)
		return failed(errno);
	p[0] = 1;
	r = self_entry((uint64_t)(uintptr_t)p, &e);
	munmap((void *)p, ps);
	return r ? failed(-r) : pm_entry_pfn(e) != 0;
}

/* Every feature probed (the soft-dirty one creates a process); a probe
 * that failed for a transient reason fails the call with its errno. */
PM_EXPORT int pm_kernel_probe(struct pm_kernel_info *ki)
{
	const struct pm__kernel *k;
	struct pm_kernel_info out;
	uint64_t size;
	int r;

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
	for (size_t i = 0; i < NPROBES; i++) {
		r = feature_at(i);
		if (r < 0)
			return (int)pm__ret(r);
		out.features |= r ? probes[i].feat : 0;
	}
	r = pfn_visible();
	if (r < 0)
		return (int)pm__ret(r);
	out.features |= r ? PM_FEAT_PFN_VISIBLE : 0;
	out.scan_categories = pm__scan_categories();
	out.walk_retry_fix = pm__retry_fix(out.walk_retry_reason);
	if (out.walk_retry_fix == PM_FIX_PRESENT)
		out.features |= PM_FEAT_WALK_RETRY_FIX;
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
		return (int)pm__ret(pfn_visible());
	return (int)pm__ret(pm__feature(bit));
}
