/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Handles: pid-reuse-safe opening of a process's procfs files. */
#include "internal.h"

#include <fcntl.h>
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

static void close_fds(struct pm_handle *h)
{
	int *fds[] = { &h->pidfd,   &h->dirfd,   &h->pagemap_fd, &h->maps_fd,
			&h->stat_fd, &h->statm_fd, &h->status_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* Open /proc/PID and the files under it, given a pidfd for the process we
 * mean. The directory fd is bound to the struct pid, and the liveness check
 * afterwards proves that the number still named that process when the
 * directory was opened (a zombie keeps its pid, so "alive" is enough). */
static int open_files(struct pm_handle *h)
{
	char path[32];

	snprintf(path, sizeof(path), "/proc/%d", (int)h->pid);
	h->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (h->dirfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	h->pagemap_fd = openat(h->dirfd, "pagemap", O_RDONLY | O_CLOEXEC);
	if (h->pagemap_fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	h->maps_fd = openat(h->dirfd, "maps", O_RDONLY | O_CLOEXEC);
	if (h->maps_fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	h->stat_fd = openat(h->dirfd, "stat", O_RDONLY | O_CLOEXEC);
	h->statm_fd = openat(h->dirfd, "statm", O_RDONLY | O_CLOEXEC);
	h->status_fd = openat(h->dirfd, "status", O_RDONLY | O_CLOEXEC);
	if (h->stat_fd < 0 || h->statm_fd < 0 || h->status_fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if (h->pidfd >= 0)
		return pm__pidfd_alive(h->pidfd);
	return 0;
}

static int open_self(struct pm_handle *h)
{
	int r;

	h->pid = getpid();
	h->pidfd = pm__pidfd_open(h->pid);
	if (h->pidfd < 0 && h->pidfd != -ENOSYS)
		return h->pidfd;
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
	h->pidfd = h->dirfd = h->pagemap_fd = h->maps_fd = -1;
	h->stat_fd = h->statm_fd = h->status_fd = -1;
	h->open_flags = PM__OPT(opts, struct pm_open_opts, flags, 0);
	pthread_mutex_init(&h->lock, NULL);
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
	h->pidfd = pm__pidfd_open(pid);
	/* without pidfd_open (< 5.3) the dir fd alone must do */
	if (h->pidfd < 0 && h->pidfd != -ENOSYS)
		return handle_done(h, h->pidfd, out);
	return handle_done(h, open_files(h), out);
}

/* The pid a pidfd refers to, from its fdinfo (the only interface that
 * every pidfd kernel has). */
static int pidfd_pid(int pidfd, pid_t *pid)
{
	char path[64], line[128];
	FILE *f;
	int r = -EBADF;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -EBADF : -errno;
	while (fgets(line, sizeof(line), f)) {
		long v;

		if (sscanf(line, "Pid: %ld", &v) == 1) {
			/* -1: reaped; 0: not in our pid namespace */
			r = v > 0 ? 0 : v == 0 ? -ENOENT : -ESRCH;
			*pid = (pid_t)v;
			break;
		}
	}
	fclose(f);
	return r;
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
	close_fds(h);
	pthread_mutex_destroy(&h->lock);
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
		close_fds(h);
		r = open_self(h);
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}
