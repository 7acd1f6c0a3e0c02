/*
 * test_handoff_table: the supervisor's handoff state machine is a table
 * of states x events with every cell written out.  Walk all of it: every
 * cell is dispatched on a fake handoff (handoff_test_step, see
 * tests/unit/handoff_hook.h) and its next state and actions are compared
 * with `expected` below, written from SPEC §4, not from handoff.c.
 */
#include <stdio.h>
#include <string.h>

#include "supervisor/handoff.h"
#include "tests/lib/tap.h"
#include "tests/unit/handoff_hook.h"

/* Until handoff.c provides it, the walk fails with "not implemented". */
#pragma weak handoff_test_step

#define ABORT	HT_ABORT_N	/* abort with a live successor: kill it first */

/*
 * SPEC §4, per state: what every event not listed does (dflt), then the
 * cells that differ.  Reasons:
 *  - anything unexpected, a timeout or an ERROR aborts: "if anything
 *    fails it kills the new process and the old one resumes" (ABORT and
 *    SIGTERM to a live N, kill-n; with no N, RESUME_AFTER_ABORT at once);
 *  - HEARTBEAT / SEAL_PROGRESS only prove liveness;
 *  - invariant 3: O dead after PREPARE -> N is promoted (BEGIN with an
 *    empty digest); O's connection closing in drain/seal is not yet its
 *    death (o-lost waits for the exit: a live O resumes by itself,
 *    invariant 4); after SEAL_COMPLETE the lock is free and BEGIN is out,
 *    so O's end changes nothing and READY decides;
 *  - once READY with the sealed state arrived there is no way back:
 *    COMMIT, and O must exit (killed when it does not);
 *  - N dead: nothing to kill, O resumes; O gone as well: rolled back.
 */
struct cell {
	const char *ev, *next;
	unsigned act;
};
static const struct row {
	const char *st;
	struct cell dflt;
	struct cell cells[8];
} expected[] = {
	{ "o-hello", { NULL, "resume", HT_RESUME }, {
		{ "o-hello", "n-hello", HT_HELLO_ACK | HT_SPAWN_N },
		{ "alive", "o-hello", 0 },
		{ "o-eof", "done", HT_ROLLED_BACK },
		{ "o-exit", "done", HT_ROLLED_BACK },
		{ "n-eof", "o-hello", 0 },
		{ "n-exit", "o-hello", 0 },
	} },
	{ "n-hello", { NULL, "kill-n", ABORT }, {
		{ "n-hello", "drain", HT_HELLO_ACK | HT_PREPARE },
		{ "alive", "n-hello", 0 },
		{ "n-exit", "resume", HT_RESUME },
	} },
	{ "drain", { NULL, "kill-n", ABORT }, {
		{ "drained", "seal", HT_SEAL },
		{ "alive", "drain", 0 },
		{ "o-eof", "o-lost", 0 },
		{ "o-exit", "begin", HT_BEGIN | HT_PROMOTE },
		{ "n-exit", "resume", HT_RESUME },
	} },
	{ "seal", { NULL, "kill-n", ABORT }, {
		{ "seal-complete", "begin", HT_BEGIN },
		{ "alive", "seal", 0 },
		{ "o-eof", "o-lost", 0 },
		{ "o-exit", "begin", HT_BEGIN | HT_PROMOTE },
		{ "n-exit", "resume", HT_RESUME },
	} },
	{ "begin", { NULL, "kill-n", ABORT }, {
		{ "ready", "commit", HT_COMMIT },
		{ "alive", "begin", 0 },
		{ "o-eof", "begin", 0 },
		{ "o-exit", "begin", 0 },
		{ "n-exit", "resume", HT_RESUME },
	} },
	{ "commit", { NULL, "commit", 0 }, {
		{ "o-exit", "done", HT_COMMITTED },
		{ "timeout", "done", HT_KILL_O | HT_COMMITTED },
	} },
	{ "kill-n", { NULL, "kill-n", 0 }, {
		{ "n-exit", "resume", HT_RESUME },
		{ "timeout", "kill-n", HT_KILL_N },
	} },
	{ "resume", { NULL, "resume", 0 }, {
		{ "resumed", "done", HT_ROLLED_BACK },
		{ "o-eof", "done", HT_ROLLED_BACK },
		{ "o-exit", "done", HT_ROLLED_BACK },
		{ "timeout", "done", HT_KILL_O | HT_ROLLED_BACK },
	} },
	{ "o-lost", { NULL, "o-lost", 0 }, {
		{ "o-exit", "begin", HT_BEGIN | HT_PROMOTE },
		{ "n-eof", "kill-n", ABORT },
		/* N dead and O's connection gone: O resumes by itself. */
		{ "n-exit", "done", HT_ROLLED_BACK },
		{ "timeout", "kill-n", ABORT },
	} },
	{ "done", { NULL, "done", 0 }, { { NULL, NULL, 0 } } },
};
#define NROWS (sizeof(expected) / sizeof(expected[0]))

/* Index of a state or event name in the real table, or -1. */
static int
index_of(const char *(*name)(unsigned), unsigned n, const char *want)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (strcmp(name(i), want) == 0)
			return (int)i;
	return -1;
}
#define state_index(s) index_of(handoff_state_name, handoff_nstates(), (s))
#define event_index(e) index_of(handoff_event_name, handoff_nevents(), (e))

/* The expected cell for (row, event name). */
static const struct cell *
lookup(const struct row *r, const char *ev)
{
	unsigned i;

	for (i = 0; i < 8 && r->cells[i].ev; i++)
		if (strcmp(r->cells[i].ev, ev) == 0)
			return &r->cells[i];
	return &r->dflt;
}

static void
actions(unsigned a, char *buf, size_t len)
{
	static const char *const names[] = { "hello-ack", "spawn-n", "prepare",
	    "seal", "begin", "promote", "commit", "abort-n", "kill-n",
	    "resume", "kill-o", "committed", "rolled-back" };
	size_t off = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (a & (1u << i) && off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s",
			    off ? "+" : "", names[i]);
	if (!off)
		snprintf(buf, len, "nothing");
}

TEST(expected_table_names_the_real_one)
{
	unsigned i, j;

	/* Every state of the table has a row; every name used exists. */
	check(NROWS == handoff_nstates(), "%zu expected rows for %u states",
	    NROWS, handoff_nstates());
	for (i = 0; i < NROWS; i++) {
		check(state_index(expected[i].st) >= 0, "state %s",
		    expected[i].st);
		check(state_index(expected[i].dflt.next) >= 0, "state %s",
		    expected[i].dflt.next);
		for (j = 0; j < 8 && expected[i].cells[j].ev; j++) {
			check(event_index(expected[i].cells[j].ev) >= 0,
			    "event %s", expected[i].cells[j].ev);
			check(state_index(expected[i].cells[j].next) >= 0,
			    "state %s", expected[i].cells[j].next);
		}
	}
}

TEST(every_cell_as_specified)
{
	char want[160], got[160];
	unsigned i, ev, next, bad = 0, cells = 0;
	int st, r;
	bool ok;

	require(handoff_test_step != NULL, "handoff_test_step() not "
	    "implemented (tests/unit/handoff_hook.h): the table cannot be "
	    "checked against SPEC §4");
	for (i = 0; i < NROWS; i++) {
		st = state_index(expected[i].st);
		require(st >= 0, "state %s", expected[i].st);
		for (ev = 0; ev < handoff_nevents(); ev++) {
			const struct cell *c = lookup(&expected[i],
			    handoff_event_name(ev));

			next = ~0u;
			r = handoff_test_step((unsigned)st, ev, &next);
			cells++;
			actions(c->act, want, sizeof(want));
			actions(r >= 0 ? (unsigned)r : 0, got, sizeof(got));
			ok = r >= 0 && next < handoff_nstates() &&
			    strcmp(handoff_state_name(next), c->next) == 0 &&
			    (unsigned)r == c->act;
			if (!check(ok, "%s x %s: expected %s / %s, got %s / %s "
			    "(%d)", expected[i].st, handoff_event_name(ev),
			    c->next, want, next < handoff_nstates() ?
			    handoff_state_name(next) : "?", got, r))
				bad++;
		}
	}
	tap_diag("%u cells dispatched, %u differ from SPEC §4", cells, bad);
	check(handoff_test_step(handoff_nstates(), 0, &next) < 0, "state out "
	    "of range refused");
	check(handoff_test_step(0, handoff_nevents(), &next) < 0, "event out "
	    "of range refused");
}

TEST(every_cell_defined)
{
	unsigned st, ev, cells = 0;

	for (st = 0; st < handoff_nstates(); st++)
		for (ev = 0; ev < handoff_nevents(); ev++) {
			check(handoff_cell_defined(st, ev), "cell %s x %s is empty",
			    handoff_state_name(st), handoff_event_name(ev));
			cells++;
		}
	tap_diag("%u states x %u events = %u cells", handoff_nstates(),
	    handoff_nevents(), cells);
	check(cells >= 100, "a real table (%u cells)", cells);
}

TEST(names_unique_and_bounded)
{
	unsigned i, j;

	for (i = 0; i < handoff_nstates(); i++) {
		require(handoff_state_name(i), "state %u named", i);
		for (j = 0; j < i; j++)
			check(strcmp(handoff_state_name(i),
			    handoff_state_name(j)) != 0, "state names unique");
	}
	for (i = 0; i < handoff_nevents(); i++) {
		require(handoff_event_name(i), "event %u named", i);
		for (j = 0; j < i; j++)
			check(strcmp(handoff_event_name(i),
			    handoff_event_name(j)) != 0, "event names unique");
	}
	check(handoff_state_name(handoff_nstates()) == NULL, "past the end");
	check(handoff_event_name(handoff_nevents()) == NULL, "past the end");
	check(!handoff_cell_defined(handoff_nstates(), 0), "out of range");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
