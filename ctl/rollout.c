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

#define EX_ALL_COMMITTED 0
#define EX_HOST_FAILED 1
#define EX_NOT_STARTED 69	/* could not start: unavailable, as README */
#define EX_USAGE_ 64

#define MAX_HOSTS HOSTLIST_MAX
#define ERR_MAX 256
#define MAX_FANOUT 512
#define LINE_MAX_ 16384
#define RECORD_MAX ATOMICFILE_MAX
#define STATUS_TIMEOUT_MS 30000	/* preflight and re-check commands */
#define DEFAULT_TEMPLATE "ssh -o BatchMode=yes %h batonctl"
#define DEFAULT_HOST_TIMEOUT_MS 360000	/* upgrade deadline 300 s + 60 s */
#define RECORD_REL "var/lib/baton/rollout.record"
#define RECORD_MAGIC "baton-rollout-record 1\n"

enum outcome {
	O_PENDING,
	O_READY,		/* preflight passed, not started yet */
	O_PREFLIGHT_FAILED,
	O_COMMITTED,
	O_ROLLED_BACK,
	O_FAILED,		/* the upgrade could not run */
	O_UNKNOWN,		/* timed out or no result: see the re-check */
	O_SKIPPED,		/* never started: budget spent or interrupted */
};

static const char *const outcome_names[] = {
	"pending", "not-started", "preflight-failed", "committed",
	"rolled-back", "failed", "unknown", "skipped",
};

enum pass { P_STATUS, P_PROBE, P_UPGRADE, P_RECHECK };

struct host {
	char name[HOST_MAX];
	int batch;			/* 0 canary, -1 not planned */
	enum outcome outcome;
	const char *kind;		/* error kind, NULL when none */
	char error[ERR_MAX];
	char abort_reason[ERR_MAX];
	char handoff_id[64];
	unsigned old_pid, new_pid, agent_pid;
	uint64_t ms, handoff_ms;
	/* Owned strings ("" until set): 100,000 hosts stay ~1 KiB each. */
	char *prev_binary;		/* agent_binary at preflight */
	char *binary;			/* what this run installs */
	char *json;			/* last JSON line of this pass, owned */
	char lasterr[ERR_MAX];		/* last stderr line of this pass */
	bool trailer;
};

struct rollout {
	const char *root;
	const char *pdsh;
	char *tmpl[MAX_TMPL + 1];
	int ntmpl;
	char *tmplbuf;
	unsigned fanout, batch_size, budget;
	uint64_t host_timeout_ms;
	bool json, rollback;
	char record[PATH_MAX];
	struct host *h;
	size_t n;
	struct hostlist hl;		/* r->h[i].name is hl.v[i] */
	char self[PATH_MAX];
	char dir[PATH_MAX];		/* private: gate files, binary map */
	char map[PATH_MAX + 16];
	char stopfile[PATH_MAX + 16];
	enum pass pass;
	size_t done, attempted;
	unsigned failures;
	int batch, nbatches;
	uint64_t t0;
};

static volatile sig_atomic_t interrupted;

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

/* ---- host list (hostlist.c, through nodeset) ---- */

static struct host *
find_host(struct rollout *r, const char *name, size_t len)
{
	long i = hostlist_find(&r->hl, name, len);

	return i < 0 ? NULL : &r->h[i];
}

static char no_str[1];

/* r->h from r->hl: one host per name, in nodeset's order. */
static int
hosts_from_list(struct rollout *r)
{
	size_t i;

	r->h = calloc(r->hl.n ? r->hl.n : 1, sizeof(*r->h));
	if (!r->h)
		return -ENOMEM;
	for (i = 0; i < r->hl.n; i++) {
		snprintf(r->h[i].name, HOST_MAX, "%s", r->hl.v[i]);
		r->h[i].binary = r->h[i].prev_binary = no_str;
	}
	r->n = r->hl.n;
	return 0;
}

/* *dst = a copy of src; no_str, what hosts start with, is not freed. */
static int
set_str(char **dst, const char *src)
{
	char *p = strdup(src);

	if (!p)
		return -ENOMEM;
	if (*dst != no_str)
		free(*dst);
	*dst = p;
	return 0;
}

/* The hosts of the record, for --rollback without a host list. */
static int
record_hosts(struct rollout *r)
{
	char *data = NULL, *line, *save, *tab;
	size_t len;
	int rc;

	rc = atomicfile_read(r->record, RECORD_MAX, (void **)&data, &len);
	if (rc < 0)
		return 0;	/* load_record says why */
	data[len ? len - 1 : 0] = '\0';
	for (line = strtok_r(data, "\n", &save); line && rc >= 0;
	    line = strtok_r(NULL, "\n", &save))
		if ((tab = strchr(line, '\t'))) {
			*tab = '\0';
			rc = hostlist_push(&r->hl, line);
		}
	free(data);
	return rc < 0 ? rc : hostlist_index(&r->hl);
}

/* ---- binaries and the record ---- */

/* Absolute, shell-safe (the template may be ssh), %h -> host. */
static int
host_binary(const char *tmpl, const char *host, char *out, size_t len)
{
	size_t o = 0;
	const char *p;

	if (tmpl[0] != '/')
		return -EINVAL;
	for (p = tmpl; *p; p++) {
		const char *add = NULL;
		char one[2] = { *p, '\0' };

		if (p[0] == '%' && p[1] == 'h') {
			add = host;
			p++;
		} else if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
		    "WXYZ0123456789/._+-", *p)) {
			add = one;
		} else {
			return -EINVAL;
		}
		if (o + strlen(add) >= len)
			return -ENAMETOOLONG;
		memcpy(out + o, add, strlen(add));
		o += strlen(add);
	}
	out[o] = '\0';
	return 0;
}

/*
 * A re-run of the same rollout (after fixing a failed host) finds hosts
 * already on the new binary; their "previous" stays what the earlier run
 * recorded, so --rollback still goes back past the new binary.
 */
static void
keep_earlier_previous(struct rollout *r)
{
	char *data = NULL, *line, *save, *f1, *f2;
	struct host *h;
	size_t len;

	if (atomicfile_read(r->record, RECORD_MAX, (void **)&data, &len) < 0)
		return;
	data[len ? len - 1 : 0] = '\0';
	if (strncmp(data, RECORD_MAGIC, strlen(RECORD_MAGIC) - 1) != 0)
		goto out;
	for (line = strtok_r(data + strlen(RECORD_MAGIC) - 1, "\n", &save);
	    line; line = strtok_r(NULL, "\n", &save)) {
		if (!(f1 = strchr(line, '\t')) || !(f2 = strchr(f1 + 1, '\t')))
			continue;
		*f1 = *f2 = '\0';
		h = find_host(r, line, strlen(line));
		if (h && strcmp(h->prev_binary, h->binary) == 0 &&
		    strcmp(f2 + 1, h->binary) == 0)
			set_str(&h->prev_binary, f1 + 1);
	}
out:
	free(data);
}

static int
write_record(struct rollout *r)
{
	char *buf = NULL;
	size_t i, o = 0, cap = RECORD_MAX;
	int rc;

	keep_earlier_previous(r);
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	o += (size_t)snprintf(buf, cap, "%s", RECORD_MAGIC);
	for (i = 0; i < r->n; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s\t%s\t%s\n",
		    r->h[i].name, r->h[i].prev_binary, r->h[i].binary);
	rc = paths_mkparent(r->record, 0755);
	if (rc >= 0)
		rc = atomicfile_write(r->record, buf, o, 0600);
	if (rc < 0)
		fprintf(stderr, "batonctl: rollout: write '%s': %s\n", r->record,
		    strerror(-rc));
	free(buf);
	return rc;
}

/*
 * Rollback targets from the record.  With no host list the record's hosts
 * are the fleet; a listed host missing from the record is an error.
 */
static int
load_record(struct rollout *r)
{
	char *data = NULL, *line, *save, *f1, *f2;
	struct host *h;
	size_t len, i;
	int rc;

	rc = atomicfile_read(r->record, RECORD_MAX, (void **)&data, &len);
	if (rc < 0) {
		fprintf(stderr, "batonctl: rollout: --rollback: read '%s': %s "
		    "(give --previous PATH)\n", r->record, rc == -EBADMSG ?
		    "corrupt record" : strerror(-rc));
		return rc;
	}
	data[len ? len - 1 : 0] = '\0';	/* the last '\n' */
	if (strncmp(data, RECORD_MAGIC, strlen(RECORD_MAGIC) - 1) != 0) {
		fprintf(stderr, "batonctl: rollout: '%s' is not a rollout "
		    "record\n", r->record);
		rc = -EBADMSG;
		goto out;
	}
	for (line = strtok_r(data + strlen(RECORD_MAGIC) - 1, "\n", &save);
	    line; line = strtok_r(NULL, "\n", &save)) {
		if (!(f1 = strchr(line, '\t')) || !(f2 = strchr(f1 + 1, '\t')))
			continue;
		*f1 = *f2 = '\0';
		h = find_host(r, line, strlen(line));
		if (h)
			set_str(&h->binary, f1 + 1);
	}
	rc = 0;
	for (i = 0; i < r->n; i++)
		if (!r->h[i].binary[0]) {
			fprintf(stderr, "batonctl: rollout: %s: no previous "
			    "binary in '%s' (give --previous PATH)\n",
			    r->h[i].name, r->record);
			rc = -ENOENT;
		}
out:
	free(data);
	return rc;
}

/* ---- running pdsh ---- */

/* Copy s doubling '%' so pdsh's exec module passes it through. */
static char *
pct_escape(const char *s)
{
	size_t i, o = 0;
	char *out = malloc(strlen(s) * 2 + 1);

	if (!out)
		return NULL;
	for (i = 0; s[i]; i++) {
		out[o++] = s[i];
		if (s[i] == '%')
			out[o++] = '%';
	}
	out[o] = '\0';
	return out;
}

/* "canary", then "batch 1/N": the numbering of the table's BATCH column. */
static void
batch_label(const struct rollout *r, int b, char *buf, size_t len)
{
	if (b == 0)
		snprintf(buf, len, "canary");
	else
		snprintf(buf, len, "batch %d/%d", b, r->nbatches - 1);
}

static void
progress(struct rollout *r, const struct host *h)
{
	char label[32];

	batch_label(r, r->batch, label, sizeof(label));
	fprintf(stderr, "rollout: [%s, %zu/%zu done, %u failed] %s %s", label,
	    r->done, r->n, r->failures, h->name, outcome_names[h->outcome]);
	if (h->outcome == O_COMMITTED || h->outcome == O_ROLLED_BACK)
		fprintf(stderr, " %u -> %u", h->old_pid, h->new_pid);
	fprintf(stderr, " in %" PRIu64 " ms", h->ms);
	if (h->abort_reason[0])
		fprintf(stderr, ": %s", h->abort_reason);
	else if (h->error[0])
		fprintf(stderr, ": %s", h->error);
	fputc('\n', stderr);
}

/* Append src to the string in dst (size), cutting what does not fit. */
static void
append(char *dst, size_t size, const char *src)
{
	size_t used = strlen(dst), len = strlen(src);

	if (used + 1 >= size)
		return;
	if (len > size - 1 - used)
		len = size - 1 - used;
	memcpy(dst + used, src, len);
	dst[used + len] = '\0';
}

static void
fail_host(struct host *h, enum outcome o, const char *kind, const char *msg)
{
	h->outcome = o;
	h->kind = kind;
	h->error[0] = '\0';
	append(h->error, sizeof(h->error), msg);
}

/* The preflight verdicts on status --json and rollout --probe-binary. */
static void
judge_status(struct rollout *r, struct host *h, uint64_t exit_code)
{
	char state[32], hid[64], msg[ERR_MAX + 64], bin[BIN_MAX];
	uint64_t pid = 0;

	if (!h->json || !json_has(h->json, "supervisor")) {
		snprintf(msg, sizeof(msg), "status failed (exit %" PRIu64 ")%s%s",
		    exit_code, h->lasterr[0] ? ": " : "", h->lasterr);
		fail_host(h, O_PREFLIGHT_FAILED, "unreachable", msg);
		return;
	}
	if (json_get_str(h->json, "supervisor", state, sizeof(state)) == 0) {
		snprintf(msg, sizeof(msg), "supervisor not reachable%s%s",
		    h->lasterr[0] ? ": " : "", h->lasterr);
		fail_host(h, O_PREFLIGHT_FAILED, "unreachable", msg);
		return;
	}
	if (r->pass == P_RECHECK) {
		json_get_u64(h->json, "supervisor.agent_pid", &pid);
		if (json_get_str(h->json, "supervisor.handoff_id", hid, sizeof(hid)) == 1)
			snprintf(msg, sizeof(msg), "; now handoff %s in progress, "
			    "agent pid %" PRIu64, hid, pid);
		else
			snprintf(msg, sizeof(msg), "; now no handoff in progress, "
			    "agent pid %" PRIu64 " (was %u)", pid, h->agent_pid);
		append(h->error, sizeof(h->error), msg);
		return;
	}
	json_get_str(h->json, "supervisor.state", state, sizeof(state));
	if (strcmp(state, "running") != 0) {
		snprintf(msg, sizeof(msg), "supervisor state is '%s', not "
		    "running", state);
		fail_host(h, O_PREFLIGHT_FAILED, strcmp(state, "handoff") == 0 ?
		    "handoff-in-progress" : "not-running", msg);
		return;
	}
	if (json_get_str(h->json, "supervisor.handoff_id", hid, sizeof(hid)) == 1) {
		snprintf(msg, sizeof(msg), "handoff %s in progress", hid);
		fail_host(h, O_PREFLIGHT_FAILED, "handoff-in-progress", msg);
		return;
	}
	if (!json_get_u64(h->json, "supervisor.agent_pid", &pid) || pid == 0 ||
	    !json_has(h->json, "agent.pid")) {
		fail_host(h, O_PREFLIGHT_FAILED, "agent-unreachable",
		    "no agent serves");
		return;
	}
	h->agent_pid = (unsigned)pid;
	json_get_str(h->json, "supervisor.agent_binary", bin, sizeof(bin));
	set_str(&h->prev_binary, bin);
	h->outcome = O_READY;
}

static void
judge_probe(struct host *h, uint64_t exit_code)
{
	char msg[ERR_MAX + BIN_MAX + 8], err[ERR_MAX];

	if (h->json && json_get_bool(h->json, "ok") == 1)
		return;
	if (h->json && json_get_bool(h->json, "ok") == 0) {
		json_get_str(h->json, "error", err, sizeof(err));
		snprintf(msg, sizeof(msg), "%s: %s", h->binary, err);
		fail_host(h, O_PREFLIGHT_FAILED, "binary-missing", msg);
		return;
	}
	snprintf(msg, sizeof(msg), "binary check failed (exit %" PRIu64 ")%s%s",
	    exit_code, h->lasterr[0] ? ": " : "", h->lasterr);
	fail_host(h, O_PREFLIGHT_FAILED, "unreachable", msg);
}

static void
judge_upgrade(struct rollout *r, struct host *h, const char *trailer)
{
	uint64_t code = 0, v;
	char msg[ERR_MAX + 64], why[32];

	json_get_u64(trailer, "ms", &h->ms);
	json_get_u64(trailer, "exit", &code);
	if (json_get_bool(trailer, "skipped") == 1) {
		json_get_str(trailer, "why", why, sizeof(why));
		fail_host(h, O_SKIPPED, NULL, why);
		return;
	}
	r->attempted++;
	r->done++;
	if (json_get_bool(trailer, "timed_out") == 1) {
		snprintf(msg, sizeof(msg), "no result within %" PRIu64 " ms",
		    r->host_timeout_ms);
		fail_host(h, O_UNKNOWN, "timeout", msg);
	} else if (h->json && json_get_bool(h->json, "committed") >= 0) {
		json_get_str(h->json, "handoff_id", h->handoff_id, sizeof(h->handoff_id));
		if (json_get_u64(h->json, "old_pid", &v))
			h->old_pid = (unsigned)v;
		if (json_get_u64(h->json, "new_pid", &v))
			h->new_pid = (unsigned)v;
		json_get_u64(h->json, "total_ms", &h->handoff_ms);
		if (json_get_bool(h->json, "committed") == 1 && code == 0) {
			h->outcome = O_COMMITTED;
		} else {
			json_get_str(h->json, "abort_reason", h->abort_reason,
			    sizeof(h->abort_reason));
			h->outcome = O_ROLLED_BACK;
			h->kind = "rolled-back";
		}
	} else {
		snprintf(msg, sizeof(msg), "upgrade could not run (exit %" PRIu64
		    ")%s%s", code, h->lasterr[0] ? ": " : "", h->lasterr);
		fail_host(h, O_FAILED, "could-not-run", msg);
	}
	if (h->outcome != O_COMMITTED)
		r->failures++;
	progress(r, h);
}

static void
on_trailer(struct rollout *r, struct host *h, const char *trailer)
{
	uint64_t code = 0;

	h->trailer = true;
	json_get_u64(trailer, "exit", &code);
	switch (r->pass) {
	case P_STATUS:
		if (json_get_bool(trailer, "timed_out") == 1)
			fail_host(h, O_PREFLIGHT_FAILED, "timeout",
			    "status query timed out");
		else
			judge_status(r, h, code);
		break;
	case P_PROBE:
		if (json_get_bool(trailer, "timed_out") == 1)
			fail_host(h, O_PREFLIGHT_FAILED, "timeout",
			    "binary check timed out");
		else
			judge_probe(h, code);
		break;
	case P_UPGRADE:
		judge_upgrade(r, h, trailer);
		break;
	case P_RECHECK:
		if (h->json)
			judge_status(r, h, code);
		else
			append(h->error, sizeof(h->error),
			    "; status query failed too");
		break;
	}
}

/* One line of pdsh output: "host: text" (stdout) or stderr's variants. */
static void
on_line(struct rollout *r, char *line, bool is_err)
{
	char *sep, *text;
	struct host *h;

	line[strcspn(line, "\r\n")] = '\0';
	/* pdsh's own messages: "pdsh@node: host: message" */
	if (is_err && strncmp(line, "pdsh@", 5) == 0 && (sep = strstr(line,
	    ": ")))
		line = sep + 2;
	sep = strstr(line, ": ");
	if (!sep || !(h = find_host(r, line, (size_t)(sep - line)))) {
		if (is_err && line[0])
			fprintf(stderr, "rollout: pdsh: %s\n", line);
		return;
	}
	text = sep + 2;
	if (is_err) {
		if (text[0])
			snprintf(h->lasterr, sizeof(h->lasterr), "%s", text);
		return;
	}
	if (strncmp(text, TRAILER, strlen(TRAILER)) == 0) {
		on_trailer(r, h, text + strlen(TRAILER));
		return;
	}
	if (text[0] == '{') {
		free(h->json);
		h->json = strdup(text);
	}
}

/* Split complete lines out of buf; keep a partial tail. */
static void
drain_lines(struct rollout *r, char *buf, size_t *len, bool is_err, bool eof)
{
	char *nl, *start = buf;

	while ((nl = memchr(start, '\n', *len - (size_t)(start - buf)))) {
		*nl = '\0';
		on_line(r, start, is_err);
		start = nl + 1;
	}
	*len -= (size_t)(start - buf);
	memmove(buf, start, *len);
	if (*len == LINE_MAX_ - 1 || (eof && *len)) {
		buf[*len] = '\0';	/* an over-long line is cut, not lost */
		on_line(r, buf, is_err);
		*len = 0;
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Create the gate's stop file once: no host starts after this. */
static void
stop_new_hosts(struct rollout *r)
{
	int fd;

	fd = open(r->stopfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

/* The hosts of one pdsh run, one a line, for -w ^FILE. */
static int
write_hosts(const struct rollout *r, const char *path, const size_t *idx,
    size_t nidx)
{
	FILE *f = fopen(path, "we");
	size_t i;
	int rc = 0;

	if (!f)
		return -errno;
	for (i = 0; i < nidx; i++)
		fprintf(f, "%s\n", r->h[idx[i]].name);
	if (fclose(f) != 0)
		rc = -errno;
	return rc;
}

/*
 * Run one pdsh over the hosts idx[0..nidx) for pass.  Returns 0 when pdsh
 * ran (hosts without a trailer are for the caller to judge), or -errno.
 */
static int
run_pass(struct rollout *r, enum pass pass, const size_t *idx, size_t nidx)
{
	char *argv[MAX_TMPL + 32], *wlist = NULL, *self = NULL, *gate = NULL;
	char *map = NULL, fanout[16], budget[16], tmo[24];
	char *tmpl[MAX_TMPL + 1] = { NULL };
	char obuf[LINE_MAX_], ebuf[LINE_MAX_];
	size_t olen = 0, elen = 0, i;
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, k = 0, rc, status;
	bool stop_sent = false;
	pid_t pid = -1;
	uint64_t timeout = pass == P_UPGRADE ? r->host_timeout_ms :
	    STATUS_TIMEOUT_MS;

	r->pass = pass;
	for (i = 0; i < nidx; i++) {
		struct host *h = &r->h[idx[i]];

		free(h->json);
		h->json = NULL;
		h->lasterr[0] = '\0';
		h->trailer = false;
	}
	/* pdsh -w ^FILE: no argument grows with the fleet (ARG_MAX). */
	if (asprintf(&wlist, "^%s/hosts", r->dir) < 0)
		wlist = NULL;
	self = pct_escape(r->self);
	gate = pct_escape(r->dir);
	map = pct_escape(r->map);
	if (!wlist || !self || !gate || !map) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = write_hosts(r, wlist + 1, idx, nidx)) < 0)
		goto out;
	snprintf(fanout, sizeof(fanout), "%u", r->fanout);
	snprintf(budget, sizeof(budget), "%u", r->budget);
	snprintf(tmo, sizeof(tmo), "%" PRIu64, timeout);
	argv[k++] = (char *)r->pdsh;
	argv[k++] = (char *)"-R";
	argv[k++] = (char *)"exec";
	argv[k++] = (char *)"-f";
	argv[k++] = fanout;
	argv[k++] = (char *)"-w";
	argv[k++] = wlist;
	argv[k++] = self;
	argv[k++] = (char *)"rollout";
	argv[k++] = (char *)"--exec-host";
	argv[k++] = (char *)"%h";
	argv[k++] = (char *)"--timeout-ms";
	argv[k++] = tmo;
	if (pass == P_UPGRADE) {
		argv[k++] = (char *)"--gate";
		argv[k++] = gate;
		argv[k++] = (char *)"--budget";
		argv[k++] = budget;
	}
	if (pass == P_PROBE || pass == P_UPGRADE) {
		argv[k++] = (char *)"--binary-map";
		argv[k++] = map;
	}
	argv[k++] = (char *)"--";
	/* The gate puts the host in (%h, %u), not pdsh: see rollout_host.c. */
	for (i = 0; i < (size_t)r->ntmpl; i++)
		if (!(argv[k++] = tmpl[i] = pct_escape(r->tmpl[i]))) {
			rc = -ENOMEM;
			goto out;
		}
	switch (pass) {
	case P_STATUS:
	case P_RECHECK:
		/* A loaded host's agent may take more than status's 40 ms. */
		argv[k++] = (char *)"status";
		argv[k++] = (char *)"--json";
		argv[k++] = (char *)"--agent-wait-ms";
		argv[k++] = (char *)"5000";
		break;
	case P_PROBE:
		argv[k++] = (char *)"rollout";
		argv[k++] = (char *)"--probe-binary";
		break;
	case P_UPGRADE:
		argv[k++] = (char *)"upgrade";
		argv[k++] = (char *)"--json";
		argv[k++] = (char *)"--binary";
		break;
	}
	argv[k] = NULL;

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* Its own group: a terminal ^C reaches us, not the hosts. */
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 ||
		    dup2(err[1], 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "pdsh@local: exec '%s': %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	out[1] = err[1] = -1;
	while (out[0] >= 0 || err[0] >= 0) {
		struct pollfd pf[2] = {
			{ .fd = out[0], .events = POLLIN },
			{ .fd = err[0], .events = POLLIN },
		};
		ssize_t n;

		if (interrupted && !stop_sent) {
			stop_new_hosts(r);
			stop_sent = true;
			fprintf(stderr, "rollout: interrupted: no new host starts; "
			    "waiting for the hosts in flight (each commits or "
			    "rolls back)\n");
		}
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (pf[0].revents) {
			n = read(out[0], obuf + olen, LINE_MAX_ - 1 - olen);
			if (n > 0)
				olen += (size_t)n;
			drain_lines(r, obuf, &olen, false, n <= 0);
			if (n == 0 || (n < 0 && errno != EINTR)) {
				close(out[0]);
				out[0] = -1;
			}
		}
		if (pf[1].revents) {
			n = read(err[0], ebuf + elen, LINE_MAX_ - 1 - elen);
			if (n > 0)
				elen += (size_t)n;
			drain_lines(r, ebuf, &elen, true, n <= 0);
			if (n == 0 || (n < 0 && errno != EINTR)) {
				close(err[0]);
				err[0] = -1;
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pid = -1;
	rc = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
		fprintf(stderr, "rollout: pdsh ended with status %d\n",
		    WIFEXITED(status) ? WEXITSTATUS(status) :
		    128 + WTERMSIG(status));
out:
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	for (i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	free(wlist);
	for (i = 0; i < (size_t)r->ntmpl; i++)
		free(tmpl[i]);
	free(self);
	free(gate);
	free(map);
	return rc;
}

static int
write_map(struct rollout *r)
{
	FILE *f;
	size_t i;
	int rc = 0;

	f = fopen(r->map, "we");
	if (!f)
		return -errno;
	for (i = 0; i < r->n; i++)
		fprintf(f, "%s\t%s\n", r->h[i].name, r->h[i].binary);
	if (fflush(f) != 0)
		rc = -errno;
	fclose(f);
	return rc;
}

/* ---- output ---- */

static void
count(const struct rollout *r, size_t *ok, size_t *failed, size_t *unknown,
    size_t *skipped)
{
	size_t i;

	*ok = *failed = *unknown = *skipped = 0;
	for (i = 0; i < r->n; i++) {
		switch (r->h[i].outcome) {
		case O_COMMITTED: (*ok)++; break;
		case O_UNKNOWN: (*unknown)++; (*failed)++; break;
		case O_ROLLED_BACK:
		case O_FAILED:
		case O_PREFLIGHT_FAILED: (*failed)++; break;
		default: (*skipped)++; break;
		}
	}
}

static void
report(const struct rollout *r, const char *result, int code)
{
	size_t i, ok, failed, unknown, skipped;
	uint64_t ms = clock_mono_ms() - r->t0;

	count(r, &ok, &failed, &unknown, &skipped);
	if (r->json) {
		printf("{\"result\":\"%s\",\"exit\":%d,\"rollback\":%s,"
		    "\"hosts_total\":%zu,\"attempted\":%zu,\"ok\":%zu,"
		    "\"failed\":%zu,\"unknown\":%zu,\"skipped\":%zu,"
		    "\"failure_budget\":%u,\"fanout\":%u,\"batch_size\":%u,"
		    "\"batches\":%d,\"duration_ms\":%" PRIu64 ",\"hosts\":[",
		    result, code, r->rollback ? "true" : "false", r->n,
		    r->attempted, ok, failed, unknown, skipped, r->budget,
		    r->fanout, r->batch_size, r->nbatches, ms);
		for (i = 0; i < r->n; i++) {
			const struct host *h = &r->h[i];

			printf("%s{\"host\":", i ? "," : "");
			json_put_str(stdout, h->name);
			if (h->batch < 0)
				printf(",\"batch\":null");
			else
				printf(",\"batch\":%d", h->batch);
			printf(",\"outcome\":\"%s\",\"handoff_id\":",
			    outcome_names[h->outcome]);
			json_put_str(stdout, h->handoff_id[0] ? h->handoff_id : NULL);
			printf(",\"old_pid\":%u,\"new_pid\":%u,\"duration_ms\":%"
			    PRIu64 ",\"handoff_ms\":%" PRIu64 ",\"abort_reason\":",
			    h->old_pid, h->new_pid, h->ms, h->handoff_ms);
			json_put_str(stdout, h->abort_reason[0] ? h->abort_reason : NULL);
			printf(",\"error_kind\":");
			json_put_str(stdout, h->kind);
			printf(",\"error\":");
			json_put_str(stdout, h->error[0] ? h->error : NULL);
			printf(",\"previous_binary\":");
			json_put_str(stdout, h->prev_binary[0] ? h->prev_binary : NULL);
			printf(",\"binary\":");
			json_put_str(stdout, h->binary[0] ? h->binary : NULL);
			printf("}");
		}
		printf("]}\n");
	} else {
		printf("%-20s %-6s %-16s %-36s %8s %8s %8s  %s\n", "HOST", "BATCH",
		    "OUTCOME", "HANDOFF", "OLD PID", "NEW PID", "MS", "REASON");
		for (i = 0; i < r->n; i++) {
			const struct host *h = &r->h[i];
			char batch[16];

			if (h->batch < 0)
				snprintf(batch, sizeof(batch), "-");
			else if (h->batch == 0)
				snprintf(batch, sizeof(batch), "canary");
			else
				snprintf(batch, sizeof(batch), "%d", h->batch);
			printf("%-20s %-6s %-16s %-36s %8u %8u %8" PRIu64 "  %s%s%s\n",
			    h->name, batch, outcome_names[h->outcome],
			    h->handoff_id[0] ? h->handoff_id : "-", h->old_pid,
			    h->new_pid, h->ms, h->kind ? h->kind :
			    h->error[0] ? "" : "-",
			    h->kind && (h->abort_reason[0] || h->error[0]) ?
			    ": " : "",
			    h->abort_reason[0] ? h->abort_reason : h->error);
		}
	}
	fflush(stdout);
	fprintf(stderr, "rollout: %s: %zu hosts, attempted %zu, ok %zu, failed "
	    "%zu (unknown %zu), skipped %zu, in %.1f s\n", result, r->n,
	    r->attempted, ok, failed, unknown, skipped, (double)ms / 1000.0);
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
	if ((rc = run_pass(r, P_STATUS, idx, r->n)) < 0)
		return rc;
	for (i = 0; i < r->n; i++)
		if (!r->h[i].trailer && r->h[i].outcome == O_PENDING)
			fail_host(&r->h[i], O_PREFLIGHT_FAILED, "no-result",
			    r->h[i].lasterr[0] ? r->h[i].lasterr :
			    "no answer through pdsh");
	if ((rc = run_pass(r, P_PROBE, idx, r->n)) < 0)
		return rc;
	for (i = 0; i < r->n; i++) {
		struct host *h = &r->h[i];

		if (!h->trailer && h->outcome != O_PREFLIGHT_FAILED)
			fail_host(h, O_PREFLIGHT_FAILED, "no-result",
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
	(void)run_pass(r, P_RECHECK, idx, k);
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
		if (interrupted || r->failures > r->budget ||
		    (b == 1 && r->failures > 0))
			stop = true;
		if (stop) {
			for (i = start; i < r->n; i++)
				fail_host(&r->h[i], O_SKIPPED, NULL, interrupted ?
				    "interrupted" : b == 1 ? "canary failed" :
				    "failure budget spent");
			break;
		}
		batch_label(r, b, label, sizeof(label));
		fprintf(stderr, "rollout: %s: %zu host(s), %s..%s\n", label,
		    end - start, r->h[start].name, r->h[end - 1].name);
		for (i = start, k = 0; i < end; i++)
			idx[k++] = i;
		if (run_pass(r, P_UPGRADE, idx, k) < 0)
			return -EIO;
		for (i = start; i < end; i++) {
			struct host *h = &r->h[i];

			if (h->trailer)
				continue;
			fail_host(h, O_UNKNOWN, "no-result", h->lasterr[0] ?
			    h->lasterr : "no result through pdsh");
			r->attempted++;
			r->done++;
			r->failures++;
			progress(r, h);
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
			batch_label(r, b, label, sizeof(label));
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
	struct sigaction sa = { .sa_handler = on_signal };
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
	    record_hosts(&r);
	if (e < 0 || hosts_from_list(&r) < 0 ||
	    !(idx = calloc(r.n ? r.n : 1, sizeof(*idx)))) {
		/* A bad list is usage; no nodeset (or file), no memory: 69. */
		if (e != -EINVAL && e != -E2BIG)
			rc = EX_NOT_STARTED;
		goto out;
	}
	if (r.rollback && !previous && load_record(&r) < 0) {
		rc = EX_NOT_STARTED;
		goto out;
	}
	if (r.n == 0) {
		fprintf(stderr, "batonctl: rollout: no hosts\n");
		goto out;
	}
	for (i = 0; i < r.n && (binary || previous); i++) {
		e = host_binary(binary ? binary : previous,
		    hostlist_host(r.h[i].name), bin, sizeof(bin));
		if (e == 0)
			e = set_str(&r.h[i].binary, bin);
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
	if ((e = write_map(&r)) < 0) {
		fprintf(stderr, "batonctl: rollout: write '%s': %s\n", r.map,
		    strerror(-e));
		goto out;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	e = preflight(&r, idx);
	if (e < 0 || interrupted) {
		if (e != -EAGAIN)
			fprintf(stderr, "batonctl: rollout: preflight: %s\n",
			    interrupted ? "interrupted" : strerror(-e));
		report(&r, "could-not-start", EX_NOT_STARTED);
		goto out;
	}
	if (!r.rollback && write_record(&r) < 0) {
		report(&r, "could-not-start", EX_NOT_STARTED);
		goto out;
	}
	if (run_batches(&r, idx) < 0)
		fprintf(stderr, "batonctl: rollout: pdsh could not run; hosts "
		    "without a result are reported unknown\n");
	{
		size_t ok, failed, unknown, skipped;

		count(&r, &ok, &failed, &unknown, &skipped);
		if (ok == r.n) {
			rc = EX_ALL_COMMITTED;
			report(&r, "committed-all", rc);
		} else {
			rc = EX_HOST_FAILED;
			report(&r, interrupted ? "interrupted" : skipped ?
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
			if (r.h[i].binary != no_str)
				free(r.h[i].binary);
			if (r.h[i].prev_binary != no_str)
				free(r.h[i].prev_binary);
		}
	free(r.h);
	free(idx);
	free(r.tmplbuf);
	hostlist_free(&r.hl);
	return rc;
}
