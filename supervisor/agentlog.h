/*
 * agentlog: why an agent died.  Every agent the supervisor spawns writes
 * its stderr into a pipe the supervisor reads on its loop; each line is
 * logged again as logfmt (an agent's own logfmt lines pass unchanged,
 * anything else becomes event=agent.stderr), and the last lines of each
 * agent are kept in a small ring.  With the exit status noted when the
 * agent is reaped, agentlog_describe() tells what killed it: "exit 64;
 * stderr: baton-agent: unrecognized option '--bogus' | usage: ...".
 */
#ifndef BATON_AGENTLOG_H
#define BATON_AGENTLOG_H

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

struct spawn_opts;

/*
 * spawn_agent(o) with the child's stderr on a new pipe read on loop.
 * Returns the pid or -errno, as spawn_agent.  o is borrowed; its
 * stderr_fd is ignored.
 */
pid_t agentlog_spawn(uv_loop_t *loop, const struct spawn_opts *o);

/* The SIGCHLD reaper saw pid end with this wait status. */
void agentlog_reaped(pid_t pid, int status);

/*
 * What became of pid, into buf: its exit code or signal (reaping it when
 * it is a dead child of ours not yet reaped), then the last lines it
 * wrote on stderr.  Reads what is left in its pipe first.  Returns buf.
 */
const char *agentlog_describe(pid_t pid, char *buf, size_t len);

/* Close every pipe (supervisor exit). */
void agentlog_close_all(void);

#endif
