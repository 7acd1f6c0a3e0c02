/*
 * it_stall_matrix: hung processes instead of dead ones.  One case per
 * crash point in crashpoints/crashpoints.def, in the crash matrix's
 * scenario (itmatrix.h: who carries the point, held allocations, a load
 * whose shape rotates over points and rounds), but the process stops
 * itself there (HANDOFF_STALL_AT: raise(SIGSTOP), every fd kept open) and
 * stays stopped until every deadline that concerns it has passed: the
 * upgrade runs with --deadline-ms 1500, so the supervisor's phase budget
 * (deadline + 1 s wire slack), the incumbent's own watchdog (deadline +
 * 1 s) and, for the points before the successor's HELLO, the 5 s HELLO
 * read are all over (stall_ms(): 3.5 s or 6 s, 3 s more in even rounds;
 * BATON_STALL_MS overrides).  Then the test continues it (SIGCONT).  s- points stop the
 * supervisor between two protocol steps; o-, n-, j-@successor points
 * stop an agent; p- points stop the provider of an armed incumbent in a
 * creation, and an upgrade is started against it while it hangs.
 *
 * After each case:
 *  1. within 5 s of SIGCONT exactly one agent serves and holds the lock,
 *     and batonctl status names it; the supervisor did not die;
 *  2. no refused connection; no failed request beyond one per load
 *     worker (the woken supervisor may kill a successor that already
 *     serves); no NS_ERROR; the history check (itc_verify_load);
 *  3. no stray agent, temp file, pin or journal (itc_check_clean);
 *  4. the next upgrade commits.
 * A summary table (point, role stalled, load, outcome, recovery ms,
 * answered/failed/refused) goes to $BATON_STALL_TABLE.
 *
 * Named cases reproduce issue 11:
 *  (a) the supervisor stops right after BEGIN; the successor goes on (or
 *      stops before READY and is continued first); a client creates
 *      allocation X through it and gets NS_RESPONSE; the supervisor
 *      continues past its deadline: X must still be served with the same
 *      namespace;
 *  (b) the supervisor crashes at s-after-seal-request-sent (and, as two
 *      more cases, at the next two points), five rounds, restarted each
 *      time, under a new-connection-per-request load: nothing refused;
 *  (c) the successor crashes (and, separately, stalls past the deadline)
 *      at n-before-announce-ready under a STATUS-only load: three further
 *      upgrades commit.
 *
 * `make check` runs a short round (BATON_STALL_FULL unset: the named
 * cases and the points in short_round[]); `make stall-matrix` runs every
 * point, BATON_STALL_ROUNDS (ROUNDS=) times.  Needs root.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/lib/itcheck.h"
#include "tests/lib/itest.h"
#include "tests/lib/itmatrix.h"
#include "tests/lib/tap.h"

#define RECOVER_MS	5000
#define HELD		2
#define DEADLINE	"1500"
#define DEADLINE_MS	1500
#define UPGRADE_MS	40000	/* the longest a stalled upgrade may take */
#define B_ROUNDS	5	/* issue 11 (b): crashes in a row */

static const char *const deadline_args[] = { "--deadline-ms", DEADLINE,
    NULL };

/* One point per phase and role for the round inside `make check`. */
static const char *const short_round[] = {
	"s-after-seal-request-sent", "s-after-begin-sent", "s-after-ready-recv",
	"o-inside-seal", "o-after-conns-sent", "o-after-seal-complete-sent",
	"n-after-lock", "n-before-announce-ready", "j-after-tmp-fsync",
	"p-after-pin", NULL,
};

/*
 * How long the process stays stopped: past the deadline and the wire
 * slack (and the incumbent's watchdog, deadline + 1 s) by a second, or
 * past the 5 s HELLO read for the points before the successor's HELLO.
 * Even rounds add 3 s: what happens next depends on the window the
 * process wakes in (an incumbent that resumed on its own leaves when it
 * finds the successor holding the lock, about 2 s later).
 * BATON_STALL_MS overrides.
 */
static int
stall_ms(const struct itm_case *c)
{
	static const char *const hello[] = { "s-after-o-hello",
	    "s-after-spawn-successor", "n-before-handshake", NULL };
	const char *s = getenv("BATON_STALL_MS");
	int ms = DEADLINE_MS + 2000;
	unsigned i;

	if (s)
		return atoi(s);
	for (i = 0; c && hello[i]; i++)
		if (strcmp(c->point, hello[i]) == 0)
			ms = 6000;
	return ms + (c && c->round % 2 == 0 ? 3000 : 0);
}

/* Run an upgrade (extra args) in a child; its pid. */
static pid_t
upgrade_bg(struct itest *t, const struct itm_case *c, const char *kv,
    const char *const *extra)
{
	char out[4096];
	pid_t up = fork();

	if (up == 0) {
		if (c)
			_exit(itm_upgrade(t, c, kv, extra, out, sizeof(out)));
		_exit(it_upgrade(t, out, sizeof(out), extra));
	}
	return up;
}

/* Exit code of the upgrade child, killing it after ms; -1 when it hung. */
static int
upgrade_wait(pid_t up, int ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)ms;
	int status = 0;

	while (waitpid(up, &status, WNOHANG) == 0) {
		if (clock_mono_ms() > until) {
			kill(up, SIGKILL);
			waitpid(up, &status, 0);
			return -1;
		}
		usleep(10000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * The stall point stays armed in the process that carries it (the
 * supervisor's environment, an armed incumbent's), so the next upgrade
 * or creation stops there again.  After the deliberate stall a watcher
 * continues every stopped daemon of the root within a few ms: later
 * passes through the point are a hiccup, not a hang.
 */
static pid_t watcher = -1;

static void
unstall_start(struct itest *t)
{
	pid_t pids[64];
	unsigned i, n;

	if (watcher > 0 || (watcher = fork()) != 0)
		return;
	for (;;) {
		/* comm is cut to 15 characters: the supervisor by pid. */
		n = it_find_procs(t->root, "baton-agent", pids, 63);
		pids[n++] = t->sup;
		for (i = 0; i < n; i++)
			if (it_proc_state(pids[i]) == 'T')
				kill(pids[i], SIGCONT);
		usleep(5000);
	}
}

static void
unstall_stop(void)
{
	if (watcher <= 0)
		return;
	kill(watcher, SIGKILL);
	waitpid(watcher, NULL, 0);
	watcher = -1;
}

/* Keep pid stopped until ms have passed since t0, then continue it. */
static void
hold_stopped(struct itest *t, pid_t pid, uint64_t t0, int ms)
{
	uint64_t now = clock_mono_ms();

	if (now < t0 + (uint64_t)ms)
		usleep((useconds_t)((t0 + (uint64_t)ms - now) * 1000));
	kill(pid, SIGCONT);
	unstall_start(t);
}

/*
 * Invariants 1-3 and the next upgrade after a case; the load is stopped
 * here.  Fills res; returns the recovery time (ms since t_cont, or -1).
 */
static long
after_case(struct itest *t, struct itc_load *l, const char *label,
    uint64_t t_cont, unsigned max_failed, struct itc_result *res)
{
	char out[4096];
	int rc, status = 0;
	long took;

	unstall_start(t);
	check(!itc_restart_if_dead(t, 100, &status), "%s: the supervisor "
	    "survived (status %d)", label, status);
	took = itc_wait_one_agent(t, RECOVER_MS, NULL);
	if (took >= 0)
		took = (long)(clock_mono_ms() - t_cont);
	usleep(300000);
	itc_load_stop(l);
	itc_verify_load(t, l, label, max_failed, res);
	check(res->errors == 0, "%s: %u NS_ERROR answers", label, res->errors);
	itc_check_held(t, HELD, label);
	itc_check_clean(t, label, true);
	rc = it_upgrade(t, out, sizeof(out), NULL);
	check(rc == 0, "%s: the next upgrade commits (%d): %s", label, rc, out);
	unstall_stop();
	return took;
}

static void
stall_case(void)
{
	char kv[96], outcome[48];
	struct itc_result res;
	struct itc_load l;
	struct itm_case c;
	struct itest t;
	uint64_t t_stop, t_cont;
	pid_t up = -1, stalled;
	long took;
	int rc = -1;

	if (geteuid() != 0)
		tap_skip("needs root: the load creates network namespaces");
	itm_parse(tap_current(), &c);
	snprintf(kv, sizeof(kv), "HANDOFF_STALL_AT=%s", c.point);
	itm_start(&t, &c, kv, HELD, &l);
	if (c.how != ITM_PROVIDER)
		up = upgrade_bg(&t, &c, kv, deadline_args);
	stalled = itc_wait_stalled(&t, c.point, 10000);
	t_stop = clock_mono_ms();
	check(stalled > 0, "%s: the point was reached (stopped there)",
	    c.point);
	/* A hung provider meets an upgrade. */
	if (c.how == ITM_PROVIDER)
		up = upgrade_bg(&t, NULL, NULL, deadline_args);
	if (stalled > 0)
		hold_stopped(&t, stalled, t_stop, stall_ms(&c));
	t_cont = clock_mono_ms();
	rc = upgrade_wait(up, UPGRADE_MS);
	check(rc >= 0, "%s: the upgrade ended", c.point);
	took = after_case(&t, &l, c.label, t_cont, ITC_WORKERS, &res);
	snprintf(outcome, sizeof(outcome), "%s (rc %d)",
	    rc == 0 ? "committed" : rc == 1 ? "rolled back" : "upgrade failed",
	    rc);
	itm_row(&c, outcome, took > 0 ? (uint64_t)took : 0, &res,
	    tap_failures() == 0);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
}

static void
start(struct itest *t, const char *const *env)
{
	it_setup(t);
	require(it_start_supervisor(t, env) > 0, "supervisor");
	require(it_wait_serving(t, 15000) > 0, "serving");
	itc_hold(t, HELD);
}

/*
 * Issue 11 (a): supervisor stopped right after BEGIN.  n_stall: the
 * successor also stops before READY, and is continued first.
 */
static void
begin_stall(bool n_stall)
{
	static const char *const n_args[] = { "--env",
	    "HANDOFF_STALL_AT=n-before-announce-ready", "--deadline-ms",
	    DEADLINE, NULL };
	unsigned long long ino, again;
	struct itc_result res;
	struct itc_load l;
	struct itest t;
	uint64_t t0;
	pid_t up, sup_stopped, n = -1, old, server;
	int err = 0, rc;

	if (geteuid() != 0)
		tap_skip("needs root: namespaces");
	start(&t, (const char *[]){ "HANDOFF_STALL_AT=s-after-begin-sent",
	    NULL });
	old = it_ns_status(&t, NULL, NULL);
	itc_load_start(&t, &l, ITC_TABLE);
	t0 = clock_mono_ms();
	up = upgrade_bg(&t, NULL, NULL, n_stall ? n_args : deadline_args);
	sup_stopped = itc_wait_stalled(&t, "s-after-begin-sent", 10000);
	require(sup_stopped == t.sup, "the supervisor stopped after BEGIN (%d)",
	    (int)sup_stopped);
	if (n_stall) {
		n = itc_wait_stalled(&t, "n-before-announce-ready", 10000);
		check(n > 0, "the successor stopped before READY");
		if (n > 0)
			kill(n, SIGCONT);
	}
	/* X is created through whoever serves now: the successor, by now. */
	ino = itc_served_ino(&t, "issue11-x", &err);
	server = it_ns_status(&t, NULL, NULL);
	require(ino != 0, "X created (NS_RESPONSE): %s", strerror(err));
	tap_diag("X (net inode %llu) created while agent %d serves (incumbent "
	    "was %d), %llu ms into the upgrade", ino, (int)server, (int)old,
	    (unsigned long long)(clock_mono_ms() - t0));
	/*
	 * The supervisor wakes past its deadline (+ 1 s wire slack) and the
	 * incumbent's watchdog (+ 1 s), before the incumbent that resumed on
	 * its own gives up on the lock the successor holds (about 2 s later).
	 */
	hold_stopped(&t, t.sup, t0, DEADLINE_MS + 1500);
	rc = upgrade_wait(up, UPGRADE_MS);
	tap_diag("the upgrade ended with %d", rc);
	check(itc_wait_one_agent(&t, RECOVER_MS, NULL) >= 0,
	    "one agent serves");
	check(itc_pinned(&t, "issue11-x"), "X is still pinned");
	again = itc_served_ino(&t, "issue11-x", &err);
	check(again == ino, "X is still served with the same namespace (net "
	    "inode %llu, acknowledged %llu)", again, ino);
	after_case(&t, &l, "issue11-a", clock_mono_ms(), ITC_WORKERS, &res);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
}

TEST_T(issue11_a_begin_stall_successor_goes_on, 90) { begin_stall(false); }
TEST_T(issue11_a_begin_stall_successor_stalls_too, 90) { begin_stall(true); }

/*
 * Issue 11 (b): the supervisor crashes at point, again and again, under a
 * new-connection-per-request load; started again each time (armed but
 * for the last), it must never let a connection be refused.  Beside the
 * issue's point, the two after it where the crash matrix saw refusals.
 */
static void
crash_rounds(const char *point)
{
	char crash_at[96], out[4096], label[96];
	const char *const crash[] = { crash_at, NULL };
	struct itc_result res;
	struct itc_load l;
	struct itest t;
	int i, rc, status;

	if (geteuid() != 0)
		tap_skip("needs root: namespaces");
	snprintf(crash_at, sizeof(crash_at), "HANDOFF_CRASH_AT=%s", point);
	start(&t, crash);
	itc_load_start(&t, &l, ITC_STATUS);
	for (i = 0; i < B_ROUNDS; i++) {
		snprintf(label, sizeof(label), "%s round %d", point, i);
		rc = it_upgrade(&t, out, sizeof(out), NULL);
		status = 0;
		waitpid(t.sup, &status, 0);
		check(WIFEXITED(status) && WEXITSTATUS(status) == 99,
		    "%s: the supervisor crashed with 99 (status %d, upgrade rc "
		    "%d)", label, status, rc);
		/* Started again as systemd would, still armed. */
		require(it_start_supervisor(&t, i < B_ROUNDS - 1 ? crash :
		    NULL) > 0, "restart");
		check(itc_wait_one_agent(&t, RECOVER_MS + 3000, NULL) >= 0,
		    "%s: one agent serves", label);
		itc_check_clean(&t, label, false);
	}
	after_case(&t, &l, point, clock_mono_ms(), 0, &res);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
}

TEST_T(issue11_b_seal_request_crash_rounds, 180)
{
	crash_rounds("s-after-seal-request-sent");
}
TEST_T(issue11_b_seal_complete_crash_rounds, 180)
{
	crash_rounds("s-after-seal-complete-recv");
}
TEST_T(issue11_b_begin_crash_rounds, 180)
{
	crash_rounds("s-after-begin-sent");
}

/* Issue 11 (c): successor lost before READY under a STATUS-only load. */
static void
before_ready(bool stall)
{
	struct itc_result res;
	struct itc_load l;
	struct itest t;
	char out[4096], menv[PATH_MAX + 40];
	uint64_t t0;
	pid_t up, n;
	int i, rc;

	if (geteuid() != 0)
		tap_skip("needs root: namespaces");
	start(&t, NULL);
	itc_load_start(&t, &l, ITC_STATUS);
	snprintf(menv, sizeof(menv), "HANDOFF_CRASH_MARKER_DIR=%s", t.markers);
	t0 = clock_mono_ms();
	up = upgrade_bg(&t, NULL, NULL, (const char *[]){ "--env", stall ?
	    "HANDOFF_STALL_AT=n-before-announce-ready" :
	    "HANDOFF_CRASH_AT=n-before-announce-ready", "--env", menv,
	    "--deadline-ms", DEADLINE, NULL });
	if (stall) {
		n = itc_wait_stalled(&t, "n-before-announce-ready", 10000);
		check(n > 0, "the successor stopped before READY");
		if (n > 0)
			hold_stopped(&t, n, t0, stall_ms(NULL));
	}
	rc = upgrade_wait(up, UPGRADE_MS);
	if (!stall)
		check(itc_crashed(&t, "n-before-announce-ready"),
		    "the successor crashed before READY (marker)");
	/*
	 * Crashed: rolled back.  Stalled: the successor holds the lock, so
	 * the supervisor rolls forward past the deadline while the stall is
	 * shorter than its liveness period, and commits once it goes on.
	 */
	check(rc == (stall ? 0 : 1), "the upgrade %s (%d)", stall ?
	    "rolled forward and committed" : "rolled back", rc);
	for (i = 0; i < 3; i++) {
		rc = it_upgrade(&t, out, sizeof(out), NULL);
		check(rc == 0, "further upgrade %d commits (%d): %s", i, rc,
		    out);
	}
	after_case(&t, &l, stall ? "issue11-c-stall" : "issue11-c-crash",
	    clock_mono_ms(), ITC_WORKERS, &res);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
}

TEST_T(issue11_c_successor_crash_before_ready, 120) { before_ready(false); }
TEST_T(issue11_c_successor_stall_before_ready, 120) { before_ready(true); }

int
main(int argc, char **argv)
{
	const char *env = getenv("BATON_STALL_TABLE");
	char mine[64];

	/* Parallel runs (other checkouts) must not share one table. */
	snprintf(mine, sizeof(mine), "/tmp/baton-stall-matrix.%d.txt", (int)getpid());

	itm_register(stall_case, 90, itm_rounds("BATON_STALL_ROUNDS", 1, 8),
	    getenv("BATON_STALL_FULL") ? NULL : short_round,
	    env ? env : mine);
	return tap_main(argc, argv);
}
