/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one place that knows text from JSON: callers say what a value is
 * called and how it reads in the text layout. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "pm-dump.h"

void out_init(struct out *o, bool json)
{
	*o = (struct out){ .json = json, .depth = -1 };
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* the separator and key before a member of the innermost container */
static void member(struct out *o, const char *key)
{
	int l = o->depth;

	if (l < 0)
		return;
	if (!o->first[l])
		putchar(',');
	if (o->lines[l])
		printf("\n%*s", 2 * (l + 1), "");
	else if (!o->first[l])
		putchar(' ');
	o->first[l] = false;
	if (key) {
		json_str(key);
		fputs(": ", stdout);
	}
}

void out_open(struct out *o, char kind, const char *key, bool lines, const char *text)
{
	if (!o->json) {
		if (text)
			fputs(text, stdout);
		return;
	}
	member(o, key);
	putchar(kind);
	o->depth++;
	o->first[o->depth] = true;
	o->lines[o->depth] = lines;
	o->close[o->depth] = kind == '{' ? '}' : ']';
}

void out_close(struct out *o, const char *text)
{
	if (!o->json) {
		if (text)
			fputs(text, stdout);
		return;
	}
	if (o->lines[o->depth] && !o->first[o->depth])
		printf("\n%*s", 2 * o->depth, "");
	putchar(o->close[o->depth]);
	if (--o->depth < 0)
		putchar('\n');
}

void out_row(struct out *o)
{
	out_open(o, '{', NULL, false, NULL);
}

void out_row_end(struct out *o)
{
	out_close(o, "\n");
}

void out_u64(struct out *o, const char *key, const char *text, ...)
{
	va_list ap;

	va_start(ap, text);
	if (o->json) {
		member(o, key);
		printf("%" PRIu64, va_arg(ap, uint64_t));
	} else {
		vprintf(text, ap);
	}
	va_end(ap);
}

void out_str(struct out *o, const char *key, const char *text, ...)
{
	va_list ap;

	va_start(ap, text);
	if (o->json) {
		member(o, key);
		json_str(va_arg(ap, const char *));
	} else {
		vprintf(text, ap);
	}
	va_end(ap);
}

void out_bool(struct out *o, const char *key, bool v, const char *yes, const char *no)
{
	if (o->json) {
		member(o, key);
		fputs(v ? "true" : "false", stdout);
	} else {
		fputs(v ? yes : no, stdout);
	}
}

void out_json_u64(struct out *o, const char *key, uint64_t v)
{
	if (o->json) {
		member(o, key);
		printf("%" PRIu64, v);
	}
}

void out_text(struct out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->json)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}
