/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A real seccomp filter for a forked test child: the listed system calls
 * get @action (SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO | e, ...), every
 * other one is allowed. Returns 0 or -1. */
#ifndef PM_TEST_SANDBOX_H
#define PM_TEST_SANDBOX_H

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>

static inline int sandbox_filter(const int *nrs, size_t n, uint32_t action)
{
	struct sock_filter f[64];
	struct sock_fprog prog;
	size_t k = 0;

	if (n > 60)
		return -1;
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < n; i++)
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nrs[i],
						      (uint8_t)(n - i), 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action);
	prog.len = (unsigned short)k;
	prog.filter = f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

#endif
