/*
 * test_nsstate: the allocation table's index and its on-disk form.
 */
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
