/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VMA lists: the maps text parser, PROCMAP_QUERY and the kernel agree on
 * real processes. */
#include "common.h"
#include "compat/uapi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MANY 10500

/* Files whose names the maps text cannot tell apart: a newline, which it
 * escapes as "\012", and those four characters themselves. */
static const char *const odd_prefix[2][2] = {
	{ "/tmp/pm-vma-odd\n", "/tmp/pm-vma-odd\\012" }, /* the name, the text's */
	{ "/tmp/pm-vma-odd\\012", "/tmp/pm-vma-odd\\012" },
};

/* File @i of process @pid; @as_text: as the maps text writes it. */
static void odd_path(char *buf, size_t n, int i, pid_t pid, bool as_text)
{
	snprintf(buf, n, "%s%d", odd_prefix[i][as_text], (int)pid);
}

static void map_odd_names(void)
{
	for (int i = 0; i < 2; i++) {
		char path[64];
		int fd;

		odd_path(path, sizeof(path), i, getpid(), false);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)ps))
			_exit(2);
		xmap(NULL, ps, PROT_READ, MAP_SHARED, fd);
		unlink(path);
		close(fd);
	}
}

static void build_names(void *arg, uint64_t *sh)
{
	char path[] = "/tmp/pm vma test with spaces XXXXXX";
	char dpath[] = "/tmp/pm-deleted-XXXXXX";
	int fd, dfd;
	char *base;

	/* [heap] */
	free(malloc(64));
	(void)!sbrk(4 * (intptr_t)ps);
	fd = mkstemp(path);
	dfd = mkstemp(dpath);
	if (fd < 0 || dfd < 0 || ftruncate(fd, (off_t)(4 * ps)) || ftruncate(dfd, (off_t)(4 * ps)))
		_exit(2);
	xmap(NULL, 4 * ps, PROT_READ, MAP_SHARED, fd);
	/* file offset in bytes: map the file from its second page */
	mmap(NULL, 2 * ps, PROT_READ, MAP_PRIVATE, dfd, (off_t)ps);
	unlink(dpath);
	unlink(path);
	close(fd);
	close(dfd);
	xmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	map_odd_names();
	/* many VMAs: alternating protections cannot merge */
	base = xmap(NULL, MANY * 2 * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	for (int i = 0; i < MANY; i += 2)
		mprotect(base + (uint64_t)i * 2 * ps, 2 * ps, PROT_READ | PROT_WRITE | PROT_EXEC);
}

static struct pm_vma_list *list(pid_t pid, uint64_t flags)
{
	PM_OPTS(pm_open_opts, oo, .flags = flags);
	struct pm_handle *h;
	struct pm_vma_list *l;

	ck_assert_int_eq(pm_open(pid, &oo, &h), 0);
	ck_assert_int_eq(pm_vmas(h, &l), 0);
	pm_close(h);
	return l;
}

static bool has_name(const struct pm_vma_list *l, const char *needle, bool suffix)
{
	size_t nl = strlen(needle);

	for (size_t i = 0; i < pm_vma_count(l); i++) {
		const char *n = pm_vma_at(l, i)->name;
		size_t len = strlen(n);

		if (suffix ? (len >= nl && !strcmp(n + len - nl, needle)) : strstr(n, needle) != NULL)
			return true;
	}
	return false;
}

static void check_sorted(const struct pm_vma_list *l)
{
	for (size_t i = 0; i < pm_vma_count(l); i++) {
		const struct pm_vma *v = pm_vma_at(l, i);

		ck_assert_uint_lt(v->start, v->end);
		ck_assert_uint_eq(v->start % ps, 0);
		if (i)
			ck_assert_uint_le(pm_vma_at(l, i - 1)->end, v->start);
	}
	ck_assert_ptr_null(pm_vma_at(l, pm_vma_count(l)));
}

static void build_small(void *arg, uint64_t *sh)
{
	xmap(NULL, 4 * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	map_odd_names();
}

/* The kernel's own list, one PROCMAP_QUERY per VMA: the oracle. */
static void query_walk(pid_t pid, struct pm_vma *v, char (*names)[512], size_t cap, size_t *n)
{
	char path[64];
	uint64_t addr = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (*n = 0;; (*n)++) {
		struct pm__procmap_query q = { .size = sizeof(q),
					       .query_flags = PM__PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
					       .query_addr = addr,
					       .vma_name_addr = (uintptr_t)names[*n],
					       .vma_name_size = sizeof(names[0]) };

		ck_assert_uint_lt(*n, cap);
		if (ioctl(fd, PM__PROCMAP_QUERY, &q)) {
			ck_assert_int_eq(errno, ENOENT);
			break;
		}
		if (q.vma_start >> 63)
			break; /* [vsyscall]: not a VMA of the mm */
		if (!q.vma_name_size)
			names[*n][0] = '\0';
		v[*n] = (struct pm_vma){ .start = q.vma_start, .end = q.vma_end,
					 .pgoff = q.vma_offset, .flags = q.vma_flags & 0xf,
					 .dev = makedev(q.dev_major, q.dev_minor),
					 .inode = q.inode, .name = names[*n] };
		addr = q.vma_end;
	}
	close(fd);
}

static void assert_vma_eq(size_t i, const struct pm_vma *a, const struct pm_vma *b)
{
	ck_assert_msg(a->start == b->start && a->end == b->end && a->flags == b->flags &&
			      a->pgoff == b->pgoff && a->dev == b->dev && a->inode == b->inode &&
			      !strcmp(a->name, b->name),
		      "VMA %zu differs: %#lx-%#lx f%lx o%lx d%lx i%lu '%s' / "
		      "%#lx-%#lx f%lx o%lx d%lx i%lu '%s'",
		      i, (unsigned long)a->start, (unsigned long)a->end, (unsigned long)a->flags,
		      (unsigned long)a->pgoff, (unsigned long)a->dev, (unsigned long)a->inode,
		      a->name, (unsigned long)b->start, (unsigned long)b->end,
		      (unsigned long)b->flags, (unsigned long)b->pgoff, (unsigned long)b->dev,
		      (unsigned long)b->inode, b->name);
}

/* pm_vmas (the maps text, and PROCMAP_QUERY for the names the text leaves
 * ambiguous) against the kernel's list through PROCMAP_QUERY: every field,
 * names exactly; the text-only list agrees but for the escaped names. */
START_TEST(query_and_text_agree)
{
	enum { CAP = 2 * MANY }; /* and the sanitizers' mappings */
	struct pm_vma *k = malloc(CAP * sizeof(*k));
	char (*names)[512] = malloc(CAP * sizeof(*names));
	struct pm_vma_list *q, *t;
	struct child c;
	size_t n;

	ck_assert(k && names);
	child_start(&c, build_names, NULL);
	q = list(c.pid, 0);
	t = list(c.pid, PM_OPEN_MAPS_TEXT);
	query_walk(c.pid, k, names, CAP, &n);
	check_sorted(q);
	check_sorted(t);
	ck_assert_uint_ge(pm_vma_count(t), MANY);
	ck_assert_uint_eq(pm_vma_count(q), n);
	ck_assert_uint_eq(pm_vma_count(t), n);
	for (size_t i = 0; i < n; i++) {
		struct pm_vma tv = *pm_vma_at(t, i);

		assert_vma_eq(i, &k[i], pm_vma_at(q, i));
		if (strchr(k[i].name, '\n') || strchr(k[i].name, '\\'))
			tv.name = k[i].name; /* names_as_the_kernel_has_them */
		assert_vma_eq(i, &k[i], &tv);
	}
	for (int j = 0; j < 2; j++) {
		struct pm_vma_list *l = j ? t : q;

		ck_assert(has_name(l, "[heap]", false));
		ck_assert(has_name(l, "[stack]", false));
		ck_assert(has_name(l, "[vdso]", false));
		ck_assert(has_name(l, "/tmp/pm vma test with spaces ", false));
		ck_assert(has_name(l, " (deleted)", true));
		ck_assert(!has_name(l, "[vsyscall]", false));
	}
	pm_vma_list_free(q);
	pm_vma_list_free(t);
	child_stop(&c);
	free(k);
	free(names);
}
END_TEST

/* A newline in a path and a backslash: the default list has the kernel's
 * names exactly where the kernel has PROCMAP_QUERY; the text alone (a
 * PM_OPEN_MAPS_TEXT handle, an older kernel) shows both as "\012". */
START_TEST(names_as_the_kernel_has_them)
{
	const bool query = pm_has_feature(PM_FEAT_PROCMAP_QUERY) == 1;
	struct pm_vma_list *q, *t;
	char want[2][64], text[2][64];
	struct child c;

	child_start(&c, build_small, NULL);
	q = list(c.pid, 0);
	t = list(c.pid, PM_OPEN_MAPS_TEXT);
	for (int i = 0; i < 2; i++) {
		odd_path(want[i], sizeof(want[i]) - 10, i, c.pid, false);
		odd_path(text[i], sizeof(text[i]) - 10, i, c.pid, true);
		strcat(want[i], " (deleted)");
		strcat(text[i], " (deleted)");
		ck_assert_msg(has_name(t, text[i], false), "text: no '%s'", text[i]);
		ck_assert_msg(has_name(q, query ? want[i] : text[i], false), "default: no '%s'",
			      query ? want[i] : text[i]);
	}
	ck_assert(!has_name(t, "\n", false));
	pm_vma_list_free(q);
	pm_vma_list_free(t);
	child_stop(&c);
}
END_TEST

/* The text source against an independent reading of /proc/PID/maps, on a
 * quiescent child (the caller's own maps move under sanitizers). */
START_TEST(text_matches_maps_file)
{
	struct child c;
	struct pm_vma_list *t;
	char line[4096], path[64];
	size_t i = 0;
	FILE *f;

	child_start(&c, build_small, NULL);
	t = list(c.pid, PM_OPEN_MAPS_TEXT);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)c.pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e, ino;
		char perms[5];
		char *name = line;

		ck_assert_int_eq(sscanf(line, "%lx-%lx %4s %*x %*x:%*x %lu", &s, &e, perms, &ino), 4);
		if (s >= (1UL << 63))
			continue; /* [vsyscall] is not a VMA of the mm */
		ck_assert_uint_lt(i, pm_vma_count(t));
		ck_assert_uint_eq(pm_vma_at(t, i)->start, s);
		ck_assert_uint_eq(pm_vma_at(t, i)->end, e);
		ck_assert_uint_eq(pm_vma_at(t, i)->inode, ino);
		ck_assert_int_eq(!!(pm_vma_at(t, i)->flags & PM_VMA_SHARED), perms[3] == 's');
		for (int k = 0; k < 5; k++)
			name = strchr(name, ' ') + 1;
		name += strspn(name, " ");
		name[strcspn(name, "\n")] = '\0';
		ck_assert_str_eq(pm_vma_at(t, i)->name, name);
		i++;
	}
	ck_assert_uint_eq(i, pm_vma_count(t));
	fclose(f);
	pm_vma_list_free(t);
	child_stop(&c);
}
END_TEST

#define LONG_DEPTH 21 /* directories of 200 bytes: a path over PATH_MAX */

/* A file mapped from a path longer than PATH_MAX whose last component
 * holds a newline: /tmp/pm-vma-long-PID/ddd.../x\ny, made one openat at
 * a time (open() refuses such a path). */
static void build_long(void *arg, uint64_t *sh)
{
	char top[64], comp[201];
	int cur, next, f;

	(void)arg;
	(void)sh;
	memset(comp, 'd', 200);
	comp[200] = '\0';
	snprintf(top, sizeof(top), "/tmp/pm-vma-long-%d", (int)getpid());
	if (mkdir(top, 0700) || (cur = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		_exit(2);
	for (int i = 0; i < LONG_DEPTH; i++) {
		if (mkdirat(cur, comp, 0700) ||
		    (next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			_exit(2);
		close(cur);
		cur = next;
	}
	f = openat(cur, "x\ny", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (f < 0 || ftruncate(f, (off_t)ps))
		_exit(2);
	xmap(NULL, ps, PROT_READ, MAP_SHARED, f);
	close(f);
	close(cur);
}

/* Remove build_long()'s tree of process @pid, one openat at a time as it
 * was made (rm refuses such paths). */
static bool remove_long(pid_t pid)
{
	char top[64], comp[201];
	int fd[LONG_DEPTH + 1];
	bool ok = true;

	memset(comp, 'd', 200);
	comp[200] = '\0';
	snprintf(top, sizeof(top), "/tmp/pm-vma-long-%d", (int)pid);
	fd[0] = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd[0] < 0)
		return false;
	for (int i = 0; i < LONG_DEPTH; i++)
		if ((fd[i + 1] = openat(fd[i], comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return false;
	ok &= unlinkat(fd[LONG_DEPTH], "x\ny", 0) == 0;
	for (int i = LONG_DEPTH; i > 0; i--) {
		close(fd[i]);
		ok &= unlinkat(fd[i - 1], comp, AT_REMOVEDIR) == 0;
	}
	close(fd[0]);
	return ok && rmdir(top) == 0;
}

/* A name the kernel's query cannot print (PATH_MAX or more): pm_vmas
 * still lists the VMA, with the maps text's name (the newline as \012),
 * on every kernel and with either source. */
START_TEST(long_name_keeps_the_text_form)
{
	struct pm_vma_list *l[2];
	struct child c;
	bool seen[2] = { false, false };

	child_start(&c, build_long, NULL);
	l[0] = list(c.pid, 0);
	l[1] = list(c.pid, PM_OPEN_MAPS_TEXT);
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < pm_vma_count(l[k]); i++) {
			const char *n = pm_vma_at(l[k], i)->name;
			size_t len = strlen(n);

			if (len > 4096 && !strcmp(n + len - 7, "/x\\012y"))
				seen[k] = true;
		}
		pm_vma_list_free(l[k]);
	}
	child_stop(&c);
	ck_assert(remove_long(c.pid));
	ck_assert(seen[0]);
	ck_assert(seen[1]);
}
END_TEST

START_TEST(list_accessors_null_safe)
{
	ck_assert_uint_eq(pm_vma_count(NULL), 0);
	ck_assert_ptr_null(pm_vma_at(NULL, 0));
	pm_vma_list_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vma");
	TCase *t = tcase_create("vma");

	test_init();
	tcase_set_timeout(t, 60);
	add_test_if(t, query_and_text_agree, expect_feature(PM_FEAT_PROCMAP_QUERY),
		    lacks(PM_FEAT_PROCMAP_QUERY));
	tcase_add_test(t, names_as_the_kernel_has_them);
	tcase_add_test(t, text_matches_maps_file);
	tcase_add_test(t, long_name_keeps_the_text_form);
	tcase_add_test(t, list_accessors_null_safe);
	suite_add_tcase(s, t);
	return run_suite(s);
}
