/*
 * procwatch: learn that a process exited, whether or not it is our child
 * (an agent adopted after a supervisor restart is not), through a pidfd
 * polled on the loop.  Reaping is separate (SIGCHLD handler).
 */
#ifndef BATON_PROCWATCH_H
#define BATON_PROCWATCH_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

struct procwatch;
typedef void (*procwatch_cb)(struct procwatch *w, pid_t pid, void *data);

/* Returns 0, -ESRCH when pid is already gone, or -errno. */
int procwatch_start(uv_loop_t *loop, pid_t pid, procwatch_cb cb, void *data,
    struct procwatch **ret);
/* Stop watching and free (safe in the callback).  NULL is fine. */
void procwatch_stop(struct procwatch *w);
/* Send a signal through the pidfd (no pid-reuse race).  0 or -errno. */
int procwatch_kill(struct procwatch *w, int sig);

#endif
