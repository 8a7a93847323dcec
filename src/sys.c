/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The system-call layer: EINTR, short reads, EOF and errno conversion in one place. */
#include "internal.h"

#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int sys_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg);
}

struct pm__sysops pm__sys = {
	.pread = pread,
	.ioctl = sys_ioctl,
};

/* Read up to @n bytes at @off, retrying EINTR and short reads: the count
 * read (less than @n only at EOF), or -errno. */
static long pread_upto(int fd, void *buf, size_t n, uint64_t off, uint64_t *nreads)
{
	size_t done = 0;

	while (done < n) {
		long r = PM__NOINTR(pm__sys.pread(fd, (char *)buf + done, n - done,
						  (off_t)(off + done)));

		if (nreads)
			(*nreads)++;
		if (r < 0)
			return r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (long)done;
}

int pm__pread_full(int fd, void *buf, size_t n, uint64_t off, uint64_t *nreads)
{
	long r = pread_upto(fd, buf, n, off, nreads);

	return r < 0 ? (int)r : (size_t)r < n ? -ESRCH : 0;
}

/*
 * The kernel's pagemap_read() ends at the target mm's task_size, the top
 * of its address space (0xffffe000 for a 32-bit x86 process, far below a
 * 64-bit caller's), and answers 0 bytes there, as it does when the mm is
 * gone. A read at address 0 tells them apart (it has an entry while the
 * mm lives), and the handle's identity check that the process still has
 * that mm: then the rest lies at or above its top, where nothing can be
 * mapped: not mapped, as a gap. Otherwise it is the EOF of an exit or an
 * exec, whatever the identity check could not show (an exiting process
 * without an mm reads as hidden, -EPERM; a process that re-exec'd its own
 * binary with the same arguments without address-space randomisation
 * shows the same fields): -ESRCH.
 * (On a kernel without the retry fix a read can also end early when the
 * PMDs it skipped ran to the top; a skip moves the guard's counters, so
 * the guard's bracket around this read rejects it as any other.)
 */
int pm__pagemap_eof(struct pm_handle *h, void *rest, size_t len)
{
	if (pm__handle_mm_gone(h) || pm__handle_check(h))
		return -ESRCH;
	memset(rest, 0, len);
	return 0;
}

int pm__pagemap_pread(struct pm_handle *h, void *buf, size_t n, uint64_t off, uint64_t *nreads)
{
	long r = pread_upto(h->pagemap_fd, buf, n, off, nreads);

	if (r < 0)
		return (int)r;
	return (size_t)r < n ? pm__pagemap_eof(h, (char *)buf + r, n - (size_t)r) : 0;
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


uint64_t pm__mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
