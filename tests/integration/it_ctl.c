/*
 * it_ctl: the operator's tools (issue 14) as an operator meets them:
 * --help on every command, one error prefix, the exit codes the README
 * promises, status within 100 ms whatever the agent does, replacing a
 * crash-looping agent, why an agent died, ns list / run --create / --json,
 * clean journal JSON, start-up checks and the metrics file.
 */
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
#include "common/json.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define SERVE_MS 15000
#define OUT_MAX 65536

static char out[OUT_MAX], err[OUT_MAX];

/*
 * Run a program (argv[0] a path) with stdout into out and stderr into err;
 * its exit code, and its wall time in *ms when ms is given.
 */
static int
run(struct itest *t, const char *const *argv, uint64_t *ms)
{
	char errp[PATH_MAX + 16];
	int p[2], fd, status;
	size_t len = 0;
	ssize_t n;
	uint64_t t0 = clock_mono_ms();
	pid_t pid;

	snprintf(errp, sizeof(errp), "%s/ctl.err", t->root);
	fd = open(errp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	require(fd >= 0 && pipe2(p, O_CLOEXEC) == 0, "pipes");
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(fd, 2);
		setenv("ASAN_OPTIONS", "detect_leaks=0", 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (len < sizeof(out) - 1 &&
	    (n = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	if (ms)
		*ms = clock_mono_ms() - t0;
	n = pread(fd, err, sizeof(err) - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* batonctl --root ROOT args... */
static int
ctl(struct itest *t, uint64_t *ms, const char *const *args)
{
	char exe[PATH_MAX + 16];
	const char *argv[64];
	int i, k = 0;

	snprintf(exe, sizeof(exe), "%s/batonctl", t->bin);
	argv[k++] = exe;
	argv[k++] = "--root";
	argv[k++] = t->root;
	for (i = 0; args[i] && k < 63; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	return run(t, argv, ms);
}

#define CTL(t, ...) ctl(t, NULL, (const char *const[]){ __VA_ARGS__, NULL })

static void
start(struct itest *t)
{
	it_setup(t);
	require(it_start_supervisor(t, NULL) > 0, "supervisor started");
	if (!check(it_wait_serving(t, SERVE_MS) > 0, "agent serving")) {
		it_dump_log(t);
		tap_bail();
	}
}

static void
finish(struct itest *t)
{
	if (tap_failures())
		it_dump_log(t);
	it_teardown(t);
}

/* Every stderr line is ours: "batonctl: ...", or the help hint. */
static bool
one_prefix(const char *e)
{
	const char *line = e;

	if (!*e)
		return false;
	while (*line) {
		if (strncmp(line, "batonctl: ", 10) != 0 &&
		    strncmp(line, "Try 'batonctl", 13) != 0 &&
		    strncmp(line, "usage: batonctl", 15) != 0)
			return false;
		line = strchr(line, '\n');
		if (!line)
			return false;	/* a last line without newline */
		line++;
	}
	return true;
}

static bool
log_has(struct itest *t, const char *a, const char *b)
{
	static char buf[1 << 20];
	char p[PATH_MAX + 32], *line;
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/supervisor.log", t->root);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (strstr(line, a) && (!b || strstr(line, b)))
			return true;
	return false;
}

TEST(help_on_every_command)
{
	static const char *const cmds[][3] = {
		{ "--help" }, { "status", "--help" }, { "upgrade", "--help" },
		{ "journal", "--help" }, { "ns", "--help" },
		{ "ns", "list", "--help" }, { "ns", "run", "--help" },
		{ "rollout", "--help" },
	};
	struct itest t;
	size_t i, n;
	int rc;

	it_setup(&t);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		rc = ctl(&t, NULL, (const char *const[]){ cmds[i][0],
		    cmds[i][1], cmds[i][2], NULL });
		n = strlen(out);
		check(rc == 0, "batonctl %s %s exits 0 (%d): %s", cmds[i][0],
		    cmds[i][1] ? cmds[i][1] : "", rc, err);
		check(strncmp(out, "usage: batonctl", 15) == 0,
		    "%s %s prints usage on stdout", cmds[i][0],
		    cmds[i][1] ? cmds[i][1] : "");
		check(n > 0 && out[n - 1] == '\n', "%s %s help ends with a "
		    "newline", cmds[i][0], cmds[i][1] ? cmds[i][1] : "");
	}
	it_teardown(&t);
}

TEST(one_error_prefix_and_usage_exit)
{
	static const char *const bad[][4] = {
		{ "--bogus" }, { "frob" }, { "status", "--bogus" },
		{ "status", "extra" }, { "upgrade", "--bogus" },
		{ "upgrade", "--deadline-ms", "5" }, { "journal", "--x" },
		{ "ns" }, { "ns", "frob" }, { "ns", "create" },
		{ "ns", "run", "a1" }, { "ns", "list", "--pid" },
		{ "rollout", "--bogus" },
	};
	struct itest t;
	size_t i;
	int rc;

	it_setup(&t);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = ctl(&t, NULL, (const char *const[]){ bad[i][0], bad[i][1],
		    bad[i][2], bad[i][3], NULL });
		check(rc == 64, "batonctl %s %s exits 64 (%d)", bad[i][0],
		    bad[i][1] ? bad[i][1] : "", rc);
		/* ns alone prints its usage: the whole text, not an error. */
		if (i == 7)
			continue;
		check(one_prefix(err), "batonctl %s %s: every error line says "
		    "'batonctl: ': [%s]", bad[i][0], bad[i][1] ? bad[i][1] : "",
		    err);
	}
	it_teardown(&t);
}

TEST(exit_codes_as_the_readme_says)
{
	struct itest t;
	char exe[PATH_MAX + 16];
	int rc;

	it_setup(&t);
	/* No supervisor at all. */
	rc = CTL(&t, "status");
	check(rc == 69, "status without a supervisor exits 69 (%d)", rc);
	rc = CTL(&t, "journal");
	check(rc == 69, "journal without a supervisor exits 69 (%d)", rc);
	rc = CTL(&t, "upgrade", "--binary", "/nonexistent/agent");
	check(rc == 69, "upgrade --binary /nonexistent exits 69 (%d)", rc);
	check(strstr(err, "/nonexistent/agent") && one_prefix(err),
	    "the error names the binary: %s", err);
	rc = CTL(&t, "ns", "list");
	check(rc == 69, "ns list without an agent exits 69 (%d)", rc);
	snprintf(exe, sizeof(exe), "%s/batonctl", t.bin);
	rc = run(&t, (const char *const[]){ exe, "--root", "relative/dir",
	    "status", NULL }, NULL);
	check(rc == 64 && strstr(err, "absolute"), "a relative --root is "
	    "usage (%d): %s", rc, err);
	it_teardown(&t);
}

/* A supervisor whose agent dies at once: back-off, crash after crash. */
static void
start_crashing(struct itest *t)
{
	const char *bad;
	uint64_t until;
	int rc = 0;

	it_setup(t);
	bad = it_script(t, "bad-agent", "echo 'bad agent: cannot read "
	    "/etc/agent.conf' >&2\nexit 3");
	snprintf(t->agent, sizeof(t->agent), "%s", bad);
	require(it_start_supervisor(t, NULL) > 0, "supervisor started");
	until = clock_mono_ms() + 10000;
	while (clock_mono_ms() < until) {
		rc = CTL(t, "status", "--json");
		if (strstr(out, "\"state\":\"backoff\"") &&
		    strstr(out, "\"agent_restarts\":2"))
			break;
		usleep(50000);
	}
	require(strstr(out, "\"state\":\"backoff\""), "supervisor in "
	    "back-off (%d): %s", rc, out);
}

TEST(status_answers_within_100ms_in_backoff)
{
	struct itest t;
	uint64_t ms, best = UINT64_MAX, worst = 0;
	int i, rc = 0;

	start_crashing(&t);
	for (i = 0; i < 5; i++) {
		rc = ctl(&t, &ms, (const char *const[]){ "status", NULL });
		best = ms < best ? ms : best;
		worst = ms > worst ? ms : worst;
	}
	tap_diag("status in back-off: best %llu ms, worst %llu ms (ASan "
	    "build, fork+exec included)", (unsigned long long)best,
	    (unsigned long long)worst);
	check(best < 100, "status answers within 100 ms (best %llu ms)",
	    (unsigned long long)best);
	check(worst < 1000, "never near the old 10 s (worst %llu ms)",
	    (unsigned long long)worst);
	check(rc == 69, "no agent serves: exit 69 (%d)", rc);
	check(strstr(out, "state backoff") != NULL, "the supervisor's view "
	    "is shown: %s", out);
	finish(&t);
}

TEST(status_answers_within_100ms_with_a_stopped_agent)
{
	struct itest t;
	uint64_t ms, best = UINT64_MAX;
	pid_t agent;
	int i, rc = 0;

	start(&t);
	agent = it_ns_status(&t, NULL, NULL);
	require(agent > 0, "agent");
	kill(agent, SIGSTOP);
	for (i = 0; i < 3; i++) {
		rc = ctl(&t, &ms, (const char *const[]){ "status", "--json",
		    NULL });
		best = ms < best ? ms : best;
	}
	kill(agent, SIGCONT);
	check(best < 100, "status answers within 100 ms while the agent is "
	    "stopped (best %llu ms)", (unsigned long long)best);
	check(rc == 69 && strstr(out, "\"agent\":null") &&
	    strstr(out, "\"state\":\"running\""), "the supervisor's view, "
	    "agent not answering (%d): %s", rc, out);
	finish(&t);
}

TEST(upgrade_replaces_a_crash_looping_agent)
{
	char good[PATH_MAX + 32];
	struct itest t;
	uint64_t pid = 0;
	int rc;

	start_crashing(&t);
	rc = CTL(&t, "journal", "--json");
	check(rc == 0 && strstr(out, "exit 3") &&
	    strstr(out, "bad agent: cannot read"), "journal tells why the "
	    "agent died: exit code and its stderr: %s", out);
	check(log_has(&t, "event=agent.exited", "exit 3"), "agent.exited "
	    "logs the exit code");
	check(log_has(&t, "event=agent.stderr", "cannot read"), "the agent's "
	    "stderr is re-logged as logfmt");
	snprintf(good, sizeof(good), "%s/baton-agent", t.bin);
	rc = CTL(&t, "upgrade", "--binary", good, "--json");
	check(rc == 0, "upgrade --binary GOOD in back-off exits 0 (%d): %s %s",
	    rc, out, err);
	check(json_get_bool(out, "committed") == 1 &&
	    json_get_u64(out, "new_pid", &pid) && pid > 0,
	    "the replacement serves: %s", out);
	check(it_ns_status(&t, NULL, NULL) == (pid_t)pid, "the new agent "
	    "answers on the namespace socket");
	rc = CTL(&t, "status");
	check(rc == 0 && strstr(out, "state running"), "status: running "
	    "(%d): %s", rc, out);
	finish(&t);
}

TEST_T(dead_successor_says_why, 120)
{
	char ww[PATH_MAX + 32];
	struct itest t;
	int rc, i;

	start(&t);
	rc = CTL(&t, "upgrade", "--arg", "--bogus-option", "--json");
	check(rc == 1, "an upgrade to a successor that exits 64 rolls back "
	    "(%d)", rc);
	check(strstr(out, "exit 64") != NULL, "abort_reason has the exit "
	    "code: %s", out);
	check(strstr(out, "bogus-option") != NULL, "abort_reason has the "
	    "successor's own complaint: %s", out);
	check(log_has(&t, "event=agent.stderr", "bogus-option"),
	    "its stderr is in the supervisor log as logfmt");
	check(!log_has(&t, "usage: baton-agent", NULL) ||
	    log_has(&t, "event=agent.stderr", "usage: baton-agent"),
	    "no raw usage text in the log");
	/* A binary the supervisor refuses: the error names it. */
	snprintf(ww, sizeof(ww), "%s", it_script(&t, "ww-agent", "exit 0"));
	chmod(ww, 0777);
	rc = CTL(&t, "upgrade", "--binary", ww);
	check(rc == 69 && strstr(err, "bad_binary") && strstr(err, ww),
	    "bad_binary names the path (%d): %s", rc, err);
	rc = CTL(&t, "journal", "--json");
	check(rc == 0 && strstr(out, "exit 64"), "journal --json shows "
	    "last_abort_reason: %s", out);
	/* More dead successors than agents remembered: the incumbent's own
	 * pipe stays open, so its lines still reach the log. */
	for (i = 0; i < 9; i++)
		CTL(&t, "upgrade", "--arg", "--bogus-option");
	rc = CTL(&t, "upgrade", "--json");
	check(rc == 0, "then a good upgrade commits (%d)", rc);
	check(log_has(&t, "role=agent", "event=handoff.commit"), "the "
	    "incumbent's log line after 10 failed successors arrives");
	finish(&t);
}

TEST(upgrade_waits_out_the_start_up)
{
	struct itest t;
	int rc;

	it_setup(&t);
	require(it_start_supervisor(&t, NULL) > 0, "supervisor started");
	/* Right away: the supervisor may not even listen yet. */
	while (access(t.root, F_OK) == 0 && CTL(&t, "journal") == 69)
		usleep(5000);
	rc = CTL(&t, "upgrade", "--json");
	check(rc == 0, "upgrade right after start commits (%d): %s %s", rc,
	    out, err);
	finish(&t);
}

TEST(journal_json_fields_are_clean)
{
	char id[64], last[64], outcome[64];
	struct itest t;
	int rc;

	start(&t);
	rc = CTL(&t, "upgrade", "--json");
	require(rc == 0, "upgrade commits");
	require(json_get_str(out, "handoff_id", id, sizeof(id)) == 1,
	    "handoff_id: %s", out);
	rc = CTL(&t, "journal", "--json");
	check(rc == 0, "journal exits 0");
	check(json_get_str(out, "last_handoff_id", last, sizeof(last)) == 1 &&
	    strcmp(last, id) == 0, "last_handoff_id is the handoff: %s", out);
	check(json_get_str(out, "last_outcome", outcome, sizeof(outcome)) == 1 &&
	    !strchr(outcome, ' ') && strstr(outcome, "commit"),
	    "last_outcome is one word: '%s'", outcome);
	finish(&t);
}

TEST(ns_list_run_create_json)
{
	struct itest t;
	int rc;

	if (geteuid() != 0)
		tap_skip("needs root (namespaces)");
	start(&t);
	rc = CTL(&t, "ns", "list", "--json");
	check(rc == 0 && strstr(out, "\"allocations\":[]"), "empty list "
	    "(%d): %s", rc, out);
	rc = CTL(&t, "ns", "run", "job-7", "--", "true");
	check(rc == 1 && strstr(err, "allocation_not_found"), "run without "
	    "--create on a missing allocation fails (%d): %s", rc, err);
	rc = CTL(&t, "ns", "run", "job-7", "--json", "--", "true");
	check(rc == 1 && json_get_bool(out, "ok") == 0 &&
	    strstr(out, "\"error\":\"allocation_not_found\""),
	    "--json error (%d): %s", rc, out);
	rc = CTL(&t, "ns", "run", "--create", "job-7", "--net", "--",
	    "sh", "-c", "exit 5");
	check(rc == 5, "run --create creates and runs; the command's status "
	    "(%d): %s", rc, err);
	rc = CTL(&t, "ns", "run", "job-7", "--", "true");
	check(rc == 0, "run in the existing allocation (%d): %s", rc, err);
	rc = CTL(&t, "ns", "create", "job-8", "--json");
	check(rc == 0 && json_get_bool(out, "ok") == 1 &&
	    json_has(out, "namespaces.pid"), "create --json (%d): %s", rc,
	    out);
	rc = CTL(&t, "ns", "list", "--json");
	check(rc == 0 && strstr(out, "{\"allocation_id\":\"job-7\","
	    "\"namespaces\":[\"net\"],\"uenv_image\":null,\"alive\":true}"),
	    "job-7 listed with its namespaces, alive: %s", out);
	check(strstr(out, "\"allocation_id\":\"job-8\",\"namespaces\":"
	    "[\"pid\",\"net\",\"mount\"]") != NULL, "job-8 listed: %s", out);
	rc = CTL(&t, "ns", "list");
	check(rc == 0 && strstr(out, "job-8") && strstr(out, "yes"),
	    "human list: %s", out);
	rc = CTL(&t, "ns", "release", "job-8", "--json");
	check(rc == 0 && json_get_bool(out, "ok") == 1, "release --json: %s",
	    out);
	rc = CTL(&t, "ns", "release", "job-8", "--json");
	check(rc == 1 && json_get_bool(out, "ok") == 0, "second release "
	    "fails (%d): %s", rc, out);
	finish(&t);
}

/* Run baton-supervisor (or baton-agent) with args; its exit code, <= 5 s. */
static int
daemon_rc(struct itest *t, const char *prog, const char *const *args)
{
	char exe[PATH_MAX + 32];
	const char *argv[32];
	int i, k = 0;

	snprintf(exe, sizeof(exe), "%s/%s", t->bin, prog);
	argv[k++] = exe;
	for (i = 0; args[i] && k < 31; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	alarm(10);
	return run(t, argv, NULL);
}

TEST(bad_roots_and_dirs_are_refused)
{
	char ww[PATH_MAX + 16], nowhere[PATH_MAX + 16];
	struct itest t;
	int rc;

	it_setup(&t);
	rc = daemon_rc(&t, "baton-supervisor", (const char *const[]){ "--root",
	    "relative/root", NULL });
	check(rc == 64 && strstr(err, "absolute"), "supervisor: relative "
	    "--root is usage (%d): %s", rc, err);
	snprintf(ww, sizeof(ww), "%s/ww", t.root);
	mkdir(ww, 0777);
	chmod(ww, 0777);
	rc = daemon_rc(&t, "baton-supervisor", (const char *const[]){ "--root",
	    ww, "--agent", t.agent, NULL });
	check(rc == 78 && strstr(err, "writable by others"), "supervisor: a "
	    "world-writable root is refused (%d): %s", rc, err);
	rc = daemon_rc(&t, "baton-agent", (const char *const[]){ "--root", ww,
	    NULL });
	check(rc == 78 && strstr(err, "writable by others"), "agent: a "
	    "world-writable root is refused (%d): %s", rc, err);
	snprintf(nowhere, sizeof(nowhere), "%s/no/such/dir", t.root);
	rc = daemon_rc(&t, "baton-agent", (const char *const[]){ "--root",
	    t.root, "--cgroup-root", nowhere, NULL });
	check(rc == 78 && strstr(err, "--cgroup-root") && strstr(err, nowhere),
	    "agent: --cgroup-root pointing nowhere is refused (%d): %s", rc,
	    err);
	rc = daemon_rc(&t, "baton-agent", (const char *const[]){ "--root",
	    t.root, "--uenv-dir", nowhere, NULL });
	check(rc == 78 && strstr(err, "--uenv-dir") && strstr(err, nowhere),
	    "agent: --uenv-dir pointing nowhere is refused (%d): %s", rc, err);
	it_teardown(&t);
}

static bool
read_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0;
}

TEST(metrics_for_the_textfile_collector)
{
	static const char *const env[] = { "BATON_METRICS_INTERVAL_MS=200",
	    NULL };
	char dir[PATH_MAX + 16], file[PATH_MAX + 32], text[16384];
	const char *extra[] = { "--metrics-file", file, NULL };
	struct itest t;
	struct stat st;
	uint64_t until;

	it_setup(&t);
	snprintf(dir, sizeof(dir), "%s/textfile", t.root);
	snprintf(file, sizeof(file), "%s/baton.prom", dir);
	chmod(t.root, 0755);
	t.sup_args = extra;
	require(it_start_supervisor(&t, env) > 0, "supervisor started");
	require(it_wait_serving(&t, SERVE_MS) > 0, "agent serving");
	require(CTL(&t, "ns", "create", "m1", "--net") == 0 || geteuid() != 0,
	    "an allocation");
	require(CTL(&t, "upgrade") == 0, "a handoff");
	until = clock_mono_ms() + 5000;
	do {
		usleep(100000);
		read_file(file, text, sizeof(text));
	} while (clock_mono_ms() < until &&
	    !strstr(text, "baton_agent_generation 1\n"));
	check(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0755,
	    "the directory is 0755 (%o)", st.st_mode & 0777);
	check(stat(file, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "the file is 0644 (%o)", st.st_mode & 0777);
	check(strstr(text, "\nbaton_up 1\n") != NULL, "baton_up");
	check(strstr(text, "baton_build_info{version=\"") != NULL,
	    "baton_build_info");
	check(strstr(text, "baton_agent_state{state=\"running\"} 1") != NULL,
	    "agent state");
	check(strstr(text, "baton_agent_up 1") != NULL, "agent up");
	check(strstr(text, geteuid() == 0 ? "baton_allocations 1\n" :
	    "baton_allocations 0\n") != NULL, "allocations from the agent");
	check(strstr(text, "baton_agent_generation 1\n") != NULL,
	    "the agent's generation");
	check(strstr(text, "baton_last_handoff_committed 1\n") != NULL,
	    "last handoff outcome");
	check(strstr(text, "baton_last_handoff_duration_seconds ") != NULL,
	    "last handoff duration");
	check(strstr(text, "baton_handoffs_total{outcome=\"committed\"} 1")
	    != NULL, "handoff counter");
	if (tap_failures())
		tap_diag("%s", text);
	finish(&t);
}

/* With no --metrics-file: the directory Debian's node_exporter reads. */
TEST(metrics_default_path_is_the_collectors)
{
	char dir[PATH_MAX + 48], file[PATH_MAX + 64], text[16384];
	struct itest t;
	struct stat st;
	uint64_t until;

	it_setup(&t);
	snprintf(dir, sizeof(dir), "%s/var/lib/prometheus/node-exporter",
	    t.root);
	snprintf(file, sizeof(file), "%s/baton.prom", dir);
	require(it_start_supervisor(&t, NULL) > 0, "supervisor started");
	require(it_wait_serving(&t, SERVE_MS) > 0, "agent serving");
	until = clock_mono_ms() + 5000;
	do {
		usleep(100000);
	} while (clock_mono_ms() < until && !read_file(file, text,
	    sizeof(text)));
	check(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0755,
	    "the collector's directory is 0755 (%o)", st.st_mode & 0777);
	check(stat(file, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "the file is 0644 (%o)", st.st_mode & 0777);
	check(strstr(text, "baton_up 1\n") != NULL, "baton_up in %s", file);
	finish(&t);
}

TEST(journald_priorities_when_journal_stream_is_stderr)
{
	char env0[64], logp[PATH_MAX + 32], text[65536];
	const char *env[] = { env0, NULL };
	struct itest t;
	struct stat st;

	it_setup(&t);
	snprintf(logp, sizeof(logp), "%s/supervisor.log", t.root);
	t.sup_log_fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644);
	require(fstat(t.sup_log_fd, &st) == 0, "log");
	snprintf(env0, sizeof(env0), "JOURNAL_STREAM=%llu:%llu",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	require(it_start_supervisor(&t, env) > 0, "supervisor started");
	require(it_wait_serving(&t, SERVE_MS) > 0, "agent serving");
	CTL(&t, "upgrade", "--arg", "--bogus-option");
	read_file(logp, text, sizeof(text));
	check(text[0] == '<' && strstr(text, "\n<6>ts=") &&
	    strstr(text, "level=info"), "info lines start <6>: %.80s", text);
	check(strstr(text, "\n<4>ts=") != NULL, "warnings start <4>");
	check(strstr(text, "\n<6>ts=") && strstr(text, "role=agent"),
	    "the agent's relayed lines carry a priority too");
	check(!strstr(text, "\nts="), "no line without a priority");
	finish(&t);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
