/*
 * it_events: ALLOCATION_ENDED carries the table sequence at which the
 * allocation ended, and SUBSCRIBE since_seq replays what a subscriber
 * missed from the agent's event log, which rides every handoff in the
 * table file (SPEC §5).  A since_seq older than the log keeps is
 * NS_ERROR too_old.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/nsclient.h"
#include "common/paths.h"
#include "successor/nsstate.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define SERVE_MS 10000

static const char *const net[] = { "net" };

static void
create(const char *sock, const char *id)
{
	struct nsclient_req req = { .allocation_id = id, .namespaces = net,
	    .n = 1 };
	struct nsclient_ns ns;
	int r;

	r = nsclient_request_path(sock, &req, NSCLIENT_NO_FALLBACK, &ns);
	require(r == 0, "create %s (%d)", id, r);
	nsclient_ns_free(&ns);
}

static void
release(const char *sock, const char *id)
{
	struct nsclient *c;

	require(nsclient_open(sock, &c) == 0, "open");
	require(nsclient_release(c, id) == 0, "release %s", id);
	nsclient_close(c);
}

/*
 * Read n events from fd: ids first..first+n-1 of prefix, in order, with
 * increasing seq above after.  Returns the last seq.
 */
static uint64_t
expect_events(int fd, const char *prefix, unsigned first, unsigned n,
    uint64_t after, const char *what)
{
	char id[NSCLIENT_ID_MAX + 1], want[64];
	uint64_t seq = 0, prev = after;
	unsigned i;
	int r;

	for (i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "%s%u", prefix, first + i);
		r = nsclient_next_event_seq(fd, 5000, id, &seq);
		if (!check(r == 0 && strcmp(id, want) == 0 && seq > prev,
		    "%s: event %u is %s after seq %llu (got %d %s seq %llu)",
		    what, i, want, (unsigned long long)prev, r, r == 0 ? id : "-",
		    (unsigned long long)seq))
			return prev;
		prev = seq;
	}
	r = nsclient_next_event_seq(fd, 300, id, &seq);
	check(r == -ETIMEDOUT, "%s: nothing more (%d)", what, r);
	return prev;
}

TEST_T(events_carry_seq_and_replay_across_upgrades, 120)
{
	struct itest t;
	struct baton_paths bp;
	char id[32], out[2048];
	uint64_t last;
	int s1, s2, s3, rc, i;

	it_setup(&t);
	paths_init(&bp, t.root);
	require(it_start_supervisor(&t, NULL) > 0, "supervisor");
	require(it_wait_serving(&t, SERVE_MS) > 0, "serving");
	for (i = 0; i < 8; i++) {
		snprintf(id, sizeof(id), "ev-%d", i);
		create(bp.ns_socket, id);
	}
	require(nsclient_subscribe(bp.ns_socket, &s1) == 0, "subscribe");
	for (i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "ev-%d", i);
		release(bp.ns_socket, id);
	}
	last = expect_events(s1, "ev-", 0, 3, 0, "live");
	close(s1);

	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "upgrade commits (%d): %s", rc, out);
	for (i = 3; i < 6; i++) {
		snprintf(id, sizeof(id), "ev-%d", i);
		release(bp.ns_socket, id);
	}
	/* Missed while away, across the handoff: exactly those, in order. */
	require(nsclient_subscribe_since(bp.ns_socket, last, &s2) == 0,
	    "subscribe since");
	last = expect_events(s2, "ev-", 3, 3, last, "since last seen");
	require(nsclient_subscribe_since(bp.ns_socket, 0, &s3) == 0,
	    "subscribe since 0");
	(void)expect_events(s3, "ev-", 0, 6, 0, "since 0");
	/* Replay then live, on the same connection. */
	release(bp.ns_socket, "ev-6");
	(void)expect_events(s2, "ev-", 6, 1, last, "live after replay");
	(void)expect_events(s3, "ev-", 6, 1, last, "live after replay (0)");
	close(s2);
	close(s3);
	it_teardown(&t);
}

TEST_T(since_seq_older_than_the_log_is_too_old, 240)
{
	struct itest t;
	struct baton_paths bp;
	char id[32], got[NSCLIENT_ID_MAX + 1];
	uint64_t seq = 0;
	int fd, r;
	unsigned i;

	it_setup(&t);
	paths_init(&bp, t.root);
	require(it_start_supervisor(&t, NULL) > 0, "supervisor");
	require(it_wait_serving(&t, SERVE_MS) > 0, "serving");
	for (i = 0; i < NSSTATE_EVENTS_MAX + 5; i++) {
		snprintf(id, sizeof(id), "old-%u", i);
		create(bp.ns_socket, id);
		release(bp.ns_socket, id);
	}
	require(nsclient_subscribe_since(bp.ns_socket, 0, &fd) == 0,
	    "subscribe since 0");
	r = nsclient_next_event_seq(fd, 5000, got, &seq);
	check(r == -ESTALE, "since 0: too_old once the log wrapped (%d)", r);
	close(fd);
	/* The newest events are still there for whoever is recent. */
	require(nsclient_subscribe(bp.ns_socket, &fd) == 0, "subscribe");
	create(bp.ns_socket, "last-0");
	release(bp.ns_socket, "last-0");
	r = nsclient_next_event_seq(fd, 5000, got, &seq);
	require(r == 0 && strcmp(got, "last-0") == 0, "live event (%d)", r);
	close(fd);
	require(nsclient_subscribe_since(bp.ns_socket, seq - 1, &fd) == 0,
	    "subscribe since a recent seq");
	(void)expect_events(fd, "last-", 0, 1, seq - 1, "recent");
	close(fd);
	it_teardown(&t);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
