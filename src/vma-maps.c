/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The /proc/PID/maps text source: reading it whole and parsing it strictly.
 * The parser takes any byte sequence: malformed text is -EIO, never a crash. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

struct cur {
	const char *p, *end;
};

static bool take(struct cur *c, char ch)
{
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool hex(struct cur *c, uint64_t *out)
{
	uint64_t v = 0;
	int n = 0, d;

	while (c->p < c->end && (d = hexval(*c->p)) >= 0) {
		if (v >> 60)
			return false;
		v = v << 4 | (uint64_t)d;
		c->p++;
		n++;
	}
	*out = v;
	return n > 0;
}

static bool dec(struct cur *c, uint64_t *out)
{
	uint64_t v = 0;
	int n = 0;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		uint64_t d = (uint64_t)(*c->p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		c->p++;
		n++;
	}
	*out = v;
	return n > 0;
}

static bool perm(struct cur *c, char yes, uint64_t bit, uint64_t *flags)
{
	if (take(c, yes)) {
		*flags |= bit;
		return true;
	}
	return take(c, '-');
}

/* "start-end perms offset major:minor inode [padding name]" */
static int parse_line(struct cur *c, uint64_t user_top, struct pm_vma_list *l)
{
	struct pm_vma v = { 0 };
	uint64_t major, minor;
	const char *name;
	size_t name_len;

	if (!hex(c, &v.start) || !take(c, '-') || !hex(c, &v.end) || !take(c, ' '))
		return -EIO;
	if (!perm(c, 'r', PM_VMA_READ, &v.flags) || !perm(c, 'w', PM_VMA_WRITE, &v.flags) ||
	    !perm(c, 'x', PM_VMA_EXEC, &v.flags))
		return -EIO;
	if (take(c, 's'))
		v.flags |= PM_VMA_SHARED;
	else if (!take(c, 'p'))
		return -EIO;
	if (!take(c, ' ') || !hex(c, &v.pgoff) || !take(c, ' ') || !hex(c, &major) ||
	    !take(c, ':') || !hex(c, &minor) || !take(c, ' ') || !dec(c, &v.inode))
		return -EIO;
	if (v.start >= v.end || major > 0xfff || minor > 0xfffff)
		return -EIO;
	v.dev = makedev((unsigned)major, (unsigned)minor);
	if (c->p < c->end && *c->p != '\n' && !take(c, ' '))
		return -EIO;
	while (c->p < c->end && *c->p == ' ')
		c->p++;
	name = c->p;
	while (c->p < c->end && *c->p != '\n')
		c->p++;
	name_len = (size_t)(c->p - name);
	take(c, '\n');
	if (memchr(name, '\0', name_len))
		return -EIO;
	if (v.start >= user_top)
		return 0;
	return pm__list_add(l, &v, name, name_len);
}

int pm__maps_parse(const char *buf, size_t len, uint64_t user_top, struct pm_vma_list *l)
{
	struct cur c = { buf, buf + len };

	while (c.p < c.end) {
		int r = parse_line(&c, user_top, l);

		if (r)
			return r;
	}
	return 0;
}

/* Read the maps text and parse it as it comes, complete lines at a time:
 * the text of a process with many VMAs is megabytes, and a buffer for all
 * of it would be faulted in afresh at every read. */
static int maps_read_parse(struct pm_handle *h, struct pm_vma_list *l)
{
	const uint64_t top = pm__kernel()->user_top;
	size_t cap = 64 * 1024, len = 0; /* len: read, not parsed yet */
	uint64_t off = 0;
	int r = 0, fd = pm__handle_fd(h, &h->maps_fd, "maps");
	char *buf;

	if (fd < 0)
		return fd;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		size_t done;
		long n;

		if (len == cap) { /* a line longer than the buffer */
			char *nb = cap < (1UL << 30) ? realloc(buf, cap * 2) : NULL;

			if (!nb) {
				r = -ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		n = PM__NOINTR(pm__sys.pread(fd, buf + len, cap - len, (off_t)off));
		if (n < 0) {
			r = (int)n;
			break;
		}
		if (n == 0) {
			/* the kernel lists no VMA only when the mm is gone */
			r = off == 0 ? -ESRCH : len ? pm__maps_parse(buf, len, top, l) : 0;
			break;
		}
		off += (uint64_t)n;
		len += (size_t)n;
		for (done = len; done > 0 && buf[done - 1] != '\n'; done--)
			;
		if (done) {
			r = pm__maps_parse(buf, done, top, l);
			if (r)
				break;
			memmove(buf, buf + done, len - done);
			len -= done;
		}
	}
	free(buf);
	return r;
}

int pm__maps_list(struct pm_handle *h, struct pm_vma_list *l)
{
	int r;

	/* one reader at a time: the text comes at file positions, and a
	 * reader at another position makes the kernel walk the list anew */
	pthread_mutex_lock(&h->maps_lock);
	r = maps_read_parse(h, l);
	pthread_mutex_unlock(&h->maps_lock);
	if (r == 0)
		r = pm__list_finish(l);
	return r;
}
