/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pm_kpages: per-PFN records from /proc/kpageflags, kpagecount and
 * kpagecgroup. Each file holds one u64 per PFN; a run of consecutive PFNs
 * costs one pread per file. PFN 0 is what pagemap shows for a hidden PFN,
 * so it gets a zeroed record rather than the first page's. The files end
 * at the highest PFN the kernel knows: a PFN past it has no page, which
 * kpageflags says with KPF_NOPAGE for holes inside, so it reads the same.
 */
#include "kpages.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define RUN_MAX 1024 /* records per pread: an 8 KiB buffer on the stack */

static uint64_t *field(struct pm_kpage *p, int f)
{
	return f == 0 ? &p->flags : f == 1 ? &p->count : &p->cgroup;
}

static const char *const kpage_path[PM__KPAGE_FILES] = {
	"/proc/kpageflags", "/proc/kpagecount", "/proc/kpagecgroup",
};

int pm__kpf_open(struct pm__kpf *k, uint64_t what)
{
	k->what = what;
	for (int i = 0; i < PM__KPAGE_FILES; i++)
		k->fd[i] = -1;
	for (int i = 0; i < PM__KPAGE_FILES; i++) {
		if (!(what & (1ULL << i)))
			continue;
		k->fd[i] = open(kpage_path[i], O_RDONLY | O_CLOEXEC);
		if (k->fd[i] < 0) {
			int e = errno == ENOENT ? EOPNOTSUPP : errno;

			pm__kpf_close(k);
			return -e;
		}
	}
	return 0;
}

void pm__kpf_close(struct pm__kpf *k)
{
	for (int i = 0; i < PM__KPAGE_FILES; i++) {
		if (k->fd[i] >= 0)
			close(k->fd[i]);
		k->fd[i] = -1;
	}
}

/* Read records [pfn, pfn + n) of one file; records past the file's end
 * are 0 (and *past set to where that starts). */
static int read_run(int fd, uint64_t pfn, uint64_t *buf, size_t n, size_t *past)
{
	size_t done = 0;

	*past = n;
	while (done < n) {
		long r = PM__NOINTR(pm__sys.pread(fd, buf + done, (n - done) * 8,
						  (off_t)((pfn + done) * 8)));

		if (r < 0)
			return (int)r;
		if (r == 0) {
			memset(buf + done, 0, (n - done) * 8);
			*past = done;
			break;
		}
		if (r % 8)
			return -EIO;
		done += (size_t)r / 8;
	}
	return 0;
}

int pm__kpf_pread(const struct pm__kpf *k, int f, uint64_t pfn, uint64_t *buf, size_t n)
{
	size_t past;
	int r = read_run(k->fd[f], pfn, buf, n, &past);

	if (!r && f == 0)
		for (size_t j = past; j < n; j++)
			buf[j] = 1ULL << PM_KPF_NOPAGE;
	return r;
}

int pm__kpf_read(const struct pm__kpf *k, const uint64_t *pfns, size_t n, struct pm_kpage *out)
{
	uint64_t buf[RUN_MAX];

	for (size_t i = 0, run; i < n; i += run) {
		const uint64_t pfn = pfns[i];

		run = 1;
		if (!pfn) {
			memset(&out[i], 0, sizeof(out[i]));
			continue;
		}
		while (i + run < n && run < RUN_MAX && pfns[i + run] == pfn + run)
			run++;
		for (int f = 0; f < PM__KPAGE_FILES; f++) {
			int r;

			if (k->fd[f] < 0) {
				for (size_t j = 0; j < run; j++)
					*field(&out[i + j], f) = 0;
				continue;
			}
			r = pm__kpf_pread(k, f, pfn, buf, run);
			if (r)
				return r;
			for (size_t j = 0; j < run; j++)
				*field(&out[i + j], f) = buf[j];
		}
	}
	return 0;
}

PM_EXPORT long pm_kpages(const uint64_t *pfns, size_t n, uint64_t what, struct pm_kpage *out)
{
	const uint64_t known = PM_KPAGE_FLAGS | PM_KPAGE_COUNT | PM_KPAGE_CGROUP;
	struct pm__kpf k;
	int r;

	if ((!pfns || !out) && n)
		return pm__ret(-EINVAL);
	if (!what || (what & ~known) || n > SIZE_MAX / sizeof(*out))
		return pm__ret(-EINVAL);
	for (size_t i = 0; i < n; i++)
		if (pfns[i] > PM_ENTRY_PFN_MASK)
			return pm__ret(-EINVAL);
	r = pm__kpf_open(&k, what);
	if (r)
		return pm__ret(r);
	r = pm__kpf_read(&k, pfns, n, out);
	pm__kpf_close(&k);
	return r ? pm__ret(r) : (long)n;
}
