/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Decoders against ground truth the test creates in the kernel. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KPF_THP 22
#define KPF_ZERO_PAGE 24
#define MADV_GUARD_INSTALL_ 102
#define UFFD_FEATURE_WP_UNPOPULATED_ (1ULL << 13)

static uint64_t entry(const void *p)
{
	struct pm_handle *h;
	uint64_t a = (uintptr_t)p & ~(ps - 1), e = 0xdead;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, a, a + ps, &e, NULL, NULL), 1);
	pm_close(h);
	return e;
}

static void entries(const void *p, size_t n, uint64_t *out)
{
	struct pm_handle *h;
	uint64_t a = (uintptr_t)p;

	ck_assert_int_eq(pm_open(0, NULL, &h), 0);
	ck_assert_int_eq(pm_read(h, a, a + n * ps, out, NULL, NULL), (long)n);
	pm_close(h);
}

static bool pfns(void)
{
	return pm_has_feature(PM_FEAT_PFN_VISIBLE) == 1;
}

/* Bit layout of synthetic entries: every bit 55-63 maps to one decoder. */
START_TEST(decode_bits)
{
	const uint64_t swap = (1ULL << 62) | (123456ULL << 5) | 7;

	ck_assert(pm_entry_present(1ULL << 63));
	ck_assert(!pm_entry_present(~(1ULL << 63)));
	ck_assert(pm_entry_soft_dirty(1ULL << 55));
	ck_assert(pm_entry_exclusive(1ULL << 56));
	ck_assert(pm_entry_uffd_wp(1ULL << 57));
	ck_assert(pm_entry_guard(1ULL << 58));
	ck_assert(pm_entry_file(1ULL << 61));
	ck_assert(pm_entry_swapped(swap));
	ck_assert_uint_eq(pm_entry_swap_type(swap), 7);
	ck_assert_uint_eq(pm_entry_swap_offset(swap), 123456);
	ck_assert_uint_eq(pm_entry_pfn(swap), 0);
	ck_assert_uint_eq(pm_entry_pfn((1ULL << 63) | 0x1234), 0x1234);
	ck_assert_uint_eq(pm_entry_pfn((1ULL << 63) | (1ULL << 61) | ((1ULL << 55) - 1)),
			  (1ULL << 55) - 1);
	ck_assert_uint_eq(pm_entry_swap_type(1ULL << 63 | 5), 0);
	ck_assert_uint_eq(pm_entry_swap_offset(1ULL << 63 | 0x100), 0);
	/* bits 59 and 60 are reserved: no decoder sees them */
	ck_assert(!pm_entry_present(3ULL << 59) && !pm_entry_swapped(3ULL << 59) &&
		  !pm_entry_file(3ULL << 59) && !pm_entry_guard(3ULL << 59));
	/* the PTE-marker swap type is not swap */
	ck_assert(!pm_entry_swapped((1ULL << 62) | (1ULL << 57) | (1 << 5) | 31));
	/* guard markers (bits 62+58) are not swap */
	ck_assert(!pm_entry_swapped(0x440000000000009fULL));
	ck_assert(pm_entry_guard(0x440000000000009fULL));
}
END_TEST

START_TEST(decode_thp)
{
	char *t = make_thp();
	uint64_t *e = malloc(512 * 8);

	ck_assert_ptr_nonnull(t);
	entries(t, 512, e);
	for (int i = 0; i < 512; i++) {
		ck_assert(pm_entry_present(e[i]));
		ck_assert(pm_entry_exclusive(e[i]));
		ck_assert(!pm_entry_file(e[i]) && !pm_entry_swapped(e[i]));
	}
	if (pfns()) {
		uint64_t pfn0 = pm_entry_pfn(e[0]);

		ck_assert_uint_eq(pfn0 % 512, 0);
		for (int i = 0; i < 512; i++)
			ck_assert_uint_eq(pm_entry_pfn(e[i]), pfn0 + (uint64_t)i);
		ck_assert(kpageflags(pfn0) >> KPF_THP & 1);
	}
	free(e);
}
END_TEST

START_TEST(decode_file_and_shmem)
{
	char path[] = "/tmp/pm-decode-XXXXXX";
	int fd = mkstemp(path);
	char *f, *s, *m;
	uint64_t e;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, (off_t)(4 * ps)), 0);
	f = xmap(NULL, 4 * ps, PROT_READ, MAP_SHARED, fd);
	(void)*(volatile char *)f;
	e = entry(f);
	ck_assert(pm_entry_present(e) && pm_entry_file(e) && !pm_entry_swapped(e));
	s = xmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	s[0] = 1;
	e = entry(s);
	ck_assert(pm_entry_present(e) && pm_entry_file(e));
	fd = (int)syscall(SYS_memfd_create, "pm-decode", 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)ps), 0);
	m = xmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	m[0] = 1;
	e = entry(m);
	ck_assert(pm_entry_present(e) && pm_entry_file(e));
	close(fd);
}
END_TEST

START_TEST(decode_zero_page)
{
	char *a = xmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t e[4];

	madvise(a, 4 * ps, MADV_NOHUGEPAGE);
	(void)*(volatile char *)a;
	(void)*(volatile char *)(a + 2 * ps);
	entries(a, 4, e);
	ck_assert(pm_entry_present(e[0]) && pm_entry_present(e[2]));
	ck_assert(!pm_entry_file(e[0]) && !pm_entry_exclusive(e[0]));
	ck_assert_uint_eq(e[1] & ~PM_ENTRY_SOFT_DIRTY, 0); /* new VMAs read soft-dirty */
	if (pfns()) {
		ck_assert_uint_ne(pm_entry_pfn(e[0]), 0);
		ck_assert_uint_eq(pm_entry_pfn(e[0]), pm_entry_pfn(e[2]));
		ck_assert(kpageflags(pm_entry_pfn(e[0])) >> KPF_ZERO_PAGE & 1);
	}
	/* a write replaces the zero page with a private page */
	a[0] = 1;
	entries(a, 1, e);
	ck_assert(pm_entry_exclusive(e[0]));
}
END_TEST

START_TEST(decode_prot_none)
{
	char *a = xmap(NULL, 4 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t e[4];

	entries(a, 4, e);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(e[i] & ~PM_ENTRY_SOFT_DIRTY, 0); /* new VMAs read soft-dirty */
}
END_TEST

START_TEST(decode_guard)
{
	char *a = xmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	uint64_t e[4];

	a[0] = 1;
	ck_assert_int_eq(madvise(a + ps, 2 * ps, MADV_GUARD_INSTALL_), 0);
	entries(a, 4, e);
	ck_assert(pm_entry_present(e[0]) && !pm_entry_guard(e[0]));
	for (int i = 1; i <= 2; i++) {
		ck_assert(pm_entry_guard(e[i]));
		ck_assert(!pm_entry_present(e[i]));
		ck_assert(!pm_entry_swapped(e[i]));
	}
	ck_assert_uint_eq(e[3] & ~PM_ENTRY_SOFT_DIRTY, 0);
}
END_TEST

/* uffd-wp: protected present pages have bit 57; unpopulated protected
 * pages carry a PTE marker (62+57) which is not swap. */
START_TEST(decode_uffd_wp)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_UNPOPULATED_ };
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	char *a = xmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct uffdio_register reg = { .range = { (uintptr_t)a, 4 * ps },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .range = { (uintptr_t)a, 4 * ps },
					  .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	uint64_t e[4];

	ck_assert_int_ge(fd, 0);
	madvise(a, 4 * ps, MADV_NOHUGEPAGE);
	ck_assert_int_eq(ioctl((int)fd, UFFDIO_API, &api), 0);
	a[0] = 1;
	a[ps] = 1;
	ck_assert_int_eq(ioctl((int)fd, UFFDIO_REGISTER, &reg), 0);
	ck_assert_int_eq(ioctl((int)fd, UFFDIO_WRITEPROTECT, &wp), 0);
	entries(a, 4, e);
	for (int i = 0; i < 2; i++)
		ck_assert(pm_entry_present(e[i]) && pm_entry_uffd_wp(e[i]));
	for (int i = 2; i < 4; i++) {
		ck_assert(!pm_entry_present(e[i]) && pm_entry_uffd_wp(e[i]));
		ck_assert(e[i] & PM_ENTRY_SWAP);
		if (pfns())
			ck_assert(!pm_entry_swapped(e[i]));
	}
	close((int)fd);
}
END_TEST

/* Exclusive until a fork shares the page; exclusive again after the
 * child's write breaks COW. */
START_TEST(decode_exclusive_after_fork)
{
	char *a = xmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	int go[2], done[2];
	char c = 0;
	pid_t pid;

	a[0] = 1;
	ck_assert(pm_entry_exclusive(entry(a)));
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(done, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(go[1]);
		close(done[0]);
		(void)!read(go[0], &c, 1);
		a[0] = 2;
		(void)!write(done[1], &c, 1);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	ck_assert(!pm_entry_exclusive(entry(a)));
	ck_assert(pm_entry_present(entry(a)));
	ck_assert_int_eq(write(go[1], &c, 1), 1);
	ck_assert_int_eq(read(done[0], &c, 1), 1);
	ck_assert(pm_entry_exclusive(entry(a)));
	close(go[1]);
	waitpid(pid, NULL, 0);
}
END_TEST

/* Without CAP_SYS_ADMIN the kernel hides PFNs: present, PFN 0. */
START_TEST(decode_pfn_hidden_unprivileged)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *a;
		uint64_t e = 0;
		struct pm_handle *h;

		/* setuid clears "dumpable", which would hide our own /proc files */
		if (getuid() == 0 && (setgid(65534) || setuid(65534) ||
				      prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)))
			_exit(10);
		a = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (a == MAP_FAILED)
			_exit(11);
		a[0] = 1;
		if (pm_open(0, NULL, &h) || pm_read(h, (uintptr_t)a, (uintptr_t)a + ps, &e, NULL,
						    NULL) != 1)
			_exit(12);
		if (!pm_entry_present(e) || pm_entry_pfn(e) != 0)
			_exit(13);
		if (pm_has_feature(PM_FEAT_PFN_VISIBLE) != 0)
			_exit(14);
		pm_close(h);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exit %d", WEXITSTATUS(st));
}
END_TEST

/* Soft-dirty (bit 55): a new VMA reads dirty, clear_refs 4 cleans it, a
 * write dirties the page again (kernels with CONFIG_MEM_SOFT_DIRTY). */
START_TEST(decode_soft_dirty)
{
	char *a = xmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	uint64_t e[2];

	a[0] = 1;
	entries(a, 2, e);
	ck_assert(pm_entry_soft_dirty(e[0]) && pm_entry_soft_dirty(e[1]));
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "4", 1), 1);
	close(fd);
	entries(a, 2, e);
	ck_assert(pm_entry_present(e[0]) && !pm_entry_soft_dirty(e[0]));
	ck_assert(!pm_entry_soft_dirty(e[1]));
	a[0] = 2;
	entries(a, 2, e);
	ck_assert(pm_entry_soft_dirty(e[0]));
	ck_assert(!pm_entry_soft_dirty(e[1]));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("decode");
	TCase *t = tcase_create("decode");

	test_init();
	tcase_add_test(t, decode_bits);
	tcase_add_test(t, decode_file_and_shmem);
	add_test_if(t, decode_zero_page, zero_page_possible(),
		    "read faults do not map the zero page on this kernel");
	tcase_add_test(t, decode_prot_none);
	tcase_add_test(t, decode_exclusive_after_fork);
	tcase_add_test(t, decode_pfn_hidden_unprivileged);
	add_test_if(t, decode_thp, thp_possible(), "THP is disabled on this machine");
	add_test_if(t, decode_guard, expect_feature(PM_FEAT_GUARD_REGIONS),
		    lacks(PM_FEAT_GUARD_REGIONS));
	add_test_if(t, decode_soft_dirty, expect_feature(PM_FEAT_SOFT_DIRTY),
		    lacks(PM_FEAT_SOFT_DIRTY));
	add_test_if(t, decode_uffd_wp, expect_feature(PM_FEAT_UFFD_WP_ASYNC),
		    lacks(PM_FEAT_UFFD_WP_ASYNC));
	suite_add_tcase(s, t);
	return run_suite(s);
}
