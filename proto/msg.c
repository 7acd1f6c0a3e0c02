/*
 * msg: message bodies generated from messages.def.
 *
 * Every message gets one field descriptor table (kind, key, offset into
 * its union member); encode, decode, free, compare and validate all walk
 * that table, so a new message or field is one line in messages.def.
 *
 * Encoding uses msgpack-c's packer.  Decoding does not use msgpack-c's
 * unpacker: that one sizes its allocations from the lengths a peer
 * declares.  Instead a small strict reader walks the subset we accept and
 * allocates only for fields it keeps, after checking the field's limit
 * and that the declared bytes are really there.  Values under unknown
 * keys are skipped without recursion or allocation.
 *
 * Invariants: a decoded message owns every string, bin and array it
 * points at; on any decode failure nothing stays allocated; strings never
 * contain NUL; a known key may appear once (a repeat is -PROTO_EVALTYPE);
 * msg_decode never returns -PROTO_EINVAL (that is msg_validate's).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto/frame.h"
#include "proto/msg.h"

/* Types at or above this are on-disk records, never wire frames. */
#define MSG_TYPE_DISK_MIN	96

enum kind {
	K_U16, K_U32, K_U64, K_OU64, K_OPTU64, K_BOOL, K_STR, K_NSTR, K_BIN,
	K_STRARR, K_NSLIST
};

struct field {
	const char *key;
	size_t keylen;
	size_t off;		/* offset inside the union member */
	enum kind kind;
};

struct desc {
	uint16_t type;
	const char *name;
	const struct field *(*fields)(size_t *ret_n);
};

/*
 * One function per message returns its table.  The function scope lets
 * F() name the body struct as body_t, which it could not do at file
 * scope (F is expanded before MSG knows which message it is in).
 */
#define F(kind, name) \
	{ #name, sizeof(#name) - 1, offsetof(body_t, name), K_##kind },
#define MSG(NAME, id, fields)						\
static const struct field *						\
fields_##NAME(size_t *ret_n)						\
{									\
	typedef struct msg_body_##id body_t __attribute__((unused));	\
	static const struct field f[] = { fields { NULL, 0, 0, 0 } };	\
	*ret_n = sizeof(f) / sizeof(f[0]) - 1;				\
	return f;							\
}
#include "proto/messages.def"
#undef MSG
#undef F

enum {
#define MSG(NAME, id, fields) IDX_##NAME,
#include "proto/messages.def"
#undef MSG
	IDX_COUNT
};

static const struct desc descs[IDX_COUNT] = {
#define MSG(NAME, id, fields) { id, #NAME, fields_##NAME },
#include "proto/messages.def"
#undef MSG
};

/* A field bitmap per message must fit a uint64_t. */
#define F(kind, name) + 1
#define MSG(NAME, id, fields) \
	_Static_assert(0 fields <= 64, #NAME " has too many fields");
#include "proto/messages.def"
#undef MSG
#undef F

static const struct desc *
desc_of(uint16_t type)
{
	switch (type) {
#define MSG(NAME, id, fields) case id: return &descs[IDX_##NAME];
#include "proto/messages.def"
#undef MSG
	default:
		return NULL;
	}
}

const char *
msg_type_name(uint16_t type)
{
	const struct desc *d = desc_of(type);

	return d != NULL ? d->name : NULL;
}

bool
msg_type_known(uint16_t type)
{
	return desc_of(type) != NULL;
}

bool
msg_type_wire(uint16_t type)
{
	return type < MSG_TYPE_DISK_MIN && desc_of(type) != NULL;
}

/* ------------------------------------------------------------------ */
/* Encoding */

static int
pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	if (n > MSG_MAX_STR)
		return -PROTO_ELIMIT;
	if (msgpack_pack_str(pk, n) != 0 || msgpack_pack_str_body(pk, s, n) != 0)
		return -ENOMEM;
	return 0;
}

static int pack_strarr(msgpack_packer *pk, const struct strarr *sa);

/* NS_LIST_REPLY's allocations: an array of four-key maps. */
static int
pack_nslist(msgpack_packer *pk, const struct nslist *l)
{
	const struct nslist_entry *e;
	uint32_t i;
	int r;

	if (l->n > MSG_MAX_LIST)
		return -PROTO_ELIMIT;
	if (l->n > 0 && l->v == NULL)
		return -EINVAL;
	if (msgpack_pack_array(pk, l->n) != 0)
		return -ENOMEM;
	for (i = 0; i < l->n; i++) {
		e = &l->v[i];
		if (e->allocation_id == NULL)
			return -EINVAL;
		if (msgpack_pack_map(pk, 4) != 0)
			return -ENOMEM;
		if ((r = pack_str(pk, "allocation_id")) < 0 ||
		    (r = pack_str(pk, e->allocation_id)) < 0 ||
		    (r = pack_str(pk, "namespaces")) < 0 ||
		    (r = pack_strarr(pk, &e->namespaces)) < 0 ||
		    (r = pack_str(pk, "uenv_image")) < 0)
			return r;
		if (e->uenv_image ? (r = pack_str(pk, e->uenv_image)) < 0 :
		    msgpack_pack_nil(pk) != 0)
			return r < 0 ? r : -ENOMEM;
		if ((r = pack_str(pk, "alive")) < 0)
			return r;
		if ((e->alive ? msgpack_pack_true(pk) :
		    msgpack_pack_false(pk)) != 0)
			return -ENOMEM;
	}
	return 0;
}

static int
pack_strarr(msgpack_packer *pk, const struct strarr *sa)
{
	uint32_t i;
	int r;

	if (sa->n > MSG_MAX_ARR)
		return -PROTO_ELIMIT;
	if (msgpack_pack_array(pk, sa->n) != 0)
		return -ENOMEM;
	for (i = 0; i < sa->n; i++) {
		if (sa->v[i] == NULL)
			return -EINVAL;
		if ((r = pack_str(pk, sa->v[i])) < 0)
			return r;
	}
	return 0;
}

static int
pack_field(msgpack_packer *pk, const struct field *f, const void *p)
{
	const struct bin *b;
	int r = 0;

	switch (f->kind) {
	case K_U16:
		r = msgpack_pack_uint16(pk, *(const uint16_t *)p);
		break;
	case K_U32:
		r = msgpack_pack_uint32(pk, *(const uint32_t *)p);
		break;
	case K_U64:
	case K_OU64:
		r = msgpack_pack_uint64(pk, *(const uint64_t *)p);
		break;
	case K_OPTU64:
		r = msgpack_pack_uint64(pk, ((const struct optu64 *)p)->v);
		break;
	case K_BOOL:
		r = *(const bool *)p ? msgpack_pack_true(pk) :
		    msgpack_pack_false(pk);
		break;
	case K_STR:
	case K_NSTR:
		if (*(const char *const *)p != NULL)
			return pack_str(pk, *(const char *const *)p);
		if (f->kind == K_STR)
			return -EINVAL;
		r = msgpack_pack_nil(pk);
		break;
	case K_BIN:
		b = p;
		if (b->len > MSG_MAX_BIN)
			return -PROTO_ELIMIT;
		if (b->len > 0 && b->p == NULL)
			return -EINVAL;
		/* No body call for 0 bytes: p may be NULL (memcpy). */
		if (msgpack_pack_bin(pk, b->len) != 0 || (b->len > 0 &&
		    msgpack_pack_bin_body(pk, b->p, b->len) != 0))
			return -ENOMEM;
		break;
	case K_STRARR:
		return pack_strarr(pk, p);
	case K_NSLIST:
		return pack_nslist(pk, p);
	}
	return r != 0 ? -ENOMEM : 0;
}

int
msg_encode(const struct msg *m, uint8_t **ret_buf, size_t *ret_len)
{
	const struct desc *d;
	const struct field *fs;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t i, n, k;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if ((d = desc_of(m->type)) == NULL) {
		r = -PROTO_ETYPE;
		goto out;
	}
	fs = d->fields(&n);
	/* An OPTU64 that is not set is left out of the map. */
	for (i = 0, k = 0; i < n; i++)
		k += fs[i].kind != K_OPTU64 ||
		    ((const struct optu64 *)((const char *)&m->u + fs[i].off))->set;
	if (msgpack_pack_map(&pk, k) != 0) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (fs[i].kind == K_OPTU64 && !((const struct optu64 *)
		    ((const char *)&m->u + fs[i].off))->set)
			continue;
		if ((r = pack_str(&pk, fs[i].key)) < 0)
			goto out;
		r = pack_field(&pk, &fs[i], (const char *)&m->u + fs[i].off);
		if (r < 0)
			goto out;
	}
	*ret_len = sb.size;
	*ret_buf = (uint8_t *)msgpack_sbuffer_release(&sb);
	r = 0;
out:
	msgpack_sbuffer_destroy(&sb);
	return r;
}

/* ------------------------------------------------------------------ */
/* Decoding: a strict reader for the msgpack subset we accept. */

struct rd {
	const uint8_t *p;
	size_t left;
};

static int
rd_bytes(struct rd *r, size_t n, const uint8_t **ret_p)
{
	if (r->left < n)
		return -PROTO_ETRUNC;
	*ret_p = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

/* Read an n-byte big-endian unsigned integer (n <= 8). */
static int
rd_be(struct rd *r, size_t n, uint64_t *ret_v)
{
	const uint8_t *p;
	uint64_t v = 0;
	size_t i;
	int e;

	if ((e = rd_bytes(r, n, &p)) < 0)
		return e;
	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	*ret_v = v;
	return 0;
}

/*
 * Read a length-prefixed header of one of the given family: fix range
 * (fixlo..fixlo+fixmask), then 8/16/32-bit forms at t8/t16/t32 (0 = that
 * form does not exist).  Returns 1 if the tag belongs to the family.
 */
struct family {
	uint8_t fixlo, fixmask, t8, t16, t32;
};

static const struct family FAM_STR = { 0xa0, 0x1f, 0xd9, 0xda, 0xdb };
static const struct family FAM_BIN = { 0, 0, 0xc4, 0xc5, 0xc6 };
static const struct family FAM_ARR = { 0x90, 0x0f, 0, 0xdc, 0xdd };
static const struct family FAM_MAP = { 0x80, 0x0f, 0, 0xde, 0xdf };

static int
rd_len(struct rd *r, uint8_t tag, const struct family *fam, uint64_t *ret_n)
{
	if (fam->fixmask != 0 && (tag & ~fam->fixmask) == fam->fixlo) {
		*ret_n = tag & fam->fixmask;
		return 1;
	}
	if (fam->t8 != 0 && tag == fam->t8)
		return rd_be(r, 1, ret_n) < 0 ? -PROTO_ETRUNC : 1;
	if (tag == fam->t16)
		return rd_be(r, 2, ret_n) < 0 ? -PROTO_ETRUNC : 1;
	if (tag == fam->t32)
		return rd_be(r, 4, ret_n) < 0 ? -PROTO_ETRUNC : 1;
	return 0;
}

static int
rd_tag(struct rd *r, uint8_t *ret_tag)
{
	const uint8_t *p;
	int e;

	if ((e = rd_bytes(r, 1, &p)) < 0)
		return e;
	*ret_tag = *p;
	return 0;
}

/* An unsigned integer in any integer encoding; negatives are EVALTYPE. */
static int
rd_uint(struct rd *r, uint64_t *ret_v)
{
	uint64_t v;
	uint8_t tag;
	int e;

	if ((e = rd_tag(r, &tag)) < 0)
		return e;
	if (tag <= 0x7f) {
		*ret_v = tag;
		return 0;
	}
	if (tag >= 0xe0)
		return -PROTO_EVALTYPE;
	switch (tag) {
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		if ((e = rd_be(r, (size_t)1 << (tag - 0xcc), &v)) < 0)
			return e;
		break;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
		size_t n = (size_t)1 << (tag - 0xd0);

		/* Signed forms are fine when the value is not negative. */
		if ((e = rd_be(r, n, &v)) < 0)
			return e;
		if (v >> (n * 8 - 1))
			return -PROTO_EVALTYPE;
		break;
	}
	default:
		return -PROTO_EVALTYPE;
	}
	*ret_v = v;
	return 0;
}

/*
 * A string (not bin) of at most MSG_MAX_STR bytes without NUL, returned
 * as a view into the body.  Limit first so that a huge declared length
 * is ELIMIT, then presence (ETRUNC).
 */
static int
rd_strview(struct rd *r, uint8_t tag, const uint8_t **ret_p, size_t *ret_n)
{
	uint64_t n;
	int e;

	if ((e = rd_len(r, tag, &FAM_STR, &n)) <= 0)
		return e < 0 ? e : -PROTO_EVALTYPE;
	if (n > MSG_MAX_STR)
		return -PROTO_ELIMIT;
	if ((e = rd_bytes(r, n, ret_p)) < 0)
		return e;
	if (memchr(*ret_p, '\0', n) != NULL)
		return -PROTO_EVALTYPE;
	*ret_n = n;
	return 0;
}

static int
rd_str(struct rd *r, uint8_t tag, const char **ret_s)
{
	const uint8_t *p;
	size_t n;
	char *s;
	int e;

	if ((e = rd_strview(r, tag, &p, &n)) < 0)
		return e;
	if ((s = malloc(n + 1)) == NULL)
		return -ENOMEM;
	memcpy(s, p, n);
	s[n] = '\0';
	*ret_s = s;
	return 0;
}

static int
rd_strarr(struct rd *r, uint8_t tag, struct strarr *ret_sa)
{
	const char **v = NULL;
	uint64_t n, i;
	uint8_t t;
	int e;

	if ((e = rd_len(r, tag, &FAM_ARR, &n)) <= 0)
		return e < 0 ? e : -PROTO_EVALTYPE;
	if (n > MSG_MAX_ARR)
		return -PROTO_ELIMIT;
	/* Each element takes at least one byte. */
	if (n > r->left)
		return -PROTO_ETRUNC;
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if ((e = rd_tag(r, &t)) < 0 || (e = rd_str(r, t, &v[i])) < 0)
			goto fail;
	}
	ret_sa->n = (uint32_t)n;
	ret_sa->v = v;
	return 0;
fail:
	for (i = 0; i < n; i++)
		free((char *)v[i]);
	free(v);
	return e;
}

static void
free_strarr(struct strarr *sa)
{
	uint32_t j;

	for (j = 0; j < sa->n; j++)
		free((char *)sa->v[j]);
	free(sa->v);
	sa->v = NULL;
	sa->n = 0;
}

static void
free_nslist(struct nslist *l)
{
	struct nslist_entry *v = (struct nslist_entry *)l->v;
	uint32_t i;

	for (i = 0; i < l->n; i++) {
		free((char *)v[i].allocation_id);
		free((char *)v[i].uenv_image);
		free_strarr(&v[i].namespaces);
	}
	free(v);
	l->v = NULL;
	l->n = 0;
}

static int rd_skip(struct rd *r);

/*
 * One NS_LIST_REPLY entry: a map with allocation_id, namespaces,
 * uenv_image (nil allowed) and alive; unknown keys skipped, a repeated
 * or missing known key refused.
 */
static int
rd_nsentry(struct rd *r, struct nslist_entry *e)
{
	static const char *const keys[] = { "allocation_id", "namespaces",
	    "uenv_image", "alive" };
	const uint8_t *key;
	uint64_t npairs, k;
	unsigned seen = 0, i;
	size_t keylen;
	uint8_t tag;
	int err;

	if ((err = rd_tag(r, &tag)) < 0)
		return err;
	if ((err = rd_len(r, tag, &FAM_MAP, &npairs)) <= 0)
		return err < 0 ? err : -PROTO_EVALTYPE;
	if (npairs > r->left / 2)
		return -PROTO_ETRUNC;
	for (k = 0; k < npairs; k++) {
		if ((err = rd_tag(r, &tag)) < 0 ||
		    (err = rd_strview(r, tag, &key, &keylen)) < 0)
			return err;
		for (i = 0; i < 4; i++)
			if (strlen(keys[i]) == keylen &&
			    memcmp(keys[i], key, keylen) == 0)
				break;
		if (i == 4) {
			if ((err = rd_skip(r)) < 0)
				return err;
			continue;
		}
		if (seen & (1u << i))
			return -PROTO_EVALTYPE;
		seen |= 1u << i;
		if ((err = rd_tag(r, &tag)) < 0)
			return err;
		switch (i) {
		case 0:
			err = rd_str(r, tag, &e->allocation_id);
			break;
		case 1:
			err = rd_strarr(r, tag, &e->namespaces);
			break;
		case 2:
			err = tag == 0xc0 ? 0 : rd_str(r, tag, &e->uenv_image);
			break;
		default:
			if (tag != 0xc2 && tag != 0xc3)
				return -PROTO_EVALTYPE;
			e->alive = tag == 0xc3;
			break;
		}
		if (err < 0)
			return err;
	}
	return (seen | 4u) == 15u ? 0 : -PROTO_EMISSING;
}

static int
rd_nslist(struct rd *r, uint8_t tag, struct nslist *ret_l)
{
	struct nslist l = { 0, NULL };
	struct nslist_entry *v = NULL;
	uint64_t n, i;
	int e;

	if ((e = rd_len(r, tag, &FAM_ARR, &n)) <= 0)
		return e < 0 ? e : -PROTO_EVALTYPE;
	if (n > MSG_MAX_LIST)
		return -PROTO_ELIMIT;
	/* Each entry takes at least one byte. */
	if (n > r->left)
		return -PROTO_ETRUNC;
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL)
		return -ENOMEM;
	l.v = v;
	for (i = 0; i < n; i++) {
		l.n = (uint32_t)i + 1;
		if ((e = rd_nsentry(r, &v[i])) < 0) {
			free_nslist(&l);
			return e;
		}
	}
	l.n = (uint32_t)n;
	*ret_l = l;
	return 0;
}

static int
rd_bin(struct rd *r, uint8_t tag, struct bin *ret_b)
{
	const uint8_t *p;
	uint8_t *copy = NULL;
	uint64_t n;
	int e;

	if ((e = rd_len(r, tag, &FAM_BIN, &n)) <= 0)
		return e < 0 ? e : -PROTO_EVALTYPE;
	if (n > MSG_MAX_BIN)
		return -PROTO_ELIMIT;
	if ((e = rd_bytes(r, n, &p)) < 0)
		return e;
	if (n > 0) {
		if ((copy = malloc(n)) == NULL)
			return -ENOMEM;
		memcpy(copy, p, n);
	}
	ret_b->len = (uint32_t)n;
	ret_b->p = copy;
	return 0;
}

/*
 * Skip one value of any kind.  Containers add their elements to a
 * pending count instead of recursing, so nesting depth costs nothing;
 * a count larger than the bytes left is truncation, found before any
 * loop over it.
 */
static int
rd_skip(struct rd *r)
{
	uint64_t pending = 1, n;
	const uint8_t *p;
	uint8_t tag;
	int e;

	while (pending > 0) {
		pending--;
		if ((e = rd_tag(r, &tag)) < 0)
			return e;
		if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 ||
		    tag == 0xc2 || tag == 0xc3)
			continue;
		if ((e = rd_len(r, tag, &FAM_STR, &n)) != 0 ||
		    (e = rd_len(r, tag, &FAM_BIN, &n)) != 0) {
			if (e < 0 || (e = rd_bytes(r, n, &p)) < 0)
				return e;
			continue;
		}
		if ((e = rd_len(r, tag, &FAM_ARR, &n)) != 0 ||
		    (e = rd_len(r, tag, &FAM_MAP, &n)) != 0) {
			if (e < 0)
				return e;
			if ((tag & 0xf0) == 0x80 || tag == 0xde || tag == 0xdf)
				n *= 2;
			pending += n;
			if (pending > r->left)
				return -PROTO_ETRUNC;
			continue;
		}
		switch (tag) {
		case 0xcc: case 0xd0: n = 1; break;
		case 0xcd: case 0xd1: n = 2; break;
		case 0xce: case 0xd2: case 0xca: n = 4; break;
		case 0xcf: case 0xd3: case 0xcb: n = 8; break;
		case 0xd4: n = 2; break;	/* fixext: type byte + data */
		case 0xd5: n = 3; break;
		case 0xd6: n = 5; break;
		case 0xd7: n = 9; break;
		case 0xd8: n = 17; break;
		case 0xc7: case 0xc8: case 0xc9:
			if ((e = rd_be(r, (size_t)1 << (tag - 0xc7), &n)) < 0)
				return e;
			n += 1;		/* the ext type byte */
			break;
		default:		/* 0xc1, never used */
			return -PROTO_EVALTYPE;
		}
		if ((e = rd_bytes(r, n, &p)) < 0)
			return e;
	}
	return 0;
}

static int
rd_field(struct rd *r, const struct field *f, void *p)
{
	uint64_t v;
	uint8_t tag;
	int e;

	switch (f->kind) {
	case K_OPTU64:
		if ((e = rd_uint(r, &v)) < 0)
			return e;
		((struct optu64 *)p)->set = true;
		((struct optu64 *)p)->v = v;
		return 0;
	case K_U16:
	case K_U32:
	case K_U64:
	case K_OU64:
		if ((e = rd_uint(r, &v)) < 0)
			return e;
		if (f->kind == K_U16) {
			if (v > UINT16_MAX)
				return -PROTO_EVALTYPE;
			*(uint16_t *)p = (uint16_t)v;
		} else if (f->kind == K_U32) {
			if (v > UINT32_MAX)
				return -PROTO_EVALTYPE;
			*(uint32_t *)p = (uint32_t)v;
		} else {
			*(uint64_t *)p = v;
		}
		return 0;
	default:
		break;
	}
	if ((e = rd_tag(r, &tag)) < 0)
		return e;
	switch (f->kind) {
	case K_BOOL:
		if (tag != 0xc2 && tag != 0xc3)
			return -PROTO_EVALTYPE;
		*(bool *)p = tag == 0xc3;
		return 0;
	case K_NSTR:
		if (tag == 0xc0) {
			*(const char **)p = NULL;
			return 0;
		}
		/* FALLTHROUGH */
	case K_STR:
		return rd_str(r, tag, (const char **)p);
	case K_BIN:
		return rd_bin(r, tag, p);
	case K_STRARR:
		return rd_strarr(r, tag, p);
	case K_NSLIST:
		return rd_nslist(r, tag, p);
	default:
		return -PROTO_EVALTYPE;
	}
}

static void
free_fields(const struct desc *d, struct msg *m)
{
	const struct field *fs;
	size_t i, n;
	void *p;

	fs = d->fields(&n);
	for (i = 0; i < n; i++) {
		p = (char *)&m->u + fs[i].off;
		switch (fs[i].kind) {
		case K_STR:
		case K_NSTR:
			free(*(char **)p);
			*(char **)p = NULL;
			break;
		case K_BIN:
			free((void *)((struct bin *)p)->p);
			((struct bin *)p)->p = NULL;
			((struct bin *)p)->len = 0;
			break;
		case K_STRARR:
			free_strarr(p);
			break;
		case K_NSLIST:
			free_nslist(p);
			break;
		default:
			break;
		}
	}
}

int
msg_decode(uint16_t type, const uint8_t *body, size_t len,
    struct msg *ret_m)
{
	struct rd r = { body, len };
	const struct field *fs;
	const struct desc *d;
	const uint8_t *key;
	struct msg m;
	uint64_t npairs, k, seen = 0, need;
	size_t i, n, keylen;
	uint8_t tag;
	int e;

	memset(&m, 0, sizeof(m));
	m.type = type;
	if ((d = desc_of(type)) == NULL)
		return -PROTO_ETYPE;
	fs = d->fields(&n);

	if ((e = rd_tag(&r, &tag)) < 0)
		goto fail;
	if ((e = rd_len(&r, tag, &FAM_MAP, &npairs)) <= 0) {
		e = e < 0 ? e : -PROTO_ENOTMAP;
		goto fail;
	}
	/* A pair takes at least two bytes: refuse absurd counts early. */
	if (npairs > r.left / 2) {
		e = -PROTO_ETRUNC;
		goto fail;
	}
	for (k = 0; k < npairs; k++) {
		if ((e = rd_tag(&r, &tag)) < 0)
			goto fail;
		if ((e = rd_strview(&r, tag, &key, &keylen)) < 0) {
			/* A key that is no string makes this no map of ours. */
			if (e == -PROTO_EVALTYPE)
				e = -PROTO_ENOTMAP;
			goto fail;
		}
		for (i = 0; i < n; i++)
			if (fs[i].keylen == keylen &&
			    memcmp(fs[i].key, key, keylen) == 0)
				break;
		if (i == n) {
			if ((e = rd_skip(&r)) < 0)
				goto fail;
			continue;
		}
		if (seen & (UINT64_C(1) << i)) {
			e = -PROTO_EVALTYPE;	/* duplicate key */
			goto fail;
		}
		if ((e = rd_field(&r, &fs[i], (char *)&m.u + fs[i].off)) < 0)
			goto fail;
		seen |= UINT64_C(1) << i;
	}
	if (r.left > 0) {
		e = -PROTO_ETRAILING;
		goto fail;
	}
	need = 0;
	for (i = 0; i < n; i++)
		if (fs[i].kind != K_NSTR && fs[i].kind != K_OU64 &&
		    fs[i].kind != K_OPTU64)
			need |= UINT64_C(1) << i;
	if ((seen & need) != need) {
		e = -PROTO_EMISSING;
		goto fail;
	}
	*ret_m = m;
	return 0;
fail:
	free_fields(d, &m);
	return e;
}

void
msg_free(struct msg *m)
{
	const struct desc *d;

	if (m == NULL || (d = desc_of(m->type)) == NULL)
		return;
	free_fields(d, m);
}

static bool
str_equal(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

static bool
nslist_equal(const struct nslist *a, const struct nslist *b)
{
	uint32_t i, j;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		const struct nslist_entry *x = &a->v[i], *y = &b->v[i];

		if (!str_equal(x->allocation_id, y->allocation_id) ||
		    !str_equal(x->uenv_image, y->uenv_image) ||
		    x->alive != y->alive ||
		    x->namespaces.n != y->namespaces.n)
			return false;
		for (j = 0; j < x->namespaces.n; j++)
			if (strcmp(x->namespaces.v[j], y->namespaces.v[j]) != 0)
				return false;
	}
	return true;
}

bool
msg_equal(const struct msg *a, const struct msg *b)
{
	const struct field *fs;
	const struct desc *d;
	const void *pa, *pb;
	const char *sa, *sb;
	const struct strarr *aa, *ab;
	const struct bin *ba, *bb;
	size_t i, n;
	uint32_t j;

	if (a->type != b->type || (d = desc_of(a->type)) == NULL)
		return false;
	fs = d->fields(&n);
	for (i = 0; i < n; i++) {
		pa = (const char *)&a->u + fs[i].off;
		pb = (const char *)&b->u + fs[i].off;
		switch (fs[i].kind) {
		case K_U16:
			if (*(const uint16_t *)pa != *(const uint16_t *)pb)
				return false;
			break;
		case K_U32:
			if (*(const uint32_t *)pa != *(const uint32_t *)pb)
				return false;
			break;
		case K_U64:
		case K_OU64:
			if (*(const uint64_t *)pa != *(const uint64_t *)pb)
				return false;
			break;
		case K_OPTU64:
			if (((const struct optu64 *)pa)->set !=
			    ((const struct optu64 *)pb)->set ||
			    (((const struct optu64 *)pa)->set &&
			    ((const struct optu64 *)pa)->v !=
			    ((const struct optu64 *)pb)->v))
				return false;
			break;
		case K_BOOL:
			if (*(const bool *)pa != *(const bool *)pb)
				return false;
			break;
		case K_STR:
		case K_NSTR:
			sa = *(const char *const *)pa;
			sb = *(const char *const *)pb;
			if ((sa == NULL) != (sb == NULL) ||
			    (sa != NULL && strcmp(sa, sb) != 0))
				return false;
			break;
		case K_BIN:
			ba = pa;
			bb = pb;
			if (ba->len != bb->len || (ba->len > 0 &&
			    memcmp(ba->p, bb->p, ba->len) != 0))
				return false;
			break;
		case K_STRARR:
			aa = pa;
			ab = pb;
			if (aa->n != ab->n)
				return false;
			for (j = 0; j < aa->n; j++)
				if (strcmp(aa->v[j], ab->v[j]) != 0)
					return false;
			break;
		case K_NSLIST:
			if (!nslist_equal(pa, pb))
				return false;
			break;
		}
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Semantic checks */

static bool
idchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool
msg_allocation_id_ok(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= 128 || !idchar(s[i]))
			return false;
	return true;
}

bool
msg_uenv_image_ok(const char *s)
{
	size_t n;

	/* The charset has no '/', so an id-shaped name is a plain name. */
	if (!msg_allocation_id_ok(s))
		return false;
	n = strlen(s);
	return n > 5 && strcmp(s + n - 5, ".sqfs") == 0;
}

bool
msg_uuid_ok(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;	/* also stops at an early NUL */
		}
	}
	return s[36] == '\0';
}

const char *const msg_ns_kind_names[MSG_NS_KINDS] = { "pid", "net", "mount" };

int
msg_ns_kind_parse(const char *name)
{
	int k;

	for (k = 0; k < MSG_NS_KINDS; k++)
		if (strcmp(name, msg_ns_kind_names[k]) == 0)
			return k;
	return -1;
}

/* A non-empty set of namespace names without repeats. */
static bool
nsset_ok(const struct strarr *sa)
{
	unsigned seen = 0, bit;
	uint32_t i;
	int k;

	if (sa->n == 0)
		return false;
	for (i = 0; i < sa->n; i++) {
		if ((k = msg_ns_kind_parse(sa->v[i])) < 0)
			return false;
		bit = 1u << k;
		if (seen & bit)
			return false;
		seen |= bit;
	}
	return true;
}

static bool
ns_has(const struct strarr *sa, const char *name)
{
	uint32_t i;

	for (i = 0; i < sa->n; i++)
		if (strcmp(sa->v[i], name) == 0)
			return true;
	return false;
}

static bool
ns_error_kind_ok(const char *s)
{
	static const char *const kinds[] = {
		"invalid_request", "creation_failed", "allocation_not_found",
		"fd_passing", "unsupported_version", "limit_exceeded",
		"too_old",
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(s, kinds[i]) == 0)
			return true;
	return false;
}

static const char *
nslist_check(const struct nslist *l)
{
	uint32_t i;

	for (i = 0; i < l->n; i++) {
		if (!msg_allocation_id_ok(l->v[i].allocation_id))
			return "allocations: bad allocation_id";
		if (!nsset_ok(&l->v[i].namespaces))
			return "allocations: bad namespaces";
		if (l->v[i].uenv_image && !msg_uenv_image_ok(l->v[i].uenv_image))
			return "allocations: bad uenv_image";
	}
	return NULL;
}

/*
 * Checks keyed by field name, so that every message carrying a
 * handoff_id or allocation_id is checked the same way.  NSTR fields are
 * only checked when present.
 */
static const char *
check_field(const struct field *f, const void *p)
{
	const char *s = NULL;

	if (f->kind == K_STR || f->kind == K_NSTR) {
		s = *(const char *const *)p;
		if (s == NULL)
			return NULL;
	}
	if (strcmp(f->key, "handoff_id") == 0 && !msg_uuid_ok(s))
		return "handoff_id is not a canonical lower-case UUID";
	if (strcmp(f->key, "allocation_id") == 0 && !msg_allocation_id_ok(s))
		return "allocation_id is not 1-128 of [A-Za-z0-9._-] "
		    "starting with no '.'";
	if (strcmp(f->key, "uenv_image") == 0 && !msg_uenv_image_ok(s))
		return "uenv_image is not a plain file name ending in .sqfs";
	if (strcmp(f->key, "namespaces") == 0 && !nsset_ok(p))
		return "namespaces is not a non-empty set of pid, net, mount";
	if (strcmp(f->key, "fd_types") == 0 && !nsset_ok(p))
		return "fd_types is not a non-empty set of pid, net, mount";
	if (f->kind == K_NSLIST)
		return nslist_check(p);
	if (strcmp(f->key, "state_digest") == 0 &&
	    ((const struct bin *)p)->len > 64)
		return "state_digest is longer than 64 bytes";
	return NULL;
}

int
msg_validate(const struct msg *m, const char **ret_why)
{
	const struct field *fs;
	const struct desc *d;
	const char *why = NULL;
	size_t i, n;

	if ((d = desc_of(m->type)) == NULL) {
		why = "unknown message type";
		goto out;
	}
	fs = d->fields(&n);
	for (i = 0; i < n && why == NULL; i++)
		why = check_field(&fs[i], (const char *)&m->u + fs[i].off);
	if (why != NULL)
		goto out;
	switch (m->type) {
	case MSG_HELLO:
		if (strcmp(m->u.HELLO.role, "incumbent") != 0 &&
		    strcmp(m->u.HELLO.role, "successor") != 0)
			why = "role is neither incumbent nor successor";
		else if (m->u.HELLO.proto_min > m->u.HELLO.proto_max)
			why = "proto_min is above proto_max";
		break;
	case MSG_NS_ERROR:
		if (!ns_error_kind_ok(m->u.NS_ERROR.kind))
			why = "kind is not an error kind of SPEC 5";
		break;
	case MSG_NS_REQUEST:
		if (m->u.NS_REQUEST.uenv_image &&
		    !ns_has(&m->u.NS_REQUEST.namespaces, "mount"))
			why = "uenv_image needs the mount namespace";
		break;
	default:
		break;
	}
out:
	if (ret_why != NULL)
		*ret_why = why;
	return why == NULL ? 0 : -PROTO_EINVAL;
}
