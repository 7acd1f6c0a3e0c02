/* proc: facts about other processes from /proc. */
#ifndef BATON_PROC_H
#define BATON_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * pid exists and is not a zombie (a killed process not yet reaped runs
 * no more code).  EPERM counts as existing.
 */
bool proc_running(pid_t pid);

#endif
