/*
 * rollout_plan: the coordinator's host state.  The hosts (from the host
 * list or the record), the binary each one gets, the rollout record of
 * each host's previous binary, and the report at the end (table or one
 * JSON object).
 *
 * Invariants: every host string is either ro_no_str or owned by its host
 * (ro_set_str); the record is written whole and durably (atomicfile)
 * before the first upgrade, and a rollback keeps an earlier record's
 * previous binary rather than the one it is replacing.
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

const char *const ro_outcome_names[O_SKIPPED + 1] = {
	"pending", "not-started", "preflight-failed", "committed",
	"rolled-back", "failed", "unknown", "skipped",
};

char ro_no_str[1];

/* ---- host list (hostlist.c, through nodeset) ---- */

struct host *
ro_find_host(struct rollout *r, const char *name, size_t len)
{
	long i = hostlist_find(&r->hl, name, len);

	return i < 0 ? NULL : &r->h[i];
}

/* r->h from r->hl: one host per name, in nodeset's order. */
int
ro_hosts_from_list(struct rollout *r)
{
	size_t i;

	r->h = calloc(r->hl.n ? r->hl.n : 1, sizeof(*r->h));
	if (!r->h)
		return -ENOMEM;
	for (i = 0; i < r->hl.n; i++) {
		snprintf(r->h[i].name, HOST_MAX, "%s", r->hl.v[i]);
		r->h[i].binary = r->h[i].prev_binary = ro_no_str;
	}
	r->n = r->hl.n;
	return 0;
}

/* *dst = a copy of src; ro_no_str, what hosts start with, is not freed. */
int
ro_set_str(char **dst, const char *src)
{
	char *p = strdup(src);

	if (!p)
		return -ENOMEM;
	if (*dst != ro_no_str)
		free(*dst);
	*dst = p;
	return 0;
}

/* The hosts of the record, for --rollback without a host list. */
int
ro_record_hosts(struct rollout *r)
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
int
ro_host_binary(const char *tmpl, const char *host, char *out, size_t len)
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
 * Call fn for each line "host TAB previous TAB binary" of a record whose
 * host is one of r's.  data is the record after its magic line, as
 * atomicfile_read() returned it; it is cut up in place.
 */
static void
record_each(struct rollout *r, char *data,
    void (*fn)(struct host *h, const char *prev, const char *bin))
{
	char *line, *save, *f1, *f2;
	struct host *h;

	for (line = strtok_r(data, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		if (!(f1 = strchr(line, '\t')) || !(f2 = strchr(f1 + 1, '\t')))
			continue;
		*f1 = *f2 = '\0';
		h = ro_find_host(r, line, strlen(line));
		if (h)
			fn(h, f1 + 1, f2 + 1);
	}
}

static void
keep_previous_cb(struct host *h, const char *prev, const char *bin)
{
	if (strcmp(h->prev_binary, h->binary) == 0 &&
	    strcmp(bin, h->binary) == 0)
		ro_set_str(&h->prev_binary, prev);
}

/*
 * A re-run of the same rollout (after fixing a failed host) finds hosts
 * already on the new binary; their "previous" stays what the earlier run
 * recorded, so --rollback still goes back past the new binary.
 */
static void
keep_earlier_previous(struct rollout *r)
{
	char *data = NULL;
	size_t len;

	if (atomicfile_read(r->record, RECORD_MAX, (void **)&data, &len) < 0)
		return;
	data[len ? len - 1 : 0] = '\0';
	if (strncmp(data, RECORD_MAGIC, strlen(RECORD_MAGIC) - 1) == 0)
		record_each(r, data + strlen(RECORD_MAGIC) - 1,
		    keep_previous_cb);
	free(data);
}

int
ro_write_record(struct rollout *r)
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

static void
rollback_to_cb(struct host *h, const char *prev, const char *bin)
{
	(void)bin;
	ro_set_str(&h->binary, prev);
}

/*
 * Rollback targets from the record.  With no host list the record's hosts
 * are the fleet; a listed host missing from the record is an error.
 */
int
ro_load_record(struct rollout *r)
{
	char *data = NULL;
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
	record_each(r, data + strlen(RECORD_MAGIC) - 1, rollback_to_cb);
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

/* ---- output ---- */

void
ro_count(const struct rollout *r, size_t *ok, size_t *failed, size_t *unknown,
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

void
ro_report(const struct rollout *r, const char *result, int code)
{
	size_t i, ok, failed, unknown, skipped;
	uint64_t ms = clock_mono_ms() - r->t0;

	ro_count(r, &ok, &failed, &unknown, &skipped);
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
			    ro_outcome_names[h->outcome]);
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
			    h->name, batch, ro_outcome_names[h->outcome],
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

