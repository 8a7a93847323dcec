/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "target.h"
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static struct target_shared *tsh;
static void (*tfn)(int idx, void *arg);
static void *targ;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&tsh->usr1, 1);
}

static void *short_lived(void *arg)
{
	(void)arg;
	atomic_fetch_add(&tsh->spawned, 1);
	return NULL;
}

static void *churn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&tsh->ready, 1);
	for (;;) {
		pthread_t th;

		if (!pthread_create(&th, NULL, short_lived, NULL))
			pthread_join(th, NULL);
	}
	return NULL;
}

static void run(int idx)
{
	atomic_fetch_add(&tsh->ready, 1);
	if (tfn)
		tfn(idx, targ);
	for (;;)
		atomic_fetch_add_explicit(&tsh->progress[idx], 1, memory_order_relaxed);
}

static void *thread_main(void *arg)
{
	run((int)(intptr_t)arg);
	return NULL;
}

void target_start(struct target *t, int nthreads, int flags, void (*fn)(int idx, void *arg),
		  void *arg)
{
	uint64_t want = (uint64_t)nthreads + 1 + (flags & TARGET_CHURN ? 2 : 0);

	ck_assert_int_lt(nthreads, TARGET_MAX_THREADS);
	t->sh = xmap(NULL, sizeof(*t->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	memset(t->sh, 0, sizeof(*t->sh));
	t->pid = fork();
	ck_assert_int_ge(t->pid, 0);
	if (t->pid == 0) {
		pthread_t th;

		tsh = t->sh;
		tfn = fn;
		targ = arg;
		signal(SIGUSR1, on_usr1);
		for (int i = 1; i <= nthreads; i++)
			if (pthread_create(&th, NULL, thread_main, (void *)(intptr_t)i))
				_exit(1);
		for (int i = 0; (flags & TARGET_CHURN) && i < 2; i++)
			if (pthread_create(&th, NULL, churn, NULL))
				_exit(1);
		run(0);
	}
	while (atomic_load(&t->sh->ready) < want)
		usleep(1000);
}

void target_kill(struct target *t)
{
	int st = 0;

	kill(t->pid, SIGCONT);
	kill(t->pid, SIGKILL);
	ck_assert_int_eq(waitpid(t->pid, &st, 0), t->pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "target status %#x", st);
	munmap(t->sh, sizeof(*t->sh));
}

uint64_t target_progress(const struct target *t)
{
	uint64_t sum = 0;

	for (int i = 0; i < TARGET_MAX_THREADS; i++)
		sum += atomic_load(&t->sh->progress[i]);
	return sum;
}

static int scan_tasks(pid_t pid, const char *states)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char buf[512], file[320];
		const char *p;
		ssize_t r;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "/proc/%d/task/%s/stat", (int)pid, e->d_name);
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* exited meanwhile */
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		p = strrchr(buf, ')');
		if (p && (!states || strchr(states, p[2])))
			n++;
	}
	closedir(d);
	return n;
}

int tasks_in(pid_t pid, const char *states)
{
	return scan_tasks(pid, states);
}

int tasks_total(pid_t pid)
{
	return scan_tasks(pid, NULL);
}

int drop_to_nobody(void)
{
	return setgroups(0, NULL) || setgid(65534) || setuid(65534) ? -1 : 0;
}

void debugger_start(struct debugger *d, pid_t tid)
{
	int go[2], hold[2];
	char c = 0;

	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		close(hold[1]);
		if (ptrace(PTRACE_SEIZE, tid, 0, 0))
			_exit(1);
		(void)!write(go[1], &c, 1);
		(void)!read(hold[0], &c, 1);
		_exit(0);
	}
	close(go[1]);
	close(hold[0]);
	ck_assert_int_eq(read(go[0], &c, 1), 1);
	close(go[0]);
	d->release = hold[1];
}

void debugger_stop(struct debugger *d)
{
	int st;

	close(d->release);
	ck_assert_int_eq(waitpid(d->pid, &st, 0), d->pid);
	ck_assert_int_eq(st, 0);
}

pid_t last_thread(pid_t pid)
{
	char path[32];
	struct dirent *e;
	pid_t last = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (atoi(e->d_name) > last)
			last = atoi(e->d_name);
	closedir(d);
	return last;
}
