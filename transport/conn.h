/*
 * conn: a frame connection on a libuv loop.  uv_poll watches the fd and
 * the module does its own recvmsg/sendmsg (uv_write2 cannot carry an
 * arbitrary set of fds).  Partial reads and writes are kept across
 * wake-ups; outgoing frames wait in a bounded per-connection queue.
 *
 * Every received frame is decoded and validated before the owner sees
 * it.  Bad input from the peer (bad header, bad body, fd count mismatch,
 * a frame over the limit) is answered with an ERROR frame (or NS_ERROR
 * on a namespace connection), then the connection is closed and close_cb
 * reports the reason.  Nothing the peer sends can end the process.
 */
#ifndef BATON_CONN_H
#define BATON_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/frame.h"

struct conn;

enum conn_errstyle {
	CONN_ERR_CONTROL,	/* reject with ERROR{code, message} */
	CONN_ERR_NS,		/* reject with NS_ERROR{nil, kind, message} */
};

struct conn_opts {
	size_t max_body;	/* 0 = FRAME_MAX_BODY */
	size_t max_queued;	/* bytes waiting to be sent; 0 = 4 MiB */
	unsigned max_fds;	/* fds accepted per frame; 0 = none allowed */
	enum conn_errstyle errstyle;
};

/*
 * frame_cb takes ownership of *f (frame_release() it).  It may call
 * conn_close() on this connection.  The struct itself is the conn's and
 * lives only for the call: copy it (`struct frame keep = *f;`) to keep
 * the message and fds longer.  At most 16 frames are delivered per
 * wake-up of the loop.
 */
typedef void (*conn_frame_cb)(struct conn *c, struct frame *f, void *data);
/*
 * close_cb runs once, after the fd is closed and before the conn is
 * freed: err 0 for a clean EOF or conn_close(), -errno or -PROTO_E*.
 * It runs from the loop (a libuv close callback), never from inside
 * conn_close() itself.  On a clean EOF frames already queued are still
 * sent (the peer may have only shut down its write side) before the
 * close; -ETIMEDOUT when a peer does not read them within a second.
 */
typedef void (*conn_close_cb)(struct conn *c, int err, void *data);

/*
 * Takes fd, a unix stream socket (made non-blocking).  Returns 0 or
 * -errno (fd closed); fails when SO_PEERCRED cannot be read.
 */
int conn_open(uv_loop_t *loop, int fd, const struct conn_opts *opts,
    conn_frame_cb frame_cb, conn_close_cb close_cb, void *data,
    struct conn **ret);

/*
 * Queue one frame.  fds are borrowed: the conn keeps CLOEXEC duplicates
 * until they are sent.  Returns 0, -ENOBUFS when the queue limit would be
 * passed (the frame is not queued), -EPIPE once closing (also after
 * conn_close_after_flush(), conn_reject() or the peer's EOF), or -errno.
 */
int conn_send(struct conn *c, const struct msg *m, const int *fds,
    unsigned nfds);

/*
 * Read and deliver, right now, up to max_frames frames already waiting in
 * the socket (never blocks).  For an owner about to act on a timer: what
 * the peer said before the timer fired must count first.  Returns the
 * number delivered.
 */
int conn_read_now(struct conn *c, unsigned max_frames);

/* Stop / restart reading (writes go on). */
void conn_pause(struct conn *c);

/*
 * From inside frame_cb only: put the frame being delivered back, unread,
 * and pause.  It stays at the head of what c has read: conn_export moves
 * it with the connection, and once reading restarts, conn_read_now (or
 * the next readable event) delivers it again.  The owner still releases
 * the struct frame it was given.  -EBUSY when the frame carried fds
 * (they cannot be put back), -EINVAL outside frame_cb.
 */
int conn_hold(struct conn *c);
void conn_resume(struct conn *c);

/* Close now; queued frames are dropped.  close_cb(c, 0) follows. */
void conn_close(struct conn *c);
/*
 * Close once the send queue is empty (reading stops now).  A peer that
 * stops reading gets one second without progress, then -ETIMEDOUT.
 */
void conn_close_after_flush(struct conn *c);

/*
 * Reject the peer: queue ERROR/NS_ERROR for err (past the queue limit),
 * stop reading, close after flush or after one second, whichever comes
 * first; close_cb gets err.  message (borrowed, may be NULL for
 * proto_strerror(err)) is cut at 255 bytes.  Only the first call counts.
 */
void conn_reject(struct conn *c, int err, const char *message);

/*
 * Moving a connection to another process (docs/PROTOCOL.md, "Moving
 * connections").  What the server side held between two frames: the
 * socket, the bytes of a frame read only in part, and the bytes queued
 * but not yet sent.  Every field is owned by the struct.
 */
struct conn_moved {
	int fd;			/* a duplicate of the socket (CLOEXEC) */
	uint8_t *unread;	/* less than one frame, header first */
	size_t unread_len;
	uint8_t *unsent;	/* whole frames but the first, which may be
				 * cut at its front (bytes already sent) */
	size_t unsent_len;
};

/* Close the socket and free the bytes; fd -1 and NULLs after. */
void conn_moved_free(struct conn_moved *m);

/*
 * Take what c holds into *ret (a duplicate of the socket, copies of the
 * bytes) and close c: close_cb(c, 0) follows, but the peer sees nothing
 * because *ret still holds the socket.  Fails, leaving c as it was, with
 * -EBUSY when a queued frame still carries fds or a partial read holds
 * fds (they cannot be moved in a byte stream), -EPIPE once c is closing,
 * or -errno.
 */
int conn_export(struct conn *c, struct conn_moved *ret);

/*
 * The reverse, in this process: open a conn on m->fd and carry on where
 * the exporter stopped: unread bytes are the start of the next frame
 * (or a whole one the exporter held, conn_hold: the owner delivers it with
 * conn_read_now once it can serve it), unsent bytes go out first.  Takes
 * *m (emptied) on success and on failure.  -EBADMSG when unread goes past
 * one frame or holds a header this conn refuses.
 */
int conn_import(uv_loop_t *loop, struct conn_moved *m,
    const struct conn_opts *opts, conn_frame_cb frame_cb,
    conn_close_cb close_cb, void *data, struct conn **ret);

size_t conn_queued(const struct conn *c);
int conn_fd(const struct conn *c);
void conn_set_data(struct conn *c, void *data);
void *conn_data(const struct conn *c);
/* SO_PEERCRED of the peer, read at conn_open. */
void conn_peer(const struct conn *c, pid_t *pid, uid_t *uid, gid_t *gid);

#endif
