/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm-incremental: a small CRIU-style incremental copy with pm_wtrack.
 *
 * A workload writes pages of its memory at random. The copier takes one
 * full copy, then every round copies only the pages written since the
 * round before (collect with PM_WT_COLLECT_RESET). At the end the workload
 * stops, a last round runs, and the copy is compared with the live memory
 * page by page: any write the tracker lost would show up as a stale page.
 *
 * The workload is a child process, tracked with soft-dirty where the
 * kernel has it while it keeps running. The tracker stops it only while
 * it reads and clears the bits (PM_WT_F_STOP); without that (--no-stop) a
 * round during which the child faulted reports every populated page, and
 * the copy never gets smaller. With --self or where soft-dirty is
 * missing, the workload is threads of this process (tracked with
 * userfaultfd where the kernel has it). Each round prints the pages
 * reported (and copied), and how long the target was stopped; the end
 * says whether the rounds converged (each of the last half reported
 * under a tenth of the pages, small enough to stop the target for).
 *
 * Uses the public API only. Exit status: 0 verified, 1 a stale page or an
 * error, 77 no tracking method works on this kernel.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pagemap/pagemap.h>

static size_t ps, npages = 4096;
static int rounds = 10, interval_ms = 50;
static bool use_stop = true;

/* ---- the workload ---- */

static atomic_bool stop;
static atomic_uint_fast64_t writes;

/* Write a few random pages, pause, again: about 1% of the pages per round. */
static void work(char *mem, uint64_t seed)
{
	while (!atomic_load(&stop)) {
		for (int i = 0; i < 4; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			mem[(seed >> 33) % npages * ps + (seed >> 20) % ps] = (char)seed;
			atomic_fetch_add(&writes, 1);
		}
		usleep(2000);
	}
}

static void *work_thread(void *mem)
{
	work(mem, (uint64_t)pthread_self());
	return NULL;
}

/* ---- the copier: from a child (process_vm_readv) or from ourselves ---- */

struct target {
	pid_t pid; /* 0: this process */
	char *mem; /* in the target */
	char *copy;
};

static int copy_range(const struct target *t, uint64_t start, uint64_t end)
{
	size_t off = (size_t)(start - (uintptr_t)t->mem), len = (size_t)(end - start);
	struct iovec local = { t->copy + off, len }, remote = { (void *)(uintptr_t)start, len };

	if (!t->pid) {
		memcpy(t->copy + off, (void *)(uintptr_t)start, len);
		return 0;
	}
	return process_vm_readv(t->pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -errno;
}

/* One incremental round: copy what was written since the last one. */
static long round_copy(struct pm_wtrack *wt, const struct target *t)
{
	uint64_t a = (uintptr_t)t->mem, b = a + npages * ps, we;
	struct pm_region v[256];
	long pages = 0;

	for (uint64_t cur = a; cur < b; cur = we) {
		long n = pm_wtrack_collect(wt, cur, b, v, 256, PM_WT_COLLECT_RESET, &we);

		if (n < 0)
			return n;
		for (long i = 0; i < n; i++) {
			int r = copy_range(t, v[i].start, v[i].end);

			if (r)
				return r;
			pages += (long)((v[i].end - v[i].start) / ps);
		}
	}
	return pages;
}

/* Stop a child workload for good (nothing for threads of ours). */
static void freeze(const struct target *t)
{
	int st;

	if (!t->pid)
		return;
	kill(t->pid, SIGSTOP);
	waitpid(t->pid, &st, WUNTRACED);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run(struct pm_handle *h, struct target *t, pthread_t *th, int nthreads)
{
	PM_OPTS(pm_wtrack_opts, o, .flags = t->pid && use_stop ? PM_WT_F_STOP : 0);
	struct pm_range r = { (uintptr_t)t->mem, (uintptr_t)t->mem + npages * ps };
	double *held = calloc((size_t)rounds + 1, sizeof(double));
	long *reported = calloc((size_t)rounds + 1, sizeof(long)), copied = 0;
	struct pm_wtrack *wt = NULL;
	size_t stale = 0;
	char *live = NULL;
	int ret, i;

	ret = held && reported ? pm_wtrack_new(h, &r, 1, &o, &wt) : -ENOMEM;
	if (ret) {
		atomic_store(&stop, true);
		for (i = 0; i < nthreads; i++)
			pthread_join(th[i], NULL);
		free(held);
		free(reported);
		return ret;
	}
	printf("tracking %zu pages of %s with %s%s\n", npages,
	       t->pid ? "a running child" : "this process",
	       pm_wtrack_method(wt) == PM_WT_METHOD_UFFD ? "userfaultfd (async write-protect)"
							 : "soft-dirty",
	       o.flags & PM_WT_F_STOP ? ", stopping it to read and clear the bits" : "");
	/* the full copy: tracking started first, so what changes during the
	 * copy is copied again by the next round */
	ret = copy_range(t, r.start, r.end);
	copied = (long)npages;
	for (i = 0; !ret && i < rounds; i++) {
		PM_OPTS(pm_wtrack_stats, s0);
		PM_OPTS(pm_wtrack_stats, s1);
		long pages;

		usleep((useconds_t)interval_ms * 1000);
		pm_wtrack_stats(wt, &s0);
		pages = round_copy(wt, t);
		if (pages < 0) {
			ret = (int)pages;
			break;
		}
		pm_wtrack_stats(wt, &s1);
		reported[i] = pages;
		copied += pages;
		held[i] = (double)(s1.stop_ns_total - s0.stop_ns_total) / 1e6;
		printf("round %2d: %5ld pages reported and copied (%5.1f%%), %7ld copied in all",
		       i + 1, pages, 100.0 * (double)pages / (double)npages, copied);
		if (s1.stops > s0.stops)
			printf(", target stopped %.3f ms", held[i]);
		printf("%s\n", s1.widened > s0.widened ? " (widened: it faulted while read)" : "");
	}
	/* stop the workload, then the last round */
	atomic_store(&stop, true);
	for (int k = 0; k < nthreads; k++)
		pthread_join(th[k], NULL);
	freeze(t);
	if (!ret) {
		long pages = round_copy(wt, t);

		ret = pages < 0 ? (int)pages : 0;
		if (!ret)
			printf("final   : %5ld pages written after the workload stopped\n", pages);
	}
	if (!ret) {
		live = malloc(npages * ps);
		if (!live)
			ret = -ENOMEM;
	}
	if (!ret) {
		struct target whole = *t;

		whole.copy = live;
		ret = copy_range(&whole, r.start, r.end);
	}
	for (size_t k = 0; !ret && k < npages; k++)
		stale += memcmp(live + k * ps, t->copy + k * ps, ps) != 0;
	if (!ret) {
		PM_OPTS(pm_wtrack_stats, st);
		bool converged = rounds > 0;

		for (int k = rounds / 2; k < rounds; k++)
			converged &= reported[k] * 10 < (long)npages;
		pm_wtrack_stats(wt, &st);
		if (st.stops && rounds > 0) {
			qsort(held, (size_t)rounds, sizeof(*held), cmp_double);
			printf("stopped : median %.3f ms, max %.3f ms per round (%" PRIu64
			       " stops)\n",
			       held[rounds / 2], held[rounds - 1], st.stops);
		}
		printf("converged: %s\n", converged ? "yes (each of the last half of the rounds "
						      "reported under 10% of the pages)"
						    : "no");
		if (st.widened)
			printf("(%" PRIu64 " of %" PRIu64 " collects reported every populated page: "
			       "the workload faulted while its bits were read and cleared)\n",
			       st.widened, st.collects);
		printf("verified: %zu of %zu pages identical to the live memory%s\n", npages - stale,
		       npages, stale ? " -- STALE PAGES" : "");
	}
	free(live);
	free(held);
	free(reported);
	pm_wtrack_free(wt);
	return ret ? ret : stale ? -EIO : 0;
}

static int run_self(void)
{
	struct target t = { 0 };
	char why[256];
	pthread_t th[2];
	struct pm_handle *h;
	int ret;

	t.mem = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t.copy = malloc(npages * ps);
	if (t.mem == MAP_FAILED || !t.copy)
		return -ENOMEM;
	memset(t.mem, 1, npages * ps);
	ret = pm_open(0, NULL, &h);
	if (ret)
		return ret;
	if (pm_wtrack_supported(h, NULL, why, sizeof(why)) == 0) {
		fprintf(stderr, "pm-incremental: no write tracking here: %s\n", why);
		pm_close(h);
		return -EOPNOTSUPP;
	}
	atomic_store(&stop, false);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, work_thread, t.mem);
	ret = run(h, &t, th, 2);
	pm_close(h);
	munmap(t.mem, npages * ps);
	free(t.copy);
	return ret;
}

static int run_child(void)
{
	struct target t = { 0 };
	struct pm_handle *h;
	int ret, st;

	t.mem = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t.copy = malloc(npages * ps);
	if (t.mem == MAP_FAILED || !t.copy)
		return -ENOMEM;
	memset(t.mem, 1, npages * ps);
	t.pid = fork();
	if (t.pid < 0)
		return -errno;
	if (t.pid == 0) {
		work(t.mem, 7); /* the child's copy of the mapping, same address */
		_exit(0);
	}
	ret = pm_open(t.pid, NULL, &h);
	if (!ret) {
		char why[256];

		if (pm_wtrack_supported(h, NULL, why, sizeof(why)) == 0) {
			printf("a child cannot be tracked here (%s): tracking this process instead\n",
			       why);
			ret = -EOPNOTSUPP;
		} else {
			ret = run(h, &t, NULL, 0);
		}
		pm_close(h);
	}
	kill(t.pid, SIGKILL);
	waitpid(t.pid, &st, 0);
	munmap(t.mem, npages * ps);
	free(t.copy);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pm-incremental [--self] [--rounds N] [--pages N] [--interval MS]\n"
		   "Copy a workload's memory incrementally with pm_wtrack and verify the copy.\n"
		   "  --self         track this process's memory (userfaultfd where it works)\n"
		   "                 instead of a child's (soft-dirty where it works)\n"
		   "  --no-stop      do not stop the child while its bits are read and cleared\n"
		   "  --rounds N     incremental rounds (default 10)\n"
		   "  --pages N      pages of workload memory (default 4096)\n"
		   "  --interval MS  time between rounds (default 50)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "self", no_argument, NULL, 's' },     { "rounds", required_argument, NULL, 'r' },
		{ "pages", required_argument, NULL, 'p' }, { "interval", required_argument, NULL, 'i' },
		{ "no-stop", no_argument, NULL, 'n' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool self = false;
	int c, ret;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			self = true;
			break;
		case 'n':
			use_stop = false;
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'p':
			npages = (size_t)strtoull(optarg, NULL, 0);
			break;
		case 'i':
			interval_ms = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc || rounds < 0 || interval_ms < 0 || npages == 0) {
		usage(stderr);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ret = self ? -EOPNOTSUPP : run_child();
	if (ret == -EOPNOTSUPP)
		ret = run_self();
	if (ret == -EOPNOTSUPP)
		return 77;
	if (ret) {
		fprintf(stderr, "pm-incremental: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}
