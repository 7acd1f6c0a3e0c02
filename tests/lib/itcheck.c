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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"
#include "client/nsclient.h"
#include "tests/lib/itcheck.h"
#include "tests/lib/tap.h"

const char *const itc_shape_names[ITC_NSHAPES] = { "status", "table",
    "both" };

static void
load_log(int fd, char tag, const char *id, long arg)
{
	char line[200];
	int n = snprintf(line, sizeof(line), "%c %s %llu %ld\n", tag, id,
	    (unsigned long long)clock_mono_ms(), arg);

	if (write(fd, line, (size_t)n) != n)
		_exit(2);
}

/*
 * A failure of the library call r on c: a refusal when the connect (the
 * first or the one inside nsclient's retry) was refused or found no
 * socket; an answer when the agent sent NS_ERROR (-ENOENT with a kind is
 * allocation_not_found); otherwise no answer.
 */
static char
fail_tag(struct nsclient *c, int r)
{
	if (c && nsclient_error(c, NULL)[0])
		return 'E';
	if (r == -ECONNREFUSED || r == -ENOENT)
		return 'X';
	return 'F';
}

/* One STATUS on a fresh connection (it_ns_status: raw wire, no retry). */
static void
load_status_raw(struct itest *t, int fd)
{
	pid_t r = it_ns_status(t, NULL, NULL);

	if (r > 0)
		load_log(fd, 'S', "-", 0);
	else
		load_log(fd, r == -ECONNREFUSED || r == -ENOENT ? 'X' : 'F',
		    "status", (long)-r);
}

static void
load_run(struct itest *t, unsigned w, enum itc_shape shape,
    const char *logpath)
{
	static const char *const net[] = { "net" };
	struct nsclient *c = NULL;
	struct nsclient_ns ns;
	struct nsclient_status st;
	char id[64], prev[64] = "", sock[PATH_MAX + 32];
	struct stat sb;
	sigset_t ss;
	struct timespec z = { 0, 0 };
	int fd, i, r;

	snprintf(sock, sizeof(sock), "%s/run/pact/handoff.sock", t->root);
	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(2);
	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR1);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	for (i = 0; sigtimedwait(&ss, NULL, &z) != SIGUSR1; i++) {
		struct nsclient_req req = { .allocation_id = id,
		    .namespaces = net, .n = 1 };

		if (shape == ITC_STATUS) {
			load_status_raw(t, fd);
			continue;
		}
		if (!c && (r = nsclient_open(sock, &c)) < 0) {
			/* Connect-time refusal is what invariant 1 forbids. */
			load_log(fd, fail_tag(NULL, r), "connect", -r);
			c = NULL;
			usleep(20000);
			continue;
		}
		snprintf(id, sizeof(id), "ld-%u-%d", w, i);
		r = nsclient_request(c, &req, &ns);
		if (r == 0) {
			sb.st_ino = 0;
			if (fstat(ns.fds[0], &sb) < 0)
				sb.st_ino = 0;
			nsclient_ns_free(&ns);
			load_log(fd, 'C', id, (long)sb.st_ino);
		} else {
			load_log(fd, fail_tag(c, r), id, -r);
		}
		if (i % 2 == 1 && prev[0]) {
			/* -ENOENT with allocation_not_found: it is gone. */
			r = nsclient_release(c, prev);
			if (r == 0 || (r == -ENOENT && fail_tag(c, r) == 'E')) {
				load_log(fd, 'R', prev, 0);
				r = 0;
			} else
				load_log(fd, fail_tag(c, r), prev, -r);
		}
		snprintf(prev, sizeof(prev), "%s", id);
		if (shape == ITC_BOTH) {
			r = nsclient_status(c, &st);
			if (r == 0)
				load_log(fd, 'S', "-", 0);
			else
				load_log(fd, fail_tag(c, r), "status", -r);
		}
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
itc_load_start(struct itest *t, struct itc_load *l, enum itc_shape shape)
{
	unsigned w;

	snprintf(l->log, sizeof(l->log), "%s/load.log", t->root);
	l->shape = shape;
	for (w = 0; w < ITC_WORKERS; w++) {
		l->pids[w] = fork();
		if (l->pids[w] == 0)
			load_run(t, w, shape, l->log);
	}
}

void
itc_load_stop(struct itc_load *l)
{
	unsigned w;

	for (w = 0; w < ITC_WORKERS; w++)
		if (l->pids[w] > 0)
			kill(l->pids[w], SIGUSR1);
	for (w = 0; w < ITC_WORKERS; w++)
		if (l->pids[w] > 0)
			waitpid(l->pids[w], NULL, 0);
}

bool
itc_pinned(struct itest *t, const char *id)
{
	char p[PATH_MAX + 300];

	snprintf(p, sizeof(p), "%s/run/pact/ns/%s", t->root, id);
	return access(p, F_OK) == 0;
}

/* What the log says about one allocation. */
struct hist {
	char id[128];
	unsigned long long ino;		/* 0: no acknowledged create */
	unsigned long long t_create;
	bool released, in_doubt;
};

/* The entry for id, added if new; NULL when out of memory. */
static struct hist *
hist_get(struct hist **v, size_t *n, size_t *cap, const char *id)
{
	size_t i;

	/* Newest first: a release follows its create closely. */
	for (i = *n; i > 0; i--)
		if (strcmp((*v)[i - 1].id, id) == 0)
			return &(*v)[i - 1];
	if (*n == *cap) {
		struct hist *nv = realloc(*v, (*cap ? *cap * 2 : 256) *
		    sizeof(**v));

		if (!nv)
			return NULL;
		*v = nv;
		*cap = *cap ? *cap * 2 : 256;
	}
	memset(&(*v)[*n], 0, sizeof(**v));
	snprintf((*v)[*n].id, sizeof((*v)[*n].id), "%s", id);
	return &(*v)[(*n)++];
}

/* The inodes of the n fds a request handed back (freed here). */
static int
ns_inodes(struct nsclient_ns *ns, unsigned n, unsigned long long *ret_ino)
{
	struct stat sb;
	unsigned i;
	int r = 0;

	for (i = 0; i < n && r == 0; i++) {
		r = fstat(ns->fds[i], &sb) < 0 ? -errno : 0;
		ret_ino[i] = (unsigned long long)sb.st_ino;
	}
	nsclient_ns_free(ns);
	return r;
}

int
itc_served_inodes(struct itest *t, const char *id, const char *const *kinds,
    unsigned n, unsigned long long *ret_ino)
{
	struct nsclient_req req = { .allocation_id = id, .namespaces = kinds,
	    .n = n };
	struct nsclient_ns ns;
	char sock[PATH_MAX + 32];
	int r;

	snprintf(sock, sizeof(sock), "%s/run/pact/handoff.sock", t->root);
	r = nsclient_request_path(sock, &req, NSCLIENT_NO_FALLBACK, &ns);
	return r < 0 ? r : ns_inodes(&ns, n, ret_ino);
}

unsigned long long
itc_served_ino_on(struct nsclient *c, const char *id, int *ret_err)
{
	static const char *const net[] = { "net" };
	struct nsclient_req req = { .allocation_id = id, .namespaces = net,
	    .n = 1 };
	unsigned long long ino = 0;
	struct nsclient_ns ns;
	int r = nsclient_request(c, &req, &ns);

	if (r == 0)
		r = ns_inodes(&ns, 1, &ino);
	*ret_err = -r;
	return r < 0 ? 0 : ino;
}

unsigned long long
itc_served_ino(struct itest *t, const char *id, int *ret_err)
{
	static const char *const net[] = { "net" };
	unsigned long long ino = 0;
	int r = itc_served_inodes(t, id, net, 1, &ino);

	*ret_err = -r;
	return r < 0 ? 0 : ino;
}

/* What a pin directory that should be gone holds, and who made it. */
static void
dump_pin(struct itest *t, const char *id)
{
	char cmd[3 * PATH_MAX + 512];

	snprintf(cmd, sizeof(cmd), "{ ls -la --time-style=+%%T.%%N "
	    "'%s/run/pact/ns/%s'; grep -F '/run/pact/ns/%s' "
	    "/proc/self/mountinfo; ps -eo pid,ppid,stat,comm | "
	    "grep -E 'nshelper|nsspawn|nsinit'; grep -E 'allocation_id=%s |"
	    "event=(agent\\.(start|exited|ready|serving|stop)|handoff\\.|"
	    "recover\\.|ns\\.(loaded|reloaded|sweep|leftover))' "
	    "'%s/supervisor.log' | cut -c1-260 | tail -80; } 2>&1 | "
	    "sed 's/^/#     /'", t->root, id, id, id, t->root);
	fflush(stdout);
	(void)system(cmd);
}

void
itc_verify_load(struct itest *t, const struct itc_load *l, const char *label,
    unsigned max_failed, struct itc_result *res)
{
	char line[256], id[128];
	unsigned long long ms, ino;
	struct hist *v = NULL, *h;
	size_t n = 0, cap = 0, i;
	long arg;
	int err;
	FILE *f = fopen(l->log, "r");

	memset(res, 0, sizeof(*res));
	require(f, "load log %s", l->log);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line + 2, "%127s %llu %ld", id, &ms, &arg) != 3)
			continue;
		switch (line[0]) {
		case 'X': res->refused++; break;
		case 'F': res->failed++; break;
		case 'E': res->errors++; break;
		default: res->answered++; break;
		}
		/* The first few unanswered ones, with errno and time. */
		if (strchr("XFE", line[0]) &&
		    res->refused + res->failed + res->errors <= 8)
			tap_diag("%s: load: %c %s at %llu ms: %s", label, line[0],
			    id, ms, strerror((int)arg));
		if (strncmp(id, "ld-", 3) != 0)
			continue;
		h = hist_get(&v, &n, &cap, id);
		require(h, "memory");
		if (line[0] == 'C') {
			h->ino = (unsigned long long)arg;
			h->t_create = ms;
			res->creates++;
		} else if (line[0] == 'R' && h->ino) {
			h->released = true;
			res->releases++;
		} else if (h->ino) {
			h->in_doubt = true;	/* release unanswered */
		}
	}
	fclose(f);
	for (i = 0; i < n; i++) {
		h = &v[i];
		if (!h->ino || (h->in_doubt && !h->released))
			continue;
		if (h->released) {
			if (itc_pinned(t, h->id)) {
				check(false, "%s: allocation %s released but "
				    "still pinned", label, h->id);
				res->resurrected++;
				dump_pin(t, h->id);
			}
			continue;
		}
		if (!itc_pinned(t, h->id)) {
			check(false, "%s: allocation %s (created at %llu ms) "
			    "acknowledged but lost: no pin", label, h->id,
			    h->t_create);
			res->lost++;
			continue;
		}
		ino = itc_served_ino(t, h->id, &err);
		if (ino == 0) {
			check(false, "%s: allocation %s pinned but not served: "
			    "%s", label, h->id, strerror(err));
			res->lost++;
		} else if (ino != h->ino) {
			check(false, "%s: allocation %s served with net inode "
			    "%llu, acknowledged with %llu", label, h->id, ino,
			    h->ino);
			res->mismatched++;
		}
	}
	free(v);
	check(res->refused == 0, "%s: %u refused connections", label,
	    res->refused);
	check(res->failed <= max_failed, "%s: %u requests failed (at most %u "
	    "allowed)", label, res->failed, max_failed);
	tap_diag("%s: load %s: answered %u, failed %u, refused %u, NS_ERROR "
	    "%u; history: %u creates, %u releases acknowledged, %u lost, %u "
	    "resurrected, %u inode mismatches", label,
	    itc_shape_names[l->shape], res->answered, res->failed,
	    res->refused, res->errors, res->creates,
	    res->releases, res->lost, res->resurrected, res->mismatched);
}

bool
itc_crashed(struct itest *t, const char *point)
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

bool
itc_wait_crashed(struct itest *t, const char *point, int wait_ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)wait_ms;

	while (!itc_crashed(t, point)) {
		if (clock_mono_ms() >= until)
			return false;
		usleep(10000);
	}
	return true;
}

/* A process of this root stopped (T) with HANDOFF_STALL_AT=point, or -1. */
static pid_t
stopped_at(struct itest *t, const char *point)
{
	static const char *const comms[] = { "baton-agent", "baton-superviso" };
	char path[64], env[8192], want[96];
	pid_t pids[32];
	unsigned i, k, n;
	ssize_t len;
	int fd;

	snprintf(want, sizeof(want), "HANDOFF_STALL_AT=%s", point);
	for (k = 0; k < 2; k++) {
		n = it_find_procs(t->root, comms[k], pids, 32);
		for (i = 0; i < n; i++) {
			if (it_proc_state(pids[i]) != 'T')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/environ",
			    (int)pids[i]);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			len = read(fd, env, sizeof(env) - 1);
			close(fd);
			if (len <= 0)
				continue;
			env[len] = '\0';
			/* NUL-separated: search each entry. */
			for (char *e = env; e < env + len; e += strlen(e) + 1)
				if (strcmp(e, want) == 0)
					return pids[i];
		}
	}
	return -1;
}

pid_t
itc_wait_stalled(struct itest *t, const char *point, int wait_ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)wait_ms;
	char p[PATH_MAX + 32], line[1024], want[96];
	const char *pp;
	pid_t pid = -1;
	FILE *f;

	snprintf(p, sizeof(p), "%s/supervisor.log", t->root);
	snprintf(want, sizeof(want), "event=crashpoint.stall point=%s\n",
	    point);
	while (clock_mono_ms() < until) {
		f = fopen(p, "r");
		while (f && pid < 0 && fgets(line, sizeof(line), f))
			if (strstr(line, want) && (pp = strstr(line, " pid=")))
				pid = (pid_t)atoi(pp + 5);
		if (f)
			fclose(f);
		if (pid > 0 && it_proc_state(pid) == 'T')
			return pid;
		/*
		 * An agent's log line goes through the supervisor (agentlog):
		 * with the supervisor stopped too, it has not arrived.  Look
		 * for the stopped process itself.
		 */
		if (pid < 0 && (pid = stopped_at(t, point)) > 0)
			return pid;
		pid = -1;
		usleep(5000);
	}
	return -1;
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

static int
count_agents_once(struct itest *t)
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

int
itc_count_agents(struct itest *t)
{
	int count = count_agents_once(t), i;

	/*
	 * A standby (supervisor/standby.h) is named baton-standby from its
	 * first instructions on, but between its exec and those it is
	 * baton-agent: the supervisor starts one after every handoff.  A
	 * count over one is taken again for a while; a stray stays.
	 */
	for (i = 0; i < 50 && count > 1; i++) {
		usleep(10000);
		count = count_agents_once(t);
	}
	return count;
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
