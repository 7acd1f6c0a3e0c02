/*
 * ctl: the supervisor's control socket for batonctl (CTL_* messages,
 * docs/PROTOCOL.md).  It knows nothing of its owner: what it reports and
 * what it starts comes through the callbacks in struct ctl_ops.
 */
#ifndef BATON_CTL_H
#define BATON_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct ctl;
struct handoff_result;

/* The owner's view for CTL_STATUS / CTL_JOURNAL; strings borrowed. */
struct ctl_status {
	pid_t agent_pid;		/* 0: none */
	const char *agent_binary;
	const char *state;		/* "running", "handoff", ... */
	bool stopping;			/* upgrades are refused */
	const char *handoff_id;		/* NULL when none runs */
	uint64_t handoffs_committed, handoffs_rolled_back, agent_restarts;
	uint64_t uptime_ms;
	const char *last_abort_reason;	/* "" when none */
	const char *last_agent_exit;	/* "" when none */
};

struct ctl_ops {
	/* Fill *ret (zeroed by the caller). */
	void (*status)(void *data, struct ctl_status *ret);
	/*
	 * Start an upgrade (binary NULL or "": the current one; nargs 0:
	 * the configured args; 0 ms: the configured times).  0, and the
	 * result comes to ctl_upgrade_done() (maybe before this returns),
	 * or -errno: -EINPROGRESS, -EBUSY (starting), -EAGAIN (no agent),
	 * -ENOTSUP (replace with --arg/--env) or the binary's check.
	 */
	int (*upgrade)(void *data, const char *binary,
	    const char *const *args, unsigned nargs, const char *const *env,
	    unsigned nenv, uint64_t deadline_ms, uint64_t drain_grace_ms);
	void *data;
};

struct ctl_opts {
	const char *socket_path;	/* made 0600, unlinked by ctl_stop */
	const char *journal;		/* journal_read() paths */
	const char *last_handoff;
	const uid_t *allow_uids;
	unsigned n_allow_uids;
};

/*
 * Listen on opts->socket_path.  Borrows opts' strings and ops for the
 * ctl's life.  Returns 0 and the ctl in *ret, or -errno.
 */
int ctl_start(uv_loop_t *loop, const struct ctl_opts *opts,
    const struct ctl_ops *ops, struct ctl **ret);
/* Stop listening and remove the socket (if still ours); idempotent. */
void ctl_stop(struct ctl *c);
/* Free it, once its loop ran its last callbacks.  NULL is fine. */
void ctl_free(struct ctl *c);
/* The upgrade ended: CTL_UPGRADE_RESULT to the batonctl waiting for it. */
void ctl_upgrade_done(struct ctl *c, const struct handoff_result *r);

#endif
