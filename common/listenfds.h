/*
 * listenfds: the systemd socket-activation convention (sd_listen_fds(3)):
 * LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID, listeners from fd 3.
 */
#ifndef BATON_LISTENFDS_H
#define BATON_LISTENFDS_H

#include <sys/types.h>

#define LISTENFDS_START	3
#define LISTENFDS_MAX	16
#define LISTENFDS_NAME_MAX 64

struct listenfd {
	int fd;
	char name[LISTENFDS_NAME_MAX];
};

/*
 * Parse the environment.  When LISTEN_PID is set and is not getpid(), or
 * LISTEN_FDS is unset, there are no listeners (*ret_n = 0, returns 0).
 * Every fd must be a socket (-ENOTSOCK otherwise); LISTEN_FDNAMES must
 * have as many names as fds when set (-EINVAL); a missing name is
 * "unknown" as in systemd.  On success the fds are made CLOEXEC and the
 * variables are unset.  Returns 0 or -errno.
 * (Also: the variables are unset on failure too, as sd_listen_fds(3) does
 * with unset_environment, so they never reach a child; LISTEN_FDS or
 * LISTEN_PID that is not a plain decimal in range is -EINVAL; more fds
 * than max (or LISTENFDS_MAX) is -E2BIG; a closed fd is -EBADF; a name
 * of LISTENFDS_NAME_MAX bytes or more is -ENAMETOOLONG.  An empty name
 * is "unknown".  *ret_n is only written on success.)
 */
int listenfds_parse(struct listenfd *out, unsigned max, unsigned *ret_n);

/* Find a listener by name; NULL when absent. */
const struct listenfd *listenfds_find(const struct listenfd *l, unsigned n,
    const char *name);

/*
 * Format the three variables for a child with pid `pid` and n listeners
 * named names[] into the caller's buffers (each at least 32 bytes for FDS
 * and PID, and n*(LISTENFDS_NAME_MAX+1)+16 for NAMES).
 * Each buffer gets the whole "NAME=value" string, ready for an envp.  A
 * NULL names or NULL/empty name is "unknown"; longer names are cut to
 * LISTENFDS_NAME_MAX-1 bytes.  Uses no malloc (callable after fork).
 */
void listenfds_format(pid_t pid, const char *const *names, unsigned n,
    char *fds_var, char *names_var, char *pid_var);

#endif
