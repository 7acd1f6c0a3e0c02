/*
 * rollout: upgrade the agent on a fleet through pdsh(1)'s exec module.
 *
 * Flow: expand and validate the host list; preflight every host (status,
 * then the target binary's presence) with bounded fanout; write the
 * rollout record (each host's binary before the change); then a canary
 * batch of one host and batches of --batch-size, each one pdsh run with
 * -f FANOUT.  pdsh runs this same program per host (`rollout --exec-host
 * %h`, the host gate), which runs the operator's --remote-cmd template with
 * a batonctl subcommand, bounds it by --host-timeout-ms and prints one
 * trailer line after the host's own output; pdsh prefixes every line with
 * "host: ", which is how results are told apart.
 *
 * Invariants:
 * - Fail closed: any preflight failure (or a local setup failure) ends the
 *   run before the first upgrade is started, naming every failing host.
 * - Every failure is a per-host record (host, kind, message), never a bare
 *   exit status; the summary counts attempted / ok / failed.
 * - At most FANOUT host commands run at once (pdsh -f), and no host is
 *   started once the failures exceed --failure-budget: the host gate counts
 *   failure files that a finished host writes before its gate exits, and
 *   pdsh reuses a slot only after that exit, so the check never races.
 * - A host's handoff is never cut: pdsh is never signalled; only the one
 *   host command that outlives --host-timeout-ms is killed (batonctl
 *   upgrade, not the handoff, which the supervisor commits or rolls back)
 *   and that host is reported `unknown` with a fresh status query.
 * - SIGINT/SIGTERM stop new hosts (gate file) and wait for those in flight.
 *
 * This file holds the options, the preflight, the plan of batches and the
 * driver; the host state, the record and the report are rollout_plan.c,
 * one pdsh pass and how its output is judged rollout_run.c (shared types:
 * rollout_int.h), the host side rollout_host.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "common/atomicfile.h"
#include "common/clock.h"
#include "common/paths.h"
#include "ctl/hostlist.h"
#include "ctl/rollout.h"
#include "ctl/rollout_int.h"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: batonctl [--root DIR] rollout (-w HOSTLIST | --hosts FILE | -g GROUP)...\n"
"                [-x HOSTLIST] (--binary PATH | --rollback [--previous PATH])\n"
"                [--fanout N] [--batch-size N] [--failure-budget N]\n"
"                [--host-timeout-ms N] [--remote-cmd TEMPLATE] [--pdsh PATH]\n"
"                [--nodeset PATH] [--record FILE] [--dry-run] [--json]\n"
"\n"
"Upgrade the agent on many hosts through pdsh -R exec.  Every host is\n"
"checked first (supervisor reachable, no handoff in progress, the binary\n"
"present and executable); any failure stops the rollout before anything\n"
"changes.  Then one canary host, then batches, at most N hosts at once.\n"
"\n"
"  -w HOSTLIST           pdsh's forms, expanded by ClusterShell's nodeset:\n"
"                        node[001-128],other,rack[1-2]-n[1-4], user@host,\n"
"                        ^FILE (lists one or more a line, # comments);\n"
"                        repeatable; the hosts are a set (sorted, no repeats)\n"
"  --hosts FILE          the same as -w ^FILE\n"
"  -g, --group GROUP     the ClusterShell group @GROUP (groups.conf)\n"
"  -x, --exclude LIST    leave these hosts out (a list or ^FILE)\n"
"  --binary PATH         absolute path of the new agent on each host; %%h is\n"
"                        replaced by the host name\n"
"  --rollback            install each host's previous binary, from --previous\n"
"                        or else from the record of the last rollout (hosts\n"
"                        default to the record's); the record is kept as is\n"
"  --previous PATH       the binary to roll back to on every host (%%h allowed)\n"
"  --fanout N            hosts upgraded at once, pdsh -f (default 16, max %d)\n"
"  --batch-size N        hosts per batch after the canary (default 32)\n"
"  --failure-budget N    host failures tolerated; once exceeded no new host\n"
"                        starts (default 0); a failed canary always stops\n"
"  --host-timeout-ms N   bound on one host's command (default %d); the host\n"
"                        is then reported unknown with a fresh status\n"
"  --remote-cmd TEMPLATE how to run batonctl on a host, split on spaces,\n"
"                        %%h is the host as listed (user@host), %%u its\n"
"                        user (default \"%s\");\n"
"                        e.g. \"ip netns exec %%h batonctl --root /srv/%%h\"\n"
"  --pdsh PATH           the pdsh program (default pdsh from PATH)\n"
"  --record FILE         where each host's previous binary is kept\n"
"                        (default ROOT/%s)\n"
"  --nodeset PATH        the nodeset program (default nodeset from PATH)\n"
"  --dry-run             print the plan (batches, hosts, binaries) and stop;\n"
"                        nothing is contacted\n"
"  --json                one JSON object on stdout instead of the table\n"
"\n"
"Progress goes to stderr.  Exit status: 0 every host committed; 1 a host\n"
"rolled back, failed or is unknown (the rollout stopped on the budget or\n"
"the canary, or finished within the budget); 69 could not start (preflight\n"
"failed or pdsh missing; no host was changed); 64 usage.  Up to %d hosts,\n"
"names up to 253 characters.\n",
	    MAX_FANOUT, DEFAULT_HOST_TIMEOUT_MS, DEFAULT_TEMPLATE, RECORD_REL,
	    MAX_HOSTS);
}

/* ---- the rollout ---- */

static int
parse_uint(const char *opt, const char *s, unsigned long long lo,
    unsigned long long hi, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || !*s || s[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "batonctl: rollout: %s takes a number from %llu "
		    "to %llu\n", opt, lo, hi);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int
split_template(struct rollout *r, const char *t)
{
	char *save, *tok;

	free(r->tmplbuf);
	r->tmplbuf = strdup(t);
	if (!r->tmplbuf)
		return -ENOMEM;
	r->ntmpl = 0;
	for (tok = strtok_r(r->tmplbuf, " \t", &save); tok;
	    tok = strtok_r(NULL, " \t", &save)) {
		if (r->ntmpl == MAX_TMPL) {
			fprintf(stderr, "batonctl: rollout: --remote-cmd has more "
			    "than %d words\n", MAX_TMPL);
			return -E2BIG;
		}
		r->tmpl[r->ntmpl++] = tok;
	}
	r->tmpl[r->ntmpl] = NULL;
	if (r->ntmpl == 0) {
		fprintf(stderr, "batonctl: rollout: --remote-cmd is empty\n");
		return -EINVAL;
	}
	return 0;
}

static bool
in_path(const char *prog)
{
	char buf[PATH_MAX], *path, *dir, *save;
	bool found = false;

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0;
	path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	if (!path)
		return false;
	for (dir = strtok_r(path, ":", &save); dir && !found;
	    dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, sizeof(buf), "%s/%s", dir, prog);
		found = access(buf, X_OK) == 0;
	}
	free(path);
	return found;
}

/*
 * A host whose supervisor did not answer its status in time, or that
 * gave no result at all, is asked once more: on a loaded node one missed
 * deadline is not an outage.  One that fails twice fails the preflight.
 */
static int
retry_unreachable(struct rollout *r)
{
	size_t i, k = 0, *again;
	int rc;

	again = calloc(r->n ? r->n : 1, sizeof(*again));
	if (!again)
		return -ENOMEM;
	for (i = 0; i < r->n; i++) {
		struct host *h = &r->h[i];

		if ((h->outcome == O_PREFLIGHT_FAILED && h->kind &&
		    strcmp(h->kind, "unreachable") == 0) ||
		    (h->outcome == O_PENDING && !h->trailer)) {
			h->outcome = O_PENDING;
			h->kind = NULL;
			h->error[0] = '\0';
			again[k++] = i;
		}
	}
	rc = k ? ro_run_pass(r, P_STATUS, again, k) : 0;
	if (k)
		fprintf(stderr, "rollout: preflight asked %zu host%s again\n", k,
		    k == 1 ? "" : "s");
	free(again);
	return rc < 0 ? rc : 0;
}

/* Preflight: status everywhere, then the binary everywhere.  Fail closed. */
static int
preflight(struct rollout *r, size_t *idx)
{
	size_t i, bad = 0;
	int rc;

	for (i = 0; i < r->n; i++) {
		idx[i] = i;
		r->h[i].outcome = O_PENDING;
		r->h[i].batch = -1;	/* planned after preflight */
	}
	fprintf(stderr, "rollout: preflight on %zu hosts (fanout %u)\n", r->n,
	    r->fanout);
	if ((rc = ro_run_pass(r, P_STATUS, idx, r->n)) < 0)
		return rc;
	if ((rc = retry_unreachable(r)) < 0)
		return rc;
	for (i = 0; i < r->n; i++)
		if (!r->h[i].trailer && r->h[i].outcome == O_PENDING)
			ro_fail_host(&r->h[i], O_PREFLIGHT_FAILED, "no-result",
			    r->h[i].lasterr[0] ? r->h[i].lasterr :
			    "no answer through pdsh");
	if ((rc = ro_run_pass(r, P_PROBE, idx, r->n)) < 0)
		return rc;
	for (i = 0; i < r->n; i++) {
		struct host *h = &r->h[i];

		if (!h->trailer && h->outcome != O_PREFLIGHT_FAILED)
			ro_fail_host(h, O_PREFLIGHT_FAILED, "no-result",
			    h->lasterr[0] ? h->lasterr : "no answer through pdsh");
		if (h->outcome == O_PREFLIGHT_FAILED)
			bad++;
	}
	if (bad == 0)
		return 0;
	fprintf(stderr, "rollout: preflight failed on %zu of %zu hosts; "
	    "nothing was changed:\n", bad, r->n);
	for (i = 0; i < r->n; i++)
		if (r->h[i].outcome == O_PREFLIGHT_FAILED)
			fprintf(stderr, "rollout:   %s: %s: %s\n", r->h[i].name,
			    r->h[i].kind, r->h[i].error);
	return -EAGAIN;
}

/* Hosts whose result is unknown: ask their supervisor what happened. */
static void
recheck(struct rollout *r, size_t *idx)
{
	size_t i, k = 0;

	for (i = 0; i < r->n; i++)
		if (r->h[i].outcome == O_UNKNOWN)
			idx[k++] = i;
	if (k == 0)
		return;
	fprintf(stderr, "rollout: checking the state of %zu unknown host(s)\n",
	    k);
	(void)ro_run_pass(r, P_RECHECK, idx, k);
}

/* The batch a host at position i falls in: 0 canary, then batch_size each. */
static void
plan_batches(struct rollout *r)
{
	size_t i;

	r->nbatches = r->n > 1 ? 1 + (int)((r->n - 1 + r->batch_size - 1) /
	    r->batch_size) : 1;
	for (i = 0; i < r->n; i++)
		r->h[i].batch = i == 0 ? 0 : 1 + (int)((i - 1) / r->batch_size);
}

static int
run_batches(struct rollout *r, size_t *idx)
{
	size_t i, start, end, k;
	char label[32];
	bool stop = false;
	int b;

	plan_batches(r);
	for (b = 0, start = 0; b < r->nbatches; b++, start = end) {
		end = b == 0 ? 1 : start + r->batch_size;
		if (end > r->n)
			end = r->n;
		r->batch = b;
		if (ro_interrupted || r->failures > r->budget ||
		    (b == 1 && r->failures > 0))
			stop = true;
		if (stop) {
			for (i = start; i < r->n; i++)
				ro_fail_host(&r->h[i], O_SKIPPED, NULL, ro_interrupted ?
				    "interrupted" : b == 1 ? "canary failed" :
				    "failure budget spent");
			break;
		}
		ro_batch_label(r, b, label, sizeof(label));
		fprintf(stderr, "rollout: %s: %zu host(s), %s..%s\n", label,
		    end - start, r->h[start].name, r->h[end - 1].name);
		for (i = start, k = 0; i < end; i++)
			idx[k++] = i;
		if (ro_run_pass(r, P_UPGRADE, idx, k) < 0)
			return -EIO;
		for (i = start; i < end; i++) {
			struct host *h = &r->h[i];

			if (h->trailer)
				continue;
			ro_fail_host(h, O_UNKNOWN, "no-result", h->lasterr[0] ?
			    h->lasterr : "no result through pdsh");
			r->attempted++;
			r->done++;
			r->failures++;
			ro_progress(r, h);
		}
	}
	recheck(r, idx);
	return 0;
}

/* --dry-run: the plan, nothing run; one line per host on stdout. */
static int
print_plan(struct rollout *r)
{
	char label[32], cmd[1024];
	size_t i, o = 0;
	int b = -1;

	plan_batches(r);
	for (i = 0; i < (size_t)r->ntmpl && o < sizeof(cmd); i++)
		o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, "%s%s",
		    i ? " " : "", r->tmpl[i]);
	printf("rollout plan: %zu host(s), canary then %d batch(es) of up "
	    "to %u, fanout %u, failure budget %u, host timeout %" PRIu64
	    " ms\nremote command: %s upgrade --json --binary BINARY\n",
	    r->n, r->nbatches - 1, r->batch_size, r->fanout, r->budget,
	    r->host_timeout_ms, cmd);
	printf("%-6s %-40s %s\n", "BATCH", "HOST", "BINARY");
	for (i = 0; i < r->n; i++) {
		if (r->h[i].batch != b) {
			b = r->h[i].batch;
			ro_batch_label(r, b, label, sizeof(label));
		}
		printf("%-6s %-40s %s\n", b == 0 ? "canary" : label + 6,
		    r->h[i].name, r->h[i].binary);
	}
	return EX_ALL_COMMITTED;
}

int
rollout_main(const char *root, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hosts", required_argument, NULL, 'H' },
		{ "exclude", required_argument, NULL, 'x' },
		{ "group", required_argument, NULL, 'g' + 256 },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "nodeset", required_argument, NULL, 'N' },
		{ "binary", required_argument, NULL, 'b' },
		{ "rollback", no_argument, NULL, 'R' },
		{ "previous", required_argument, NULL, 'p' },
		{ "fanout", required_argument, NULL, 'f' },
		{ "batch-size", required_argument, NULL, 's' },
		{ "failure-budget", required_argument, NULL, 'B' },
		{ "host-timeout-ms", required_argument, NULL, 't' },
		{ "remote-cmd", required_argument, NULL, 'c' },
		{ "pdsh", required_argument, NULL, 'P' },
		{ "record", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		/* host side, run by pdsh or through --remote-cmd */
		{ "exec-host", required_argument, NULL, 'X' },
		{ "gate", required_argument, NULL, 'G' },
		{ "budget", required_argument, NULL, 'b' + 256 },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "binary-map", required_argument, NULL, 'M' },
		{ "probe-binary", required_argument, NULL, 'Q' },
		{ NULL, 0, NULL, 0 },
	};
	struct rollout r = { .root = root, .pdsh = "pdsh", .fanout = 16,
	    .batch_size = 32, .host_timeout_ms = DEFAULT_HOST_TIMEOUT_MS };
	const char *items[64], *exclude = NULL, *nodeset = NULL;
	char groups[8][128], hosts_item[PATH_MAX + 2] = "", bin[BIN_MAX];
	size_t nitems = 0, ngroups = 0;
	bool dry_run = false;
	const char *binary = NULL;
	const char *previous = NULL, *record = NULL, *tmpl = DEFAULT_TEMPLATE;
	const char *xhost = NULL, *gate = NULL, *map = NULL;
	unsigned long long v, gbudget = 0, gtimeout = STATUS_TIMEOUT_MS;
	struct sigaction sa = { .sa_handler = ro_on_signal };
	size_t *idx = NULL, i;
	int c, rc = EX_USAGE_, e;
	ssize_t len;

	optind = 0;
	while ((c = getopt_long(argc, argv, "+w:x:g:", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
		case 'w':
			if (nitems == sizeof(items) / sizeof(items[0])) {
				fprintf(stderr, "batonctl: rollout: too many -w/--hosts\n");
				return EX_USAGE_;
			}
			/* --hosts FILE is pdsh's -w ^FILE (once). */
			if (c == 'H' && (hosts_item[0] || snprintf(hosts_item,
			    sizeof(hosts_item), "^%s", optarg) >=
			    (int)sizeof(hosts_item))) {
				fprintf(stderr, "batonctl: rollout: one --hosts "
				    "FILE (more with -w ^FILE)\n");
				return EX_USAGE_;
			}
			if (c == 'H')
				items[nitems] = hosts_item;
			if (c == 'w')
				items[nitems] = optarg;
			nitems++;
			break;
		case 'x': exclude = optarg; break;
		case 'g':
		case 'g' + 256:
			/* pdsh -g GROUP: a ClusterShell group, @GROUP. */
			if (ngroups == 8 || nitems == sizeof(items) /
			    sizeof(items[0]) || strlen(optarg) >= 120) {
				fprintf(stderr, "batonctl: rollout: too many or too "
				    "long -g\n");
				return EX_USAGE_;
			}
			snprintf(groups[ngroups], sizeof(groups[0]), "@%s", optarg);
			items[nitems++] = groups[ngroups++];
			break;
		case 'n': dry_run = true; break;
		case 'N': nodeset = optarg; break;
		case 'b': binary = optarg; break;
		case 'R': r.rollback = true; break;
		case 'p': previous = optarg; break;
		case 'f':
			if (parse_uint("--fanout", optarg, 1, MAX_FANOUT, &v) < 0)
				return EX_USAGE_;
			r.fanout = (unsigned)v;
			break;
		case 's':
			if (parse_uint("--batch-size", optarg, 1, MAX_HOSTS,
			    &v) < 0)
				return EX_USAGE_;
			r.batch_size = (unsigned)v;
			break;
		case 'B':
			if (parse_uint("--failure-budget", optarg, 0, MAX_HOSTS,
			    &v) < 0)
				return EX_USAGE_;
			r.budget = (unsigned)v;
			break;
		case 't':
			if (parse_uint("--host-timeout-ms", optarg, 100,
			    24ULL * 3600 * 1000, &v) < 0)
				return EX_USAGE_;
			r.host_timeout_ms = v;
			break;
		case 'c': tmpl = optarg; break;
		case 'P': r.pdsh = optarg; break;
		case 'r': record = optarg; break;
		case 'j': r.json = true; break;
		case 'h': usage(stdout); return 0;
		case 'X': xhost = optarg; break;
		case 'G': gate = optarg; break;
		case 'b' + 256:
			if (parse_uint("--budget", optarg, 0, MAX_HOSTS,
			    &gbudget) < 0)
				return EX_USAGE_;
			break;
		case 'T':
			if (parse_uint("--timeout-ms", optarg, 1,
			    24ULL * 3600 * 1000, &gtimeout) < 0)
				return EX_USAGE_;
			break;
		case 'M': map = optarg; break;
		case 'Q': return rollout_probe_binary(optarg);
		default:
			fprintf(stderr, "batonctl: rollout: see 'batonctl rollout "
			    "--help'\n");
			return EX_USAGE_;
		}
	}
	if (xhost)
		return rollout_exec_host(xhost, gate, (unsigned)gbudget, gtimeout,
		    map, argv + optind, argc - optind);
	if (optind != argc) {
		fprintf(stderr, "batonctl: rollout: unexpected argument '%s'\n",
		    argv[optind]);
		return EX_USAGE_;
	}
	if (!!binary == r.rollback || (previous && !r.rollback)) {
		fprintf(stderr, "batonctl: rollout: give --binary PATH, or "
		    "--rollback [--previous PATH]\n");
		return EX_USAGE_;
	}
	if (!r.rollback && nitems == 0) {
		fprintf(stderr, "batonctl: rollout: give the hosts with -w "
		    "HOSTLIST, -w ^FILE, --hosts FILE or -g GROUP\n");
		return EX_USAGE_;
	}
	r.t0 = clock_mono_ms();
	r.dir[0] = '\0';
	if (split_template(&r, tmpl) < 0)
		goto out;
	if (record)
		snprintf(r.record, sizeof(r.record), "%s", record);
	else if (paths_join(r.record, root, RECORD_REL) < 0) {
		fprintf(stderr, "batonctl: rollout: --root too long\n");
		goto out;
	}
	e = nitems ? hostlist_expand(nodeset, items, nitems, exclude, &r.hl) :
	    ro_record_hosts(&r);
	if (e < 0 || ro_hosts_from_list(&r) < 0 ||
	    !(idx = calloc(r.n ? r.n : 1, sizeof(*idx)))) {
		/* A bad list is usage; no nodeset (or file), no memory: 69. */
		if (e != -EINVAL && e != -E2BIG)
			rc = EX_NOT_STARTED;
		goto out;
	}
	if (r.rollback && !previous && ro_load_record(&r) < 0) {
		rc = EX_NOT_STARTED;
		goto out;
	}
	if (r.n == 0) {
		fprintf(stderr, "batonctl: rollout: no hosts\n");
		goto out;
	}
	for (i = 0; i < r.n && (binary || previous); i++) {
		e = ro_host_binary(binary ? binary : previous,
		    hostlist_host(r.h[i].name), bin, sizeof(bin));
		if (e == 0)
			e = ro_set_str(&r.h[i].binary, bin);
		if (e < 0) {
			fprintf(stderr, "batonctl: rollout: %s '%s': an absolute "
			    "path of [A-Za-z0-9/._+-] and %%h\n", binary ?
			    "--binary" : "--previous", binary ? binary : previous);
			goto out;
		}
	}

	if (dry_run) {
		rc = print_plan(&r);
		goto out;
	}

	/* From here on a failure is "could not start". */
	rc = EX_NOT_STARTED;
	if (!in_path(r.pdsh)) {
		fprintf(stderr, "batonctl: rollout: '%s' not found (install "
		    "pdsh: apt-get install pdsh)\n", r.pdsh);
		goto out;
	}
	len = readlink("/proc/self/exe", r.self, sizeof(r.self) - 1);
	if (len <= 0 || (size_t)len >= sizeof(r.self) - 1) {
		fprintf(stderr, "batonctl: rollout: readlink /proc/self/exe: "
		    "%s\n", len < 0 ? strerror(errno) : "too long");
		goto out;
	}
	r.self[len] = '\0';
	snprintf(r.dir, sizeof(r.dir), "%s/baton-rollout.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(r.dir)) {
		fprintf(stderr, "batonctl: rollout: mkdtemp '%s': %s\n", r.dir,
		    strerror(errno));
		r.dir[0] = '\0';
		goto out;
	}
	snprintf(r.map, sizeof(r.map), "%s/binaries", r.dir);
	snprintf(r.stopfile, sizeof(r.stopfile), "%s/stop", r.dir);
	if ((e = ro_write_map(&r)) < 0) {
		fprintf(stderr, "batonctl: rollout: write '%s': %s\n", r.map,
		    strerror(-e));
		goto out;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	e = preflight(&r, idx);
	if (e < 0 || ro_interrupted) {
		if (e != -EAGAIN)
			fprintf(stderr, "batonctl: rollout: preflight: %s\n",
			    ro_interrupted ? "interrupted" : strerror(-e));
		ro_report(&r, "could-not-start", EX_NOT_STARTED);
		goto out;
	}
	if (!r.rollback && ro_write_record(&r) < 0) {
		ro_report(&r, "could-not-start", EX_NOT_STARTED);
		goto out;
	}
	if (run_batches(&r, idx) < 0)
		fprintf(stderr, "batonctl: rollout: pdsh could not run; hosts "
		    "without a result are reported unknown\n");
	{
		size_t ok, failed, unknown, skipped;

		ro_count(&r, &ok, &failed, &unknown, &skipped);
		if (ok == r.n) {
			rc = EX_ALL_COMMITTED;
			ro_report(&r, "committed-all", rc);
		} else {
			rc = EX_HOST_FAILED;
			ro_report(&r, ro_interrupted ? "interrupted" : skipped ?
			    "stopped-on-failures" : "failed-within-budget", rc);
		}
	}
out:
	if (r.dir[0]) {
		char p[PATH_MAX + 32];
		DIR *d = opendir(r.dir);
		struct dirent *de;

		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.') {
				snprintf(p, sizeof(p), "%s/%s", r.dir, de->d_name);
				unlink(p);
			}
		if (d)
			closedir(d);
		rmdir(r.dir);
	}
	if (r.h)
		for (i = 0; i < r.n; i++) {
			free(r.h[i].json);
			if (r.h[i].binary != ro_no_str)
				free(r.h[i].binary);
			if (r.h[i].prev_binary != ro_no_str)
				free(r.h[i].prev_binary);
		}
	free(r.h);
	free(idx);
	free(r.tmplbuf);
	hostlist_free(&r.hl);
	return rc;
}

