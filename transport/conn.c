/*
 * conn: a frame connection on a libuv loop (contract in conn.h).
 *
 * Invariants:
 * - The fd is non-blocking and watched by one uv_poll_t: UV_READABLE
 *   while reading is wanted (not paused, not draining), UV_WRITABLE only
 *   while the send queue is non-empty.  The poll is level-triggered, so
 *   stopping after FRAMES_PER_WAKE frames loses nothing.
 * - Reads never ask for more than the rest of the current header or
 *   body.  A recvmsg therefore never spans two frames, and the fds that
 *   come with the read of a frame's first byte are that frame's fds.
 *   fds arriving with any later byte are a protocol error.
 * - Every fd is owned by exactly one place: the read state (rfds), one
 *   queued outgoing frame (the dup'ed fds, closed once its first byte is
 *   sent) or the frame handed to frame_cb.  Every exit path closes them.
 * - All bad input goes through conn_reject(): one ERROR/NS_ERROR frame,
 *   reading stops, the fd closes once the queue drains or LINGER_MS
 *   passes.  c->err keeps the first error; close_cb reports it.
 * - The struct outlives conn_close() until both libuv handles have
 *   closed, so conn_close() is safe from any callback, and close_cb runs
 *   exactly once, from the last handle close callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/conn.h"
#include "transport/fdpass.h"
#include "common/log.h"
#include "proto/frame.h"
#include "proto/msg.h"

/* One chatty peer must not starve the others on the loop. */
#define FRAMES_PER_WAKE		16
#define DEFAULT_MAX_QUEUED	(4u << 20)
/* How long a closing conn waits for a peer that does not read. */
#define LINGER_MS		1000
#define REJECT_TEXT_MAX		256

struct outframe {
	struct outframe *next;
	uint8_t *buf;		/* header + body */
	size_t len;
	size_t off;		/* bytes already sent */
	int fds[FRAME_MAX_FDS];	/* dups; closed once byte 0 is sent */
	unsigned nfds;
};

struct conn {
	uv_loop_t *loop;
	uv_poll_t poll;
	uv_timer_t linger;
	int fd;
	int poll_events;	/* what the poll handle is started with */
	int open_handles;	/* handles not yet through their close cb */

	struct conn_opts opts;
	conn_frame_cb frame_cb;
	conn_close_cb close_cb;
	void *data;
	pid_t peer_pid;
	uid_t peer_uid;
	gid_t peer_gid;

	/* The frame being read.  hdr_got == FRAME_HEADER_SIZE means h is
	 * decoded and checked and body has room for h.body_len bytes. */
	uint8_t hdr[FRAME_HEADER_SIZE];
	size_t hdr_got;
	struct frame_header h;
	uint8_t *body;
	size_t body_got;
	int rfds[FRAME_MAX_FDS];
	unsigned rnfds;

	/* Send queue, FIFO. */
	struct outframe *head;
	struct outframe **tailp;
	size_t queued;		/* unsent bytes in the queue */

	bool paused;
	bool delivering;	/* inside frame_cb */
	bool deliver_fds;	/* ... of a frame that came with fds */
	bool hold;		/* frame_cb put its frame back (conn_hold) */
	bool draining;		/* not reading; close when sent out */
	bool rejected;
	bool closed;
	int err;		/* first error seen; 0 = clean */
};

static void on_poll(uv_poll_t *h, int status, int events);
static void do_write(struct conn *c);

static void
set_err(struct conn *c, int err)
{
	if (c->err == 0)
		c->err = err;
}

static void
outframe_free(struct outframe *o)
{
	if (o == NULL)
		return;
	fdpass_close_all(o->fds, o->nfds);
	free(o->buf);
	free(o);
}

/* Drop the partly read frame, closing whatever fds came with it. */
static void
read_reset(struct conn *c)
{
	free(c->body);
	c->body = NULL;
	c->body_got = 0;
	c->hdr_got = 0;
	fdpass_close_all(c->rfds, c->rnfds);
	c->rnfds = 0;
}

static void
on_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->open_handles > 0)
		return;
	if (c->close_cb != NULL)
		c->close_cb(c, c->err, c->data);
	free(c);
}

void
conn_close(struct conn *c)
{
	struct outframe *o;

	if (c == NULL || c->closed)
		return;
	c->closed = true;
	read_reset(c);
	while ((o = c->head) != NULL) {
		c->head = o->next;
		outframe_free(o);
	}
	c->tailp = &c->head;
	c->queued = 0;
	log_debug("conn.close", NULL, "fd=%d peer_pid=%ld err=%d", c->fd,
	    (long)c->peer_pid, c->err);
	/* uv_close stops the poll first: libuv must not watch a closed fd. */
	uv_close((uv_handle_t *)&c->poll, on_handle_closed);
	uv_close((uv_handle_t *)&c->linger, on_handle_closed);
	close(c->fd);
	c->fd = -1;
}

static void
fail(struct conn *c, int err)
{
	set_err(c, err);
	conn_close(c);
}

static void
update_poll(struct conn *c)
{
	int want = 0, r;

	if (c->closed)
		return;
	if (!c->paused && !c->draining)
		want |= UV_READABLE;
	if (c->head != NULL)
		want |= UV_WRITABLE;
	if (want == c->poll_events)
		return;
	if (want == 0)
		r = uv_poll_stop(&c->poll);
	else
		r = uv_poll_start(&c->poll, want, on_poll);
	if (r < 0) {
		fail(c, r);
		return;
	}
	c->poll_events = want;
}

static void
on_linger(uv_timer_t *t)
{
	struct conn *c = t->data;

	log_debug("conn.linger_expired", "peer did not read; closing",
	    "fd=%d queued=%zu", c->fd, c->queued);
	fail(c, -ETIMEDOUT);
}

/* Stop reading and close once everything queued has been sent. */
static void
drain(struct conn *c)
{
	if (c->closed)
		return;
	c->draining = true;
	read_reset(c);
	if (c->head == NULL) {
		conn_close(c);
		return;
	}
	if (!uv_is_active((uv_handle_t *)&c->linger))
		uv_timer_start(&c->linger, on_linger, LINGER_MS, 0);
	update_poll(c);
}

void
conn_close_after_flush(struct conn *c)
{
	if (c == NULL || c->closed)
		return;
	drain(c);
}

/*
 * Encode m and append it to the queue.  force skips the queue limit: a
 * rejection's one ERROR frame must go out even when the queue is full.
 */
static int
enqueue(struct conn *c, const struct msg *m, const int *fds, unsigned nfds,
    bool force)
{
	struct outframe *o = NULL;
	unsigned i;
	int r;

	if (nfds > FRAME_MAX_FDS || (nfds > 0 && fds == NULL))
		return -EINVAL;
	o = calloc(1, sizeof(*o));
	if (o == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < FRAME_MAX_FDS; i++)
		o->fds[i] = -1;
	o->nfds = nfds;
	r = frame_encode(m, nfds, &o->buf, &o->len);
	if (r < 0)
		goto out;
	if (!force && c->queued + o->len > c->opts.max_queued) {
		r = -ENOBUFS;
		goto out;
	}
	for (i = 0; i < nfds; i++) {
		o->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (o->fds[i] < 0) {
			r = -errno;
			goto out;
		}
	}
	*c->tailp = o;
	c->tailp = &o->next;
	c->queued += o->len;
	o = NULL;
	update_poll(c);
	r = 0;
out:
	outframe_free(o);
	return r;
}

int
conn_send(struct conn *c, const struct msg *m, const int *fds,
    unsigned nfds)
{
	int r;

	if (c->closed || c->draining)
		return -EPIPE;
	r = enqueue(c, m, fds, nfds, false);
	/*
	 * Write now rather than on the next loop turn: a frame the caller
	 * has "sent" is on the wire unless the socket is full, so a process
	 * that dies right after sending (a crash point) has really sent it.
	 */
	if (r == 0)
		do_write(c);
	return r;
}

static const char *
ns_kind(int err)
{
	switch (err) {
	case -PROTO_EVERSION:
		return "unsupported_version";
	case -PROTO_ETOOBIG:
	case -PROTO_ELIMIT:
	case -ENOBUFS:
		return "limit_exceeded";
	case -PROTO_ENFDS:
		return "fd_passing";
	default:
		return "invalid_request";
	}
}

void
conn_reject(struct conn *c, int err, const char *message)
{
	char text[REJECT_TEXT_MAX];
	struct msg m;
	int r;

	if (c == NULL || c->closed || c->rejected)
		return;
	c->rejected = true;
	set_err(c, err);
	/* Bounded so the ERROR body stays far below every string limit. */
	snprintf(text, sizeof(text), "%s",
	    message != NULL ? message : proto_strerror(err));
	log_warn("conn.reject", text, "fd=%d peer_pid=%ld peer_uid=%ld code=%s",
	    c->fd, (long)c->peer_pid, (long)c->peer_uid, proto_errcode(err));

	memset(&m, 0, sizeof(m));
	if (c->opts.errstyle == CONN_ERR_NS) {
		m.type = MSG_NS_ERROR;
		m.u.NS_ERROR.allocation_id = NULL;
		m.u.NS_ERROR.kind = ns_kind(err);
		m.u.NS_ERROR.message = text;
	} else {
		m.type = MSG_ERROR;
		m.u.ERROR.code = proto_errcode(err);
		m.u.ERROR.message = text;
	}
	r = enqueue(c, &m, NULL, 0, true);
	if (r < 0)
		log_debug("conn.reject_unsent", proto_strerror(r), "fd=%d",
		    c->fd);
	drain(c);
}

static void
do_write(struct conn *c)
{
	struct outframe *o;
	bool progress = false;
	ssize_t n;

	while ((o = c->head) != NULL) {
		bool first = o->off == 0;

		n = fdpass_send(c->fd, o->buf + o->off, o->len - o->off,
		    first ? o->fds : NULL, first ? o->nfds : 0, MSG_DONTWAIT);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN || n == -EWOULDBLOCK || n == 0)
			break;
		if (n < 0) {
			fail(c, (int)n);
			return;
		}
		progress = true;
		/* The kernel holds its own references once a byte is out. */
		if (first)
			fdpass_close_all(o->fds, o->nfds);
		o->off += (size_t)n;
		c->queued -= (size_t)n;
		if (o->off < o->len)
			continue;
		c->head = o->next;
		if (c->head == NULL)
			c->tailp = &c->head;
		outframe_free(o);
	}
	if (c->draining && c->head == NULL) {
		conn_close(c);
		return;
	}
	/* A slow reader that keeps reading is not a dead one, but a
	 * rejected peer gets no more than the fixed grace. */
	if (progress && c->draining && !c->rejected)
		uv_timer_start(&c->linger, on_linger, LINGER_MS, 0);
	update_poll(c);
}

/*
 * One recvmsg into buf.  Returns bytes (0 = EOF), -EAGAIN, -PROTO_ENFDS
 * for fds that do not belong (already closed), or -errno.  Only the read
 * of a frame's first byte may carry fds; they go to c->rfds.
 */
static ssize_t
recv_some(struct conn *c, uint8_t *buf, size_t len, bool first)
{
	int fds[FRAME_MAX_FDS];
	unsigned nfds = 0, i;
	ssize_t n;

	do
		n = fdpass_recv(c->fd, buf, len, fds, FRAME_MAX_FDS, &nfds,
		    MSG_DONTWAIT);
	while (n == -EINTR);
	if (n == -EWOULDBLOCK)
		n = -EAGAIN;
	/* fdpass already closed whatever came with a bad control message. */
	if (n == -EMSGSIZE || n == -EBADMSG)
		return -PROTO_ENFDS;
	if (n < 0)
		return n;
	if (nfds > 0 && !first) {
		fdpass_close_all(fds, nfds);
		return -PROTO_ENFDS;
	}
	if (first) {
		for (i = 0; i < nfds; i++)
			c->rfds[i] = fds[i];
		c->rnfds = nfds;
	}
	return n;
}

/* Header complete: decode it and check it against this conn's limits. */
static int
check_header(struct conn *c, char *why, size_t whylen)
{
	int r;

	r = frame_header_decode(c->hdr, &c->h);
	if (r < 0)
		return r;
	if (c->h.nfds > c->opts.max_fds) {
		snprintf(why, whylen, "frame carries %u fds, %u allowed",
		    c->h.nfds, c->opts.max_fds);
		return -PROTO_ENFDS;
	}
	if (c->h.nfds != c->rnfds) {
		snprintf(why, whylen, "header says %u fds, %u received",
		    c->h.nfds, c->rnfds);
		return -PROTO_ENFDS;
	}
	if (c->h.body_len > c->opts.max_body) {
		snprintf(why, whylen, "body of %u bytes, limit %zu",
		    c->h.body_len, c->opts.max_body);
		return -PROTO_ETOOBIG;
	}
	if (c->h.body_len > 0) {
		c->body = malloc(c->h.body_len);
		if (c->body == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* Hand the completed frame to the owner; the read state starts over. */
static int
deliver(struct conn *c)
{
	static const uint8_t empty[1];
	const char *why = NULL;
	struct frame f;
	struct msg m;
	uint8_t *raw;
	unsigned i;
	int r;

	r = msg_decode(c->h.type, c->body != NULL ? c->body : empty,
	    c->h.body_len, &m);
	/* Kept until frame_cb returns: it may put the frame back. */
	raw = c->body;
	c->body = NULL;
	if (r < 0) {
		free(raw);
		conn_reject(c, r, NULL);
		return r;
	}
	r = msg_validate(&m, &why);
	if (r < 0) {
		free(raw);
		msg_free(&m);
		conn_reject(c, r, why);
		return r;
	}
	frame_init(&f);
	f.h = c->h;
	f.m = m;
	for (i = 0; i < c->rnfds; i++) {
		f.fds[i] = c->rfds[i];
		c->rfds[i] = -1;
	}
	f.nfds = c->rnfds;
	c->rnfds = 0;
	c->hdr_got = 0;
	c->body_got = 0;
	if (c->frame_cb == NULL) {
		free(raw);
		frame_release(&f);
		return 0;
	}
	c->delivering = true;
	c->deliver_fds = f.nfds > 0;
	c->hold = false;
	c->frame_cb(c, &f, c->data);
	c->delivering = false;
	if (c->hold && !c->closed) {
		/* Read again, whole, when reading restarts (c->h is intact). */
		c->hold = false;
		c->body = raw;
		c->hdr_got = FRAME_HEADER_SIZE;
		c->body_got = c->h.body_len;
		return 0;
	}
	free(raw);
	return 0;
}

/*
 * Read what is available of one frame.  Returns 1 when a frame was
 * delivered, 0 when the socket is empty or the conn is done reading.
 */
static int
read_frame(struct conn *c)
{
	char why[128];
	ssize_t n;
	int r;

	while (c->hdr_got < FRAME_HEADER_SIZE) {
		n = recv_some(c, c->hdr + c->hdr_got,
		    FRAME_HEADER_SIZE - c->hdr_got, c->hdr_got == 0);
		if (n <= 0)
			goto short_read;
		c->hdr_got += (size_t)n;
		if (c->hdr_got < FRAME_HEADER_SIZE)
			continue;
		why[0] = '\0';
		r = check_header(c, why, sizeof(why));
		if (r < 0) {
			conn_reject(c, r, why[0] != '\0' ? why : NULL);
			return 0;
		}
	}
	while (c->body_got < c->h.body_len) {
		n = recv_some(c, c->body + c->body_got,
		    c->h.body_len - c->body_got, false);
		if (n <= 0)
			goto short_read;
		c->body_got += (size_t)n;
	}
	return deliver(c) == 0 ? 1 : 0;

short_read:
	if (n == -EAGAIN)
		return 0;
	if (n == -PROTO_ENFDS)
		conn_reject(c, -PROTO_ENFDS, c->hdr_got == 0 ?
		    "too many fds or truncated control data" :
		    "fds attached after a frame's first byte");
	else if (n < 0)
		fail(c, (int)n);
	else if (c->hdr_got > 0)
		conn_reject(c, -PROTO_ETRUNC, "closed inside a frame");
	else
		drain(c);	/* clean EOF: still send what is queued */
	return 0;
}

/* An error event: name the socket's own error rather than libuv's EBADF. */
static int
poll_error(struct conn *c, int status)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
	    soerr != 0)
		return -soerr;
	return status;
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;
	int i;

	if (c->closed)
		return;
	if (status < 0) {
		fail(c, poll_error(c, status));
		return;
	}
	if (events & UV_WRITABLE)
		do_write(c);
	if (!(events & UV_READABLE))
		return;
	for (i = 0; i < FRAMES_PER_WAKE; i++) {
		if (c->closed || c->paused || c->draining)
			break;
		if (read_frame(c) == 0)
			break;
	}
}

int
conn_read_now(struct conn *c, unsigned max_frames)
{
	unsigned n = 0;

	while (n < max_frames && !c->closed && !c->paused && !c->draining &&
	    read_frame(c) == 1)
		n++;
	return (int)n;
}

int
conn_open(uv_loop_t *loop, int fd, const struct conn_opts *opts,
    conn_frame_cb frame_cb, conn_close_cb close_cb, void *data,
    struct conn **ret)
{
	struct conn *c = NULL;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int flags, r, i;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (opts != NULL)
		c->opts = *opts;
	if (c->opts.max_body == 0 || c->opts.max_body > FRAME_MAX_BODY)
		c->opts.max_body = FRAME_MAX_BODY;
	if (c->opts.max_queued == 0)
		c->opts.max_queued = DEFAULT_MAX_QUEUED;
	if (c->opts.max_fds > FRAME_MAX_FDS)
		c->opts.max_fds = FRAME_MAX_FDS;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		r = -errno;
		goto out;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		r = -errno;
		goto out;
	}
	r = uv_poll_init(loop, &c->poll, fd);
	if (r < 0)
		goto out;
	/* From here the handles belong to the loop: free through conn_close. */
	uv_timer_init(loop, &c->linger);
	c->poll.data = c;
	c->linger.data = c;
	c->open_handles = 2;
	c->loop = loop;
	c->fd = fd;
	c->frame_cb = frame_cb;
	c->data = data;
	c->peer_pid = cred.pid;
	c->peer_uid = cred.uid;
	c->peer_gid = cred.gid;
	for (i = 0; i < FRAME_MAX_FDS; i++)
		c->rfds[i] = -1;
	c->tailp = &c->head;
	update_poll(c);
	if (c->closed)
		return c->err;	/* conn_close took fd and frees c */
	c->close_cb = close_cb;
	*ret = c;
	return 0;
out:
	close(fd);
	free(c);
	return r;
}

void
conn_pause(struct conn *c)
{
	c->paused = true;
	update_poll(c);
}

int
conn_hold(struct conn *c)
{
	if (!c->delivering)
		return -EINVAL;
	if (c->deliver_fds)
		return -EBUSY;
	c->hold = true;
	conn_pause(c);
	return 0;
}

void
conn_resume(struct conn *c)
{
	c->paused = false;
	update_poll(c);
}

size_t
conn_queued(const struct conn *c)
{
	return c->queued;
}

int
conn_fd(const struct conn *c)
{
	return c->fd;
}

void
conn_set_data(struct conn *c, void *data)
{
	c->data = data;
}

void *
conn_data(const struct conn *c)
{
	return c->data;
}

void
conn_peer(const struct conn *c, pid_t *pid, uid_t *uid, gid_t *gid)
{
	if (pid != NULL)
		*pid = c->peer_pid;
	if (uid != NULL)
		*uid = c->peer_uid;
	if (gid != NULL)
		*gid = c->peer_gid;
}

/* ---- moving a connection to another process ---- */

void
conn_moved_free(struct conn_moved *m)
{
	if (m == NULL)
		return;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	free(m->unread);
	free(m->unsent);
	m->unread = m->unsent = NULL;
	m->unread_len = m->unsent_len = 0;
}

int
conn_export(struct conn *c, struct conn_moved *ret)
{
	struct conn_moved m = { .fd = -1 };
	struct outframe *o;
	size_t n = 0;
	int r;

	if (c->closed || c->draining || c->rejected)
		return -EPIPE;
	if (c->rnfds > 0)
		return -EBUSY;
	for (o = c->head; o != NULL; o = o->next) {
		if (o->off == 0 && o->nfds > 0)
			return -EBUSY;
		n += o->len - o->off;
	}
	m.unread_len = c->hdr_got + c->body_got;
	if (m.unread_len > 0) {
		m.unread = malloc(m.unread_len);
		if (m.unread == NULL)
			goto nomem;
		memcpy(m.unread, c->hdr, c->hdr_got);
		if (c->body_got > 0)
			memcpy(m.unread + c->hdr_got, c->body, c->body_got);
	}
	if (n > 0) {
		m.unsent = malloc(n);
		if (m.unsent == NULL)
			goto nomem;
		for (o = c->head; o != NULL; o = o->next) {
			memcpy(m.unsent + m.unsent_len, o->buf + o->off,
			    o->len - o->off);
			m.unsent_len += o->len - o->off;
		}
	}
	m.fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 3);
	if (m.fd < 0) {
		r = -errno;
		conn_moved_free(&m);
		return r;
	}
	conn_close(c);
	*ret = m;
	return 0;
nomem:
	conn_moved_free(&m);
	return -ENOMEM;
}

/* Feed the exporter's partial or held frame into a fresh conn. */
static int
import_unread(struct conn *c, const uint8_t *p, size_t len)
{
	char why[128];
	size_t k;

	k = len < FRAME_HEADER_SIZE ? len : FRAME_HEADER_SIZE;
	memcpy(c->hdr, p, k);
	c->hdr_got = k;
	if (k < FRAME_HEADER_SIZE)
		return 0;
	/* A moved conn carries no fds in its partial frame (export checks). */
	if (check_header(c, why, sizeof(why)) < 0 ||
	    len - k > (size_t)c->h.body_len) {
		read_reset(c);
		return -EBADMSG;
	}
	if (len > k)
		memcpy(c->body, p + k, len - k);
	c->body_got = len - k;
	return 0;
}

int
conn_import(uv_loop_t *loop, struct conn_moved *m,
    const struct conn_opts *opts, conn_frame_cb frame_cb,
    conn_close_cb close_cb, void *data, struct conn **ret)
{
	struct outframe *o = NULL;
	struct conn *c;
	unsigned i;
	int fd = m->fd, r;

	m->fd = -1;
	if (m->unsent_len > 0) {
		o = calloc(1, sizeof(*o));
		if (o == NULL) {
			close(fd);
			conn_moved_free(m);
			return -ENOMEM;
		}
		for (i = 0; i < FRAME_MAX_FDS; i++)
			o->fds[i] = -1;
		o->buf = m->unsent;
		o->len = m->unsent_len;
		m->unsent = NULL;
	}
	r = conn_open(loop, fd, opts, frame_cb, close_cb, data, &c);
	if (r < 0) {
		outframe_free(o);
		conn_moved_free(m);
		return r;
	}
	if (m->unread_len > 0 && import_unread(c, m->unread, m->unread_len) < 0) {
		c->close_cb = NULL;	/* never the owner's: not yet returned */
		conn_close(c);
		outframe_free(o);
		conn_moved_free(m);
		return -EBADMSG;
	}
	if (o != NULL) {
		*c->tailp = o;
		c->tailp = &o->next;
		c->queued += o->len;
	}
	conn_moved_free(m);
	update_poll(c);
	*ret = c;
	return 0;
}
