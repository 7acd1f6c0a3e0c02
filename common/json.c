/*
 * json: --json output for the command-line tools, and a small reader for
 * batonctl's own one-line objects (what rollout gets back from each host).
 * The reader skips values it does not need and never recurses without a
 * depth limit.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

void
json_put_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	putc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

static const char *
jws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* End of the string starting at p ('"'), past the closing quote; NULL bad. */
static const char *
jskip_str(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\') {
			if (!*++p)
				return NULL;
		} else if (*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

static const char *
jskip(const char *p, int depth)
{
	p = jws(p);
	if (depth > 16)
		return NULL;
	if (*p == '"')
		return jskip_str(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';

		p = jws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				if (*p != '"' || !(p = jskip_str(p)))
					return NULL;
				p = jws(p);
				if (*p++ != ':')
					return NULL;
			}
			if (!(p = jskip(p, depth + 1)))
				return NULL;
			p = jws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
			p = jws(p);
		}
	}
	if (*p == '-' || (*p >= '0' && *p <= '9') || *p == 't' || *p == 'f' ||
	    *p == 'n') {
		while (*p && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	return NULL;
}

/* The value at a dotted path of object keys ("supervisor.state"), or NULL. */
const char *
json_find(const char *js, const char *path)
{
	const char *p = jws(js), *dot, *k, *ke;
	size_t len;

	while (*path) {
		dot = strchr(path, '.');
		len = dot ? (size_t)(dot - path) : strlen(path);
		if (*p != '{')
			return NULL;
		p = jws(p + 1);
		for (;;) {
			if (*p != '"')
				return NULL;
			k = p + 1;
			if (!(ke = jskip_str(p)))
				return NULL;
			p = jws(ke);
			if (*p++ != ':')
				return NULL;
			p = jws(p);
			if ((size_t)(ke - 1 - k) == len &&
			    memcmp(k, path, len) == 0)
				break;
			if (!(p = jskip(p, 0)))
				return NULL;
			p = jws(p);
			if (*p++ != ',')
				return NULL;
			p = jws(p);
		}
		path += len + (dot ? 1 : 0);
	}
	return p;
}

/* 1 a string (copied, escapes decoded), 0 null, -1 missing or another type. */
int
json_get_str(const char *js, const char *path, char *out, size_t len)
{
	const char *p = json_find(js, path);
	size_t o = 0;

	if (len)
		out[0] = '\0';
	if (!p)
		return -1;
	if (strncmp(p, "null", 4) == 0)
		return 0;
	if (*p != '"' || !jskip_str(p))
		return -1;
	for (p++; *p != '"' && o + 1 < len; p++) {
		char c = *p;

		if (c == '\\') {
			c = *++p;
			if (c == 'n')
				c = '\n';
			else if (c == 't')
				c = '\t';
			else if (c == 'u') {
				unsigned v = 0;

				if (sscanf(p + 1, "%4x", &v) != 1)
					return -1;
				p += 4;
				c = v < 0x80 ? (char)v : '?';
			}
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return 1;
}

bool
json_get_u64(const char *js, const char *path, uint64_t *v)
{
	const char *p = json_find(js, path);
	char *end;

	if (!p || *p < '0' || *p > '9')
		return false;
	errno = 0;
	*v = strtoull(p, &end, 10);
	return errno == 0 && end != p;
}

/* 1 true, 0 false, -1 missing or another type. */
int
json_get_bool(const char *js, const char *path)
{
	const char *p = json_find(js, path);

	if (p && strncmp(p, "true", 4) == 0)
		return 1;
	if (p && strncmp(p, "false", 5) == 0)
		return 0;
	return -1;
}

