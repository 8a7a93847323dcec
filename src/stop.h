/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stopping every thread of another process for a moment, and always
 * resuming it (stop.c). Shared by the options that need a target that
 * cannot fault: PM_READ_F_STOP and PM_WT_F_STOP.
 *
 * The stop is ptrace: the tracer is the calling *thread*, so begin and end
 * must be called from the same thread. While a stop is in place, the
 * caller's other threads must not wait for "any child" with __WALL, and
 * SIGCHLD may arrive for the tracees' stops. If the caller dies, the
 * kernel ends the stop (tracees are detached when their tracer exits).
 */
#ifndef PM_STOP_H
#define PM_STOP_H

#include "internal.h"

struct pm__stop; /* opaque */

/* Stop every thread of h's process (PTRACE_SEIZE + PTRACE_INTERRUPT, waiting for each
 * group-stop/interrupt stop; threads created meanwhile are caught too). 0 or -errno:
 * -EPERM for a handle on the calling process or a target the caller may not trace,
 * -EBUSY already traced by someone else, -ESRCH exited. On failure nothing stays stopped. */
PM_HIDDEN int pm__stop_begin(struct pm_handle *h, struct pm__stop **out);

/* Resume and detach every thread; frees s; NULL-safe. Returns the first error, but always resumes. */
PM_HIDDEN int pm__stop_end(struct pm__stop *s);

#endif
