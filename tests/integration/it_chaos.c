/*
 * it_chaos: random kills.  Back-to-back upgrades run under a client load
 * while, CHAOS_N times (default 8), a random baton process (supervisor,
 * incumbent or successor) gets SIGKILL at a random moment.  After each
 * kill the invariants of SPEC §4 must hold again: one agent serves and
 * holds the lock within 5 s (8 s when the supervisor itself had to be
 * started again), nothing stray is left; at the end every acknowledged
 * allocation is present, no released one came back, no connection was
 * refused, and an upgrade commits.  CHAOS_SEED makes a run repeatable.
 * Needs root (the load creates namespaces).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/lib/itcheck.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define RECOVER_MS	5000
#define HELD		2

/* An agent of this root other than `not`, or 0. */
static pid_t
other_agent(struct itest *t, pid_t not)
{
	char p[64];
	pid_t pid, found = 0;
	FILE *f;

	/* The successor is the supervisor's child that is not the incumbent. */
	snprintf(p, sizeof(p), "/proc/%d/task/%d/children", (int)t->sup,
	    (int)t->sup);
	f = fopen(p, "r");
	if (!f)
		return 0;
	while (!found && fscanf(f, "%d", &pid) == 1)
		if (pid != not && it_proc_named(pid, "baton-agent"))
			found = pid;
	fclose(f);
	return found;
}

TEST_T(random_kills_during_upgrades, 900)
{
	const char *ns = getenv("CHAOS_N"), *sd = getenv("CHAOS_SEED");
	unsigned n = ns ? (unsigned)atoi(ns) : 8, seed, i;
	unsigned kills[3] = { 0 }, upgrades = 0, committed = 0;
	static const char *const victims[] = { "supervisor", "incumbent",
	    "successor" };
	struct itc_result res;
	struct itc_load l;
	struct itest t;
	char out[4096], label[64];
	long worst = 0;
	int rc;

	if (geteuid() != 0)
		tap_skip("needs root: the load creates network namespaces");
	seed = sd ? (unsigned)atoi(sd) : (unsigned)time(NULL);
	srand(seed);
	tap_diag("chaos: %u kills, seed %u (CHAOS_SEED to repeat)", n, seed);
	it_setup(&t);
	require(it_start_supervisor(&t, NULL) > 0, "supervisor");
	require(it_wait_serving(&t, 15000) > 0, "serving");
	itc_hold(&t, HELD);
	itc_load_start(&t, &l);
	for (i = 0; i < n; i++) {
		pid_t up, victim = 0, inc = it_ns_status(&t, NULL, NULL);
		unsigned which = (unsigned)rand() % 3;
		int status = 0;
		long took;
		bool died;

		snprintf(label, sizeof(label), "kill %u (%s)", i, victims[which]);
		up = fork();
		if (up == 0) {
			const char *args[] = { "upgrade", "--json", NULL };

			_exit(it_ctl(&t, out, sizeof(out), args));
		}
		upgrades++;
		usleep((useconds_t)(rand() % 40000));
		switch (which) {
		case 0: victim = t.sup; break;
		case 1: victim = inc; break;
		default: victim = other_agent(&t, inc); break;
		}
		if (victim > 0 && kill(victim, SIGKILL) == 0)
			kills[which]++;
		waitpid(up, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			committed++;
		died = itc_restart_if_dead(&t, which == 0 ? 2000 : 50, NULL);
		took = itc_wait_one_agent(&t, RECOVER_MS + (died ? 3000 : 0), NULL);
		if (took > worst)
			worst = took;
		itc_check_clean(&t, label, false);
		if (tap_failures()) {
			it_dump_log(&t);
			break;
		}
	}
	usleep(300000);
	itc_load_stop(&l);
	itc_check_clean(&t, "after the chaos", true);
	itc_verify_load(&t, &l, "chaos", &res);
	itc_check_held(&t, HELD, "chaos");
	rc = it_ctl(&t, out, sizeof(out), (const char *[]){ "upgrade", NULL });
	check(rc == 0, "an upgrade commits after the chaos (%d): %s", rc, out);
	tap_diag("chaos: %u upgrades (%u committed), kills: supervisor %u, "
	    "incumbent %u, successor %u (none running: %u); worst recovery "
	    "%ld ms; requests answered %u, failed %u, refused %u",
	    upgrades, committed, kills[0], kills[1], kills[2],
	    n - kills[0] - kills[1] - kills[2], worst, res.answered, res.failed,
	    res.refused);
	it_teardown(&t);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
