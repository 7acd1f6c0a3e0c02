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

/* Most fds one message carries: FRAME_MAX_FDS (SPEC §3). */
#define FDPASS_MAX_FDS 16

/*
 * Send len bytes (at least 1 when nfds > 0) with fds (borrowed) attached
 * to the first byte.  MSG_NOSIGNAL | flags.  Returns bytes sent or -errno.
 * nfds over FDPASS_MAX_FDS, or fds without a byte to carry them, is
 * -EINVAL.  A short count is possible on a stream socket; the fds went
 * with the first byte, so the caller sends the rest without them.
 */
ssize_t fdpass_send(int sock, const void *buf, size_t len, const int *fds,
    unsigned nfds, int flags);

/*
 * Receive up to len bytes and up to maxfds fds into fds[] (*ret_nfds set).
 * Returns bytes received (0 = EOF), or -errno: -EMSGSIZE when the control
 * data was truncated or more than maxfds fds arrived (all closed), -EBADMSG
 * for an unexpected control message (all closed).  maxfds is capped at
 * FDPASS_MAX_FDS.  *ret_nfds is 0 on every failure.  EINTR is retried.
 */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds,
    unsigned maxfds, unsigned *ret_nfds, int flags);

/* Close n fds (skipping negative ones) and set each slot to -1. */
void fdpass_close_all(int *fds, unsigned n);

#endif
