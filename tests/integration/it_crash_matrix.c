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
 *  2. the client saw no refused connection, every allocation it got an
 *     answer for is present and every release it got an answer for is
 *     gone;
 *  3. no stray agent process, temp file or journal is left;
 *  4. a following upgrade commits.
 *
 * A row per point goes to $BATON_MATRIX_TABLE (printed by the last case).
 * Needs root (namespaces); skips otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/paths.h"
#include "crashpoints/crashpoint.h"
#include "tests/lib/itcheck.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define RECOVER_MS	5000
#define SERVE_MS	15000
#define HELD		3
#define MAX_ROUNDS	4

enum how {
	VIA_SUPERVISOR,		/* the supervisor carries the point */
	VIA_SUCCESSOR,		/* the upgrade's successor carries it */
	VIA_INCUMBENT,		/* an armed incumbent, crashed by an upgrade */
	VIA_PROVIDER,		/* an armed incumbent, crashed by the load */
};

static const char *const how_names[] = {
	"supervisor", "successor", "incumbent", "incumbent",
};

static char table_path[PATH_MAX];

/* The marker file for point, if any process wrote one. */
static bool
crashed(struct itest *t, const char *point)
{
	DIR *d = opendir(t->markers);
	struct dirent *e;
	char p[PATH_MAX + 300], buf[128];
	bool found = false;
	ssize_t n;
	int fd;

	if (!d)
		return false;
	while ((e = readdir(d)) && !found) {
		if (strncmp(e->d_name, "crashed-", 8) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", t->markers, e->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		found = strcmp(buf, point) == 0;
	}
	closedir(d);
	return found;
}

static enum how
plan_for(const char *point)
{
	switch (point[0]) {
	case 's': return VIA_SUPERVISOR;
	case 'o': return VIA_INCUMBENT;
	case 'n': return VIA_SUCCESSOR;
	case 'p': return VIA_PROVIDER;
	default: return VIA_SUPERVISOR;	/* j-: set per case, see main */
	}
}

static void
row(const char *point, const char *proc, const char *outcome,
    uint64_t recover_ms, unsigned answered, unsigned failed, bool ok)
{
	FILE *f = fopen(table_path, "a");

	if (!f)
		return;
	fprintf(f, "%-28s %-10s %-22s %8llu %9u %7u  %s\n", point, proc, outcome,
	    (unsigned long long)recover_ms, answered, failed, ok ? "ok" : "FAIL");
	fclose(f);
}

static void
matrix_case(void)
{
	const char *name = tap_current();
	char point[64], env[96], menv[PATH_MAX + 40], out[4096];
	const char *outcome = "?";
	struct itc_result res;
	struct itc_load l;
	struct itest t;
	enum how how;
	uint64_t t_crash, until;
	long took;
	int rc = 0, status = 0;
	bool sup_died;

	if (geteuid() != 0)
		tap_skip("needs root: the load creates network namespaces");
	/* Case names: "<point>[@successor][#round]". */
	snprintf(point, sizeof(point), "%s", name);
	point[strcspn(point, "#")] = '\0';
	how = plan_for(point);
	if (strchr(point, '@')) {
		*strchr(point, '@') = '\0';
		how = VIA_SUCCESSOR;
	}
	snprintf(env, sizeof(env), "HANDOFF_CRASH_AT=%s", point);
	it_setup(&t);
	snprintf(menv, sizeof(menv), "HANDOFF_CRASH_MARKER_DIR=%s", t.markers);
	require(it_start_supervisor(&t, how == VIA_SUPERVISOR ?
	    (const char *[]){ env, NULL } : NULL) > 0, "supervisor");
	require(it_wait_serving(&t, SERVE_MS) > 0, "serving");
	itc_hold(&t, HELD);
	if (how == VIA_INCUMBENT || how == VIA_PROVIDER) {
		rc = it_upgrade(&t, out, sizeof(out),
		    (const char *[]){ "--env", env, "--env", menv, NULL });
		require(rc == 0, "%s: arming upgrade commits (%d): %s", point, rc,
		    out);
	}

	itc_load_start(&t, &l);
	usleep(150000);
	if (how == VIA_SUCCESSOR)
		rc = it_upgrade(&t, out, sizeof(out),
		    (const char *[]){ "--env", env, "--env", menv, NULL });
	else if (how != VIA_PROVIDER)
		rc = it_upgrade(&t, out, sizeof(out), NULL);
	until = clock_mono_ms() + 10000;
	while (!crashed(&t, point) && clock_mono_ms() < until)
		usleep(5000);
	t_crash = clock_mono_ms();
	check(crashed(&t, point), "%s: the point was reached (marker)", point);
	sup_died = itc_restart_if_dead(&t, how == VIA_SUPERVISOR ? 3000 : 200,
	    &status);
	if (sup_died)
		check(WIFEXITED(status) && WEXITSTATUS(status) == 99,
		    "%s: supervisor exit 99 (status %d)", point, status);

	/* 1. exactly one agent serves, holds the lock, and all agree. */
	took = itc_wait_one_agent(&t, RECOVER_MS + (sup_died ? 3000 : 0), NULL);
	if (took >= 0)
		took = (long)(clock_mono_ms() - t_crash);
	usleep(300000);
	itc_load_stop(&l);

	/* 2. no refusal; acknowledged creates present, releases gone. */
	itc_verify_load(&t, &l, point, &res);
	itc_check_held(&t, HELD, point);

	/* 3. nothing stray: one agent, no temp files, journal cleared. */
	itc_check_clean(&t, point, true);
	rc = it_ctl(&t, out, sizeof(out), (const char *[]){ "journal", "--json",
	    NULL });
	if (strstr(out, "recovered-committed"))
		outcome = "committed (recovered)";
	else if (strstr(out, "recovered-rolled-back"))
		outcome = "rolled back (recovered)";
	else if (how == VIA_PROVIDER)
		outcome = "agent restarted";
	else if (how == VIA_INCUMBENT && strstr(out, "committed"))
		outcome = "promoted";
	else if (strstr(out, "rolled-back"))
		outcome = "rolled back";
	else if (strstr(out, "committed"))
		outcome = "committed";
	else if (strstr(out, "\"last_outcome\":null"))
		outcome = "nothing journaled";

	/* 4. the next upgrade commits. */
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "%s: following upgrade commits (%d): %s", point, rc, out);

	row(point, how_names[how], outcome, took > 0 ? (uint64_t)took : 0,
	    res.answered, res.failed, tap_failures() == 0);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
}

static void
summary(void)
{
	char line[256];
	FILE *f = fopen(table_path, "r");
	unsigned n = 0, bad = 0;

	if (!f)
		tap_skip("no rows (not root?)");
	tap_diag("%-28s %-10s %-22s %8s %9s %7s", "point", "process", "outcome",
	    "recov_ms", "answered", "failed");
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		tap_diag("%s", line);
		n++;
		if (strstr(line, "FAIL"))
			bad++;
	}
	fclose(f);
	tap_diag("%u points, %u failed", n, bad);
	check(bad == 0, "every point recovered");
}

int
main(int argc, char **argv)
{
	static char names[MAX_ROUNDS * 2 * CP_COUNT][80];
	const char *env = getenv("BATON_MATRIX_TABLE");
	const char *rs = getenv("BATON_MATRIX_ROUNDS");
	unsigned id, k = 0, round, rounds = rs ? (unsigned)atoi(rs) : 1;
	char suffix[16] = "";

	snprintf(table_path, sizeof(table_path), "%s", env ? env :
	    "/tmp/baton-crash-matrix.txt");
	unlink(table_path);
	if (rounds < 1 || rounds > MAX_ROUNDS)
		rounds = 1;
	/* Repeated rounds make a flaky recovery show up. */
	for (round = 1; round <= rounds; round++) {
		if (round > 1)
			snprintf(suffix, sizeof(suffix), "#%u", round);
		for (id = 0; id < CP_COUNT; id++) {
			const char *n = crashpoint_name((enum crashpoint_id)id);

			snprintf(names[k], sizeof(names[k]), "%s%s", n, suffix);
			tap_register(names[k++], matrix_case, 90);
			/* Durable writes: in the supervisor and in a successor. */
			if (n[0] == 'j') {
				snprintf(names[k], sizeof(names[k]),
				    "%s@successor%s", n, suffix);
				tap_register(names[k++], matrix_case, 90);
			}
		}
	}
	tap_register("summary", summary, 10);
	return tap_main(argc, argv);
}
