/*
 * test_frame: the SPEC §3 header byte layout, every header rejection in
 * its documented order, whole-frame encoding, fd ownership of a frame,
 * version negotiation and the error names.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/frame.h"
#include "tests/lib/tap.h"
#include "tests/unit/msg_fixture.h"

static const uint8_t good[FRAME_HEADER_SIZE] = {
	0x42, 0x54, 0x4e, 0x31,		/* BTN1 */
	0x00, 0x01,			/* version 1 */
	0x00, 0x0e,			/* HEARTBEAT */
	0x00, 0x01, 0x02, 0x03,		/* body 66051 */
	0x00, 0x02,			/* 2 fds */
	0x00, 0x00,			/* flags */
};

TEST(header_layout)
{
	struct frame_header h;
	uint8_t out[FRAME_HEADER_SIZE];

	require(frame_header_decode(good, &h) == 0, "decodes");
	check(h.magic == FRAME_MAGIC, "magic");
	check_is(h.version, 1);
	check_is(h.type, MSG_HEARTBEAT);
	check_is(h.body_len, 0x010203);
	check_is(h.nfds, 2);
	check_is(h.flags, 0);
	frame_header_encode(&h, out);
	check(memcmp(out, good, sizeof(out)) == 0, "encodes to the same bytes");
}

/* Decode good[] with one byte changed. */
static int
decode_with(size_t off, uint8_t v, struct frame_header *h)
{
	uint8_t b[FRAME_HEADER_SIZE];

	memcpy(b, good, sizeof(b));
	b[off] = v;
	return frame_header_decode(b, h);
}

static int
decode_fields(uint32_t magic, uint16_t version, uint16_t type,
    uint32_t body_len, uint16_t nfds, uint16_t flags)
{
	struct frame_header h = { magic, version, type, body_len, nfds, flags };
	uint8_t b[FRAME_HEADER_SIZE];

	frame_header_encode(&h, b);
	return frame_header_decode(b, &h);
}

TEST(header_rejections)
{
	struct frame_header h;

	check_is(decode_with(3, 0x32, &h), -PROTO_EMAGIC);
	check_is(decode_with(0, 0x31, &h), -PROTO_EMAGIC);
	check_is(decode_with(5, 0x00, &h), -PROTO_EVERSION);
	check_is(h.version, 0);		/* filled for the error message */
	check_is(decode_with(5, 0x02, &h), -PROTO_EVERSION);
	check_is(decode_with(4, 0x01, &h), -PROTO_EVERSION);
	check_is(decode_fields(FRAME_MAGIC, 1, 0, 0, 0, 0), -PROTO_ETYPE);
	check_is(decode_fields(FRAME_MAGIC, 1, 19, 0, 0, 0), -PROTO_ETYPE);
	check_is(decode_fields(FRAME_MAGIC, 1, 0x100 | MSG_HELLO, 0, 0, 0),
	    -PROTO_ETYPE);
	check_is(decode_fields(FRAME_MAGIC, 1, MSG_JOURNAL_RECORD, 0, 0, 0),
	    -PROTO_ETYPE);
	check_is(decode_fields(FRAME_MAGIC, 1, 1, FRAME_MAX_BODY + 1, 0, 0),
	    -PROTO_ETOOBIG);
	check_is(decode_fields(FRAME_MAGIC, 1, 1, UINT32_MAX, 0, 0),
	    -PROTO_ETOOBIG);
	check_is(decode_fields(FRAME_MAGIC, 1, 1, 0, FRAME_MAX_FDS + 1, 0),
	    -PROTO_ENFDS);
	check_is(decode_fields(FRAME_MAGIC, 1, 1, 0, 0, 1), -PROTO_EFLAGS);
	check_is(decode_fields(FRAME_MAGIC, 1, 1, 0, 0, 0x8000), -PROTO_EFLAGS);
	/* Boundaries are accepted. */
	check_is(decode_fields(FRAME_MAGIC, 1, 1, FRAME_MAX_BODY,
	    FRAME_MAX_FDS, 0), 0);
	check_is(decode_fields(FRAME_MAGIC, 1, MSG_CTL_JOURNAL_REPLY, 0, 0, 0),
	    0);
}

/* With every field wrong, each check wins over the ones after it. */
TEST(header_check_order)
{
	check_is(decode_fields(0, 9, 96, UINT32_MAX, 99, 1), -PROTO_EMAGIC);
	check_is(decode_fields(FRAME_MAGIC, 9, 96, UINT32_MAX, 99, 1),
	    -PROTO_EVERSION);
	check_is(decode_fields(FRAME_MAGIC, 1, 96, UINT32_MAX, 99, 1),
	    -PROTO_ETYPE);
	check_is(decode_fields(FRAME_MAGIC, 1, 1, UINT32_MAX, 99, 1),
	    -PROTO_ETOOBIG);
	check_is(decode_fields(FRAME_MAGIC, 1, 1, 0, 99, 1), -PROTO_ENFDS);
	check_is(decode_fields(FRAME_MAGIC, 1, 1, 0, 0, 1), -PROTO_EFLAGS);
}

TEST(frame_encode_whole)
{
	struct frame_header h;
	struct msg m, d;
	uint8_t *buf;
	size_t len;

	fixture_fill(&m, MSG_LISTENERS);
	require(frame_encode(&m, 3, &buf, &len) == 0, "encodes");
	require(len > FRAME_HEADER_SIZE, "has a body");
	require(frame_header_decode(buf, &h) == 0, "header decodes");
	check_is(h.type, MSG_LISTENERS);
	check_is(h.version, PROTO_VERSION_MAX);
	check_is(h.nfds, 3);
	check_is(h.flags, 0);
	check_is(h.body_len, len - FRAME_HEADER_SIZE);
	require(msg_decode(h.type, buf + FRAME_HEADER_SIZE, h.body_len,
	    &d) == 0, "body decodes");
	check(msg_equal(&m, &d), "same message");
	msg_free(&d);
	free(buf);

	check_is(frame_encode(&m, FRAME_MAX_FDS + 1, &buf, &len),
	    -PROTO_ENFDS);
	fixture_fill(&m, MSG_JOURNAL_RECORD);
	check_is(frame_encode(&m, 0, &buf, &len), -PROTO_ETYPE);
	m.type = 4242;
	check_is(frame_encode(&m, 0, &buf, &len), -PROTO_ETYPE);
}

TEST(frame_owns_fds)
{
	struct frame f;
	int before = tap_count_fds(), p[2], q[2], fd;

	frame_init(&f);
	check_is(f.nfds, 0);
	check_is(f.fds[0], -1);
	check_is(f.fds[FRAME_MAX_FDS - 1], -1);
	frame_release(&f);		/* empty release is harmless */

	require(pipe2(p, O_CLOEXEC) == 0 && pipe2(q, O_CLOEXEC) == 0, "pipes");
	f.fds[0] = p[0];
	f.fds[1] = p[1];
	f.fds[2] = q[0];
	f.fds[3] = q[1];
	f.nfds = 4;
	require(msg_decode(MSG_COMMIT,
	    (const uint8_t *)"\x81\xaahandoff_id\xa1x", 14, &f.m) == 0,
	    "body");
	fd = frame_take_fd(&f, 1);
	check_is(fd, p[1]);
	check_is(f.fds[1], -1);
	check(frame_take_fd(&f, 1) < 0, "a slot is taken once");
	check(frame_take_fd(&f, FRAME_MAX_FDS) < 0, "out of range");
	frame_release(&f);
	check_is(tap_count_fds(), before + 1);	/* only the taken one */
	check(fcntl(fd, F_GETFD) >= 0, "taken fd still open");
	check(fcntl(p[0], F_GETFD) < 0, "the rest are closed");
	close(fd);
	check_is(tap_count_fds(), before);
	check_is(f.fds[0], -1);
}

TEST(negotiate)
{
	uint16_t v = 0;

	check_is(proto_negotiate(1, 1, 1, 1, &v), 0);
	check_is(v, 1);
	check_is(proto_negotiate(1, 5, 2, 3, &v), 0);
	check_is(v, 3);
	check_is(proto_negotiate(2, 3, 1, 5, &v), 0);
	check_is(v, 3);
	check_is(proto_negotiate(1, 3, 3, 9, &v), 0);
	check_is(v, 3);
	v = 77;
	check_is(proto_negotiate(1, 2, 3, 4, &v), -PROTO_ENOVERSION);
	check_is(proto_negotiate(3, 4, 1, 2, &v), -PROTO_ENOVERSION);
	check_is(proto_negotiate(3, 1, 1, 5, &v), -PROTO_ENOVERSION);
	check_is(proto_negotiate(1, 5, 4, 2, &v), -PROTO_ENOVERSION);
	check_is(v, 77);	/* untouched on failure */
	check_is(proto_negotiate(0, 65535, 65535, 65535, &v), 0);
	check_is(v, 65535);
}

TEST(error_names)
{
	static const struct { int err; const char *code; } codes[] = {
		{ PROTO_EMAGIC, "bad_magic" },
		{ PROTO_EVERSION, "unsupported_version" },
		{ PROTO_ETYPE, "unknown_type" },
		{ PROTO_ETOOBIG, "too_big" },
		{ PROTO_ETRUNC, "truncated" },
		{ PROTO_ETRAILING, "trailing_bytes" },
		{ PROTO_ENOTMAP, "not_map" },
		{ PROTO_EVALTYPE, "bad_value" },
		{ PROTO_EMISSING, "missing_key" },
		{ PROTO_ENFDS, "bad_nfds" },
		{ PROTO_EFLAGS, "bad_flags" },
		{ PROTO_ELIMIT, "limit" },
		{ PROTO_EINVAL, "invalid" },
		{ PROTO_ENOVERSION, "no_common_version" },
	};
	size_t i, j;
	int e;

	check_is(sizeof(codes) / sizeof(codes[0]),
	    PROTO_ERR_END - PROTO_EMAGIC);
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		e = codes[i].err;
		check(strcmp(proto_errcode(-e), codes[i].code) == 0,
		    "%d is %s", e, codes[i].code);
		check(strcmp(proto_errcode(e), codes[i].code) == 0,
		    "sign does not matter");
		check(proto_strerror(-e) != NULL && *proto_strerror(-e) != 0,
		    "%d has text", e);
		for (j = 0; j < i; j++)
			check(strcmp(proto_strerror(-e),
			    proto_strerror(-codes[j].err)) != 0,
			    "%d and %d texts differ", e, codes[j].err);
	}
	/* Every code in the enum, including ones added later. */
	for (e = PROTO_EMAGIC; e < PROTO_ERR_END; e++)
		check(proto_errcode(-e) != NULL && proto_strerror(-e) != NULL,
		    "code %d named", e);
	check(strcmp(proto_strerror(-PROTO_EMAGIC), "bad magic") == 0,
	    "bad magic text");
	check(strcmp(proto_strerror(-ENOENT), "No such file or directory") == 0,
	    "errno text: %s", proto_strerror(-ENOENT));
	check(strcmp(proto_strerror(ECONNRESET), proto_strerror(-ECONNRESET))
	    == 0, "errno sign");
	check(strcmp(proto_errcode(-ETIMEDOUT), "timeout") == 0, "timeout");
	check(proto_errcode(-EIO) != NULL, "errno code");
	check(proto_strerror(-99999) != NULL, "unknown number has text");
	check(proto_strerror(-PROTO_ERR_END) != NULL, "end has text");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
