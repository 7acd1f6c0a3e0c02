/*
 * sup: the supervisor's shared state, used by its modules (core, handoff,
 * control socket).  Not a public API: one process, one loop, one struct.
 */
#ifndef BATON_SUP_H
#define BATON_SUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/listenfds.h"
#include "common/paths.h"

#define SUP_MAX_ARGS 32
#define SUP_MAX_ENV 32

struct handoff;
struct handoff_result;
struct procwatch;
struct conn;

struct sup_config {
	struct baton_paths paths;
	char agent_path[PATH_MAX];
	const char *agent_args[SUP_MAX_ARGS];	/* extra args, borrowed */
	unsigned n_agent_args;
	char listen_names[LISTENFDS_MAX][LISTENFDS_NAME_MAX];
	char listen_paths[LISTENFDS_MAX][PATH_MAX];
	unsigned n_listen;
	const uid_t *allow_uids;
	unsigned n_allow_uids;
	bool no_seccomp;
	const char *allow_binary_dir;	/* NULL: any directory */
	uint64_t deadline_ms;		/* default per upgrade */
	uint64_t drain_grace_ms;
};

enum sup_state {
	SUP_STARTING,	/* an agent is cold-starting */
	SUP_RUNNING,	/* an incumbent serves */
	SUP_HANDOFF,	/* a handoff is under way */
	SUP_BACKOFF,	/* waiting to restart a dead agent */
	SUP_STOPPING,
};

struct sup {
	struct sup_config *cfg;
	uv_loop_t *loop;
	enum sup_state state;
	uint64_t started_ms;

	/* Listeners, held for the supervisor's whole life. */
	int lfds[LISTENFDS_MAX];
	char lnames[LISTENFDS_MAX][LISTENFDS_NAME_MAX];
	unsigned nl;
	bool from_systemd;

	/* The incumbent. */
	pid_t agent_pid;
	char agent_binary[PATH_MAX];
	struct procwatch *agent_watch;
	uint64_t agent_since_ms;
	unsigned restarts_in_row;

	struct handoff *handoff;	/* NULL when none */
	struct conn *upgrade_client;	/* batonctl waiting for the result */
	uint64_t replace_t0;		/* a replace (sup_replace) runs: start */
	bool stop_after_handoff;

	uint64_t handoffs_committed, handoffs_rolled_back, agent_restarts;
	char last_handoff_id[40];
	char last_abort_reason[256];	/* of the last rolled-back handoff */
	char last_agent_exit[300];	/* "pid N: exit 3; stderr: ..." */

	int ctl_fd;
	struct acceptor *ctl_acc;
	uv_timer_t timer;		/* start-up / backoff / stop */
	uv_signal_t sig_term, sig_int, sig_hup, sig_chld;
	int exit_code;
};

/* core (supervisor/sup.c) */
int sup_run(struct sup_config *cfg);
/* The incumbent is now pid (a committed successor or an adopted agent). */
void sup_set_agent(struct sup *s, pid_t pid, const char *binary);
/* Called by handoff when it ends. */
void sup_handoff_done(struct sup *s, const struct handoff_result *r);
/* Environment names never passed on to agents unless asked for. */
extern const char *const sup_env_drop[];

/*
 * An agent's argv (binary, --root ROOT, then args; NULL-terminated) and
 * the names of the listeners it inherits, as every spawn passes them.
 */
void sup_agent_argv(const struct sup *s, const char *binary,
    const char *const *args, unsigned nargs,
    const char *argv[SUP_MAX_ARGS + 4], const char *names[LISTENFDS_MAX]);

/* control socket (supervisor/ctl.c) */
int ctl_start(struct sup *s);
void ctl_stop(struct sup *s);
void ctl_upgrade_done(struct sup *s, const struct handoff_result *r);
/* Start an upgrade: from batonctl (client != NULL) or SIGHUP. */
int sup_upgrade(struct sup *s, const char *binary, const char *const *args,
    unsigned nargs, const char *const *env, unsigned nenv,
    uint64_t deadline_ms, uint64_t drain_grace_ms);
/*
 * No agent serves (back-off): cold-start binary instead of a handoff;
 * nextra > 0 (--arg/--env given) is -ENOTSUP.  0 or -errno.
 */
int sup_replace(struct sup *s, const char *binary, unsigned nextra);

#endif
