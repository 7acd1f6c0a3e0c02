/*
 * it_rollout: `batonctl rollout` over a simulated fleet on this machine.
 * Each host is a network namespace (baton-<tag>-hNN) with its own root
 * running the real baton-supervisor and baton-agent; pdsh's exec module
 * reaches them through tests/fleet/remote.sh, which logs every call so
 * the fanout can be measured.  Root only.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define MAX_FLEET 128
#define SERVE_MS 30000
#define OUT_MAX (256 * 1024)

struct fleet {
	char base[PATH_MAX - 128];
	char bin[PATH_MAX - 128];
	char script[PATH_MAX];		/* tests/fleet/remote.sh */
	char log[PATH_MAX];		/* remote.sh's call log */
	char tag[16];
	int n;
	struct itest host[MAX_FLEET];	/* root = base/name, sup = its pid */
	char name[MAX_FLEET][40];
	pid_t agent0[MAX_FLEET];	/* agent pid at start */
};

static char out[OUT_MAX], err[OUT_MAX];

static void
need_root(void)
{
	if (geteuid() != 0)
		tap_skip("needs root (network namespaces)");
	if (system("command -v pdsh >/dev/null 2>&1") != 0)
		tap_skip("pdsh not installed (scripts/deps.sh)");
	if (system("command -v ip >/dev/null 2>&1") != 0)
		tap_skip("ip (iproute2) not installed");
}

/* ip netns add/delete NAME, or rm -rf DIR; quiet, best effort. */
static void
run_quiet(const char *what, const char *arg)
{
	char cmd[PATH_MAX + 64];
	int r;

	if (strcmp(what, "rm") == 0)
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", arg);
	else
		snprintf(cmd, sizeof(cmd), "ip netns %s '%s' 2>/dev/null", what,
		    arg);
	r = system(cmd);
	(void)r;
}

/* Start n hosts; each serves before this returns. */
static void
fleet_start(struct fleet *f, int n)
{
	const char *b = getenv("BATON_TEST_BIN");
	char tmpl[] = "/tmp/baton-fleet.XXXXXX", logp[PATH_MAX + 64];
	char exe[PATH_MAX], agent[PATH_MAX];
	int i;

	need_root();
	memset(f, 0, sizeof(*f));
	if (!realpath(b ? b : "build-san-cp", f->bin))
		tap_skip("test binaries not built (BATON_TEST_BIN)");
	if (!realpath("tests/fleet/remote.sh", f->script))
		tap_skip("run from the repository root (tests/fleet/remote.sh)");
	require(mkdtemp(tmpl) != NULL, "mkdtemp");
	snprintf(f->base, sizeof(f->base), "%s", tmpl);
	snprintf(f->log, sizeof(f->log), "%s/calls.log", f->base);
	snprintf(f->tag, sizeof(f->tag), "%04x",
	    (unsigned)(getpid() ^ time(NULL)) & 0xffff);
	setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
	signal(SIGPIPE, SIG_IGN);
	snprintf(exe, sizeof(exe), "%s/baton-supervisor", f->bin);
	snprintf(agent, sizeof(agent), "%s/baton-agent", f->bin);
	for (i = 0; i < n; i++) {
		struct itest *t = &f->host[i];
		pid_t pid;

		snprintf(f->name[i], sizeof(f->name[i]), "baton-%s-h%03d", f->tag,
		    i + 1);
		t->sup = -1;
		t->sup_log_fd = -1;
		snprintf(t->root, sizeof(t->root), "%s/%s", f->base, f->name[i]);
		snprintf(t->bin, sizeof(t->bin), "%s", f->bin);
		snprintf(t->agent, sizeof(t->agent), "%s", agent);
		snprintf(t->markers, sizeof(t->markers), "%s/markers", t->root);
		require(mkdir(t->root, 0755) == 0, "mkdir %s", t->root);
		run_quiet("add", f->name[i]);
		f->n = i + 1;
		snprintf(logp, sizeof(logp), "%s/supervisor.log", t->root);
		t->sup_log_fd = open(logp, O_WRONLY | O_CREAT | O_APPEND |
		    O_CLOEXEC, 0644);
		pid = fork();
		require(pid >= 0, "fork");
		if (pid == 0) {
			dup2(t->sup_log_fd, 1);
			dup2(t->sup_log_fd, 2);
			execlp("ip", "ip", "netns", "exec", f->name[i], exe,
			    "--root", t->root, "--agent", agent, "--no-seccomp",
			    (char *)NULL);
			_exit(127);
		}
		t->sup = pid;
	}
	for (i = 0; i < n; i++) {
		f->agent0[i] = it_wait_serving(&f->host[i], SERVE_MS);
		if (!check(f->agent0[i] > 0, "%s serving", f->name[i])) {
			it_dump_log(&f->host[i]);
			tap_bail();
		}
	}
}

static void
fleet_stop(struct fleet *f)
{
	int i;

	for (i = 0; i < f->n; i++)
		if (f->host[i].sup > 0)
			kill(f->host[i].sup, SIGTERM);
	for (i = 0; i < f->n; i++) {
		it_teardown(&f->host[i]);	/* waits, unmounts, removes */
		run_quiet("delete", f->name[i]);
	}
	if (!getenv("BATON_KEEP_ROOT"))
		run_quiet("rm", f->base);
}

static pid_t
agent_of(struct fleet *f, int i)
{
	return it_ns_status(&f->host[i], NULL, NULL);
}

/* batonctl status --json of host i, into buf. */
static void
status_of(struct fleet *f, int i, char *buf, size_t len)
{
	it_ctl(&f->host[i], buf, len, (const char *[]){ "status", "--json",
	    NULL });
}

/* Run argv with stdout into out and stderr (through errp) into err. */
static int
run_capture(const char *const *argv, const char *errp)
{
	int p[2], status, efd;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	efd = open(errp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	require(efd >= 0 && pipe2(p, O_CLOEXEC) == 0, "pipes");
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(efd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (len < sizeof(out) - 1 &&
	    (r = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	r = pread(efd, err, sizeof(err) - 1, 0);
	err[r > 0 ? r : 0] = '\0';
	close(efd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * batonctl --root BASE rollout -w RANGE --remote-cmd remote.sh ... --json
 * EXTRA...; stdout in out, stderr in err.  Returns the exit status.
 */
static int
rollout(struct fleet *f, const char *delay, const char *const *extra)
{
	char exe[PATH_MAX], range[128], tmplt[PATH_MAX * 5], errp[PATH_MAX];
	const char *argv[48];
	int k = 0, i;

	snprintf(exe, sizeof(exe), "%s/batonctl", f->bin);
	snprintf(range, sizeof(range), "baton-%s-h[001-%03d]", f->tag, f->n);
	snprintf(tmplt, sizeof(tmplt), "%s %s %s %s %s %%h", f->script, f->log,
	    delay, f->bin, f->base);
	snprintf(errp, sizeof(errp), "%s/rollout.err", f->base);
	argv[k++] = exe;
	argv[k++] = "--root";
	argv[k++] = f->base;
	argv[k++] = "rollout";
	argv[k++] = "-w";
	argv[k++] = range;
	argv[k++] = "--remote-cmd";
	argv[k++] = tmplt;
	argv[k++] = "--json";
	for (i = 0; extra && extra[i] && k < 47; i++)
		argv[k++] = extra[i];
	argv[k] = NULL;
	return run_capture(argv, errp);
}

static void
dump_err(void)
{
	char *line, *save;

	for (line = strtok_r(err, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save))
		tap_diag("stderr: %s", line);
}

/*
 * Hosts whose preflight status the rollout asked again (a missed deadline
 * on this loaded machine is not an outage: ctl/rollout.c), from its
 * stderr: each is one more remote call.
 */
static int
asked_again(void)
{
	const char *p = strstr(err, "rollout: preflight asked ");

	return p ? atoi(p + strlen("rollout: preflight asked ")) : 0;
}

/* The value of key in host name's object of the rollout JSON (static). */
static const char *
host_field(const char *json, const char *name, const char *key)
{
	static char val[512];
	char pat[128], kp[64];
	const char *h, *v, *end;
	size_t n;

	snprintf(pat, sizeof(pat), "{\"host\":\"%s\"", name);
	snprintf(kp, sizeof(kp), "\"%s\":", key);
	if (!(h = strstr(json, pat)) || !(v = strstr(h, kp)))
		return "";
	v += strlen(kp);
	if (*v == '"') {
		v++;
		end = strchr(v, '"');
	} else {
		end = v + strcspn(v, ",}");
	}
	if (!end)
		return "";
	n = (size_t)(end - v) < sizeof(val) - 1 ? (size_t)(end - v) :
	    sizeof(val) - 1;
	memcpy(val, v, n);
	val[n] = '\0';
	return val;
}

static long
top_num(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

/* Per-host binary: BASE/HOST/agent, a script that runs baton-agent or fails. */
static void
host_agent_script(struct fleet *f, int i, const char *body)
{
	char p[PATH_MAX + 64];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/agent", f->host[i].root);
	fp = fopen(p, "w");
	require(fp != NULL, "create %s", p);
	fprintf(fp, "#!/bin/sh\n%s\n", body);
	fclose(fp);
	chmod(p, 0755);
}

static void
good_agents(struct fleet *f)
{
	char body[PATH_MAX + 32];
	int i;

	snprintf(body, sizeof(body), "exec %s/baton-agent \"$@\"", f->bin);
	for (i = 0; i < f->n; i++)
		host_agent_script(f, i, body);
}

static char binary_opt[PATH_MAX];

static const char *
per_host_binary(struct fleet *f)
{
	snprintf(binary_opt, sizeof(binary_opt), "%s/%%h/agent", f->base);
	return binary_opt;
}

TEST_T(usage_and_host_lists, 30)
{
	const char *b = getenv("BATON_TEST_BIN");
	char bin[PATH_MAX], cmd[PATH_MAX * 2];
	int rc;

	if (!realpath(b ? b : "build-san-cp", bin))
		tap_skip("test binaries not built (BATON_TEST_BIN)");
	setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
#define CTL(args) (snprintf(cmd, sizeof(cmd), "%s/batonctl rollout " args \
	" >/dev/null 2>&1", bin), rc = system(cmd), \
	WIFEXITED(rc) ? WEXITSTATUS(rc) : -1)
	check_eq(CTL("--help"), 0);
	check_eq(CTL("-w 'n[3-1]' --binary /x"), 64);
	check_eq(CTL("-w 'n[1-2' --binary /x"), 64);
	check_eq(CTL("-w 'n[01-02],n02' --binary /x --dry-run"), 0);
	check_eq(CTL("-w 'bad/name' --binary /x"), 64);
	check_eq(CTL("-w n1 --binary relative/path"), 64);
	check_eq(CTL("-w n1"), 64);
	check_eq(CTL("-w n1 --binary /x --fanout 0"), 64);
	check_eq(CTL("-w n1 --binary /x --pdsh /nonexistent/pdsh"), 69);
	check_eq(CTL("-w 'n[1-100001]' --binary /x --dry-run"), 64);
	check_eq(CTL("-w n1 --binary /x --dry-run --nodeset /nonexistent"), 69);
#undef CTL
}

/* batonctl rollout --dry-run ARGS: the plan's host column, in out. */
static int
plan(const char *bin, const char *args, char *buf, size_t len)
{
	char cmd[PATH_MAX * 3], line[1024], host[300];
	size_t o = 0;
	FILE *p;
	int rc;

	snprintf(cmd, sizeof(cmd), "%s/batonctl rollout --dry-run --binary "
	    "/opt/a-%%h %s 2>&1", bin, args);
	buf[0] = '\0';
	if (!(p = popen(cmd, "r")))
		return -1;
	while (fgets(line, sizeof(line), p))
		if (sscanf(line, "%*s %299s /opt/a-", host) == 1 &&
		    strstr(line, "/opt/a-") && o + strlen(host) + 2 < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? " " :
			    "", host);
	rc = pclose(p);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST_T(pdsh_host_list_forms_through_nodeset, 60)
{
	const char *b = getenv("BATON_TEST_BIN");
	char bin[PATH_MAX], tmp[] = "/tmp/baton-hl.XXXXXX", path[PATH_MAX * 2];
	char args[PATH_MAX * 3], fqdn[260];
	static char got[1 << 20];
	uint64_t t0;
	FILE *f;
	int rc, i;

	if (!realpath(b ? b : "build-san-cp", bin))
		tap_skip("test binaries not built (BATON_TEST_BIN)");
	if (system("command -v nodeset >/dev/null 2>&1") != 0)
		tap_skip("nodeset not installed (clustershell, scripts/deps.sh "
		    "--check)");
	setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
	require(mkdtemp(tmp) != NULL, "mkdtemp");
	rc = plan(bin, "-w 'node[01-03],n02,node02'", got, sizeof(got));
	check(rc == 0 && strcmp(got, "n02 node01 node02 node03") == 0,
	    "ranges, duplicates merged (%d): %s", rc, got);
	rc = plan(bin, "-w 'node[1-5]' -x 'node[2-3]'", got, sizeof(got));
	check(rc == 0 && strcmp(got, "node1 node4 node5") == 0, "-x excludes "
	    "(%d): %s", rc, got);
	rc = plan(bin, "-w 'bob@db[1-2].example.org'", got, sizeof(got));
	check(rc == 0 && strcmp(got, "bob@db1.example.org "
	    "bob@db2.example.org") == 0, "user@ kept (%d): %s", rc, got);
	snprintf(path, sizeof(path), "%s/hosts", tmp);
	f = fopen(path, "w");
	require(f != NULL, "hosts file");
	fprintf(f, "# rack 1\nr1-n[1-2]  r1-n9\nr2-n1 # one more\n");
	fclose(f);
	snprintf(args, sizeof(args), "-w '^%s' -x r1-n9", path);
	rc = plan(bin, args, got, sizeof(got));
	check(rc == 0 && strcmp(got, "r1-n1 r1-n2 r2-n1") == 0, "-w ^FILE "
	    "(%d): %s", rc, got);
	snprintf(path, sizeof(path), "%s/clustershell", tmp);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/clustershell/groups.conf", tmp);
	f = fopen(path, "w");
	require(f != NULL, "groups.conf");
	fprintf(f, "[Main]\ndefault: local\n[local]\nmap: sed -n "
	    "'s/^$GROUP:\\(.*\\)/\\1/p' %s/groups\nlist: sed -n "
	    "'s/^\\([0-9A-Za-z_-]*\\):.*/\\1/p' %s/groups\n", tmp, tmp);
	fclose(f);
	snprintf(path, sizeof(path), "%s/groups", tmp);
	f = fopen(path, "w");
	require(f != NULL, "groups");
	fprintf(f, "gpu: g[1-3]\n");
	fclose(f);
	setenv("XDG_CONFIG_HOME", tmp, 1);
	rc = plan(bin, "-g gpu -x g2", got, sizeof(got));
	check(rc == 0 && strcmp(got, "g1 g3") == 0, "-g GROUP through "
	    "ClusterShell groups (%d): %s", rc, got);
	unsetenv("XDG_CONFIG_HOME");
	for (i = 0; i < 4; i++)
		memset(fqdn + i * 64, 'a' + i, 63), fqdn[i * 64 + 63] = '.';
	fqdn[253] = '\0';		/* 63.63.63.61 */
	snprintf(args, sizeof(args), "-w %s", fqdn);
	rc = plan(bin, args, got, sizeof(got));
	check(rc == 0 && strcmp(got, fqdn) == 0, "a 253-character FQDN "
	    "(%d)", rc);
	t0 = clock_mono_ms();
	rc = plan(bin, "-w 'n[1-100000]'", got, sizeof(got));
	check(rc == 0 && strncmp(got, "n1 n2 n3 ", 9) == 0 &&
	    strstr(got, " n99999 n100000"), "100,000 hosts (%d)", rc);
	tap_diag("100,000-host plan in %llu ms", (unsigned long long)
	    (clock_mono_ms() - t0));
	snprintf(args, sizeof(args), "rm -rf '%s'", tmp);
	rc = system(args);
	(void)rc;
}

TEST_T(all_hosts_commit_then_rollback, 120)
{
	static struct fleet f;
	char st[4096], want[PATH_MAX + 64];
	int i, rc;

	fleet_start(&f, 5);
	good_agents(&f);
	rc = rollout(&f, "0", (const char *[]){ "--binary",
	    per_host_binary(&f), "--fanout", "2", "--batch-size", "2", NULL });
	check(rc == 0, "rollout exits 0 (%d)", rc);
	check(strstr(out, "\"result\":\"committed-all\"") != NULL,
	    "committed-all: %s", out);
	check_eq(top_num(out, "attempted"), 5);
	check_eq(top_num(out, "ok"), 5);
	check_eq(top_num(out, "failed"), 0);
	check(strstr(err, "canary: 1 host(s)") && strstr(err, "batch 2/2"),
	    "progress names the canary and 2 batches");
	for (i = 0; i < f.n; i++) {
		pid_t now = agent_of(&f, i);

		check(strcmp(host_field(out, f.name[i], "outcome"), "committed")
		    == 0, "%s committed", f.name[i]);
		check(now > 0 && now != f.agent0[i], "%s: a new agent serves",
		    f.name[i]);
		check(atol(host_field(out, f.name[i], "new_pid")) == now,
		    "%s: new_pid is the server", f.name[i]);
		check(strlen(host_field(out, f.name[i], "handoff_id")) == 36,
		    "%s: handoff id reported", f.name[i]);
		status_of(&f, i, st, sizeof(st));
		snprintf(want, sizeof(want), "\"agent_binary\":\"%s/agent\"",
		    f.host[i].root);
		check(strstr(st, want) != NULL, "%s runs the new binary: %s",
		    f.name[i], st);
		f.agent0[i] = now;
	}
	if (rc != 0)
		dump_err();

	/* A re-run keeps the earlier "previous" of hosts already upgraded. */
	rc = rollout(&f, "0", (const char *[]){ "--binary",
	    per_host_binary(&f), NULL });
	check(rc == 0, "re-run exits 0 (%d)", rc);
	for (i = 0; i < f.n; i++)
		f.agent0[i] = agent_of(&f, i);

	/* --rollback takes each host's previous binary from the record. */
	rc = rollout(&f, "0", (const char *[]){ "--rollback", NULL });
	check(rc == 0, "rollback exits 0 (%d)", rc);
	check(strstr(out, "\"rollback\":true") != NULL, "rollback run");
	for (i = 0; i < f.n; i++) {
		status_of(&f, i, st, sizeof(st));
		snprintf(want, sizeof(want), "\"agent_binary\":\"%s/baton-agent\"",
		    f.bin);
		check(strstr(st, want) != NULL, "%s back on the old binary: %s",
		    f.name[i], st);
		check(agent_of(&f, i) != f.agent0[i], "%s: handed off again",
		    f.name[i]);
	}
	if (rc != 0)
		dump_err();
	fleet_stop(&f);
}

TEST_T(failing_host_rolls_back_and_budget_stops, 120)
{
	static struct fleet f;
	pid_t before[MAX_FLEET];
	int i, rc;

	fleet_start(&f, 5);
	good_agents(&f);
	host_agent_script(&f, 2, "echo 'new agent refuses to start' >&2; exit 1");

	/* Budget 0: h03 fails in batch 2, batch 3 never starts. */
	rc = rollout(&f, "0", (const char *[]){ "--binary",
	    per_host_binary(&f), "--fanout", "2", "--batch-size", "2",
	    "--failure-budget", "0", NULL });
	check(rc == 1, "exit 1 (%d)", rc);
	check(strstr(out, "\"result\":\"stopped-on-failures\"") != NULL,
	    "stopped on failures: %s", out);
	check(strcmp(host_field(out, f.name[2], "outcome"), "rolled-back") == 0,
	    "%s rolled back", f.name[2]);
	check(host_field(out, f.name[2], "abort_reason")[0] != '\0',
	    "%s: abort reason given", f.name[2]);
	check(strstr(err, f.name[2]) && strstr(err, "rolled-back"),
	    "progress names the failing host");
	check(agent_of(&f, 2) == f.agent0[2], "%s: the old agent still serves",
	    f.name[2]);
	for (i = 0; i < 2; i++)
		check(agent_of(&f, i) != f.agent0[i], "%s upgraded", f.name[i]);
	for (i = 3; i < 5; i++) {
		check(strcmp(host_field(out, f.name[i], "outcome"), "skipped") ==
		    0, "%s skipped", f.name[i]);
		check(agent_of(&f, i) == f.agent0[i], "%s untouched", f.name[i]);
	}
	check_eq(top_num(out, "attempted"), 3);
	check_eq(top_num(out, "ok"), 2);
	check_eq(top_num(out, "failed"), 1);
	check_eq(top_num(out, "skipped"), 2);
	for (i = 0; i < f.n; i++)
		before[i] = agent_of(&f, i);

	/* Budget 1: the same failure is tolerated, everyone else proceeds. */
	rc = rollout(&f, "0", (const char *[]){ "--binary",
	    per_host_binary(&f), "--fanout", "2", "--batch-size", "2",
	    "--failure-budget", "1", NULL });
	check(rc == 1, "exit 1 (%d)", rc);
	check(strstr(out, "\"result\":\"failed-within-budget\"") != NULL,
	    "failed within budget: %s", out);
	check_eq(top_num(out, "attempted"), 5);
	check_eq(top_num(out, "ok"), 4);
	check_eq(top_num(out, "failed"), 1);
	for (i = 0; i < f.n; i++) {
		if (i == 2) {
			check(agent_of(&f, i) == before[i], "%s keeps its agent",
			    f.name[i]);
			continue;
		}
		check(agent_of(&f, i) != before[i], "%s upgraded", f.name[i]);
	}
	if (rc != 1)
		dump_err();
	fleet_stop(&f);
}

TEST_T(preflight_fails_closed, 120)
{
	static struct fleet f;
	char st[4096];
	int i, rc;

	fleet_start(&f, 4);
	good_agents(&f);
	/* h02: the binary is missing; h03: its supervisor is not running. */
	snprintf(st, sizeof(st), "%s/agent", f.host[1].root);
	unlink(st);
	kill(f.host[2].sup, SIGTERM);
	waitpid(f.host[2].sup, NULL, 0);
	f.host[2].sup = -1;
	check(agent_of(&f, 2) < 0, "%s is down", f.name[2]);

	rc = rollout(&f, "0", (const char *[]){ "--binary",
	    per_host_binary(&f), "--failure-budget", "3", NULL });
	check(rc == 69, "could not start: exit 69 (%d)", rc);
	check(strstr(out, "\"result\":\"could-not-start\"") != NULL,
	    "could-not-start: %s", out);
	check(strcmp(host_field(out, f.name[1], "error_kind"),
	    "binary-missing") == 0, "%s: binary-missing", f.name[1]);
	check(strcmp(host_field(out, f.name[2], "error_kind"), "unreachable")
	    == 0, "%s: unreachable", f.name[2]);
	check(strstr(err, f.name[1]) && strstr(err, f.name[2]) &&
	    strstr(err, "nothing was changed"), "stderr names both hosts");
	check_eq(top_num(out, "attempted"), 0);
	for (i = 0; i < f.n; i++) {
		if (i == 2)
			continue;
		check(agent_of(&f, i) == f.agent0[i], "%s: agent pid unchanged",
		    f.name[i]);
		status_of(&f, i, st, sizeof(st));
		check(strstr(st, "\"handoffs_committed\":0,") != NULL &&
		    strstr(st, "\"handoffs_rolled_back\":0,") != NULL,
		    "%s: no handoff ran: %s", f.name[i], st);
	}
	if (rc != 69)
		dump_err();
	fleet_stop(&f);
}

TEST_T(host_timeout_reports_unknown, 120)
{
	static struct fleet f;
	uint64_t until;
	int rc;

	fleet_start(&f, 2);
	good_agents(&f);
	/* A successor that never says HELLO: the supervisor rolls back later. */
	host_agent_script(&f, 1, "exec sleep 1000");
	rc = rollout(&f, "0", (const char *[]){ "--binary",
	    per_host_binary(&f), "--host-timeout-ms", "1500",
	    "--failure-budget", "1", NULL });
	check(rc == 1, "exit 1 (%d)", rc);
	check(strcmp(host_field(out, f.name[1], "outcome"), "unknown") == 0,
	    "%s unknown: %s", f.name[1], out);
	check(strcmp(host_field(out, f.name[1], "error_kind"), "timeout") == 0,
	    "%s: timeout", f.name[1]);
	check(strstr(host_field(out, f.name[1], "error"), "now ") != NULL,
	    "%s: its state was queried after the timeout: %s", f.name[1],
	    host_field(out, f.name[1], "error"));
	check(strcmp(host_field(out, f.name[0], "outcome"), "committed") == 0,
	    "%s committed", f.name[0]);
	/* The handoff itself was not cut: it ends rolled back, O serving. */
	until = clock_mono_ms() + 20000;
	while (clock_mono_ms() < until) {
		char st[4096];

		status_of(&f, 1, st, sizeof(st));
		if (strstr(st, "\"handoffs_rolled_back\":1,"))
			break;
		usleep(100000);
	}
	check(agent_of(&f, 1) == f.agent0[1], "%s: the old agent serves",
	    f.name[1]);
	if (rc != 1)
		dump_err();
	fleet_stop(&f);
}

/* Most remote.sh calls that overlapped in time; -1 on a bad log. */
static int
max_overlap(const char *log, int *ncalls, int *nupgrades)
{
	static long long s[1024], e[1024];
	FILE *fp = fopen(log, "r");
	int n = 0, i, j, best = 0;
	char cmd[64];

	*ncalls = 0;
	*nupgrades = 0;
	if (!fp)
		return -1;
	while (n < 1024 && fscanf(fp, "%lld %lld %*s %63s", &s[n], &e[n],
	    cmd) == 3) {
		*nupgrades += strcmp(cmd, "upgrade") == 0;
		n++;
	}
	fclose(fp);
	for (i = 0; i < n; i++) {
		int c = 0;

		for (j = 0; j < n; j++)
			if (s[j] <= s[i] && s[i] < e[j])
				c++;
		if (c > best)
			best = c;
	}
	*ncalls = n;
	return best;
}

TEST_T(fanout_bounds_concurrency_32_hosts, 280)
{
	static const char *const fanouts[] = { "1", "4", "16" };
	static const char *const delays[] = { "0", "0.15" };
	static struct fleet f;
	uint64_t t0, ms[2][3];
	int d, k, i, rc, over, calls, ups;

	fleet_start(&f, 32);
	good_agents(&f);
	for (d = 0; d < 2; d++) {
		for (k = 0; k < 3; k++) {
			int fo = atoi(fanouts[k]);

			unlink(f.log);
			t0 = clock_mono_ms();
			rc = rollout(&f, delays[d], (const char *[]){ "--binary",
			    per_host_binary(&f), "--fanout", fanouts[k], NULL });
			ms[d][k] = clock_mono_ms() - t0;
			over = max_overlap(f.log, &calls, &ups);
			check(rc == 0 && top_num(out, "ok") == 32,
			    "fanout %d: 32 committed (exit %d)", fo, rc);
			check(ups == 32 && calls == 3 * 32 + asked_again(),
			    "fanout %d: %d remote calls (status, probe, upgrade "
			    "a host, %d status asked again), %d upgrades", fo,
			    calls, asked_again(), ups);
			check(over >= 1 && over <= fo, "fanout %d: at most %d at "
			    "once (saw %d)", fo, fo, over);
			if (d == 1 && fo > 1)
				check(over > 1, "fanout %d: hosts ran in parallel "
				    "(saw %d)", fo, over);
			tap_diag("32 hosts, fanout %2d, connection delay %ss: "
			    "%.2f s (rollout %ld ms), max %d at once", fo,
			    delays[d], (double)ms[d][k] / 1000.0,
			    top_num(out, "duration_ms"), over);
			if (rc != 0)
				dump_err();
			for (i = 0; i < f.n; i++)
				if (agent_of(&f, i) <= 0)
					check(0, "%s serves", f.name[i]);
		}
	}
	tap_diag("speed-up fanout 16 vs 1: %.1fx without delay (CPU-bound: "
	    "all 32 hosts share this machine's cores), %.1fx with a 0.15 s "
	    "connection delay; rounds 1+ceil(31/f): 32, 9, 3",
	    (double)ms[0][0] / (double)ms[0][2],
	    (double)ms[1][0] / (double)ms[1][2]);
	check(ms[1][0] >= 3 * ms[1][2], "with a connection delay, fanout 16 is "
	    "at least 3x faster than fanout 1 (%llu vs %llu ms)",
	    (unsigned long long)ms[1][2], (unsigned long long)ms[1][0]);
	check(ms[0][2] <= ms[0][0], "without a delay fanout 16 is not slower "
	    "than fanout 1");
	fleet_stop(&f);
}


static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * A simulated fleet of 128 hosts (network namespaces, each with its own
 * supervisor and agent) rolled out with fanout 32: every host commits,
 * at most 32 run at once, and the wall time per host and in total is
 * reported (docs/ROLLOUT.md extrapolates 10,000 hosts from it).
 */
TEST_T(fleet_of_128_hosts_fanout_32, 590)
{
	static struct fleet f;
	static uint64_t per[MAX_FLEET], handoff[MAX_FLEET];
	uint64_t t0, start_ms, total_ms, sum = 0;
	int i, rc, over, calls, ups, n = 128;

	t0 = clock_mono_ms();
	fleet_start(&f, n);
	start_ms = clock_mono_ms() - t0;
	good_agents(&f);
	unlink(f.log);
	t0 = clock_mono_ms();
	rc = rollout(&f, "0", (const char *[]){ "--binary",
	    per_host_binary(&f), "--fanout", "32", "--batch-size", "64",
	    NULL });
	total_ms = clock_mono_ms() - t0;
	over = max_overlap(f.log, &calls, &ups);
	check(rc == 0 && top_num(out, "ok") == n, "all %d hosts committed "
	    "(exit %d, ok %ld)", n, rc, top_num(out, "ok"));
	check(ups == n && calls == 3 * n + asked_again(), "%d remote calls "
	    "(status, probe, upgrade a host, %d status asked again), %d "
	    "upgrades", calls, asked_again(), ups);
	check(over >= 2 && over <= 32, "at most 32 at once (saw %d)", over);
	for (i = 0; i < n; i++) {
		per[i] = strtoull(host_field(out, f.name[i], "duration_ms"), NULL,
		    10);
		handoff[i] = strtoull(host_field(out, f.name[i], "handoff_ms"),
		    NULL, 10);
		sum += per[i];
		if (agent_of(&f, i) <= 0 || agent_of(&f, i) == f.agent0[i])
			check(0, "%s serves a new agent", f.name[i]);
	}
	qsort(per, (size_t)n, sizeof(per[0]), cmp_u64);
	qsort(handoff, (size_t)n, sizeof(handoff[0]), cmp_u64);
	tap_diag("128 hosts started in %.1f s", (double)start_ms / 1000.0);
	tap_diag("128 hosts, fanout 32, batches canary+64+63: total %.2f s "
	    "(rollout's own %ld ms), max %d at once", (double)total_ms /
	    1000.0, top_num(out, "duration_ms"), over);
	tap_diag("per host (upgrade command, wall): min %llu ms, median %llu "
	    "ms, p90 %llu ms, max %llu ms, mean %llu ms",
	    (unsigned long long)per[0], (unsigned long long)per[n / 2],
	    (unsigned long long)per[n * 9 / 10], (unsigned long long)per[n - 1],
	    (unsigned long long)(sum / (uint64_t)n));
	tap_diag("per host (handoff itself): median %llu ms, max %llu ms",
	    (unsigned long long)handoff[n / 2],
	    (unsigned long long)handoff[n - 1]);
	if (rc != 0)
		dump_err();
	fleet_stop(&f);
}

/* Run a shell command quietly; its exit status. */
static int
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[PATH_MAX * 4];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/*
 * The default remote path for real: an OpenSSH server on 127.0.0.1 with
 * its own config, port and host key in a temporary directory (key-only,
 * no PAM, nothing system-wide but sshd's privilege-separation directory
 * /run/sshd, made when missing and removed after), three ssh_config Host
 * aliases that all lead to it, each alias driving its own supervisor
 * under its own root, rolled out through pdsh with "ssh -F CONFIG
 * -o BatchMode=yes %h batonctl --root ROOT/%h" as the remote command.
 */
TEST_T(ssh_rollout_through_a_real_sshd, 240)
{
	static struct itest host[3];
	char tmp[] = "/tmp/baton-ssh.XXXXXX", cfg[PATH_MAX + 32];
	char tmplt[PATH_MAX * 4], exe[PATH_MAX + 32], bin[PATH_MAX];
	char agent[PATH_MAX + 32], binary[PATH_MAX + 32];
	const char *b = getenv("BATON_TEST_BIN");
	const char *argv[24];
	bool made_run_sshd = false;
	uint64_t t0, ms;
	pid_t sshd = -1;
	int i, k = 0, port, rc;
	FILE *f;

	if (geteuid() != 0)
		tap_skip("needs root (sshd)");
	if (access("/usr/sbin/sshd", X_OK) < 0 ||
	    system("command -v ssh ssh-keygen pdsh nodeset >/dev/null") != 0)
		tap_skip("openssh-server/client, pdsh or clustershell missing "
		    "(scripts/deps.sh --check)");
	if (!realpath(b ? b : "build-san-cp", bin))
		tap_skip("test binaries not built (BATON_TEST_BIN)");
	require(mkdtemp(tmp) != NULL, "mkdtemp");
	chmod(tmp, 0755);
	if (access("/run/sshd", F_OK) < 0) {
		require(mkdir("/run/sshd", 0755) == 0, "mkdir /run/sshd");
		made_run_sshd = true;
	}
	require(sh("ssh-keygen -q -t ed25519 -N '' -f %s/hostkey && "
	    "ssh-keygen -q -t ed25519 -N '' -f %s/id && "
	    "cp %s/id.pub %s/authorized_keys", tmp, tmp, tmp, tmp) == 0,
	    "keys");
	port = 20000 + (int)(getpid() % 20000);
	snprintf(cfg, sizeof(cfg), "%s/sshd_config", tmp);
	f = fopen(cfg, "w");
	require(f != NULL, "sshd_config");
	fprintf(f, "Port %d\nListenAddress 127.0.0.1\nHostKey %s/hostkey\n"
	    "AuthorizedKeysFile %s/authorized_keys\nPubkeyAuthentication yes\n"
	    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
	    "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
	    "PidFile %s/sshd.pid\nMaxStartups 64:30:128\nMaxSessions 64\n"
	    "LogLevel ERROR\n", port, tmp, tmp, tmp);
	fclose(f);
	snprintf(cfg, sizeof(cfg), "%s/ssh_config", tmp);
	f = fopen(cfg, "w");
	require(f != NULL, "ssh_config");
	for (i = 0; i < 3; i++)
		fprintf(f, "Host sshhost-%d\n  HostName 127.0.0.1\n  Port %d\n",
		    i + 1, port);
	fprintf(f, "Host *\n  User root\n  IdentityFile %s/id\n"
	    "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
	    "  UserKnownHostsFile %s/known_hosts\n  BatchMode yes\n"
	    "  LogLevel ERROR\n", tmp, tmp);
	fclose(f);
	sshd = fork();
	require(sshd >= 0, "fork");
	if (sshd == 0) {
		char sc[PATH_MAX + 32];

		snprintf(sc, sizeof(sc), "%s/sshd_config", tmp);
		execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", sc,
		    (char *)NULL);
		_exit(127);
	}
	t0 = clock_mono_ms();
	while (sh("ssh -F %s sshhost-1 true 2>/dev/null", cfg) != 0) {
		if (clock_mono_ms() - t0 > 10000 || waitpid(sshd, NULL,
		    WNOHANG) == sshd) {
			check(0, "sshd answers on 127.0.0.1:%d", port);
			goto out;
		}
		usleep(100000);
	}
	setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
	snprintf(agent, sizeof(agent), "%s/baton-agent", bin);
	for (i = 0; i < 3; i++) {
		struct itest *t = &host[i];

		memset(t, 0, sizeof(*t));
		t->sup = -1;
		t->sup_log_fd = -1;
		require(snprintf(t->root, sizeof(t->root), "%s/sshhost-%d", tmp,
		    i + 1) < (int)sizeof(t->root) && snprintf(t->bin,
		    sizeof(t->bin), "%s", bin) < (int)sizeof(t->bin) &&
		    snprintf(t->agent, sizeof(t->agent), "%s", agent) <
		    (int)sizeof(t->agent) && snprintf(t->markers,
		    sizeof(t->markers), "%s/markers", t->root) <
		    (int)sizeof(t->markers), "paths fit");
		require(mkdir(t->root, 0755) == 0, "root %s", t->root);
		mkdir(t->markers, 0755);
		require(it_start_supervisor(t, NULL) > 0, "supervisor %d", i);
	}
	for (i = 0; i < 3; i++)
		require(it_wait_serving(&host[i], SERVE_MS) > 0, "sshhost-%d "
		    "serving", i + 1);
	snprintf(binary, sizeof(binary), "%s/baton-agent", bin);
	snprintf(exe, sizeof(exe), "%s/batonctl", bin);
	snprintf(tmplt, sizeof(tmplt), "ssh -F %s -o BatchMode=yes %%h env "
	    "ASAN_OPTIONS=detect_leaks=0 %s --root %s/%%h", cfg, exe, tmp);
	argv[k++] = exe;
	argv[k++] = "--root";
	argv[k++] = tmp;
	argv[k++] = "rollout";
	argv[k++] = "-w";
	argv[k++] = "sshhost-[1-3]";
	argv[k++] = "--binary";
	argv[k++] = binary;
	argv[k++] = "--fanout";
	argv[k++] = "3";
	argv[k++] = "--remote-cmd";
	argv[k++] = tmplt;
	argv[k++] = "--json";
	argv[k] = NULL;
	snprintf(cfg, sizeof(cfg), "%s/rollout.err", tmp);
	t0 = clock_mono_ms();
	rc = run_capture(argv, cfg);
	ms = clock_mono_ms() - t0;
	check(rc == 0 && top_num(out, "ok") == 3, "3 hosts committed through "
	    "ssh (exit %d)", rc);
	for (i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "sshhost-%d", i + 1);
		check(strcmp(host_field(out, name, "outcome"), "committed") == 0,
		    "%s committed", name);
		/* host_field's buffer is static: one call per use. */
		tap_diag("%s: %s ms through ssh", name,
		    host_field(out, name, "duration_ms"));
		tap_diag("%s: handoff %s ms", name,
		    host_field(out, name, "handoff_ms"));
	}
	tap_diag("3 hosts through a real sshd, fanout 3: %.2f s", (double)ms /
	    1000.0);
	if (rc != 0)
		dump_err();
out:
	for (i = 0; i < 3; i++)
		if (host[i].sup > 0)
			it_teardown(&host[i]);
	if (sshd > 0) {
		kill(sshd, SIGTERM);
		waitpid(sshd, NULL, 0);
	}
	if (made_run_sshd)
		rmdir("/run/sshd");
	sh("rm -rf '%s'", tmp);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
