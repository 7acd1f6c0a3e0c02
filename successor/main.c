/*
 * baton-agent: the supervised node agent.  Parses the command line and
 * runs the agent (successor/agent.c) in the role its environment gives.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/version.h"
#include "common/log.h"
#include "common/proc.h"
#include "successor/agent.h"
#include "successor/nsstate.h"

#define MAX_ALLOW 32

static void
usage(FILE *f)
{
	fprintf(f,
"usage: baton-agent [--root DIR] [--uenv-dir DIR] [--cgroup-root DIR]\n"
"                   [--alloc-cgroup PATH|none]\n"
"                   [--state-dir DIR] [--control-socket PATH]\n"
"                   [--ns-socket PATH] [--allow-uid UID]... [--allow-gid GID]...\n"
"                   [--max-conns N] [--max-pending N] [--max-allocations N]\n"
"                   [--max-subscribers N] [--max-frame-bytes N]\n"
"                   [--max-buffered-bytes N] [--max-conns-per-uid N]\n"
"                   [--max-pending-per-uid N] [--no-seccomp]\n"
"\n"
"The baton node agent: serves the namespace socket (run/pact/handoff.sock)\n"
"and hands its state over to a successor when baton-supervisor upgrades it.\n"
"Normally started by baton-supervisor; run alone it binds its own sockets.\n"
"\n"
"  --root DIR            prefix for every default path (default /)\n"
"  --uenv-dir DIR        where uenv images are taken from (var/lib/pact/uenv)\n"
"  --cgroup-root DIR     cgroup v2 mount to watch for empty allocation scopes\n"
"                        (default: no watch)\n"
"  --alloc-cgroup PATH   cgroup (in cgroup v2 and name=systemd) that holds\n"
"                        each allocation's init as PATH/<id>, outside the\n"
"                        service (default: <parent of our cgroup>/\n"
"                        baton-allocations.slice; none: stay in ours)\n"
"  --state-dir DIR       data-dir lock and allocation table (var/lib/baton)\n"
"  --control-socket PATH supervisor control socket (run/baton/agent.sock)\n"
"  --ns-socket PATH      namespace socket when not inherited\n"
"  --allow-uid UID       also accept this uid (root and our uid always are)\n"
"  --allow-gid GID       namespace socket: also accept this gid\n"
"  --max-conns N         namespace-socket connections (1024)\n"
"  --max-pending N       namespace creations in flight (64)\n"
"  --max-allocations N   allocations held, at most 131072 (4096)\n"
"  --max-subscribers N   SUBSCRIBE connections (64)\n"
"  --max-frame-bytes N   request frame body, at most 1048576 (65536)\n"
"  --max-buffered-bytes N  answers queued per connection (262144)\n"
"  --max-conns-per-uid N    connections of one peer uid (max-conns / 2)\n"
"  --max-pending-per-uid N  creations in flight of one uid (max-pending / 2)\n"
"                        (root and the agent's own uid: global limits only)\n"
"                        (at a limit the peer gets limit_exceeded)\n"
"  --no-seccomp          do not install the seccomp filter (debugging)\n"
"  --help, --version\n"
"\n"
"Exit status: 0 ok, 64 usage, 69 unavailable (lock held), 75 successor\n"
"abandoned, 78 configuration, 99 injected crash (test builds).\n");
}

/*
 * A supervised agent's stderr is the supervisor's relay pipe (agentlog);
 * its stdout is the supervisor's own output.  If the relay stalls or its
 * reader dies, log lines go there instead of being lost.
 */
static void
log_fallback_to_stdout(void)
{
	struct stat e, o;

	if (fstat(STDERR_FILENO, &e) == 0 && S_ISFIFO(e.st_mode) &&
	    fstat(STDOUT_FILENO, &o) == 0 &&
	    (o.st_dev != e.st_dev || o.st_ino != e.st_ino))
		log_set_fallback(STDOUT_FILENO);
}

static int
parse_id(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || !*s || v > 0xfffffffeUL)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "uenv-dir", required_argument, NULL, 'u' },
		{ "cgroup-root", required_argument, NULL, 'c' },
		{ "alloc-cgroup", required_argument, NULL, 'A' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "control-socket", required_argument, NULL, 'C' },
		{ "ns-socket", required_argument, NULL, 'n' },
		{ "allow-uid", required_argument, NULL, 'U' },
		{ "allow-gid", required_argument, NULL, 'G' },
		{ "no-seccomp", no_argument, NULL, 'S' },
		{ "max-conns", required_argument, NULL, 1 },
		{ "max-pending", required_argument, NULL, 2 },
		{ "max-allocations", required_argument, NULL, 3 },
		{ "max-subscribers", required_argument, NULL, 4 },
		{ "max-frame-bytes", required_argument, NULL, 5 },
		{ "max-buffered-bytes", required_argument, NULL, 6 },
		{ "max-conns-per-uid", required_argument, NULL, 7 },
		{ "max-pending-per-uid", required_argument, NULL, 8 },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *root = "/", *uenv = NULL, *state = NULL, *ctl = NULL,
	    *nss = NULL;
	struct agent_config cfg = { 0 };
	uid_t uids[MAX_ALLOW];
	gid_t gids[MAX_ALLOW];
	const char *why;
	unsigned id;
	int c, r;

	log_init("agent");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root = optarg; break;
		case 'u': uenv = optarg; break;
		case 'c': cfg.cgroup_root = optarg; break;
		case 'A': cfg.alloc_cgroup = optarg; break;
		case 's': state = optarg; break;
		case 'C': ctl = optarg; break;
		case 'n': nss = optarg; break;
		case 'S': cfg.no_seccomp = true; break;
		case 'U':
		case 'G':
			if (parse_id(optarg, &id) < 0 ||
			    (c == 'U' ? cfg.n_allow_uids : cfg.n_allow_gids) ==
			    MAX_ALLOW) {
				fprintf(stderr, "baton-agent: bad or too many "
				    "--allow-%s '%s'\n", c == 'U' ? "uid" : "gid",
				    optarg);
				return 64;
			}
			if (c == 'U')
				uids[cfg.n_allow_uids++] = id;
			else
				gids[cfg.n_allow_gids++] = id;
			break;
		case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8:
			/* A table must read back what it was let hold. */
			if (parse_id(optarg, &id) < 0 || id == 0 ||
			    id > (c == 5 ? 1048576u : c == 3 ?
			    NSSTATE_MAX_ALLOCS : 1u << 30)) {
				fprintf(stderr, "baton-agent: bad limit '%s' for "
				    "--%s\n", optarg, opts[9 + c].name); /* 10.. */
				return 64;
			}
			*(c == 1 ? &cfg.max_conns : c == 2 ? &cfg.max_pending :
			    c == 3 ? &cfg.max_allocations : c == 4 ?
			    &cfg.max_subscribers : c == 5 ? &cfg.max_frame :
			    c == 6 ? &cfg.max_buffered : c == 7 ?
			    &cfg.max_conns_per_uid : &cfg.max_pending_per_uid) = id;
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("baton-agent %s\n", baton_version); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "baton-agent: unexpected argument '%s'\n",
		    argv[optind]);
		return 64;
	}
	if ((r = paths_check_root(root, &why)) < 0) {
		fprintf(stderr, "baton-agent: --root '%s': %s\n", root, why);
		return r == -EINVAL ? 64 : 78;
	}
	/* Named on the command line, so they must be there. */
	for (c = 0; c < 2; c++) {
		const char *dir = c == 0 ? uenv : cfg.cgroup_root;

		if (dir && paths_check_dir(dir, &why) < 0) {
			fprintf(stderr, "baton-agent: --%s '%s': %s\n", c == 0 ?
			    "uenv-dir" : "cgroup-root", dir, why);
			return 78;
		}
	}
	if (paths_init(&cfg.paths, root) < 0) {
		fprintf(stderr, "baton-agent: --root too long\n");
		return 64;
	}
#define OVERRIDE(field, val) \
	if ((val) && snprintf(cfg.paths.field, sizeof(cfg.paths.field), "%s", \
	    (val)) >= (int)sizeof(cfg.paths.field)) { \
		fprintf(stderr, "baton-agent: path too long\n"); \
		return 64; \
	}
	OVERRIDE(uenv_dir, uenv);
	OVERRIDE(agent_socket, ctl);
	OVERRIDE(ns_socket, nss);
	if (state) {
		OVERRIDE(state_dir, state);
		snprintf(cfg.paths.allocations, sizeof(cfg.paths.allocations),
		    "%s/allocations", state);
	}
#undef OVERRIDE
	cfg.allow_uids = uids;
	cfg.allow_gids = gids;
	log_fallback_to_stdout();
	/* One fd per client; a successor receives them all at once. */
	proc_raise_nofile();
	return agent_run(&cfg);
}
