/*
 * mpread: a bounded cursor over msgpack bytes (see mpread.h).
 */
#include <errno.h>

#include "proto/mpread.h"

void
mpread_init(struct mpread *c, const void *buf, size_t len)
{
	c->p = buf;
	c->end = c->p + len;
}

size_t
mpread_left(const struct mpread *c)
{
	return (size_t)(c->end - c->p);
}

/* Big-endian n-byte unsigned at p (n <= 8). */
static uint64_t
be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

/*
 * The header at the cursor when its first byte is in [fix, fix + fixn)
 * (the count in its low bits) or one of the 8/16/32-bit forms at b8, b16,
 * b32 (0 where the family has none): *ret_n, and the header's size in
 * *ret_hdr.  0 or -EBADMSG; nothing consumed.
 */
static int
header(const struct mpread *c, uint8_t fix, uint8_t fixn, uint8_t b8,
    uint8_t b16, uint8_t b32, uint32_t *ret_n, unsigned *ret_hdr)
{
	size_t left = mpread_left(c);
	unsigned w;
	uint8_t b;

	if (left < 1)
		return -EBADMSG;
	b = c->p[0];
	if (b >= fix && b < fix + fixn) {
		*ret_n = b - fix;
		*ret_hdr = 1;
		return 0;
	}
	if (b8 && b == b8)
		w = 1;
	else if (b == b16)
		w = 2;
	else if (b == b32)
		w = 4;
	else
		return -EBADMSG;
	if (left < 1 + (size_t)w)
		return -EBADMSG;
	*ret_n = (uint32_t)be(c->p + 1, w);
	*ret_hdr = 1 + w;
	return 0;
}

/* A container of n headers' worth of values, each at least one byte. */
static int
container(struct mpread *c, uint8_t fix, uint8_t b16, uint8_t b32,
    unsigned per, uint32_t *ret_n)
{
	unsigned hdr;
	uint32_t n;

	if (header(c, fix, 16, 0, b16, b32, &n, &hdr) < 0 ||
	    (uint64_t)n * per > mpread_left(c) - hdr)
		return -EBADMSG;
	c->p += hdr;
	*ret_n = n;
	return 0;
}

int
mpread_map(struct mpread *c, uint32_t *ret_n)
{
	return container(c, 0x80, 0xde, 0xdf, 2, ret_n);
}

int
mpread_array(struct mpread *c, uint32_t *ret_n)
{
	return container(c, 0x90, 0xdc, 0xdd, 1, ret_n);
}

int
mpread_str(struct mpread *c, const char **ret_s, uint32_t *ret_len)
{
	unsigned hdr;
	uint32_t n;

	if (header(c, 0xa0, 32, 0xd9, 0xda, 0xdb, &n, &hdr) < 0 ||
	    n > mpread_left(c) - hdr)
		return -EBADMSG;
	*ret_s = (const char *)c->p + hdr;
	*ret_len = n;
	c->p += hdr + n;
	return 0;
}

int
mpread_u64(struct mpread *c, uint64_t *ret_v)
{
	size_t left = mpread_left(c);
	unsigned w;
	uint64_t v;
	uint8_t b;

	if (left < 1)
		return -EBADMSG;
	b = c->p[0];
	if (b <= 0x7f) {
		*ret_v = b;
		c->p++;
		return 0;
	}
	if (b >= 0xcc && b <= 0xd3)
		w = 1u << ((b - 0xcc) & 3);	/* uint/int 8, 16, 32, 64 */
	else
		return -EBADMSG;
	if (left < 1 + (size_t)w)
		return -EBADMSG;
	v = be(c->p + 1, w);
	/* A signed encoding counts when its value is not negative. */
	if (b >= 0xd0 && (v >> (8 * w - 1)) & 1)
		return -EBADMSG;
	*ret_v = v;
	c->p += 1 + w;
	return 0;
}

int
mpread_bool(struct mpread *c, int *ret_b)
{
	if (mpread_left(c) < 1 || (c->p[0] != 0xc2 && c->p[0] != 0xc3))
		return -EBADMSG;
	*ret_b = c->p[0] == 0xc3;
	c->p++;
	return 0;
}

int
mpread_nil(struct mpread *c)
{
	if (mpread_left(c) < 1 || c->p[0] != 0xc0)
		return -EBADMSG;
	c->p++;
	return 0;
}

/* The size of a value with no nested values (not array, not map). */
static int
flat_size(const struct mpread *c, size_t *ret)
{
	static const uint8_t fixext[] = { 1, 2, 4, 8, 16 };
	size_t left = mpread_left(c);
	uint8_t b = c->p[0];
	unsigned w;

	if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1)) {
		*ret = 1;	/* fixints, nil, bool */
		return 0;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		*ret = 1 + (size_t)(b & 0x1f);
		return 0;
	}
	if (b >= 0xcc && b <= 0xd3) {
		*ret = 1 + (1u << ((b - 0xcc) & 3));
		return 0;
	}
	if (b == 0xca || b == 0xcb) {
		*ret = b == 0xca ? 5 : 9;
		return 0;
	}
	if (b >= 0xd4 && b <= 0xd8) {
		*ret = 2 + (size_t)fixext[b - 0xd4];	/* type byte, data */
		return 0;
	}
	/* bin, str: 8/16/32-bit length; ext: the same plus a type byte. */
	if (b >= 0xc4 && b <= 0xc6)
		w = 1u << (b - 0xc4);
	else if (b >= 0xd9 && b <= 0xdb)
		w = 1u << (b - 0xd9);
	else if (b >= 0xc7 && b <= 0xc9)
		w = 1u << (b - 0xc7);
	else
		return -EBADMSG;	/* 0xc1: never used */
	if (left < 1 + (size_t)w)
		return -EBADMSG;
	*ret = 1 + w + (b >= 0xc7 && b <= 0xc9) + (size_t)be(c->p + 1, w);
	return 0;
}

static int
skip(struct mpread *c, unsigned depth)
{
	uint64_t i, n;
	uint32_t k;
	size_t sz;
	uint8_t b;

	if (mpread_left(c) < 1)
		return -EBADMSG;
	b = c->p[0];
	if ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf)) {
		if (depth >= MPREAD_MAX_DEPTH)
			return -EBADMSG;
		if ((b & 0xf0) == 0x80 || b >= 0xde) {
			if (mpread_map(c, &k) < 0)
				return -EBADMSG;
			n = 2 * (uint64_t)k;
		} else {
			if (mpread_array(c, &k) < 0)
				return -EBADMSG;
			n = k;
		}
		for (i = 0; i < n; i++)
			if (skip(c, depth + 1) < 0)
				return -EBADMSG;
		return 0;
	}
	if (flat_size(c, &sz) < 0 || sz > mpread_left(c))
		return -EBADMSG;
	c->p += sz;
	return 0;
}

int
mpread_skip(struct mpread *c)
{
	const uint8_t *at = c->p;

	if (skip(c, 0) < 0) {
		c->p = at;
		return -EBADMSG;
	}
	return 0;
}
