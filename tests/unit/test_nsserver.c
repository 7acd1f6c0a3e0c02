/*
 * test_nsserver: the namespace provider end to end.  Each case builds a
 * temporary root, runs an nsserver on its own loop in a forked child (a
 * child subreaper, like the agent) behind a listening socket made here,
 * and talks to it with nsclient.  Needs root (namespaces, mounts).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/clock.h"
#include "common/log.h"
#include "client/nsclient.h"
#include "successor/nsserver.h"
#include "tests/lib/tap.h"

struct env {
	char root[128];
	char sock[256], pins[256], uenv_dir[256], uenv_base[256];
	char state[256], cg[256];
	bool use_cg;
	int lfd;
	pid_t srv;
};

static void
need_root(void)
{
	if (geteuid() != 0)
		tap_skip("needs root (namespaces, mounts)");
}

static void
env_init(struct env *e, bool cg)
{
	char cmd[2048];

	/* Reapers of servers that exit come to the case; env_fini reaps. */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	memset(e, 0, sizeof(*e));
	snprintf(e->root, sizeof(e->root), "/tmp/nssrv.XXXXXX");
	require(mkdtemp(e->root) != NULL, "mkdtemp");
	snprintf(e->sock, sizeof(e->sock), "%s/run/pact/handoff.sock", e->root);
	snprintf(e->pins, sizeof(e->pins), "%s/run/pact/ns", e->root);
	snprintf(e->uenv_dir, sizeof(e->uenv_dir), "%s/var/lib/pact/uenv",
	    e->root);
	snprintf(e->uenv_base, sizeof(e->uenv_base), "%s/run/pact/uenv",
	    e->root);
	snprintf(e->state, sizeof(e->state), "%s/var/lib/baton/allocations",
	    e->root);
	snprintf(e->cg, sizeof(e->cg), "%s/cgroup", e->root);
	e->use_cg = cg;
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/run/pact %s %s/var/lib/baton "
	    "%s/workload.slice", e->root, e->uenv_dir, e->root, e->cg);
	require(system(cmd) == 0, "mkdir");
	e->lfd = -1;
	e->srv = -1;
}

static void
make_image(struct env *e, const char *name)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "set -e; d=%s/imgsrc; mkdir -p $d; "
	    "echo hello-uenv > $d/hello.txt; mksquashfs $d %s/%s -quiet "
	    "-noappend >/dev/null", e->root, e->uenv_dir, name);
	require(system(cmd) == 0, "mksquashfs");
}

static struct nsserver *srv_ns;
static uv_signal_t srv_chld, srv_term;

static void
srv_sig_cb(uv_signal_t *h, int signum)
{
	int st;
	pid_t pid;

	if (signum == SIGCHLD) {
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			if (srv_ns)
				(void)nsserver_reap(srv_ns, pid, st);
		return;
	}
	nsserver_free(srv_ns);
	srv_ns = NULL;
	uv_close((uv_handle_t *)&srv_chld, NULL);
	uv_close((uv_handle_t *)h, NULL);
}

static __attribute__((noreturn)) void
srv_main(struct env *e)
{
	uv_loop_t loop;
	struct nsserver_config cfg = {
		.root = e->root, .pin_dir = e->pins, .uenv_dir = e->uenv_dir,
		.uenv_mount_base = e->uenv_base, .state_path = e->state,
		.cgroup_root = e->use_cg ? e->cg : NULL, .build_id = "test",
	};
	int r;

	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	log_init("agent");
	uv_loop_init(&loop);
	uv_signal_init(&loop, &srv_chld);
	uv_signal_init(&loop, &srv_term);
	uv_signal_start(&srv_chld, srv_sig_cb, SIGCHLD);
	uv_signal_start(&srv_term, srv_sig_cb, SIGTERM);
	r = nsserver_new(&loop, &cfg, &srv_ns);
	if (r < 0) {
		fprintf(stderr, "nsserver_new: %s\n", strerror(-r));
		_exit(3);
	}
	r = nsserver_start(srv_ns, e->lfd);
	if (r < 0)
		_exit(4);
	nsserver_set_ready(srv_ns, true);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	_exit(0);
}

static void
srv_start(struct env *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (e->lfd < 0) {
		e->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		require(e->lfd >= 0, "socket");
		require(strlen(e->sock) < sizeof(sa.sun_path), "sun_path");
		memcpy(sa.sun_path, e->sock, strlen(e->sock) + 1);
		unlink(e->sock);
		require(bind(e->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		    "bind %s: %s", e->sock, strerror(errno));
		require(listen(e->lfd, 128) == 0, "listen");
	}
	fflush(stdout);
	e->srv = fork();
	require(e->srv >= 0, "fork");
	if (e->srv == 0)
		srv_main(e);
}

static int
srv_stop(struct env *e)
{
	int st = -1;

	if (e->srv <= 0)
		return -1;
	kill(e->srv, SIGTERM);
	waitpid(e->srv, &st, 0);
	e->srv = -1;
	return st;
}

/* Unmount whatever is left under the root, kill leftovers, remove it. */
static void
env_fini(struct env *e)
{
	char cmd[1024];

	srv_stop(e);
	if (e->lfd >= 0)
		close(e->lfd);
	snprintf(cmd, sizeof(cmd), "for p in %s/*/*/reaper; do [ -f $p ] && "
	    "kill -9 $(cat $p) 2>/dev/null; done; "
	    "grep -o ' %s[^ ]*' /proc/self/mountinfo | sort -r | "
	    "while read m; do umount -l $m 2>/dev/null; done; rm -rf %s", e->pins,
	    e->root, e->root);
	(void)system(cmd);
	/* Reapers orphaned to us when a server exits. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static int
request(struct env *e, const char *id, const char *const *ns, unsigned n,
    const char *image, struct nsclient_ns *ret, char *kind, size_t klen)
{
	struct nsclient *c;
	struct nsclient_req rq = { .allocation_id = id, .namespaces = ns,
	    .n = n, .uenv_image = image };
	const char *k;
	int r;

	r = nsclient_open(e->sock, &c);
	if (r < 0)
		return r;
	r = nsclient_request(c, &rq, ret);
	if (kind) {
		k = nsclient_error(c, NULL);
		snprintf(kind, klen, "%s", k);
	}
	nsclient_close(c);
	return r;
}

static int
release(struct env *e, const char *id, char *kind, size_t klen)
{
	struct nsclient *c;
	int r;

	r = nsclient_open(e->sock, &c);
	if (r < 0)
		return r;
	r = nsclient_release(c, id);
	if (kind)
		snprintf(kind, klen, "%s", nsclient_error(c, NULL));
	nsclient_close(c);
	return r;
}

static uint64_t
ino_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static unsigned
mounts_under(const char *prefix)
{
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	unsigned n = 0;
	size_t pl = strlen(prefix);

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char mp[4096];

		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 &&
		    strncmp(mp, prefix, pl) == 0)
			n++;
	}
	fclose(f);
	return n;
}

/*
 * Join the namespaces in r (net, pid, mnt), fork, and run fn in the
 * grandchild.  Returns fn's exit status, or -1.
 */
static int
in_ns(const struct nsclient_ns *r, int (*fn)(const void *), const void *arg)
{
	static const int order[] = { NSK_NET, NSK_PID, NSK_MNT };
	pid_t p, q;
	int st, i, k;

	fflush(stdout);
	p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		for (i = 0; i < 3; i++) {
			k = nsclient_ns_find(r, (unsigned)order[i]);
			if (k >= 0 && setns(r->fds[k], 0) < 0)
				_exit(100 + i);
		}
		q = fork();
		if (q < 0)
			_exit(110);
		if (q == 0)
			_exit(fn(arg));
		if (waitpid(q, &st, 0) < 0 || !WIFEXITED(st))
			_exit(111);
		_exit(WEXITSTATUS(st));
	}
	if (waitpid(p, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Exit 0 when /proc/net/dev lists lo only. */
static int
only_lo(const void *arg)
{
	char line[512];
	FILE *f = fopen("/proc/net/dev", "re");
	int n = 0, lo = 0;

	(void)arg;
	if (!f)
		return 2;
	while (fgets(line, sizeof(line), f)) {
		if (!strchr(line, ':'))
			continue;
		n++;
		if (strstr(line, "lo:"))
			lo++;
	}
	fclose(f);
	return n == 1 && lo == 1 ? 0 : 1;
}

/* Exit 0 when the uenv file reads right and we are in a new pid ns. */
static int
sees_uenv(const void *arg)
{
	const char *dir = arg;
	char p[512], buf[64], self[32];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/hello.txt", dir);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 2;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 3;
	buf[n] = '\0';
	if (strcmp(buf, "hello-uenv\n") != 0)
		return 4;
	/* /proc is the allocation's: it knows us by our pid there. */
	n = readlink("/proc/self", self, sizeof(self) - 1);
	if (n <= 0)
		return 5;
	self[n] = '\0';
	if (atoi(self) != getpid() || getpid() > 1000)
		return 6;
	return 0;
}

static const char *const PNM[] = { "pid", "net", "mount" };
static const char *const NET[] = { "net" };

TEST_T(create_types_and_distinct, 60)
{
	struct env e;
	struct nsclient_ns a, b;
	struct stat hs;
	unsigned i;
	int r;

	need_root();
	env_init(&e, false);
	srv_start(&e);
	r = request(&e, "alloc-a", PNM, 3, NULL, &a, NULL, 0);
	require(r == 0, "request a: %s", strerror(-r));
	r = request(&e, "alloc-b", PNM, 3, NULL, &b, NULL, 0);
	require(r == 0, "request b: %s", strerror(-r));
	check_eq(a.n, 3);
	check(!a.fallback, "served by the provider");
	for (i = 0; i < a.n; i++) {
		check_eq(ioctl(a.fds[i], NS_GET_NSTYPE),
		    nsclient_kind_nstype(a.kinds[i]));
		check(ino_of(a.fds[i]) != ino_of(b.fds[i]),
		    "allocations share a %s namespace", PNM[i]);
	}
	check(a.uenv_mount_path == NULL, "no uenv path without an image");
	stat("/proc/self/ns/net", &hs);
	check(ino_of(a.fds[1]) != (uint64_t)hs.st_ino, "net ns is new");
	check_eq(in_ns(&a, only_lo, NULL), 0);
	nsclient_ns_free(&a);
	nsclient_ns_free(&b);
	check_eq(release(&e, "alloc-a", NULL, 0), 0);
	check_eq(release(&e, "alloc-b", NULL, 0), 0);
	env_fini(&e);
}

TEST_T(uenv_inside_only, 60)
{
	struct env e;
	struct nsclient_ns a;
	char want[512], p[600];
	struct stat st;
	int r;

	need_root();
	env_init(&e, false);
	make_image(&e, "tools-1.0.sqfs");
	srv_start(&e);
	r = request(&e, "job.1", PNM, 3, "tools-1.0.sqfs", &a, NULL, 0);
	require(r == 0, "request: %s", strerror(-r));
	snprintf(want, sizeof(want), "%s/tools-1.0", e.uenv_base);
	require(a.uenv_mount_path != NULL, "uenv path");
	check(strcmp(a.uenv_mount_path, want) == 0, "path %s",
	    a.uenv_mount_path);
	check_eq(in_ns(&a, sees_uenv, a.uenv_mount_path), 0);
	check_eq(in_ns(&a, only_lo, NULL), 0);
	snprintf(p, sizeof(p), "%s/hello.txt", want);
	check(stat(p, &st) < 0, "host must not see the uenv mount");
	check_eq(mounts_under(e.uenv_base), 0);
	nsclient_ns_free(&a);
	check_eq(release(&e, "job.1", NULL, 0), 0);
	env_fini(&e);
}

TEST_T(idempotent_and_conflict, 60)
{
	static const char *const rev[] = { "mount", "net", "pid" };
	static const char *const two[] = { "pid", "net" };
	struct env e;
	struct nsclient_ns a, b;
	char kind[64];
	int r;

	need_root();
	env_init(&e, false);
	make_image(&e, "x.sqfs");
	make_image(&e, "y.sqfs");
	srv_start(&e);
	require(request(&e, "same", PNM, 3, "x.sqfs", &a, NULL, 0) == 0,
	    "first");
	r = request(&e, "same", rev, 3, "x.sqfs", &b, NULL, 0);
	require(r == 0, "second: %s", strerror(-r));
	/* Same namespaces, answered in the second request's order. */
	check_eq(ino_of(a.fds[0]), ino_of(b.fds[2]));
	check_eq(ino_of(a.fds[1]), ino_of(b.fds[1]));
	check_eq(ino_of(a.fds[2]), ino_of(b.fds[0]));
	check_eq(b.kinds[0], NSK_MNT);
	nsclient_ns_free(&b);
	r = request(&e, "same", two, 2, NULL, &b, kind, sizeof(kind));
	check_eq(r, -EINVAL);
	check(strcmp(kind, "invalid_request") == 0, "kind %s", kind);
	r = request(&e, "same", PNM, 3, "y.sqfs", &b, kind, sizeof(kind));
	check_eq(r, -EINVAL);
	/* No image in a repeat means "as it is": same namespaces. */
	r = request(&e, "same", PNM, 3, NULL, &b, kind, sizeof(kind));
	check_eq(r, 0);
	if (r == 0) {
		check_eq(ino_of(a.fds[0]), ino_of(b.fds[0]));
		nsclient_ns_free(&b);
	}
	nsclient_ns_free(&a);
	check_eq(release(&e, "same", NULL, 0), 0);
	env_fini(&e);
}

/* The init of allocation id's pid namespace, from its reaper file; or 0. */
static pid_t
reaper_of(const struct env *e, const char *id)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s/reaper", e->pins, id);
	return (pid_t)tap_read_long(path);
}

TEST_T(release_cleans_up, 60)
{
	struct env e;
	struct nsclient_ns a;
	char path[512], kind[64];
	pid_t reaper = 0;
	unsigned before;
	int i;

	need_root();
	env_init(&e, false);
	srv_start(&e);
	require(request(&e, "rel", PNM, 3, NULL, &a, NULL, 0) == 0, "create");
	before = mounts_under(e.pins);
	check_eq(before, 4);	/* the private pin dir + three pins */
	reaper = reaper_of(&e, "rel");
	check(reaper > 0 && kill(reaper, 0) == 0, "reaper %d alive", reaper);
	nsclient_ns_free(&a);
	check_eq(release(&e, "rel", NULL, 0), 0);
	check_eq(mounts_under(e.pins), 1);
	snprintf(path, sizeof(path), "%s/rel", e.pins);
	check(access(path, F_OK) < 0, "pin dir removed");
	for (i = 0; i < 100 && kill(reaper, 0) == 0; i++)
		usleep(10000);
	check(kill(reaper, 0) < 0 && errno == ESRCH, "reaper gone");
	check_eq(release(&e, "rel", kind, sizeof(kind)), -ENOENT);
	check(strcmp(kind, "allocation_not_found") == 0, "kind %s", kind);
	check_eq(release(&e, "never-was", kind, sizeof(kind)), -ENOENT);
	env_fini(&e);
}

static void
write_events(const char *path, int populated)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return;
	fprintf(f, "populated %d\nfrozen 0\n", populated);
	fclose(f);
}

TEST_T(cgroup_empty_releases, 60)
{
	struct env e;
	struct nsclient_ns a;
	struct nsclient *c;
	struct nsclient_status st;
	char scope[512], ev[600], tmp[512], tev[600];
	char id[NSCLIENT_ID_MAX + 1];
	int sub, r;

	need_root();
	env_init(&e, true);
	srv_start(&e);
	require(request(&e, "cg-1", NET, 1, NULL, &a, NULL, 0) == 0,
	    "create");
	nsclient_ns_free(&a);
	require(nsclient_subscribe(e.sock, &sub) == 0, "subscribe");
	/* The scope appears after the allocation: found via the slice. */
	snprintf(scope, sizeof(scope), "%s/workload.slice/cg-1.scope", e.cg);
	snprintf(ev, sizeof(ev), "%s/cgroup.events", scope);
	/* Like cgroupfs: the scope appears with its cgroup.events in it. */
	snprintf(tmp, sizeof(tmp), "%s/new.tmp", e.cg);
	snprintf(tev, sizeof(tev), "%s/cgroup.events", tmp);
	require(mkdir(tmp, 0755) == 0, "mkdir scope");
	write_events(tev, 1);
	require(rename(tmp, scope) == 0, "rename scope");
	usleep(300000);
	/* Still populated: nothing must happen. */
	r = nsclient_next_event(sub, 300, id);
	check_eq(r, -ETIMEDOUT);
	write_events(ev, 0);
	r = nsclient_next_event(sub, 5000, id);
	check_eq(r, 0);
	check(r == 0 && strcmp(id, "cg-1") == 0, "event for %s", id);
	require(nsclient_open(e.sock, &c) == 0, "open");
	check_eq(nsclient_status(c, &st), 0);
	check_eq(st.allocations, 0);
	check(st.ready, "ready");
	check(strcmp(st.build_id, "test") == 0, "build id");
	nsclient_close(c);
	check_eq(mounts_under(e.pins), 1);
	close(sub);
	env_fini(&e);
}

TEST_T(hostile_input_rejected, 60)
{
	static const char *const ids[] = { "../x", "a/b", ".hidden", "",
	    "sp ace" };
	static const char *const imgs[] = { "../x.sqfs", "a/b.sqfs",
	    "link.sqfs", "dir.sqfs", "fifo.sqfs", "missing.sqfs", "x.img",
	    ".x.sqfs" };
	struct env e;
	struct nsclient_ns a;
	char longid[130], path[512], lpath[512], kind[64];
	unsigned i;
	int r;

	need_root();
	env_init(&e, false);
	snprintf(path, sizeof(path), "%s/outside.sqfs", e.root);
	close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	snprintf(lpath, sizeof(lpath), "%s/link.sqfs", e.uenv_dir);
	require(symlink(path, lpath) == 0, "symlink");
	snprintf(path, sizeof(path), "%s/dir.sqfs", e.uenv_dir);
	require(mkdir(path, 0755) == 0, "mkdir");
	snprintf(path, sizeof(path), "%s/fifo.sqfs", e.uenv_dir);
	require(mkfifo(path, 0600) == 0, "mkfifo");
	srv_start(&e);
	memset(longid, 'a', 129);
	longid[129] = '\0';
	r = request(&e, longid, NET, 1, NULL, &a, kind, sizeof(kind));
	check(r == -EINVAL, "129-char id: %d", r);
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		r = request(&e, ids[i], NET, 1, NULL, &a, kind, sizeof(kind));
		check(r == -EINVAL, "id '%s': %d %s", ids[i], r, kind);
	}
	for (i = 0; i < sizeof(imgs) / sizeof(imgs[0]); i++) {
		r = request(&e, "img", PNM, 3, imgs[i], &a, kind,
		    sizeof(kind));
		check(r == -EINVAL, "image '%s': %d %s", imgs[i], r, kind);
	}
	/* An image needs a mount namespace. */
	make_image(&e, "ok.sqfs");
	r = request(&e, "img", NET, 1, "ok.sqfs", &a, kind, sizeof(kind));
	check(r == -EINVAL, "image without mount ns: %d", r);
	/* Nothing was created by any of these. */
	check_eq(mounts_under(e.pins), 1);
	r = request(&e, "img", PNM, 3, "ok.sqfs", &a, kind, sizeof(kind));
	check(r == 0, "valid request still served: %d", r);
	if (r == 0) {
		nsclient_ns_free(&a);
		release(&e, "img", NULL, 0);
	}
	env_fini(&e);
}

static int
count_fds_of(pid_t pid)
{
	char cmd[128], buf[32];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls /proc/%d/fd | wc -l", (int)pid);
	f = popen(cmd, "r");
	if (f && fgets(buf, sizeof(buf), f))
		n = atoi(buf);
	if (f)
		pclose(f);
	return n;
}

/* pid's children, as /proc lists them ("12 34 "); empty on error. */
static void
read_children(pid_t pid, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
	    (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, len - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
}

static int
count_children(pid_t pid)
{
	char buf[4096], *p;
	int n = 0;

	read_children(pid, buf, sizeof(buf));
	for (p = strtok(buf, " \n"); p; p = strtok(NULL, " \n"))
		n++;
	return n;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

#define CHURN 1000	/* create/release cycles (issue: 1,000) */

TEST_T(churn_1000_no_leaks, 240)
{
	static const char *const NM[] = { "net", "mount" };
	struct env e;
	struct nsclient_ns a;
	uint64_t lat[CHURN], t0;
	int fds0, kids0, i, r;
	unsigned m0;

	need_root();
	env_init(&e, false);
	srv_start(&e);
	/* Warm up so lazily opened things are counted in the baseline. */
	require(request(&e, "warm", NET, 1, NULL, &a, NULL, 0) == 0, "warm");
	nsclient_ns_free(&a);
	require(release(&e, "warm", NULL, 0) == 0, "warm release");
	usleep(200000);
	fds0 = count_fds_of(e.srv);
	kids0 = count_children(e.srv);
	/* Under our root only: other tests on the host mount too. */
	m0 = mounts_under(e.root);
	for (i = 0; i < CHURN; i++) {
		char id[32];

		snprintf(id, sizeof(id), "churn-%d", i);
		t0 = clock_mono_us();
		r = request(&e, id, i % 2 ? PNM : NM, i % 2 ? 3 : 2, NULL,
		    &a, NULL, 0);
		lat[i] = clock_mono_us() - t0;
		require(r == 0, "create %d: %s", i, strerror(-r));
		nsclient_ns_free(&a);
		require(release(&e, id, NULL, 0) == 0, "release %d", i);
	}
	for (i = 0; i < 100 && count_children(e.srv) > kids0; i++)
		usleep(20000);
	/*
	 * The last release's connection: the client closes it once answered,
	 * the server only when its loop reads that EOF (the answer no longer
	 * waits for the init's kill on the loop, so this can be later).
	 */
	for (i = 0; i < 100 && count_fds_of(e.srv) > fds0; i++)
		usleep(20000);
	if (!check_eq(count_fds_of(e.srv), fds0)) {
		char cmd[128];

		/* Which one: the server's fds, as TAP diagnostics. */
		snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd | sed 's/^/# /'",
		    (int)e.srv);
		fflush(stdout);
		(void)system(cmd);
	}
	check_eq(count_children(e.srv), kids0);
	check_eq(mounts_under(e.root), m0);
	check_eq(mounts_under(e.pins), 1);
	qsort(lat, CHURN, sizeof(lat[0]), cmp_u64);
	tap_diag("create latency (ASan build, client round trip) p50=%lluus "
	    "p99=%lluus over %d cycles", (unsigned long long)lat[CHURN / 2],
	    (unsigned long long)lat[CHURN * 99 / 100], CHURN);
	env_fini(&e);
}

/* The server's child named comm (the spawner: baton-nsspawn), or 0. */
static pid_t
child_named(pid_t pid, const char *comm)
{
	char path[128], buf[4096], name[64];
	pid_t kid, found = 0;
	char *p, *end;
	FILE *f;

	read_children(pid, buf, sizeof(buf));
	for (p = buf; !found && (kid = (pid_t)strtol(p, &end, 10)) > 0;
	    p = end) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)kid);
		f = fopen(path, "re");
		if (f && fgets(name, sizeof(name), f)) {
			name[strcspn(name, "\n")] = '\0';
			if (strcmp(name, comm) == 0)
				found = kid;
		}
		if (f)
			fclose(f);
	}
	return found;
}

/* sp's spare helper (baton-nsspare) other than not, within 2 s; or 0. */
static pid_t
wait_spare(pid_t sp, pid_t not)
{
	pid_t p;
	int i;

	for (i = 0; i < 200; i++) {
		p = child_named(sp, "baton-nsspare");
		if (p > 0 && p != not)
			return p;
		usleep(10000);
	}
	return 0;
}

/* Whether pid is gone (reaped by its parent) within 2 s. */
static bool
gone(pid_t pid)
{
	int i;

	for (i = 0; i < 200 && kill(pid, 0) == 0; i++) {
		/* A zombie reparented to us (a subreaper) counts as gone. */
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return true;
		usleep(10000);
	}
	return kill(pid, 0) < 0 && errno == ESRCH;
}

/*
 * Helpers come from the spawner; one killed is replaced by the next
 * creation, which succeeds; the spawner goes when the server does.
 */
TEST_T(spawner_killed_is_replaced, 60)
{
	struct env e;
	struct nsclient_ns a;
	pid_t sp1, sp2;
	int i;

	need_root();
	env_init(&e, false);
	srv_start(&e);
	check_eq(child_named(e.srv, "baton-nsspawn"), 0);	/* lazily */
	require(request(&e, "sp1", NET, 1, NULL, &a, NULL, 0) == 0, "create");
	nsclient_ns_free(&a);
	sp1 = child_named(e.srv, "baton-nsspawn");
	require(sp1 > 0, "a spawner after the first creation");
	require(kill(sp1, SIGKILL) == 0, "kill the spawner");
	for (i = 0; i < 200 && child_named(e.srv, "baton-nsspawn") == sp1;
	    i++)
		usleep(10000);
	require(request(&e, "sp2", PNM, 3, NULL, &a, NULL, 0) == 0,
	    "create after the spawner died");
	nsclient_ns_free(&a);
	sp2 = child_named(e.srv, "baton-nsspawn");
	check(sp2 > 0 && sp2 != sp1, "a new spawner %d (was %d)", (int)sp2,
	    (int)sp1);
	check_eq(release(&e, "sp1", NULL, 0), 0);
	check_eq(release(&e, "sp2", NULL, 0), 0);
	check_eq(mounts_under(e.pins), 1);
	srv_stop(&e);
	check(gone(sp2), "spawner gone with the server");
	env_fini(&e);
}

/*
 * The spawner keeps a spare helper once idle, holding only stdio and its
 * socket; the next creation runs in it (it is gone after), a new one
 * follows; one killed idle costs nothing but a fork, and the spare goes
 * with the server.
 */
TEST_T(spare_helper_takes_the_next_creation, 60)
{
	struct env e;
	struct nsclient_ns a;
	pid_t sp, sv1, sv2, sv3;

	need_root();
	env_init(&e, false);
	srv_start(&e);
	require(request(&e, "sv1", NET, 1, NULL, &a, NULL, 0) == 0, "create");
	nsclient_ns_free(&a);
	sp = child_named(e.srv, "baton-nsspawn");
	require(sp > 0, "a spawner");
	sv1 = wait_spare(sp, 0);
	require(sv1 > 0, "a spare once no helper runs");
	check_eq(count_fds_of(sv1), 4);	/* stdio and its socket */
	require(request(&e, "sv2", PNM, 3, NULL, &a, NULL, 0) == 0,
	    "create through the spare");
	check(in_ns(&a, only_lo, NULL) == 0, "its net namespace has lo only");
	nsclient_ns_free(&a);
	check(gone(sv1), "the spare ran that creation and exited");
	sv2 = wait_spare(sp, sv1);
	require(sv2 > 0, "a new spare");
	require(kill(sv2, SIGKILL) == 0 && gone(sv2), "spare killed idle");
	require(request(&e, "sv3", NET, 1, NULL, &a, NULL, 0) == 0,
	    "create with no spare");
	nsclient_ns_free(&a);
	sv3 = wait_spare(sp, sv2);
	check(sv3 > 0, "a spare again after that request");
	check_eq(release(&e, "sv1", NULL, 0), 0);
	check_eq(release(&e, "sv2", NULL, 0), 0);
	check_eq(release(&e, "sv3", NULL, 0), 0);
	check_eq(mounts_under(e.pins), 1);
	srv_stop(&e);
	check(gone(sp), "spawner gone with the server");
	check(sv3 <= 0 || gone(sv3), "spare gone with it");
	env_fini(&e);
}

/* The inode of /proc/<pid>/ns/net; 0 if it cannot be read. */
static uint64_t
net_of(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/*
 * The inode of spare sv's net namespace once it waits for its request
 * (in recvmsg, after anything it makes ahead); 0 if not within 2 s.
 */
static uint64_t
spare_net_of(pid_t sv)
{
	char path[64], buf[64];
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)sv);
	for (i = 0; i < 200; i++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (atol(buf) == SYS_recvmsg)
				return net_of(sv);
		}
		usleep(10000);
	}
	return 0;
}

/*
 * After a creation with net the spare makes its net namespace ahead;
 * that one serves the next creation with net only once, and a creation
 * without net never runs in it (its init would sit in an empty net
 * namespace instead of the host's).
 */
TEST_T(spare_makes_net_ahead_only_for_net, 60)
{
	static const char *const PID[] = { "pid" };
	struct env e;
	struct nsclient_ns a, b;
	uint64_t host = net_of(getpid()), spare_net;
	pid_t sp, sv1, sv2, sv3, init;

	need_root();
	env_init(&e, false);
	srv_start(&e);
	require(request(&e, "na1", NET, 1, NULL, &a, NULL, 0) == 0, "create");
	sp = child_named(e.srv, "baton-nsspawn");
	require(sp > 0, "a spawner");
	sv1 = wait_spare(sp, 0);
	require(sv1 > 0, "a spare");
	spare_net = spare_net_of(sv1);
	check(spare_net != 0 && spare_net != host,
	    "the spare waits in a net namespace of its own");
	check(spare_net != ino_of(a.fds[0]), "not the last creation's");
	nsclient_ns_free(&a);

	require(request(&e, "na2", PID, 1, NULL, &a, NULL, 0) == 0,
	    "create without net");
	nsclient_ns_free(&a);
	init = reaper_of(&e, "na2");
	require(init > 0, "na2's init");
	check(net_of(init) == host, "an init without net sits in the host's "
	    "net namespace (%llu, host %llu)", (unsigned long long)net_of(init),
	    (unsigned long long)host);
	check(gone(sv1), "the spare with a namespace made ahead was not used");
	sv2 = wait_spare(sp, sv1);
	require(sv2 > 0, "a new spare");
	check(spare_net_of(sv2) == host, "after a creation without net, the spare "
	    "waits in the host's net namespace");

	require(request(&e, "na3", NET, 1, NULL, &a, NULL, 0) == 0,
	    "create with net through a plain spare");
	check(gone(sv2), "that spare ran it");
	check(ino_of(a.fds[0]) != host, "a new net namespace");
	sv3 = wait_spare(sp, sv2);
	require(sv3 > 0, "a spare again");
	spare_net = spare_net_of(sv3);
	check(spare_net != 0 && spare_net != host, "it makes a net namespace ahead again");

	require(request(&e, "na4", PNM, 3, NULL, &b, NULL, 0) == 0,
	    "create {pid,net,mount} through it");
	check(gone(sv3), "that spare ran it");
	check_eq(ino_of(b.fds[1]), spare_net);
	check(ino_of(b.fds[1]) != ino_of(a.fds[0]), "allocations share no "
	    "net namespace");
	check_eq(in_ns(&b, only_lo, NULL), 0);
	init = reaper_of(&e, "na4");
	require(init > 0, "na4's init");
	check_eq(net_of(init), ino_of(b.fds[1]));
	nsclient_ns_free(&a);
	nsclient_ns_free(&b);
	check_eq(release(&e, "na1", NULL, 0), 0);
	check_eq(release(&e, "na2", NULL, 0), 0);
	check_eq(release(&e, "na3", NULL, 0), 0);
	check_eq(release(&e, "na4", NULL, 0), 0);
	check_eq(mounts_under(e.pins), 1);
	srv_stop(&e);
	env_fini(&e);
}

TEST_T(state_survives_restart, 60)
{
	struct env e;
	struct nsclient_ns a, b, a2, b2;
	struct nsclient *c;
	struct nsclient_status st;
	unsigned i;

	need_root();
	env_init(&e, false);
	make_image(&e, "u.sqfs");
	srv_start(&e);
	require(request(&e, "keep-a", PNM, 3, "u.sqfs", &a, NULL, 0) == 0,
	    "a");
	require(request(&e, "keep-b", NET, 1, NULL, &b, NULL, 0) == 0, "b");
	check(WIFEXITED(srv_stop(&e)), "server 1 stopped");
	/* Nothing is released by stopping. */
	check_eq(mounts_under(e.pins), 5);
	srv_start(&e);
	require(nsclient_open(e.sock, &c) == 0, "open");
	check_eq(nsclient_status(c, &st), 0);
	check_eq(st.allocations, 2);
	nsclient_close(c);
	require(request(&e, "keep-a", PNM, 3, "u.sqfs", &a2, NULL, 0) == 0,
	    "a again");
	require(request(&e, "keep-b", NET, 1, NULL, &b2, NULL, 0) == 0,
	    "b again");
	for (i = 0; i < 3; i++)
		check_eq(ino_of(a.fds[i]), ino_of(a2.fds[i]));
	check_eq(ino_of(b.fds[0]), ino_of(b2.fds[0]));
	/* The pid namespace still takes processes (its init survived). */
	check_eq(in_ns(&a2, sees_uenv, a2.uenv_mount_path), 0);
	check_eq(release(&e, "keep-a", NULL, 0), 0);
	check_eq(release(&e, "keep-b", NULL, 0), 0);
	check_eq(mounts_under(e.pins), 1);
	nsclient_ns_free(&a);
	nsclient_ns_free(&b);
	nsclient_ns_free(&a2);
	nsclient_ns_free(&b2);
	env_fini(&e);
}

/* An in-process server's configuration over e's paths. */
static void
env_config(const struct env *e, struct nsserver_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->root = e->root;
	cfg->pin_dir = e->pins;
	cfg->uenv_dir = e->uenv_dir;
	cfg->uenv_mount_base = e->uenv_base;
	cfg->state_path = e->state;
}

/* The generation bump's write ended: *data = err (1 until then). */
static void
bumped_cb(void *data, int err)
{
	*(int *)data = err;
}

static void
drained_cb(void *data, unsigned remaining)
{
	*(int *)data = (int)remaining;
}

static void
run_until_free(uv_loop_t *loop, struct nsserver *s)
{
	nsserver_free(s);
	uv_run(loop, UV_RUN_DEFAULT);
}

TEST_T(seal_matches_reload_and_drain, 60)
{
	struct env e;
	struct nsclient_ns a;
	struct nsserver_config cfg;
	struct nsserver *s;
	uv_loop_t loop;
	uint8_t d1[32], d2[32], d3[32];
	uint64_t q1, q2, q3;
	struct stat st1, st2;
	int cfd, drained = -1, bumped = 1;
	char buf[16];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	need_root();
	env_init(&e, false);
	srv_start(&e);
	require(request(&e, "s-1", PNM, 3, NULL, &a, NULL, 0) == 0, "create");
	nsclient_ns_free(&a);
	srv_stop(&e);
	env_config(&e, &cfg);
	uv_loop_init(&loop);
	require(nsserver_new(&loop, &cfg, &s) == 0, "new 1");
	check_eq(nsserver_count(s), 1);
	nsserver_state(s, &q1, d1);
	/* Drain with one idle consumer: it is closed, then done(0). */
	require(nsserver_start(s, e.lfd) == 0, "start");
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, e.sock, strlen(e.sock) + 1);
	require(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	    "connect");
	uv_run(&loop, UV_RUN_NOWAIT);
	nsserver_drain(s, clock_mono_ms() + 2000, drained_cb, &drained);
	while (drained < 0)
		uv_run(&loop, UV_RUN_ONCE);
	check_eq(drained, 0);
	check(!nsserver_accepting(s), "not accepting after drain");
	check_eq(read(cfd, buf, sizeof(buf)), 0);
	close(cfd);
	require(stat(e.state, &st1) == 0, "stat table");
	require(nsserver_seal(s, &q2, d2) == 0, "seal");
	/* Already durable: the seal writes nothing (a write renames a new
	 * file over the table, so its inode would change). */
	require(stat(e.state, &st2) == 0, "stat table");
	check_eq((uint64_t)st2.st_ino, (uint64_t)st1.st_ino);
	check_eq(q2, q1);
	check(memcmp(d1, d2, 32) == 0, "seal digest equals loaded digest");
	check(nsserver_bump_generation_async(s, bumped_cb, &bumped) < 0,
	    "no mutation while sealed");
	nsserver_resume(s, e.lfd);
	check(nsserver_accepting(s), "accepting after resume");
	check_eq(nsserver_bump_generation_async(s, bumped_cb, &bumped), 0);
	while (bumped == 1)
		uv_run(&loop, UV_RUN_ONCE);
	check_eq(bumped, 0);	/* durable, no error */
	require(nsserver_seal(s, &q2, d2) == 0, "seal 2");
	check_eq(q2, q1 + 1);
	run_until_free(&loop, s);
	require(nsserver_new(&loop, &cfg, &s) == 0, "new 2");
	nsserver_state(s, &q3, d3);
	check_eq(q3, q2);
	check(memcmp(d2, d3, 32) == 0, "reloaded digest equals sealed");
	check_eq(nsserver_count(s), 1);
	run_until_free(&loop, s);
	uv_loop_close(&loop);
	srv_start(&e);
	check_eq(release(&e, "s-1", NULL, 0), 0);
	env_fini(&e);
}

/* A pin directory no table names, with a net pin mounted in it. */
static void
plant_leftover(struct env *e, const char *id)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "mkdir -p %s/%s && touch %s/%s/net && "
	    "mount --bind /proc/self/ns/net %s/%s/net", e->pins, id, e->pins,
	    id, e->pins, id);
	check_eq(system(cmd), 0);
}

static bool
planted(struct env *e, const char *id)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", e->pins, id);
	return access(path, F_OK) == 0;
}

/*
 * The load of a successor promoted after its incumbent died (a head
 * start, no sealed digest) with a leftover planted: it is gone when
 * nsserver_new returns.  With the sealed digest it waits for the tick.
 */
static void
load_with_head_start(struct env *e, const uint8_t *sealed)
{
	struct nsserver_preload *pre;
	struct nsserver_config cfg;
	struct nsserver *s;
	uv_loop_t loop;
	uint64_t t0;

	plant_leftover(e, "undone");
	require(nsserver_preload(e->state, NULL, &pre) == 0, "preload");
	env_config(e, &cfg);
	cfg.preload = pre;
	cfg.sealed_digest = sealed;
	uv_loop_init(&loop);
	require(nsserver_new(&loop, &cfg, &s) == 0, "new");
	nsserver_preload_free(pre);
	check_eq(nsserver_count(s), 1);
	check(planted(e, "undone") == (sealed != NULL), "%s: leftover %s at "
	    "load", sealed ? "sealed" : "promoted", sealed ? "kept" :
	    "removed");
	t0 = clock_mono_ms();
	while (planted(e, "undone") && clock_mono_ms() - t0 < 5000)
		uv_run(&loop, UV_RUN_ONCE);
	check(!planted(e, "undone"), "leftover removed by the first tick");
	check_eq(mounts_under(e->pins), 2);
	run_until_free(&loop, s);
	uv_loop_close(&loop);
}

/*
 * Gone means gone: an agent that died between a release's durable write
 * and its undo left pins that no table names.  Whoever next answers
 * allocation_not_found for that id removes them first, and a load that
 * follows such a death sweeps before it serves (the crash matrix's
 * o-inside-drain, under create/release load, once found them kept).
 */
TEST_T(released_means_gone, 60)
{
	struct env e;
	struct nsclient_ns a;
	struct nsserver_config cfg;
	struct nsserver *s;
	uv_loop_t loop;
	uint8_t digest[32];
	uint64_t seq;
	char kind[64];

	need_root();
	env_init(&e, false);
	srv_start(&e);
	require(request(&e, "kept", NET, 1, NULL, &a, NULL, 0) == 0, "kept");
	nsclient_ns_free(&a);
	plant_leftover(&e, "undone");
	check_eq(mounts_under(e.pins), 3);
	check_eq(release(&e, "undone", kind, sizeof(kind)), -ENOENT);
	check(strcmp(kind, "allocation_not_found") == 0, "kind %s", kind);
	check(!planted(&e, "undone"), "leftover removed before the answer");
	check_eq(mounts_under(e.pins), 2);
	srv_stop(&e);

	load_with_head_start(&e, NULL);
	/* The digest BEGIN would carry: the table as loaded. */
	env_config(&e, &cfg);
	uv_loop_init(&loop);
	require(nsserver_new(&loop, &cfg, &s) == 0, "new");
	nsserver_state(s, &seq, digest);
	run_until_free(&loop, s);
	uv_loop_close(&loop);
	load_with_head_start(&e, digest);

	srv_start(&e);
	check_eq(release(&e, "kept", NULL, 0), 0);
	env_fini(&e);
}

TEST_T(leftovers_swept_and_gone_pins_dropped, 60)
{
	struct env e;
	struct nsclient_ns a;
	struct nsclient *c;
	struct nsclient_status st;
	char path[512];
	int r;

	need_root();
	env_init(&e, false);
	srv_start(&e);
	require(request(&e, "gone", NET, 1, NULL, &a, NULL, 0) == 0, "a");
	nsclient_ns_free(&a);
	srv_stop(&e);
	/* Someone removed the pin behind our back: dropped at load. */
	snprintf(path, sizeof(path), "%s/gone/net", e.pins);
	check_eq(umount2(path, MNT_DETACH), 0);
	/* A creation that died before persisting left a pin dir. */
	plant_leftover(&e, "ghost");
	srv_start(&e);
	require(nsclient_open(e.sock, &c) == 0, "open");
	check_eq(nsclient_status(c, &st), 0);
	check_eq(st.allocations, 0);
	nsclient_close(c);
	check_eq(mounts_under(e.pins), 1);
	snprintf(path, sizeof(path), "%s/ghost", e.pins);
	check(access(path, F_OK) < 0, "leftover removed");
	r = request(&e, "gone", NET, 1, NULL, &a, NULL, 0);
	check_eq(r, 0);
	if (r == 0)
		nsclient_ns_free(&a);
	check_eq(release(&e, "gone", NULL, 0), 0);
	env_fini(&e);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}

/*
 * ---- benchmark, not a test (make bench, TAP_ONLY=bench_create_latency):
 * creation latency next to the bare unshare() ----
 */

/* One fresh child per sample: a pid namespace is unshared once only. */
static void
bench_unshare(int flags, uint64_t *lat, int n)
{
	int p[2], i, st;
	pid_t pid;
	ssize_t r;

	for (i = 0; i < n; i++) {
		lat[i] = 0;
		require(pipe(p) == 0, "pipe");
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			uint64_t t0 = clock_mono_us(), d;

			if (unshare(flags) < 0)
				_exit(1);
			d = clock_mono_us() - t0;
			r = write(p[1], &d, sizeof(d));
			_exit(r == sizeof(d) ? 0 : 1);
		}
		close(p[1]);
		r = read(p[0], &lat[i], sizeof(lat[i]));
		close(p[0]);
		waitpid(pid, &st, 0);
		require(r == sizeof(lat[i]), "unshare sample");
	}
}

static void
bench_report(const char *what, uint64_t *lat, int n)
{
	qsort(lat, (size_t)n, sizeof(lat[0]), cmp_u64);
	tap_diag("%-36s p50=%6lluus p99=%6lluus (n=%d)", what,
	    (unsigned long long)lat[n / 2],
	    (unsigned long long)lat[(n * 99) / 100 - 1], n);
}

BENCH_T(bench_create_latency, 300)
{
	static const char *const NM[] = { "net" };
	static const struct {
		const char *what;
		const char *const *ns;
		unsigned n;
		const char *img;
	} kinds[] = {
		{ "provider {net}", NM, 1, NULL },
		{ "provider {pid,net,mount}", PNM, 3, NULL },
		{ "provider {pid,net,mount}+uenv", PNM, 3, "b.sqfs" },
	};
	enum { N = 200 };
	struct env e;
	struct nsclient_ns a;
	uint64_t lat[N], t0;
	unsigned k;
	int i, r;

	need_root();
	bench_unshare(CLONE_NEWNET, lat, N);
	bench_report("bare unshare(NEWNET)", lat, N);
	bench_unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID, lat, N);
	bench_report("bare unshare(NEWNET|NEWNS|NEWPID)", lat, N);
	env_init(&e, false);
	make_image(&e, "b.sqfs");
	srv_start(&e);
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (i = 0; i < N; i++) {
			char id[32];

			snprintf(id, sizeof(id), "b-%u-%d", k, i);
			t0 = clock_mono_us();
			r = request(&e, id, kinds[k].ns, kinds[k].n,
			    kinds[k].img, &a, NULL, 0);
			lat[i] = clock_mono_us() - t0;
			require(r == 0, "create: %s", strerror(-r));
			nsclient_ns_free(&a);
			require(release(&e, id, NULL, 0) == 0, "release");
		}
		bench_report(kinds[k].what, lat, N);
	}
	env_fini(&e);
}
