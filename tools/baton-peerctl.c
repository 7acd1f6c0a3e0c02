/*
 * baton-peerctl: reload a peer system the way its documentation says,
 * and return only when the reload is over, so baton-reload can time it
 * like `batonctl upgrade` (which returns when the handoff committed).
 *
 *   haproxy    master-worker (-W): SIGUSR2 to the master, which re-execs
 *              itself, takes the listeners over its socketpair, starts a
 *              new worker and soft-stops the old ones once it is READY.
 *              Over when the master CLI (--master-socket, haproxy -S)
 *              answers again and lists a new worker and no old one.
 *   nginx      binary upgrade: USR2 to the master (a new master starts
 *              with the listeners and writes the pid file), then WINCH
 *              (old workers stop gracefully) and QUIT to the old master.
 *              Over when the new master has a worker and the old master
 *              is gone.
 *   tableflip  SIGHUP to the process, which runs Upgrade(); the child
 *              calls Ready() and rewrites the pid file, the parent drains
 *              and exits.  Over when the pid file names the new process
 *              and the old one is gone.
 *
 * Everything is read from the pid file and /proc; no peer CLI is needed.
 * Prints one JSON line: old and new pid, milliseconds.  Exit 0 when the
 * reload completed within --timeout-ms, 1 when it did not.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/version.h"

#define MAX_KIDS 64
#define POLL_US 1000

static pid_t
read_pid(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%ld", &v) != 1)
		v = 0;
	fclose(f);
	return (pid_t)v;
}

/* Alive and not a zombie. */
static bool
alive(pid_t pid)
{
	char p[64], buf[512], *s;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return false;
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(p, "re")))
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	s = strrchr(buf, ')');
	return s && s[1] == ' ' && s[2] != 'Z' && s[2] != 'X';
}

/* Live children of ppid into v (at most MAX_KIDS); returns how many. */
static int
children(pid_t ppid, pid_t *v)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char p[300], buf[512], *s;
	int n = 0, pp;
	char state;
	FILE *f;
	size_t len;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < MAX_KIDS) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/stat", e->d_name);
		if (!(f = fopen(p, "re")))
			continue;
		len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		s = strrchr(buf, ')');
		if (s && sscanf(s + 2, "%c %d", &state, &pp) == 2 &&
		    pp == ppid && state != 'Z' && state != 'X')
			v[n++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return n;
}

static bool
in(pid_t p, const pid_t *v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (v[i] == p)
			return true;
	return false;
}

static bool
expired(uint64_t until)
{
	if (clock_mono_ms() >= until)
		return true;
	usleep(POLL_US);
	return false;
}

/*
 * "show proc" on the master CLI: the worker pids it lists (current and
 * old).  The CLI answers only once the re-executed master runs its loop
 * again, which is when it can take the next SIGUSR2.  -errno on failure.
 */
static int
haproxy_workers(const char *sock, pid_t *v)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	static const char cmd[] = "show proc\n";
	char buf[16384], *line, *save = NULL, type[32];
	size_t got = 0;
	ssize_t r;
	int fd, n = 0;
	long pid;

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
	    write(fd, cmd, sizeof(cmd) - 1) != (ssize_t)sizeof(cmd) - 1) {
		n = -errno;
		close(fd);
		return n;
	}
	shutdown(fd, SHUT_WR);
	while (got < sizeof(buf) - 1 &&
	    (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	buf[got] = '\0';
	for (line = strtok_r(buf, "\n", &save); line && n < MAX_KIDS;
	    line = strtok_r(NULL, "\n", &save))
		if (sscanf(line, "%ld %31s", &pid, type) == 2 &&
		    strcmp(type, "worker") == 0)
			v[n++] = (pid_t)pid;
	return n;
}

static int
reload_haproxy(pid_t master, const char *sock, uint64_t until,
    pid_t *ret_new)
{
	pid_t old[MAX_KIDS], cur[MAX_KIDS];
	int nold, n, i;
	bool fresh, stale;

	if (!sock)
		return -EINVAL;
	/* The CLI is rebound by each re-executed master: wait for it. */
	while ((nold = haproxy_workers(sock, old)) <= 0)
		if (expired(until))
			return nold < 0 ? nold : -ESRCH;
	if (kill(master, SIGUSR2) < 0)
		return -errno;
	for (;;) {
		n = haproxy_workers(sock, cur);
		fresh = stale = false;
		for (i = 0; i < n; i++) {
			if (in(cur[i], old, nold))
				stale = true;
			else
				*ret_new = cur[i], fresh = true;
		}
		if (fresh && !stale)
			return 0;
		if (expired(until))
			return -ETIMEDOUT;
	}
}

static int
reload_nginx(const char *pidfile, pid_t old, uint64_t until, pid_t *ret_new)
{
	pid_t nm = 0, kids[MAX_KIDS];

	if (kill(old, SIGUSR2) < 0)
		return -errno;
	/* The new master writes the pid file once its workers are forked. */
	for (;;) {
		nm = read_pid(pidfile);
		if (nm > 0 && nm != old && alive(nm) && children(nm, kids) > 0)
			break;
		if (expired(until))
			return -ETIMEDOUT;
	}
	*ret_new = nm;
	if (kill(old, SIGWINCH) < 0 || kill(old, SIGQUIT) < 0)
		return -errno;
	while (alive(old))
		if (expired(until))
			return -ETIMEDOUT;
	return 0;
}

static int
reload_tableflip(const char *pidfile, pid_t old, uint64_t until,
    pid_t *ret_new)
{
	pid_t np;

	if (kill(old, SIGHUP) < 0)
		return -errno;
	for (;;) {
		np = read_pid(pidfile);
		if (np > 0 && np != old && !alive(old)) {
			*ret_new = np;
			return 0;
		}
		if (expired(until))
			return -ETIMEDOUT;
	}
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: baton-peerctl reload (haproxy|nginx|tableflip) --pidfile FILE\n"
"                     [--master-socket PATH] [--timeout-ms N]\n"
"\n"
"Reload a peer server the documented way and wait until the reload is\n"
"over: haproxy (master-worker; SIGUSR2 to the master, done when its master\n"
"CLI at --master-socket answers and lists only new workers), nginx (binary upgrade: USR2, WINCH, QUIT; done when the\n"
"old master is gone), tableflip (SIGHUP; done when the pid file names the\n"
"new process and the old one is gone).  FILE holds the master's pid.\n"
"Prints {\"old_pid\",\"new_pid\",\"ms\"}; exit 0 on success, 1 on a timeout\n"
"(default 30000 ms) or a vanished process.\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pidfile", required_argument, NULL, 'p' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "master-socket", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pidfile = NULL, *msock = NULL, *kind;
	long timeout = 30000;
	uint64_t t0, until;
	pid_t old, np = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pidfile = optarg; break;
		case 't': timeout = atol(optarg); break;
		case 'm': msock = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("baton-peerctl %s\n", baton_version); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (!pidfile || timeout < 1 || argc - optind != 2 ||
	    strcmp(argv[optind], "reload") != 0) {
		usage(stderr);
		return 64;
	}
	kind = argv[optind + 1];
	/* A master re-executing closes its CLI under us: EPIPE, not death. */
	signal(SIGPIPE, SIG_IGN);
	old = read_pid(pidfile);
	if (!alive(old)) {
		fprintf(stderr, "baton-peerctl: %s: no live pid\n", pidfile);
		return 69;
	}
	t0 = clock_mono_ms();
	until = t0 + (uint64_t)timeout;
	if (strcmp(kind, "haproxy") == 0)
		r = reload_haproxy(old, msock, until, &np);
	else if (strcmp(kind, "nginx") == 0)
		r = reload_nginx(pidfile, old, until, &np);
	else if (strcmp(kind, "tableflip") == 0)
		r = reload_tableflip(pidfile, old, until, &np);
	else {
		usage(stderr);
		return 64;
	}
	printf("{\"kind\":\"%s\",\"ok\":%s,\"old_pid\":%d,\"new_pid\":%d,"
	    "\"ms\":%" PRIu64 "}\n", kind, r == 0 ? "true" : "false", (int)old,
	    (int)np, clock_mono_ms() - t0);
	if (r < 0)
		fprintf(stderr, "baton-peerctl: reload %s: %s\n", kind,
		    strerror(-r));
	return r == 0 ? 0 : 1;
}
