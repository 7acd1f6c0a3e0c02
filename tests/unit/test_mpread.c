/*
 * test_mpread: the msgpack cursor against msgpack-c itself.  For values
 * msgpack-c packs (every type, the size boundaries of every family,
 * nesting) and for random bytes, mpread_skip must accept exactly what
 * msgpack_unpack_next accepts and consume as many bytes; the typed
 * readers must agree with the object msgpack-c makes.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mpread.h"
#include "tests/lib/tap.h"

/*
 * msgpack-c allocates what a container's count announces before it reads
 * the elements (a 4-byte header can ask for gigabytes; mpread checks the
 * count against the bytes left first): under ASan such an allocation
 * must fail (NULL, msgpack-c's NOMEM) instead of aborting the test.
 */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* msgpack-c's verdict on buf: bytes of its first value, or 0. */
static size_t
ref_len(const void *buf, size_t len, msgpack_object *ret, msgpack_unpacked *up)
{
	size_t off = 0;

	if (msgpack_unpack_next(up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
		return 0;
	if (ret)
		*ret = up->data;
	return off;
}

/*
 * Random bytes without array32/map32 headers: msgpack-c would try to
 * allocate for their count (up to 2^32 elements) before failing, slowly
 * under ASan.  refusals_leave_the_cursor covers those headers.
 */
static uint8_t
no32(uint8_t b)
{
	return b == 0xdd || b == 0xdf ? 0xc0 : b;
}

/* 1 to cap random bytes (no32) into b: how many. */
static unsigned
fill_random(uint8_t *b, size_t cap)
{
	unsigned k, len = 1 + (unsigned)((size_t)rand() % cap);

	for (k = 0; k < len; k++)
		b[k] = no32((uint8_t)rand());
	return len;
}

static size_t
skip_len(const void *buf, size_t len)
{
	struct mpread c;

	mpread_init(&c, buf, len);
	if (mpread_skip(&c) < 0)
		return mpread_left(&c) == len ? 0 : (size_t)-1;	/* moved */
	return len - mpread_left(&c);
}

static void
pack_str_n(msgpack_packer *pk, size_t n)
{
	char *s = malloc(n ? n : 1);

	require(s, "memory");
	memset(s, 'x', n);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
	free(s);
}

/* One random value, nested at most depth more levels. */
static void
pack_random(msgpack_packer *pk, unsigned depth)
{
	static const size_t lens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };
	static const int64_t ints[] = { 0, 1, 127, 128, 255, 256, 65535, 65536,
	    4294967295LL, 4294967296LL, -1, -32, -33, -128, -129, -32768,
	    -32769, INT64_MIN };
	unsigned i, n, r = (unsigned)rand() % (depth ? 12 : 10);
	char ext[17] = { 0 };

	switch (r) {
	case 0: msgpack_pack_nil(pk); break;
	case 1: msgpack_pack_true(pk); break;
	case 2: msgpack_pack_int64(pk, ints[rand() % 18]); break;
	case 3: msgpack_pack_uint64(pk, (uint64_t)rand() << 33 | 1); break;
	case 4: msgpack_pack_float(pk, 1.5f); break;
	case 5: msgpack_pack_double(pk, 2.5); break;
	case 6: pack_str_n(pk, lens[rand() % 8]); break;
	case 7:
		n = (unsigned)lens[rand() % 6];
		msgpack_pack_bin(pk, n);
		for (i = 0; i < n; i++)
			msgpack_pack_bin_body(pk, "b", 1);
		break;
	case 8:
		n = (unsigned[]){ 1, 2, 4, 8, 16, 3, 17 }[rand() % 7];
		msgpack_pack_ext(pk, n, 7);
		msgpack_pack_ext_body(pk, ext, n);
		break;
	case 9: msgpack_pack_int8(pk, (int8_t)(rand() % 256 - 128)); break;
	case 10:
		n = (unsigned[]){ 0, 1, 3, 15, 16, 17 }[rand() % 6];
		msgpack_pack_array(pk, n);
		for (i = 0; i < n; i++)
			pack_random(pk, depth - 1);
		break;
	default:
		n = (unsigned[]){ 0, 1, 2, 15, 16 }[rand() % 5];
		msgpack_pack_map(pk, n);
		for (i = 0; i < 2 * n; i++)
			pack_random(pk, depth - 1);
		break;
	}
}

TEST(skip_agrees_with_msgpack_c_on_packed_values)
{
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	unsigned i, bad = 0, cut_bad = 0;
	size_t want, cut;

	srand(1);
	msgpack_unpacked_init(&up);
	for (i = 0; i < 3000; i++) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		pack_random(&pk, 4);
		want = ref_len(sb.data, sb.size, NULL, &up);
		if (want != sb.size || skip_len(sb.data, sb.size) != want)
			bad++;
		/* Every value cut short is refused by both, the cursor kept. */
		cut = (size_t)rand() % sb.size;
		if (ref_len(sb.data, cut, NULL, &up) != 0 ||
		    skip_len(sb.data, cut) != 0)
			cut_bad++;
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_unpacked_destroy(&up);
	check_eq(bad, 0);
	check_eq(cut_bad, 0);
}

TEST(skip_agrees_with_msgpack_c_on_random_bytes)
{
	msgpack_unpacked up;
	uint8_t b[24];
	unsigned i, len, bad = 0, ok = 0;
	size_t want, got;

	srand(2);
	msgpack_unpacked_init(&up);
	for (i = 0; i < 200000; i++) {
		len = fill_random(b, sizeof(b));
		want = ref_len(b, len, NULL, &up);
		got = skip_len(b, len);
		if (want != got) {
			if (bad++ < 5)
				tap_diag("bytes %02x.. len %u: msgpack-c %zu, "
				    "mpread %zu", b[0], len, want, got);
		}
		ok += want != 0;
	}
	msgpack_unpacked_destroy(&up);
	check_eq(bad, 0);
	check(ok > 1000, "%u of the random inputs were values", ok);
}

TEST(typed_readers_agree_with_msgpack_c_objects)
{
	msgpack_unpacked up;
	msgpack_object o;
	struct mpread c;
	uint8_t b[12];
	unsigned i, len, bad = 0;
	const char *s;
	uint32_t n;
	uint64_t v;
	size_t want;
	int r, bo;

	srand(3);
	msgpack_unpacked_init(&up);
	for (i = 0; i < 200000; i++) {
		len = fill_random(b, sizeof(b));
		/* Bias towards the int, str, bool and container bytes. */
		if (i % 2)
			b[0] = (uint8_t[]){ 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1,
			    0xd2, 0xd3, 0xd9, 0xda, 0xc2, 0xc3, 0xc0, 0xdc,
			    0xde, 0xa3 }[rand() % 16];
		want = ref_len(b, len, &o, &up);
		mpread_init(&c, b, len);
		r = mpread_u64(&c, &v);
		if ((r == 0) != (want && o.type ==
		    MSGPACK_OBJECT_POSITIVE_INTEGER) ||
		    (r == 0 && (v != o.via.u64 || len - mpread_left(&c) != want)))
			bad++;
		mpread_init(&c, b, len);
		r = mpread_str(&c, &s, &n);
		if ((r == 0) != (want && o.type == MSGPACK_OBJECT_STR) ||
		    (r == 0 && (n != o.via.str.size ||
		    (n && memcmp(s, o.via.str.ptr, n) != 0))))
			bad++;
		mpread_init(&c, b, len);
		r = mpread_bool(&c, &bo);
		if ((r == 0) != (want && o.type == MSGPACK_OBJECT_BOOLEAN) ||
		    (r == 0 && (bo != 0) != o.via.boolean))
			bad++;
		mpread_init(&c, b, len);
		r = mpread_nil(&c);
		if ((r == 0) != (want && o.type == MSGPACK_OBJECT_NIL))
			bad++;
		/* A header is read when the whole container is a value. */
		mpread_init(&c, b, len);
		if (want && o.type == MSGPACK_OBJECT_ARRAY &&
		    (mpread_array(&c, &n) < 0 || n != o.via.array.size))
			bad++;
		mpread_init(&c, b, len);
		if (want && o.type == MSGPACK_OBJECT_MAP &&
		    (mpread_map(&c, &n) < 0 || n != o.via.map.size))
			bad++;
	}
	msgpack_unpacked_destroy(&up);
	check_eq(bad, 0);
}

TEST(refusals_leave_the_cursor)
{
	/* array16 of 0xffff elements with 1 byte: the count cannot fit. */
	static const uint8_t big[] = { 0xdc, 0xff, 0xff, 0x01 };
	/* array32 of 2, map32 of 1: read like the shorter forms. */
	static const uint8_t a32[] = { 0xdd, 0, 0, 0, 2, 0xc0, 0x01 };
	static const uint8_t m32[] = { 0xdf, 0, 0, 0, 1, 0xa1, 'k', 0x07 };
	static const uint8_t huge[] = { 0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0 };
	static const uint8_t neg[] = { 0xd0, 0x80 };	/* int8 -128 */
	uint8_t deep[MPREAD_MAX_DEPTH + 2];
	struct mpread c;
	uint32_t n;
	uint64_t v;

	mpread_init(&c, big, sizeof(big));
	check_eq(mpread_array(&c, &n), -EBADMSG);
	check_eq(mpread_skip(&c), -EBADMSG);
	check(c.p == big, "cursor kept");
	mpread_init(&c, a32, sizeof(a32));
	check(mpread_skip(&c) == 0 && mpread_left(&c) == 0, "array32");
	mpread_init(&c, a32, sizeof(a32));
	check(mpread_array(&c, &n) == 0 && n == 2, "array32 header");
	mpread_init(&c, m32, sizeof(m32));
	check(mpread_skip(&c) == 0 && mpread_left(&c) == 0, "map32");
	mpread_init(&c, huge, sizeof(huge));
	check_eq(mpread_skip(&c), -EBADMSG);
	check(c.p == huge, "cursor kept");
	mpread_init(&c, neg, sizeof(neg));
	check_eq(mpread_u64(&c, &v), -EBADMSG);
	check(c.p == neg, "cursor kept");
	/* Nesting past the limit is refused, as by msgpack-c's stack. */
	memset(deep, 0x91, sizeof(deep));
	deep[sizeof(deep) - 1] = 0xc0;
	mpread_init(&c, deep, sizeof(deep));
	check_eq(mpread_skip(&c), -EBADMSG);
	mpread_init(&c, deep + 3, sizeof(deep) - 3);
	check_eq(mpread_skip(&c), 0);
	check_eq(mpread_left(&c), 0);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
