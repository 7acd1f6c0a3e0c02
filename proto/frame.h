/*
 * frame: the 16-byte frame header of SPEC §3 and the in-memory frame (a
 * header, its decoded body and the fds that came with it).  Also the
 * decoder error codes shared by every proto module.
 */
#ifndef BATON_FRAME_H
#define BATON_FRAME_H

#include <stdint.h>

#include "proto/msg.h"

#define FRAME_MAGIC		0x42544E31u	/* "BTN1" */
#define FRAME_HEADER_SIZE	16
#define FRAME_MAX_BODY		1048576u
#define FRAME_MAX_FDS		16
#define PROTO_VERSION_MIN	1
#define PROTO_VERSION_MAX	1
/* HELLO capabilities (docs/PROTOCOL.md): the agent moves connections. */
#define PROTO_CAP_CONN_MOVE	"conn-move"

/*
 * Decoder rejection codes.  Functions return them negated, like -errno;
 * they start above every errno value so the two never collide.
 */
enum proto_err {
	PROTO_EMAGIC = 1000,	/* bad magic */
	PROTO_EVERSION,		/* frame version outside [MIN, MAX] */
	PROTO_ETYPE,		/* type not in the catalogue / not allowed */
	PROTO_ETOOBIG,		/* body length over FRAME_MAX_BODY */
	PROTO_ETRUNC,		/* body ends inside a value */
	PROTO_ETRAILING,	/* bytes after the body's map */
	PROTO_ENOTMAP,		/* body is not a map with string keys */
	PROTO_EVALTYPE,		/* value of the wrong kind or out of range */
	PROTO_EMISSING,		/* required key missing */
	PROTO_ENFDS,		/* nfds over 16 or not the count received */
	PROTO_EFLAGS,		/* non-zero flags */
	PROTO_ELIMIT,		/* string, bin or array over its limit */
	PROTO_EINVAL,		/* semantically invalid (msg_validate) */
	PROTO_ENOVERSION,	/* no common protocol version */
	PROTO_ERR_END
};

/* Text for -errno or -PROTO_E*: "bad magic", "No such file...". */
const char *proto_strerror(int err);
/* Wire code for an ERROR frame: "bad_magic", "truncated", ... */
const char *proto_errcode(int err);

struct frame_header {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t body_len;
	uint16_t nfds;
	uint16_t flags;
};

void frame_header_encode(const struct frame_header *h,
    uint8_t out[FRAME_HEADER_SIZE]);
/*
 * Decode and check a header: magic, version, known wire type, body
 * length, nfds and flags, in that order.  Returns 0 or -PROTO_E*; on
 * -PROTO_EVERSION/-PROTO_ETYPE/... *ret_h is still filled so the caller
 * can name the offending value.
 */
int frame_header_decode(const uint8_t in[FRAME_HEADER_SIZE],
    struct frame_header *ret_h);

/*
 * Encode a whole frame (header + body) into one owned buffer.  nfds is
 * recorded in the header; the fds themselves travel separately.
 */
int frame_encode(const struct msg *m, unsigned nfds, uint8_t **ret_buf,
    size_t *ret_len);

/* A received frame.  It owns m and every fd slot that is >= 0. */
struct frame {
	struct frame_header h;
	struct msg m;
	int fds[FRAME_MAX_FDS];
	unsigned nfds;
};

void frame_init(struct frame *f);
/* Take fd i out of the frame (the slot becomes -1).  Returns the fd. */
int frame_take_fd(struct frame *f, unsigned i);
/* Free the body and close every fd still owned. */
void frame_release(struct frame *f);

/* Highest version in both [amin,amax] and [bmin,bmax]; -PROTO_ENOVERSION. */
int proto_negotiate(uint16_t amin, uint16_t amax, uint16_t bmin,
    uint16_t bmax, uint16_t *ret_version);

#endif
