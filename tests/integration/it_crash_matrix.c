/*
 * it_crash_matrix: one case per crash point in crashpoints/crashpoints.def
 * (registered at run time from the catalogue, so a new point is a new
 * case; a point whose scenario does not reach it fails, because every
 * case requires the crash marker).  Each case starts supervisor and agent
 * under a fresh root, holds allocations, runs a client load of
 * NS_REQUEST / ALLOCATION_ENDED / STATUS, crashes the named process at
 * the named point, restarts what the scenario requires (a dead supervisor
 * is started again, as systemd would), and checks SPEC §4's invariants:
 *
 *  1. within 5 s exactly one agent serves and holds the lock, and the
 *     supervisor and the namespace socket agree on who it is;
 *  2. the client saw no refused connection and no failed request
 *     (except, when an agent crashed while it held the load's
 *     connections, at most one per load worker); the history check
 *     (itc_verify_load): every allocation it got an answer for is served
 *     with the same namespace, every release it got an answer for is
 *     gone;
 *  3. no stray agent process, temp file or journal is left;
 *  4. a following upgrade commits.
 *
 * The load shape rotates over points and rounds (itmatrix.h): with
 * BATON_MATRIX_ROUNDS=3 (make crash-matrix ROUNDS=3) every point runs
 * under the STATUS-only, the create/release and the mixed load.
 *
 * A row per point goes to $BATON_MATRIX_TABLE (printed by the last case).
 * Needs root (namespaces); skips otherwise.
 */
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
#define HELD		3

static void
matrix_case(void)
{
	char env[96], out[4096];
	const char *outcome;
	struct itc_result res;
	struct itc_load l;
	struct itm_case c;
	struct itest t;
	uint64_t t_crash;
	long took;
	int rc = 0, status = 0;
	bool sup_died, reached;

	if (geteuid() != 0)
		tap_skip("needs root: the load creates network namespaces");
	itm_parse(tap_current(), &c);
	snprintf(env, sizeof(env), "HANDOFF_CRASH_AT=%s", c.point);
	itm_start(&t, &c, env, HELD, &l);
	if (c.how != ITM_PROVIDER)
		rc = itm_upgrade(&t, &c, env, NULL, out, sizeof(out));
	reached = itc_wait_crashed(&t, c.point, 10000);
	t_crash = clock_mono_ms();
	check(reached, "%s: the point was reached (marker; upgrade rc %d)",
	    c.point, rc);
	sup_died = itc_restart_if_dead(&t, c.how == ITM_SUPERVISOR ? 3000 : 200,
	    &status);
	if (c.how == ITM_SUPERVISOR)
		check(sup_died && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 99, "%s: supervisor exit 99 "
		    "(status %d)", c.point, status);
	else if (sup_died)
		check(false, "%s: the supervisor died (status %d)", c.point,
		    status);

	/* 1. exactly one agent serves, holds the lock, and all agree. */
	took = itc_wait_one_agent(&t, RECOVER_MS + (sup_died ? 3000 : 0), NULL);
	if (took >= 0)
		took = (long)(clock_mono_ms() - t_crash);
	usleep(300000);
	itc_load_stop(&l);

	/*
	 * 2. no refusal; no failure unless an agent died holding the load's
	 * connections; the history check.
	 */
	itc_verify_load(&t, &l, c.label, c.how == ITM_SUPERVISOR ? 0 :
	    ITC_WORKERS, &res);
	check(res.errors == 0, "%s: %u NS_ERROR answers", c.label, res.errors);
	itc_check_held(&t, HELD, c.label);

	/* 3. nothing stray: one agent, no temp files, journal cleared. */
	itc_check_clean(&t, c.label, true);

	outcome = itm_outcome(&t, &c);

	/* 4. the next upgrade commits. */
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "%s: following upgrade commits (%d): %s", c.label, rc,
	    out);

	itm_row(&c, outcome, took > 0 ? (uint64_t)took : 0, &res,
	    tap_failures() == 0);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
}

int
main(int argc, char **argv)
{
	const char *env = getenv("BATON_MATRIX_TABLE");
	char mine[64];

	/* Parallel runs (other checkouts) must not share one table. */
	snprintf(mine, sizeof(mine), "/tmp/baton-crash-matrix.%d.txt", (int)getpid());

	itm_register(matrix_case, 90, itm_rounds("BATON_MATRIX_ROUNDS", 1, 8),
	    NULL, env ? env : mine);
	return tap_main(argc, argv);
}
