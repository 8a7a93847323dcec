/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "layouts.h"
#include "keep-fds.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t ps;

void *xmap(size_t len, int prot, int flags)
{
	void *p = mmap(NULL, len, prot, flags, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		_exit(1);
	}
	return p;
}

void pread_all(int fd, uint64_t *buf, uint64_t lo, uint64_t hi)
{
	size_t len = (hi - lo) / ps * 8, done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(lo / ps * 8 + done));

		if (r <= 0) {
			perror("pread pagemap");
			exit(1);
		}
		done += (size_t)r;
	}
}

static struct span anon_4k(void)
{
	const size_t len = 1UL << 30;
	char *p = xmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	madvise(p, len, MADV_NOHUGEPAGE);
	memset(p, 1, len);
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

static struct span anon_thp(void)
{
	const size_t len = 1UL << 30;
	char *p = xmap(len + HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	p = (char *)(((uintptr_t)p + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 1, len);
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

static struct span sparse_64g(void)
{
	const size_t len = 64UL << 30;
	char *p = xmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);

	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < len; off += HUGE_SZ)
		p[off] = 1;
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

struct span many_vmas(void)
{
	const int n = 10000;
	char *p = xmap((size_t)n * 4 * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);

	for (int i = 0; i < n; i++) {
		char *v = p + (size_t)i * 4 * ps;

		if (i % 2) {
			mprotect(v, 4 * ps, PROT_READ | PROT_WRITE);
			v[0] = 1;
			v[2 * ps] = 1;
		}
	}
	return (struct span){ (uintptr_t)p, (uintptr_t)p + (size_t)n * 4 * ps };
}

struct span gapped_vmas(uint64_t gap)
{
	const size_t vma = 4 * ps, len = NVMAS * (vma + gap);
	char *base = xmap(len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);

	/* the reservation only finds room: the gaps are holes, not VMAs */
	munmap(base, len);
	for (size_t i = 0; i < NVMAS; i++) {
		char *v = mmap(base + i * (vma + gap), vma, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (v == MAP_FAILED) {
			perror("mmap gapped");
			_exit(1);
		}
		memset(v, 1, vma);
	}
	return (struct span){ (uintptr_t)base, (uintptr_t)base + len - gap };
}

/* Read every page of [p, p + len), alternating protections per VMA. */
static void read_alternating(volatile char *p, size_t len, int prot)
{
	for (size_t i = 0; i < len / (4 * ps); i++)
		if (i % 2)
			mprotect((char *)p + i * 4 * ps, 4 * ps, prot);
	for (size_t off = 0; off < len; off += ps)
		(void)p[off];
}

struct span zero_vmas(void)
{
	const size_t len = NVMAS * 4 * ps;
	char *p = xmap(len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);

	madvise(p, len, MADV_NOHUGEPAGE);
	read_alternating(p, len, PROT_READ | PROT_WRITE);
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

struct span file_vmas(void)
{
	const size_t len = NVMAS * 4 * ps;
	int fd = memfd_create("bench-file-vmas", MFD_CLOEXEC);
	char *p;

	if (fd < 0 || ftruncate(fd, (off_t)len)) {
		perror("memfd");
		_exit(1);
	}
	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap memfd");
		_exit(1);
	}
	close(fd);
	read_alternating(p, len, PROT_READ | PROT_WRITE);
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

struct span cow_vmas(void)
{
	const size_t len = NVMAS * 4 * ps;
	char *p = xmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	const pid_t parent = getpid();
	pid_t copy;

	madvise(p, len, MADV_NOHUGEPAGE);
	memset(p, 1, len);
	for (size_t i = 1; i < NVMAS; i += 2)
		mprotect(p + i * 4 * ps, 4 * ps, PROT_READ);
	copy = fork();
	if (copy == 0) {
		/* gone with the process that holds the layout */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		for (;;)
			pause();
	}
	if (copy < 0) {
		perror("fork");
		_exit(1);
	}
	return (struct span){ (uintptr_t)p, (uintptr_t)p + len };
}

void print_row(const char *what, double ratio, double floor, bool at_least)
{
	bool pass = at_least ? ratio >= floor : ratio <= floor;

	printf("ROW | %s | %.2fx | %s %.2fx | %s\n", what, ratio, at_least ? ">=" : "<=", floor,
	       pass ? "PASS" : "FAIL");
	fflush(stdout);
}

const struct layout layouts[] = {
	{ "1 GiB 4K anon", anon_4k, true },
	{ "1 GiB THP", anon_thp, true },
	{ "64 GiB sparse", sparse_64g, false },
	{ "10,000 VMAs x 16 KiB", many_vmas, false },
};
const size_t nlayouts = sizeof(layouts) / sizeof(layouts[0]);

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

pid_t bench_child(void (*build)(void *arg, struct span *out), void *arg, struct span *out,
		  size_t nout, int *hold_fd)
{
	struct span *shared;
	int ready[2], hold[2];
	char c = 0;
	pid_t pid;

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	shared = xmap(ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
	if (pipe2(ready, O_CLOEXEC) || pipe2(hold, O_CLOEXEC))
		exit(1);
	pid = fork();
	if (pid == 0) {
		keep_only_fds(ready[1], hold[0]);
		build(arg, shared);
		(void)!write(ready[1], &c, 1);
		(void)!read(hold[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	if (read(ready[0], &c, 1) != 1)
		exit(1);
	close(ready[0]);
	memcpy(out, shared, nout * sizeof(*out));
	munmap(shared, ps);
	*hold_fd = hold[1];
	return pid;
}

static void build_all(void *arg, struct span *out)
{
	(void)arg;
	for (size_t i = 0; i < nlayouts; i++)
		out[i] = layouts[i].build();
}

pid_t layouts_start(struct span *spans, int *hold_fd)
{
	return bench_child(build_all, NULL, spans, nlayouts, hold_fd);
}

void layouts_stop(pid_t pid, int hold)
{
	close(hold);
	waitpid(pid, NULL, 0);
}
