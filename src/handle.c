/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Handles: pid-reuse-safe opening of a process's procfs files. */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bumped in every child created by fork(); a self handle whose fds were
 * opened in another generation belongs to the parent and is re-opened. */
static _Atomic uint64_t fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
	atomic_fetch_add(&fork_gen, 1);
}

static void register_atfork(void)
{
	(void)pthread_atfork(NULL, NULL, on_fork_child);
}

/* Close the procfs files; with @pidfd_too, the pidfd as well. */
static void close_fds(struct pm_handle *h, bool pidfd_too)
{
	int *fds[] = { &h->dirfd, &h->pagemap_fd, &h->stat_fd, &h->pidfd };
	_Atomic int *lazy[] = { &h->maps_fd, &h->statm_fd, &h->status_fd };
	size_t n = sizeof(fds) / sizeof(fds[0]) - !pidfd_too;
	int fd;

	for (size_t i = 0; i < n; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	for (size_t i = 0; i < sizeof(lazy) / sizeof(lazy[0]); i++)
		if ((fd = atomic_exchange(lazy[i], -1)) >= 0)
			close(fd);
}

/* 0 while the pidfd's process has not exited; -ESRCH once it has (poll
 * says readable from its exit on, before it is reaped). */
static int pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	/* a signal handled during it fails even a poll that does not wait */
	long n = PM__NOINTR(poll(&p, 1, 0));

	if (n < 0)
		return (int)n;
	return n ? -ESRCH : 0;
}

bool pm__handle_mm_gone(const struct pm_handle *h)
{
	uint64_t e;

	/* straight to the kernel, as read_ident(): this is the real mm's */
	return PM__NOINTR(pread(h->pagemap_fd, &e, sizeof(e), 0)) == 0;
}

int pm__handle_fd(struct pm_handle *h, _Atomic int *slot, const char *name)
{
	int fd = atomic_load_explicit(slot, memory_order_acquire), none = -1;

	if (fd >= 0)
		return fd;
	/* the directory fd is bound to the process: never another one's */
	fd = openat(h->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	/* the file describes the address space the process has now: the one
	 * the handle's pagemap was opened on only while that one still has
	 * users (an exec drops them; what a CLONE_VM relative keeps alive,
	 * the identity check tells apart). Before pagemap is open, open_once()
	 * brackets the opens with its identity reads. */
	if (!h->self && h->pagemap_fd >= 0 && pm__handle_mm_gone(h)) {
		close(fd);
		return -ESRCH;
	}
	/* two threads may race here: one fd is kept */
	if (!atomic_compare_exchange_strong(slot, &none, fd)) {
		close(fd);
		fd = none;
	}
	return fd;
}

/* The fields of /proc/PID/stat (1-based) that the kernel takes from the
 * task's current address space: code, stack, data, brk, argv, environ.
 * Exec sets them (at randomised addresses), every task sharing an mm shows
 * the same, and a task without an mm shows zeros. The procfs files pin the
 * mm they were opened on, so comparing these with what they were at open
 * tells whether the handle's process still has that mm: it does not after
 * exec, nor after exit when a CLONE_VM parent keeps the mm alive. */
#define IDENT_N 10
/* PF_EXITING in stat's flags field (include/linux/sched.h) */
#define PF_EXITING_FLAG 0x4
static const unsigned ident_field[IDENT_N] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };

/* The identity fields from the text of /proc/PID/stat. */
static int parse_ident(const char *buf, uint64_t id[IDENT_N])
{
	const char *p = strrchr(buf, ')'); /* the name in parentheses may hold anything */
	unsigned field = 3, k = 0;
	uint64_t flags = 0;
	bool any = false;

	if (!p || p[1] != ' ')
		return -EIO;
	p += 2;
	if (*p == 'Z' || *p == 'X' || *p == 'x') /* exited: no mm of its own */
		return -ESRCH;
	/* one pass over the text: read once per call that returns data */
	while (k < IDENT_N && *p) {
		if (field == 9) /* flags */
			for (const char *q = p; *q >= '0' && *q <= '9'; q++)
				flags = flags * 10 + (uint64_t)(*q - '0');
		/* exit_signal: -1 for a thread other than its group's leader;
		 * its number is not a process's (/proc/TID is there all the same) */
		if (field == 38 && *p == '-')
			return -ESRCH;
		if (field == ident_field[k]) {
			uint64_t v = 0;

			for (; *p >= '0' && *p <= '9'; p++)
				v = v * 10 + (uint64_t)(*p - '0');
			id[k] = v;
			/* hidden, the code range reads 1 1, the rest 0 */
			any |= k >= 2 && v != 0;
			k++;
		}
		while (*p && *p != ' ')
			p++;
		if (*p)
			p++;
		field++;
	}
	if (k < IDENT_N)
		return -EIO;
	/* a live process shows these fields only to a caller that may ptrace
	 * it (checked at each read, with the reader's current credentials);
	 * a process without an mm has none either: one exiting (its memory
	 * still being freed, its state still R or D) is gone */
	if (!any)
		return flags & PF_EXITING_FLAG ? -ESRCH : -EPERM;
	return 0;
}

static int read_ident(int stat_fd, uint64_t id[IDENT_N])
{
	char buf[1024];
	/* straight to the kernel, not through the pm__sys table: the tests'
	 * injected faults and faked counters are for the reads and the guard,
	 * and the identity must stay the real process's. One pread: stat is a
	 * single record, generated whole. */
	long n = PM__NOINTR(pread(stat_fd, buf, sizeof(buf) - 1, 0));

	if (n <= 0)
		return n == 0 || n == -ENOENT ? -ESRCH : (int)n;
	buf[n] = '\0';
	return parse_ident(buf, id);
}

/* The pid a pidfd refers to in the mounted /proc's pid namespace (its
 * fdinfo counts there): 0, -ESRCH (reaped), or -ENOENT (that namespace
 * cannot see the process). */
static int pidfd_pid(int pidfd, pid_t *pid)
{
	char path[64], buf[512], *p;
	long n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -EBADF : -errno;
	n = pm__slurp(fd, buf, sizeof(buf), false);
	close(fd);
	if (n)
		return (int)n;
	p = strstr(buf, "\nPid:");
	if (!p)
		return -EBADF; /* not a pidfd */
	n = strtol(p + 5, NULL, 10);
	*pid = (pid_t)n;
	return n > 0 ? 0 : n == 0 ? -ENOENT : -ESRCH;
}

/* Whether the mounted /proc counts pids as this process does. */
static bool proc_is_ours(void)
{
	char buf[32];
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strtol(buf, NULL, 10) == (long)getpid();
}

/* A pidfd, or -1 when the kernel has no pidfd_open (< 5.3) or a filter
 * refuses it (EPERM: pidfd_open itself checks no permission). */
static int open_pidfd(pid_t pid)
{
	int fd = pm__pidfd_open(pid);

	return fd == -ENOSYS || fd == -EPERM ? -1 : fd;
}

/* The number naming the handle's process in the mounted /proc, which need
 * not be the caller's pid namespace's (unshare --pid without mounting a
 * new /proc): a pidfd says which; without one, only a /proc that counts
 * as the caller does is trusted. */
static int proc_number(struct pm_handle *h, pid_t *n)
{
	/* a number the caller gave is that /proc's when it counts as the
	 * caller does: one readlink, where a pidfd and its fdinfo take five
	 * calls. No pidfd is needed then: the directory fd is bound to the
	 * process that had the number when it was opened, and the files
	 * opened under it fail once that process is gone. */
	if ((h->caller_pid || h->pidfd < 0) && proc_is_ours()) {
		*n = h->pid;
		return 0;
	}
	if (h->caller_pid && h->pidfd < 0) {
		h->pidfd = open_pidfd(h->pid);
		/* a thread's id other than its leader's (-ENOENT, or -EINVAL
		 * before 6.9) names no process, as parse_ident() says here */
		if (h->pidfd == -ENOENT || h->pidfd == -EINVAL)
			h->pidfd = -ESRCH;
		if (h->pidfd < -1)
			return h->pidfd;
	}
	return h->pidfd >= 0 ? pidfd_pid(h->pidfd, n) : -EXDEV;
}

static int open_at(int dirfd, const char *name, int *fd)
{
	*fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return 0;
}

/* Open /proc/N and the files under it for the process we mean. The
 * directory fd is bound to the struct pid; where N came from a pidfd, the
 * pidfd's process not having exited after every open proves N was that
 * process throughout (a number is not reused before its process is
 * reaped). -EAGAIN: the process exec'd while its files were being opened. */
static int open_once(struct pm_handle *h)
{
	uint64_t before[IDENT_N];
	char path[32];
	pid_t n = 0;
	int r = proc_number(h, &n);

	if (r)
		return r;
	snprintf(path, sizeof(path), "/proc/%d", (int)n);
	h->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (h->dirfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = open_at(h->dirfd, "stat", &h->stat_fd);
	/* where every read takes the guard's tokens, or every scan the VMA
	 * list and the VMA cache's stamp, their files are opened now, with
	 * the rights the caller opens the handle with; elsewhere at the
	 * first use */
	if (!r && (pm__guard_wanted(0) || pm__feature(PM_FEAT_PAGEMAP_SCAN) != 1)) {
		r = pm__handle_fd(h, &h->maps_fd, "maps");
		if (r >= 0)
			r = pm__handle_fd(h, &h->statm_fd, "statm");
		if (r >= 0)
			r = pm__handle_fd(h, &h->status_fd, "status");
		r = r < 0 ? r : 0;
	}
	/* hidden fields: the pagemap open says why (EACCES, EPERM) */
	if (!r && !h->self && (r = read_ident(h->stat_fd, before)) == -EPERM)
		r = 0;
	if (!r)
		r = open_at(h->dirfd, "pagemap", &h->pagemap_fd);
	if (!r && h->pidfd >= 0)
		r = pidfd_alive(h->pidfd);
	if (r || h->self)
		return r;
	r = read_ident(h->stat_fd, h->mm_ident);
	if (r)
		return r == -EPERM ? -ESRCH : r; /* may ptrace it, yet no mm: a kernel thread */
	return memcmp(before, h->mm_ident, sizeof(before)) ? -EAGAIN : 0;
}

static int open_files(struct pm_handle *h)
{
	int r = -EAGAIN;

	for (int i = 0; i < 4 && r == -EAGAIN; i++) {
		close_fds(h, false);
		r = open_once(h);
	}
	return r;
}

static int open_self(struct pm_handle *h)
{
	int r;

	h->pid = getpid();
	h->caller_pid = true;
	r = open_files(h);
	if (r == 0)
		atomic_store(&h->fork_gen, atomic_load(&fork_gen));
	return r;
}

static int handle_new(const struct pm_open_opts *opts, struct pm_handle **out,
		      struct pm_handle **hp)
{
	struct pm_handle *h;
	int r;

	if (!out)
		return -EINVAL;
	r = pm__opts_check(opts, sizeof(struct pm_open_opts));
	if (r)
		return r;
	if (PM__OPT(opts, struct pm_open_opts, flags, 0) & ~PM_OPEN_MAPS_TEXT)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->pidfd = h->dirfd = h->pagemap_fd = h->stat_fd = -1;
	atomic_init(&h->maps_fd, -1);
	atomic_init(&h->statm_fd, -1);
	atomic_init(&h->status_fd, -1);
	h->open_flags = PM__OPT(opts, struct pm_open_opts, flags, 0);
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->maps_lock, NULL);
	*hp = h;
	return 0;
}

static int handle_done(struct pm_handle *h, int r, struct pm_handle **out)
{
	if (r < 0) {
		pm_close(h);
		return (int)pm__ret(r);
	}
	*out = h;
	return 0;
}

PM_EXPORT int pm_open(pid_t pid, const struct pm_open_opts *opts, struct pm_handle **out)
{
	struct pm_handle *h;
	int r;

	if (pid < 0)
		return (int)pm__ret(-EINVAL);
	r = handle_new(opts, out, &h);
	if (r)
		return (int)pm__ret(r);
	if (pid == 0 || pid == getpid()) {
		pthread_once(&atfork_once, register_atfork);
		h->self = true;
		return handle_done(h, open_self(h), out);
	}
	h->pid = pid;
	h->caller_pid = true;
	return handle_done(h, open_files(h), out);
}

PM_EXPORT int pm_open_pidfd(int pidfd, const struct pm_open_opts *opts, struct pm_handle **out)
{
	struct pm_handle *h;
	pid_t pid = 0;
	int r;

	if (pidfd < 0)
		return (int)pm__ret(-EBADF);
	r = handle_new(opts, out, &h);
	if (r)
		return (int)pm__ret(r);
	r = pidfd_pid(pidfd, &pid);
	if (r)
		return handle_done(h, r, out);
	h->pid = pid;
	h->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	if (h->pidfd < 0)
		return handle_done(h, -errno, out);
	if (pid == getpid()) {
		pthread_once(&atfork_once, register_atfork);
		h->self = true;
		atomic_store(&h->fork_gen, atomic_load(&fork_gen));
	}
	return handle_done(h, open_files(h), out);
}

PM_EXPORT void pm_close(struct pm_handle *h)
{
	if (!h)
		return;
	close_fds(h, true);
	pm__vsnap_drop(h);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->maps_lock);
	free(h);
}

PM_EXPORT pid_t pm_pid(const struct pm_handle *h)
{
	if (!h)
		return (pid_t)pm__ret(-EINVAL);
	if (h->self && atomic_load(&h->fork_gen) != atomic_load(&fork_gen))
		return getpid();
	return h->pid;
}

int pm__handle_ready(struct pm_handle *h)
{
	int r = 0;

	if (!h->self || atomic_load_explicit(&h->fork_gen, memory_order_acquire) ==
				atomic_load_explicit(&fork_gen, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&h->lock);
	if (atomic_load(&h->fork_gen) != atomic_load(&fork_gen)) {
		close_fds(h, true);
		r = open_self(h);
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

static int ident_matches(const struct pm_handle *h, int r, const uint64_t now[IDENT_N])
{
	if (r)
		return r;
	return memcmp(now, h->mm_ident, sizeof(h->mm_ident)) ? -ESRCH : 0;
}

int pm__handle_check(struct pm_handle *h)
{
	uint64_t now[IDENT_N];

	/* a process reads its own memory through files it opened itself */
	if (h->self)
		return 0;
	return ident_matches(h, read_ident(h->stat_fd, now), now);
}

int pm__handle_check_stat(struct pm_handle *h, const char *stat)
{
	uint64_t now[IDENT_N];
	int r;

	if (h->self)
		return 0;
	r = parse_ident(stat, now);
	/* not the stat line we know (a test's faked counters): unknown */
	return r == -EIO ? 1 : ident_matches(h, r, now);
}
