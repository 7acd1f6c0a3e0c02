/*
 * nsclient-example: create, use and release an allocation through the
 * baton namespace provider, with the installed library:
 *
 *   cc -o nsclient-example nsclient-example.c $(pkg-config --cflags --libs baton-nsclient)
 *   ./nsclient-example [SOCKET]      (default /run/pact/handoff.sock)
 *
 * It asks for a pid and a net namespace, runs a process inside both
 * (it must be pid 1's child there, and see only "lo"), then releases the
 * allocation.  Exit status 0 when all of that worked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <baton/nsclient.h>

/* In a child: join the namespaces, fork, report from inside. */
static int
run_inside(const struct nsclient_ns *ns)
{
	int ip = nsclient_ns_find(ns, NSK_PID), in = nsclient_ns_find(ns, NSK_NET);
	pid_t pid, inner;
	int st;

	fflush(stdout);		/* or the children print it again */
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (setns(ns->fds[in], CLONE_NEWNET) < 0 ||
		    setns(ns->fds[ip], CLONE_NEWPID) < 0)
			_exit(2);
		inner = fork();		/* the first child in the new pid ns */
		if (inner == 0) {
			/* Its parent is outside the namespace: getppid() is 0. */
			printf("inside: pid %d, lo index %u, eth0 %s\n",
			    (int)getpid(), if_nametoindex("lo"),
			    if_nametoindex("eth0") ? "present" : "absent");
			fflush(stdout);
			_exit(getpid() > 1 && if_nametoindex("lo") ? 0 : 3);
		}
		_exit(inner > 0 && waitpid(inner, &st, 0) == inner &&
		    WIFEXITED(st) ? WEXITSTATUS(st) : 4);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int
main(int argc, char **argv)
{
	static const char *const kinds[] = { "pid", "net" };
	const char *sock = argc > 1 ? argv[1] : "/" NSCLIENT_SOCK;
	struct nsclient_req req = { .namespaces = kinds, .n = 2 };
	struct nsclient_status status;
	struct nsclient_ns ns;
	struct nsclient *c;
	const char *kind, *msg = "";
	char id[64];
	struct stat sb;
	unsigned i;
	int r;

	r = nsclient_open(sock, &c);
	if (r < 0) {
		fprintf(stderr, "connect %s: %s\n", sock, strerror(-r));
		return 1;
	}
	r = nsclient_status(c, &status);
	if (r < 0) {
		fprintf(stderr, "status: %s\n", strerror(-r));
		return 1;
	}
	printf("provider: pid %u build %s allocations %llu ready %d\n",
	    (unsigned)status.pid, status.build_id,
	    (unsigned long long)status.allocations, (int)status.ready);
	snprintf(id, sizeof(id), "example-%d", (int)getpid());
	req.allocation_id = id;
	r = nsclient_request(c, &req, &ns);
	if (r < 0) {
		kind = nsclient_error(c, &msg);
		fprintf(stderr, "request %s: %s (%s: %s)\n", id, strerror(-r),
		    kind, msg);
		return 1;
	}
	for (i = 0; i < ns.n; i++) {
		if (fstat(ns.fds[i], &sb) == 0)
			printf("%s: %s namespace, inode %llu\n", id,
			    nsclient_kind_name(ns.kinds[i]),
			    (unsigned long long)sb.st_ino);
	}
	r = run_inside(&ns);
	nsclient_ns_free(&ns);
	if (r != 0)
		fprintf(stderr, "running inside the namespaces failed (%d)\n", r);
	if (nsclient_release(c, id) < 0) {
		fprintf(stderr, "release %s failed\n", id);
		r = 1;
	} else {
		printf("%s: released\n", id);
	}
	nsclient_close(c);
	return r == 0 ? 0 : 1;
}
