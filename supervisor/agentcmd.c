/*
 * agentcmd: an agent's command line and the environment names dropped
 * for it.  Invariants: every agent is started with --root first and at
 * most AGENT_MAX_ARGS extra arguments; the names of the listeners it
 * inherits are in the order of the fds (LISTEN_FDNAMES).
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/spawn.h"
#include "supervisor/agentcmd.h"
#include "supervisor/agentlog.h"

const char *const agentcmd_env_drop[] = {
	"HANDOFF_CRASH_AT", "HANDOFF_STALL_AT", "HANDOFF_CRASH_MARKER_DIR",
	"HANDOFF_ROLE", "HANDOFF_STANDBY",
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

pid_t
agentcmd_spawn_successor(uv_loop_t *loop,
    const struct agentcmd_successor *p, int *ret_fd)
{
	const char *argv[AGENT_MAX_ARGS + 4];
	const char *envx[AGENT_MAX_ENV + 4];
	const char *names[LISTENFDS_MAX];
	unsigned i, k = 0;
	int sp[2];
	pid_t pid;

	agentcmd_argv(p->binary, p->root, p->args, p->nargs, p->lnames, p->nl,
	    argv, names);
	envx[k++] = "HANDOFF_ROLE=successor";
	for (i = 0; p->env && p->env[i] && k < AGENT_MAX_ENV + 3; i++)
		envx[k++] = p->env[i];
	envx[k] = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	pid = agentlog_spawn(loop, &(struct spawn_opts){
		.path = p->binary,
		.argv = argv,
		.env_extra = envx,
		.env_drop = agentcmd_env_drop,
		.listen_fds = p->lfds,
		.listen_names = names,
		.n_listen = p->nl,
		.extra_fd = sp[1],
		.extra_fd_env = "HANDOFF_SOCK_FD",
		.pdeathsig = SIGKILL,
		.nice = p->nice,
		.idle = p->idle,
	});
	close(sp[1]);
	if (pid < 0) {
		close(sp[0]);
		return pid;
	}
	*ret_fd = sp[0];
	return pid;
}
