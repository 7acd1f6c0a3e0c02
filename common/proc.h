/* proc: facts about other processes from /proc, and our own fd limit. */
#ifndef BATON_PROC_H
#define BATON_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * pid exists and is not a zombie (a killed process not yet reaped runs
 * no more code).  EPERM counts as existing.
 */
bool proc_running(pid_t pid);

/*
 * Raise this process's soft RLIMIT_NOFILE to its hard limit (1024 soft
 * under systemd): for a process that holds one fd per client and uses no
 * select().  Best effort.
 */
void proc_raise_nofile(void);

#endif
