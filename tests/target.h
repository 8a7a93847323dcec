/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A running multi-threaded target process, and what its threads' states
 * say, for the tests that stop a target. */
#ifndef PM_TEST_TARGET_H
#define PM_TEST_TARGET_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define TARGET_MAX_THREADS 128

/* Shared between the test and the target. */
struct target_shared {
	_Atomic uint64_t ready;   /* threads running */
	_Atomic uint64_t usr1;    /* SIGUSR1 handled */
	_Atomic uint64_t spawned; /* short-lived threads created (TARGET_CHURN) */
	_Atomic uint64_t progress[TARGET_MAX_THREADS];
};

struct target {
	pid_t pid;
	struct target_shared *sh;
};

#define TARGET_CHURN 1 /* two more threads keep creating short-lived threads */

/* Fork a target whose main thread and @nthreads others run @fn(idx, arg)
 * (default: count in progress[idx] forever); returns once all run. */
void target_start(struct target *t, int nthreads, int flags, void (*fn)(int idx, void *arg),
		  void *arg);
/* SIGKILL it and reap it here: the exit status must still be ours. */
void target_kill(struct target *t);
/* Sum of the progress counters. */
uint64_t target_progress(const struct target *t);

/* How many threads of @pid have a state letter in @states ("t": ptrace
 * stop, "T": job-control stop); -1 if the process is gone. */
int tasks_in(pid_t pid, const char *states);
int tasks_total(pid_t pid);

/* A real tracer: a forked process that has seized thread @tid (not
 * stopped) and holds it until debugger_stop(). */
struct debugger {
	pid_t pid;
	int release;
};
void debugger_start(struct debugger *d, pid_t tid);
void debugger_stop(struct debugger *d);
/* The highest thread id of @pid. */
pid_t last_thread(pid_t pid);

/* In a forked child: become uid/gid 65534 (nobody) for good. 0 or -1. */
int drop_to_nobody(void);

#endif
