/*
 * baton-supervisor: command line, then the supervisor core (sup.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/version.h"
#include "common/log.h"
#include "crashpoints/crashpoint.h"
#include "supervisor/sup.h"

#define MAX_ALLOW 32

static void
usage(FILE *f)
{
	fprintf(f,
"usage: baton-supervisor [--root DIR] [--agent PATH] [--agent-arg ARG]...\n"
"                        [--listen NAME=PATH]... [--journal PATH]\n"
"                        [--metrics-file PATH] [--allow-uid UID]...\n"
"                        [--deadline-ms N] [--drain-grace-ms N]\n"
"                        [--allow-binary-dir DIR] [--no-standby]\n"
"                        [--no-seccomp]\n"
"\n"
"Holds the agent's listening sockets, runs baton-agent, and replaces it with\n"
"a new binary without refusing a request (batonctl upgrade, or SIGHUP).\n"
"Runs in the foreground and logs to stderr; SIGTERM/SIGINT stop the agent\n"
"gracefully, then the supervisor.\n"
"\n"
"  --root DIR           prefix for every default path (default /)\n"
"  --agent PATH         agent binary, absolute (default: baton-agent next to\n"
"                       this program)\n"
"  --agent-arg ARG      extra argument for the agent (repeatable); the agent\n"
"                       always gets --root DIR first\n"
"  --listen NAME=PATH   a listening socket to hold (repeatable); default\n"
"                       ns=ROOT/run/pact/handoff.sock.  Listeners passed by\n"
"                       systemd socket activation take precedence.\n"
"  --journal PATH       handoff journal (ROOT/var/lib/baton/journal)\n"
"  --metrics-file PATH  Prometheus textfile (ROOT/var/lib/prometheus/node-exporter/baton.prom,\n"
"                       node_exporter's textfile directory on Debian)\n"
"  --allow-uid UID      also accept this uid on the control socket\n"
"  --deadline-ms N      default handoff deadline (300000)\n"
"  --drain-grace-ms N   default drain grace (60000)\n"
"  --allow-binary-dir DIR  exec agent binaries only from inside DIR\n"
"  --no-standby         do not keep a successor started ahead of the next\n"
"                       upgrade (one process less; each upgrade then waits\n"
"                       for the agent's exec and start-up)\n"
"  --no-seccomp         do not install the seccomp filter (debugging)\n"
"  --help, --version\n"
"\n"
"Exit status: 0 stopped cleanly, 64 usage, 69 unavailable, 78 configuration.\n");
}

static int
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || !*s || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

/*
 * The metrics file's directory: made 0755 when missing so that
 * node_exporter's textfile collector (another user) can list and read
 * it (the default is that collector's directory on Debian).  An explicit
 * --metrics-file in a directory others cannot read is a configuration
 * error; an existing default one that others cannot read gets a warning.
 */
static int
metrics_dir_ready(const char *file, bool explicit)
{
	char dir[PATH_MAX], *slash;
	struct stat st;

	if (file[0] != '/') {
		fprintf(stderr, "baton-supervisor: --metrics-file '%s': must be "
		    "an absolute path\n", file);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", file);
	slash = strrchr(dir, '/');
	*(slash == dir ? slash + 1 : slash) = '\0';
	if (paths_mkdirs(dir, 0755) < 0) {
		fprintf(stderr, "baton-supervisor: --metrics-file: mkdir '%s': "
		    "%s\n", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || (st.st_mode & 0005) != 0005) {
		if (explicit) {
			fprintf(stderr, "baton-supervisor: --metrics-file: '%s' is "
			    "mode %04o; a collector running as another user "
			    "cannot read it (chmod 0755)\n", dir,
			    (unsigned)(st.st_mode & 07777));
			return -1;
		}
		log_warn("metrics.unreadable", "others cannot read the default "
		    "metrics directory; give node_exporter's textfile "
		    "directory with --metrics-file", "dir=%s", dir);
	}
	return 0;
}

static int
default_agent(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n < 0)
		return -1;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return snprintf(out, len, "%s/baton-agent", self) >= (int)len ? -1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "agent", required_argument, NULL, 'a' },
		{ "agent-arg", required_argument, NULL, 'A' },
		{ "listen", required_argument, NULL, 'l' },
		{ "journal", required_argument, NULL, 'j' },
		{ "metrics-file", required_argument, NULL, 'm' },
		{ "allow-uid", required_argument, NULL, 'U' },
		{ "deadline-ms", required_argument, NULL, 'd' },
		{ "drain-grace-ms", required_argument, NULL, 'g' },
		{ "no-seccomp", no_argument, NULL, 'S' },
		{ "no-standby", no_argument, NULL, 'N' },
		{ "allow-binary-dir", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct sup_config cfg;
	const char *root = "/", *journal = NULL, *metrics = NULL, *agent = NULL;
	uid_t uids[MAX_ALLOW];
	const char *why;
	uint64_t v;
	unsigned i;
	char *eq;
	int c, r;

	log_init("supervisor");
	crashpoint_set_role("supervisor");
	cfg.deadline_ms = 300000;
	cfg.drain_grace_ms = 60000;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root = optarg; break;
		case 'a': agent = optarg; break;
		case 'A':
			if (cfg.n_agent_args == AGENT_MAX_ARGS - 4) {
				fprintf(stderr, "baton-supervisor: too many "
				    "--agent-arg\n");
				return 64;
			}
			cfg.agent_args[cfg.n_agent_args++] = optarg;
			break;
		case 'l':
			eq = strchr(optarg, '=');
			if (!eq || eq == optarg || eq[1] != '/' ||
			    (size_t)(eq - optarg) >= LISTENFDS_NAME_MAX ||
			    strlen(eq + 1) >= PATH_MAX ||
			    cfg.n_listen == LISTENFDS_MAX ||
			    memchr(optarg, ':', (size_t)(eq - optarg))) {
				fprintf(stderr, "baton-supervisor: --listen takes "
				    "NAME=/absolute/path (at most %d)\n",
				    LISTENFDS_MAX);
				return 64;
			}
			snprintf(cfg.listen_names[cfg.n_listen], LISTENFDS_NAME_MAX,
			    "%.*s", (int)(eq - optarg), optarg);
			snprintf(cfg.listen_paths[cfg.n_listen], PATH_MAX, "%s",
			    eq + 1);
			cfg.n_listen++;
			break;
		case 'j': journal = optarg; break;
		case 'm': metrics = optarg; break;
		case 'U':
			if (parse_u64(optarg, &v) < 0 || v > 0xfffffffeULL ||
			    cfg.n_allow_uids == MAX_ALLOW) {
				fprintf(stderr, "baton-supervisor: bad --allow-uid "
				    "'%s'\n", optarg);
				return 64;
			}
			uids[cfg.n_allow_uids++] = (uid_t)v;
			break;
		case 'd':
		case 'g':
			if (parse_u64(optarg, &v) < 0 || v < 100 ||
			    v > 24ULL * 3600 * 1000) {
				fprintf(stderr, "baton-supervisor: --%s takes "
				    "milliseconds from 100 to 86400000\n",
				    c == 'd' ? "deadline-ms" : "drain-grace-ms");
				return 64;
			}
			if (c == 'd')
				cfg.deadline_ms = v;
			else
				cfg.drain_grace_ms = v;
			break;
		case 'S': cfg.no_seccomp = true; break;
		case 'N': cfg.no_standby = true; break;
		case 'B':
			if (optarg[0] != '/') {
				fprintf(stderr, "baton-supervisor: --allow-binary-dir "
				    "must be absolute\n");
				return 64;
			}
			cfg.allow_binary_dir = optarg;
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("baton-supervisor %s\n", baton_version); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "baton-supervisor: unexpected argument '%s'\n",
		    argv[optind]);
		return 64;
	}
	if ((r = paths_check_root(root, &why)) < 0) {
		fprintf(stderr, "baton-supervisor: --root '%s': %s\n", root, why);
		return r == -EINVAL ? 64 : 78;
	}
	if (paths_init(&cfg.paths, root) < 0) {
		fprintf(stderr, "baton-supervisor: --root too long\n");
		return 64;
	}
	if (journal)
		snprintf(cfg.paths.journal, sizeof(cfg.paths.journal), "%s",
		    journal);
	if (metrics)
		snprintf(cfg.paths.metrics, sizeof(cfg.paths.metrics), "%s",
		    metrics);
	if (metrics_dir_ready(cfg.paths.metrics, metrics != NULL) < 0)
		return 78;
	if (agent) {
		if (agent[0] != '/') {
			fprintf(stderr, "baton-supervisor: --agent must be an "
			    "absolute path\n");
			return 64;
		}
		snprintf(cfg.agent_path, sizeof(cfg.agent_path), "%s", agent);
	} else if (default_agent(cfg.agent_path, sizeof(cfg.agent_path)) < 0) {
		fprintf(stderr, "baton-supervisor: cannot locate baton-agent; "
		    "use --agent\n");
		return 78;
	}
	if (cfg.n_listen == 0) {
		strcpy(cfg.listen_names[0], "ns");
		strcpy(cfg.listen_paths[0], cfg.paths.ns_socket);
		cfg.n_listen = 1;
	}
	for (i = 0; i < cfg.n_listen; i++)
		if (strcmp(cfg.listen_names[i], "ns") == 0)
			break;
	if (i == cfg.n_listen) {
		fprintf(stderr, "baton-supervisor: one --listen must be named "
		    "\"ns\" (the namespace socket)\n");
		return 64;
	}
	cfg.allow_uids = uids;
	return sup_run(&cfg);
}
