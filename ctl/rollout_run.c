/*
 * rollout_run: one pdsh pass (status, probe, upgrade or re-check) over a
 * set of hosts, and the judgement of each host from its lines: pdsh
 * prefixes every line with "host: ", the host gate ends each host with
 * one trailer line, and a host's JSON line or exit code is its result.
 *
 * Invariants: pdsh runs with -f FANOUT and is never signalled; a host
 * without a trailer is failed (or unknown for an upgrade), never assumed
 * committed; SIGINT/SIGTERM only create the gate's stop file, so hosts in
 * flight finish.
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

volatile sig_atomic_t ro_interrupted;

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
void
ro_batch_label(const struct rollout *r, int b, char *buf, size_t len)
{
	if (b == 0)
		snprintf(buf, len, "canary");
	else
		snprintf(buf, len, "batch %d/%d", b, r->nbatches - 1);
}

void
ro_progress(struct rollout *r, const struct host *h)
{
	char label[32];

	ro_batch_label(r, r->batch, label, sizeof(label));
	fprintf(stderr, "rollout: [%s, %zu/%zu done, %u failed] %s %s", label,
	    r->done, r->n, r->failures, h->name, ro_outcome_names[h->outcome]);
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

void
ro_fail_host(struct host *h, enum outcome o, const char *kind, const char *msg)
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
		ro_fail_host(h, O_PREFLIGHT_FAILED, "unreachable", msg);
		return;
	}
	if (json_get_str(h->json, "supervisor", state, sizeof(state)) == 0) {
		snprintf(msg, sizeof(msg), "supervisor not reachable%s%s",
		    h->lasterr[0] ? ": " : "", h->lasterr);
		ro_fail_host(h, O_PREFLIGHT_FAILED, "unreachable", msg);
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
		ro_fail_host(h, O_PREFLIGHT_FAILED, strcmp(state, "handoff") == 0 ?
		    "handoff-in-progress" : "not-running", msg);
		return;
	}
	if (json_get_str(h->json, "supervisor.handoff_id", hid, sizeof(hid)) == 1) {
		snprintf(msg, sizeof(msg), "handoff %s in progress", hid);
		ro_fail_host(h, O_PREFLIGHT_FAILED, "handoff-in-progress", msg);
		return;
	}
	if (!json_get_u64(h->json, "supervisor.agent_pid", &pid) || pid == 0 ||
	    !json_has(h->json, "agent.pid")) {
		ro_fail_host(h, O_PREFLIGHT_FAILED, "agent-unreachable",
		    "no agent serves");
		return;
	}
	h->agent_pid = (unsigned)pid;
	json_get_str(h->json, "supervisor.agent_binary", bin, sizeof(bin));
	ro_set_str(&h->prev_binary, bin);
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
		ro_fail_host(h, O_PREFLIGHT_FAILED, "binary-missing", msg);
		return;
	}
	snprintf(msg, sizeof(msg), "binary check failed (exit %" PRIu64 ")%s%s",
	    exit_code, h->lasterr[0] ? ": " : "", h->lasterr);
	ro_fail_host(h, O_PREFLIGHT_FAILED, "unreachable", msg);
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
		ro_fail_host(h, O_SKIPPED, NULL, why);
		return;
	}
	r->attempted++;
	r->done++;
	if (json_get_bool(trailer, "timed_out") == 1) {
		snprintf(msg, sizeof(msg), "no result within %" PRIu64 " ms",
		    r->host_timeout_ms);
		ro_fail_host(h, O_UNKNOWN, "timeout", msg);
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
		ro_fail_host(h, O_FAILED, "could-not-run", msg);
	}
	if (h->outcome != O_COMMITTED)
		r->failures++;
	ro_progress(r, h);
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
			ro_fail_host(h, O_PREFLIGHT_FAILED, "timeout",
			    "status query timed out");
		else
			judge_status(r, h, code);
		break;
	case P_PROBE:
		if (json_get_bool(trailer, "timed_out") == 1)
			ro_fail_host(h, O_PREFLIGHT_FAILED, "timeout",
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
	if (!sep || !(h = ro_find_host(r, line, (size_t)(sep - line)))) {
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

void
ro_on_signal(int sig)
{
	(void)sig;
	ro_interrupted = 1;
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
int
ro_run_pass(struct rollout *r, enum pass pass, const size_t *idx, size_t nidx)
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

		if (ro_interrupted && !stop_sent) {
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

int
ro_write_map(struct rollout *r)
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

