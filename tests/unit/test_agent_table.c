/*
 * test_agent_table: the agent's two handoff roles (successor/incumbent.c,
 * successor/succrole.c) are tables of states x events with every cell
 * written out.  Walk all of both: every cell's action, as the table names
 * it (struct agent_table), is compared with `expected` below, written from
 * SPEC §4 and §6 and the agent's behaviour before the tables, not from
 * the tables.  A changed cell fails here.
 */
#include <stdio.h>
#include <string.h>

#include "successor/agent_int.h"
#include "tests/lib/tap.h"

/*
 * Per state: the action of every event not listed (dflt), then the cells
 * that differ.  Actions:
 *  ignore          nothing; the state stays
 *  unexpected      (incumbent) ERROR "unexpected message", session closes
 *                  (successor) abandon the start-up, exit 75
 *  ...             the named step of SPEC §4
 */
struct cell {
	const char *ev, *act;
};
struct row {
	const char *st, *dflt;
	struct cell cells[24];
};

/*
 * Incumbent (SPEC §4, invariant 4: O enforces the deadline itself).
 *  - a frame not of this state is a protocol error: ERROR, close;
 *  - HEARTBEAT only proves liveness;
 *  - ABORT / RESUME_AFTER_ABORT: while serving, just confirm RESUMED;
 *    in the middle of a handoff, resume (retake the lock after a seal)
 *    then confirm; before HELLO_ACK there is no handoff to abort;
 *  - the supervisor's EOF or the watchdog in drain or seal: resume alone;
 *    the watchdog and the heartbeat run only in draining..sealed;
 *  - a drain that ends counts only while draining (it may end after an
 *    abort);
 *  - a signal stops the agent in any state; a second supervisor
 *    connection is refused while a session is open.
 */
#define INC_HANDOFF_ROW(state, specific...) \
	{ state, "a_unexpected", { \
		specific, \
		{ "abort", "a_abort" }, \
		{ "resume-request", "a_resume_request" }, \
		{ "heartbeat", "a_ignore" }, \
		{ "eof", "a_supervisor_lost" }, \
		{ "watchdog", "a_watchdog" }, \
		{ "tick", "a_heartbeat" }, \
		{ "drained", "a_ignore" }, \
		{ "signal", "a_stop" }, \
		{ "accept", "a_busy" } } }
static const struct row incumbent[] = {
	/* No session: frames come only after COMMIT, while stopping. */
	{ "none", "a_unexpected", {
		{ "abort", "a_abort" },
		{ "resume-request", "a_resume_request" },
		{ "heartbeat", "a_ignore" },
		{ "eof", "a_session_closed" },
		{ "watchdog", "a_ignore" },
		{ "tick", "a_ignore" },
		{ "drained", "a_ignore" },
		{ "signal", "a_stop" },
		{ "accept", "a_accept" },
	} },
	{ "hello-sent", "a_unexpected", {
		{ "hello-ack", "a_hello_ack" },
		{ "abort", "a_ignore" },
		{ "resume-request", "a_ignore" },
		{ "heartbeat", "a_ignore" },
		{ "eof", "a_session_closed" },
		{ "watchdog", "a_ignore" },
		{ "tick", "a_ignore" },
		{ "drained", "a_ignore" },
		{ "signal", "a_stop" },
		{ "accept", "a_busy" },
	} },
	{ "idle", "a_unexpected", {
		{ "get-listeners", "a_send_listeners" },
		{ "prepare", "a_prepare" },
		{ "abort", "a_confirm_resumed" },
		{ "resume-request", "a_confirm_resumed" },
		{ "heartbeat", "a_ignore" },
		{ "eof", "a_session_closed" },
		{ "watchdog", "a_ignore" },
		{ "tick", "a_ignore" },
		{ "drained", "a_ignore" },
		{ "signal", "a_stop" },
		{ "accept", "a_busy" },
	} },
	/* Listed first, the specific cell wins over the shared one. */
	INC_HANDOFF_ROW("draining", { "drained", "a_drained" }),
	INC_HANDOFF_ROW("drained", { "seal-request", "a_seal" }),
	INC_HANDOFF_ROW("sealed", { "commit", "a_commit" }),
};

/*
 * Successor (SPEC §4, §6, exit code 75): until READY anything unexpected,
 * the supervisor's ABORT or EOF, a timeout or a signal abandons the
 * start-up; BEGIN counts only for this handoff's id (checked in a_begin).
 * After READY (off) the socketpair is not listened to; a signal there
 * reaches a process that never served, which leaves as well.
 */
static const struct row successor[] = {
	{ "off", "a_ignore", {
		{ "signal", "a_stopped" },
	} },
	{ "hello-sent", "a_unexpected", {
		{ "hello-ack", "a_hello_ack" },
		{ "abort", "a_abort" },
		{ "heartbeat", "a_ignore" },
		{ "eof", "a_lost" },
		{ "timeout", "a_no_hello_ack" },
		{ "tick", "a_heartbeat" },
		{ "signal", "a_stopped" },
	} },
	{ "wait-begin", "a_unexpected", {
		{ "begin", "a_begin" },
		{ "abort", "a_abort" },
		{ "heartbeat", "a_ignore" },
		{ "eof", "a_lost" },
		{ "timeout", "a_no_begin" },
		{ "tick", "a_heartbeat" },
		{ "signal", "a_stopped" },
	} },
};

static const struct {
	const struct agent_table *t;
	const struct row *rows;
	unsigned nrows;
	const char *const *events;	/* every event the expectation knows */
} roles[] = {
	{ &agent_incumbent_table, incumbent,
	    sizeof(incumbent) / sizeof(incumbent[0]),
	    (const char *const[]){ "hello-ack", "get-listeners", "prepare",
	    "seal-request", "commit", "abort", "resume-request", "heartbeat",
	    "other-frame", "eof", "watchdog", "tick", "drained", "signal",
	    "accept", NULL } },
	{ &agent_successor_table, successor,
	    sizeof(successor) / sizeof(successor[0]),
	    (const char *const[]){ "hello-ack", "begin", "abort", "heartbeat",
	    "other-frame", "eof", "timeout", "tick", "signal", NULL } },
};
#define NROLES (sizeof(roles) / sizeof(roles[0]))

static int
index_of(const char *const *names, unsigned n, const char *want)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], want) == 0)
			return (int)i;
	return -1;
}

static const char *
lookup(const struct row *r, const char *ev)
{
	unsigned i;

	for (i = 0; i < 24 && r->cells[i].ev; i++)
		if (strcmp(r->cells[i].ev, ev) == 0)
			return r->cells[i].act;
	return r->dflt;
}

TEST(expected_names_the_real_tables)
{
	const struct agent_table *t;
	unsigned k, i, j, n;

	for (k = 0; k < NROLES; k++) {
		t = roles[k].t;
		check(roles[k].nrows == t->nstates, "%s: %u expected rows for "
		    "%u states", t->role, roles[k].nrows, t->nstates);
		for (n = 0; roles[k].events[n]; n++)
			check(index_of(t->events, t->nevents,
			    roles[k].events[n]) >= 0, "%s: event %s exists",
			    t->role, roles[k].events[n]);
		/* A new event must get an expectation here as well. */
		check(n == t->nevents, "%s: %u events expected, the table has "
		    "%u", t->role, n, t->nevents);
		for (i = 0; i < roles[k].nrows; i++) {
			const struct row *r = &roles[k].rows[i];

			check(index_of(t->states, t->nstates, r->st) >= 0,
			    "%s: state %s exists", t->role, r->st);
			for (j = 0; j < 24 && r->cells[j].ev; j++)
				check(index_of(t->events, t->nevents,
				    r->cells[j].ev) >= 0, "%s: event %s "
				    "exists", t->role, r->cells[j].ev);
		}
	}
}

TEST(every_cell_as_specified)
{
	const struct agent_table *t;
	const char *want, *got;
	unsigned k, i, ev, cells = 0, bad = 0;
	int st;

	for (k = 0; k < NROLES; k++) {
		t = roles[k].t;
		for (i = 0; i < roles[k].nrows; i++) {
			const struct row *r = &roles[k].rows[i];

			st = index_of(t->states, t->nstates, r->st);
			require(st >= 0, "%s: state %s", t->role, r->st);
			for (ev = 0; ev < t->nevents; ev++) {
				want = lookup(r, t->events[ev]);
				got = t->action_name((unsigned)st, ev);
				cells++;
				if (!check(got && strcmp(got, want) == 0,
				    "%s: %s x %s: expected %s, got %s", t->role,
				    r->st, t->events[ev], want,
				    got ? got : "(empty)"))
					bad++;
			}
		}
	}
	tap_diag("%u cells looked up, %u differ from the expected tables",
	    cells, bad);
	check(cells == agent_incumbent_table.nstates *
	    agent_incumbent_table.nevents + agent_successor_table.nstates *
	    agent_successor_table.nevents, "every cell of both tables (%u)",
	    cells);
}

TEST(every_cell_defined_names_bounded)
{
	const struct agent_table *t;
	unsigned k, i, j, st, ev;

	for (k = 0; k < NROLES; k++) {
		t = roles[k].t;
		for (st = 0; st < t->nstates; st++)
			for (ev = 0; ev < t->nevents; ev++)
				check(t->action_name(st, ev) &&
				    strncmp(t->action_name(st, ev), "a_", 2) == 0,
				    "%s: cell %s x %s has an action", t->role,
				    t->states[st], t->events[ev]);
		for (i = 0; i < t->nstates; i++) {
			require(t->states[i], "%s: state %u named", t->role,
			    i);
			for (j = 0; j < i; j++)
				check(strcmp(t->states[i],
				    t->states[j]) != 0, "state names unique");
		}
		for (i = 0; i < t->nevents; i++) {
			require(t->events[i], "%s: event %u named", t->role,
			    i);
			for (j = 0; j < i; j++)
				check(strcmp(t->events[i],
				    t->events[j]) != 0, "event names unique");
		}
		check(t->action_name(t->nstates, 0) == NULL &&
		    t->action_name(0, t->nevents) == NULL, "out of range");
	}
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
