/*
 * msg_fixture: fill any catalogue message with non-trivial, valid values,
 * generated from messages.def so a new message or field is covered
 * without touching the tests.  Shared by the proto unit tests, the fuzz
 * seed generator and the cross-implementation check.
 *
 * fixture_fill() points the message at static storage: never msg_free()
 * it.  Values pass msg_validate(): field names with a meaning in SPEC §4
 * and §5 get a meaningful value, every other field a value that uses
 * the wide encodings (u64 above 2^32, multi-byte UTF-8, bins with 0x00).
 */
#ifndef BATON_TEST_MSG_FIXTURE_H
#define BATON_TEST_MSG_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "proto/msg.h"

static const char *const fixture_ns[] = { "net", "mount", "pid" };
static const char *const fixture_arr[] = { "alpha", "", "\xce\xbb-\xe2\x9c\x93" };
static const uint8_t fixture_bytes[] = {
	0x00, 0xff, 0x10, 0x80, 0x7f, 0xc1, 0xde, 0xad, 0xbe, 0xef,
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
	0xbb, 0xcc,
};

/* A small per-name salt so two fields of one kind get different values. */
static inline uint64_t
fixture_salt(const char *name)
{
	uint64_t h = 1469598103934665603ULL;

	while (*name)
		h = (h ^ (uint8_t)*name++) * 1099511628211ULL;
	return h;
}

static inline void
fixture_U16(uint16_t *v, const char *name)
{
	if (strcmp(name, "proto_min") == 0)
		*v = 1;
	else if (strcmp(name, "proto_max") == 0 ||
	    strcmp(name, "proto_version") == 0)
		*v = 3;
	else
		*v = (uint16_t)(0x8000 | fixture_salt(name));
}

static inline void
fixture_U32(uint32_t *v, const char *name)
{
	*v = (uint32_t)(0x80000000u | fixture_salt(name));
}

static inline void
fixture_U64(uint64_t *v, const char *name)
{
	*v = 0x100000000ULL | (fixture_salt(name) & 0x7fffffffffffULL) << 1;
}

static inline void
fixture_OU64(uint64_t *v, const char *name)
{
	fixture_U64(v, name);
}

/* Set, so the round trip carries it (absence is tested on its own). */
static inline void
fixture_OPTU64(struct optu64 *v, const char *name)
{
	v->set = true;
	fixture_U64(&v->v, name);
}

static inline void
fixture_BOOL(bool *v, const char *name)
{
	*v = fixture_salt(name) & 1;
}

static inline const char *
fixture_text(const char *name)
{
	static const struct { const char *field, *value; } named[] = {
		{ "role", "successor" },
		{ "handoff_id", "0b8f6c1e-3a5d-4c7e-9f21-6d4b2a8e1c07" },
		{ "allocation_id", "job-4711.step_2" },
		{ "uenv_image", "prgenv-gnu_24.7.sqfs" },
		{ "uenv_mount_path", "/run/pact/uenv/prgenv-gnu_24.7" },
		{ "kind", "creation_failed" },
	};
	size_t i;

	for (i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strcmp(name, named[i].field) == 0)
			return named[i].value;
	/* Long enough for str8, with multi-byte UTF-8. */
	return "value \xe2\x80\x94 with UTF-8 \xf0\x9f\x94\x91 and more "
	    "than thirty-one bytes";
}

static inline void
fixture_STR(const char **v, const char *name)
{
	*v = fixture_text(name);
}

static inline void
fixture_NSTR(const char **v, const char *name)
{
	*v = fixture_text(name);
}

static inline void
fixture_BIN(struct bin *v, const char *name)
{
	v->len = sizeof(fixture_bytes) - (fixture_salt(name) & 3);
	v->p = fixture_bytes;
}

static inline void
fixture_STRARR(struct strarr *v, const char *name)
{
	if (strcmp(name, "namespaces") == 0 || strcmp(name, "fd_types") == 0) {
		v->n = 3;
		v->v = (const char **)fixture_ns;
	} else {
		v->n = 3;
		v->v = (const char **)fixture_arr;
	}
}

static const struct nslist_entry fixture_nsentries[] = {
	{ "job-1", { 3, (const char **)fixture_ns }, "base.sqfs", true },
	{ "job.2_b", { 1, (const char **)fixture_ns }, NULL, false },
};

static inline void
fixture_NSLIST(struct nslist *v, const char *name)
{
	(void)name;
	v->n = 2;
	v->v = fixture_nsentries;
}

/* Fill every field of a message of this type; false if unknown. */
static inline bool
fixture_fill(struct msg *m, uint16_t type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	switch (type) {
#define F(kind, name) fixture_##kind(&b->name, #name);
#define MSG(NAME, id, fields) \
	case id: { \
		__typeof__(m->u.NAME) *b __attribute__((unused)) = &m->u.NAME; \
		fields \
		return true; \
	}
#include "proto/messages.def"
#undef MSG
#undef F
	default:
		return false;
	}
}

#ifdef BATON_TAP_H
/*
 * Like check_eq, but evaluates each side once (check_eq expands its
 * arguments twice, which repeats calls such as wire_recv()).
 */
#define check_is(expr, want) do { \
	long long v_ = (long long)(expr), w_ = (long long)(want); \
	tap_check(v_ == w_, __FILE__, __LINE__, "%s == %s (%lld vs %lld)", \
	    #expr, #want, v_, w_); \
} while (0)
#endif

/* Every type of the catalogue, in catalogue order. */
static const uint16_t fixture_types[] = {
#define MSG(NAME, id, fields) id,
#include "proto/messages.def"
#undef MSG
};
#define FIXTURE_NTYPES (sizeof(fixture_types) / sizeof(fixture_types[0]))

#endif
