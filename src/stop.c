/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stop every thread of another process with ptrace, and resume it.
 *
 * Each thread is seized (PTRACE_SEIZE: no signal is sent, so nothing of
 * the target's own signal state changes) with PTRACE_O_TRACECLONE, so a
 * thread it creates before it stops is attached by the kernel, then
 * interrupted. /proc/PID/task is listed again until a listing taken while
 * every known thread is stopped shows no new one: a stopped thread cannot
 * create threads, so then none is running.
 *
 * What the target sees:
 *   - Signals are not lost. A signal a thread was about to take when it
 *     stopped (a signal-delivery-stop) is handed back by PTRACE_DETACH;
 *     signals sent during the stop stay pending and are taken after it.
 *   - Job control is kept: a thread in (or entering) a group stop is
 *     detached into it, and a SIGSTOP sent during the stop stops the
 *     process afterwards. Threads are only ever detached, never continued
 *     while traced, so no group stop is cut short (PTRACE_CONT would).
 *   - A tracer that dies releases its tracees (the kernel detaches them),
 *     so a caller killed mid-stop leaves the target running; no
 *     PTRACE_O_EXITKILL.
 *
 * Waiting: only for the thread ids seized here, with __WALL, and only for
 * stops (WSTOPPED without WEXITED never reaps), so the exit of a process
 * that is also the caller's child is left for the caller to reap.
 * The exit of any other thread seized here must be reaped by its tracer
 * (it would stay a zombie), and reaping a thread group leader whose real
 * parent is someone else only hands it on to that parent.
 */
#include "stop.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

enum { T_SEIZED, T_STOPPED, T_GONE };

struct thr {
	pid_t tid;
	int state;
	int sig; /* the signal of a signal-delivery-stop, handed back on detach */
};

struct pm__stop {
	struct pm_handle *h; /* its stops count is ours while we hold one */
	pid_t pid;
	pid_t tracer;      /* the calling thread */
	bool parent_is_us; /* the target is the caller's child */
	int task_fd;       /* /proc/PID/task */
	struct thr *t;     /* sorted by tid */
	size_t n, cap;
};

/* The index of @tid, or where it would go. */
static size_t find(const struct pm__stop *s, pid_t tid)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->t[mid].tid < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool known(const struct pm__stop *s, pid_t tid)
{
	size_t i = find(s, tid);

	return i < s->n && s->t[i].tid == tid;
}

/* Room for one more thread, so that a thread once seized is always
 * tracked (an untracked tracee would stay stopped at its next signal). */
static int reserve(struct pm__stop *s)
{
	size_t cap = s->cap ? s->cap * 2 : 16;
	struct thr *t;

	if (s->n < s->cap)
		return 0;
	t = realloc(s->t, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	s->t = t;
	s->cap = cap;
	return 0;
}

/* Track @tid (room reserved). */
static void add(struct pm__stop *s, pid_t tid)
{
	size_t i = find(s, tid);

	if (i < s->n && s->t[i].tid == tid)
		return;
	memmove(&s->t[i + 1], &s->t[i], (s->n - i) * sizeof(*s->t));
	s->t[i] = (struct thr){ .tid = tid, .state = T_SEIZED };
	s->n++;
}

/* A small procfs file of thread @tid (NUL-terminated), or -errno. */
static int task_file(const struct pm__stop *s, pid_t tid, const char *name, char *buf, size_t cap)
{
	char path[48];
	int fd, r;

	snprintf(path, sizeof(path), "%d/%s", (int)tid, name);
	fd = openat(s->task_fd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = pm__slurp(fd, buf, cap, true);
	close(fd);
	return r;
}

/* The state letter of a thread (R, S, t, Z, ...), or -errno. */
static int task_state(const struct pm__stop *s, pid_t tid)
{
	char buf[512];
	const char *p;
	int r = task_file(s, tid, "stat", buf, sizeof(buf));

	if (r)
		return r;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] ? p[2] : -EIO;
}

/* The TracerPid of a thread, or -errno. */
static int task_tracer(const struct pm__stop *s, pid_t tid)
{
	char buf[2048];
	const char *p;
	int r = task_file(s, tid, "status", buf, sizeof(buf));

	if (r)
		return r;
	p = strstr(buf, "\nTracerPid:");
	return p ? atoi(p + 11) : -EIO;
}

/* A thread that ended while seized: reap it unless that is its parent's
 * job (see the top of the file). It is a zombie already, or gone. */
static void reap(struct pm__stop *s, pid_t tid)
{
	if (tid == s->pid && s->parent_is_us)
		return;
	(void)PM__NOINTR(waitpid(tid, NULL, __WALL | WNOHANG));
}

/* Wait for thread i's stop and consume it. Waiting with
 * WSTOPPED and without WEXITED never reaps, and fails with ECHILD once
 * the thread is a zombie (even a leader whose other threads live) or
 * gone. 0 when it stopped or ended, or -errno. */
static int collect(struct pm__stop *s, size_t i)
{
	const pid_t tid = s->t[i].tid;
	siginfo_t si;
	long r;
	int ev;

	memset(&si, 0, sizeof(si));
	r = PM__NOINTR(waitid(P_PID, (id_t)tid, &si, WSTOPPED | __WALL));
	if (r == -ECHILD) {
		s->t[i].state = T_GONE;
		reap(s, tid);
		return 0;
	}
	if (r < 0)
		return (int)r;
	ev = si.si_status >> 8;
	s->t[i].state = T_STOPPED;
	if (ev == PTRACE_EVENT_CLONE) {
		unsigned long child;

		/* the new thread is ours already and stops on its own
		 * (without room it is found by the next listing) */
		if (!ptrace(PTRACE_GETEVENTMSG, tid, 0, &child) && !reserve(s))
			add(s, (pid_t)child);
	} else if (ev == 0) {
		s->t[i].sig = si.si_status & 0xff;
	}
	/* PTRACE_EVENT_STOP: our interrupt, a group stop, or the first
	 * stop of an attached clone: nothing to hand back */
	return 0;
}

/* Wait until no seized thread is still running. Every one was
 * interrupted before this, so waiting for them in turn takes as long as
 * the slowest. */
static int wait_all(struct pm__stop *s)
{
	for (;;) {
		bool any = false;

		/* a clone event inserts into s->t: the next pass sees it */
		for (size_t i = 0; i < s->n; i++) {
			int r;

			if (s->t[i].state != T_SEIZED)
				continue;
			any = true;
			r = collect(s, i);
			if (r < 0)
				return r;
		}
		if (!any)
			return 0;
	}
}

/* Seize and interrupt one thread: 1 when it is now tracked, 0 when it
 * has exited, or -errno. */
static int seize(struct pm__stop *s, pid_t tid)
{
	int tracer, st, r = reserve(s);

	if (r)
		return r;
	if (!ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACECLONE)) {
		add(s, tid);
		/* fails only for a thread on its way out, whose exit is
		 * collected like a stop */
		(void)ptrace(PTRACE_INTERRUPT, tid, 0, 0);
		return 1;
	}
	if (errno == ESRCH)
		return 0;
	if (errno != EPERM)
		return -errno;
	tracer = task_tracer(s, tid);
	if (tracer == s->tracer) {
		add(s, tid); /* a clone attached for us: it stops by itself */
		return 1;
	}
	if (tracer > 0)
		return -EBUSY;
	st = task_state(s, tid);
	if (st == 'Z' || st == 'X' || st == -ESRCH)
		return 0; /* exited (a zombie leader): it runs no more */
	return -EPERM;
}

/* Seize the threads not seized yet: 1 if there were any, 0, or -errno. */
static int seize_new(struct pm__stop *s, DIR *d)
{
	struct dirent *e;
	int found = 0;

	rewinddir(d);
	errno = 0;
	while ((e = readdir(d))) {
		char *end;
		long tid = strtol(e->d_name, &end, 10);
		int r;

		if (*end || tid <= 0 || known(s, (pid_t)tid))
			continue;
		r = seize(s, (pid_t)tid);
		if (r < 0)
			return r;
		found |= r;
		errno = 0;
	}
	return errno ? (errno == ENOENT ? -ESRCH : -errno) : found;
}

/* The target's parent, from /proc/PID/stat. */
static pid_t parent_of(struct pm_handle *h)
{
	char buf[1024];
	const char *p;

	if (pm__slurp(h->stat_fd, buf, sizeof(buf), true))
		return 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] && p[3] ? (pid_t)atoi(p + 4) : 0;
}

int pm__stop_begin(struct pm_handle *h, struct pm__stop **out)
{
	struct pm__stop *s;
	DIR *d = NULL;
	int r, fd;

	*out = NULL;
	if (h->self)
		return -EPERM; /* a thread cannot stop its own process */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pid = h->pid;
	s->tracer = gettid();
	s->parent_is_us = parent_of(h) == getpid();
	s->task_fd = openat(h->dirfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = s->task_fd < 0 ? -1 : dup(s->task_fd);
	if (fd >= 0)
		d = fdopendir(fd);
	if (!d) {
		r = s->task_fd < 0 && errno == ENOENT ? -ESRCH : -errno;
		if (fd >= 0)
			close(fd);
		pm__stop_end(s);
		return r;
	}
	do {
		r = seize_new(s, d);
		if (r >= 0) {
			int w = wait_all(s);

			r = w ? w : r;
		}
	} while (r > 0);
	closedir(d);
	if (!r) {
		bool any = false;

		for (size_t i = 0; i < s->n; i++)
			any |= s->t[i].state == T_STOPPED;
		r = any ? 0 : -ESRCH;
	}
	if (r) {
		pm__stop_end(s);
		return r;
	}
	atomic_fetch_add(&h->stops, 1);
	s->h = h;
	*out = s;
	return 0;
}

int pm__stop_end(struct pm__stop *s)
{
	int err = 0;

	if (!s)
		return 0;
	if (s->h)
		atomic_fetch_sub(&s->h->stops, 1);
	/* after a failed begin, seized threads may still be on their way
	 * into their stop: only a stopped tracee can be detached */
	err = wait_all(s);
	for (size_t i = 0; i < s->n; i++) {
		if (s->t[i].state != T_STOPPED)
			continue;
		if (!ptrace(PTRACE_DETACH, s->t[i].tid, 0, s->t[i].sig))
			continue;
		if (errno == ESRCH) {
			/* killed while stopped: wait until it is a zombie */
			s->t[i].state = T_SEIZED;
			if (!collect(s, i) && s->t[i].state == T_STOPPED)
				(void)ptrace(PTRACE_DETACH, s->t[i].tid, 0, s->t[i].sig);
		} else if (!err) {
			err = -errno;
		}
	}
	if (s->task_fd >= 0)
		close(s->task_fd);
	free(s->t);
	free(s);
	return err;
}
