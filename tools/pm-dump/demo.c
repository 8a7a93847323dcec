/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The demo: a child with one mapping of each kind, labelled so the dump
 * can say which row is which. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pm-dump.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* What each demo mapping is, sent to the parent. */
struct demo_label {
	uint64_t addr;
	char label[40];
};
#define DEMO_LABELS 7
static struct demo_label demo_labels[DEMO_LABELS];
static int demo_nlabels;

const char *demo_label(const struct pm_vma *v)
{
	for (int i = 0; i < demo_nlabels; i++)
		if (demo_labels[i].addr >= v->start && demo_labels[i].addr < v->end)
			return demo_labels[i].label;
	return NULL;
}

static void *map(size_t len, int prot, int flags, int fd, const char *label)
{
	void *p = mmap(NULL, len, prot, flags, fd, 0);

	if (p == MAP_FAILED)
		_exit(3);
	demo_labels[demo_nlabels].addr = (uint64_t)(uintptr_t)p;
	snprintf(demo_labels[demo_nlabels].label, sizeof(demo_labels[0].label), "%s", label);
	demo_nlabels++;
	return p;
}

/* Builds a layout with one VMA of each kind, reports ready, and lives until
 * the parent closes the pipe. */
static void demo_child(int ready, int hold, uint64_t ps)
{
	const size_t huge = 512 * ps; /* a PMD: 2 MiB with 4 KiB pages */
	char path[] = "/tmp/pm-dump-demo-XXXXXX";
	volatile char *p;
	char c = 'r';
	int fd;

	/* 4K anon: every other page of 16 written */
	p = map(16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		"4K anon, 8 of 16 pages written");
	for (int i = 0; i < 16; i += 2)
		p[i * ps] = 1;
	/* THP: a PMD-aligned block advised huge, then written */
	p = map(2 * huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		"THP, 2 MiB written");
	p = (volatile char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
	madvise((void *)p, huge, MADV_HUGEPAGE);
	for (size_t i = 0; i < huge; i += ps)
		p[i] = 1;
	/* file: 8 pages of a temporary file, 4 read in */
	fd = mkstemp(path);
	if (fd >= 0 && ftruncate(fd, (off_t)(8 * ps)) == 0) {
		unlink(path);
		p = map(8 * ps, PROT_READ, MAP_PRIVATE, fd, "file, 4 of 8 pages read");
		for (int i = 0; i < 4; i++)
			(void)p[i * ps];
		close(fd);
	}
	/* shmem: 8 shared anonymous pages, all written */
	p = map(8 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		"shmem, 8 pages written");
	for (int i = 0; i < 8; i++)
		p[i * ps] = 1;
	/* zero page: 8 private pages only read */
	p = map(8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		"zero page, 8 pages read");
	madvise((void *)p, 8 * ps, MADV_NOHUGEPAGE);
	for (int i = 0; i < 8; i++)
		(void)p[i * ps];
	/* PROT_NONE reservation */
	map(32 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, "PROT_NONE reservation");
	/* guard pages: 2 of 8 (kernels with MADV_GUARD_INSTALL, 6.13+) */
	p = map(8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		"2 guard pages, 1 page written");
	p[0] = 1;
	madvise((void *)(p + 2 * ps), 2 * ps, MADV_GUARD_INSTALL);
	if (write(ready, demo_labels, sizeof(demo_labels)) != sizeof(demo_labels))
		_exit(4);
	(void)!read(hold, &c, 1);
	_exit(0);
}

pid_t demo_start(int *hold_fd, uint64_t page_size)
{
	int ready[2], hold[2];
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) || pipe2(hold, O_CLOEXEC))
		die("pipe", errno);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		demo_child(ready[1], hold[0], page_size);
	}
	close(ready[1]);
	close(hold[0]);
	if (read(ready[0], demo_labels, sizeof(demo_labels)) != sizeof(demo_labels))
		die("demo child", ECHILD);
	demo_nlabels = DEMO_LABELS;
	close(ready[0]);
	*hold_fd = hold[1];
	return pid;
}

void demo_stop(pid_t pid, int hold_fd)
{
	close(hold_fd);
	waitpid(pid, NULL, 0);
}
