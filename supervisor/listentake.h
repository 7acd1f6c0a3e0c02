/*
 * listentake: take a live process's listening sockets with pidfd_getfd,
 * for a supervisor that restarts while an agent it cannot adopt still
 * holds them.  Binding fresh sockets at the same paths would strand every
 * client queued in the old backlogs; taking the very same sockets keeps
 * them (SPEC §4 invariant 1).
 */
#ifndef BATON_LISTENTAKE_H
#define BATON_LISTENTAKE_H

#include <limits.h>
#include <sys/types.h>

/*
 * Find, among pid's open fds, a listening unix socket bound at each of
 * paths[0..n-1] and duplicate it into this process (fds[i], CLOEXEC).
 * All or nothing: returns n, or -ENOENT when any path has no listener in
 * pid (nothing is kept), or -errno (-EPERM without the right to trace).
 */
int listen_take(pid_t pid, const char (*paths)[PATH_MAX], unsigned n,
    int *fds);

#endif
