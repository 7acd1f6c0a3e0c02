/*
 * wire: blocking frame I/O on a stream socket, for programs that do one
 * thing at a time (batonctl, the consumer library, tests, the load
 * generator).  The daemons use conn (libuv) instead.
 */
#ifndef BATON_WIRE_H
#define BATON_WIRE_H

#include "proto/frame.h"

/*
 * Send one frame; fds (borrowed, may be NULL) ride with the first byte.
 * Handles partial writes, EINTR and EAGAIN (waits up to timeout_ms in
 * total, -1 = forever).  MSG_NOSIGNAL.  Returns 0 or -errno.
 */
int wire_send(int fd, const struct msg *m, const int *fds, unsigned nfds,
    int timeout_ms);

/*
 * Receive one frame within timeout_ms (-1 = forever): header, fds, body;
 * decode and validate it.  Returns 0 and a frame owned by the caller
 * (frame_release()), -ECONNRESET on EOF before a byte, -ETIMEDOUT,
 * -errno, or -PROTO_E* (everything received has been closed/freed).
 */
int wire_recv(int fd, int timeout_ms, struct frame *ret_f);

/* Connect a SOCK_STREAM unix socket (CLOEXEC) within timeout_ms. */
int wire_connect(const char *path, int timeout_ms);

#endif
