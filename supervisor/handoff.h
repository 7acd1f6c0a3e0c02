/*
 * handoff: the supervisor's side of one handoff (SPEC §4), as an explicit
 * table of states x events.  It connects to the incumbent, spawns the
 * successor, walks both through drain, seal, begin and commit, and on any
 * failure kills the successor and resumes the incumbent, or promotes the
 * successor when the incumbent died.  Every phase is journaled before the
 * step it guards.
 *
 * A handoff knows nothing of its owner: everything it works with comes
 * in struct handoff_env, and it reports back only through the env's
 * callbacks.
 */
#ifndef BATON_HANDOFF_H
#define BATON_HANDOFF_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/listenfds.h"

struct handoff;

struct handoff_params {
	const char *binary;		/* absolute path */
	const char *const *args;	/* extra agent args, borrowed */
	unsigned nargs;
	const char *const *env;		/* "K=V" for the successor, borrowed */
	unsigned nenv;
	uint64_t deadline_ms;
	uint64_t drain_grace_ms;
};

/* Phase durations in ms; 0 for phases not reached. */
struct handoff_result {
	char id[40];
	bool committed;
	bool promoted;			/* incumbent died; successor took over */
	char abort_reason[256];
	pid_t old_pid, new_pid;
	char new_binary[PATH_MAX];
	uint64_t hello_ms, spawn_ms, drain_ms, seal_ms, begin_ms, commit_ms;
	uint64_t total_ms;
};

/*
 * What a handoff works with, from its owner.  Copied by handoff_start();
 * the strings, fds and the loop it points to are borrowed and must stay
 * valid until done_cb has run.
 */
struct handoff_env {
	uv_loop_t *loop;
	const char *root;		/* the agents' --root */
	const char *agent_socket;	/* the incumbent's control socket */
	const char *state_dir;		/* where the data-dir lock is */
	const char *journal;		/* the handoff journal's path */
	const char *last_handoff;	/* the last outcome's path */
	/* The listeners the successor inherits (fds stay the owner's). */
	const int *lfds;
	const char (*lnames)[LISTENFDS_NAME_MAX];
	unsigned nl;
	pid_t incumbent_pid;
	const char *incumbent_binary;	/* copied into the journal at start */
	/* READY matched: pid (running binary) serves from now on. */
	void (*serving_cb)(pid_t pid, const char *binary, void *data);
	/* The handoff ended and is freed; r is valid during the call. */
	void (*done_cb)(const struct handoff_result *r, void *data);
	/*
	 * Optional: a successor started ahead for these params
	 * (supervisor/standby.h), told to start.  0 with its pid and our end
	 * of its socketpair, or -errno (then one is spawned as usual).
	 */
	int (*take_standby)(const struct handoff_params *p, pid_t *ret_pid,
	    int *ret_fd, void *data);
	void *data;
};

/*
 * Start a handoff away from env->incumbent_pid.  Never blocks: the
 * connect to the incumbent is one non-blocking attempt (-EAGAIN when its
 * backlog is full).  The result goes to env->done_cb when it ends.
 * Returns 0 and the handoff in *ret (owned by itself until done_cb), or
 * -errno (nothing started, no callback).
 */
int handoff_start(const struct handoff_env *env,
    const struct handoff_params *p, struct handoff **ret);

const char *handoff_phase(const struct handoff *h);
const char *handoff_id(const struct handoff *h);

/* For tests: the table's dimensions and names. */
unsigned handoff_nstates(void);
unsigned handoff_nevents(void);
const char *handoff_state_name(unsigned st);
const char *handoff_event_name(unsigned ev);
/* Is the cell (st, ev) filled?  Every cell must be. */
bool handoff_cell_defined(unsigned st, unsigned ev);

#endif
