/*
 * ctl_ns: batonctl's namespace commands.
 *
 *   ns list [--json]
 *   ns create ALLOC [--pid] [--net] [--mount] [--uenv IMAGE] [--json]
 *   ns run ALLOC [--create] [--pid] [--net] [--mount] [--uenv IMAGE]
 *          [--json] -- CMD [ARG]...
 *   ns release ALLOC [--json]
 *
 * No namespace flag means all three.  `run` first checks with NS_LIST that
 * the allocation exists (allocation_not_found otherwise, unless --create),
 * then asks for it (idempotent), joins net, pid and
 * mount with setns, forks (a pid namespace applies to children only) and
 * runs CMD there.  Without flags it finds an existing allocation's set by
 * trying the others when the provider answers invalid_request.  batonctl
 * never falls back to creating namespaces itself: no provider is 69.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "client/nsclient.h"
#include "common/paths.h"
#include "transport/wire.h"
#include "ctl/ctl_ns.h"

#define EX_OK		0
#define EX_FAIL		1
#define EX_USAGE	64
#define EX_UNAVAILABLE	69
#define LIST_CONNECT_MS	2000
#define LIST_REPLY_MS	10000

static const char ns_help[] =
"usage: batonctl [--root DIR] ns list [--json]\n"
"       batonctl [--root DIR] ns create ALLOCATION [--pid] [--net] [--mount]\n"
"                [--uenv IMAGE] [--json]\n"
"       batonctl [--root DIR] ns run ALLOCATION [--create] [--pid] [--net]\n"
"                [--mount] [--uenv IMAGE] [--json] -- COMMAND [ARG]...\n"
"       batonctl [--root DIR] ns release ALLOCATION [--json]\n"
"\n"
"Talks to the agent's namespace socket (ROOT/run/pact/handoff.sock).\n"
"\n"
"  list      every allocation: id, namespaces, uenv image, and whether its\n"
"            namespaces are still held (alive)\n"
"  create    create the allocation's namespaces (all three without flags);\n"
"            idempotent for the same set\n"
"  run       run COMMAND inside an existing allocation's namespaces; with\n"
"            --create, create the allocation first when it does not exist\n"
"  release   end the allocation and release its namespaces\n"
"\n"
"  --json    one JSON object on stdout, errors included\n"
"            ({\"ok\":false,\"error\":KIND,\"message\":...})\n"
"\n"
"Exit status: 0 ok (for run: the command's status), 1 the provider said\n"
"no (allocation_not_found, invalid_request, ...), 64 usage, 69 no provider\n"
"answers.\n";

struct nsargs {
	const char *sub;
	const char *id;
	unsigned mask;
	const char *image;
	bool create;		/* run: create when missing */
	bool json;
	char **cmd;		/* after "--", for run */
};

/*
 * Parse "SUB [ALLOC] [flags] [-- CMD...]" from argv[1..] with getopt_long.
 * Returns -1 when parsed, else the exit code (0 for --help).
 */
static int
parse(int argc, char **argv, struct nsargs *a)
{
	static const struct option opts[] = {
		{ "pid", no_argument, NULL, 'p' },
		{ "net", no_argument, NULL, 'n' },
		{ "mount", no_argument, NULL, 'm' },
		{ "uenv", required_argument, NULL, 'u' },
		{ "create", no_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool is_list, is_run, is_rel;
	int c, end, i;

	memset(a, 0, sizeof(*a));
	if (argc < 2) {
		fputs(ns_help, stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(ns_help, stdout);
		return EX_OK;
	}
	a->sub = argv[1];
	is_list = strcmp(a->sub, "list") == 0;
	is_run = strcmp(a->sub, "run") == 0;
	is_rel = strcmp(a->sub, "release") == 0;
	if (!is_list && !is_run && !is_rel && strcmp(a->sub, "create") != 0) {
		fprintf(stderr, "batonctl: ns: unknown command '%s'\n"
		    "Try 'batonctl ns --help'.\n", a->sub);
		return EX_USAGE;
	}
	/* Options end at "--"; what follows is run's command, untouched. */
	for (end = 2; end < argc && strcmp(argv[end], "--") != 0; end++)
		;
	optind = 0;
	/* getopt sees argv[1..end): the subcommand name is its argv[0]. */
	while ((c = getopt_long(end - 1, argv + 1, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': a->mask |= NSM_PID; break;
		case 'n': a->mask |= NSM_NET; break;
		case 'm': a->mask |= NSM_MNT; break;
		case 'u': a->image = optarg; break;
		case 'c': a->create = true; break;
		case 'j': a->json = true; break;
		case 'h': fputs(ns_help, stdout); return EX_OK;
		default:
			fprintf(stderr, "Try 'batonctl ns --help'.\n");
			return EX_USAGE;
		}
	}
	i = optind + 1;		/* back to argv's numbering */
	if (!is_list) {
		if (i >= end) {
			fprintf(stderr, "batonctl: ns %s: give an ALLOCATION\n"
			    "Try 'batonctl ns --help'.\n", a->sub);
			return EX_USAGE;
		}
		a->id = argv[i++];
	}
	if (i < end) {
		fprintf(stderr, "batonctl: ns %s: unexpected argument '%s'\n",
		    a->sub, argv[i]);
		return EX_USAGE;
	}
	if ((is_list || is_rel) && (a->mask || a->image)) {
		fprintf(stderr, "batonctl: ns %s takes no namespace flags\n",
		    a->sub);
		return EX_USAGE;
	}
	if (a->create && !is_run) {
		fprintf(stderr, "batonctl: ns %s: --create is for run\n", a->sub);
		return EX_USAGE;
	}
	if (is_run) {
		if (end >= argc - 1) {
			fprintf(stderr, "batonctl: ns run: give -- COMMAND "
			    "[ARG]...\n");
			return EX_USAGE;
		}
		a->cmd = argv + end + 1;
	} else if (end < argc) {
		fprintf(stderr, "batonctl: ns %s: unexpected '--'\n", a->sub);
		return EX_USAGE;
	}
	return -1;
}

/* An error as one JSON object (--json) or one "batonctl: " line. */
static void
fail_out(const struct nsargs *a, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail_out(const struct nsargs *a, const char *kind, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (a->json) {
		printf("{\"ok\":false,\"command\":");
		json_put_str(stdout, a->sub);
		printf(",\"allocation_id\":");
		json_put_str(stdout, a->id);
		printf(",\"error\":");
		json_put_str(stdout, kind);
		printf(",\"message\":");
		json_put_str(stdout, msg);
		printf("}\n");
		fflush(stdout);
	} else {
		fprintf(stderr, "batonctl: %s%s%s: %s%s%s\n", a->sub,
		    a->id ? " " : "", a->id ? a->id : "", kind[0] ? kind : "",
		    kind[0] ? ": " : "", msg);
	}
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

static int
report(struct nsclient *c, int r, const struct nsargs *a)
{
	const char *msg = "";
	const char *kind = c ? nsclient_error(c, &msg) : "";

	if (kind[0]) {
		fail_out(a, kind, "%s", msg);
		return EX_FAIL;
	}
	fail_out(a, exit_for(r) == EX_UNAVAILABLE ? "socket_unavailable" : "",
	    "%s", strerror(-r));
	return exit_for(r);
}

/*
 * NS_LIST on the namespace socket: 0 and the reply frame, or an exit
 * code after reporting why (69 no provider, 1 the provider said no).
 */
static int
list_allocations(const char *sock, const struct nsargs *a,
    struct frame *ret)
{
	struct msg m = { .type = MSG_NS_LIST };
	int fd, r;

	fd = wire_connect(sock, LIST_CONNECT_MS);
	if (fd < 0) {
		fail_out(a, "socket_unavailable", "%s: %s", sock,
		    proto_strerror(fd));
		return EX_UNAVAILABLE;
	}
	r = wire_send(fd, &m, NULL, 0, LIST_CONNECT_MS);
	if (r == 0)
		r = wire_recv(fd, LIST_REPLY_MS, ret);
	close(fd);
	if (r < 0) {
		fail_out(a, "socket_unavailable", "%s: %s", sock,
		    proto_strerror(r));
		return EX_UNAVAILABLE;
	}
	if (ret->m.type == MSG_NS_LIST_REPLY)
		return 0;
	if (ret->m.type == MSG_NS_ERROR)
		fail_out(a, ret->m.u.NS_ERROR.kind, "%s",
		    ret->m.u.NS_ERROR.message);
	else
		fail_out(a, "", "unexpected reply %s",
		    msg_type_name(ret->m.type));
	frame_release(ret);
	return EX_FAIL;
}

static unsigned
mask_of(const struct strarr *names)
{
	unsigned i, m = 0;
	int k;

	for (i = 0; i < names->n; i++)
		if ((k = nsclient_kind_parse(names->v[i])) >= 0)
			m |= 1u << k;
	return m;
}

static int
cmd_list(const char *sock, const struct nsargs *a)
{
	const struct nslist *l;
	struct frame f;
	char ns[32];
	uint32_t i, j;
	int rc;

	if ((rc = list_allocations(sock, a, &f)) != 0)
		return rc;
	l = &f.m.u.NS_LIST_REPLY.allocations;
	if (a->json) {
		printf("{\"ok\":true,\"seq\":%" PRIu64 ",\"allocations\":[",
		    f.m.u.NS_LIST_REPLY.seq);
		for (i = 0; i < l->n; i++) {
			printf("%s{\"allocation_id\":", i ? "," : "");
			json_put_str(stdout, l->v[i].allocation_id);
			printf(",\"namespaces\":[");
			for (j = 0; j < l->v[i].namespaces.n; j++) {
				printf("%s", j ? "," : "");
				json_put_str(stdout, l->v[i].namespaces.v[j]);
			}
			printf("],\"uenv_image\":");
			json_put_str(stdout, l->v[i].uenv_image);
			printf(",\"alive\":%s}", l->v[i].alive ? "true" : "false");
		}
		printf("]}\n");
	} else {
		printf("%-32s %-15s %-24s %s\n", "ALLOCATION", "NAMESPACES", "UENV",
		    "ALIVE");
		for (i = 0; i < l->n; i++) {
			ns[0] = '\0';
			for (j = 0; j < l->v[i].namespaces.n; j++)
				snprintf(ns + strlen(ns), sizeof(ns) - strlen(ns),
				    "%s%s", j ? "," : "", l->v[i].namespaces.v[j]);
			printf("%-32s %-15s %-24s %s\n", l->v[i].allocation_id, ns,
			    l->v[i].uenv_image ? l->v[i].uenv_image : "-",
			    l->v[i].alive ? "yes" : "no");
		}
		printf("%u allocation(s), table seq %" PRIu64 "\n", l->n,
		    f.m.u.NS_LIST_REPLY.seq);
	}
	frame_release(&f);
	return EX_OK;
}

/*
 * run without --create: the allocation must exist.  0 (and, with no
 * flags given, a->mask set to its namespaces), or an exit code.
 */
static int
require_existing(const char *sock, struct nsargs *a)
{
	const struct nslist *l;
	struct frame f;
	uint32_t i;
	int rc;

	if ((rc = list_allocations(sock, a, &f)) != 0)
		return rc;
	l = &f.m.u.NS_LIST_REPLY.allocations;
	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].allocation_id, a->id) == 0)
			break;
	if (i == l->n) {
		frame_release(&f);
		fail_out(a, "allocation_not_found", "no such allocation (ns run "
		    "--create creates it)");
		return EX_FAIL;
	}
	if (!a->mask && !a->image)
		a->mask = mask_of(&l->v[i].namespaces);
	frame_release(&f);
	return 0;
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
	if (r < 0)
		return report(c, r, a);
	if (a->json) {
		printf("{\"ok\":true,\"allocation_id\":");
		json_put_str(stdout, a->id);
		printf(",\"namespaces\":{");
	} else {
		printf("%-12s %s\n", "allocation", a->id);
	}
	for (i = 0; i < ns.n; i++) {
		if (fstat(ns.fds[i], &st) < 0)
			continue;
		if (a->json)
			printf("%s\"%s\":%lu", i ? "," : "",
			    nsclient_kind_name(ns.kinds[i]),
			    (unsigned long)st.st_ino);
		else
			printf("%-12s %lu\n", nsclient_kind_name(ns.kinds[i]),
			    (unsigned long)st.st_ino);
	}
	if (a->json) {
		printf("},\"uenv_mount_path\":");
		json_put_str(stdout, ns.uenv_mount_path);
		printf("}\n");
	} else {
		printf("%-12s %s\n", "uenv", ns.uenv_mount_path ?
		    ns.uenv_mount_path : "-");
	}
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
	if (r < 0) {
		r = report(c, r, a);
		nsclient_close(c);
		return r;
	}
	nsclient_close(c);	/* taken: no fd of ours reaches CMD */
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fail_out(a, "", "fork: %s", strerror(errno));
		nsclient_ns_free(&ns);
		return EX_FAIL;
	}
	if (pid == 0) {
		/* Join in the child: batonctl itself stays where it was. */
		for (i = 0; i < 3; i++) {
			k = nsclient_ns_find(&ns, order[i]);
			if (k >= 0 && setns(ns.fds[k], 0) < 0) {
				fail_out(a, "", "setns %s: %s",
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
	int r, rc;

	if ((rc = parse(argc, argv, &a)) >= 0)
		return rc;
	p = malloc(sizeof(*p));
	if (!p || paths_init(p, root) < 0) {
		fprintf(stderr, "batonctl: --root too long\n");
		rc = EX_USAGE;
		goto out;
	}
	if (strcmp(a.sub, "list") == 0) {
		rc = cmd_list(p->ns_socket, &a);
		goto out;
	}
	if (strcmp(a.sub, "run") == 0 && !a.create &&
	    (rc = require_existing(p->ns_socket, &a)) != 0)
		goto out;
	r = nsclient_open(p->ns_socket, &c);
	if (r < 0) {
		fail_out(&a, "socket_unavailable", "connect %s: %s", p->ns_socket,
		    strerror(-r));
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (strcmp(a.sub, "create") == 0) {
		rc = cmd_create(c, &a);
	} else if (strcmp(a.sub, "run") == 0) {
		rc = cmd_run(c, &a);
		c = NULL;	/* closed before the command runs */
	} else {
		r = nsclient_release(c, a.id);
		if (r < 0) {
			rc = report(c, r, &a);
			if (r == -ENOENT || r == -EINVAL)
				rc = EX_FAIL;
		} else {
			if (a.json) {
				printf("{\"ok\":true,\"allocation_id\":");
				json_put_str(stdout, a.id);
				printf(",\"released\":true}\n");
			} else {
				printf("released %s\n", a.id);
			}
			rc = EX_OK;
		}
	}
out:
	nsclient_close(c);
	free(p);
	return rc;
}
