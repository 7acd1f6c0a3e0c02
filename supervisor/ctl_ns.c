/*
 * ctl_ns: batonctl's namespace commands.
 *
 *   ns create ALLOC [--pid] [--net] [--mount] [--uenv IMAGE]
 *   ns run ALLOC [--pid] [--net] [--mount] [--uenv IMAGE] -- CMD [ARG]...
 *   ns release ALLOC
 *
 * No namespace flag means all three.  `run` asks for the allocation
 * (idempotent; it creates it when it does not exist), joins net, pid and
 * mount with setns, forks (a pid namespace applies to children only) and
 * runs CMD there.  Without flags it finds an existing allocation's set by
 * trying the others when the provider answers invalid_request.  batonctl
 * never falls back to creating namespaces itself: no provider is 69.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/nsclient.h"
#include "common/paths.h"
#include "supervisor/ctl_ns.h"

#define EX_OK		0
#define EX_FAIL		1
#define EX_USAGE	64
#define EX_UNAVAILABLE	69

static void
usage(void)
{
	fprintf(stderr,
	    "usage: batonctl [--root DIR] ns create ALLOC [--pid] [--net] "
	    "[--mount] [--uenv IMAGE]\n"
	    "       batonctl [--root DIR] ns run ALLOC [--pid] [--net] "
	    "[--mount] [--uenv IMAGE] -- COMMAND [ARG]...\n"
	    "       batonctl [--root DIR] ns release ALLOCATION\n");
}

struct nsargs {
	const char *id;
	unsigned mask;
	const char *image;
	char **cmd;		/* after "--", for run */
};

/* Parse "ALLOC [flags] [-- CMD...]" from argv[2..]. */
static int
parse(int argc, char **argv, bool want_cmd, struct nsargs *a)
{
	int i;

	memset(a, 0, sizeof(*a));
	if (argc < 3 || argv[2][0] == '-')
		return -EINVAL;
	a->id = argv[2];
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--pid") == 0)
			a->mask |= NSM_PID;
		else if (strcmp(argv[i], "--net") == 0)
			a->mask |= NSM_NET;
		else if (strcmp(argv[i], "--mount") == 0)
			a->mask |= NSM_MNT;
		else if (strcmp(argv[i], "--uenv") == 0 && i + 1 < argc)
			a->image = argv[++i];
		else if (strcmp(argv[i], "--") == 0 && want_cmd)
			break;
		else
			return -EINVAL;
	}
	if (want_cmd) {
		if (i >= argc - 1)
			return -EINVAL;
		a->cmd = argv + i + 1;
	}
	return 0;
}

static unsigned
names_of(unsigned mask, const char **names)
{
	unsigned k, n = 0;

	for (k = 0; k < NSCLIENT_MAX_NS; k++)
		if (mask & (1u << k))
			names[n++] = nsclient_kind_name(k);
	return n;
}

static int
exit_for(int r)
{
	switch (r) {
	case -ENOENT:
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -ENOTSOCK:
	case -EACCES:
		return EX_UNAVAILABLE;
	default:
		return EX_FAIL;
	}
}

static void
report(struct nsclient *c, int r, const char *what, const char *id)
{
	const char *msg = "";
	const char *kind = c ? nsclient_error(c, &msg) : "";

	if (kind[0])
		fprintf(stderr, "batonctl: %s %s: %s: %s\n", what, id, kind,
		    msg);
	else
		fprintf(stderr, "batonctl: %s %s: %s\n", what, id,
		    strerror(-r));
}

/*
 * Request a's namespaces; with no flags (mask 0) try every set, all
 * three first, until the provider stops saying invalid_request.
 */
static int
get_ns(struct nsclient *c, const struct nsargs *a, struct nsclient_ns *ret)
{
	static const unsigned sets[] = { 7, 6, 3, 5, 2, 4, 1 };
	const char *names[NSCLIENT_MAX_NS];
	struct nsclient_req rq;
	unsigned i;
	int r = -EINVAL;

	memset(&rq, 0, sizeof(rq));
	rq.allocation_id = a->id;
	rq.uenv_image = a->image;
	rq.namespaces = names;
	for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		rq.n = names_of(a->mask ? a->mask : sets[i], names);
		r = nsclient_request(c, &rq, ret);
		if (r != -EINVAL || a->mask || a->image)
			break;
	}
	return r;
}

static int
cmd_create(struct nsclient *c, const struct nsargs *a)
{
	struct nsclient_ns ns;
	struct stat st;
	unsigned i;
	int r;

	r = get_ns(c, a, &ns);
	if (r < 0) {
		report(c, r, "create", a->id);
		return EX_FAIL;
	}
	printf("%-12s %s\n", "allocation", a->id);
	for (i = 0; i < ns.n; i++) {
		if (fstat(ns.fds[i], &st) < 0)
			continue;
		printf("%-12s %lu\n", nsclient_kind_name(ns.kinds[i]),
		    (unsigned long)st.st_ino);
	}
	printf("%-12s %s\n", "uenv", ns.uenv_mount_path ?
	    ns.uenv_mount_path : "-");
	nsclient_ns_free(&ns);
	return EX_OK;
}

static int
cmd_run(struct nsclient *c, const struct nsargs *a)
{
	static const unsigned order[] = { NSK_NET, NSK_PID, NSK_MNT };
	struct nsclient_ns ns;
	unsigned i;
	int r, k, st;
	pid_t pid;

	r = get_ns(c, a, &ns);
	if (r < 0)
		report(c, r, "run", a->id);
	nsclient_close(c);	/* taken: no fd of ours reaches CMD */
	if (r < 0)
		return EX_FAIL;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("batonctl: fork");
		nsclient_ns_free(&ns);
		return EX_FAIL;
	}
	if (pid == 0) {
		/* Join in the child: batonctl itself stays where it was. */
		for (i = 0; i < 3; i++) {
			k = nsclient_ns_find(&ns, order[i]);
			if (k >= 0 && setns(ns.fds[k], 0) < 0) {
				fprintf(stderr, "batonctl: setns %s: %s\n",
				    nsclient_kind_name(order[i]),
				    strerror(errno));
				_exit(EX_FAIL);
			}
		}
		nsclient_ns_free(&ns);
		/* The pid namespace takes effect for our children only. */
		pid = fork();
		if (pid < 0)
			_exit(EX_FAIL);
		if (pid == 0) {
			execvp(a->cmd[0], a->cmd);
			fprintf(stderr, "batonctl: exec %s: %s\n", a->cmd[0],
			    strerror(errno));
			_exit(127);
		}
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	nsclient_ns_free(&ns);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return EX_FAIL;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
ctl_ns_main(const char *root, int argc, char **argv)
{
	struct baton_paths *p = NULL;
	struct nsclient *c = NULL;
	struct nsargs a;
	const char *sub;
	int r, rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		usage();
		return argc < 2 ? EX_USAGE : EX_OK;
	}
	sub = argv[1];
	if ((strcmp(sub, "create") == 0 && parse(argc, argv, false, &a) < 0) ||
	    (strcmp(sub, "run") == 0 && parse(argc, argv, true, &a) < 0) ||
	    (strcmp(sub, "release") == 0 && (argc != 3 ||
	    parse(argc, argv, false, &a) < 0)) ||
	    (strcmp(sub, "create") != 0 && strcmp(sub, "run") != 0 &&
	    strcmp(sub, "release") != 0)) {
		usage();
		return EX_USAGE;
	}
	p = malloc(sizeof(*p));
	if (!p || paths_init(p, root) < 0) {
		fprintf(stderr, "batonctl: bad root\n");
		rc = EX_USAGE;
		goto out;
	}
	r = nsclient_open(p->ns_socket, &c);
	if (r < 0) {
		fprintf(stderr, "batonctl: connect %s: %s\n", p->ns_socket,
		    strerror(-r));
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (strcmp(sub, "create") == 0) {
		rc = cmd_create(c, &a);
	} else if (strcmp(sub, "run") == 0) {
		rc = cmd_run(c, &a);
		c = NULL;	/* closed before the command runs */
	} else {
		r = nsclient_release(c, a.id);
		if (r < 0)
			report(c, r, "release", a.id);
		else
			printf("released %s\n", a.id);
		rc = r < 0 ? (r == -ENOENT || r == -EINVAL ? EX_FAIL :
		    exit_for(r)) : EX_OK;
	}
out:
	nsclient_close(c);
	free(p);
	return rc;
}
