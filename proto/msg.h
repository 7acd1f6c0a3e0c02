/*
 * msg: typed messages generated from messages.def, and their msgpack
 * body codec.  A decoded message owns its strings and arrays; msg_free()
 * releases them.  Messages built for encoding may point at borrowed
 * memory: msg_encode() only reads them (never msg_free() such a message).
 */
#ifndef BATON_MSG_H
#define BATON_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_MAX_STR	4096	/* bytes in one string field */
#define MSG_MAX_BIN	1024	/* bytes in one bin field */
#define MSG_MAX_ARR	64	/* elements in one array field */
#define MSG_MAX_LIST	65536	/* entries in one NSLIST field */

struct strarr {
	uint32_t n;
	const char **v;
};

/* One allocation in NS_LIST_REPLY (SPEC §5). */
struct nslist_entry {
	const char *allocation_id;
	struct strarr namespaces;
	const char *uenv_image;		/* or NULL */
	bool alive;
};

struct nslist {
	uint32_t n;
	const struct nslist_entry *v;
};

struct bin {
	uint32_t len;
	const uint8_t *p;
};

/* An optional unsigned whose absence means something (left out when !set). */
struct optu64 {
	bool set;
	uint64_t v;
};

#define FT_U16 uint16_t
#define FT_U32 uint32_t
#define FT_U64 uint64_t
#define FT_OU64 uint64_t
#define FT_OPTU64 struct optu64
#define FT_BOOL bool
#define FT_STR const char *
#define FT_NSTR const char *
#define FT_BIN struct bin
#define FT_STRARR struct strarr
#define FT_NSLIST struct nslist

enum msg_type {
#define MSG(NAME, id, fields) MSG_##NAME = id,
#include "proto/messages.def"
#undef MSG
};

/*
 * struct msg_body_<type> { const char *role; uint32_t pid; ... }; etc.,
 * and for hand-written code the same by name: msg_HELLO_t, msg_NS_REQUEST_t.
 */
#define F(kind, name) FT_##kind name;
#define MSG(NAME, id, fields) struct msg_body_##id { fields char _empty; }; \
	typedef struct msg_body_##id msg_##NAME##_t;
#include "proto/messages.def"
#undef MSG
#undef F

struct msg {
	uint16_t type;
	union {
#define MSG(NAME, id, fields) struct msg_body_##id NAME;
#include "proto/messages.def"
#undef MSG
	} u;
};

/* Name of a type ("HELLO"), or NULL when the type is not in the catalogue. */
const char *msg_type_name(uint16_t type);
bool msg_type_known(uint16_t type);
/* Types that may arrive on a socket (excludes on-disk records). */
bool msg_type_wire(uint16_t type);

/*
 * Encode m's body as one msgpack map.  Returns 0 and an owned buffer in
 * *ret_buf (free()) or -errno / -PROTO_E*.  Borrows m.
 */
int msg_encode(const struct msg *m, uint8_t **ret_buf, size_t *ret_len);

/*
 * Decode a body of the given type.  Strict: the body must be exactly one
 * map, every required key present with the right kind, no trailing bytes.
 * On success *ret_m owns its memory (msg_free()).  On failure nothing is
 * left allocated and the return is -PROTO_E*.
 */
int msg_decode(uint16_t type, const uint8_t *body, size_t len,
    struct msg *ret_m);

/*
 * Semantic checks beyond shape: role names, UUID handoff ids, allocation
 * id and image name syntax and namespace names (common/nsvocab.h),
 * digest length.  Returns 0 or -PROTO_EINVAL with a static reason in
 * *ret_why (may be NULL).
 */
int msg_validate(const struct msg *m, const char **ret_why);

void msg_free(struct msg *m);

/*
 * Same type and equal field values (strings and bins by content, NSTR
 * NULL only equal to NULL).  Borrows both.
 */
bool msg_equal(const struct msg *a, const struct msg *b);

/* Canonical lower-case 36-character UUID text. */
bool msg_uuid_ok(const char *s);

#endif
