/*
 * rollout_int.h: what the coordinator's files share (rollout.c: options,
 * preflight, batches; rollout_plan.c: host state, binaries, the record,
 * the report; rollout_run.c: one pdsh pass and its judgements).  Not for
 * use outside ctl/rollout*.c.  The host side is rollout_host.c, through
 * rollout.h.
 */
#ifndef BATON_ROLLOUT_INT_H
#define BATON_ROLLOUT_INT_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/atomicfile.h"
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

/* Names of the outcomes, as the report prints them. */
extern const char *const ro_outcome_names[O_SKIPPED + 1];
/* Set by ro_on_signal() (SIGINT, SIGTERM): no new host starts. */
extern volatile sig_atomic_t ro_interrupted;
/* The empty string hosts start with; ro_set_str() never frees it. */
extern char ro_no_str[1];

/* ---- rollout_plan.c: host state, binaries, the record, the report ---- */

/* The host named name[0..len), or NULL. */
struct host *ro_find_host(struct rollout *r, const char *name, size_t len);
/* r->h from r->hl: one host per name, in nodeset's order.  0 or -ENOMEM. */
int ro_hosts_from_list(struct rollout *r);
/* *dst = a copy of src (the old value freed unless ro_no_str). */
int ro_set_str(char **dst, const char *src);
/* The hosts of the record, for --rollback without a host list. */
int ro_record_hosts(struct rollout *r);
/* Absolute, shell-safe binary path from tmpl with %h -> host. */
int ro_host_binary(const char *tmpl, const char *host, char *out,
    size_t len);
/* Write / read the rollout record (each host's previous binary). */
int ro_write_record(struct rollout *r);
int ro_load_record(struct rollout *r);
/* Tally the outcomes; print the table or the JSON object. */
void ro_count(const struct rollout *r, size_t *ok, size_t *failed,
    size_t *unknown, size_t *skipped);
void ro_report(const struct rollout *r, const char *result, int code);

/* ---- rollout_run.c: running pdsh ---- */

/* "canary" or "batch N/M" into buf. */
void ro_batch_label(const struct rollout *r, int b, char *buf, size_t len);
/* One progress line on stderr for a host that finished this pass. */
void ro_progress(struct rollout *r, const struct host *h);
/* Record a failure of kind with msg on h (kind NULL: no error kind). */
void ro_fail_host(struct host *h, enum outcome o, const char *kind,
    const char *msg);
void ro_on_signal(int sig);
/* One pdsh run of pass over the hosts idx[0..nidx).  0 or -errno. */
int ro_run_pass(struct rollout *r, enum pass pass, const size_t *idx,
    size_t nidx);
/* The binary map the host gates read (host TAB binary).  0 or -errno. */
int ro_write_map(struct rollout *r);

#endif
