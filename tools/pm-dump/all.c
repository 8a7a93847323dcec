/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --all: every process this caller may read, through one batch. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pm-dump.h"

#define ALL_BUDGET (4UL << 20) /* entries per batch run: 32 MiB of buffer */
#define ALL_QUEUE (ALL_BUDGET / 16)
#define ALL_REGIONS 4096

struct proc_stats {
	int pid;
	char comm[32];
	struct stats st;
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

struct all_read {
	struct proc_stats *p;
	uint64_t *buf;
	long res;
};

/* the reads queued and the buffer they fill */
struct queue {
	struct pm_batch *b;
	uint64_t *buf;
	struct all_read *q;
	size_t nq, used;
};

static void run_round(struct queue *q)
{
	int r = pm_batch_run(q->b);

	if (r < 0)
		die("pm_batch_run", r);
	for (size_t i = 0; i < q->nq; i++) {
		struct all_read *a = &q->q[i];

		if (a->res >= 0)
			stats_tally(&a->p->st, a->buf, (size_t)a->res);
		else if (!a->p->err)
			a->p->err = (int)a->res;
	}
	q->nq = 0;
	q->used = 0;
}

/* Queue the reads of one populated region, running the batch whenever the
 * buffer or the queue is full. */
static void queue_region(struct dump *d, struct queue *q, struct pm_handle *h,
			 struct proc_stats *p, const struct pm_region *reg)
{
	for (uint64_t a = reg->start; a < reg->end;) {
		uint64_t n = (reg->end - a) / d->page_size;
		struct all_read *rd = &q->q[q->nq];
		int r;

		if (n > ALL_BUDGET - q->used)
			n = ALL_BUDGET - q->used;
		if (n > ALL_QUEUE)
			n = ALL_QUEUE;
		*rd = (struct all_read){ p, q->buf + q->used, 0 };
		r = pm_batch_add_read(q->b, h, a, a + n * d->page_size, rd->buf, NULL, &rd->res);
		if (r < 0)
			die("pm_batch_add_read", r);
		q->nq++;
		q->used += n;
		a += n * d->page_size;
		if (q->used == ALL_BUDGET || q->nq == ALL_QUEUE)
			run_round(q);
	}
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

static void read_comm(struct proc_stats *p)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", p->pid);
	if ((f = fopen(path, "re"))) {
		if (fgets(p->comm, sizeof(p->comm), f))
			p->comm[strcspn(p->comm, "\n")] = '\0';
		fclose(f);
	}
}

/* Queues the populated parts of every VMA of one process. */
static void queue_process(struct dump *d, struct queue *q, struct pm_handle *h,
			  struct proc_stats *p)
{
	PM_OPTS(pm_scan_opts, populated, .category_anyof_mask = PM_CAT_PRESENT | PM_CAT_SWAPPED);
	static struct pm_region regs[ALL_REGIONS];
	struct pm_vma_list *l;

	/* not ours to read, gone, or a kernel thread (no memory) */
	int r = pm_vmas(h, &l);

	if (r < 0) {
		p->err = r;
		return;
	}
	for (size_t v = 0; v < pm_vma_count(l); v++) {
		const struct pm_vma *m = pm_vma_at(l, v);

		p->st.size += m->end - m->start;
		/* read only the populated parts: pm_scan finds them without
		 * reading the entries of huge sparse reservations */
		for (uint64_t cur = m->start; cur < m->end;) {
			long nr = pm_scan(h, cur, m->end, regs, ALL_REGIONS, &populated, &cur);

			if (nr < 0) {
				p->err = (int)nr;
				break;
			}
			for (long k = 0; k < nr; k++)
				queue_region(d, q, h, p, &regs[k]);
		}
	}
	pm_vma_list_free(l);
}

static void usage_cols(struct out *o, const struct pm_usage *u)
{
	out_opt_u64(o, "rss_kib", 10, u->valid & PM_USAGE_RSS, u->rss >> 10);
	out_opt_u64(o, "pss_kib", 10, u->valid & PM_USAGE_PSS, u->pss >> 22);
	out_opt_u64(o, "uss_kib", 10, u->valid & PM_USAGE_USS, u->uss >> 10);
	out_opt_u64(o, "swap_kib", 10, u->valid & PM_USAGE_SWAP, u->swap >> 10);
}

static void process_row(struct dump *d, const struct proc_stats *p)
{
	struct out *o = &d->out;
	const uint64_t k = d->page_size / 1024;

	out_row(o);
	out_u64(o, "pid", "%8" PRIu64, (uint64_t)p->pid);
	out_str(o, "comm", " %-16s", p->comm);
	out_u64(o, "size_kib", " %12" PRIu64, p->st.size / 1024);
	usage_cols(o, &p->u);
	/* the raw pagemap counts, JSON only */
	out_json_u64(o, "present_kib", p->st.present * k);
	out_json_u64(o, "swapped_kib", p->st.swapped * k);
	out_json_u64(o, "exclusive_kib", p->st.exclusive * k);
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

/* How many handles to hold at once (7 fds each): the soft fd limit is
 * raised to the hard one first, and room is left for the batch's ring and
 * the process's own fds. */
static size_t handles_at_once(void)
{
	struct rlimit rl;
	rlim_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	n = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 8192 ? 8192 : rl.rlim_cur;
	n = n > 64 ? (n - 32) / 8 : 1;
	return n < 256 ? (size_t)n : 256;
}

/* Read what is queued, then close the handles [from, to). */
static void flush_handles(struct queue *q, struct pm_handle **hs, size_t from, size_t to)
{
	run_round(q);
	for (size_t i = from; i < to; i++) {
		pm_close(hs[i]);
		hs[i] = NULL;
	}
}

static bool out_of_fds(int err)
{
	return err == -EMFILE || err == -ENFILE;
}

int all_dump(struct dump *d, const struct pm_kernel_info *ki, uint64_t backend)
{
	PM_OPTS(pm_batch_opts, bo, .backend = backend);
	PM_OPTS(pm_usage_opts, uo,
		.fields = PM_USAGE_RSS | PM_USAGE_PSS | PM_USAGE_USS | PM_USAGE_SWAP);
	struct pm_usage total = { .size = sizeof(total) };
	uint64_t size = 0, shown = 0;
	struct queue q = { .buf = malloc(ALL_BUDGET * sizeof(uint64_t)),
			   .q = malloc(ALL_QUEUE * sizeof(struct all_read)) };
	struct out *o = &d->out;
	struct proc_stats *ps = NULL;
	struct pm_handle **hs;
	size_t nps, skipped = 0, no_fd = 0, cap = handles_at_once(), open_from = 0, nopen = 0;
	bool tty = isatty(2);
	int r;

	if (!q.buf || !q.q)
		die("malloc", ENOMEM);
	r = pm_batch_new(&bo, &q.b);
	if (r < 0)
		die("pm_batch_new", r);
	nps = list_pids(&ps);
	hs = calloc(nps ? nps : 1, sizeof(*hs));
	if (!hs)
		die("calloc", ENOMEM);
	for (size_t i = 0; i < nps; i++) {
		if (tty)
			fprintf(stderr, "\rpm-dump: %zu/%zu processes", i + 1, nps);
		read_comm(&ps[i]);
		r = pm_open(ps[i].pid, NULL, &hs[i]);
		if (r < 0) {
			ps[i].err = r;
		} else {
			queue_process(d, &q, hs[i], &ps[i]);
			ps[i].u.size = sizeof(ps[i].u);
			if (!ps[i].err) {
				r = pm_usage(hs[i], 0, UINT64_MAX & ~(d->page_size - 1), &uo,
					     &ps[i].u);
				if (r < 0)
					ps[i].err = r;
			}
			nopen++;
		}
		if (nopen == cap) {
			flush_handles(&q, hs, open_from, i + 1);
			open_from = i + 1;
			nopen = 0;
		}
	}
	flush_handles(&q, hs, open_from, nps);
	if (tty)
		fprintf(stderr, "\n");
	sort_key = d->sort;
	qsort(ps, nps, sizeof(*ps), by_key);
	header(d, ki);
	all_unavailable(d);
	out_open(o, '[', "processes", true, NULL);
	out_text(o, "%8s %-16s %12s %10s %10s %10s %10s   (KiB)\n", "PID", "Command", "Size", "Rss",
		 "Pss", "Uss", "Swap");
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
		size += ps[i].st.size;
	}
	out_close(o, NULL);
	out_open(o, '{', "totals", false, NULL);
	out_text(o, "%8s %-16s", "", "total");
	out_u64(o, "size_kib", " %12" PRIu64, size / 1024);
	usage_cols(o, &total);
	out_close(o, "\n");
	out_u64(o, "skipped", "# %" PRIu64 " processes not readable (permission, exited, or no memory)",
		(uint64_t)skipped);
	out_u64(o, "skipped_no_fd", "; %" PRIu64 " not read for want of file descriptors",
		(uint64_t)no_fd);
	out_str(o, "backend", "; backend %s\n",
		pm_batch_backend(q.b) == PM_BACKEND_URING ? "uring" : "sync");
	out_close(o, NULL);
	pm_batch_free(q.b);
	free(q.buf);
	free(q.q);
	free(ps);
	free(hs);
	return 0;
}
