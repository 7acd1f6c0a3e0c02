/*
 * msgdecode: msg_decode() and msg_free(), the strict reader of message
 * bodies.  It does not use msgpack-c's unpacker: that one sizes its
 * allocations from the lengths a peer declares.  Instead a small reader
 * walks the subset we accept and allocates only for fields it keeps,
 * after checking the field's limit and that the declared bytes are really
 * there.  Values under unknown keys are skipped without recursion or
 * allocation.
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

#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/msgdesc.h"

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
	if ((d = msg_desc_of(type)) == NULL)
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

	if (m == NULL || (d = msg_desc_of(m->type)) == NULL)
		return;
	free_fields(d, m);
}
