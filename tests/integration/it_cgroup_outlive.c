/*
 * it_cgroup_outlive: jobs outlive the service (issue 15).
 *
 * The supervisor is started inside a fresh cgroup, in cgroup v2 and in
 * the name=systemd v1 hierarchy when mounted, the way systemd starts a
 * service.  After {pid,net,mount} allocations are made, every process of
 * that cgroup subtree is SIGKILLed the way `systemctl stop` does (read
 * cgroup.procs recursively, kill all, repeat until empty) and the
 * supervisor is started again in it:
 * - by default each allocation's init lives in
 *   <parent>/baton-allocations.slice/<id>, survives, and every allocation
 *   is served again with the same namespace inodes and a pid namespace
 *   that still takes processes; releasing removes its cgroups;
 * - with --alloc-cgroup none the inits die with the service, and the
 *   restarted agent never serves those namespaces as alive: NS_ERROR
 *   creation_failed, STATUS dead_allocations, until released.
 * Figures go to TAP diagnostics.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "client/nsclient.h"
#include "common/paths.h"
#include "successor/nscgroup.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define NALLOC		4
#define SERVE_MS	15000

struct svc {
	char base_rel[64];		/* /baton-it-<pid> */
	struct nscgroup base;		/* <mnt>/baton-it-<pid> per hierarchy */
	char svc[NSCGROUP_MAX][4200];	/* .../svc.service */
};

static void
svc_make(struct svc *v)
{
	unsigned i;

	snprintf(v->base_rel, sizeof(v->base_rel), "/baton-it-%d",
	    (int)getpid());
	if (access("/sys/fs/cgroup", W_OK) < 0 || geteuid() != 0)
		tap_skip("needs root and a writable /sys/fs/cgroup");
	if (nscgroup_open(v->base_rel, NULL, NULL, &v->base) < 0 ||
	    v->base.n == 0)
		tap_skip("no writable cgroup v2 or name=systemd hierarchy");
	for (i = 0; i < v->base.n; i++) {
		snprintf(v->svc[i], sizeof(v->svc[i]), "%s/svc.service",
		    v->base.dir[i]);
		require(mkdir(v->svc[i], 0755) == 0 || errno == EEXIST,
		    "mkdir %s", v->svc[i]);
		tap_diag("service cgroup: %s", v->svc[i]);
	}
}

/* Pids in dir and below (cgroup.procs, recursively). */
static unsigned
cg_pids(const char *dir, pid_t *pids, unsigned n, unsigned max)
{
	char path[4600];
	struct dirent *e;
	FILE *f;
	DIR *d;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (f) {
		while (n < max && fscanf(f, "%d", &pid) == 1)
			pids[n++] = pid;
		fclose(f);
	}
	d = opendir(dir);
	if (!d)
		return n;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = cg_pids(path, pids, n, max);
	}
	closedir(d);
	return n;
}

/* systemd's stop: SIGKILL everything in the subtree until it is empty. */
static unsigned
svc_kill_all(struct svc *v)
{
	pid_t pids[4096];
	unsigned i, n, total = 0, rounds = 0;

	for (;;) {
		n = 0;
		for (i = 0; i < v->base.n; i++)
			n = cg_pids(v->svc[i], pids, n, 4096);
		if (n == 0)
			break;
		for (i = 0; i < n; i++)
			if (kill(pids[i], SIGKILL) == 0)
				total++;
		require(++rounds < 500, "the service cgroup empties");
		usleep(10000);
	}
	return total;
}

static void
svc_remove(struct svc *v)
{
	char path[4600];
	unsigned i;

	(void)svc_kill_all(v);
	for (i = 0; i < v->base.n; i++) {
		(void)rmdir(v->svc[i]);
		snprintf(path, sizeof(path), "%s/%s", v->base.dir[i],
		    NSCGROUP_SLICE);
		(void)rmdir(path);
		(void)rmdir(v->base.dir[i]);
	}
	nscgroup_close(&v->base);
}

/* The supervisor, started through a wrapper that joins the service. */
static void
svc_start(struct itest *t, struct svc *v, const char *const *extra)
{
	char body[10000];
	const char *wrap[2];
	int n;

	n = snprintf(body, sizeof(body), "#!/bin/sh\n");
	for (unsigned i = 0; i < v->base.n; i++)
		n += snprintf(body + n, sizeof(body) - (size_t)n,
		    "echo $$ > '%s/cgroup.procs' || exit 1\n", v->svc[i]);
	snprintf(body + n, sizeof(body) - (size_t)n, "exec \"$@\"\n");
	wrap[0] = it_script(t, "in-service-cgroup", body);
	wrap[1] = NULL;
	require(it_start_supervisor_wrapped(t, NULL, wrap, extra) > 0,
	    "supervisor started");
}

static const char *const all3[] = { "pid", "net", "mount" };

static void
alloc_id(char *buf, size_t len, int i)
{
	snprintf(buf, len, "outlive-%d", i);
}

/* NS_REQUEST on a fresh connection: 0 and inodes, or -errno (kind). */
static int
request(struct itest *t, const char *id, uint64_t ino[3], int *ret_pidns,
    char *kind, size_t klen)
{
	struct nsclient_req req = { .allocation_id = id,
	    .namespaces = all3, .n = 3 };
	struct baton_paths p;
	struct nsclient_ns ns;
	struct nsclient *c;
	struct stat st;
	const char *k, *msg = "";
	unsigned i;
	int r;

	paths_init(&p, t->root);
	if (kind)
		kind[0] = '\0';
	r = nsclient_open(p.ns_socket, &c);
	if (r < 0)
		return r;
	r = nsclient_request(c, &req, &ns);
	if (r < 0) {
		k = nsclient_error(c, &msg);
		if (kind)
			snprintf(kind, klen, "%s: %s", k, msg);
		nsclient_close(c);
		return r;
	}
	nsclient_close(c);
	for (i = 0; i < ns.n; i++) {
		if (fstat(ns.fds[i], &st) == 0)
			ino[ns.kinds[i]] = st.st_ino;
		if (ret_pidns && ns.kinds[i] == NSK_PID)
			*ret_pidns = fcntl(ns.fds[i], F_DUPFD_CLOEXEC, 3);
	}
	nsclient_ns_free(&ns);
	return 0;
}

/* A process can still be started in the pid namespace (its init lives). */
static bool
pidns_usable(int pidns)
{
	pid_t pid, inner;
	int st;

	pid = fork();
	if (pid == 0) {
		if (setns(pidns, CLONE_NEWPID) < 0)
			_exit(2);
		inner = fork();
		if (inner < 0)
			_exit(3);	/* ENOMEM: the namespace's init is dead */
		if (inner == 0)
			_exit(getpid() > 1 ? 0 : 4);
		_exit(waitpid(inner, &st, 0) == inner && WIFEXITED(st) &&
		    WEXITSTATUS(st) == 0 ? 0 : 5);
	}
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0;
}

/* STATUS_REPLY's allocations and dead_allocations. */
static int
status(struct itest *t, uint64_t *allocs, uint64_t *dead)
{
	pid_t r = it_ns_status_dead(t, NULL, allocs, dead);

	return r < 0 ? r : 0;
}

/* ALLOCATION_ENDED for every test allocation. */
static void
release_all(struct itest *t)
{
	struct baton_paths p;
	struct nsclient *c;
	char id[64];
	int i;

	paths_init(&p, t->root);
	for (i = 0; i < NALLOC; i++) {
		alloc_id(id, sizeof(id), i);
		require(nsclient_open(p.ns_socket, &c) == 0, "connect");
		check(nsclient_release(c, id) == 0, "release %s", id);
		nsclient_close(c);
	}
}

static pid_t
reaper_of(struct itest *t, const char *id)
{
	char path[PATH_MAX + 256];
	int pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/run/pact/ns/%s/reaper", t->root, id);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

/* The process's cgroup in the v2 hierarchy ("0::/path"). */
static void
cgroup_of(pid_t pid, char *buf, size_t len)
{
	char path[64], line[4200];
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, len, "%s", line + 3);
		}
	fclose(f);
}

static unsigned
alloc_cgroups_left(struct svc *v)
{
	char path[4600], id[64];
	unsigned i, left = 0;
	int k;

	for (i = 0; i < v->base.n; i++)
		for (k = 0; k < NALLOC; k++) {
			alloc_id(id, sizeof(id), k);
			snprintf(path, sizeof(path), "%s/%s/%s",
			    v->base.dir[i], NSCGROUP_SLICE, id);
			left += access(path, F_OK) == 0;
		}
	return left;
}

/* Start, allocate NALLOC, kill the service cgroup, start again. */
static void
allocate_kill_restart(struct itest *t, struct svc *v,
    const char *const *extra, uint64_t before[NALLOC][3])
{
	char id[64], cg[4200];
	unsigned killed;
	pid_t rp;
	int i;

	it_setup(t);
	svc_make(v);
	svc_start(t, v, extra);
	if (!check(it_wait_serving(t, SERVE_MS) > 0, "agent serving")) {
		it_dump_log(t);
		tap_bail();
	}
	for (i = 0; i < NALLOC; i++) {
		alloc_id(id, sizeof(id), i);
		require(request(t, id, before[i], NULL, NULL, 0) == 0,
		    "create %s", id);
	}
	rp = reaper_of(t, "outlive-0");
	cgroup_of(rp, cg, sizeof(cg));
	tap_diag("allocations: %d {pid,net,mount}; outlive-0 init %d in "
	    "cgroup %s", NALLOC, (int)rp, cg);
	killed = svc_kill_all(v);
	tap_diag("service cgroup subtree emptied: %u SIGKILLs (a process "
	    "counts once per hierarchy)", killed);
	check(!it_alive(t->sup), "supervisor gone");
	svc_start(t, v, extra);
}

TEST_T(jobs_outlive_the_service, 120)
{
	struct itest t;
	struct svc v;
	uint64_t before[NALLOC][3], after[3], allocs = 0, dead = 9;
	uint64_t t0, served_ms = 0;
	char id[64], cg[4200], want[256];
	int i, r, pidns;

	memset(&v, 0, sizeof(v));
	allocate_kill_restart(&t, &v, NULL, before);
	t0 = clock_mono_ms();
	for (;;) {
		pidns = -1;
		r = request(&t, "outlive-0", after, &pidns, NULL, 0);
		if (r == 0 || clock_mono_ms() - t0 > SERVE_MS)
			break;
		usleep(5000);
	}
	served_ms = clock_mono_ms() - t0;
	require(r == 0, "served again after the restart (%d)", r);
	tap_diag("time to serve again after the restart: %" PRIu64 " ms",
	    served_ms);
	if (pidns >= 0)
		close(pidns);
	for (i = 0; i < NALLOC; i++) {
		alloc_id(id, sizeof(id), i);
		pidns = -1;
		memset(after, 0, sizeof(after));
		r = request(&t, id, after, &pidns, NULL, 0);
		check(r == 0, "%s served after the restart (%d)", id, r);
		tap_diag("%s inodes pid/net/mnt before %" PRIu64 "/%" PRIu64
		    "/%" PRIu64 " after %" PRIu64 "/%" PRIu64 "/%" PRIu64, id,
		    before[i][0], before[i][1], before[i][2], after[0],
		    after[1], after[2]);
		check(memcmp(before[i], after, sizeof(after)) == 0,
		    "%s: the same namespaces", id);
		check(pidns >= 0 && pidns_usable(pidns),
		    "%s: its pid namespace still takes processes", id);
		if (pidns >= 0)
			close(pidns);
	}
	check(status(&t, &allocs, &dead) == 0, "STATUS");
	check_eq(allocs, NALLOC);
	check_eq(dead, 0);
	cgroup_of(reaper_of(&t, "outlive-1"), cg, sizeof(cg));
	snprintf(want, sizeof(want), "%s/%s/outlive-1", v.base_rel,
	    NSCGROUP_SLICE);
	check(strcmp(cg, want) == 0, "init in %s (is %s)", want, cg);

	release_all(&t);
	t0 = clock_mono_ms();
	while (alloc_cgroups_left(&v) > 0 && clock_mono_ms() - t0 < 5000)
		usleep(20000);
	check_eq(alloc_cgroups_left(&v), 0);
	tap_diag("released: allocation cgroups left %u (of %u)",
	    alloc_cgroups_left(&v), NALLOC * v.base.n);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
	svc_remove(&v);
}

TEST_T(dead_init_is_never_served, 120)
{
	static const char *const none[] = { "--agent-arg", "--alloc-cgroup",
	    "--agent-arg", "none", NULL };
	struct itest t;
	struct svc v;
	uint64_t before[NALLOC][3], after[3], allocs = 0, dead = 0;
	uint64_t t0;
	char id[64], kind[512];
	int i, r;

	memset(&v, 0, sizeof(v));
	allocate_kill_restart(&t, &v, none, before);
	require(it_wait_serving(&t, SERVE_MS) > 0, "agent serving again");
	t0 = clock_mono_ms();
	while (status(&t, &allocs, &dead) == 0 && dead < NALLOC &&
	    clock_mono_ms() - t0 < 3000)
		usleep(10000);
	tap_diag("after the restart: allocations %" PRIu64 " dead %" PRIu64,
	    allocs, dead);
	check_eq(allocs, NALLOC);
	check_eq(dead, NALLOC);
	for (i = 0; i < NALLOC; i++) {
		alloc_id(id, sizeof(id), i);
		r = request(&t, id, after, NULL, kind, sizeof(kind));
		check(r == -EIO, "%s: not served (%d)", id, r);
		check(strstr(kind, "creation_failed") &&
		    strstr(kind, "init is dead"), "%s: says why (%s)", id, kind);
	}
	tap_diag("answer: %s", kind);
	release_all(&t);
	check(status(&t, &allocs, &dead) == 0, "STATUS");
	check_eq(allocs, 0);
	check_eq(dead, 0);
	/* Released, the id is free for a new, live allocation. */
	check(request(&t, "outlive-0", after, NULL, kind, sizeof(kind)) == 0,
	    "a new outlive-0 is created (%s)", kind);
	check(after[0] != before[0][0], "with a new pid namespace");
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
	svc_remove(&v);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
