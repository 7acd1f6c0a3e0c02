/* json: writing JSON values, and reading batonctl's own one-line objects. */
#ifndef BATON_JSON_H
#define BATON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* s as a JSON string (escaped), or null when s is NULL. */
void json_put_str(FILE *f, const char *s);

/*
 * The value at a dotted path ("supervisor.agent_pid") in the object js,
 * or NULL.  json_get_str copies a string value (unescaped) into out:
 * 0, 1 when the value is null, -1 otherwise.  json_get_u64: true when a
 * non-negative integer.  json_get_bool: 1, 0, or -1 when not a bool.
 */
const char *json_find(const char *js, const char *path);
int json_get_str(const char *js, const char *path, char *out, size_t len);
bool json_get_u64(const char *js, const char *path, uint64_t *v);
int json_get_bool(const char *js, const char *path);

#endif
