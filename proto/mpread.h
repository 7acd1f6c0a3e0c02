/*
 * mpread: a bounded cursor over msgpack bytes, for decoders that walk
 * their input once instead of building msgpack-c's object tree (which
 * for a 10,000-entry table is some 5 MB of zone memory, most of a cold
 * decode in page faults; docs/BENCH.md).
 *
 * Every reader checks the type byte and that the value fits in what is
 * left; on any mismatch it returns -EBADMSG and leaves the cursor where
 * it was.  Integers read as unsigned accept every encoding msgpack-c
 * reads as a positive integer (positive fixint, uint 8-64, and int 8-64
 * holding a value >= 0).  Strings are the str family only (not bin).
 */
#ifndef BATON_MPREAD_H
#define BATON_MPREAD_H

#include <stddef.h>
#include <stdint.h>

/* Nesting mpread_skip() follows, as msgpack-c's unpacker stack. */
#define MPREAD_MAX_DEPTH	32

struct mpread {
	const uint8_t *p, *end;
};

void mpread_init(struct mpread *c, const void *buf, size_t len);
/* Bytes left. */
size_t mpread_left(const struct mpread *c);

/* A map header: its number of pairs.  0 or -EBADMSG. */
int mpread_map(struct mpread *c, uint32_t *ret_n);
/* An array header: its number of elements.  0 or -EBADMSG. */
int mpread_array(struct mpread *c, uint32_t *ret_n);
/* A string: pointer into the buffer and length.  0 or -EBADMSG. */
int mpread_str(struct mpread *c, const char **ret_s, uint32_t *ret_len);
/* A non-negative integer.  0 or -EBADMSG. */
int mpread_u64(struct mpread *c, uint64_t *ret_v);
/* A boolean.  0 or -EBADMSG. */
int mpread_bool(struct mpread *c, int *ret_b);
/* Nil: 0 (consumed) or -EBADMSG (not nil, nothing consumed). */
int mpread_nil(struct mpread *c);
/* Any one value, nested ones included.  0 or -EBADMSG. */
int mpread_skip(struct mpread *c);

#endif
