/*
 * sup: the supervisor's core and owner of its state: its configuration
 * (from main.c), sup_run(), and struct sup, read by metrics.  The modules
 * it runs (handoff, ctl, ...) do not see it: they get what they need
 * explicitly and call back only through the callbacks they were given.
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
#include "supervisor/agentcmd.h"

struct ctl;
struct handoff;
struct procwatch;

struct sup_config {
	struct baton_paths paths;
	char agent_path[PATH_MAX];
	const char *agent_args[AGENT_MAX_ARGS];	/* extra args, borrowed */
	unsigned n_agent_args;
	char listen_names[LISTENFDS_MAX][LISTENFDS_NAME_MAX];
	char listen_paths[LISTENFDS_MAX][PATH_MAX];
	unsigned n_listen;
	const uid_t *allow_uids;
	unsigned n_allow_uids;
	bool no_seccomp;
	bool no_standby;		/* no successor started ahead */
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
	struct standby *standby;	/* started ahead; NULL when none */
	uint64_t replace_t0;		/* a replace (replace()) runs: start */
	bool stop_after_handoff;

	uint64_t handoffs_committed, handoffs_rolled_back, agent_restarts;
	char last_handoff_id[40];
	char last_abort_reason[256];	/* of the last rolled-back handoff */
	char last_agent_exit[300];	/* "pid N: exit 3; stderr: ..." */

	struct ctl *ctl;		/* the control socket; NULL before */
	uv_timer_t timer;		/* start-up / backoff / stop */
	uv_signal_t sig_term, sig_int, sig_hup, sig_chld;
	int exit_code;
};

/* Run the supervisor until it stops; the process's exit code. */
int sup_run(struct sup_config *cfg);

#endif
