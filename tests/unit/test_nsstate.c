/*
 * test_nsstate: the allocation table's index and its on-disk form.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomicfile.h"
#include "successor/nsstate.h"
#include "tests/lib/tap.h"

#define N 5000

static struct ns_alloc *
mk(const char *prefix, int i)
{
	struct ns_alloc *a = nsstate_alloc_new();

	require(a, "alloc");
	snprintf(a->id, sizeof(a->id), "%s%d", prefix, i);
	a->mask = NSVM_NET;
	a->ino[NSV_NET] = 4026531840u + (uint64_t)i;	/* a valid entry */
	return a;
}

TEST(index_finds_inserts_and_forgets_removals)
{
	static struct ns_alloc *all[N];
	struct ns_table t = { 0 };
	char id[32];
	int i, missing = 0, stale = 0;

	for (i = 0; i < N; i++) {
		all[i] = mk("job-", i);
		require(nsstate_insert(&t, all[i]) == 0, "insert %d", i);
	}
	check_eq(t.n, N);
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "job-%d", i);
		if (nsstate_find(&t, id) != all[i])
			missing++;
	}
	check_eq(missing, 0);
	for (i = 0; i < N; i += 2) {
		nsstate_remove(&t, all[i]);
		nsstate_alloc_free(all[i]);
	}
	check_eq(t.n, N / 2);
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "job-%d", i);
		if ((nsstate_find(&t, id) != NULL) != (i % 2 == 1))
			stale++;
	}
	check_eq(stale, 0);
	check(nsstate_find(&t, "nope") == NULL, "unknown id");
	nsstate_clear(&t);
	check(t.n == 0 && t.head == NULL && t.nbucket == 0, "cleared");
	check(nsstate_find(&t, "job-1") == NULL, "empty after clear");
}

TEST(round_trip_keeps_every_entry_and_rejects_duplicates)
{
	struct ns_table t = { .seq = 7, .generation = 3 }, d = { 0 };
	struct ns_alloc *dup;
	uint8_t *buf = NULL;
	size_t len;
	char id[32];
	int i, found = 0;

	for (i = 0; i < 300; i++)
		require(nsstate_insert(&t, mk("a", i)) == 0, "insert");
	require(nsstate_encode(&t, &buf, &len) == 0, "encode");
	require(nsstate_decode(buf, len, &d) == 0, "decode");
	check(d.seq == 7 && d.generation == 3 && d.n == 300, "header");
	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		found += nsstate_find(&d, id) != NULL;
	}
	check_eq(found, 300);
	nsstate_clear(&d);
	free(buf);
	/* The same id twice (forced past the index) must not load. */
	dup = mk("a", 5);
	dup->next = t.head;
	t.head = dup;
	t.n++;
	require(nsstate_encode(&t, &buf, &len) == 0, "encode");
	check(nsstate_decode(buf, len, &d) < 0, "duplicate id rejected");
	free(buf);
	nsstate_clear(&t);
}

/* Pack a string (msgpack-c), for the hand-made tables below. */
static void
ps(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

/*
 * A hand-made table of one {net} entry "h1": its fields in reverse
 * order, with keys the decoder does not know (skipped), integers in
 * signed encodings, and what flaw says (0 none) made wrong.
 */
static void
pack_table(msgpack_sbuffer *sb, int flaw)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, flaw == 1 ? 5 : 6);
	ps(&pk, "extra");		/* unknown: skipped, nested and all */
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int8(&pk, -3);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_nil(&pk);		/* a key that is not a string */
	msgpack_pack_double(&pk, 1.5);
	ps(&pk, "allocations");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 8);
	ps(&pk, "cg_seen");
	msgpack_pack_false(&pk);
	ps(&pk, "created_at_ms");
	msgpack_pack_int64(&pk, 1764000000000LL);
	ps(&pk, "ino");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_int32(&pk, 77);
	msgpack_pack_uint8(&pk, flaw == 2 ? 5 : 0);	/* 2: mnt ino, no mnt */
	ps(&pk, "reaper");
	msgpack_pack_uint8(&pk, flaw == 3 ? 9 : 0);	/* 3: reaper, no pid */
	ps(&pk, "image");
	if (flaw == 4)
		ps(&pk, "u.sqfs");	/* 4: an image without mount */
	else
		msgpack_pack_nil(&pk);
	ps(&pk, "ns");
	msgpack_pack_array(&pk, 1);
	ps(&pk, "net");
	ps(&pk, "id");
	ps(&pk, flaw == 5 ? "bad id" : "h1");	/* 5: not a valid id */
	ps(&pk, "id");			/* the first one counts */
	ps(&pk, "h2");
	ps(&pk, "generation");
	msgpack_pack_int16(&pk, flaw == 6 ? -2 : 2);	/* 6: negative */
	ps(&pk, "seq");
	msgpack_pack_uint16(&pk, 9);
	ps(&pk, "seq");
	msgpack_pack_uint16(&pk, 10);	/* a second one: not read */
	if (flaw != 1) {		/* 1: no version */
		ps(&pk, "v");
		msgpack_pack_int8(&pk, flaw == 7 ? 2 : 1);	/* 7: v2 */
	}
}

TEST(decode_takes_any_order_and_refuses_what_it_must)
{
	struct ns_table d = { 0 };
	struct ns_alloc *a;
	msgpack_sbuffer sb;
	size_t cut, bad = 0;
	uint8_t *buf;
	int flaw;

	pack_table(&sb, 0);
	require(nsstate_decode(sb.data, sb.size, &d) == 0, "decodes");
	a = nsstate_find(&d, "h1");
	check(d.seq == 9 && d.generation == 2 && d.n == 1 && a &&
	    a->mask == NSVM_NET && a->ino[NSV_NET] == 77 && !a->image &&
	    a->created_ms == 1764000000000ULL, "read as written");
	nsstate_clear(&d);
	/* Every value cut short, and a byte too many, are refused. */
	for (cut = 0; cut < sb.size; cut++)
		bad += nsstate_decode(sb.data, cut, &d) == 0;
	check_eq(bad, 0);
	buf = malloc(sb.size + 1);
	require(buf, "memory");
	memcpy(buf, sb.data, sb.size);
	buf[sb.size] = 0xc0;
	check(nsstate_decode(buf, sb.size + 1, &d) == -EBADMSG, "trailing");
	free(buf);
	msgpack_sbuffer_destroy(&sb);
	for (flaw = 1; flaw <= 7; flaw++) {
		pack_table(&sb, flaw);
		if (!check(nsstate_decode(sb.data, sb.size, &d) == -EBADMSG,
		    "flaw %d refused", flaw))
			nsstate_clear(&d);
		msgpack_sbuffer_destroy(&sb);
	}
}

/*
 * A table as large as --max-allocations may make it reads back: 70,000
 * entries did not (the decoder stopped at 65,536 while the option took
 * up to 2^30, so such an agent could not load its own table).
 */
TEST(large_table_reads_back)
{
	struct ns_table t = { .seq = 1 }, d = { 0 };
	uint8_t *buf = NULL;
	size_t len;
	int i;

	for (i = 0; i < 70000; i++)
		require(nsstate_insert(&t, mk("big", i)) == 0, "insert");
	require(nsstate_encode(&t, &buf, &len) == 0, "encode");
	check(nsstate_decode(buf, len, &d) == 0 && d.n == 70000,
	    "70,000 entries read back (%u)", d.n);
	check(nsstate_find(&d, "big69999") != NULL, "the last one is there");
	nsstate_clear(&d);
	nsstate_clear(&t);
	free(buf);
}

/* The cap: that many of the largest entries, and a full event log, fit. */
TEST(largest_table_fits_one_file)
{
	struct ns_table t = { .seq = 1 };
	struct ns_alloc *a;
	uint8_t *buf = NULL;
	size_t empty, one;
	char img[NSV_ID_MAX + 1];
	int i;

	for (i = 0; i < NSSTATE_EVENTS_MAX; i++)
		require(nsstate_event_add(&t, "an-ended-allocation-id-of-some-"
		    "length-0123456789012345678901234567890123456789") == 0,
		    "event");
	require(nsstate_encode(&t, &buf, &empty) == 0, "encode");
	free(buf);
	a = mk("", 0);
	memset(a->id, 'x', NSV_ID_MAX);
	a->id[NSV_ID_MAX] = '\0';
	memset(img, 'i', sizeof(img));
	memcpy(img + NSV_ID_MAX - 5, ".sqfs", 6);
	a->image = strdup(img);
	a->mask = NSVM_ALL;
	for (i = 0; i < NSV_KINDS; i++)
		a->ino[i] = UINT64_MAX;
	a->reaper = INT32_MAX;
	a->created_ms = UINT64_MAX;
	require(a->image && nsstate_insert(&t, a) == 0, "insert");
	require(nsstate_encode(&t, &buf, &one) == 0, "encode");
	free(buf);
	check((uint64_t)empty + (uint64_t)(one - empty) * NSSTATE_MAX_ALLOCS <
	    ATOMICFILE_MAX, "%u entries of %zu bytes and %zu more fit in %u",
	    NSSTATE_MAX_ALLOCS, one - empty, empty, ATOMICFILE_MAX);
	nsstate_clear(&t);
}

/*
 * The event log: stamped by the write that carries it, kept in order,
 * the oldest dropped past NSSTATE_EVENTS_MAX with the floor remembering
 * the newest seq dropped, an undone release's event removed, and all of
 * it through encode/decode (it rides every handoff in the table file).
 */
TEST(event_log_stamps_wraps_and_round_trips)
{
	struct ns_table t = { 0 }, u = { 0 };
	char id[32];
	uint8_t *buf = NULL;
	size_t len;
	unsigned i, n = NSSTATE_EVENTS_MAX + 10;

	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "ev-%u", i);
		require(nsstate_event_add(&t, id) == 0, "add %u", i);
		check_eq(nsstate_event(&t, t.ev_n - 1)->seq, 0);
		check_eq(nsstate_event_stamp(&t, 99 + i), 100 + i);
	}
	check_eq(t.ev_n, NSSTATE_EVENTS_MAX);
	/* ev-0..ev-9 (seq 100..109) were dropped: the floor is 109. */
	check_eq(t.ev_floor, 109);
	check(strcmp(nsstate_event(&t, 0)->id, "ev-10") == 0, "oldest kept");
	check_eq(nsstate_event(&t, 0)->seq, 110);
	/* Two ended in one write: each its own seq, oldest first. */
	require(nsstate_event_add(&t, "a") == 0 &&
	    nsstate_event_add(&t, "b") == 0, "add two");
	check_eq(nsstate_event_stamp(&t, 4000), 4002);
	check_eq(nsstate_event_seq(&t, "a"), 4001);
	check_eq(nsstate_event_seq(&t, "b"), 4002);
	check_eq(nsstate_event_stamp(&t, 4002), 4002);
	/* A write that was never encoded takes its stamps back. */
	require(nsstate_event_add(&t, "c") == 0, "add c");
	check_eq(nsstate_event_stamp(&t, 4002), 4003);
	nsstate_event_unstamp(&t, 4002);
	check_eq(nsstate_event_seq(&t, "c"), 0);
	check_eq(nsstate_event_seq(&t, "b"), 4002);
	nsstate_event_undo(&t, "c");
	nsstate_event_undo(&t, "b");
	nsstate_event_undo(&t, "a");
	require(nsstate_event_add(&t, "undone") == 0, "add");
	nsstate_event_stamp(&t, 5000);
	nsstate_event_undo(&t, "undone");
	check(strcmp(nsstate_event(&t, t.ev_n - 1)->id, "ev-1033") == 0,
	    "undo removes the newest event of that id");
	t.seq = 2000;
	require(nsstate_encode(&t, &buf, &len) == 0, "encode");
	require(nsstate_decode(buf, len, &u) == 0, "decode");
	check_eq(u.ev_n, t.ev_n);
	check_eq(u.ev_floor, t.ev_floor);
	for (i = 0; i < u.ev_n; i++)
		check(nsstate_event(&u, i)->seq == nsstate_event(&t, i)->seq &&
		    strcmp(nsstate_event(&u, i)->id,
		    nsstate_event(&t, i)->id) == 0, "event %u survives", i);
	free(buf);
	nsstate_clear(&t);
	nsstate_clear(&u);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
