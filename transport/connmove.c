/*
 * connmove: records of moved connections on a unix stream socket
 * (connmove.h has the format).
 *
 * Invariants:
 * - a MOVE head's socket comes with the head's first byte and with no
 *   other byte; fds anywhere else refuse the stream;
 * - every length is checked against its limit before anything is
 *   allocated for it, and the count against END;
 * - the receiver returns items only after END: until then they are its
 *   own, and a refusal closes them all.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "proto/frame.h"
#include "transport/connmove.h"
#include "transport/fdpass.h"

#define HEAD_LEN	16
#define MAGIC_MOVE	0x42544E4Du	/* "BTNM" */
#define MAGIC_END	0x42544E45u	/* "BTNE" */
#define VERSION		1
#define MAX_UNREAD	(FRAME_HEADER_SIZE + FRAME_MAX_BODY)

struct connmove_rx {
	int sock;
	uint8_t head[HEAD_LEN];
	size_t head_got;
	struct connmove_item cur;	/* the record being read */
	size_t unread_got, unsent_got;
	struct connmove_item *v;
	unsigned n, cap;
	bool done;			/* END seen */
	int err;			/* refused: the first error */
};

static void
head_encode(uint8_t *h, uint32_t magic, unsigned flags, uint32_t a,
    uint32_t b)
{
	be_put32(h, magic);
	be_put16(h + 4, VERSION);
	be_put16(h + 6, (uint16_t)flags);
	be_put32(h + 8, a);
	be_put32(h + 12, b);
}

void
connmove_items_free(struct connmove_item *v, unsigned n)
{
	unsigned i;

	for (i = 0; v && i < n; i++)
		conn_moved_free(&v[i].c);
	free(v);
}

static int
wait_fd(int fd, short events, uint64_t deadline_ms)
{
	uint64_t now = clock_mono_ms();
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	if (now >= deadline_ms)
		return -ETIMEDOUT;
	r = poll(&p, 1, (int)(deadline_ms - now > 60000 ? 60000 :
	    deadline_ms - now));
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* All of buf, fds with its first byte, before deadline_ms. */
static int
send_all(int sock, const uint8_t *buf, size_t len, const int *fds,
    unsigned nfds, uint64_t deadline_ms)
{
	size_t off = 0;
	ssize_t n;
	int r;

	while (off < len) {
		n = fdpass_send(sock, buf + off, len - off,
		    off == 0 ? fds : NULL, off == 0 ? nfds : 0, MSG_DONTWAIT);
		if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
			r = wait_fd(sock, POLLOUT, deadline_ms);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return (int)n;
		off += (size_t)n;
	}
	return 0;
}

int
connmove_send(int sock, const struct connmove_item *v, unsigned n,
    uint64_t deadline_ms)
{
	uint8_t h[HEAD_LEN];
	unsigned i;
	int r;

	if (n > CONNMOVE_MAX_CONNS)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		const struct conn_moved *c = &v[i].c;

		if (c->fd < 0 || c->unread_len > MAX_UNREAD ||
		    c->unsent_len > CONNMOVE_MAX_UNSENT)
			return -EINVAL;
		head_encode(h, MAGIC_MOVE, v[i].flags, (uint32_t)c->unread_len,
		    (uint32_t)c->unsent_len);
		r = send_all(sock, h, sizeof(h), &c->fd, 1, deadline_ms);
		if (r == 0 && c->unread_len)
			r = send_all(sock, c->unread, c->unread_len, NULL, 0,
			    deadline_ms);
		if (r == 0 && c->unsent_len)
			r = send_all(sock, c->unsent, c->unsent_len, NULL, 0,
			    deadline_ms);
		if (r < 0)
			return r;
	}
	head_encode(h, MAGIC_END, 0, n, 0);
	return send_all(sock, h, sizeof(h), NULL, 0, deadline_ms);
}

int
connmove_rx_new(int sock, struct connmove_rx **ret)
{
	struct connmove_rx *rx;
	int fl = fcntl(sock, F_GETFL);

	if (fl < 0 || fcntl(sock, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	rx = calloc(1, sizeof(*rx));
	if (!rx)
		return -ENOMEM;
	rx->sock = sock;
	rx->cur.c.fd = -1;
	*ret = rx;
	return 0;
}

static void
cur_reset(struct connmove_rx *rx)
{
	conn_moved_free(&rx->cur.c);
	rx->cur.flags = 0;
	rx->head_got = rx->unread_got = rx->unsent_got = 0;
}

static int
refuse(struct connmove_rx *rx, int err)
{
	cur_reset(rx);
	connmove_items_free(rx->v, rx->n);
	rx->v = NULL;
	rx->n = rx->cap = 0;
	rx->err = err;
	return err;
}

/* One recv into buf; fds only where want_fd (then into *fd).  */
static ssize_t
recv_part(struct connmove_rx *rx, uint8_t *buf, size_t len, bool want_fd,
    int *fd)
{
	int fds[FDPASS_MAX_FDS];
	unsigned nfds = 0;
	ssize_t n;

	n = fdpass_recv(rx->sock, buf, len, fds, want_fd ? 1 : 0, &nfds,
	    MSG_DONTWAIT);
	if (n == -EWOULDBLOCK)
		n = -EAGAIN;
	if (n == -EMSGSIZE)
		return -EBADMSG;	/* fds where none belong */
	if (n > 0 && nfds == 1)
		*fd = fds[0];
	return n;
}

/* The head is complete: check it and get ready for the payload. */
static int
head_done(struct connmove_rx *rx)
{
	uint32_t magic = be_get32(rx->head), a = be_get32(rx->head + 8);
	uint32_t b = be_get32(rx->head + 12);
	unsigned flags = be_get16(rx->head + 6);

	if (be_get16(rx->head + 4) != VERSION)
		return -EBADMSG;
	if (magic == MAGIC_END) {
		if (rx->cur.c.fd >= 0 || a != rx->n || flags || b)
			return -EBADMSG;
		rx->done = true;
		rx->head_got = 0;
		return 0;
	}
	if (magic != MAGIC_MOVE || rx->cur.c.fd < 0 ||
	    flags & ~CONNMOVE_F_SUBSCRIBER || a > MAX_UNREAD ||
	    b > CONNMOVE_MAX_UNSENT || rx->n >= CONNMOVE_MAX_CONNS)
		return -EBADMSG;
	rx->cur.flags = flags;
	rx->cur.c.unread_len = a;
	rx->cur.c.unsent_len = b;
	if ((a && !(rx->cur.c.unread = malloc(a))) ||
	    (b && !(rx->cur.c.unsent = malloc(b))))
		return -ENOMEM;
	return 0;
}

/* The record is complete: it joins the list. */
static int
record_done(struct connmove_rx *rx)
{
	struct connmove_item *v;
	unsigned cap;

	if (rx->n == rx->cap) {
		cap = rx->cap ? rx->cap * 2 : 16;
		v = realloc(rx->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rx->v = v;
		rx->cap = cap;
	}
	rx->v[rx->n++] = rx->cur;
	memset(&rx->cur, 0, sizeof(rx->cur));
	rx->cur.c.fd = -1;
	rx->head_got = rx->unread_got = rx->unsent_got = 0;
	return 0;
}

/* One step: 1 progress, 0 nothing to read now, <0 refused. */
static int
step(struct connmove_rx *rx)
{
	struct conn_moved *c = &rx->cur.c;
	ssize_t n;
	int fd = -1, r;

	if (rx->head_got < HEAD_LEN) {
		n = recv_part(rx, rx->head + rx->head_got,
		    HEAD_LEN - rx->head_got, rx->head_got == 0, &fd);
		if (n > 0 && fd >= 0)
			c->fd = fd;
		if (n > 0 && (rx->head_got += (size_t)n) == HEAD_LEN) {
			r = head_done(rx);
			if (r < 0)
				return r;
		}
	} else if (rx->unread_got < c->unread_len) {
		n = recv_part(rx, c->unread + rx->unread_got,
		    c->unread_len - rx->unread_got, false, &fd);
		if (n > 0)
			rx->unread_got += (size_t)n;
	} else {
		n = recv_part(rx, c->unsent + rx->unsent_got,
		    c->unsent_len - rx->unsent_got, false, &fd);
		if (n > 0)
			rx->unsent_got += (size_t)n;
	}
	if (n == -EAGAIN)
		return 0;
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return (int)n;
	if (rx->head_got == HEAD_LEN && !rx->done &&
	    rx->unread_got == c->unread_len && rx->unsent_got == c->unsent_len) {
		r = record_done(rx);
		if (r < 0)
			return r;
	}
	return 1;
}

int
connmove_rx_read(struct connmove_rx *rx)
{
	int r;

	if (rx->err)
		return rx->err;
	while (!rx->done) {
		r = step(rx);
		if (r < 0)
			return refuse(rx, r);
		if (r == 0)
			return 0;
	}
	return 1;
}

int
connmove_rx_finish(struct connmove_rx *rx, uint64_t deadline_ms)
{
	int r;

	while ((r = connmove_rx_read(rx)) == 0) {
		r = wait_fd(rx->sock, POLLIN, deadline_ms);
		if (r < 0)
			return refuse(rx, r);
	}
	return r;
}

unsigned
connmove_rx_take(struct connmove_rx *rx, struct connmove_item **ret)
{
	unsigned n = rx->done ? rx->n : 0;

	*ret = rx->done ? rx->v : NULL;
	if (rx->done) {
		rx->v = NULL;
		rx->n = rx->cap = 0;
	}
	return n;
}

void
connmove_rx_free(struct connmove_rx *rx)
{
	if (!rx)
		return;
	cur_reset(rx);
	connmove_items_free(rx->v, rx->n);
	free(rx);
}
