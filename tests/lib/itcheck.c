/*
 * itcheck: a client load that logs every answer, and the checks of
 * SPEC §4's invariants against what the load was told.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"
#include "client/nsclient.h"
#include "tests/lib/itcheck.h"
#include "tests/lib/tap.h"

static void
load_log(int fd, char tag, const char *id)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "%c %s\n", tag, id);

	if (write(fd, line, (size_t)n) != n)
		_exit(2);
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
			/* Connect-time refusal is what invariant 1 forbids. */
			load_log(fd, r == -ECONNREFUSED || r == -ENOENT ? 'X' : 'F',
			    "connect");
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

void
itc_load_start(struct itest *t, struct itc_load *l)
{
	char sock[PATH_MAX + 32];

	snprintf(sock, sizeof(sock), "%s/run/pact/handoff.sock", t->root);
	snprintf(l->log, sizeof(l->log), "%s/load.log", t->root);
	l->pid = fork();
	if (l->pid == 0)
		load_run(sock, l->log);
}

void
itc_load_stop(struct itc_load *l)
{
	kill(l->pid, SIGUSR1);
	waitpid(l->pid, NULL, 0);
}

bool
itc_pinned(struct itest *t, const char *id)
{
	char p[PATH_MAX + 300];

	snprintf(p, sizeof(p), "%s/run/pact/ns/%s", t->root, id);
	return access(p, F_OK) == 0;
}

void
itc_verify_load(struct itest *t, const struct itc_load *l, const char *label,
    struct itc_result *res)
{
	char line[256], later[256];
	FILE *f = fopen(l->log, "r");

	memset(res, 0, sizeof(*res));
	require(f, "load log %s", l->log);
	while (fgets(line, sizeof(line), f)) {
		switch (line[0]) {
		case 'X': res->refused++; res->failed++; break;
		case 'F': res->failed++; break;
		default: res->answered++; break;
		}
	}
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		char *id = line + 2;
		bool released = false, in_doubt = false;
		long pos;

		id[strcspn(id, "\n")] = '\0';
		if (line[0] != 'C')
			continue;
		pos = ftell(f);
		while (fgets(later, sizeof(later), f)) {
			later[strcspn(later, "\n")] = '\0';
			if (strcmp(later + 2, id) != 0)
				continue;
			if (later[0] == 'R')
				released = true;
			else if (later[0] == 'F')
				in_doubt = true;	/* release unanswered */
		}
		fseek(f, pos, SEEK_SET);
		if (in_doubt && !released)
			continue;
		if (itc_pinned(t, id) == released) {
			check(false, "%s: allocation %s %s", label, id, released ?
			    "released but still pinned" : "acknowledged but lost");
			if (released)
				res->resurrected++;
			else
				res->lost++;
		}
	}
	fclose(f);
	check(res->refused == 0, "%s: %u refused connections", label,
	    res->refused);
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Temp files "<name>.tmp.<pid>" whose writer is gone (a live one is busy). */
static int
count_stale_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	const char *suffix;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		suffix = strstr(e->d_name, ".tmp.");
		if (suffix && !it_alive(atoi(suffix + 5)))
			n++;
	}
	closedir(d);
	return n;
}

int
itc_count_agents(struct itest *t)
{
	pid_t pids[256];
	unsigned i, n, count = 0;

	/* Namespace inits are forks of the agent named baton-nsinit. */
	n = it_find_procs(t->root, "baton-agent", pids, 256);
	/* Helpers are the agent's children: a real agent's parent never is
	 * an agent (this also covers a fork not yet renamed). */
	for (i = 0; i < n; i++) {
		pid_t ppid = it_proc_ppid(pids[i]);

		if (ppid > 0 && !it_proc_named(ppid, "baton-agent"))
			count++;
	}
	return (int)count;
}

pid_t
itc_supervisor_agent(struct itest *t)
{
	char out[2048];
	const char *args[] = { "status", "--json", NULL };
	uint64_t pid;

	if (it_ctl(t, out, sizeof(out), args) != 0 ||
	    !json_get_u64(out, "supervisor.agent_pid", &pid))
		return -1;
	return (pid_t)pid;
}

long
itc_wait_one_agent(struct itest *t, int timeout_ms, pid_t *ret_pid)
{
	uint64_t t0 = clock_mono_ms(), until = t0 + (uint64_t)timeout_ms;
	pid_t serving = -1, holder = -1, view = -1;
	int agents = -1;

	while (clock_mono_ms() < until) {
		serving = it_ns_status(t, NULL, NULL);
		holder = it_lock_holder(t);
		view = itc_supervisor_agent(t);
		agents = itc_count_agents(t);
		if (serving > 0 && serving == holder && serving == view &&
		    agents == 1) {
			if (ret_pid)
				*ret_pid = serving;
			return (long)(clock_mono_ms() - t0);
		}
		usleep(20000);
	}
	check(false, "one agent serves and holds the lock (ns %d, lock %d, "
	    "supervisor %d, agents %d)", (int)serving, (int)holder, (int)view,
	    agents);
	return -1;
}

void
itc_check_clean(struct itest *t, const char *label, bool quiescent)
{
	char dir[PATH_MAX + 64], out[2048];
	uint64_t allocs = 0;
	int rc;
	int agents = itc_count_agents(t);

	check(agents == 1, "%s: %d agent processes", label, agents);
	snprintf(dir, sizeof(dir), "%s/var/lib/baton", t->root);
	check(count_stale_tmp(dir) == 0, "%s: stale temp files in %s", label,
	    dir);
	snprintf(dir, sizeof(dir), "%s/run/baton", t->root);
	check(count_stale_tmp(dir) == 0, "%s: stale temp sockets in %s", label,
	    dir);
	rc = it_ctl(t, out, sizeof(out), (const char *[]){ "journal", "--json",
	    NULL });
	check(rc == 0 && strstr(out, "\"active\":false"), "%s: journal: %s",
	    label, out);
	/* Every pin directory belongs to an allocation the agent serves. */
	snprintf(dir, sizeof(dir), "%s/run/pact/ns", t->root);
	if (quiescent && it_ns_status(t, NULL, &allocs) > 0)
		check(count_entries(dir) == (int)allocs, "%s: %d pin directories "
		    "for %llu allocations", label, count_entries(dir),
		    (unsigned long long)allocs);
}

void
itc_hold(struct itest *t, unsigned n)
{
	static const char *const pnm[] = { "pid", "net", "mount" };
	static const char *const n1[] = { "net" };
	struct nsclient_ns ns;
	char id[32], sock[PATH_MAX + 32];
	unsigned i;

	snprintf(sock, sizeof(sock), "%s/run/pact/handoff.sock", t->root);
	for (i = 0; i < n; i++) {
		struct nsclient_req req = { .allocation_id = id,
		    .namespaces = i == 0 ? pnm : n1, .n = i == 0 ? 3 : 1 };

		snprintf(id, sizeof(id), "held-%u", i);
		require(nsclient_request_path(sock, &req, NSCLIENT_NO_FALLBACK,
		    &ns) == 0, "hold %s", id);
		nsclient_ns_free(&ns);
	}
}

void
itc_check_held(struct itest *t, unsigned n, const char *label)
{
	char id[32];
	unsigned i;

	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "held-%u", i);
		check(itc_pinned(t, id), "%s: held allocation %s kept", label, id);
	}
}

bool
itc_restart_if_dead(struct itest *t, int wait_ms, int *ret_status)
{
	uint64_t until = clock_mono_ms() + (uint64_t)wait_ms;
	int status = 0;
	pid_t r;

	while ((r = waitpid(t->sup, &status, WNOHANG)) == 0 &&
	    clock_mono_ms() < until)
		usleep(5000);
	if (r != t->sup)
		return false;
	if (ret_status)
		*ret_status = status;
	it_start_supervisor(t, NULL);
	return true;
}
