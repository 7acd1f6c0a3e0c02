/* json: writing JSON values, and reading them with jansson. */
#ifndef BATON_JSON_H
#define BATON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* s as a JSON string (escaped), or null when s is NULL. */
void json_put_str(FILE *f, const char *s);

/*
 * Reading (jansson): js is one JSON document; path names a value by its
 * dotted object keys ("supervisor.agent_pid").  json_has: the value is
 * there (null included).  json_get_str copies a string value, decoded,
 * into out: 1, 0 when the value is null, -1 when missing, not a string,
 * holding NUL or longer than len - 1 (out is then "", never cut short).
 * json_get_u64: true when a non-negative integer.  json_get_bool: 1, 0,
 * or -1 when not a bool.
 */
bool json_has(const char *js, const char *path);
int json_get_str(const char *js, const char *path, char *out, size_t len);
bool json_get_u64(const char *js, const char *path, uint64_t *v);
int json_get_bool(const char *js, const char *path);

#endif
