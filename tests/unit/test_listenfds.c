/*
 * test_listenfds: inherited listeners are taken exactly as systemd hands
 * them over, anything malformed is refused with a clear errno, and the
 * variables are gone afterwards so no child inherits them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/listenfds.h"
#include "tests/lib/tap.h"

/* Put n sockets at 3..3+n-1, not CLOEXEC, as a service manager would. */
static void
place_sockets(unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;

		require(s >= 0, "socket");
		fd = s == 3 + (int)i ? s : dup2(s, 3 + (int)i);
		require(fd == 3 + (int)i, "dup2");
		if (s != fd)
			close(s);
		fcntl(fd, F_SETFD, 0);
	}
}

static void
set_env(const char *pid, const char *fds, const char *names)
{
	char own[32];

	if (pid && strcmp(pid, "self") == 0) {
		snprintf(own, sizeof(own), "%ld", (long)getpid());
		pid = own;
	}
	if (pid)
		setenv("LISTEN_PID", pid, 1);
	else
		unsetenv("LISTEN_PID");
	if (fds)
		setenv("LISTEN_FDS", fds, 1);
	else
		unsetenv("LISTEN_FDS");
	if (names)
		setenv("LISTEN_FDNAMES", names, 1);
	else
		unsetenv("LISTEN_FDNAMES");
}

static bool
env_gone(void)
{
	return !getenv("LISTEN_PID") && !getenv("LISTEN_FDS") &&
	    !getenv("LISTEN_FDNAMES");
}

static int
parse(struct listenfd *l, unsigned *n)
{
	*n = 777;
	return listenfds_parse(l, LISTENFDS_MAX, n);
}

TEST(unset_means_none)
{
	struct listenfd l[LISTENFDS_MAX];
	unsigned n;
	int r;

	set_env(NULL, NULL, NULL);
	r = parse(l, &n);
	check_eq(r, 0);
	check_eq(n, 0);
	/* LISTEN_PID alone (no LISTEN_FDS) is no listeners either. */
	set_env("self", NULL, NULL);
	r = parse(l, &n);
	check_eq(r, 0);
	check_eq(n, 0);
	check(env_gone(), "variables unset");
	set_env("self", "0", "");
	r = parse(l, &n);
	check_eq(r, 0);
	check_eq(n, 0);
	check(env_gone(), "variables unset");
}

TEST(two_named_listeners)
{
	struct listenfd l[LISTENFDS_MAX];
	const struct listenfd *f;
	unsigned n, i;
	int r;

	place_sockets(2);
	set_env("self", "2", "ns:ctl");
	r = parse(l, &n);
	check_eq(r, 0);
	require(n == 2, "n=%u", n);
	check_eq(l[0].fd, 3);
	check_eq(l[1].fd, 4);
	check(strcmp(l[0].name, "ns") == 0, "name 0 '%s'", l[0].name);
	check(strcmp(l[1].name, "ctl") == 0, "name 1 '%s'", l[1].name);
	for (i = 0; i < n; i++)
		check(fcntl(l[i].fd, F_GETFD) & FD_CLOEXEC,
		    "fd %d is CLOEXEC after", l[i].fd);
	check(env_gone(), "variables unset after");
	f = listenfds_find(l, n, "ctl");
	check(f && f->fd == 4, "find ctl");
	check(listenfds_find(l, n, "nope") == NULL, "find absent");
	check(listenfds_find(l, n, "c") == NULL, "find prefix");
}

TEST(no_pid_and_no_names)
{
	struct listenfd l[LISTENFDS_MAX];
	unsigned n;
	int r;

	place_sockets(2);
	/* No LISTEN_PID: taken (the header's rule); no names: "unknown". */
	set_env(NULL, "2", NULL);
	r = parse(l, &n);
	check_eq(r, 0);
	check_eq(n, 2);
	check(strcmp(l[0].name, "unknown") == 0 &&
	    strcmp(l[1].name, "unknown") == 0, "names unknown");
	/* An empty entry is "unknown" too. */
	place_sockets(2);
	set_env("self", "2", "a:");
	r = parse(l, &n);
	check_eq(r, 0);
	check(strcmp(l[0].name, "a") == 0 && strcmp(l[1].name, "unknown") == 0,
	    "names '%s' '%s'", l[0].name, l[1].name);
}

TEST(wrong_pid_is_ignored)
{
	struct listenfd l[LISTENFDS_MAX];
	char other[32];
	unsigned n;
	int r, fl;

	place_sockets(1);
	snprintf(other, sizeof(other), "%ld", (long)getpid() + 1);
	set_env(other, "1", "ns");
	r = parse(l, &n);
	check_eq(r, 0);
	check_eq(n, 0);
	check(env_gone(), "variables unset");
	fl = fcntl(3, F_GETFD);
	check(fl >= 0 && !(fl & FD_CLOEXEC), "fd 3 left alone");
}

TEST(names_count_mismatch)
{
	static const char *const bad[] = { "a", "a:b:c", "", "::::", NULL };
	struct listenfd l[LISTENFDS_MAX];
	unsigned n, i;
	int r;

	for (i = 0; bad[i]; i++) {
		place_sockets(2);
		set_env("self", "2", bad[i]);
		r = parse(l, &n);
		check(r == -EINVAL, "names '%s': %d", bad[i], r);
		check_eq(n, 777);
		check(env_gone(), "variables unset after failure");
	}
	place_sockets(1);
	set_env("self", "0", "ns");
	r = parse(l, &n);
	check_eq(r, -EINVAL);
}

TEST(long_name_refused)
{
	struct listenfd l[LISTENFDS_MAX];
	char name[LISTENFDS_NAME_MAX + 1];
	unsigned n;
	int r;

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	place_sockets(1);
	set_env("self", "1", name);
	r = parse(l, &n);
	check_eq(r, -ENAMETOOLONG);
	name[LISTENFDS_NAME_MAX - 1] = '\0';
	place_sockets(1);
	set_env("self", "1", name);
	r = parse(l, &n);
	check_eq(r, 0);
	check_eq(strlen(l[0].name), LISTENFDS_NAME_MAX - 1);
}

TEST(non_socket_and_closed_fd)
{
	struct listenfd l[LISTENFDS_MAX];
	unsigned n;
	int p[2], r;

	place_sockets(1);
	require(pipe(p) == 0, "pipe");
	require(dup2(p[0], 4) == 4, "dup2");
	set_env("self", "2", "ns:ctl");
	r = parse(l, &n);
	check_eq(r, -ENOTSOCK);
	check(env_gone(), "variables unset");
	close(4);
	set_env("self", "2", "ns:ctl");
	r = parse(l, &n);
	check_eq(r, -EBADF);
}

TEST(garbage_numbers)
{
	static const char *const bad_fds[] = {
		"abc", "-1", "1x", "", " 1", "+1", "0x1",
		"99999999999999999999", "2147483647", NULL
	};
	static const char *const bad_pid[] = {
		"abc", "-5", "", "12a", "99999999999999999999", NULL
	};
	struct listenfd l[LISTENFDS_MAX];
	unsigned n, i;
	int r;

	place_sockets(1);
	for (i = 0; bad_fds[i]; i++) {
		set_env("self", bad_fds[i], NULL);
		r = parse(l, &n);
		/* In-range but over the limit is E2BIG, the rest EINVAL. */
		check(r == -EINVAL || r == -E2BIG, "LISTEN_FDS='%s': %d",
		    bad_fds[i], r);
		check_eq(n, 777);
		check(env_gone(), "unset after '%s'", bad_fds[i]);
	}
	for (i = 0; bad_pid[i]; i++) {
		set_env(bad_pid[i], "1", NULL);
		r = parse(l, &n);
		check(r == -EINVAL, "LISTEN_PID='%s': %d", bad_pid[i], r);
	}
	set_env("self", "17", NULL);
	r = parse(l, &n);
	check_eq(r, -E2BIG);
	set_env("self", "1", NULL);
	n = 777;
	r = listenfds_parse(l, 0, &n);
	check_eq(r, -E2BIG);
}

TEST(format_variables)
{
	static const char *const names[] = { "ns", "ctl" };
	char fds[32], pid[32], nm[3 * (LISTENFDS_NAME_MAX + 1) + 16];
	char longname[100];
	const char *three[3];

	listenfds_format(1234, names, 2, fds, nm, pid);
	check(strcmp(fds, "LISTEN_FDS=2") == 0, "'%s'", fds);
	check(strcmp(nm, "LISTEN_FDNAMES=ns:ctl") == 0, "'%s'", nm);
	check(strcmp(pid, "LISTEN_PID=1234") == 0, "'%s'", pid);
	listenfds_format(7, NULL, 2, fds, nm, pid);
	check(strcmp(nm, "LISTEN_FDNAMES=unknown:unknown") == 0, "'%s'", nm);
	listenfds_format(7, names, 0, fds, nm, pid);
	check(strcmp(fds, "LISTEN_FDS=0") == 0, "'%s'", fds);
	check(strcmp(nm, "LISTEN_FDNAMES=") == 0, "'%s'", nm);

	memset(longname, 'z', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	three[0] = longname;
	three[1] = "";
	three[2] = NULL;
	listenfds_format(7, three, 3, fds, nm, pid);
	check_eq(strlen(nm), strlen("LISTEN_FDNAMES=") +
	    (LISTENFDS_NAME_MAX - 1) + 2 + 2 * strlen("unknown"));
}

TEST(format_then_parse_roundtrip)
{
	static const char *const names[] = { "ns", "ctl", "metrics" };
	char fds[32], pid[32], nm[3 * (LISTENFDS_NAME_MAX + 1) + 16];
	struct listenfd l[LISTENFDS_MAX];
	unsigned n, i;
	int r;

	place_sockets(3);
	listenfds_format(getpid(), names, 3, fds, nm, pid);
	putenv(fds);
	putenv(nm);
	putenv(pid);
	r = parse(l, &n);
	check_eq(r, 0);
	require(n == 3, "n=%u", n);
	for (i = 0; i < 3; i++)
		check(strcmp(l[i].name, names[i]) == 0 && l[i].fd == 3 + (int)i,
		    "listener %u '%s' fd %d", i, l[i].name, l[i].fd);
	check(env_gone(), "unset");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
