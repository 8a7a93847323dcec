/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_usage against the kernel's own numbers: in a stopped child, every
 * field smaps also reports must equal smaps per VMA and smaps_rollup in
 * total, for each kind of memory smaps distinguishes. pm_kpages against
 * direct reads of the kernel's files.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#endif

#define ROOT_FIELDS (PM_USAGE_RSS | PM_USAGE_PSS | PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE | \
		     PM_USAGE_PSS_SHMEM | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_SWAP |     \
		     PM_USAGE_HUGETLB | PM_USAGE_ZERO)

/* ---- smaps ---- */

struct smap {
	uint64_t start, end;
	/* kB as smaps prints them */
	uint64_t rss, pss, pss_anon, pss_file, pss_shmem, uss, shared, swap, anon_thp, hugetlb;
};

static void smap_field(struct smap *s, const char *key, uint64_t kb)
{
	static const struct {
		const char *key;
		size_t off;
	} map[] = {
		{ "Rss", offsetof(struct smap, rss) },
		{ "Pss", offsetof(struct smap, pss) },
		{ "Pss_Anon", offsetof(struct smap, pss_anon) },
		{ "Pss_File", offsetof(struct smap, pss_file) },
		{ "Pss_Shmem", offsetof(struct smap, pss_shmem) },
		{ "Private_Clean", offsetof(struct smap, uss) },
		{ "Private_Dirty", offsetof(struct smap, uss) },
		{ "Shared_Clean", offsetof(struct smap, shared) },
		{ "Shared_Dirty", offsetof(struct smap, shared) },
		{ "Swap", offsetof(struct smap, swap) },
		{ "AnonHugePages", offsetof(struct smap, anon_thp) },
		{ "Private_Hugetlb", offsetof(struct smap, hugetlb) },
		{ "Shared_Hugetlb", offsetof(struct smap, hugetlb) },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(key, map[i].key))
			*(uint64_t *)((char *)s + map[i].off) += kb;
}

/* Parse /proc/PID/<file> (smaps or smaps_rollup) into at most max entries. */
static size_t smaps_read(pid_t pid, const char *file, struct smap *out, size_t max)
{
	char path[64], line[4096];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "re");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b, kb;
		char key[64];

		if (sscanf(line, "%llx-%llx ", &a, &b) == 2 && strchr(line, ' ') > strchr(line, '-')) {
			ck_assert_uint_lt(n, max);
			memset(&out[n], 0, sizeof(out[n]));
			out[n].start = a;
			out[n].end = b;
			n++;
		} else if (n && sscanf(line, "%63[^:]: %llu kB", key, &kb) == 2) {
			smap_field(&out[n - 1], key, kb);
		}
	}
	fclose(f);
	return n;
}

/* Compare a pm_usage with smaps' kB numbers (per-VMA smaps has no Pss_*
 * split: rollup only). false, with the first difference in @why. */
static bool compare(const char *what, const struct pm_usage *u, const struct smap *s,
		    bool rollup, char *why, size_t why_len)
{
#define CMP(bit, ours, theirs)                                                               \
	do {                                                                                 \
		if ((u->valid & (bit)) && (ours) != (theirs)) {                               \
			snprintf(why, why_len,                                                \
				 "%s %" PRIx64 "-%" PRIx64 ": %s %" PRIu64 " kB, smaps %" PRIu64 \
				 " kB",                                                       \
				 what, s->start, s->end, #bit, (uint64_t)(ours),              \
				 (uint64_t)(theirs));                                         \
			return false;                                                         \
		}                                                                             \
	} while (0)
	CMP(PM_USAGE_RSS, u->rss >> 10, s->rss);
	CMP(PM_USAGE_PSS, u->pss >> 22, s->pss);
	if (rollup) {
		CMP(PM_USAGE_PSS_ANON, u->pss_anon >> 22, s->pss_anon);
		CMP(PM_USAGE_PSS_FILE, u->pss_file >> 22, s->pss_file);
		CMP(PM_USAGE_PSS_SHMEM, u->pss_shmem >> 22, s->pss_shmem);
	}
	CMP(PM_USAGE_USS, u->uss >> 10, s->uss);
	CMP(PM_USAGE_SHARED, u->shared >> 10, s->shared);
	CMP(PM_USAGE_SWAP, u->swap >> 10, s->swap);
	CMP(PM_USAGE_ANON_THP, u->anon_thp >> 10, s->anon_thp);
	CMP(PM_USAGE_HUGETLB, u->hugetlb >> 10, s->hugetlb);
#undef CMP
	return true;
}

#define MAXV 4096

/* The fields PAGEMAP_SCAN alone can answer (the library's fast path) */
#define SCAN_FIELDS                                                                      \
	(PM_USAGE_RSS | PM_USAGE_SWAP | PM_USAGE_ANON_THP | PM_USAGE_HUGETLB | PM_USAGE_ZERO | \
	 PM_USAGE_GUARD)

/* pm-dump --all --pss's: Pss without its split needs no page flags */
#define DUMP_FIELDS (PM_USAGE_RSS | PM_USAGE_PSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_SWAP)

/* Uss and Shared without Pss: mapcounts only where the exclusive bit does
 * not decide (a PMD mapping) */
#define SHARING_FIELDS (PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED)

/* Asked for @fields alone, the answer is the one of all fields. */
static void same_fields(const char *what, const struct pm_usage *all, const struct pm_usage *u,
			uint64_t fields)
{
	const uint64_t both = all->valid & u->valid;

	ck_assert_msg((all->valid & fields & ~u->valid) == 0,
		      "%s: valid %#" PRIx64 " alone, %#" PRIx64 " with all", what, u->valid,
		      all->valid);
	ck_assert_uint_eq(u->valid & ~fields, 0);
#define SAME(bit, f)                                                                          \
	ck_assert_msg(!(both & (bit)) || all->f == u->f, "%s: " #f " %" PRIu64 " alone, %" PRIu64 \
		      " with all", what, u->f, all->f)
	SAME(PM_USAGE_RSS, rss);
	SAME(PM_USAGE_SWAP, swap);
	SAME(PM_USAGE_ANON_THP, anon_thp);
	SAME(PM_USAGE_HUGETLB, hugetlb);
	SAME(PM_USAGE_ZERO, zero);
	SAME(PM_USAGE_GUARD, guard);
#undef SAME
}

/* The same for the fields that hang on mapcounts, which other processes
 * move between two calls (libc's): false with the reason, for a round
 * of its own. */
static bool same_sharing(const char *what, const struct pm_usage *all, const struct pm_usage *u,
			 char *why, size_t why_len)
{
	const uint64_t both = all->valid & u->valid;
#define SAME(bit, f)                                                                          \
	if ((both & (bit)) && all->f != u->f) {                                               \
		snprintf(why, why_len, "%s: " #f " %" PRIu64 " alone, %" PRIu64 " with all", what, \
			 u->f, all->f);                                                       \
		return false;                                                                 \
	}
	SAME(PM_USAGE_PSS, pss);
	SAME(PM_USAGE_USS, uss);
	SAME(PM_USAGE_SHARED, shared);
#undef SAME
	/* not more decided than with every field (less: same_fields()) */
	ck_assert_msg(((all->valid ^ u->valid) & u->valid & (PM_USAGE_USS | PM_USAGE_SHARED)) == 0,
		      "%s: valid %#" PRIx64 " alone, %#" PRIx64 " with all", what, u->valid,
		      all->valid);
	return true;
}

/* One round of the oracle: true when every field matched. */
static bool oracle_round(pid_t pid, struct pm_handle *h, const struct pm_vma_list *l, uint64_t need,
			 struct pm_usage *tot, char *why, size_t why_len)
{
	static struct smap sm[MAXV], sm2[MAXV], roll, roll2;
	static struct pm_usage per[MAXV], fper[MAXV];
	PM_OPTS(pm_usage_opts, fast, .fields = SCAN_FIELDS);
	PM_OPTS(pm_usage_opts, dump, .fields = DUMP_FIELDS);
	PM_OPTS(pm_usage_opts, sharing, .fields = SHARING_FIELDS);
	struct pm_usage ftot = { .size = sizeof(ftot) }, dtot = { .size = sizeof(dtot) },
			stot = { .size = sizeof(stot) };
	const size_t nv = pm_vma_count(l);
	uint64_t rss = 0;
	size_t ns, j = 0;

	ck_assert_uint_le(nv, MAXV);
	ns = smaps_read(pid, "smaps", sm, MAXV);
	ck_assert_uint_eq(smaps_read(pid, "smaps_rollup", &roll, 1), 1);
	per[0].size = sizeof(per[0]);
	ck_assert_int_eq(pm_usage_vmas(h, l, NULL, per), (long)nv);
	tot->size = sizeof(*tot);
	ck_assert_int_eq(pm_usage(h, 0, UINT64_MAX & ~(ps - 1), NULL, tot), 0);
	fper[0].size = sizeof(fper[0]);
	ck_assert_int_eq(pm_usage_vmas(h, l, &fast, fper), (long)nv);
	ck_assert_int_eq(pm_usage(h, 0, UINT64_MAX & ~(ps - 1), &fast, &ftot), 0);
	ck_assert_int_eq(pm_usage(h, 0, UINT64_MAX & ~(ps - 1), &dump, &dtot), 0);
	ck_assert_int_eq(pm_usage(h, 0, UINT64_MAX & ~(ps - 1), &sharing, &stot), 0);
	ck_assert_uint_eq(smaps_read(pid, "smaps", sm2, MAXV), ns);
	ck_assert_uint_eq(smaps_read(pid, "smaps_rollup", &roll2, 1), 1);
	if (memcmp(sm, sm2, ns * sizeof(*sm)) || memcmp(&roll, &roll2, sizeof(roll))) {
		snprintf(why, why_len, "smaps moved while it was read");
		return false;
	}
	for (size_t i = 0; i < ns; i++) {
		const struct pm_vma *v = j < nv ? pm_vma_at(l, j) : NULL;

		if (!v || v->start != sm[i].start) {
			/* only the [vsyscall] gate area is not a VMA of the list */
			ck_assert_msg(sm[i].start >= 0x800000000000ULL,
				      "smaps VMA %" PRIx64 " not listed", sm[i].start);
			ck_assert_uint_eq(sm[i].rss, 0);
			continue;
		}
		/* what is valid for the whole process is valid for each VMA */
		ck_assert_msg((tot->valid & ~per[j].valid) == 0, "VMA %" PRIx64 " %s valid %#" PRIx64
			      ", process %#" PRIx64, v->start, v->name, per[j].valid, tot->valid);
		if (!compare("VMA", &per[j], &sm[i], false, why, why_len))
			return false;
		rss += per[j].rss;
		j++;
	}
	ck_assert_uint_eq(j, nv);
	for (size_t i = 0; i < nv; i++)
		same_fields(pm_vma_at(l, i)->name, &per[i], &fper[i], SCAN_FIELDS);
	same_fields("process", tot, &ftot, SCAN_FIELDS);
	same_fields("process, pm-dump's fields", tot, &dtot, DUMP_FIELDS);
	if (!same_sharing("process, pm-dump's fields", tot, &dtot, why, why_len))
		return false;
	same_fields("process, Uss and Shared", tot, &stot, SHARING_FIELDS);
	if (!same_sharing("process, Uss and Shared", tot, &stot, why, why_len))
		return false;
	ck_assert_msg((tot->valid & need) == need, "valid %#" PRIx64 ", need %#" PRIx64, tot->valid,
		      need);
	if (tot->valid & PM_USAGE_RSS)
		ck_assert_uint_eq(rss, tot->rss);
	return compare("rollup", tot, &roll, true, why, why_len);
}

/* The oracle on a stopped process: every field smaps has, per VMA and in
 * total; @need: fields that must be valid; @seen (optional): the totals.
 * Pages shared with processes that keep running (this one since the fork,
 * everyone's libc) change mapcounts, and so Pss, between two reads: a
 * round counts when smaps read the same before and after it, and a real
 * difference shows in every round. */
static void oracle_on(pid_t pid, struct pm_handle *h, uint64_t need, struct pm_usage *seen)
{
	struct pm_vma_list *l;
	struct pm_usage tot;
	char why[256] = "";
	bool ok = false;

	ck_assert_int_eq(pm_vmas(h, &l), 0);
	/* a busy machine starts and ends processes (libc's mapcounts) all the
	 * time: many short rounds, spaced out, until one reads still */
	for (int round = 0; round < 200 && !ok; round++) {
		ok = oracle_round(pid, h, l, need, &tot, why, sizeof(why));
		if (!ok)
			nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
	}
	ck_assert_msg(ok, "%s", why);
	if (seen)
		*seen = tot;
	pm_vma_list_free(l);
}

static void oracle(pid_t pid, uint64_t need, struct pm_usage *seen)
{
	struct pm_handle *h;

	ck_assert_int_eq(pm_open(pid, NULL, &h), 0);
	oracle_on(pid, h, need, seen);
	pm_close(h);
}

/* What a root caller on this kernel must get. */
static uint64_t root_need(void)
{
	uint64_t need = ROOT_FIELDS;

	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) == 1)
		need |= PM_USAGE_ANON_THP;
	if (pm_has_feature(PM_FEAT_GUARD_REGIONS) == 1)
		need |= PM_USAGE_GUARD;
	return need;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512] = "", *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	(void)!read(fd, buf, sizeof(buf) - 1);
	close(fd);
	p = strrchr(buf, ')');
	return p && p[1] ? p[2] : '?';
}

/* Stop a child or grandchild and wait until it is stopped. */
static void stop(pid_t pid)
{
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	for (int i = 0; proc_state(pid) != 'T'; i++) {
		ck_assert_int_lt(i, 10000);
		usleep(1000);
	}
}

static void cont(pid_t pid)
{
	ck_assert_int_eq(kill(pid, SIGCONT), 0);
}

/* Build a layout in a child, stop it, run the oracle, release it. */
static void check_layout(void (*build)(void *, uint64_t *), void *arg, uint64_t need,
			 struct pm_usage *seen)
{
	struct child c;

	child_start(&c, build, arg);
	stop(c.pid);
	oracle(c.pid, need, seen);
	cont(c.pid);
	child_stop(&c);
}

static void touch(char *p, size_t pages, bool write)
{
	for (size_t i = 0; i < pages; i++) {
		if (write)
			p[i * ps] = (char)(i + 1);
		else
			(void)*(volatile char *)(p + i * ps);
	}
}

/* ---- layouts ---- */

static void prctl_pdeathsig(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void build_anon(void *arg, uint64_t *sh)
{
	char *p = xmap(NULL, 256 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *s = xmap(NULL, 64 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);

	madvise(p, 256 * ps, MADV_NOHUGEPAGE);
	touch(p, 200, true);
	touch(s, 50, true);
	sh[0] = (uintptr_t)p;
}

START_TEST(test_anon)
{
	check_layout(build_anon, NULL, root_need(), NULL);
}
END_TEST

/* A grandchild shares the child's anonymous pages: half of them stay
 * shared, the other half the child writes again (copies), and a PMD-mapped
 * THP stays shared whole. Both processes are checked. */
static void build_fork(void *arg, uint64_t *sh)
{
	char *p = xmap(NULL, 256 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *t = thp_possible() ? make_thp() : NULL;
	int go[2];
	pid_t g;
	char ch = 0;

	madvise(p, 256 * ps, MADV_NOHUGEPAGE);
	touch(p, 200, true);
	if (pipe(go))
		_exit(3);
	g = fork();
	if (g == 0) {
		prctl_pdeathsig();
		/* splits the grandchild's PMD, copies one page (the head: 2) */
		if (arg && t)
			t[(arg == (void *)2 ? 0 : 5) * ps] = 9;
		(void)!write(go[1], &ch, 1);
		for (;;)
			pause();
	}
	(void)!read(go[0], &ch, 1);
	touch(p + 100 * ps, 50, true);
	sh[0] = (uint64_t)g;
	sh[1] = (uintptr_t)t;
}

static void check_forked(void *arg, uint64_t need)
{
	struct child c;
	struct pm_usage u;
	pid_t g;

	child_start(&c, build_fork, arg);
	g = (pid_t)c.shared[0];
	stop(c.pid);
	stop(g);
	oracle(c.pid, need, &u);
	ck_assert_uint_lt(u.pss >> 12, u.rss); /* it did share pages */
	oracle(g, need, NULL);
	cont(g);
	cont(c.pid);
	kill(g, SIGKILL);
	child_stop(&c);
}

START_TEST(test_fork)
{
	check_forked(NULL, root_need());
}
END_TEST

/* After the grandchild's write split its PMD, the child's PMD mapping
 * carries the head page's exclusive bit for pages the grandchild still
 * maps: which pages are shared can differ from the bit; the fields must
 * then equal smaps or not be valid. */
START_TEST(test_fork_thp_cow)
{
	check_forked((void *)1, root_need() & ~(PM_USAGE_USS | PM_USAGE_SHARED));
}
END_TEST

/* The same with the head page copied: the child's PMD mapping then reads
 * exclusive on all 512 pages (the head's mapcount is 1) while the
 * grandchild still maps 511 of them; their Pss is half a page each. */
START_TEST(test_fork_thp_cow_head)
{
	check_forked((void *)2, root_need() & ~(PM_USAGE_USS | PM_USAGE_SHARED));
}
END_TEST

/* A directory for test files: a disk where there is one (the VM suite
 * has only its initramfs). */
static const char *tmp_dir(void)
{
	return access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
}

static int temp_file(size_t pages)
{
	char path[64], *buf = calloc(1, ps);
	int fd;

	snprintf(path, sizeof(path), "%s/pm-usage-XXXXXX", tmp_dir());
	fd = mkostemp(path, O_CLOEXEC);

	if (fd < 0 || !buf)
		_exit(4);
	unlink(path);
	for (size_t i = 0; i < pages; i++) {
		buf[0] = (char)i;
		if (write(fd, buf, ps) != (ssize_t)ps)
			_exit(5);
	}
	free(buf);
	return fd;
}

static void build_file(void *arg, uint64_t *sh)
{
	int fd = temp_file(64), mfd = memfd_create("pm-usage", MFD_CLOEXEC);
	char *pf = xmap(NULL, 64 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	char *sf = xmap(NULL, 64 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	char *m;

	touch(pf, 32, false);
	touch(pf + 8 * ps, 8, true); /* private copies in a file mapping */
	touch(sf + 32 * ps, 16, true);
	if (mfd < 0 || ftruncate(mfd, (off_t)(64 * ps)))
		_exit(6);
	m = xmap(NULL, 64 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd);
	touch(m, 40, true);
	/* the same memfd pages mapped twice in one process */
	touch(xmap(NULL, 16 * ps, PROT_READ, MAP_SHARED, mfd), 16, false);
	sh[0] = (uintptr_t)pf;
}

START_TEST(test_file)
{
	check_layout(build_file, NULL, root_need(), NULL);
}
END_TEST

/* THPs in a VMA that starts a page before a PMD boundary and runs on for
 * six PMDs: longer than one window of pm_usage's read (2048 pages), whose
 * windows start at the VMA, so a PMD mapping lies across two of them
 * unless they are cut at PMD boundaries. */
static void make_thp_unaligned(void)
{
	const size_t n = 6 * HUGE_SZ, len = n + 2 * HUGE_SZ;
	char *q = xmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *a = (char *)(((uintptr_t)q + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1)) + HUGE_SZ;

	if (munmap(q, (size_t)(a - ps - q)) || munmap(a + n, (size_t)(q + len - (a + n))) ||
	    madvise(a - ps, n + ps, MADV_HUGEPAGE))
		_exit(9);
	touch(a - ps, 1 + n / ps, true);
}

static void build_thp(void *arg, uint64_t *sh)
{
	char *a = make_thp(), *b = make_thp();

	if (!a || !b)
		_exit(7);
	make_thp_unaligned();
	/* PTE-mapped after the split; the folio stays large */
	if (mprotect(b + 16 * ps, ps, PROT_READ))
		_exit(8);
	sh[0] = (uintptr_t)a;
}

START_TEST(test_thp)
{
	struct pm_usage u;

	check_layout(build_thp, NULL, root_need(), &u);
	if (u.valid & PM_USAGE_ANON_THP)
		ck_assert_uint_ge(u.anon_thp, HUGE_SZ);
}
END_TEST

static void build_one_thp(void *arg, uint64_t *sh)
{
	char *a = make_thp();

	if (!a)
		_exit(7);
	sh[0] = (uintptr_t)a;
}

/* A range whose ends cut a PMD mapping: its pages in the range are still
 * PMD-mapped (AnonHugePages), however the walk cuts its reads. */
START_TEST(test_thp_range)
{
	const uint64_t cut = 16 * ps;
	struct pm_usage u = { .size = sizeof(u) }, whole = { .size = sizeof(u) };
	struct pm_handle *h;
	struct child c;
	uint64_t a;

	child_start(&c, build_one_thp, NULL);
	a = c.shared[0];
	stop(c.pid);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	ck_assert_int_eq(pm_usage(h, a, a + HUGE_SZ, NULL, &whole), 0);
	ck_assert_int_eq(pm_usage(h, a + cut, a + HUGE_SZ - cut, NULL, &u), 0);
	if (whole.valid & PM_USAGE_ANON_THP && whole.anon_thp == HUGE_SZ) {
		ck_assert_uint_eq(u.anon_thp, HUGE_SZ - 2 * cut);
		ck_assert_uint_eq(u.rss, HUGE_SZ - 2 * cut);
	}
	pm_close(h);
	cont(c.pid);
	child_stop(&c);
}
END_TEST

/* Read faults: the 4K zero page, and the huge zero page in a THP region. */
static void build_zero(void *arg, uint64_t *sh)
{
	char *p = xmap(NULL, 128 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *q = xmap(NULL, 2 * HUGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *a = (char *)(((uintptr_t)q + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));

	madvise(p, 128 * ps, MADV_NOHUGEPAGE);
	touch(p, 100, false);
	touch(p + 100 * ps, 10, true);
	madvise(a, HUGE_SZ, MADV_HUGEPAGE);
	(void)*(volatile char *)a;
	sh[0] = (uintptr_t)a;
}

static bool huge_zero_possible(void)
{
	char buf[8] = "";
	int fd = open("/sys/kernel/mm/transparent_hugepage/use_zero_page", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	(void)!read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return thp_possible() && buf[0] == '1';
}

START_TEST(test_zero)
{
	struct pm_usage u;

	check_layout(build_zero, NULL, root_need(), &u);
	ck_assert(u.valid & PM_USAGE_ZERO);
	ck_assert_uint_ge(u.zero, 100 * ps + (huge_zero_possible() ? HUGE_SZ : 0));
}
END_TEST

static void build_hugetlb(void *arg, uint64_t *sh)
{
	char *a = xmap(NULL, HUGE_SZ, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1);
	char *b = xmap(NULL, HUGE_SZ, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1);

	a[0] = 1;
	b[0] = 1;
	sh[0] = (uintptr_t)a;
}

START_TEST(test_hugetlb)
{
	uint64_t old;
	struct pm_usage u;

	if (!huge_reserve(2, &old)) {
		fprintf(stderr, "SKIP hugetlb: could not reserve two 2 MiB huge pages\n");
		return;
	}
	check_layout(build_hugetlb, NULL, root_need(), &u);
	ck_assert(huge_release(old));
	ck_assert_uint_eq(u.hugetlb, 2 * HUGE_SZ);
}
END_TEST

static void build_swap(void *arg, uint64_t *sh)
{
	char *p = xmap(NULL, 256 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	madvise(p, 256 * ps, MADV_NOHUGEPAGE);
	touch(p, 256, true);
	if (madvise(p + 64 * ps, 128 * ps, MADV_PAGEOUT))
		_exit(9);
	sh[0] = (uintptr_t)p;
}

/* A swap area in a file: the header mkswap writes (version 1). */
static bool make_swapfile(const char *path, size_t pages)
{
	uint32_t *hdr = calloc(1, ps);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = hdr && fd >= 0 && posix_fallocate(fd, 0, (off_t)(pages * ps)) == 0;

	if (ok) {
		hdr[1024 / 4] = 1;                 /* version */
		hdr[1024 / 4 + 1] = (uint32_t)pages - 1; /* last_page */
		memcpy((char *)hdr + ps - 10, "SWAPSPACE2", 10);
		ok = pwrite(fd, hdr, ps, 0) == (ssize_t)ps && fsync(fd) == 0;
	}
	if (fd >= 0)
		close(fd);
	free(hdr);
	return ok;
}

START_TEST(test_swap)
{
	char path[64];
	struct pm_usage u;

	snprintf(path, sizeof(path), "%s/pm-usage-swap-%d", tmp_dir(), (int)getpid());
	if (!make_swapfile(path, 4096) || swapon(path, 0)) {
		fprintf(stderr, "SKIP swap: swapon %s: %s\n", path, strerror(errno));
		unlink(path);
		return;
	}
	check_layout(build_swap, NULL, root_need(), &u);
	ck_assert_int_eq(swapoff(path), 0);
	unlink(path);
	ck_assert_uint_ge(u.swap, 64 * ps); /* most of the 128 pages went out */
}
END_TEST

/* Unprivileged: the fields that need physical pages are not valid, the
 * others still equal smaps; pm_kpages says why it cannot. */
START_TEST(test_unprivileged)
{
	struct pm_kpage k;
	uint64_t pfn = 1, need = PM_USAGE_SWAP;
	struct pm_usage u;
	long r;

	ck_assert_int_eq(setgid(65534), 0);
	ck_assert_int_eq(setuid(65534), 0);
	prctl(PR_SET_DUMPABLE, 1); /* the children must be ours to read */
	r = pm_kpages(&pfn, 1, PM_KPAGE_FLAGS, &k);
	ck_assert_msg(r == -EACCES || r == -EPERM, "pm_kpages: %ld", r);
	ck_assert_int_eq(errno, (int)-r);
	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) == 1)
		need |= PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_ZERO |
			PM_USAGE_ANON_THP;
	check_layout(build_anon, NULL, need, &u);
	ck_assert_uint_eq(u.valid & (PM_USAGE_PSS | PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE |
				     PM_USAGE_PSS_SHMEM),
			  0);
	ck_assert_uint_eq(u.pss, 0);
	check_layout(build_file, NULL, need, NULL);
	/* a PMD mapping's exclusive bit is its head page's: not enough */
	check_layout(build_zero, NULL, need & ~(PM_USAGE_USS | PM_USAGE_SHARED), NULL);
}
END_TEST

/* The anonymous layout in a child of uid 65534, readable by that uid. */
static void build_anon_nobody(void *arg, uint64_t *sh)
{
	build_anon(arg, sh);
	if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		_exit(3);
	prctl(PR_SET_DUMPABLE, 1);
}

/* Become uid/gid 65534 (@nobody) or root again: the saved ids stay 0. */
static void become(bool nobody)
{
	const uid_t id = nobody ? 65534 : 0;

	if (!nobody)
		ck_assert_int_eq(setresuid(0, 0, 0), 0);
	ck_assert_int_eq(setresgid(id, id, 0), 0);
	if (nobody)
		ck_assert_int_eq(setresuid(id, id, 0), 0);
}

/* The kernel decides whether a pagemap shows PFNs by the credentials it
 * was opened with (pagemap_open: show_pfn), not the reader's: a handle
 * opened unprivileged and used as root shows none, one opened as root
 * and used unprivileged shows them but the physical pages' files do not
 * open. Either way every valid field equals smaps, and Pss is valid only
 * where PFNs and the files both were. */
START_TEST(test_handle_creds)
{
	const uint64_t pss = PM_USAGE_PSS | PM_USAGE_PSS_ANON | PM_USAGE_PSS_FILE |
			     PM_USAGE_PSS_SHMEM;
	uint64_t need = PM_USAGE_SWAP;
	struct pm_handle *h;
	struct pm_usage u;
	struct child c;

	if (pm_has_feature(PM_FEAT_PAGEMAP_SCAN) == 1)
		need |= PM_USAGE_RSS | PM_USAGE_USS | PM_USAGE_SHARED | PM_USAGE_ZERO |
			PM_USAGE_ANON_THP;
	child_start(&c, build_anon_nobody, NULL);
	stop(c.pid);

	become(true);
	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	become(false);
	oracle_on(c.pid, h, need, &u);
	ck_assert_msg((u.valid & pss) == 0, "no PFNs in the handle, valid %#" PRIx64, u.valid);
	pm_close(h);

	ck_assert_int_eq(pm_open(c.pid, NULL, &h), 0);
	become(true);
	oracle_on(c.pid, h, need, &u);
	ck_assert_msg((u.valid & pss) == 0, "no kpagecount for uid 65534, valid %#" PRIx64,
		      u.valid);
	become(false);
	pm_close(h);

	cont(c.pid);
	child_stop(&c);
}
END_TEST

/* A sparse reservation, as a runtime's heap or a sanitizer's shadow: 8
 * GiB with pages written far apart and a THP between them. The walk
 * skips what was never populated and must miss none of these. */
static void build_sparse(void *arg, uint64_t *sh)
{
	const uint64_t len = 8ULL << 30, huge = 2ULL << 20;
	char *p = xmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
	char *t = (char *)(((uintptr_t)p + (5ULL << 30)) & ~(uintptr_t)(huge - 1));

	(void)arg;
	p[0] = 1;
	p[(3ULL << 30) + 5 * ps] = 1;
	p[len - ps] = 1;
	if (thp_possible()) {
		madvise(t, huge, MADV_HUGEPAGE);
		memset(t, 1, huge);
	}
	sh[0] = (uintptr_t)p;
}

START_TEST(test_sparse)
{
	check_layout(build_sparse, NULL, root_need(), NULL);
}
END_TEST

START_TEST(test_usage_args)
{
	struct pm_handle *h;
	struct pm_usage u = { .size = sizeof(u) };
	PM_OPTS(pm_usage_opts, o, .fields = PM_USAGE_SWAP);
	PM_OPTS(pm_usage_opts, bad, .fields = 1ULL << 40);

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_usage(NULL, 0, ps, NULL, &u), -EINVAL);
	ck_assert_int_eq(pm_usage(h, 0, ps, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pm_usage(h, 1, ps, NULL, &u), -EINVAL);
	ck_assert_int_eq(pm_usage(h, ps, ps, NULL, &u), -EINVAL);
	ck_assert_int_eq(pm_usage(h, 0, ps, &bad, &u), -EINVAL);
	u.size = 12;
	ck_assert_int_eq(pm_usage(h, 0, ps, NULL, &u), -EINVAL);
	/* an older, shorter struct gets its prefix */
	u.size = 4 * sizeof(uint64_t);
	u.pss_anon = 77;
	ck_assert_int_eq(pm_usage(h, 0, UINT64_MAX & ~(ps - 1), NULL, &u), 0);
	ck_assert_uint_eq(u.pss_anon, 77);
	ck_assert_uint_gt(u.rss, 0);
	u.size = sizeof(u);
	ck_assert_int_eq(pm_usage(h, 0, UINT64_MAX & ~(ps - 1), &o, &u), 0);
	ck_assert_uint_eq(u.valid & ~PM_USAGE_SWAP, 0);
	ck_assert_uint_eq(u.rss, 0);
	ck_assert_int_eq(pm_usage_vmas(h, NULL, NULL, &u), -EINVAL);
	pm_close(h);
}
END_TEST

/* ---- pm_kpages ---- */

static uint64_t direct(int fd, uint64_t pfn)
{
	uint64_t v = 0;

	if (pread(fd, &v, 8, (off_t)(pfn * 8)) != 8)
		v = 0;
	return v;
}

START_TEST(test_kpages)
{
	static const char *const files[3] = { "/proc/kpageflags", "/proc/kpagecount",
					      "/proc/kpagecgroup" };
	enum { OWN = 64 + 512, RANDOM = 2000, N = OWN + RANDOM + 2 };
	static uint64_t pfns[N], before[N][3];
	static struct pm_kpage k[N];
	uint64_t e[512], seed = 11, maxpfn = (uint64_t)sysconf(_SC_PHYS_PAGES);
	char *p = xmap(NULL, 64 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *t = thp_possible() ? make_thp() : NULL;
	int fd[3];
	size_t n = 0;

	if (pm_has_feature(PM_FEAT_PFN_VISIBLE) != 1 || access(files[0], R_OK)) {
		fprintf(stderr, "SKIP kpages: PFNs or /proc/kpageflags not readable\n");
		return;
	}
	for (int f = 0; f < 3; f++)
		fd[f] = open(files[f], O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd[0], 0);
	ck_assert_int_ge(fd[1], 0);
	touch(p, 64, true);
	raw_read(getpid(), (uintptr_t)p, (uintptr_t)p + 64 * ps, e);
	for (int i = 0; i < 64; i++)
		pfns[n++] = e[i] & PM_ENTRY_PFN_MASK;
	if (t) {
		/* a run of 512 consecutive PFNs */
		raw_read(getpid(), (uintptr_t)t, (uintptr_t)t + HUGE_SZ, e);
		for (int i = 0; i < 512; i++)
			pfns[n++] = e[i] & PM_ENTRY_PFN_MASK;
	}
	for (int i = 0; i < RANDOM; i++, n++) /* scattered, and short runs */
		pfns[n] = i % 4 ? pfns[n - 1] + 1 : 1 + rnd(&seed) % maxpfn;
	pfns[n++] = 0;
	pfns[n++] = 1ULL << 40; /* past the end of memory */
	for (size_t i = 0; i < n; i++)
		for (int f = 0; f < 3; f++)
			before[i][f] = fd[f] >= 0 ? direct(fd[f], pfns[i]) : 0;
	ck_assert_int_eq(pm_kpages(pfns, n, PM_KPAGE_FLAGS | PM_KPAGE_COUNT |
				   (fd[2] >= 0 ? PM_KPAGE_CGROUP : 0), k),
			 (long)n);
	for (size_t i = 0; i < n - 2; i++) {
		uint64_t got[3] = { k[i].flags, k[i].count, k[i].cgroup };

		for (int f = 0; f < 3; f++) {
			/* a page not ours may change between the reads: the
			 * answer must be what the file said before or after */
			uint64_t after = fd[f] >= 0 ? direct(fd[f], pfns[i]) : 0;

			ck_assert_msg(got[f] == before[i][f] || got[f] == after,
				      "pfn %#" PRIx64 " file %s: %#" PRIx64 ", direct %#" PRIx64
				      " then %#" PRIx64, pfns[i], files[f], got[f], before[i][f], after);
		}
	}
	/* our own pages: mapped once, anonymous */
	for (size_t i = 0; i < 64; i++) {
		ck_assert_uint_eq(k[i].count, 1);
		ck_assert(k[i].flags & (1ULL << PM_KPF_ANON));
	}
	ck_assert_uint_eq(k[n - 2].flags | k[n - 2].count | k[n - 2].cgroup, 0);
	ck_assert_uint_eq(k[n - 1].flags, 1ULL << PM_KPF_NOPAGE);
	/* only the fields asked for */
	ck_assert_int_eq(pm_kpages(pfns, 64, PM_KPAGE_COUNT, k), 64);
	ck_assert_uint_eq(k[0].flags, 0);
	ck_assert_uint_eq(k[0].count, 1);
	for (int f = 0; f < 3; f++)
		if (fd[f] >= 0)
			close(fd[f]);
}
END_TEST

START_TEST(test_kpages_args)
{
	struct pm_kpage k;
	uint64_t pfn = 1;

	ck_assert_int_eq(pm_kpages(NULL, 0, PM_KPAGE_FLAGS, NULL), 0);
	ck_assert_int_eq(pm_kpages(NULL, 1, PM_KPAGE_FLAGS, &k), -EINVAL);
	ck_assert_int_eq(pm_kpages(&pfn, 1, PM_KPAGE_FLAGS, NULL), -EINVAL);
	ck_assert_int_eq(pm_kpages(&pfn, 1, 0, &k), -EINVAL);
	ck_assert_int_eq(pm_kpages(&pfn, 1, 1ULL << 3, &k), -EINVAL);
	pfn = 1ULL << 55;
	ck_assert_int_eq(pm_kpages(&pfn, 1, PM_KPAGE_FLAGS, &k), -EINVAL);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage");
	TCase *tc = tcase_create("oracle");
	const bool root = geteuid() == 0;

	test_init();
	if (getenv("LIBPAGEMAP_TEST_SANITIZED")) {
		/* every layout's oracle is a whole-process pm_usage, and the
		 * sanitizer's shadow reservations are terabytes of VMAs */
		printf("SKIP: under a sanitizer each whole-process pm_usage reads billions of "
		       "entries (the shadow mappings)\n");
		return 77;
	}
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_anon);
	tcase_add_test(tc, test_fork);
	add_test_if(tc, test_fork_thp_cow, thp_possible(), "THP is disabled");
	add_test_if(tc, test_fork_thp_cow_head, thp_possible(), "THP is disabled");
	tcase_add_test(tc, test_file);
	add_test_if(tc, test_thp, thp_possible(), "THP is disabled");
	add_test_if(tc, test_thp_range, thp_possible(), "THP is disabled");
	add_test_if(tc, test_zero, zero_page_possible(),
		    "read faults get pages of their own here (no zero page)");
	add_test_if(tc, test_hugetlb, root, "reserving huge pages needs root");
	add_test_if(tc, test_swap, root, "swapon needs root");
	add_test_if(tc, test_unprivileged, root, "dropping to uid 65534 needs root");
	add_test_if(tc, test_handle_creds, root, "changing credentials needs root");
	tcase_add_test(tc, test_sparse);
	tcase_add_test(tc, test_usage_args);
	add_test_if(tc, test_kpages, root, "/proc/kpage* need root");
	tcase_add_test(tc, test_kpages_args);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
