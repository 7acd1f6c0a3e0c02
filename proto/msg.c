/*
 * msg: message bodies generated from messages.def.
 *
 * Every message gets one field descriptor table (kind, key, offset into
 * its union member, proto/msgdesc.h); encode, decode, free, compare and
 * validate all walk that table, so a new message or field is one line in
 * messages.def.  This file holds the generated tables and type names, the
 * encoder (msgpack-c's packer) and msg_equal(); the strict decoder and
 * msg_free() are msgdecode.c, msg_validate() is msgcheck.c.
 *
 * Invariants: msg_encode() and msg_equal() only read the message they are
 * given; every catalogue type has exactly one descriptor, and a type not
 * in the catalogue has none (msg_desc_of() returns NULL).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/msgdesc.h"

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
	typedef msg_##NAME##_t body_t __attribute__((unused));	\
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

const struct desc *
msg_desc_of(uint16_t type)
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
	const struct desc *d = msg_desc_of(type);

	return d != NULL ? d->name : NULL;
}

bool
msg_type_known(uint16_t type)
{
	return msg_desc_of(type) != NULL;
}

bool
msg_type_wire(uint16_t type)
{
	return type < MSG_TYPE_DISK_MIN && msg_desc_of(type) != NULL;
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
	if ((d = msg_desc_of(m->type)) == NULL) {
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

	if (a->type != b->type || (d = msg_desc_of(a->type)) == NULL)
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

