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

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
				  : s[0] >= 0xe0 && s[0] <= 0xef ? 3
				  : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
								 : 0;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	for (size_t i = 1; i < n; i++) {
		if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return n;
}

/* A JSON string of valid UTF-8: a byte that is not part of a valid
 * sequence is written as \u00XX (it reads as U+00XX). Returns whether
 * any was, so that the caller can add the raw bytes in hex. */
static bool json_str(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	bool escaped = false;

	putchar('"');
	while (*s) {
		size_t n = utf8_len(s);

		if (*s == '"' || *s == '\\') {
			printf("\\%c", *s);
		} else if (*s < 0x20 || *s == 0x7f) {
			printf("\\u%04x", *s);
		} else if (n) {
			fwrite(s, 1, n, stdout);
			s += n;
			continue;
		} else {
			printf("\\u%04x", *s);
			escaped = true;
		}
		s++;
	}
	putchar('"');
	return escaped;
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
		const char *v = va_arg(ap, const char *);

		member(o, key);
		if (json_str(v) && key) {
			/* not UTF-8: the exact bytes too */
			printf(", \"%s_hex\": \"", key);
			for (const char *c = v; *c; c++)
				printf("%02x", (unsigned char)*c);
			putchar('"');
		}
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

void out_hex(struct out *o, const char *key, const char *text, ...)
{
	va_list ap;

	va_start(ap, text);
	if (o->json) {
		/* a string: JSON numbers above 2^53 lose bits in most parsers */
		member(o, key);
		printf("\"0x%" PRIx64 "\"", va_arg(ap, uint64_t));
	} else {
		vprintf(text, ap);
	}
	va_end(ap);
}

void out_opt_u64(struct out *o, const char *key, int width, bool valid, uint64_t v)
{
	if (o->json) {
		member(o, key);
		if (valid)
			printf("%" PRIu64, v);
		else
			fputs("null", stdout);
	} else if (valid) {
		printf(" %*" PRIu64, width, v);
	} else {
		printf(" %*s", width, "n/a");
	}
}
