/*
 * handoff: the supervisor's side of one handoff (SPEC §4), as an explicit
 * table of states x events.  It connects to the incumbent, spawns the
 * successor, walks both through drain, seal, begin and commit, and on any
 * failure kills the successor and resumes the incumbent, or promotes the
 * successor when the incumbent died.  Every phase is journaled before the
 * step it guards.
 */
#ifndef BATON_HANDOFF_H
#define BATON_HANDOFF_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sup;
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
 * Start a handoff away from the current incumbent (s->agent_pid).  The
 * result goes to sup_handoff_done() when it ends.  Returns 0 or -errno
 * (nothing started).
 */
int handoff_start(struct sup *s, const struct handoff_params *p,
    struct handoff **ret);

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
