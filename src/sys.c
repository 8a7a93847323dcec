/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The system-call layer: EINTR, short reads, EOF and errno conversion in one place. */
#include "internal.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg);
}

struct pm__sysops pm__sys = {
	.pread = pread,
	.ioctl = sys_ioctl,
};

int pm__pread_full(int fd, void *buf, size_t n, uint64_t off, uint64_t *nreads)
{
	char *p = buf;

	while (n) {
		long r = PM__NOINTR(pm__sys.pread(fd, p, n, (off_t)off));

		if (nreads)
			(*nreads)++;
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -ESRCH;
		p += r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}

int pm__ioctl(int fd, unsigned long req, void *arg)
{
	return (int)PM__NOINTR(pm__sys.ioctl(fd, req, arg));
}

/* A single seq_file record (stat, statm, status: single_open) is generated
 * whole, so a read that returns less than asked and ends the line has all
 * of it, and the read that would confirm EOF is not needed. /proc/vmstat
 * is many records: a read can stop short at the kernel's page-sized
 * buffer, so it is read to EOF. */
int pm__slurp(int fd, char *buf, size_t cap, bool one_record)
{
	size_t len = 0;

	while (len < cap - 1) {
		long r = PM__NOINTR(pm__sys.pread(fd, buf + len, cap - 1 - len, (off_t)len));

		if (r < 0)
			return (int)r;
		if (r == 0)
			break;
		len += (size_t)r;
		if (one_record && len < cap - 1 && buf[len - 1] == '\n')
			break;
	}
	if (len == 0)
		return -ESRCH;
	buf[len] = '\0';
	return 0;
}

int pm__pidfd_open(pid_t pid)
{
	long r = syscall(SYS_pidfd_open, pid, 0);

	return r < 0 ? -errno : (int)r;
}

