/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The whole machine (issue #16 row 8, #11's --all floor): this machine's
 * processes plus 120 spawned here with varied layouts (16 MiB of 4K
 * pages, 1,000 small VMAs, 8 MiB of THPs, a 4 MiB file mapping), all
 * stopped. Each method is a process of its own run over every process,
 * in shuffled order per repetition, medians:
 *   raw      open /proc/PID/pagemap + one whole-address-space PAGEMAP_SCAN
 *   rollup   read every /proc/PID/smaps_rollup
 *   dump     pm-dump --all --json (Rss, Swap)
 *   dump-pss pm-dump --all --json --pss (Pss, Uss too)
 *   opens    pm_open + pm_close per process (what the handle costs alone)
 *   dump, dump-pss with the consistency guard the other way: forced on
 *            (LIBPAGEMAP_ASSUME_RETRY_FIX=0) on a kernel with the retry fix,
 *            off (=1) on one without; issue 10's "pm-dump --all <= 1.15x"
 * Without PAGEMAP_SCAN (benchmark all-6.1: the 6.1 VM, where the guard
 * matters) the raw pass and its row are left out.
 * Usage: bench-all PM_DUMP [old] ("old": a pm-dump whose --all has Pss
 * without --pss, to measure the code before it).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

#include "layouts.h"
#include "order.h"

#define REPS 9
#define NCHILD 120

struct scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t inverted, mask, anyof, ret;
};
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct scan_arg)

static void layout(int kind)
{
	const size_t mib = 1 << 20;
	char *p;

	switch (kind) {
	case 0:
		p = xmap(16 * mib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
		madvise(p, 16 * mib, MADV_NOHUGEPAGE);
		memset(p, 1, 16 * mib);
		break;
	case 1:
		p = xmap(1000 * 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
		for (size_t i = 0; i < 1000; i++) {
			p[i * 4 * ps] = 1;
			if (i % 2)
				mprotect(p + i * 4 * ps, 4 * ps, PROT_READ);
		}
		break;
	case 2:
		p = xmap(10 * mib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
		p = (char *)(((uintptr_t)p + 2 * mib - 1) & ~(uintptr_t)(2 * mib - 1));
		madvise(p, 8 * mib, MADV_HUGEPAGE);
		memset(p, 1, 8 * mib);
		break;
	default: {
		int fd = memfd_create("bench-all", MFD_CLOEXEC);
		volatile char sink = 0;

		if (fd < 0 || ftruncate(fd, 4 * (off_t)mib))
			_exit(1);
		p = mmap(NULL, 4 * mib, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			_exit(1);
		for (size_t i = 0; i < 4 * mib; i += ps)
			sink += p[i];
		(void)sink;
	}
	}
}

static size_t pids(int **out)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t n = 0;

	while (d && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		*out = realloc(*out, (n + 1) * sizeof(**out));
		if (!*out)
			exit(1);
		(*out)[n++] = (int)pid;
	}
	if (d)
		closedir(d);
	return n;
}

/* /proc/PID/<name>, read-only: an fd or -1. */
static int proc_open(int pid, const char *name)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* The raw passes, each run as a process of its own like pm-dump. */
static int pass_raw(void)
{
	static struct pm_region v[512];
	uint64_t total = 0;
	int *p = NULL;
	size_t n = pids(&p);

	for (size_t i = 0; i < n; i++) {
		int fd = proc_open(p[i], "pagemap");

		if (fd < 0)
			continue;
		for (uint64_t cur = 0, end = 0x7ffffffff000ULL; cur < end;) {
			struct scan_arg a = { .size = sizeof(a), .start = cur, .end = end,
					      .vec = (uintptr_t)v, .vec_len = 512,
					      .anyof = PM_CAT_PRESENT | PM_CAT_SWAPPED,
					      .ret = PM_CAT_PRESENT | PM_CAT_SWAPPED | PM_CAT_FILE |
						     PM_CAT_PFNZERO | PM_CAT_HUGE | PM_CAT_GUARD };
			int r = ioctl(fd, PAGEMAP_SCAN_, &a);

			if (r < 0)
				break;
			for (int k = 0; k < r; k++)
				total += v[k].end - v[k].start;
			cur = a.walk_end;
			if (r > 0 && v[r - 1].end > cur)
				cur = v[r - 1].end;
		}
		close(fd);
	}
	printf("%llu\n", (unsigned long long)total);
	return 0;
}

static int pass_opens(void)
{
	int *p = NULL, ok = 0;
	size_t n = pids(&p);

	for (size_t i = 0; i < n; i++) {
		struct pm_handle *h;

		if (pm_open(p[i], NULL, &h) == 0) {
			pm_close(h);
			ok++;
		}
	}
	printf("%d\n", ok);
	return 0;
}

static int pass_rollup(void)
{
	static char buf[8192];
	size_t bytes = 0;
	int *p = NULL;
	size_t n = pids(&p);

	for (size_t i = 0; i < n; i++) {
		int fd = proc_open(p[i], "smaps_rollup");
		ssize_t r;

		if (fd < 0)
			continue;
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			bytes += (size_t)r;
		close(fd);
	}
	printf("%zu\n", bytes);
	return 0;
}

/* Run argv with stdout to /dev/null, LIBPAGEMAP_ASSUME_RETRY_FIX=@fix
 * unless NULL: seconds. */
static double timed(char *const argv[], const char *fix)
{
	double t = now();
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (fix)
			setenv("LIBPAGEMAP_ASSUME_RETRY_FIX", fix, 1);
		dup2(nul, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "%s %s failed\n", argv[0], argv[1]);
		exit(1);
	}
	return now() - t;
}

static void row(const char *what, double ratio, double floor)
{
	printf("ROW | %s | %.2fx | <= %.2fx | %s\n", what, ratio, floor,
	       ratio <= floor ? "PASS" : "FAIL");
}

enum { RAW, ROLLUP, DUMP, DUMP_PSS, OPENS, DUMP_G, DUMP_PSS_G, NM };

int main(int argc, char **argv)
{
	static const char *names[NM] = { "raw open + PAGEMAP_SCAN", "smaps_rollup",
					       "pm-dump --all", "pm-dump --all --pss",
					       "pm_open + pm_close", NULL, NULL };
	char self[4096];
	double t[NM][REPS], med[NM];
	pid_t kids[NCHILD];
	uint64_t seed = 3;
	bool old, scan, fix;
	const char *names_g[2];
	int *all = NULL;
	size_t nproc;
	ssize_t sl;

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	if (argc == 2 && !strcmp(argv[1], "--raw"))
		return pass_raw();
	if (argc == 2 && !strcmp(argv[1], "--rollup"))
		return pass_rollup();
	if (argc == 2 && !strcmp(argv[1], "--opens"))
		return pass_opens();
	if (argc < 2) {
		fprintf(stderr, "usage: bench-all PM_DUMP [old]\n");
		return 2;
	}
	scan = pm_has_feature(PM_FEAT_PAGEMAP_SCAN) == 1;
	fix = pm_has_feature(PM_FEAT_WALK_RETRY_FIX) == 1;
	names_g[0] = fix ? "pm-dump --all, guard on" : "pm-dump --all, guard off";
	names_g[1] = fix ? "pm-dump --all --pss, guard on" : "pm-dump --all --pss, guard off";
	old = argc > 2 && !strcmp(argv[2], "old");
	sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		return 1;
	self[sl] = '\0';
	for (int i = 0; i < NCHILD; i++) {
		int pfd[2];
		char c;

		if (pipe(pfd))
			return 1;
		kids[i] = fork();
		if (kids[i] == 0) {
			close(pfd[0]);
			layout(i % 4);
			if (write(pfd[1], "x", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		close(pfd[1]);
		if (kids[i] < 0 || read(pfd[0], &c, 1) != 1)
			return 1;
		close(pfd[0]);
		kill(kids[i], SIGSTOP);
	}
	nproc = pids(&all);
	{
		char *raw[] = { self, "--raw", NULL }, *roll[] = { self, "--rollup", NULL };
		char *opens[] = { self, "--opens", NULL };
		char *dump[] = { argv[1], "--all", "--json", NULL };
		char *dpss[] = { argv[1], "--all", "--json", "--pss", NULL };
		char **cmd[NM] = { raw, roll, dump, old ? dump : dpss, opens, dump, dpss };

		for (int r = 0; r < REPS; r++) {
			int order[NM];

			bench_order(order, NM, &seed);
			for (int k = 0; k < NM; k++) {
				const int m = order[k];

				if (m == RAW && !scan)
					continue;
				t[m][r] = timed(cmd[m], m < DUMP_G ? NULL : fix ? "0" : "1");
			}
		}
	}
	names[DUMP_G] = names_g[0];
	names[DUMP_PSS_G] = names_g[1];
	for (int k = 0; k < NM; k++)
		med[k] = scan || k != RAW ? median(t[k], REPS) : 0;
	printf("# %zu processes (%d spawned here), each method a process of its own, medians of "
	       "%d, shuffled (pm-dump %s%s)\n", nproc, NCHILD, REPS, argv[1],
	       old ? ", whose --all has Pss already" : "");
	for (int k = 0; k < NM; k++)
		if (scan || k != RAW)
			printf("  %-30s %8.2f ms  %.2fx smaps_rollup\n", names[k], med[k] * 1e3,
			       med[k] / med[ROLLUP]);
	{
		/* guard on over guard off, whichever is this kernel's default */
		const double on = fix ? med[DUMP_G] : med[DUMP], off = fix ? med[DUMP] : med[DUMP_G];
		const double pon = fix ? med[DUMP_PSS_G] : med[DUMP_PSS];
		const double poff = fix ? med[DUMP_PSS] : med[DUMP_PSS_G];
		char what[160];

		if (scan) {
			snprintf(what, sizeof(what), "pm-dump --all, %zu processes, vs raw open + "
				 "one PAGEMAP_SCAN per process", nproc);
			row(what, med[DUMP] / med[RAW], 1.10);
		}
		snprintf(what, sizeof(what), "pm-dump --all, %zu processes, guard on vs off", nproc);
		row(what, on / off, 1.15);
		snprintf(what, sizeof(what), "pm-dump --all --pss, %zu processes, guard on vs off",
			 nproc);
		row(what, pon / poff, 1.15);
		snprintf(what, sizeof(what), "pm-dump --all%s with Pss, %zu processes, vs every "
			 "smaps_rollup", old ? "" : " --pss", nproc);
		row(what, med[DUMP_PSS] / med[ROLLUP], 2.0);
	}
	for (int i = 0; i < NCHILD; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	free(all);
	return 0;
}
