/*
 * it_handoff: the handoff end to end with the real daemons: happy path,
 * back-to-back upgrades under load, every successor, incumbent and
 * supervisor failure the issue names, concurrent requests, and shutdown.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"
#include "client/nsclient.h"
#include "common/paths.h"
#include "common/sandbox.h"
#include "transport/wire.h"
#include "crashpoints/crashpoint.h"
#include "tests/lib/itcheck.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define SERVE_MS 15000

static void
start(struct itest *t, const char *const *env)
{
	it_setup(t);
	require(it_start_supervisor(t, env) > 0, "supervisor started");
	if (!check(it_wait_serving(t, SERVE_MS) > 0, "agent serving")) {
		it_dump_log(t);
		tap_bail();
	}
}

/* A top-level integer of batonctl's JSON, or -1. */
static long
json_num(const char *json, const char *key)
{
	uint64_t v;

	return json_get_u64(json, key, &v) ? (long)v : -1;
}

static bool
wait_dead(pid_t pid, int ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)ms;

	while (it_alive(pid)) {
		if (clock_mono_ms() > until)
			return false;
		usleep(10000);
	}
	return true;
}

static void
finish(struct itest *t)
{
	it_teardown(t);
}

TEST_T(happy_path, 60)
{
	struct itest t;
	char out[2048];
	pid_t old, now;
	int rc;

	start(&t, NULL);
	old = it_ns_status(&t, NULL, NULL);
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "upgrade exits 0 (got %d): %s", rc, out);
	check(strstr(out, "\"committed\":true") != NULL, "committed: %s", out);
	check(json_num(out, "old_pid") == old, "old_pid is the incumbent");
	now = it_ns_status(&t, NULL, NULL);
	check(now > 0 && now != old, "a new agent serves (%d, was %d)",
	    (int)now, (int)old);
	check(json_num(out, "new_pid") == now, "new_pid is the server");
	check(it_lock_holder(&t) == now, "the new agent holds the lock");
	check(wait_dead(old, 5000), "the old agent exited");
	check(strstr(out, "\"drain_ms\":") && strstr(out, "\"total_ms\":"),
	    "phase durations reported");
	rc = it_ctl(&t, out, sizeof(out), (const char *[]){ "journal", NULL });
	check(rc == 0 && strstr(out, "no handoff in progress") &&
	    strstr(out, "committed"), "journal: %s", out);
	finish(&t);
}

TEST_T(back_to_back_100_under_load, 600)
{
	struct itest t;
	struct it_load *load;
	char out[2048];
	uint64_t ok, failed, gen0 = 0, gen1 = 0;
	int i, rc, fds0, fds1, kids0, kids1, committed = 0;

	start(&t, NULL);
	it_ns_status(&t, &gen0, NULL);
	fds0 = it_count_fds(t.sup);
	kids0 = it_count_children(t.sup);
	load = it_load_start(&t);
	for (i = 0; i < 100; i++) {
		rc = it_upgrade(&t, out, sizeof(out), NULL);
		if (rc == 0)
			committed++;
		else
			tap_diag("upgrade %d: rc %d %s", i, rc, out);
	}
	usleep(200000);
	it_load_stop(load, &ok, &failed);
	it_ns_status(&t, &gen1, NULL);
	/* Old agents exit after COMMIT; give the last one a moment. */
	usleep(300000);
	fds1 = it_count_fds(t.sup);
	kids1 = it_count_children(t.sup);
	tap_diag("100 upgrades: committed %d, requests ok %llu failed %llu, "
	    "supervisor fds %d->%d children %d->%d generation %llu->%llu",
	    committed, (unsigned long long)ok, (unsigned long long)failed, fds0,
	    fds1, kids0, kids1, (unsigned long long)gen0,
	    (unsigned long long)gen1);
	check(committed == 100, "all 100 committed");
	check(failed == 0, "no request failed or was refused");
	check(ok > 100, "the client was served throughout (%llu)",
	    (unsigned long long)ok);
	check(fds0 == fds1, "supervisor fd count constant");
	check(kids0 == kids1, "supervisor child count constant");
	check(gen1 == gen0 + 100, "state saw 100 handoffs");
	if (failed || committed != 100)
		it_dump_log(&t);
	finish(&t);
}

/*
 * No leak in supervisor or agents over 100 upgrades: LeakSanitizer runs in
 * every process at exit, under the seccomp filters (sanitizer builds allow
 * its tracer), and reports into the supervisor's log.
 */
TEST_T(no_leaks_over_100_upgrades, 300)
{
	struct itest t;
	char out[2048], logp[PATH_MAX + 32], line[512];
	int i, rc, committed = 0, reports = 0, status = 0;
	FILE *f;

	it_setup(&t);
	/* Under seccomp, as deployed: sanitizer builds allow LSan's tracer. */
	require(it_start_supervisor(&t, (const char *[]){
	    "ASAN_OPTIONS=detect_leaks=1:exitcode=23", NULL }) > 0, "supervisor");
	require(it_wait_serving(&t, SERVE_MS) > 0, "serving");
	for (i = 0; i < 100; i++) {
		rc = it_upgrade(&t, out, sizeof(out), NULL);
		committed += rc == 0;
	}
	check(committed == 100, "%d of 100 committed", committed);
	kill(t.sup, SIGTERM);
	waitpid(t.sup, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "supervisor exits 0 after its leak check (status %d)", status);
	t.sup = -1;
	snprintf(logp, sizeof(logp), "%s/supervisor.log", t.root);
	f = fopen(logp, "r");
	require(f, "log");
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "LeakSanitizer"))
			reports++;
	fclose(f);
	check(reports == 0, "%d LeakSanitizer reports in 101 agents and the "
	    "supervisor", reports);
	if (reports)
		it_dump_log(&t);
	finish(&t);
}

/* An upgrade whose successor crashes at `point`: rolled back, O serves. */
static void
successor_crash(const char *point)
{
	struct itest t;
	char out[2048], env[128], markers[PATH_MAX + 32];
	pid_t old;
	int rc;

	start(&t, NULL);
	old = it_ns_status(&t, NULL, NULL);
	snprintf(env, sizeof(env), "HANDOFF_CRASH_AT=%s", point);
	snprintf(markers, sizeof(markers), "HANDOFF_CRASH_MARKER_DIR=%s",
	    t.markers);
	rc = it_upgrade(&t, out, sizeof(out),
	    (const char *[]){ "--env", env, "--env", markers, NULL });
	check(itc_crashed(&t, point), "%s: the successor crashed there "
	    "(marker)", point);
	check(rc == 1, "%s: rolled back, exit 1 (got %d): %s", point, rc, out);
	check(strstr(out, "\"committed\":false") != NULL, "not committed");
	check(it_ns_status(&t, NULL, NULL) == old, "the incumbent serves");
	check(it_lock_holder(&t) == old, "the incumbent holds the lock");
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "the next upgrade commits (%d): %s", rc, out);
	if (rc != 0)
		it_dump_log(&t);
	finish(&t);
}

TEST_T(successor_exits_before_hello, 60) { successor_crash("n-before-handshake"); }
TEST_T(successor_exits_after_hello, 60) { successor_crash("n-after-handshake"); }
TEST_T(successor_exits_after_begin, 60) { successor_crash("n-after-begin"); }
TEST_T(successor_exits_after_lock, 60) { successor_crash("n-after-lock"); }

TEST_T(successor_never_answers, 60)
{
	struct itest t;
	char out[2048], arg[PATH_MAX + 16];
	const char *bin;
	pid_t old;
	uint64_t t0;
	int rc;

	start(&t, NULL);
	old = it_ns_status(&t, NULL, NULL);
	bin = it_script(&t, "mute-agent", "exec sleep 1000");
	snprintf(arg, sizeof(arg), "%s", bin);
	t0 = clock_mono_ms();
	rc = it_upgrade(&t, out, sizeof(out), (const char *[]){ "--binary", arg,
	    NULL });
	check(rc == 1, "rolled back (%d): %s", rc, out);
	check(strstr(out, "timeout") != NULL, "reason names the timeout: %s",
	    out);
	check(clock_mono_ms() - t0 < 15000, "within the hello budget");
	check(it_ns_status(&t, NULL, NULL) == old, "the incumbent serves");
	finish(&t);
}

TEST_T(seal_failure_keeps_incumbent, 60)
{
	struct itest t;
	char out[2048];
	pid_t o;
	int rc;

	start(&t, NULL);
	/* The next incumbent carries the fault: its seal will fail. */
	rc = it_upgrade(&t, out, sizeof(out),
	    (const char *[]){ "--env", "BATON_FAULT_SEAL=1", NULL });
	require(rc == 0, "first upgrade commits (%d): %s", rc, out);
	o = it_ns_status(&t, NULL, NULL);
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 1, "rolled back (%d): %s", rc, out);
	check(strstr(out, "seal failed") != NULL, "reason: %s", out);
	check(it_ns_status(&t, NULL, NULL) == o, "the incumbent still serves");
	check(it_lock_holder(&t) == o, "and kept the lock");
	finish(&t);
}

/* The incumbent dies at `point` during a handoff: the successor is promoted. */
static void
incumbent_crash(const char *point)
{
	struct itest t;
	char out[2048], env[128], markers[PATH_MAX + 32];
	pid_t o, n;
	int rc;

	start(&t, NULL);
	snprintf(env, sizeof(env), "HANDOFF_CRASH_AT=%s", point);
	snprintf(markers, sizeof(markers), "HANDOFF_CRASH_MARKER_DIR=%s",
	    t.markers);
	rc = it_upgrade(&t, out, sizeof(out),
	    (const char *[]){ "--env", env, "--env", markers, NULL });
	require(rc == 0, "arming upgrade commits (%d): %s", rc, out);
	o = it_ns_status(&t, NULL, NULL);
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	n = it_ns_status(&t, NULL, NULL);
	tap_diag("%s: rc %d %s", point, rc, out);
	check(wait_dead(o, 5000), "the incumbent died");
	check(itc_crashed(&t, point), "%s: it crashed there (marker)", point);
	check(n > 0 && n != o, "someone else serves (%d)", (int)n);
	check(it_lock_holder(&t) == n, "the server holds the lock");
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "the next upgrade commits (%d): %s", rc, out);
	if (rc != 0)
		it_dump_log(&t);
	finish(&t);
}

TEST_T(incumbent_killed_in_drain, 60) { incumbent_crash("o-inside-drain"); }
TEST_T(incumbent_killed_in_seal, 60) { incumbent_crash("o-inside-seal"); }
TEST_T(incumbent_killed_after_unlock, 60) { incumbent_crash("o-after-seal-flock-released"); }

/*
 * The supervisor dies at every s-* crash point in turn; started again it
 * adopts whoever holds the lock, clears the journal and upgrades again.
 */
TEST_T(supervisor_killed_at_each_point, 900)
{
	unsigned id;

	for (id = 0; id < CP_COUNT; id++) {
		const char *name = crashpoint_name((enum crashpoint_id)id);
		struct itest t;
		char out[2048], env[128];
		pid_t serving, holder;
		int status = 0, rc;

		if (strncmp(name, "s-", 2) != 0)
			continue;
		snprintf(env, sizeof(env), "HANDOFF_CRASH_AT=%s", name);
		start(&t, (const char *[]){ env, NULL });
		rc = it_upgrade(&t, out, sizeof(out), NULL);
		waitpid(t.sup, &status, 0);
		check(WIFEXITED(status) && WEXITSTATUS(status) == 99,
		    "%s: supervisor crashed with 99 (status %d, upgrade rc %d)",
		    name, status, rc);
		it_start_supervisor(&t, NULL);
		serving = it_wait_serving(&t, SERVE_MS);
		holder = it_lock_holder(&t);
		check(serving > 0 && serving == holder, "%s: one agent serves and "
		    "holds the lock (%d, %d)", name, (int)serving, (int)holder);
		rc = it_ctl(&t, out, sizeof(out), (const char *[]){ "journal",
		    "--json", NULL });
		check(rc == 0 && strstr(out, "\"active\":false"),
		    "%s: journal cleared: %s", name, out);
		rc = it_upgrade(&t, out, sizeof(out), NULL);
		check(rc == 0, "%s: next upgrade commits (%d): %s", name, rc, out);
		if (rc != 0 || serving <= 0)
			it_dump_log(&t);
		tap_diag("%s: recovered, serving %d", name, (int)serving);
		it_teardown(&t);
	}
}

static void
ns_inodes(struct itest *t, const char *id, unsigned long long ino[3])
{
	static const char *const pnm[] = { "pid", "net", "mount" };

	require(itc_served_inodes(t, id, pnm, 3, ino) == 0, "request %s", id);
}

/* Allocations ride the handoff: same namespaces, releasable by the new agent. */
TEST_T(allocations_survive_upgrades, 60)
{
	unsigned long long before[3], after[3];
	struct itest t;
	char out[2048], sock[PATH_MAX + 32], pin[PATH_MAX + 32];
	struct nsclient *c;
	int i, rc;

	if (geteuid() != 0)
		tap_skip("needs root: namespaces");
	start(&t, NULL);
	ns_inodes(&t, "keep-1", before);
	for (i = 0; i < 3; i++) {
		rc = it_upgrade(&t, out, sizeof(out), NULL);
		require(rc == 0, "upgrade %d commits (%d): %s", i, rc, out);
	}
	/* A repeated request is idempotent: it names the same namespaces. */
	ns_inodes(&t, "keep-1", after);
	for (i = 0; i < 3; i++)
		check(before[i] == after[i], "namespace %d inode %llu -> %llu", i,
		    before[i], after[i]);
	snprintf(sock, sizeof(sock), "%s/run/pact/handoff.sock", t.root);
	require(nsclient_open(sock, &c) == 0, "connect");
	check(nsclient_release(c, "keep-1") == 0, "the new agent releases it");
	nsclient_close(c);
	snprintf(pin, sizeof(pin), "%s/run/pact/ns/keep-1", t.root);
	check(access(pin, F_OK) < 0, "pins removed");
	finish(&t);
}

TEST_T(binary_outside_allowed_dir_refused, 60)
{
	struct itest t;
	char out[2048], body[PATH_MAX + 64], arg[PATH_MAX + 16];
	pid_t old;
	int rc;

	it_setup(&t);
	t.sup_args = (const char *[]){ "--allow-binary-dir", t.bin, NULL };
	require(it_start_supervisor(&t, NULL) > 0, "supervisor");
	require(it_wait_serving(&t, SERVE_MS) > 0, "serving");
	old = it_ns_status(&t, NULL, NULL);
	snprintf(body, sizeof(body), "exec %s \"$@\"", t.agent);
	snprintf(arg, sizeof(arg), "%s", it_script(&t, "elsewhere-agent", body));
	rc = it_upgrade(&t, out, sizeof(out), (const char *[]){ "--binary", arg,
	    NULL });
	check(rc == 69, "refused with 69 (got %d)", rc);
	check(it_ns_status(&t, NULL, NULL) == old, "the incumbent serves");
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "a binary inside the directory upgrades (%d): %s", rc, out);
	finish(&t);
}

/*
 * Invariant 4: a supervisor that hangs after PREPARE cannot keep the
 * incumbent drained.  While it drains it still answers reads (its
 * connections move, PROTOCOL.md "Moving connections") and holds changes;
 * its own watchdog (deadline + 1 s) resumes it, and the change it held is
 * answered by it, not refused.
 */
TEST_T(incumbent_enforces_deadline, 60)
{
	struct baton_paths bp;
	struct nsclient *c = NULL;
	struct itest t;
	char out[2048];
	pid_t old, up, now = -1;
	uint64_t t0, took = 0;
	int status = 0, r;

	it_setup(&t);
	require(it_start_supervisor(&t, (const char *[]){
	    "HANDOFF_STALL_AT=s-after-prepare-sent", NULL }) > 0, "supervisor");
	require(it_wait_serving(&t, SERVE_MS) > 0, "serving");
	old = it_ns_status(&t, NULL, NULL);
	paths_init(&bp, t.root);
	t0 = clock_mono_ms();
	up = fork();
	if (up == 0)
		_exit(it_upgrade(&t, out, sizeof(out), (const char *[]){
		    "--deadline-ms", "1500", NULL }));
	/* Wait for the supervisor to stop itself after PREPARE. */
	check(itc_wait_stalled(&t, "s-after-prepare-sent", 10000) == t.sup,
	    "the supervisor stopped after PREPARE");
	now = it_ns_status(&t, NULL, NULL);
	check(now == old, "the draining incumbent answers a read (%d, was %d)",
	    (int)now, (int)old);
	/* A change waits, held, until the incumbent resumes on its own. */
	require(nsclient_open(bp.ns_socket, &c) == 0, "client");
	r = nsclient_release(c, "deadline-unknown");
	took = clock_mono_ms() - t0;
	nsclient_close(c);
	check(r == -ENOENT, "the held change is answered (%d)", r);
	check(took >= 1500 && took < 6000, "after its own deadline: %llu ms",
	    (unsigned long long)took);
	tap_diag("incumbent resumed on its own after %llu ms",
	    (unsigned long long)took);
	kill(t.sup, SIGCONT);
	waitpid(up, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "the woken supervisor rolls back (status %d)", status);
	check(it_ns_status(&t, NULL, NULL) == old, "the incumbent still serves");
	check(it_lock_holder(&t) == old, "and holds the lock");
	finish(&t);
}

TEST_T(concurrent_upgrade_refused, 60)
{
	struct itest t;
	char out[2048], body[PATH_MAX + 64], arg[PATH_MAX + 16];
	pid_t first;
	int status, rc;

	start(&t, NULL);
	snprintf(body, sizeof(body), "sleep 1\nexec %s \"$@\"", t.agent);
	snprintf(arg, sizeof(arg), "%s", it_script(&t, "slow-agent", body));
	first = fork();
	if (first == 0)
		_exit(it_upgrade(&t, out, sizeof(out), (const char *[]){ "--binary",
		    arg, NULL }));
	usleep(400000);
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 69, "second request refused with 69 (got %d)", rc);
	waitpid(first, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "first upgrade committed (status %d)", status);
	finish(&t);
}

TEST_T(wrong_pid_hello, 60)
{
	struct itest t;
	char out[2048], body[PATH_MAX + 128], arg[PATH_MAX + 16];
	pid_t old;
	int rc;

	start(&t, NULL);
	old = it_ns_status(&t, NULL, NULL);
	/* A wrapper that does not exec: HELLO comes from another pid. */
	snprintf(body, sizeof(body), "sh -c 'LISTEN_PID=$$ exec %s \"$@\"' sh "
	    "\"$@\"", t.agent);
	snprintf(arg, sizeof(arg), "%s", it_script(&t, "fork-agent", body));
	rc = it_upgrade(&t, out, sizeof(out), (const char *[]){ "--binary", arg,
	    NULL });
	check(rc == 1, "rolled back (%d): %s", rc, out);
	check(strstr(out, "pid") != NULL, "reason names the pid: %s", out);
	check(it_ns_status(&t, NULL, NULL) == old, "the incumbent serves");
	finish(&t);
}

TEST_T(agent_crash_is_restarted, 60)
{
	struct itest t;
	char out[1024];
	pid_t old, now;
	uint64_t t0;

	start(&t, NULL);
	old = it_ns_status(&t, NULL, NULL);
	kill(old, SIGKILL);
	t0 = clock_mono_ms();
	now = it_wait_serving(&t, SERVE_MS);
	check(now > 0 && now != old, "a new agent serves");
	tap_diag("restart took %llu ms", (unsigned long long)(clock_mono_ms() - t0));
	check(it_ctl(&t, out, sizeof(out), (const char *[]){ "status", NULL }) == 0
	    && strstr(out, "agent restarts 1"), "status counts it: %s", out);
	finish(&t);
}

TEST_T(supervisor_restart_adopts_agent, 60)
{
	struct itest t;
	char out[2048];
	pid_t agent;
	int rc;

	start(&t, NULL);
	agent = it_ns_status(&t, NULL, NULL);
	kill(t.sup, SIGKILL);
	waitpid(t.sup, NULL, 0);
	check(it_ns_status(&t, NULL, NULL) == agent,
	    "the agent serves while the supervisor is down");
	it_start_supervisor(&t, NULL);
	check(it_wait_serving(&t, SERVE_MS) == agent, "the same agent is adopted");
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "an upgrade after adoption commits (%d): %s", rc, out);
	check(wait_dead(agent, 5000), "the adopted agent handed over and left");
	finish(&t);
}

/*
 * A package upgrade renames a new agent binary over the running one, and
 * the supervisor restarts (its postinst): the adopted agent's exe then
 * reads "PATH (deleted)".  The next upgrade runs the file now at PATH.
 */
TEST_T(adopted_agent_with_a_replaced_binary_upgrades, 60)
{
	struct itest t;
	char out[2048], dir[PATH_MAX - 32], cmd[5 * PATH_MAX];
	struct stat now, ran;
	pid_t agent, next;
	int rc;

	it_setup(&t);
	snprintf(dir, sizeof(dir), "%s/pkg", t.root);
	require(mkdir(dir, 0755) == 0, "mkdir");
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s/baton-agent'", t.agent, dir);
	require(system(cmd) == 0, "copy the agent");
	snprintf(t.agent, sizeof(t.agent), "%s/baton-agent", dir);
	require(it_start_supervisor(&t, NULL) > 0, "supervisor");
	agent = it_wait_serving(&t, SERVE_MS);
	require(agent > 0, "serving");
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s.new' && mv -f '%s.new' '%s'",
	    t.agent, t.agent, t.agent, t.agent);
	require(system(cmd) == 0, "replace the binary");
	kill(t.sup, SIGKILL);
	waitpid(t.sup, NULL, 0);
	it_start_supervisor(&t, NULL);
	check(it_wait_serving(&t, SERVE_MS) == agent, "the same agent is adopted");
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0, "an upgrade after adoption commits (%d): %s", rc, out);
	next = (pid_t)json_num(out, "new_pid");
	snprintf(cmd, sizeof(cmd), "/proc/%d/exe", (int)next);
	require(stat(t.agent, &now) == 0, "stat");
	check(next > 0 && stat(cmd, &ran) == 0 && ran.st_dev == now.st_dev &&
	    ran.st_ino == now.st_ino, "the new agent runs the file now at "
	    "the path");
	finish(&t);
}

/*
 * The supervisor restarts while its agent is hung (stopped): adoption
 * cannot succeed, and after the wait the agent is killed.  The listening
 * socket is taken from it first, so clients already queued in its
 * backlog are answered by the next agent: none is refused or reset.
 */
TEST_T(supervisor_restart_with_hung_agent_keeps_listeners, 90)
{
	struct itest t;
	struct baton_paths bp;
	struct msg st = { .type = MSG_STATUS };
	struct frame f;
	char logp[PATH_MAX + 32], line[512];
	int fds[5], i, answered = 0, took = 0;
	pid_t a, b;
	FILE *lf;

	start(&t, NULL);
	paths_init(&bp, t.root);
	a = it_ns_status(&t, NULL, NULL);
	require(a > 0, "agent serving");
	kill(t.sup, SIGKILL);
	waitpid(t.sup, NULL, 0);
	kill(a, SIGSTOP);
	for (i = 0; i < 5; i++) {
		fds[i] = wire_connect(bp.ns_socket, 1000);
		check(fds[i] >= 0 && wire_send(fds[i], &st, NULL, 0, 1000) == 0,
		    "client %d queued while the agent is hung", i);
	}
	it_start_supervisor(&t, NULL);
	b = it_wait_serving(&t, 40000);
	check(b > 0 && b != a, "a new agent serves (%d, hung %d)", (int)b,
	    (int)a);
	for (i = 0; i < 5; i++) {
		if (fds[i] < 0)
			continue;
		if (wire_recv(fds[i], 30000, &f) == 0) {
			answered += f.m.type == MSG_STATUS_REPLY &&
			    (pid_t)f.m.u.STATUS_REPLY.pid == b;
			frame_release(&f);
		}
		close(fds[i]);
	}
	check(answered == 5, "every queued client answered by the new agent "
	    "(%d of 5)", answered);
	check(wait_dead(a, 5000), "the hung agent was killed");
	snprintf(logp, sizeof(logp), "%s/supervisor.log", t.root);
	lf = fopen(logp, "r");
	while (lf && fgets(line, sizeof(line), lf))
		took += strstr(line, "event=recover.listeners") &&
		    strstr(line, "took the listening sockets") != NULL;
	if (lf)
		fclose(lf);
	check(took == 1, "the supervisor took the hung agent's listener");
	if (answered != 5 || took != 1)
		it_dump_log(&t);
	finish(&t);
}

/* Read notify datagrams until one contains want (or time runs out). */
static bool
notified(int fd, const char *want, int ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)ms;
	char buf[512];
	ssize_t n;

	while (clock_mono_ms() < until) {
		n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, want))
				return true;
			continue;
		}
		usleep(10000);
	}
	return false;
}

/* sd_notify: READY=1 when serving, RELOADING=1 ... READY=1 around a handoff. */
TEST_T(sd_notify_protocol, 60)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char env[sizeof(sa.sun_path) + 32], out[2048];
	struct itest t;
	int fd;

	it_setup(&t);
	if (strlen(t.root) + 8 > sizeof(sa.sun_path))
		tap_skip("root path too long for a unix socket");
	memcpy(sa.sun_path, t.root, strlen(t.root));
	memcpy(sa.sun_path + strlen(t.root), "/notify", 8);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	require(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	    "notify socket");
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", sa.sun_path);
	require(it_start_supervisor(&t, (const char *[]){ env, NULL }) > 0,
	    "supervisor");
	check(notified(fd, "READY=1", 15000), "READY=1 once the agent serves");
	require(it_wait_serving(&t, SERVE_MS) > 0, "serving");
	check(it_upgrade(&t, out, sizeof(out), NULL) == 0, "upgrade: %s", out);
	check(notified(fd, "RELOADING=1", 2000), "RELOADING=1 for the handoff");
	check(notified(fd, "READY=1", 2000), "READY=1 after it");
	kill(t.sup, SIGTERM);
	check(notified(fd, "STOPPING=1", 5000), "STOPPING=1 on SIGTERM");
	close(fd);
	finish(&t);
}

TEST_T(sigterm_stops_everything, 60)
{
	struct itest t;
	char ready[PATH_MAX + 32];
	pid_t agent;
	int status = 0;

	start(&t, NULL);
	agent = it_ns_status(&t, NULL, NULL);
	kill(t.sup, SIGTERM);
	waitpid(t.sup, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "supervisor exits 0 (status %d)", status);
	check(wait_dead(agent, 5000), "the agent stopped");
	snprintf(ready, sizeof(ready), "%s/run/pact/ready", t.root);
	check(access(ready, F_OK) < 0, "the ready file is removed");
	t.sup = -1;
	finish(&t);
}

/*
 * The supervisor run through wrap with env, serving; its standby,
 * waiting niced (under policy: SCHED_IDLE unless promoted or the
 * supervisor's own policy is another).
 */
static pid_t
start_niced_standby(struct itest *t, const char *const *wrap,
    const char *const *env, int policy)
{
	pid_t sb;

	it_setup(t);
	require(it_start_supervisor_wrapped(t, env, wrap, NULL) > 0,
	    "supervisor started");
	require(it_wait_serving(t, SERVE_MS) > 0, "agent serving");
	sb = it_wait_standby(t, 0, 5000);
	require(sb > 0, "a standby waits");
	check_eq(it_proc_nice_max(sb), SANDBOX_HELPER_NICE);
	check_eq(it_proc_policy(sb), policy);
	return sb;
}

/*
 * The next upgrade takes the standby sb, which then serves under policy
 * at nice; the test ends.
 */
static void
standby_serves(struct itest *t, pid_t sb, int policy, int nice)
{
	char out[2048];
	int rc;

	rc = it_upgrade(t, out, sizeof(out), NULL);
	check(rc == 0 && json_num(out, "new_pid") == sb,
	    "the standby %d took the upgrade: %s", (int)sb, out);
	check_eq(it_proc_policy(sb), policy);
	check_eq(it_proc_nice_max(sb), nice);
	finish(t);
}

/* Long enough for any build's standby to say it waits while idle. */
static const char *const stay_idle[] = { "BATON_STANDBY_IDLE_MS=60000",
    NULL };

/*
 * A supervisor at nice 3 that may not raise a priority (no
 * CAP_SYS_NICE): its standby cannot leave SCHED_IDLE nor be given 3
 * back, so it is dismissed, the upgrade spawns and commits, and the
 * standbys after it start at 3 under SCHED_OTHER and are taken.
 */
TEST_T(standby_without_cap_sys_nice, 60)
{
	static const char *const wrap[] = { "nice", "-n", "3", "setpriv",
	    "--bounding-set", "-sys_nice", NULL };
	struct itest t;
	char out[2048];
	pid_t sb = start_niced_standby(&t, wrap, stay_idle, SCHED_IDLE), sb2,
	    now;
	int rc;

	rc = it_upgrade(&t, out, sizeof(out), NULL);
	now = (pid_t)json_num(out, "new_pid");
	check(rc == 0 && now > 0 && now != sb && strstr(out,
	    "\"committed\":true"), "stuck in SCHED_IDLE: a fresh successor "
	    "commits: %s", out);
	check_eq(it_log_max_since(&t, 0, "standby.sched", "standby_pid"),
	    (uint64_t)sb);
	check(wait_dead(sb, 5000), "the idle standby left");
	check_eq(it_proc_policy(now), SCHED_OTHER);
	check_eq(it_proc_nice_max(now), 3);	/* the supervisor's */
	sb2 = it_wait_standby(&t, sb, 5000);
	require(sb2 > 0, "a standby follows");
	check_eq(it_proc_policy(sb2), SCHED_OTHER);	/* from now on */
	check_eq(it_proc_nice_max(sb2), 3);	/* at ours */
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0 && json_num(out, "new_pid") == sb2,
	    "the standby at the supervisor's nice is taken: %s", out);
	check_eq(it_proc_nice_max(sb2), 3);
	finish(&t);
}

/*
 * A supervisor run at nice 3 (systemd's Nice=3): its standby waits at
 * nice 10 under SCHED_IDLE and serves at 3 under SCHED_OTHER.
 */
TEST_T(standby_gets_the_supervisors_nice, 60)
{
	static const char *const wrap[] = { "nice", "-n", "3", NULL };
	struct itest t;
	pid_t sb = start_niced_standby(&t, wrap, stay_idle, SCHED_IDLE);

	standby_serves(&t, sb, SCHED_OTHER, 3);
}

/*
 * A standby that has not said it waits BATON_STANDBY_IDLE_MS after its
 * spawn (here 1 ms: no build starts that fast) is moved to SCHED_OTHER
 * at nice 10, as where no CPU is idle; taken, it serves at 0.
 */
TEST_T(standby_still_starting_leaves_sched_idle, 60)
{
	static const char *const env[] = { "BATON_STANDBY_IDLE_MS=1", NULL };
	struct itest t;
	pid_t sb = start_niced_standby(&t, NULL, env, SCHED_OTHER);

	standby_serves(&t, sb, SCHED_OTHER, 0);
}

/*
 * A supervisor under SCHED_BATCH (systemd's CPUSchedulingPolicy=batch):
 * its standbys wait under that, never SCHED_IDLE, and serve under it.
 */
TEST_T(standby_under_the_supervisors_policy, 60)
{
	static const char *const wrap[] = { "chrt", "--batch", "0", NULL };
	struct itest t;
	pid_t sb = start_niced_standby(&t, wrap, stay_idle, SCHED_BATCH);

	standby_serves(&t, sb, SCHED_BATCH, 0);
}

/* Copy src to dst through a new inode (as a package manager replaces). */
static bool
replace_file(const char *src, const char *dst)
{
	char cmd[6 * PATH_MAX];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s.new' && chmod 755 '%s.new' && "
	    "mv -f '%s.new' '%s'", src, dst, dst, dst, dst);
	return system(cmd) == 0;
}

/*
 * A successor started ahead (supervisor/standby.h) takes the next upgrade
 * when that upgrade would spawn the same file with the same arguments,
 * and only then: a replaced binary, an upgrade with --env, or a standby
 * that died are each served by a fresh spawn, and a standby follows every
 * handoff.  None is left after SIGTERM.
 */
TEST_T(standby_takes_the_next_upgrade, 90)
{
	struct itest t;
	char out[2048], dir[PATH_MAX], alt[PATH_MAX + 32];
	pid_t sb, sb2, now;
	int rc, status = 0;

	start(&t, NULL);
	sb = it_wait_standby(&t, 0, 5000);
	require(sb > 0, "a standby waits after the cold start");
	check(itc_count_agents(&t) == 1, "a standby is not counted as an "
	    "agent");
	/* It starts and waits at the helpers' nice, and serves at 0. */
	check_eq(it_proc_nice_max(sb), SANDBOX_HELPER_NICE);
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	check(rc == 0 && json_num(out, "new_pid") == sb,
	    "the standby %d took the upgrade: %s", (int)sb, out);
	check(it_proc_named(sb, "baton-agent"), "named baton-agent again");
	check_eq(it_proc_nice_max(sb), 0);	/* every thread of it */
	check_eq(it_proc_policy(sb), SCHED_OTHER);
	check(tap_proc_status(sb, "Threads") >= 2, "its writer thread runs");
	sb2 = it_wait_standby(&t, sb, 5000);
	check(sb2 > 0, "a new standby follows the handoff");

	/* Another path: the standby is dismissed, a fresh spawn serves. */
	snprintf(dir, sizeof(dir), "%s/alt", t.root);
	require(mkdir(dir, 0755) == 0, "mkdir");
	snprintf(alt, sizeof(alt), "%s/baton-agent", dir);
	require(replace_file(t.agent, alt), "copy the agent");
	rc = it_upgrade(&t, out, sizeof(out), (const char *[]){ "--binary",
	    alt, NULL });
	now = (pid_t)json_num(out, "new_pid");
	check(rc == 0 && now != sb2, "another binary: a fresh successor "
	    "(%d): %s", (int)now, out);
	check(wait_dead(sb2, 5000), "the old standby left");
	sb = it_wait_standby(&t, sb2, 5000);
	check(sb > 0, "a standby of the new binary follows");

	/* The same path, a new file: never the standby of the old one. */
	require(replace_file(t.agent, alt), "replace the agent");
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	now = (pid_t)json_num(out, "new_pid");
	check(rc == 0 && now != sb, "a replaced binary: a fresh successor "
	    "(%d, standby was %d): %s", (int)now, (int)sb, out);
	check(wait_dead(sb, 5000), "the stale standby left");

	/* An upgrade with its own environment spawns its own. */
	sb = it_wait_standby(&t, sb, 5000);
	require(sb > 0, "a standby");
	rc = it_upgrade(&t, out, sizeof(out), (const char *[]){ "--env",
	    "BATON_TEST_X=1", NULL });
	now = (pid_t)json_num(out, "new_pid");
	check(rc == 0 && now != sb, "--env: a fresh successor: %s", out);

	/* A standby that died: the next upgrade spawns, commits. */
	sb = it_wait_standby(&t, sb, 5000);
	require(sb > 0, "a standby");
	kill(sb, SIGKILL);
	check(wait_dead(sb, 5000), "killed");
	rc = it_upgrade(&t, out, sizeof(out), NULL);
	now = (pid_t)json_num(out, "new_pid");
	check(rc == 0 && now != sb && strstr(out, "\"committed\":true"),
	    "a dead standby: a fresh successor commits: %s", out);
	sb = it_wait_standby(&t, sb, 5000);
	check(sb > 0, "and a standby follows");

	kill(t.sup, SIGTERM);
	waitpid(t.sup, &status, 0);
	t.sup = -1;
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "supervisor exits 0 (status %d)", status);
	check(wait_dead(sb, 5000), "no standby after SIGTERM");
	finish(&t);
}

/*
 * An agent build without standbys, spawned as one, says HELLO at once
 * (here: the test builds' BATON_TEST_NO_STANDBY).  It never says that it
 * waits, so an upgrade does not take it (the start record would land in
 * its frames) but spawns a fresh successor, and commits.
 */
TEST_T(standby_of_a_build_without_standbys_is_not_taken, 60)
{
	struct itest t;
	char out[2048];
	pid_t now;
	int rc, i;

#ifndef BATON_CRASHPOINTS
	tap_skip("needs a crash-point build (BATON_TEST_NO_STANDBY)");
	return;
#endif
	start(&t, (const char *[]){ "BATON_TEST_NO_STANDBY=1", NULL });
	for (i = 0; i < 3; i++) {
		usleep(300000);	/* its "standby" has said HELLO by now */
		rc = it_upgrade(&t, out, sizeof(out), NULL);
		now = (pid_t)json_num(out, "new_pid");
		check(rc == 0 && strstr(out, "\"committed\":true") && now > 0,
		    "upgrade %d with a standby that cannot be one commits "
		    "(%d): %s", i, rc, out);
	}
	finish(&t);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
