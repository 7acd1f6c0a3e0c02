/*
 * json: --json output for the command-line tools, and reading batonctl's
 * one-line objects (what rollout gets back from each host, what tests
 * check).  Input from outside the process is parsed by jansson, Debian's
 * kept JSON library (UTF-8 checked, every escape decoded, depth bounded),
 * not by a reader of our own.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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

/*
 * The value at a dotted path of object keys ("supervisor.state") in the
 * parsed document, or NULL.  Borrowed from doc.
 */
static json_t *
at(json_t *doc, const char *path)
{
	char key[128];
	const char *dot;
	size_t len;

	while (doc && *path) {
		dot = strchr(path, '.');
		len = dot ? (size_t)(dot - path) : strlen(path);
		if (!json_is_object(doc) || len >= sizeof(key))
			return NULL;
		memcpy(key, path, len);
		key[len] = '\0';
		doc = json_object_get(doc, key);
		path += len + (dot ? 1 : 0);
	}
	return doc;
}

/* Parse js (one value, maybe followed by whitespace); NULL when bad. */
static json_t *
parse(const char *js)
{
	json_error_t e;

	return json_loads(js, JSON_REJECT_DUPLICATES, &e);
}

bool
json_has(const char *js, const char *path)
{
	json_t *doc = parse(js);
	bool r = at(doc, path) != NULL;

	json_decref(doc);
	return r;
}

int
json_get_str(const char *js, const char *path, char *out, size_t len)
{
	json_t *doc = parse(js), *v = at(doc, path);
	int r = -1;

	if (len)
		out[0] = '\0';
	if (json_is_null(v)) {
		r = 0;
	} else if (json_is_string(v) && json_string_length(v) < len &&
	    !memchr(json_string_value(v), '\0', json_string_length(v))) {
		memcpy(out, json_string_value(v), json_string_length(v) + 1);
		r = 1;
	}
	json_decref(doc);
	return r;
}

bool
json_get_u64(const char *js, const char *path, uint64_t *v)
{
	json_t *doc = parse(js), *n = at(doc, path);
	bool r = json_is_integer(n) && json_integer_value(n) >= 0;

	if (r)
		*v = (uint64_t)json_integer_value(n);
	json_decref(doc);
	return r;
}

int
json_get_bool(const char *js, const char *path)
{
	json_t *doc = parse(js), *b = at(doc, path);
	int r = json_is_boolean(b) ? json_is_true(b) : -1;

	json_decref(doc);
	return r;
}
