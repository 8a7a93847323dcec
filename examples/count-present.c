/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The usage example of README.md, compiled and run by the tests. */
#include <pagemap/pagemap.h>   /* cc app.c $(pkg-config --cflags --libs libpagemap) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int count_present(pid_t pid, uint64_t start, uint64_t end)
{
	struct pm_handle *h;
	size_t n = (end - start) / 4096, present = 0;
	uint64_t *e = malloc(n * sizeof(*e));
	PM_OPTS(pm_read_info, info);
	int r = pm_open(pid, NULL, &h);            /* pid 0 = this process */

	if (r < 0 || !e)
		return r < 0 ? r : -ENOMEM;
	long got = pm_read(h, start, end, e, NULL, &info);  /* gaps read as 0 */
	for (long i = 0; i < got; i++)
		present += pm_entry_present(e[i]) && !pm_entry_file(e[i]);
	if (got < 0)
		fprintf(stderr, "pm_read: %s\n", strerror((int)-got));
	pm_close(h);
	free(e);
	return got < 0 ? (int)got : (int)present;
}

/* The README's usage example as a program: 8 of 16 fresh pages written,
 * count_present must find exactly those (tests/check-readme.sh keeps the
 * function above equal to the README's). */
#include <sys/mman.h>

int main(void)
{
	const size_t ps = 4096, n = 16;
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r;

	if (p == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < n; i += 2)
		p[i * ps] = 1;
	r = count_present(0, (uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)(p + n * ps));
	printf("%d of %zu pages present\n", r, n);
	return r == (int)n / 2 ? 0 : 1;
}
