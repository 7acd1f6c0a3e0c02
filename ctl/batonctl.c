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

#include "common/clock.h"
#include "common/version.h"
#include "common/json.h"
#include "common/paths.h"
#include "transport/wire.h"
#include "ctl/ctl_ns.h"
#include "ctl/rollout.h"

#define EX_USAGE_ 64
#define EX_UNAVAILABLE_ 69
#define CONNECT_MS 2000
#define REPLY_MS 10000
/*
 * status answers within 100 ms whatever the agent does: the supervisor
 * answers from its loop at once, and the agent gets a short probe (in
 * back-off nobody accepts on the namespace socket, so a STATUS there
 * would sit in the backlog until an agent comes).
 */
#define STATUS_SUP_MS 40
#define STATUS_AGENT_MS 40
/* upgrade waits out an agent's start-up instead of failing at once. */
#define STARTUP_WAIT_MS 30000
#define STARTUP_POLL_MS 100
#define DAY_MS (24ULL * 3600 * 1000)
#define MAX_ARGS 28
#define MAX_ENV 32

static struct baton_paths paths;

static void
usage(FILE *f)
{
	fprintf(f,
"usage: batonctl [--root DIR] COMMAND [ARGS]\n"
"\n"
"commands (each answers --help):\n"
"  status [--json] [--agent-wait-ms N]\n"
"                                  supervisor, agent and namespace state\n"
"  upgrade [--binary PATH] [--arg ARG]... [--env K=V]...\n"
"          [--deadline-ms N] [--drain-grace-ms N] [--json]\n"
"                                  hand the agent over to a new binary, or\n"
"                                  replace it when none serves\n"
"  journal [--json]                the handoff in progress and the last outcome\n"
"  ns list [--json]                the agent's allocations\n"
"  ns create ALLOCATION [--pid] [--net] [--mount] [--uenv IMAGE] [--json]\n"
"  ns run ALLOCATION [--create] [--pid] [--net] [--mount] [--uenv IMAGE]\n"
"         [--json] -- COMMAND [ARG]...\n"
"  ns release ALLOCATION [--json]\n"
"  rollout -w HOSTS --binary PATH [--fanout N] ...  upgrade many hosts\n"
"                                  through pdsh (batonctl rollout --help)\n"
"\n"
"  --root DIR   prefix for every default path (default /); absolute\n"
"  --help, --version\n"
"\n"
"Exit status: 0 ok, 1 rolled back (upgrade) or failed (ns, rollout),\n"
"64 usage, 69 unavailable or could not run, 78 configuration.\n");
}

static const char status_help[] =
"usage: batonctl [--root DIR] status [--json] [--agent-wait-ms N]\n"
"\n"
"The supervisor's state and the agent's answer to STATUS.  Answers within\n"
"100 ms whatever the agent does: an agent that does not answer within\n"
"40 ms is reported as not answering, next to the supervisor's view.\n"
"\n"
"  --json              one JSON object:\n"
"                      {\"supervisor\":{...}|null,\"agent\":{...}|null}\n"
"  --agent-wait-ms N   wait up to N ms (1..60000) for the agent instead\n"
"                      (rollout's preflight, on a loaded host)\n"
"\n"
"Exit status: 0 an agent serves, 69 the supervisor or the agent is\n"
"unavailable (the output still says what answered), 64 usage.\n";

static const char upgrade_help[] =
"usage: batonctl [--root DIR] upgrade [--binary PATH] [--arg ARG]...\n"
"                [--env K=V]... [--deadline-ms N] [--drain-grace-ms N] [--json]\n"
"\n"
"Hand the running agent over to a new binary (default: the current one)\n"
"and wait for the outcome.  When no agent serves (the supervisor is in\n"
"back-off after crashes) the supervisor cold-starts the given binary\n"
"instead and reports whether it became ready (a \"replace\").  While an\n"
"agent is starting, upgrade waits up to 30 s for it to serve.\n"
"\n"
"  --binary PATH        the new agent binary (must exist and be executable)\n"
"  --arg ARG            an argument for it (repeatable; default: as before)\n"
"  --env K=V            an environment variable for it (repeatable)\n"
"  --deadline-ms N      bound on the whole handoff (100..86400000)\n"
"  --drain-grace-ms N   how long the old agent drains (100..86400000)\n"
"  --json               one JSON object with handoff_id, committed,\n"
"                       abort_reason, old_pid, new_pid and phase times\n"
"\n"
"Exit status: 0 committed, 1 rolled back, 64 usage, 69 could not run\n"
"(no supervisor, another upgrade in progress, binary missing or refused).\n";

static const char journal_help[] =
"usage: batonctl [--root DIR] journal [--json]\n"
"\n"
"The handoff in progress, if any, and the last handoff's id and outcome.\n"
"\n"
"  --json   one JSON object: active, handoff_id, phase, incumbent_pid,\n"
"           successor_pid, binary, started_at_ms, last_handoff_id,\n"
"           last_outcome, last_abort_reason, last_agent_exit\n"
"\n"
"Exit status: 0, 64 usage, 69 the supervisor is unavailable.\n";

static int
parse_num(const char *opt, const char *s, uint64_t lo, uint64_t hi,
    uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || !*s || s[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "batonctl: %s takes milliseconds from %llu to "
		    "%llu\n", opt, (unsigned long long)lo,
		    (unsigned long long)hi);
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * getopt_long for a subcommand: --help prints help on stdout (returns
 * 'h'); an unknown option gets getopt's "batonctl: ..." line and a hint.
 */
static int
sub_getopt(int argc, char **argv, const struct option *opts, const char *cmd)
{
	int c = getopt_long(argc, argv, "", opts, NULL);

	if (c == '?')
		fprintf(stderr, "Try 'batonctl %s --help'.\n", cmd);
	return c;
}

/* A subcommand that takes only --json (and --help). */
static int
json_only(int argc, char **argv, const char *cmd, const char *help,
    bool *json)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;
	while ((c = sub_getopt(argc, argv, opts, cmd)) != -1) {
		switch (c) {
		case 'j': *json = true; break;
		case 'h': fputs(help, stdout); return 0;
		default: return EX_USAGE_;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "batonctl: %s: unexpected argument '%s'\n", cmd,
		    argv[optind]);
		return EX_USAGE_;
	}
	return -1;
}

/*
 * One request, one reply on the supervisor's socket.  An ERROR reply is
 * printed, and its code copied to ret_code when given (then the frame
 * is released and -69 returned).
 */
static int
ask_supervisor_code(const struct msg *req, int connect_ms, int timeout_ms,
    struct frame *ret, char *ret_code, size_t code_len)
{
	int fd, r;

	if (ret_code)
		ret_code[0] = '\0';
	fd = wire_connect(paths.supervisor_socket, connect_ms);
	if (fd < 0) {
		fprintf(stderr, "batonctl: cannot reach the supervisor at %s: %s\n",
		    paths.supervisor_socket, proto_strerror(fd));
		return -EX_UNAVAILABLE_;
	}
	r = wire_send(fd, req, NULL, 0, connect_ms);
	if (r == 0)
		r = wire_recv(fd, timeout_ms, ret);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "batonctl: supervisor: %s\n", proto_strerror(r));
		return -EX_UNAVAILABLE_;
	}
	if (ret->m.type == MSG_ERROR) {
		if (ret_code)
			snprintf(ret_code, code_len, "%s", ret->m.u.ERROR.code);
		if (!ret_code || strcmp(ret->m.u.ERROR.code, "starting") != 0)
			fprintf(stderr, "batonctl: %s: %s\n", ret->m.u.ERROR.code,
			    ret->m.u.ERROR.message);
		frame_release(ret);
		return -EX_UNAVAILABLE_;
	}
	return 0;
}

static int
ask_supervisor(const struct msg *req, int timeout_ms, struct frame *ret)
{
	return ask_supervisor_code(req, CONNECT_MS, timeout_ms, ret, NULL, 0);
}

/* STATUS on the namespace socket within ms; 0 and a frame, or -errno. */
static int
ask_agent(int ms, struct frame *ret)
{
	struct msg m = { .type = MSG_STATUS };
	int fd, r;

	fd = wire_connect(paths.ns_socket, ms);
	if (fd < 0)
		return fd;
	r = wire_send(fd, &m, NULL, 0, ms);
	if (r == 0)
		r = wire_recv(fd, ms, ret);
	close(fd);
	if (r == 0 && ret->m.type != MSG_STATUS_REPLY) {
		frame_release(ret);
		r = -EPROTO;
	}
	return r;
}

static int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "agent-wait-ms", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct msg req = { .type = MSG_CTL_STATUS };
	struct frame sf, af;
	bool json = false;
	uint64_t wait = STATUS_AGENT_MS;
	int rs, ra, c;

	optind = 0;
	while ((c = sub_getopt(argc, argv, opts, "status")) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'w':
			if (parse_num("--agent-wait-ms", optarg, 1, 60000,
			    &wait) < 0)
				return EX_USAGE_;
			break;
		case 'h': fputs(status_help, stdout); return 0;
		default: return EX_USAGE_;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "batonctl: status: unexpected argument '%s'\n",
		    argv[optind]);
		return EX_USAGE_;
	}
	rs = ask_supervisor_code(&req, STATUS_SUP_MS, STATUS_SUP_MS * 5, &sf,
	    NULL, 0);
	ra = ask_agent((int)wait, &af);
	if (json) {
		printf("{\"supervisor\":");
		if (rs == 0) {
			const msg_CTL_STATUS_REPLY_t *s = &sf.m.u.CTL_STATUS_REPLY;

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
			const msg_STATUS_REPLY_t *a = &af.m.u.STATUS_REPLY;

			printf("{\"pid\":%u,\"build_id\":", a->pid);
			json_put_str(stdout, a->build_id);
			printf(",\"generation\":%" PRIu64 ",\"allocations\":%"
			    PRIu64 ",\"ready\":%s}", a->generation, a->allocations,
			    a->ready ? "true" : "false");
		} else {
			printf("null,\"agent_error\":");
			json_put_str(stdout, ra == -ETIMEDOUT ?
			    "not answering" : proto_strerror(ra));
		}
		printf("}\n");
	} else {
		if (rs == 0) {
			const msg_CTL_STATUS_REPLY_t *s = &sf.m.u.CTL_STATUS_REPLY;

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
			const msg_STATUS_REPLY_t *a = &af.m.u.STATUS_REPLY;

			printf("%-12s pid %-8u generation %" PRIu64 "  allocations %"
			    PRIu64 "  ready %s  (%s)\n", "namespaces", a->pid,
			    a->generation, a->allocations, a->ready ? "yes" : "no",
			    a->build_id);
		} else if (ra == -ETIMEDOUT) {
			printf("%-12s not answering within %d ms\n", "namespaces",
			    (int)wait);
		} else {
			printf("%-12s unreachable: %s\n", "namespaces",
			    proto_strerror(ra));
		}
	}
	if (rs == 0)
		frame_release(&sf);
	if (ra == 0)
		frame_release(&af);
	return rs == 0 && ra == 0 ? 0 : EX_UNAVAILABLE_;
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct msg req = { .type = MSG_CTL_UPGRADE };
	uint64_t t0 = clock_mono_ms();
	char code[32];
	const char *args[MAX_ARGS], *env[MAX_ENV];
	char binary[PATH_MAX];
	const msg_CTL_UPGRADE_RESULT_t *r;
	struct frame f;
	unsigned nargs = 0, nenv = 0;
	uint64_t deadline = 0, grace = 0;
	bool json = false, have_binary = false;
	int c, rc, timeout;

	optind = 0;	/* GNU: rescan from argv[1] of the subcommand */
	while ((c = sub_getopt(argc, argv, opts, "upgrade")) != -1) {
		switch (c) {
		case 'b':
			/* A binary that is not there: could not run (69). */
			if (!realpath(optarg, binary)) {
				fprintf(stderr, "batonctl: --binary '%s': %s\n",
				    optarg, strerror(errno));
				return EX_UNAVAILABLE_;
			}
			if (access(binary, X_OK) < 0) {
				fprintf(stderr, "batonctl: --binary '%s': %s\n",
				    binary, strerror(errno));
				return EX_UNAVAILABLE_;
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
			if (parse_num("--deadline-ms", optarg, 100, DAY_MS,
			    &deadline) < 0)
				return EX_USAGE_;
			break;
		case 'g':
			if (parse_num("--drain-grace-ms", optarg, 100, DAY_MS,
			    &grace) < 0)
				return EX_USAGE_;
			break;
		case 'j': json = true; break;
		case 'h': fputs(upgrade_help, stdout); return 0;
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
	/* An agent still starting: wait for it to serve, then hand over. */
	while ((rc = ask_supervisor_code(&req, CONNECT_MS, timeout, &f, code,
	    sizeof(code))) < 0 && strcmp(code, "starting") == 0) {
		if (clock_mono_ms() - t0 > STARTUP_WAIT_MS) {
			fprintf(stderr, "batonctl: starting: the agent did not "
			    "start serving within %d ms\n", STARTUP_WAIT_MS);
			break;
		}
		usleep(STARTUP_POLL_MS * 1000);
	}
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
	const msg_CTL_JOURNAL_REPLY_t *j;
	char id[64];
	const char *outcome = NULL;
	bool json = false;
	struct frame f;
	int rc;

	if ((rc = json_only(argc, argv, "journal", journal_help, &json)) >= 0)
		return rc;
	rc = ask_supervisor(&req, REPLY_MS, &f);
	if (rc < 0)
		return -rc;
	j = &f.m.u.CTL_JOURNAL_REPLY;
	/* last_outcome is "<handoff id> <phase>": two fields in JSON. */
	id[0] = '\0';
	if (j->last_outcome) {
		const char *sp = strchr(j->last_outcome, ' ');

		snprintf(id, sizeof(id), "%.*s", sp ? (int)(sp - j->last_outcome) :
		    0, j->last_outcome);
		outcome = sp ? sp + 1 : j->last_outcome;
	}
	if (json) {
		printf("{\"active\":%s,\"handoff_id\":", j->active ? "true" :
		    "false");
		json_put_str(stdout, j->handoff_id);
		printf(",\"phase\":");
		json_put_str(stdout, j->phase);
		printf(",\"incumbent_pid\":%u,\"successor_pid\":%u,\"binary\":",
		    j->incumbent_pid, j->successor_pid);
		json_put_str(stdout, j->binary);
		printf(",\"started_at_ms\":%" PRIu64 ",\"last_handoff_id\":",
		    j->started_at_ms);
		json_put_str(stdout, id[0] ? id : NULL);
		printf(",\"last_outcome\":");
		json_put_str(stdout, outcome);
		printf(",\"last_abort_reason\":");
		json_put_str(stdout, j->last_abort_reason);
		printf(",\"last_agent_exit\":");
		json_put_str(stdout, j->last_agent_exit);
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
		if (j->last_abort_reason)
			printf("  reason     %s\n", j->last_abort_reason);
		if (j->last_agent_exit)
			printf("agent exit   %s\n", j->last_agent_exit);
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
	const char *root = "/", *why;
	int c;

	/* getopt names the program by argv[0]: one prefix, "batonctl: ". */
	argv[0] = (char *)"batonctl";
	/* Options before the command only: stop at the first non-option. */
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("batonctl %s\n", baton_version); return 0;
		default:
			fprintf(stderr, "Try 'batonctl --help'.\n");
			return EX_USAGE_;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE_;
	}
	if (paths_check_root(root, &why) == -EINVAL) {
		fprintf(stderr, "batonctl: --root '%s': %s\n", root, why);
		return EX_USAGE_;
	}
	if (paths_init(&paths, root) < 0) {
		fprintf(stderr, "batonctl: --root too long\n");
		return EX_USAGE_;
	}
	argc -= optind;
	argv += optind;
	/* The subcommand's getopt messages say "batonctl: " too. */
	{
		const char *cmd = argv[0];

		argv[0] = (char *)"batonctl";
		if (strcmp(cmd, "status") == 0)
			return cmd_status(argc, argv);
		if (strcmp(cmd, "upgrade") == 0)
			return cmd_upgrade(argc, argv);
		if (strcmp(cmd, "journal") == 0)
			return cmd_journal(argc, argv);
		if (strcmp(cmd, "ns") == 0)
			return ctl_ns_main(root, argc, argv);
		if (strcmp(cmd, "rollout") == 0)
			return rollout_main(root, argc, argv);
		argv[0] = (char *)cmd;
	}
	fprintf(stderr, "batonctl: unknown command '%s'\nTry 'batonctl "
	    "--help'.\n", argv[0]);
	return EX_USAGE_;
}
