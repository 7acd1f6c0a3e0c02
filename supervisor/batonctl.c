/*
 * batonctl: the operator's command line.  Talks to the supervisor's
 * control socket (status, upgrade, journal) and to the agent's namespace
 * socket (status, ns ...).  Human output is a short table; --json is one
 * JSON object for programs.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/version.h"
#include "common/json.h"
#include "common/paths.h"
#include "proto/wire.h"
#include "supervisor/ctl_ns.h"
#include "supervisor/rollout.h"

#define EX_USAGE_ 64
#define EX_UNAVAILABLE_ 69
#define CONNECT_MS 2000
#define REPLY_MS 10000
#define MAX_ARGS 28
#define MAX_ENV 32

static struct baton_paths paths;

static void
usage(FILE *f)
{
	fprintf(f,
"usage: batonctl [--root DIR] COMMAND [ARGS]\n"
"\n"
"commands:\n"
"  status [--json]                 supervisor, agent and namespace state\n"
"  upgrade [--binary PATH] [--arg ARG]... [--env K=V]...\n"
"          [--deadline-ms N] [--drain-grace-ms N] [--json]\n"
"                                  hand the agent over to a new binary; exits\n"
"                                  0 committed, 1 rolled back, 69 could not run\n"
"  journal [--json]                the handoff in progress and the last outcome\n"
"  ns create ALLOCATION [--pid] [--net] [--mount] [--uenv IMAGE]\n"
"  ns run ALLOCATION -- COMMAND [ARG]...\n"
"  ns release ALLOCATION\n"
"  rollout -w HOSTS --binary PATH [--fanout N] ...  upgrade many hosts\n"
"                                  through pdsh (batonctl rollout --help)\n"
"\n"
"  --root DIR   prefix for every default path (default /)\n"
"  --help, --version\n");
}

/* One request, one reply on the supervisor's socket. */
static int
ask_supervisor(const struct msg *req, int timeout_ms, struct frame *ret)
{
	int fd, r;

	fd = wire_connect(paths.supervisor_socket, CONNECT_MS);
	if (fd < 0) {
		fprintf(stderr, "batonctl: cannot reach the supervisor at %s: %s\n",
		    paths.supervisor_socket, proto_strerror(fd));
		return -EX_UNAVAILABLE_;
	}
	r = wire_send(fd, req, NULL, 0, CONNECT_MS);
	if (r == 0)
		r = wire_recv(fd, timeout_ms, ret);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "batonctl: supervisor: %s\n", proto_strerror(r));
		return -EX_UNAVAILABLE_;
	}
	if (ret->m.type == MSG_ERROR) {
		fprintf(stderr, "batonctl: %s: %s\n", ret->m.u.ERROR.code,
		    ret->m.u.ERROR.message);
		frame_release(ret);
		return -EX_UNAVAILABLE_;
	}
	return 0;
}

/* STATUS on the namespace socket; 0 and a frame, or -errno. */
static int
ask_agent(struct frame *ret)
{
	struct msg m = { .type = MSG_STATUS };
	int fd, r;

	fd = wire_connect(paths.ns_socket, CONNECT_MS);
	if (fd < 0)
		return fd;
	r = wire_send(fd, &m, NULL, 0, CONNECT_MS);
	if (r == 0)
		r = wire_recv(fd, REPLY_MS, ret);
	close(fd);
	if (r == 0 && ret->m.type != MSG_STATUS_REPLY) {
		frame_release(ret);
		r = -EPROTO;
	}
	return r;
}

static bool
want_json(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			return true;
		fprintf(stderr, "batonctl: %s: unknown option '%s'\n", argv[0],
		    argv[i]);
		exit(EX_USAGE_);
	}
	return false;
}

static int
cmd_status(int argc, char **argv)
{
	struct msg req = { .type = MSG_CTL_STATUS };
	struct frame sf, af;
	bool json = want_json(argc, argv);
	int rs, ra;

	rs = ask_supervisor(&req, REPLY_MS, &sf);
	ra = ask_agent(&af);
	if (rs < 0 && ra < 0)
		return -rs;
	if (json) {
		printf("{\"supervisor\":");
		if (rs == 0) {
			const struct msg_body_65 *s = &sf.m.u.CTL_STATUS_REPLY;

			printf("{\"pid\":%u,\"state\":", s->supervisor_pid);
			json_put_str(stdout, s->state);
			printf(",\"agent_pid\":%u,\"agent_binary\":", s->agent_pid);
			json_put_str(stdout, s->agent_binary);
			printf(",\"handoff_id\":");
			json_put_str(stdout, s->handoff_id);
			printf(",\"handoffs_committed\":%" PRIu64
			    ",\"handoffs_rolled_back\":%" PRIu64
			    ",\"agent_restarts\":%" PRIu64 ",\"uptime_ms\":%" PRIu64
			    ",\"build_id\":", s->handoffs_committed,
			    s->handoffs_rolled_back, s->agent_restarts,
			    s->uptime_ms);
			json_put_str(stdout, s->build_id);
			printf("}");
		} else {
			printf("null");
		}
		printf(",\"agent\":");
		if (ra == 0) {
			const struct msg_body_38 *a = &af.m.u.STATUS_REPLY;

			printf("{\"pid\":%u,\"build_id\":", a->pid);
			json_put_str(stdout, a->build_id);
			printf(",\"generation\":%" PRIu64 ",\"allocations\":%"
			    PRIu64 ",\"ready\":%s}", a->generation, a->allocations,
			    a->ready ? "true" : "false");
		} else {
			printf("null");
		}
		printf("}\n");
	} else {
		if (rs == 0) {
			const struct msg_body_65 *s = &sf.m.u.CTL_STATUS_REPLY;

			printf("%-12s pid %-8u state %-9s uptime %.1fs\n",
			    "supervisor", s->supervisor_pid, s->state,
			    (double)s->uptime_ms / 1000.0);
			printf("%-12s pid %-8u %s\n", "agent", s->agent_pid,
			    s->agent_binary);
			printf("%-12s committed %" PRIu64 "  rolled back %" PRIu64
			    "  agent restarts %" PRIu64 "%s%s\n", "handoffs",
			    s->handoffs_committed, s->handoffs_rolled_back,
			    s->agent_restarts, s->handoff_id ? "  in progress " :
			    "", s->handoff_id ? s->handoff_id : "");
		} else {
			printf("%-12s unreachable\n", "supervisor");
		}
		if (ra == 0) {
			const struct msg_body_38 *a = &af.m.u.STATUS_REPLY;

			printf("%-12s pid %-8u generation %" PRIu64 "  allocations %"
			    PRIu64 "  ready %s  (%s)\n", "namespaces", a->pid,
			    a->generation, a->allocations, a->ready ? "yes" : "no",
			    a->build_id);
		} else {
			printf("%-12s unreachable: %s\n", "namespaces",
			    proto_strerror(ra));
		}
	}
	if (rs == 0)
		frame_release(&sf);
	if (ra == 0)
		frame_release(&af);
	return rs == 0 && ra == 0 ? 0 : 1;
}

static int
parse_ms(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || !*s || s[0] == '-' || v < 100 ||
	    v > 24ULL * 3600 * 1000) {
		fprintf(stderr, "batonctl: %s takes milliseconds from 100 to "
		    "86400000\n", opt);
		return -1;
	}
	*out = v;
	return 0;
}

static int
cmd_upgrade(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "binary", required_argument, NULL, 'b' },
		{ "arg", required_argument, NULL, 'a' },
		{ "env", required_argument, NULL, 'e' },
		{ "deadline-ms", required_argument, NULL, 'd' },
		{ "drain-grace-ms", required_argument, NULL, 'g' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct msg req = { .type = MSG_CTL_UPGRADE };
	const char *args[MAX_ARGS], *env[MAX_ENV];
	char binary[PATH_MAX];
	const struct msg_body_67 *r;
	struct frame f;
	unsigned nargs = 0, nenv = 0;
	uint64_t deadline = 0, grace = 0;
	bool json = false, have_binary = false;
	int c, rc, timeout;

	optind = 0;	/* GNU: rescan from argv[1] of the subcommand */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (!realpath(optarg, binary)) {
				fprintf(stderr, "batonctl: --binary %s: %s\n", optarg,
				    strerror(errno));
				return EX_USAGE_;
			}
			have_binary = true;
			break;
		case 'a':
			if (nargs == MAX_ARGS) {
				fprintf(stderr, "batonctl: too many --arg\n");
				return EX_USAGE_;
			}
			args[nargs++] = optarg;
			break;
		case 'e':
			if (nenv == MAX_ENV || !strchr(optarg, '=') ||
			    optarg[0] == '=') {
				fprintf(stderr, "batonctl: --env takes K=V (at most "
				    "%d)\n", MAX_ENV);
				return EX_USAGE_;
			}
			env[nenv++] = optarg;
			break;
		case 'd':
			if (parse_ms("--deadline-ms", optarg, &deadline) < 0)
				return EX_USAGE_;
			break;
		case 'g':
			if (parse_ms("--drain-grace-ms", optarg, &grace) < 0)
				return EX_USAGE_;
			break;
		case 'j': json = true; break;
		default: return EX_USAGE_;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "batonctl: upgrade: unexpected argument '%s'\n",
		    argv[optind]);
		return EX_USAGE_;
	}
	req.u.CTL_UPGRADE.binary = have_binary ? binary : NULL;
	req.u.CTL_UPGRADE.args.n = nargs;
	req.u.CTL_UPGRADE.args.v = args;
	req.u.CTL_UPGRADE.env.n = nenv;
	req.u.CTL_UPGRADE.env.v = env;
	req.u.CTL_UPGRADE.deadline_ms = deadline;
	req.u.CTL_UPGRADE.drain_grace_ms = grace;
	/* The supervisor bounds the handoff; wait a little longer than it. */
	timeout = (int)((deadline ? deadline : 300000) + 60000);
	rc = ask_supervisor(&req, timeout, &f);
	if (rc < 0)
		return -rc;
	if (f.m.type != MSG_CTL_UPGRADE_RESULT) {
		fprintf(stderr, "batonctl: unexpected reply %s\n",
		    msg_type_name(f.m.type));
		frame_release(&f);
		return EX_UNAVAILABLE_;
	}
	r = &f.m.u.CTL_UPGRADE_RESULT;
	if (json) {
		printf("{\"handoff_id\":");
		json_put_str(stdout, r->handoff_id);
		printf(",\"committed\":%s,\"abort_reason\":",
		    r->committed ? "true" : "false");
		json_put_str(stdout, r->abort_reason);
		printf(",\"old_pid\":%u,\"new_pid\":%u,\"hello_ms\":%" PRIu64
		    ",\"spawn_ms\":%" PRIu64 ",\"drain_ms\":%" PRIu64
		    ",\"seal_ms\":%" PRIu64 ",\"begin_ms\":%" PRIu64
		    ",\"commit_ms\":%" PRIu64 ",\"total_ms\":%" PRIu64 "}\n",
		    r->old_pid, r->new_pid, r->hello_ms, r->spawn_ms, r->drain_ms,
		    r->seal_ms, r->begin_ms, r->commit_ms, r->total_ms);
	} else {
		printf("handoff %s %s\n", r->handoff_id,
		    r->committed ? "committed" : "ROLLED BACK");
		if (!r->committed)
			printf("  reason    %s\n", r->abort_reason ?
			    r->abort_reason : "-");
		printf("  pid       %u -> %u\n", r->old_pid, r->new_pid);
		printf("  phases    hello %" PRIu64 " ms, spawn %" PRIu64
		    " ms, drain %" PRIu64 " ms, seal %" PRIu64 " ms, begin %"
		    PRIu64 " ms, commit %" PRIu64 " ms\n", r->hello_ms,
		    r->spawn_ms, r->drain_ms, r->seal_ms, r->begin_ms,
		    r->commit_ms);
		printf("  total     %" PRIu64 " ms\n", r->total_ms);
	}
	rc = r->committed ? 0 : 1;
	frame_release(&f);
	return rc;
}

static int
cmd_journal(int argc, char **argv)
{
	struct msg req = { .type = MSG_CTL_JOURNAL };
	const struct msg_body_69 *j;
	bool json = want_json(argc, argv);
	struct frame f;
	int rc;

	rc = ask_supervisor(&req, REPLY_MS, &f);
	if (rc < 0)
		return -rc;
	j = &f.m.u.CTL_JOURNAL_REPLY;
	if (json) {
		printf("{\"active\":%s,\"handoff_id\":", j->active ? "true" :
		    "false");
		json_put_str(stdout, j->handoff_id);
		printf(",\"phase\":");
		json_put_str(stdout, j->phase);
		printf(",\"incumbent_pid\":%u,\"successor_pid\":%u,\"binary\":",
		    j->incumbent_pid, j->successor_pid);
		json_put_str(stdout, j->binary);
		printf(",\"started_at_ms\":%" PRIu64 ",\"last_outcome\":",
		    j->started_at_ms);
		json_put_str(stdout, j->last_outcome);
		printf("}\n");
	} else {
		if (j->active)
			printf("in progress  %s  phase %s  incumbent %u  successor "
			    "%u  %s\n", j->handoff_id, j->phase, j->incumbent_pid,
			    j->successor_pid, j->binary ? j->binary : "");
		else
			printf("no handoff in progress\n");
		printf("last         %s\n", j->last_outcome ? j->last_outcome :
		    "none");
	}
	frame_release(&f);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *root = "/";
	int c;

	/* Options before the command only: stop at the first non-option. */
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("batonctl %s\n", baton_version); return 0;
		default: usage(stderr); return EX_USAGE_;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE_;
	}
	if (paths_init(&paths, root) < 0) {
		fprintf(stderr, "batonctl: --root too long\n");
		return EX_USAGE_;
	}
	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "status") == 0)
		return cmd_status(argc, argv);
	if (strcmp(argv[0], "upgrade") == 0)
		return cmd_upgrade(argc, argv);
	if (strcmp(argv[0], "journal") == 0)
		return cmd_journal(argc, argv);
	if (strcmp(argv[0], "ns") == 0)
		return ctl_ns_main(root, argc, argv);
	if (strcmp(argv[0], "rollout") == 0)
		return rollout_main(root, argc, argv);
	fprintf(stderr, "batonctl: unknown command '%s'\n", argv[0]);
	usage(stderr);
	return EX_USAGE_;
}
