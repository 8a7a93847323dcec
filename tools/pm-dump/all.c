/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --all: every process this caller may read, one row each. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pm-dump.h"

#define ALL_BUDGET (4UL << 20) /* entries per batch run: 32 MiB of buffer */
#define ALL_QUEUE (ALL_BUDGET / 16)
#define ALL_REGIONS 4096

struct proc_stats {
	int pid;
	char comm[64];
	uint64_t size; /* bytes of address space */
	struct pm_usage u;
	int err;
};

enum { ALL_SORT_PID, ALL_SORT_PSS, ALL_SORT_RSS, ALL_SORT_USS, ALL_SORT_SWAP };
int all_sort_key(const char *name)
{
	static const char *const keys[] = { "pss", "rss", "uss", "swap" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(name, keys[i]))
			return ALL_SORT_PSS + i;
	return -1;
}

static int sort_key;

static uint64_t key_of(const struct proc_stats *p)
{
	return sort_key == ALL_SORT_PSS ? p->u.pss
	       : sort_key == ALL_SORT_RSS ? p->u.rss
	       : sort_key == ALL_SORT_USS ? p->u.uss
					  : p->u.swap;
}

/* largest first; processes without the value (n/a) last; then by pid */
static int by_key(const void *a, const void *b)
{
	const struct proc_stats *x = a, *y = b;
	const uint64_t bit = sort_key == ALL_SORT_PSS ? PM_USAGE_PSS
			     : sort_key == ALL_SORT_RSS ? PM_USAGE_RSS
			     : sort_key == ALL_SORT_USS ? PM_USAGE_USS
							: PM_USAGE_SWAP;
	const bool vx = x->u.valid & bit, vy = y->u.valid & bit;

	if (sort_key != ALL_SORT_PID) {
		if (vx != vy)
			return vx ? -1 : 1;
		if (vx && key_of(x) != key_of(y))
			return key_of(x) > key_of(y) ? -1 : 1;
	}
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static size_t list_pids(struct proc_stats **ps)
{
	struct dirent *de;
	size_t n = 0;
	DIR *dir = opendir("/proc");

	if (!dir)
		die("/proc", errno);
	while ((de = readdir(dir))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		*ps = realloc(*ps, (n + 1) * sizeof(**ps));
		if (!*ps)
			die("realloc", ENOMEM);
		memset(&(*ps)[n], 0, sizeof(**ps));
		(*ps)[n++].pid = (int)pid;
	}
	closedir(dir);
	return n;
}

/* The name and the address-space size from /proc/PID/stat: one read. The
 * name is the text between the first '(' and the last ')' (a name may
 * hold both); vsize is the 23rd field. */
static void read_stat(struct proc_stats *p)
{
	char path[64], buf[1024], *l, *r;
	unsigned long long vsize = 0;
	size_t len;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", p->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	l = strchr(buf, '(');
	r = strrchr(buf, ')');
	if (!l || !r || r < l)
		return;
	len = (size_t)(r - l - 1) < sizeof(p->comm) - 1 ? (size_t)(r - l - 1) : sizeof(p->comm) - 1;
	memcpy(p->comm, l + 1, len);
	p->comm[len] = '\0';
	p->comm[strcspn(p->comm, "\n")] = '\0'; /* as the old /proc/PID/comm row did */
	/* state is field 3: vsize 20 fields on */
	if (sscanf(r + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			  "%*d %*d %*u %llu", &vsize) == 1)
		p->size = vsize;
}

static void usage_cols(struct out *o, const struct pm_usage *u, bool pss)
{
	out_opt_u64(o, "rss_kib", 10, u->valid & PM_USAGE_RSS, u->rss >> 10);
	if (pss) {
		out_opt_u64(o, "pss_kib", 10, u->valid & PM_USAGE_PSS, u->pss >> 22);
		out_opt_u64(o, "uss_kib", 10, u->valid & PM_USAGE_USS, u->uss >> 10);
	}
	out_opt_u64(o, "swap_kib", 10, u->valid & PM_USAGE_SWAP, u->swap >> 10);
}

static void process_row(struct dump *d, const struct proc_stats *p)
{
	struct out *o = &d->out;

	out_row(o);
	out_u64(o, "pid", "%8" PRIu64, (uint64_t)p->pid);
	out_str(o, "comm", " %-16s", p->comm);
	out_u64(o, "size_kib", " %12" PRIu64, p->size / 1024);
	usage_cols(o, &p->u, d->pss);
	out_row_end(o);
}

/* What the columns this caller cannot have are, and why: asked of this
 * process, which every caller may read. */
static void all_unavailable(struct dump *d)
{
	int r = pm_open(0, NULL, &d->h);

	if (r < 0)
		die("pm_open", r);
	usage_unavailable(d);
	pm_close(d->h);
	d->h = NULL;
}

static bool out_of_fds(int err)
{
	return err == -EMFILE || err == -ENFILE;
}

/*
 * One handle at a time, and per process what the columns need: Rss and
 * Swap by default, which pm_usage answers with one PAGEMAP_SCAN of the
 * address space (no VMA list, no pagemap entries); Pss and Uss (--pss, or
 * sorting by them) need every present page's entry, and its physical
 * page's mapcount, the cost of reading smaps_rollup: one cache for the
 * pass reads the mapcount of a page many processes map (libc's) once.
 */
int all_dump(struct dump *d, const struct pm_kernel_info *ki)
{
	PM_OPTS(pm_usage_opts, uo, .fields = PM_USAGE_RSS | PM_USAGE_SWAP);
	struct pm_usage_cache *cache = NULL;
	struct pm_usage total = { .size = sizeof(total) };
	uint64_t size = 0, shown = 0;
	struct out *o = &d->out;
	struct proc_stats *ps = NULL;
	size_t nps, skipped = 0, no_fd = 0;
	bool tty = isatty(2);

	if (d->sort == ALL_SORT_PSS || d->sort == ALL_SORT_USS)
		d->pss = true;
	if (d->pss) {
		int r = pm_usage_cache_new(NULL, &cache);

		if (r < 0)
			die("pm_usage_cache_new", r);
		uo.cache = (uintptr_t)cache;
		uo.fields |= PM_USAGE_PSS | PM_USAGE_USS;
	}
	nps = list_pids(&ps);
	for (size_t i = 0; i < nps; i++) {
		struct pm_handle *h;
		int r;

		if (tty)
			fprintf(stderr, "\rpm-dump: %zu/%zu processes", i + 1, nps);
		read_stat(&ps[i]);
		ps[i].u.size = sizeof(ps[i].u);
		/* stat shows any caller the size of the address space, 0 for a
		 * kernel thread or an exited process (no memory): no handle for
		 * those (a pm_open costs about a dozen system calls) */
		if (!ps[i].size) {
			ps[i].err = -ESRCH;
			continue;
		}
		/* not ours to read, or gone */
		r = pm_open(ps[i].pid, NULL, &h);
		if (r < 0) {
			ps[i].err = r;
			continue;
		}
		r = pm_usage(h, 0, UINT64_MAX & ~(d->page_size - 1), &uo, &ps[i].u);
		if (r < 0)
			ps[i].err = r;
		pm_close(h);
	}
	pm_usage_cache_free(cache);
	if (tty)
		fprintf(stderr, "\n");
	sort_key = d->sort;
	qsort(ps, nps, sizeof(*ps), by_key);
	header(d, ki);
	all_unavailable(d);
	out_open(o, '[', "processes", true, NULL);
	if (d->pss)
		out_text(o, "%8s %-16s %12s %10s %10s %10s %10s   (KiB)\n", "PID", "Command", "Size",
			 "Rss", "Pss", "Uss", "Swap");
	else
		out_text(o, "%8s %-16s %12s %10s %10s   (KiB)\n", "PID", "Command", "Size", "Rss",
			 "Swap");
	for (size_t i = 0; i < nps; i++) {
		if (out_of_fds(ps[i].err)) {
			no_fd++;
			continue;
		}
		if (ps[i].err) {
			skipped++;
			continue;
		}
		process_row(d, &ps[i]);
		usage_add(&total, &ps[i].u, !shown++);
		size += ps[i].size;
	}
	out_close(o, NULL);
	out_open(o, '{', "totals", false, NULL);
	out_text(o, "%8s %-16s", "", "total");
	out_u64(o, "size_kib", " %12" PRIu64, size / 1024);
	usage_cols(o, &total, d->pss);
	out_close(o, "\n");
	out_u64(o, "skipped", "# %" PRIu64 " processes not readable (permission, exited, or no memory)",
		(uint64_t)skipped);
	out_u64(o, "skipped_no_fd", "; %" PRIu64 " not read for want of file descriptors\n",
		(uint64_t)no_fd);
	out_close(o, NULL);
	free(ps);
	return 0;
}
