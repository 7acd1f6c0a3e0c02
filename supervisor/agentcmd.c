/*
 * agentcmd: an agent's command line and the environment names dropped
 * for it.  Invariants: every agent is started with --root first and at
 * most AGENT_MAX_ARGS extra arguments; the names of the listeners it
 * inherits are in the order of the fds (LISTEN_FDNAMES).
 */
#include <stddef.h>

#include "supervisor/agentcmd.h"

const char *const agentcmd_env_drop[] = {
	"HANDOFF_CRASH_AT", "HANDOFF_STALL_AT", "HANDOFF_CRASH_MARKER_DIR",
	"HANDOFF_ROLE",
	"HANDOFF_SOCK_FD", "HANDOFF_DEADLINE_MS", "LISTEN_FDS",
	"LISTEN_FDNAMES", "LISTEN_PID", "NOTIFY_SOCKET", NULL,
};

void
agentcmd_argv(const char *binary, const char *root,
    const char *const *args, unsigned nargs,
    const char (*lnames)[LISTENFDS_NAME_MAX], unsigned nl,
    const char *argv[AGENT_MAX_ARGS + 4], const char *names[LISTENFDS_MAX])
{
	unsigned i, k = 0;

	argv[k++] = binary;
	argv[k++] = "--root";
	argv[k++] = root;
	for (i = 0; i < nargs && i < AGENT_MAX_ARGS; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	for (i = 0; i < nl && i < LISTENFDS_MAX; i++)
		names[i] = lnames[i];
}
