/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VMA lists: PROCMAP_QUERY and the maps text parser agree on real processes. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MANY 10500

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

START_TEST(query_and_text_agree)
{
	struct pm_vma_list *q, *t;
	struct child c;

	child_start(&c, build_names, NULL);
	q = list(c.pid, 0);
	t = list(c.pid, PM_OPEN_MAPS_TEXT);
	check_sorted(q);
	check_sorted(t);
	ck_assert_uint_ge(pm_vma_count(t), MANY);
	ck_assert_uint_eq(pm_vma_count(q), pm_vma_count(t));
	for (size_t i = 0; i < pm_vma_count(q); i++) {
		const struct pm_vma *a = pm_vma_at(q, i), *b = pm_vma_at(t, i);

		ck_assert_msg(a->start == b->start && a->end == b->end && a->flags == b->flags &&
				      a->pgoff == b->pgoff && a->dev == b->dev &&
				      a->inode == b->inode && !strcmp(a->name, b->name),
			      "VMA %zu differs: query %#lx-%#lx f%lx o%lx d%lx i%lu '%s' / text "
			      "%#lx-%#lx f%lx o%lx d%lx i%lu '%s'",
			      i, (unsigned long)a->start, (unsigned long)a->end,
			      (unsigned long)a->flags, (unsigned long)a->pgoff, (unsigned long)a->dev,
			      (unsigned long)a->inode, a->name, (unsigned long)b->start,
			      (unsigned long)b->end, (unsigned long)b->flags, (unsigned long)b->pgoff,
			      (unsigned long)b->dev, (unsigned long)b->inode, b->name);
	}
	for (int k = 0; k < 2; k++) {
		struct pm_vma_list *l = k ? t : q;

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
}
END_TEST

static void build_small(void *arg, uint64_t *sh)
{
	xmap(NULL, 4 * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
}

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
	tcase_add_test(t, text_matches_maps_file);
	tcase_add_test(t, list_accessors_null_safe);
	suite_add_tcase(s, t);
	return run_suite(s);
}
