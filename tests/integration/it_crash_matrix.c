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
#include "common/nsclient.h"
#include "common/paths.h"
#include "crashpoints/crashpoint.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define RECOVER_MS	5000
#define SERVE_MS	15000
#define HELD		3

enum how {
	VIA_SUPERVISOR,		/* the supervisor carries the point */
	VIA_SUCCESSOR,		/* the upgrade's successor carries it */
	VIA_INCUMBENT,		/* an armed incumbent, crashed by an upgrade */
	VIA_PROVIDER,		/* an armed incumbent, crashed by the load */
};

static const char *const how_names[] = {
	"supervisor", "successor", "incumbent", "incumbent",
};

struct load {
	pid_t pid;
	char log[PATH_MAX + 32];
};

static char table_path[PATH_MAX];

/* ---- client load: NS_REQUEST{net}, every other one released, STATUS ---- */

static void
load_log(int fd, char tag, const char *id)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "%c %s\n", tag, id);

	if (write(fd, line, (size_t)n) != n)
		_exit(2);
}

static bool
refused(int r)
{
	return r == -ECONNREFUSED || r == -ENOENT;
}

static void
load_run(const char *sock, const char *logpath)
{
	static const char *const net[] = { "net" };
	struct nsclient *c = NULL;
	struct nsclient_ns ns;
	struct nsclient_status st;
	char id[64], prev[64] = "";
	sigset_t ss;
	struct timespec z = { 0, 0 };
	int fd, i, r;

	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(2);
	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR1);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	for (i = 0; sigtimedwait(&ss, NULL, &z) != SIGUSR1; i++) {
		struct nsclient_req req = { .allocation_id = id,
		    .namespaces = net, .n = 1 };

		if (!c && (r = nsclient_open(sock, &c)) < 0) {
			load_log(fd, refused(r) ? 'X' : 'F', "connect");
			c = NULL;
			usleep(20000);
			continue;
		}
		snprintf(id, sizeof(id), "ld-%d", i);
		r = nsclient_request(c, &req, &ns);
		if (r == 0) {
			nsclient_ns_free(&ns);
			load_log(fd, 'C', id);
		} else {
			load_log(fd, 'F', id);
		}
		if (i % 2 == 1 && prev[0]) {
			/* -ENOENT: allocation_not_found, i.e. it is gone. */
			r = nsclient_release(c, prev);
			load_log(fd, r == 0 || r == -ENOENT ? 'R' : 'F', prev);
		}
		snprintf(prev, sizeof(prev), "%s", id);
		r = nsclient_status(c, &st);
		load_log(fd, r == 0 ? 'S' : 'F', "status");
		if (r < 0) {
			nsclient_close(c);
			c = NULL;
		}
	}
	if (c)
		nsclient_close(c);
	_exit(0);
}

static void
load_start(struct itest *t, struct load *l)
{
	char sock[PATH_MAX + 32];

	snprintf(sock, sizeof(sock), "%s/run/pact/handoff.sock", t->root);
	snprintf(l->log, sizeof(l->log), "%s/load.log", t->root);
	l->pid = fork();
	if (l->pid == 0)
		load_run(sock, l->log);
}

static void
load_stop(struct load *l)
{
	kill(l->pid, SIGUSR1);
	waitpid(l->pid, NULL, 0);
}

/* ---- checks ---- */

static bool
pinned(struct itest *t, const char *id)
{
	char p[PATH_MAX + 300];

	snprintf(p, sizeof(p), "%s/run/pact/ns/%s", t->root, id);
	return access(p, F_OK) == 0;
}

static int
count_dir(const char *dir, const char *contains)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && (!contains ||
		    strstr(e->d_name, contains)))
			n++;
	closedir(d);
	return n;
}

/* baton-agent processes whose command line names this root. */
static int
count_agents(struct itest *t)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char p[300], buf[8192];
	int n = 0, fd;
	ssize_t len, i;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		/* Namespace inits are forks of the agent: tell them by comm. */
		snprintf(p, sizeof(p), "/proc/%s/comm", e->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0 || strncmp(buf, "baton-agent\n", 12) != 0)
			continue;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", e->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		for (i = 0; i < len; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[len] = '\0';
		if (strstr(buf, "baton-agent") && strstr(buf, t->root) &&
		    it_alive(atoi(e->d_name)))
			n++;
	}
	closedir(d);
	return n;
}

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

static pid_t
supervisor_agent(struct itest *t)
{
	char out[2048], *p;
	const char *args[] = { "status", "--json", NULL };

	if (it_ctl(t, out, sizeof(out), args) != 0)
		return -1;
	p = strstr(out, "\"agent_pid\":");
	return p ? (pid_t)atoi(p + 12) : -1;
}

static int
upgrade(struct itest *t, char *out, size_t len, const char *const *extra)
{
	const char *args[16] = { "upgrade", "--json" };
	int i, k = 2;

	for (i = 0; extra && extra[i] && k < 15; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	return it_ctl(t, out, len, args);
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
	char point[64], env[96], menv[PATH_MAX + 40], out[4096], dir[PATH_MAX + 64];
	const char *outcome = "?";
	struct nsclient_ns ns;
	struct itest t;
	struct load l;
	enum how how;
	uint64_t t_crash, t_ok = 0, until;
	unsigned answered = 0, failed = 0, refusals = 0;
	pid_t serving = -1, holder = -1, sup_view = -1;
	int rc = 0, i, status;
	bool sup_died = false, ok;
	FILE *f;
	char line[256];

	if (geteuid() != 0)
		tap_skip("needs root: the load creates network namespaces");
	/* Case names: "<point>" or "<point>@successor" for j- points. */
	snprintf(point, sizeof(point), "%s", name);
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

	/* Allocations held across the whole scenario. */
	for (i = 0; i < HELD; i++) {
		static const char *const pnm[] = { "pid", "net", "mount" };
		static const char *const n1[] = { "net" };
		char id[32], sock[PATH_MAX + 32];
		struct nsclient_req req = { .allocation_id = id,
		    .namespaces = i == 0 ? pnm : n1, .n = i == 0 ? 3 : 1 };

		snprintf(id, sizeof(id), "held-%d", i);
		snprintf(sock, sizeof(sock), "%s/run/pact/handoff.sock", t.root);
		require(nsclient_request_path(sock, &req, NSCLIENT_NO_FALLBACK,
		    &ns) == 0, "hold %s", id);
		nsclient_ns_free(&ns);
	}
	if (how == VIA_INCUMBENT || how == VIA_PROVIDER) {
		rc = upgrade(&t, out, sizeof(out),
		    (const char *[]){ "--env", env, "--env", menv, NULL });
		require(rc == 0, "%s: arming upgrade commits (%d): %s", point, rc,
		    out);
	}

	load_start(&t, &l);
	usleep(150000);
	if (how == VIA_SUCCESSOR)
		rc = upgrade(&t, out, sizeof(out),
		    (const char *[]){ "--env", env, "--env", menv, NULL });
	else if (how != VIA_PROVIDER)
		rc = upgrade(&t, out, sizeof(out), NULL);
	until = clock_mono_ms() + 10000;
	while (!crashed(&t, point) && clock_mono_ms() < until)
		usleep(5000);
	t_crash = clock_mono_ms();
	check(crashed(&t, point), "%s: the point was reached (marker)", point);

	/*
	 * A dead supervisor is started again, as systemd would.  The marker
	 * is written just before _exit: give the exit a moment to land.
	 */
	until = clock_mono_ms() + (how == VIA_SUPERVISOR ? 3000 : 200);
	while (waitpid(t.sup, &status, WNOHANG) == 0 && clock_mono_ms() < until)
		usleep(5000);
	if (!it_alive(t.sup) && kill(t.sup, 0) < 0) {
		sup_died = true;
		check(WIFEXITED(status) && WEXITSTATUS(status) == 99,
		    "%s: supervisor exit 99 (status %d)", point, status);
		it_start_supervisor(&t, NULL);
	}
	/* 1. exactly one agent serves, holds the lock, and all agree. */
	until = t_crash + RECOVER_MS + (sup_died ? 3000 : 0);
	while (clock_mono_ms() < until) {
		serving = it_ns_status(&t, NULL, NULL);
		holder = it_lock_holder(&t);
		sup_view = supervisor_agent(&t);
		if (serving > 0 && serving == holder && serving == sup_view &&
		    count_agents(&t) == 1) {
			t_ok = clock_mono_ms();
			break;
		}
		usleep(20000);
	}
	check(t_ok, "%s: one agent serves and holds the lock (ns %d, lock %d, "
	    "supervisor %d, agents %d)", point, (int)serving, (int)holder,
	    (int)sup_view, count_agents(&t));
	usleep(300000);
	load_stop(&l);

	/* 2. no refusal; acknowledged creates present, releases gone. */
	f = fopen(l.log, "r");
	require(f, "load log");
	while (fgets(line, sizeof(line), f)) {
		char *id = line + 2;

		id[strcspn(id, "\n")] = '\0';
		switch (line[0]) {
		case 'X': refusals++; failed++; break;
		case 'F': failed++; break;
		default: answered++; break;
		}
	}
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		char *id = line + 2;
		char tag = line[0];
		char later[256];
		bool released = false, in_doubt = false;
		long pos;

		id[strcspn(id, "\n")] = '\0';
		if (tag != 'C')
			continue;
		pos = ftell(f);
		while (fgets(later, sizeof(later), f)) {
			later[strcspn(later, "\n")] = '\0';
			if (strcmp(later + 2, id) != 0)
				continue;
			if (later[0] == 'R')
				released = true;
			else if (later[0] == 'F' || later[0] == 'X')
				in_doubt = true;	/* release unanswered */
		}
		fseek(f, pos, SEEK_SET);
		if (in_doubt && !released)
			continue;
		check(pinned(&t, id) != released, "%s: allocation %s %s", point,
		    id, released ? "released but still pinned" :
		    "acknowledged but lost");
	}
	fclose(f);
	check(refusals == 0, "%s: %u refused connections", point, refusals);
	for (i = 0; i < HELD; i++) {
		char id[32];

		snprintf(id, sizeof(id), "held-%d", i);
		check(pinned(&t, id), "%s: held allocation %s kept", point, id);
	}

	/* 3. nothing stray: one agent, no temp files, journal cleared. */
	check(count_agents(&t) == 1, "%s: %d agent processes", point,
	    count_agents(&t));
	snprintf(dir, sizeof(dir), "%s/var/lib/baton", t.root);
	check(count_dir(dir, ".tmp.") == 0, "%s: temp files in %s", point, dir);
	snprintf(dir, sizeof(dir), "%s/run/baton", t.root);
	check(count_dir(dir, ".tmp.") == 0, "%s: temp sockets in %s", point, dir);
	rc = it_ctl(&t, out, sizeof(out), (const char *[]){ "journal", "--json",
	    NULL });
	check(rc == 0 && strstr(out, "\"active\":false"), "%s: journal: %s",
	    point, out);
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
	rc = upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "%s: following upgrade commits (%d): %s", point, rc, out);

	ok = tap_failures() == 0;
	row(point, how_names[how], outcome, t_ok ? t_ok - t_crash : 0, answered,
	    failed, ok);
	if (!ok)
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
	static char names[2 * CP_COUNT][72];
	const char *env = getenv("BATON_MATRIX_TABLE");
	unsigned id, k = 0;

	snprintf(table_path, sizeof(table_path), "%s", env ? env :
	    "/tmp/baton-crash-matrix.txt");
	unlink(table_path);
	for (id = 0; id < CP_COUNT; id++) {
		const char *n = crashpoint_name((enum crashpoint_id)id);

		snprintf(names[k], sizeof(names[k]), "%s", n);
		tap_register(names[k++], matrix_case, 90);
		/* Durable writes happen in the supervisor and in a successor. */
		if (n[0] == 'j') {
			snprintf(names[k], sizeof(names[k]), "%s@successor", n);
			tap_register(names[k++], matrix_case, 90);
		}
	}
	tap_register("summary", summary, 10);
	return tap_main(argc, argv);
}
