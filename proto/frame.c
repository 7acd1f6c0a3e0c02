/*
 * frame: the 16-byte big-endian frame header of SPEC §3, whole-frame
 * encoding, the received-frame container, version negotiation and the
 * text/wire names of every decoder error.
 *
 * Invariants: frame_header_decode checks magic, version, type, body
 * length, nfds and flags in that order and always fills the header, so
 * the first failing check decides the code and the caller can name the
 * bad value; a struct frame owns every fd slot that is >= 0 and
 * frame_release leaves it as frame_init did.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bytes.h"
#include "proto/frame.h"

static const struct {
	const char *text;
	const char *code;
} proto_errs[PROTO_ERR_END - PROTO_EMAGIC] = {
#define E(c, text, code) [PROTO_##c - PROTO_EMAGIC] = { text, code },
	E(EMAGIC, "bad magic", "bad_magic")
	E(EVERSION, "unsupported protocol version", "unsupported_version")
	E(ETYPE, "unknown or unexpected message type", "unknown_type")
	E(ETOOBIG, "frame body too big", "too_big")
	E(ETRUNC, "truncated frame", "truncated")
	E(ETRAILING, "trailing bytes after the body", "trailing_bytes")
	E(ENOTMAP, "body is not a map with string keys", "not_map")
	E(EVALTYPE, "value of the wrong type or out of range", "bad_value")
	E(EMISSING, "required key missing", "missing_key")
	E(ENFDS, "wrong number of file descriptors", "bad_nfds")
	E(EFLAGS, "non-zero frame flags", "bad_flags")
	E(ELIMIT, "string, bin or array over its limit", "limit")
	E(EINVAL, "invalid message", "invalid")
	E(ENOVERSION, "no common protocol version", "no_common_version")
#undef E
};

const char *
proto_strerror(int err)
{
	const char *s;

	if (err < 0)
		err = -err;
	if (err >= PROTO_EMAGIC && err < PROTO_ERR_END)
		return proto_errs[err - PROTO_EMAGIC].text;
	/* strerrordesc_np: static text, no locale, thread-safe. */
	s = err == 0 ? "success" : strerrordesc_np(err);
	return s != NULL ? s : "unknown error";
}

const char *
proto_errcode(int err)
{
	if (err < 0)
		err = -err;
	if (err >= PROTO_EMAGIC && err < PROTO_ERR_END)
		return proto_errs[err - PROTO_EMAGIC].code;
	switch (err) {
	case ETIMEDOUT:
		return "timeout";
	case ENOMEM:
		return "no_memory";
	default:
		return "internal_error";
	}
}

void
frame_header_encode(const struct frame_header *h,
    uint8_t out[FRAME_HEADER_SIZE])
{
	be_put32(out, h->magic);
	be_put16(out + 4, h->version);
	be_put16(out + 6, h->type);
	be_put32(out + 8, h->body_len);
	be_put16(out + 12, h->nfds);
	be_put16(out + 14, h->flags);
}

int
frame_header_decode(const uint8_t in[FRAME_HEADER_SIZE],
    struct frame_header *ret_h)
{
	struct frame_header h;

	h.magic = be_get32(in);
	h.version = be_get16(in + 4);
	h.type = be_get16(in + 6);
	h.body_len = be_get32(in + 8);
	h.nfds = be_get16(in + 12);
	h.flags = be_get16(in + 14);
	*ret_h = h;
	if (h.magic != FRAME_MAGIC)
		return -PROTO_EMAGIC;
	if (h.version < PROTO_VERSION_MIN || h.version > PROTO_VERSION_MAX)
		return -PROTO_EVERSION;
	if (!msg_type_wire(h.type))
		return -PROTO_ETYPE;
	if (h.body_len > FRAME_MAX_BODY)
		return -PROTO_ETOOBIG;
	if (h.nfds > FRAME_MAX_FDS)
		return -PROTO_ENFDS;
	if (h.flags != 0)
		return -PROTO_EFLAGS;
	return 0;
}

int
frame_encode(const struct msg *m, unsigned nfds, uint8_t **ret_buf,
    size_t *ret_len)
{
	struct frame_header h;
	uint8_t *body = NULL, *buf = NULL;
	size_t len;
	int r;

	/* Refuse here what the peer's header decode would refuse. */
	if (!msg_type_wire(m->type))
		return -PROTO_ETYPE;
	if (nfds > FRAME_MAX_FDS)
		return -PROTO_ENFDS;
	if ((r = msg_encode(m, &body, &len)) < 0)
		goto out;
	if (len > FRAME_MAX_BODY) {
		r = -PROTO_ETOOBIG;
		goto out;
	}
	if ((buf = malloc(FRAME_HEADER_SIZE + len)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	h.magic = FRAME_MAGIC;
	h.version = PROTO_VERSION_MAX;
	h.type = m->type;
	h.body_len = (uint32_t)len;
	h.nfds = (uint16_t)nfds;
	h.flags = 0;
	frame_header_encode(&h, buf);
	memcpy(buf + FRAME_HEADER_SIZE, body, len);
	*ret_buf = buf;
	*ret_len = FRAME_HEADER_SIZE + len;
	buf = NULL;
	r = 0;
out:
	free(body);
	free(buf);
	return r;
}

void
frame_init(struct frame *f)
{
	unsigned i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < FRAME_MAX_FDS; i++)
		f->fds[i] = -1;
}

int
frame_take_fd(struct frame *f, unsigned i)
{
	int fd;

	if (i >= FRAME_MAX_FDS)
		return -EBADF;
	fd = f->fds[i];
	f->fds[i] = -1;
	return fd >= 0 ? fd : -EBADF;
}

void
frame_release(struct frame *f)
{
	unsigned i;

	msg_free(&f->m);
	for (i = 0; i < FRAME_MAX_FDS; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	frame_init(f);
}

int
proto_negotiate(uint16_t amin, uint16_t amax, uint16_t bmin,
    uint16_t bmax, uint16_t *ret_version)
{
	uint16_t lo = amin > bmin ? amin : bmin;
	uint16_t hi = amax < bmax ? amax : bmax;

	if (amin > amax || bmin > bmax || lo > hi)
		return -PROTO_ENOVERSION;
	*ret_version = hi;
	return 0;
}
