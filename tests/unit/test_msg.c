/*
 * test_msg: the msgpack body codec and the semantic checks.
 *
 * Round trips are generated from messages.def (one case per message), so
 * a new message is covered without editing this file.  Every decoder
 * rejection is asserted by its exact code.  Cases end with an explicit
 * LeakSanitizer pass because the harness leaves each case with _exit().
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/nsvocab.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "tests/lib/tap.h"
#include "tests/unit/msg_fixture.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define leak_check() \
	check(__lsan_do_recoverable_leak_check() == 0, "no leaks")
#else
#define leak_check() ((void)0)
#endif

#define UUID "0b8f6c1e-3a5d-4c7e-9f21-6d4b2a8e1c07"

/* NS_LIST_REPLY body {seq: 1, allocations: [entry]}, entry built by fn. */
static int
decode_list(void (*entry)(msgpack_packer *), struct msg *m)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "seq", 3);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "allocations", 11);
	msgpack_pack_array(&pk, 1);
	entry(&pk);
	r = msg_decode(MSG_NS_LIST_REPLY, (const uint8_t *)sb.data, sb.size, m);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static void
entry_no_alive(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	msgpack_pack_str_with_body(pk, "allocation_id", 13);
	msgpack_pack_str_with_body(pk, "j1", 2);
	msgpack_pack_str_with_body(pk, "namespaces", 10);
	msgpack_pack_array(pk, 1);
	msgpack_pack_str_with_body(pk, "net", 3);
}

static void
entry_not_map(msgpack_packer *pk)
{
	msgpack_pack_str_with_body(pk, "j1", 2);
}

static void
entry_ok_extra_key(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 4);
	msgpack_pack_str_with_body(pk, "allocation_id", 13);
	msgpack_pack_str_with_body(pk, "j1", 2);
	msgpack_pack_str_with_body(pk, "future", 6);
	msgpack_pack_array(pk, 0);
	msgpack_pack_str_with_body(pk, "namespaces", 10);
	msgpack_pack_array(pk, 1);
	msgpack_pack_str_with_body(pk, "net", 3);
	msgpack_pack_str_with_body(pk, "alive", 5);
	msgpack_pack_true(pk);
}

TEST(ns_list_reply_entries_are_strict)
{
	struct msg m;

	check(decode_list(entry_no_alive, &m) == -PROTO_EMISSING,
	    "an entry without alive is EMISSING");
	check(decode_list(entry_not_map, &m) == -PROTO_EVALTYPE,
	    "an entry that is no map is EVALTYPE");
	if (check(decode_list(entry_ok_extra_key, &m) == 0, "unknown keys "
	    "skipped, uenv_image may be missing")) {
		check(m.u.NS_LIST_REPLY.allocations.n == 1 &&
		    strcmp(m.u.NS_LIST_REPLY.allocations.v[0].allocation_id,
		    "j1") == 0 && m.u.NS_LIST_REPLY.allocations.v[0].alive &&
		    !m.u.NS_LIST_REPLY.allocations.v[0].uenv_image, "entry read");
		check(msg_validate(&m, NULL) == 0, "valid");
		msg_free(&m);
	}
}

/* ------------------------------------------------------------------ */
/* An equality written independently of msg_equal(), from the .def. */

static bool
eq_U16(const uint16_t *a, const uint16_t *b) { return *a == *b; }
static bool
eq_U32(const uint32_t *a, const uint32_t *b) { return *a == *b; }
static bool
eq_U64(const uint64_t *a, const uint64_t *b) { return *a == *b; }
static bool
eq_OU64(const uint64_t *a, const uint64_t *b) { return *a == *b; }
static bool
eq_OPTU64(const struct optu64 *a, const struct optu64 *b)
{
	return a->set == b->set && (!a->set || a->v == b->v);
}
static bool
eq_BOOL(const bool *a, const bool *b) { return *a == *b; }

static bool
eq_STR(const char *const *a, const char *const *b)
{
	if (*a == NULL || *b == NULL)
		return *a == *b;
	return strcmp(*a, *b) == 0;
}

static bool
eq_NSTR(const char *const *a, const char *const *b)
{
	return eq_STR(a, b);
}

static bool
eq_BIN(const struct bin *a, const struct bin *b)
{
	return a->len == b->len &&
	    (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static bool
eq_STRARR(const struct strarr *a, const struct strarr *b)
{
	uint32_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

static bool
eq_NSLIST(const struct nslist *a, const struct nslist *b)
{
	uint32_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (!eq_STR(&a->v[i].allocation_id, &b->v[i].allocation_id) ||
		    !eq_NSTR(&a->v[i].uenv_image, &b->v[i].uenv_image) ||
		    a->v[i].alive != b->v[i].alive ||
		    !eq_STRARR(&a->v[i].namespaces, &b->v[i].namespaces))
			return false;
	return true;
}

static bool
fields_equal(const struct msg *x, const struct msg *y)
{
	bool ok = true;

	if (x->type != y->type)
		return false;
	switch (x->type) {
#define F(kind, name) \
	if (!eq_##kind(&a->name, &b->name)) { \
		tap_diag("field %s differs", #name); \
		ok = false; \
	}
#define MSG(NAME, id, fields) \
	case id: { \
		const __typeof__(x->u.NAME) *a __attribute__((unused)) = \
		    &x->u.NAME; \
		const __typeof__(y->u.NAME) *b __attribute__((unused)) = \
		    &y->u.NAME; \
		fields \
		break; \
	}
#include "proto/messages.def"
#undef MSG
#undef F
	default:
		return false;
	}
	return ok;
}

/*
 * Encode a filled message, decode it, compare, validate; then every
 * proper prefix must be -PROTO_ETRUNC and one extra byte -PROTO_ETRAILING.
 */
static void
roundtrip(uint16_t type)
{
	struct msg m, d;
	uint8_t *buf = NULL, *longer;
	size_t len, cut;
	const char *why = NULL;
	int r;

	require(fixture_fill(&m, type), "type %u in the fixture", type);
	require(msg_encode(&m, &buf, &len) == 0, "encode %s",
	    msg_type_name(type));
	r = msg_decode(type, buf, len, &d);
	require(r == 0, "decode %s: %s", msg_type_name(type),
	    proto_strerror(r));
	check(fields_equal(&m, &d), "%s decodes to what was encoded",
	    msg_type_name(type));
	check(msg_equal(&m, &d), "msg_equal agrees");
	check(msg_validate(&d, &why) == 0, "valid: %s", why ? why : "");
	msg_free(&d);

	for (cut = 0; cut < len; cut++) {
		r = msg_decode(type, buf, cut, &d);
		if (!check(r == -PROTO_ETRUNC, "prefix %zu of %zu: %s", cut,
		    len, proto_strerror(r)) && r == 0)
			msg_free(&d);
	}
	longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0xc0;
	check_is(msg_decode(type, longer, len + 1, &d), -PROTO_ETRAILING);
	free(longer);
	free(buf);
	leak_check();
}

#define MSG(NAME, id, fields) TEST(roundtrip_##NAME) { roundtrip(id); }
#include "proto/messages.def"
#undef MSG

TEST(fixture_covers_catalogue)
{
	size_t i;

	check(FIXTURE_NTYPES >= 30, "%zu types", FIXTURE_NTYPES);
	for (i = 0; i < FIXTURE_NTYPES; i++) {
		check(msg_type_known(fixture_types[i]), "known %u",
		    fixture_types[i]);
		check(msg_type_name(fixture_types[i]) != NULL, "named");
	}
}

TEST(type_names_and_wire)
{
	static const uint16_t unknown[] = { 0, 19, 31, 42, 63, 70, 95, 97,
	    255, 65535 };
	size_t i;

	check(strcmp(msg_type_name(MSG_HELLO), "HELLO") == 0, "HELLO");
	check(strcmp(msg_type_name(MSG_NS_ERROR), "NS_ERROR") == 0,
	    "NS_ERROR");
	check(strcmp(msg_type_name(MSG_JOURNAL_RECORD), "JOURNAL_RECORD") == 0,
	    "JOURNAL_RECORD");
	check(msg_type_wire(MSG_HELLO) && msg_type_wire(MSG_SUBSCRIBE) &&
	    msg_type_wire(MSG_CTL_JOURNAL_REPLY), "protocol types are wire");
	check(msg_type_known(MSG_JOURNAL_RECORD) &&
	    !msg_type_wire(MSG_JOURNAL_RECORD), "journal record is not wire");
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		check(!msg_type_known(unknown[i]) && !msg_type_wire(unknown[i]) &&
		    msg_type_name(unknown[i]) == NULL, "type %u unknown",
		    unknown[i]);
	}
}

/* ------------------------------------------------------------------ */
/* Hand-built bodies. */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void
body(uint32_t npairs)
{
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, npairs);
}

static void
str(const char *s)
{
	msgpack_pack_str(&pk, strlen(s));
	msgpack_pack_str_body(&pk, s, strlen(s));
}

static void
raw(const void *p, size_t n)
{
	msgpack_sbuffer_write(&sb, p, n);
}

#define RAW(...) do { \
	static const uint8_t b_[] = { __VA_ARGS__ }; \
	raw(b_, sizeof(b_)); \
} while (0)

static int
dec(uint16_t type, struct msg *m)
{
	return msg_decode(type, (const uint8_t *)sb.data, sb.size, m);
}

/* Decode must fail with exactly want. */
#define expect(type, want) do { \
	struct msg m_; \
	int r_ = dec(type, &m_); \
	if (!check(r_ == (want), "%s: got %d (%s), want %s", #want, r_, \
	    proto_strerror(r_), proto_strerror(want)) && r_ == 0) \
		msg_free(&m_); \
} while (0)

static void
heartbeat_body(void)
{
	body(1);
	str("ts_ms");
}

TEST(accept_hand_built)
{
	struct msg m;

	body(2);
	str("proto_version");
	msgpack_pack_uint16(&pk, 1);
	str("handoff_id");
	str(UUID);
	require(dec(MSG_HELLO_ACK, &m) == 0, "decodes");
	check_is(m.u.HELLO_ACK.proto_version, 1);
	check(strcmp(m.u.HELLO_ACK.handoff_id, UUID) == 0, "id");
	msg_free(&m);

	/* Keys in any order, and every unsigned encoding width. */
	body(3);
	str("accept_closed");
	msgpack_pack_true(&pk);
	str("open_conns_remaining");
	RAW(0xcf, 0, 0, 0, 0, 0, 0, 0, 7);	/* uint64 holding 7 */
	str("handoff_id");
	str(UUID);
	require(dec(MSG_DRAINED, &m) == 0, "wide uint decodes");
	check_is(m.u.DRAINED.open_conns_remaining, 7);
	check(m.u.DRAINED.accept_closed, "bool");
	msg_free(&m);

	/* Signed encodings of non-negative values are accepted. */
	heartbeat_body();
	RAW(0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	require(dec(MSG_HEARTBEAT, &m) == 0, "int64 >= 0 decodes");
	check(m.u.HEARTBEAT.ts_ms == INT64_MAX, "value");
	heartbeat_body();
	RAW(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	require(dec(MSG_HEARTBEAT, &m) == 0, "uint64 max decodes");
	check(m.u.HEARTBEAT.ts_ms == UINT64_MAX, "value");

	/* An empty message is an empty map. */
	body(0);
	check(dec(MSG_STATUS, &m) == 0, "STATUS {}");
	leak_check();
}

TEST(nstr_nil_missing_and_present)
{
	static const char *ns[] = { "pid" };
	struct msg m, d;
	uint8_t *buf;
	size_t len;

	body(3);
	str("allocation_id");
	str("a1");
	str("namespaces");
	msgpack_pack_array(&pk, 1);
	str("net");
	str("uenv_image");
	msgpack_pack_nil(&pk);
	require(dec(MSG_NS_REQUEST, &m) == 0, "nil decodes");
	check(m.u.NS_REQUEST.uenv_image == NULL, "nil is NULL");
	msg_free(&m);

	body(2);
	str("allocation_id");
	str("a1");
	str("namespaces");
	msgpack_pack_array(&pk, 0);
	require(dec(MSG_NS_REQUEST, &m) == 0, "missing NSTR decodes");
	check(m.u.NS_REQUEST.uenv_image == NULL, "missing is NULL");
	check_is(m.u.NS_REQUEST.namespaces.n, 0);
	msg_free(&m);

	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_REQUEST;
	m.u.NS_REQUEST.allocation_id = "a1";
	m.u.NS_REQUEST.namespaces.n = 1;
	m.u.NS_REQUEST.namespaces.v = ns;
	require(msg_encode(&m, &buf, &len) == 0, "encode with NULL NSTR");
	require(msg_decode(MSG_NS_REQUEST, buf, len, &d) == 0, "decode");
	check(d.u.NS_REQUEST.uenv_image == NULL, "NULL round trips");
	check(msg_equal(&m, &d), "equal");
	msg_free(&d);
	free(buf);
	leak_check();
}

/* An OU64 (STATUS_REPLY.dead_allocations) may be missing: it reads 0. */
TEST(ou64_missing_reads_zero)
{
	struct msg m;

	body(5);
	str("pid");
	msgpack_pack_uint32(&pk, 7);
	str("build_id");
	str("b");
	str("generation");
	msgpack_pack_uint8(&pk, 1);
	str("allocations");
	msgpack_pack_uint8(&pk, 2);
	str("ready");
	msgpack_pack_true(&pk);
	require(dec(MSG_STATUS_REPLY, &m) == 0, "reply without it decodes");
	check_is(m.u.STATUS_REPLY.dead_allocations, 0);
	check_is(m.u.STATUS_REPLY.allocations, 2);
	msg_free(&m);
	leak_check();
}

/*
 * An OPTU64 (SUBSCRIBE.since_seq, ALLOCATION_ENDED.seq): left out of the
 * map when not set, so an old peer sees the old message; present, even
 * as 0, it decodes as set.
 */
TEST(optu64_absent_and_zero_differ)
{
	struct msg m, d;
	uint8_t *buf;
	size_t len;

	memset(&m, 0, sizeof(m));
	m.type = MSG_SUBSCRIBE;
	require(msg_encode(&m, &buf, &len) == 0, "encode unset");
	check_is(len, 1);	/* fixmap 0: the SUBSCRIBE of SPEC §5 v1 */
	require(msg_decode(MSG_SUBSCRIBE, buf, len, &d) == 0, "decode");
	check(!d.u.SUBSCRIBE.since_seq.set, "absent stays absent");
	msg_free(&d);
	free(buf);
	m.u.SUBSCRIBE.since_seq.set = true;
	m.u.SUBSCRIBE.since_seq.v = 0;
	require(msg_encode(&m, &buf, &len) == 0, "encode zero");
	require(msg_decode(MSG_SUBSCRIBE, buf, len, &d) == 0, "decode");
	check(d.u.SUBSCRIBE.since_seq.set && d.u.SUBSCRIBE.since_seq.v == 0,
	    "0 is set");
	check(msg_equal(&m, &d), "equal");
	msg_free(&d);
	free(buf);
	leak_check();
}

TEST(reject_unknown_type)
{
	struct msg m;
	uint8_t *buf;
	size_t len;

	body(0);
	expect(0, -PROTO_ETYPE);
	expect(19, -PROTO_ETYPE);
	expect(500, -PROTO_ETYPE);
	memset(&m, 0, sizeof(m));
	m.type = 200;
	check_is(msg_encode(&m, &buf, &len), -PROTO_ETYPE);
}

TEST(reject_not_map)
{
	body(0);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_array(&pk, 0);
	expect(MSG_STATUS, -PROTO_ENOTMAP);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_nil(&pk);
	expect(MSG_STATUS, -PROTO_ENOTMAP);
	msgpack_sbuffer_clear(&sb);
	str("ts_ms");
	expect(MSG_HEARTBEAT, -PROTO_ENOTMAP);
	msgpack_sbuffer_clear(&sb);
	RAW(0xc1);
	expect(MSG_STATUS, -PROTO_ENOTMAP);

	/* Integer, bin and nil keys. */
	body(1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint8(&pk, 1);
	expect(MSG_STATUS, -PROTO_ENOTMAP);
	body(1);
	RAW(0xc4, 0x05, 't', 's', '_', 'm', 's', 0x01);
	expect(MSG_HEARTBEAT, -PROTO_ENOTMAP);
	body(1);
	msgpack_pack_nil(&pk);
	msgpack_pack_nil(&pk);
	expect(MSG_STATUS, -PROTO_ENOTMAP);
	leak_check();
}

TEST(reject_trailing)
{
	heartbeat_body();
	msgpack_pack_uint8(&pk, 1);
	RAW(0x80);	/* a second map */
	expect(MSG_HEARTBEAT, -PROTO_ETRAILING);
	body(0);
	RAW(0x00);
	expect(MSG_STATUS, -PROTO_ETRAILING);
}

TEST(reject_truncated)
{
	body(0);
	msgpack_sbuffer_clear(&sb);
	expect(MSG_STATUS, -PROTO_ETRUNC);		/* empty body */
	msgpack_sbuffer_clear(&sb);
	RAW(0xde, 0x00);				/* map16, 1 of 2 bytes */
	expect(MSG_STATUS, -PROTO_ETRUNC);
	heartbeat_body();
	RAW(0xcf, 0x00, 0x00);				/* uint64, 2 of 8 */
	expect(MSG_HEARTBEAT, -PROTO_ETRUNC);
	body(1);
	RAW(0xa5, 't', 's');				/* key cut short */
	expect(MSG_HEARTBEAT, -PROTO_ETRUNC);
	body(2);					/* one pair missing */
	str("ts_ms");
	msgpack_pack_uint8(&pk, 1);
	expect(MSG_HEARTBEAT, -PROTO_ETRUNC);
}

/*
 * Declared lengths far beyond the body: no allocation follows them, the
 * answer is immediate (the case would time out or run out of memory).
 */
TEST(reject_hostile_lengths)
{
	body(0);
	msgpack_sbuffer_clear(&sb);
	RAW(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x', 0xc0, 0xc0);
	expect(MSG_STATUS, -PROTO_ETRUNC);		/* 9-byte body, 2^32 pairs */

	body(1);
	str("zz");
	RAW(0xdd, 0xff, 0xff, 0xff, 0xff);		/* unknown: array32 */
	expect(MSG_STATUS, -PROTO_ETRUNC);
	body(1);
	str("zz");
	RAW(0xdf, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00);	/* unknown: map32 */
	expect(MSG_STATUS, -PROTO_ETRUNC);
	body(1);
	str("zz");
	RAW(0xdb, 0xff, 0xff, 0xff, 0xff, 'a');		/* unknown: str32 */
	expect(MSG_STATUS, -PROTO_ETRUNC);
	body(1);
	str("zz");
	RAW(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01);	/* unknown: ext32 */
	expect(MSG_STATUS, -PROTO_ETRUNC);

	body(1);
	str("names");
	RAW(0xdd, 0xff, 0xff, 0xff, 0xff, 0xa0);	/* known array32 */
	expect(MSG_LISTENERS, -PROTO_ELIMIT);
	body(1);
	str("names");
	RAW(0xdc, 0x00, 0x20, 0xa0);			/* 32 of 1 present */
	expect(MSG_LISTENERS, -PROTO_ETRUNC);
	body(1);
	str("ts_ms");
	RAW(0xdb, 0xff, 0xff, 0xff, 0xff);		/* string for a u64 */
	expect(MSG_HEARTBEAT, -PROTO_EVALTYPE);
	leak_check();
}

TEST(reject_value_type)
{
	/* U16 out of range, U32 out of range, negative, wrong kinds. */
	body(2);
	str("proto_version");
	msgpack_pack_uint32(&pk, 70000);
	str("handoff_id");
	str(UUID);
	expect(MSG_HELLO_ACK, -PROTO_EVALTYPE);
	body(3);
	str("handoff_id");
	str(UUID);
	str("open_conns_remaining");
	msgpack_pack_uint64(&pk, 1ULL << 32);
	str("accept_closed");
	msgpack_pack_false(&pk);
	expect(MSG_DRAINED, -PROTO_EVALTYPE);
	heartbeat_body();
	msgpack_pack_int8(&pk, -1);
	expect(MSG_HEARTBEAT, -PROTO_EVALTYPE);
	heartbeat_body();
	RAW(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
	expect(MSG_HEARTBEAT, -PROTO_EVALTYPE);
	heartbeat_body();
	msgpack_pack_double(&pk, 1.0);
	expect(MSG_HEARTBEAT, -PROTO_EVALTYPE);
	heartbeat_body();
	str("12");
	expect(MSG_HEARTBEAT, -PROTO_EVALTYPE);
	heartbeat_body();
	msgpack_pack_true(&pk);
	expect(MSG_HEARTBEAT, -PROTO_EVALTYPE);

	/* BOOL given an integer. */
	body(3);
	str("handoff_id");
	str(UUID);
	str("open_conns_remaining");
	msgpack_pack_uint8(&pk, 0);
	str("accept_closed");
	msgpack_pack_uint8(&pk, 1);
	expect(MSG_DRAINED, -PROTO_EVALTYPE);

	/* STR given bin, given nil; BIN given str. */
	body(1);
	str("handoff_id");
	msgpack_pack_bin(&pk, 1);
	msgpack_pack_bin_body(&pk, "x", 1);
	expect(MSG_COMMIT, -PROTO_EVALTYPE);
	body(1);
	str("handoff_id");
	msgpack_pack_nil(&pk);
	expect(MSG_COMMIT, -PROTO_EVALTYPE);
	body(3);
	str("handoff_id");
	str(UUID);
	str("state_seq");
	msgpack_pack_uint8(&pk, 1);
	str("state_digest");
	str("abc");
	expect(MSG_BEGIN, -PROTO_EVALTYPE);

	/* STRARR given a map, and an array holding an integer. */
	body(1);
	str("names");
	msgpack_pack_map(&pk, 0);
	expect(MSG_LISTENERS, -PROTO_EVALTYPE);
	body(1);
	str("names");
	msgpack_pack_array(&pk, 3);
	str("a");
	str("b");
	msgpack_pack_uint8(&pk, 3);
	expect(MSG_LISTENERS, -PROTO_EVALTYPE);	/* and frees "a", "b" */

	/* NSTR given an integer. */
	body(3);
	str("allocation_id");
	msgpack_pack_uint8(&pk, 1);
	str("kind");
	str("fd_passing");
	str("message");
	str("m");
	expect(MSG_NS_ERROR, -PROTO_EVALTYPE);

	/* 0xc1 is never valid, even under an unknown key. */
	body(1);
	str("zz");
	RAW(0xc1);
	expect(MSG_STATUS, -PROTO_EVALTYPE);
	leak_check();
}

TEST(reject_nul_in_string)
{
	body(1);
	str("handoff_id");
	RAW(0xa3, 'a', 0x00, 'b');
	expect(MSG_COMMIT, -PROTO_EVALTYPE);
	body(1);
	str("names");
	msgpack_pack_array(&pk, 2);
	str("ok");
	RAW(0xa1, 0x00);
	expect(MSG_LISTENERS, -PROTO_EVALTYPE);
	leak_check();
}

/* A repeated known key is a bad value (documented in msgdecode.c). */
TEST(reject_duplicate_key)
{
	body(2);
	str("handoff_id");
	str(UUID);
	str("handoff_id");
	str(UUID);
	expect(MSG_COMMIT, -PROTO_EVALTYPE);
	body(3);
	str("names");
	msgpack_pack_array(&pk, 1);
	str("x");
	str("zz");
	msgpack_pack_nil(&pk);
	str("names");
	msgpack_pack_array(&pk, 0);
	expect(MSG_LISTENERS, -PROTO_EVALTYPE);
	/* A repeated NSTR, even nil then string. */
	body(4);
	str("allocation_id");
	msgpack_pack_nil(&pk);
	str("kind");
	str("fd_passing");
	str("message");
	str("m");
	str("allocation_id");
	str("a");
	expect(MSG_NS_ERROR, -PROTO_EVALTYPE);
	leak_check();
}

TEST(reject_missing_key)
{
	body(0);
	expect(MSG_HEARTBEAT, -PROTO_EMISSING);
	body(1);
	str("ts_msx");
	msgpack_pack_uint8(&pk, 1);
	expect(MSG_HEARTBEAT, -PROTO_EMISSING);
	/* All but the last required field, strings allocated first. */
	body(2);
	str("code");
	str("x");
	str("mesage");
	str("y");
	expect(MSG_ERROR, -PROTO_EMISSING);
	/* An NSTR is optional, its neighbours are not. */
	body(1);
	str("allocation_id");
	str("a");
	expect(MSG_NS_ERROR, -PROTO_EMISSING);
	leak_check();
}

TEST(limits)
{
	char s[MSG_MAX_STR + 2];
	uint8_t bin[MSG_MAX_BIN + 1];
	const char *v[MSG_MAX_ARR + 1];
	struct msg m, d;
	uint8_t *buf;
	size_t len;
	int i;

	memset(s, 'x', sizeof(s));
	s[MSG_MAX_STR] = '\0';
	memset(bin, 7, sizeof(bin));

	body(1);
	str("handoff_id");
	str(s);
	require(dec(MSG_COMMIT, &m) == 0, "4096-byte string decodes");
	msg_free(&m);
	s[MSG_MAX_STR] = 'x';
	s[MSG_MAX_STR + 1] = '\0';
	body(1);
	str("handoff_id");
	str(s);
	expect(MSG_COMMIT, -PROTO_ELIMIT);

	body(3);
	str("handoff_id");
	str(UUID);
	str("state_seq");
	msgpack_pack_uint8(&pk, 1);
	str("state_digest");
	msgpack_pack_bin(&pk, MSG_MAX_BIN);
	msgpack_pack_bin_body(&pk, bin, MSG_MAX_BIN);
	require(dec(MSG_BEGIN, &m) == 0, "1024-byte bin decodes");
	msg_free(&m);
	body(3);
	str("handoff_id");
	str(UUID);
	str("state_seq");
	msgpack_pack_uint8(&pk, 1);
	str("state_digest");
	msgpack_pack_bin(&pk, MSG_MAX_BIN + 1);
	msgpack_pack_bin_body(&pk, bin, MSG_MAX_BIN + 1);
	expect(MSG_BEGIN, -PROTO_ELIMIT);

	body(1);
	str("names");
	msgpack_pack_array(&pk, MSG_MAX_ARR);
	for (i = 0; i < MSG_MAX_ARR; i++)
		str("n");
	require(dec(MSG_LISTENERS, &m) == 0, "64 elements decode");
	check_is(m.u.LISTENERS.names.n, MSG_MAX_ARR);
	msg_free(&m);
	body(1);
	str("names");
	msgpack_pack_array(&pk, MSG_MAX_ARR + 1);
	for (i = 0; i <= MSG_MAX_ARR; i++)
		str("n");
	expect(MSG_LISTENERS, -PROTO_ELIMIT);

	/* The encoder refuses to build what a peer would refuse. */
	for (i = 0; i <= MSG_MAX_ARR; i++)
		v[i] = "n";
	memset(&m, 0, sizeof(m));
	m.type = MSG_LISTENERS;
	m.u.LISTENERS.names.n = MSG_MAX_ARR + 1;
	m.u.LISTENERS.names.v = v;
	check_is(msg_encode(&m, &buf, &len), -PROTO_ELIMIT);
	memset(&m, 0, sizeof(m));
	m.type = MSG_COMMIT;
	m.u.COMMIT.handoff_id = s;
	check_is(msg_encode(&m, &buf, &len), -PROTO_ELIMIT);
	memset(&m, 0, sizeof(m));
	m.type = MSG_BEGIN;
	m.u.BEGIN.handoff_id = UUID;
	m.u.BEGIN.state_digest.len = MSG_MAX_BIN + 1;
	m.u.BEGIN.state_digest.p = bin;
	check_is(msg_encode(&m, &buf, &len), -PROTO_ELIMIT);
	/* A required string left NULL is a caller bug, not a message. */
	memset(&m, 0, sizeof(m));
	m.type = MSG_COMMIT;
	check(msg_encode(&m, &buf, &len) < 0, "NULL STR refused");
	(void)d;
	leak_check();
}

TEST(unknown_keys_ignored)
{
	struct msg m;
	int i;

	body(9);
	str("future_map");
	msgpack_pack_map(&pk, 1);
	str("a");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_nil(&pk);
	msgpack_pack_int64(&pk, -5);
	msgpack_pack_uint8(&pk, 7);
	str("ts_ms");
	msgpack_pack_uint64(&pk, 12345678901ULL);
	str("future_float");
	msgpack_pack_double(&pk, 2.5);
	str("future_f32");
	msgpack_pack_float(&pk, 1.5f);
	str("future_ext");
	RAW(0xc7, 0x02, 0x05, 0xaa, 0xbb);
	str("future_fixext");
	RAW(0xd8, 0x01, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	str("future_neg");
	RAW(0xff);
	str("future_nested");
	for (i = 0; i < 100000; i++)
		RAW(0x91);
	RAW(0xc0);
	str("future_bin");
	msgpack_pack_bin(&pk, 3);
	msgpack_pack_bin_body(&pk, "abc", 3);
	require(dec(MSG_HEARTBEAT, &m) == 0, "unknown keys skipped");
	check(m.u.HEARTBEAT.ts_ms == 12345678901ULL, "value kept");
	leak_check();
}

/* ------------------------------------------------------------------ */
/* msg_validate */

static void
expect_invalid(const struct msg *m, const char *what)
{
	const char *why = NULL;

	check(msg_validate(m, &why) == -PROTO_EINVAL, "%s is invalid", what);
	check(why != NULL && *why != '\0', "%s has a reason", what);
}

static void
expect_valid(const struct msg *m, const char *what)
{
	const char *why = NULL;

	check(msg_validate(m, &why) == 0, "%s is valid (%s)", what,
	    why ? why : "");
}

TEST(validate_hello)
{
	struct msg m;

	fixture_fill(&m, MSG_HELLO);
	expect_valid(&m, "successor");
	m.u.HELLO.role = "incumbent";
	expect_valid(&m, "incumbent");
	m.u.HELLO.role = "supervisor";
	expect_invalid(&m, "role supervisor");
	m.u.HELLO.role = "";
	expect_invalid(&m, "empty role");
	m.u.HELLO.role = "incumbent";
	m.u.HELLO.proto_min = 2;
	m.u.HELLO.proto_max = 1;
	expect_invalid(&m, "proto_min > proto_max");
	m.u.HELLO.proto_max = 2;
	expect_valid(&m, "proto_min == proto_max");
}

TEST(validate_uuid)
{
	static const char *bad[] = {
		"", "0b8f6c1e-3a5d-4c7e-9f21-6d4b2a8e1c0",
		"0b8f6c1e-3a5d-4c7e-9f21-6d4b2a8e1c07a",
		"0B8F6C1E-3A5D-4C7E-9F21-6D4B2A8E1C07",
		"0b8f6c1e3a5d4c7e9f216d4b2a8e1c07",
		"0b8f6c1e-3a5d-4c7e-9f21_6d4b2a8e1c07",
		"{b8f6c1e-3a5d-4c7e-9f21-6d4b2a8e1c07",
		"0b8f6c1e-3a5d-4c7e-9f21-6d4b2a8e1c0g",
	};
	struct msg m;
	size_t i;

	check(msg_uuid_ok(UUID), "canonical");
	check(msg_uuid_ok("00000000-0000-0000-0000-000000000000"), "nil uuid");
	check(!msg_uuid_ok(NULL), "NULL");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check(!msg_uuid_ok(bad[i]), "'%s' rejected", bad[i]);

	/* Every message with a handoff_id checks it. */
	for (i = 0; i < FIXTURE_NTYPES; i++) {
		fixture_fill(&m, fixture_types[i]);
		switch (m.type) {
		case MSG_COMMIT:
			m.u.COMMIT.handoff_id = "commit-1";
			expect_invalid(&m, "COMMIT handoff_id");
			break;
		case MSG_READY:
			m.u.READY.handoff_id = bad[3];
			expect_invalid(&m, "READY handoff_id");
			break;
		case MSG_CTL_JOURNAL_REPLY:
			m.u.CTL_JOURNAL_REPLY.handoff_id = NULL;
			expect_valid(&m, "nil NSTR handoff_id");
			m.u.CTL_JOURNAL_REPLY.handoff_id = "x";
			expect_invalid(&m, "NSTR handoff_id");
			break;
		default:
			break;
		}
	}
}

TEST(validate_ids_and_images)
{
	char id[130];
	struct msg m;

	check(nsvocab_id_ok("a"), "a");
	check(nsvocab_id_ok("job-1_2.3"), "job-1_2.3");
	check(!nsvocab_id_ok(""), "empty");
	check(!nsvocab_id_ok(".hidden"), "leading dot");
	check(!nsvocab_id_ok(".."), "..");
	check(!nsvocab_id_ok("a/b"), "slash");
	check(!nsvocab_id_ok("a b"), "space");
	check(!nsvocab_id_ok("caf\xc3\xa9"), "non-ASCII");
	memset(id, 'a', 128);
	id[128] = '\0';
	check(nsvocab_id_ok(id), "128 bytes");
	id[128] = 'a';
	id[129] = '\0';
	check(!nsvocab_id_ok(id), "129 bytes");

	check(nsvocab_image_ok("x.sqfs"), "x.sqfs");
	check(nsvocab_image_ok("prgenv-gnu_24.7.sqfs"), "dotted name");
	check(!nsvocab_image_ok(".sqfs"), ".sqfs");
	check(!nsvocab_image_ok(".x.sqfs"), "leading dot");
	check(!nsvocab_image_ok("../x.sqfs"), "parent");
	check(!nsvocab_image_ok("a/x.sqfs"), "slash");
	check(!nsvocab_image_ok("/x.sqfs"), "absolute");
	check(!nsvocab_image_ok("x.squashfs"), "wrong suffix");
	check(!nsvocab_image_ok("x.sqfs.tmp"), "suffix not last");
	check(!nsvocab_image_ok(""), "empty");
	memset(id, 'a', 123);
	strcpy(id + 123, ".sqfs");
	check(nsvocab_image_ok(id), "128 bytes");
	memset(id, 'a', 124);
	strcpy(id + 124, ".sqfs");
	check(!nsvocab_image_ok(id), "129 bytes");

	fixture_fill(&m, MSG_NS_REQUEST);
	m.u.NS_REQUEST.allocation_id = ".x";
	expect_invalid(&m, "NS_REQUEST allocation_id");
	fixture_fill(&m, MSG_NS_REQUEST);
	m.u.NS_REQUEST.uenv_image = "../../etc/x.sqfs";
	expect_invalid(&m, "uenv_image with slashes");
	m.u.NS_REQUEST.uenv_image = NULL;
	expect_valid(&m, "no uenv_image");
	fixture_fill(&m, MSG_NS_ERROR);
	m.u.NS_ERROR.allocation_id = NULL;
	expect_valid(&m, "NS_ERROR without allocation");
	m.u.NS_ERROR.allocation_id = "a/b";
	expect_invalid(&m, "NS_ERROR allocation_id");
	fixture_fill(&m, MSG_ALLOCATION_ENDED);
	m.u.ALLOCATION_ENDED.allocation_id = "";
	expect_invalid(&m, "empty ALLOCATION_ENDED allocation_id");
}

TEST(validate_namespace_sets)
{
	static const char *dup[] = { "pid", "net", "pid" };
	static const char *user[] = { "user" };
	static const char *mnt[] = { "mnt" };
	static const char *one[] = { "mount" };
	struct msg m;

	fixture_fill(&m, MSG_NS_REQUEST);
	m.u.NS_REQUEST.namespaces.n = 0;
	expect_invalid(&m, "no namespaces");
	m.u.NS_REQUEST.namespaces.n = 3;
	m.u.NS_REQUEST.namespaces.v = dup;
	expect_invalid(&m, "duplicate namespace");
	m.u.NS_REQUEST.namespaces.n = 1;
	m.u.NS_REQUEST.namespaces.v = user;
	expect_invalid(&m, "user namespace");
	m.u.NS_REQUEST.namespaces.v = mnt;
	expect_invalid(&m, "'mnt' (the name is 'mount')");
	m.u.NS_REQUEST.namespaces.v = one;
	expect_valid(&m, "mount alone");

	fixture_fill(&m, MSG_NS_RESPONSE);
	m.u.NS_RESPONSE.fd_types.n = 3;
	m.u.NS_RESPONSE.fd_types.v = dup;
	expect_invalid(&m, "duplicate fd_type");
	m.u.NS_RESPONSE.fd_types.n = 0;
	expect_invalid(&m, "no fd_types");
}

TEST(validate_digest_and_kind)
{
	static const uint8_t d65[65];
	struct msg m;

	fixture_fill(&m, MSG_SEAL_COMPLETE);
	m.u.SEAL_COMPLETE.state_digest.p = d65;
	m.u.SEAL_COMPLETE.state_digest.len = 64;
	expect_valid(&m, "64-byte digest");
	m.u.SEAL_COMPLETE.state_digest.len = 65;
	expect_invalid(&m, "65-byte digest");
	fixture_fill(&m, MSG_READY);
	m.u.READY.state_digest.p = d65;
	m.u.READY.state_digest.len = 65;
	expect_invalid(&m, "READY 65-byte digest");

	fixture_fill(&m, MSG_NS_ERROR);
	m.u.NS_ERROR.kind = "invalid_request";
	expect_valid(&m, "invalid_request");
	m.u.NS_ERROR.kind = "limit_exceeded";
	expect_valid(&m, "limit_exceeded");
	m.u.NS_ERROR.kind = "socket_unavailable";
	expect_invalid(&m, "socket_unavailable (consumer-side only)");
	m.u.NS_ERROR.kind = "oops";
	expect_invalid(&m, "unknown kind");

	memset(&m, 0, sizeof(m));
	m.type = 999;
	expect_invalid(&m, "unknown type");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
