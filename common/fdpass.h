/*
 * fdpass: sendmsg/recvmsg with SCM_RIGHTS.  Received fds are CLOEXEC
 * (MSG_CMSG_CLOEXEC).  A receive that was truncated (MSG_CTRUNC), carried
 * a foreign control message or more fds than asked for closes every fd it
 * got and fails: the caller never owns a partial set.
 */
#ifndef BATON_FDPASS_H
#define BATON_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Send len bytes (at least 1 when nfds > 0) with fds (borrowed) attached
 * to the first byte.  MSG_NOSIGNAL | flags.  Returns bytes sent or -errno.
 */
ssize_t fdpass_send(int sock, const void *buf, size_t len, const int *fds,
    unsigned nfds, int flags);

/*
 * Receive up to len bytes and up to maxfds fds into fds[] (*ret_nfds set).
 * Returns bytes received (0 = EOF), or -errno: -EMSGSIZE when the control
 * data was truncated or more than maxfds fds arrived (all closed), -EBADMSG
 * for an unexpected control message (all closed).
 */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds,
    unsigned maxfds, unsigned *ret_nfds, int flags);

/* Close n fds (skipping negative ones) and set each slot to -1. */
void fdpass_close_all(int *fds, unsigned n);

#endif
