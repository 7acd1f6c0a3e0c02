/*
 * agentcmd: how the supervisor starts an agent, the same for a cold
 * start and a successor: its command line and the environment it never
 * passes on.
 */
#ifndef BATON_AGENTCMD_H
#define BATON_AGENTCMD_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "common/listenfds.h"

#define AGENT_MAX_ARGS 32	/* extra arguments of an agent, at most */
#define AGENT_MAX_ENV 32	/* extra "K=V" of a successor, at most */

/* Environment names never passed on to agents unless asked for. */
extern const char *const agentcmd_env_drop[];

/*
 * An agent's argv (binary, --root ROOT, then args; NULL-terminated) and
 * the names of the nl listeners it inherits, as every spawn passes them.
 * Borrows everything; argv and names point into the arguments.
 */
void agentcmd_argv(const char *binary, const char *root,
    const char *const *args, unsigned nargs,
    const char (*lnames)[LISTENFDS_NAME_MAX], unsigned nl,
    const char *argv[AGENT_MAX_ARGS + 4], const char *names[LISTENFDS_MAX]);

/* A successor to spawn (a handoff's, or a standby's). */
struct agentcmd_successor {
	const char *binary;
	const char *root;
	const char *const *args;	/* extra agent args */
	unsigned nargs;
	const int *lfds;		/* the listeners it inherits */
	const char (*lnames)[LISTENFDS_NAME_MAX];
	unsigned nl;
	const char *const *env;		/* "K=V", NULL-terminated, may be NULL */
	int nice;			/* > 0: spawned at that nice value */
	bool idle;			/* under SCHED_IDLE once exec'd */
};

/*
 * Spawn a successor (HANDOFF_ROLE=successor) with its end of a new
 * socketpair as HANDOFF_SOCK_FD, the listeners, its stderr into our log
 * and PDEATHSIG: it dies with us until it says otherwise (after BEGIN).
 * Returns the pid and our end in *ret_fd, or -errno.
 */
pid_t agentcmd_spawn_successor(uv_loop_t *loop,
    const struct agentcmd_successor *p, int *ret_fd);

#endif
