/*
 * test_connmove: moving a connection between processes' loops.
 * conn_export/conn_import carry a half-read frame and unsent frames
 * across without the peer noticing; the connmove stream delivers its
 * items only after END and refuses (closing every fd it got) a stream
 * that ends early, lies about its count, or puts fds or lengths where
 * they do not belong.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "common/clock.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "transport/conn.h"
#include "transport/connmove.h"
#include "transport/fdpass.h"
#include "tests/lib/tap.h"

struct seen {
	int frames;
	uint64_t ts[8];
	int closes;
};

static void
frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct seen *s = data;

	(void)c;
	if (f->m.type == MSG_HEARTBEAT && s->frames < 8)
		s->ts[s->frames] = f->m.u.HEARTBEAT.ts_ms;
	s->frames++;
	frame_release(f);
}

static void
close_cb(struct conn *c, int err, void *data)
{
	struct seen *s = data;

	(void)c;
	(void)err;
	s->closes++;
}

static void
spin(uv_loop_t *loop, int n)
{
	while (n-- > 0)
		uv_run(loop, UV_RUN_NOWAIT);
}

static uint8_t *
heartbeat(uint64_t ts, size_t *len)
{
	struct msg m = { .type = MSG_HEARTBEAT };
	uint8_t *buf;

	m.u.HEARTBEAT.ts_ms = ts;
	require(frame_encode(&m, 0, &buf, len) == 0, "encode");
	return buf;
}

/*
 * A conn on one end of a fresh socketpair with a small send buffer, so
 * frames stay queued in the conn; *fds0 is the fd count to come back to.
 */
static struct conn *
open_cb(uv_loop_t *loop, int sp[2], const struct conn_opts *o,
    struct seen *s, int *fds0, conn_frame_cb cb)
{
	struct conn *c;
	int sndbuf = 4096;

	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0,
	    "socketpair");
	(void)setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	uv_loop_init(loop);
	*fds0 = tap_count_fds() - 2;	/* the loop's own, and the pair */
	require(conn_open(loop, sp[0], o, cb, close_cb, s, &c) == 0, "open");
	return c;
}

static struct conn *
open_small(uv_loop_t *loop, int sp[2], const struct conn_opts *o,
    struct seen *s, int *fds0)
{
	return open_cb(loop, sp, o, s, fds0, frame_cb);
}

TEST(export_import_carries_partial_read_and_unsent)
{
	uv_loop_t loop;
	struct conn_opts o = { .max_queued = 1 << 20 };
	struct seen a = { 0 }, b = { 0 };
	struct conn_moved mv = { .fd = -1 };
	struct conn *c, *d;
	uint8_t *in;
	size_t inlen;
	int sp[2], fds0, i, queued;

	c = open_small(&loop, sp, &o, &a, &fds0);
	for (i = 0; i < 2000; i++) {
		struct msg m = { .type = MSG_HEARTBEAT };

		m.u.HEARTBEAT.ts_ms = 1000 + (uint64_t)i;
		require(conn_send(c, &m, NULL, 0) == 0, "send %d", i);
	}
	queued = (int)conn_queued(c);
	check(queued > 0, "frames wait in the queue (%d bytes)", queued);
	/* The peer's next request arrives in part: 5 bytes of it. */
	in = heartbeat(77, &inlen);
	require(write(sp[1], in, 5) == 5, "partial write");
	spin(&loop, 5);
	check_eq(a.frames, 0);
	require(conn_export(c, &mv) == 0, "export");
	check(mv.unread_len == 5 && memcmp(mv.unread, in, 5) == 0,
	    "the 5 bytes read travel (%zu)", mv.unread_len);
	check(mv.unsent_len == (size_t)queued, "the unsent bytes travel");
	spin(&loop, 5);
	check_eq(a.closes, 1);
	/* Nothing reached the peer as a close: the moved fd holds it. */
	require(conn_import(&loop, &mv, &o, frame_cb, close_cb, &b,
	    &d) == 0, "import");
	check(mv.fd == -1 && mv.unread == NULL && mv.unsent == NULL,
	    "import takes everything");
	require(write(sp[1], in + 5, inlen - 5) == (ssize_t)(inlen - 5),
	    "the rest of the request");
	{
		uint64_t t0 = clock_mono_ms();

		while (b.frames == 0 && clock_mono_ms() - t0 < 2000) {
			spin(&loop, 1);
			usleep(1000);
		}
	}
	check_eq(b.frames, 1);
	check(b.ts[0] == 77, "the request completed across the move");
	free(in);
	/* The peer reads every frame, in order, whole (loop turns between). */
	{
		size_t flen, total, got = 0, off;
		uint8_t *one = heartbeat(1000, &flen), *all;
		struct frame_header h;
		struct msg m;
		uint64_t t0 = clock_mono_ms();
		ssize_t n;
		int k;

		free(one);
		total = flen * 2000;
		all = malloc(total);
		require(all, "memory");
		while (got < total && clock_mono_ms() - t0 < 10000) {
			spin(&loop, 1);
			n = recv(sp[1], all + got, total - got, MSG_DONTWAIT);
			if (n > 0)
				got += (size_t)n;
		}
		require(got == total, "all %zu bytes arrive (%zu)", total, got);
		for (k = 0, off = 0; k < 2000; k++, off += flen) {
			require(frame_header_decode(all + off, &h) == 0 &&
			    FRAME_HEADER_SIZE + h.body_len == flen, "hdr %d", k);
			require(msg_decode(h.type, all + off + FRAME_HEADER_SIZE,
			    h.body_len, &m) == 0, "decode %d", k);
			if (!check(m.u.HEARTBEAT.ts_ms == 1000 + (uint64_t)k,
			    "frame %d in order", k))
				break;
			msg_free(&m);
		}
		free(all);
	}
	conn_close(d);
	spin(&loop, 5);
	check_eq(b.closes, 1);
	close(sp[1]);
	check_eq(tap_count_fds(), fds0);
	uv_loop_close(&loop);
}

/* Holds every frame it is given (conn_hold), counting them. */
static void
hold_cb(struct conn *c, struct frame *f, void *data)
{
	struct seen *s = data;

	if (f->m.type == MSG_HEARTBEAT && s->frames < 8)
		s->ts[s->frames] = f->m.u.HEARTBEAT.ts_ms;
	s->frames++;
	check_eq(conn_hold(c), 0);
	frame_release(f);
}

TEST(held_frame_is_read_again_and_moves_whole)
{
	struct conn_opts o = { .max_queued = 1 << 20 };
	struct conn_moved mv = { .fd = -1 };
	struct seen a = { 0 }, b = { 0 };
	int sp[2], fds0;
	uv_loop_t loop;
	size_t inlen;
	struct conn *d, *c = open_cb(&loop, sp, &o, &a, &fds0, hold_cb);
	uint8_t *in;

	check_eq(conn_hold(c), -EINVAL);	/* only inside frame_cb */
	in = heartbeat(91, &inlen);
	require(write(sp[1], in, inlen) == (ssize_t)inlen, "request");
	spin(&loop, 5);
	check_eq(a.frames, 1);
	/* Paused: nothing more is read, and the frame is still there. */
	spin(&loop, 5);
	check_eq(a.frames, 1);
	conn_resume(c);
	check_eq(conn_read_now(c, 4), 1);
	check(a.frames == 2 && a.ts[1] == 91, "held frame delivered again");
	/* Held again by hold_cb: it moves whole, and is served there. */
	require(conn_export(c, &mv) == 0, "export");
	check(mv.unread_len == inlen && memcmp(mv.unread, in, inlen) == 0,
	    "the whole held frame travels (%zu of %zu)", mv.unread_len, inlen);
	spin(&loop, 5);
	require(conn_import(&loop, &mv, &o, frame_cb, close_cb, &b,
	    &d) == 0, "import takes a whole frame");
	check_eq(b.frames, 0);
	check_eq(conn_read_now(d, 4), 1);
	check(b.frames == 1 && b.ts[0] == 91, "served after the move");
	conn_close(d);
	spin(&loop, 5);
	close(sp[1]);
	free(in);
	check_eq(tap_count_fds(), fds0);
	check_eq(uv_loop_close(&loop), 0);
}

TEST(export_refuses_unsent_fds)
{
	uv_loop_t loop;
	struct conn_opts o = { .max_queued = 1 << 20 };
	struct seen a = { 0 };
	struct conn_moved mv = { .fd = -1 };
	struct conn *c;
	struct msg m = { .type = MSG_HEARTBEAT };
	int sp[2], fds0, i, r;

	c = open_small(&loop, sp, &o, &a, &fds0);
	for (i = 0; i < 500; i++)
		(void)conn_send(c, &m, NULL, 0);
	require(conn_send(c, &m, &sp[1], 1) == 0, "a frame with an fd queued");
	r = conn_export(c, &mv);
	check_eq(r, -EBUSY);
	check(mv.fd == -1, "nothing handed out");
	conn_close(c);
	spin(&loop, 5);
	close(sp[1]);
	check_eq(tap_count_fds(), fds0);
	uv_loop_close(&loop);
}

/* Two items (sockets with bytes) through the stream, then END. */
TEST(stream_delivers_after_end)
{
	struct connmove_item v[2];
	struct connmove_item *got = NULL;
	struct connmove_rx *rx;
	int ch[2], a[2], b[2], fds0 = tap_count_fds(), r;
	unsigned n;

	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch) == 0 &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) == 0 &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) == 0,
	    "sockets");
	memset(v, 0, sizeof(v));
	v[0].c.fd = a[0];
	v[0].c.unread = (uint8_t *)"BTN";
	v[0].c.unread_len = 3;
	v[0].flags = CONNMOVE_F_SUBSCRIBER;
	v[1].c.fd = b[0];
	v[1].c.unsent = (uint8_t *)"0123456789";
	v[1].c.unsent_len = 10;
	require(connmove_rx_new(ch[1], &rx) == 0, "rx");
	check_eq(connmove_rx_read(rx), 0);
	require(connmove_send(ch[0], v, 2, clock_mono_ms() + 1000) == 0, "send");
	r = connmove_rx_finish(rx, clock_mono_ms() + 1000);
	check_eq(r, 1);
	n = connmove_rx_take(rx, &got);
	require(n == 2 && got, "two items (%u)", n);
	check(got[0].flags == CONNMOVE_F_SUBSCRIBER && got[0].c.unread_len == 3 &&
	    memcmp(got[0].c.unread, "BTN", 3) == 0 && got[0].c.unsent_len == 0,
	    "first item whole");
	check(got[1].flags == 0 && got[1].c.unsent_len == 10 &&
	    memcmp(got[1].c.unsent, "0123456789", 10) == 0, "second item whole");
	/* The fds are the same sockets: a write on one reaches the peer. */
	check(write(got[1].c.fd, "x", 1) == 1, "write");
	{
		char c = 0;

		check(read(b[1], &c, 1) == 1 && c == 'x', "same socket");
	}
	connmove_items_free(got, n);
	connmove_rx_free(rx);
	close(ch[0]);
	close(ch[1]);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	check_eq(tap_count_fds(), fds0);
}

/* Feed raw bytes (and fds on the first byte) and expect a refusal. */
static void
refused(const char *what, const uint8_t *bytes, size_t len, int nfds,
    bool close_after, int want)
{
	struct connmove_item *got = NULL;
	struct connmove_rx *rx;
	int ch[2], x[2], fds[2], fds0 = tap_count_fds(), r;

	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch) == 0 &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x) == 0,
	    "sockets");
	fds[0] = x[0];
	fds[1] = x[1];
	require(fdpass_send(ch[0], bytes, len, nfds ? fds : NULL,
	    (unsigned)nfds, 0) == (ssize_t)len, "%s: send", what);
	close(x[0]);
	close(x[1]);
	if (close_after)
		close(ch[0]);
	require(connmove_rx_new(ch[1], &rx) == 0, "rx");
	r = connmove_rx_finish(rx, clock_mono_ms() + 300);
	check(r == want, "%s: refused %d (got %d)", what, want, r);
	check_eq(connmove_rx_take(rx, &got), 0);
	connmove_rx_free(rx);
	if (!close_after)
		close(ch[0]);
	close(ch[1]);
	check(tap_count_fds() == fds0, "%s: every fd closed", what);
}

static void
head(uint8_t *h, const char *magic, unsigned flags, uint32_t a, uint32_t b)
{
	memcpy(h, magic, 4);
	h[4] = 0;
	h[5] = 1;
	h[6] = (uint8_t)(flags >> 8);
	h[7] = (uint8_t)flags;
	h[8] = (uint8_t)(a >> 24);
	h[9] = (uint8_t)(a >> 16);
	h[10] = (uint8_t)(a >> 8);
	h[11] = (uint8_t)a;
	h[12] = (uint8_t)(b >> 24);
	h[13] = (uint8_t)(b >> 16);
	h[14] = (uint8_t)(b >> 8);
	h[15] = (uint8_t)b;
}

TEST(stream_refusals_close_everything)
{
	uint8_t s[64];

	/* An item, then EOF without END. */
	head(s, "BTNM", 0, 0, 0);
	refused("eof before end", s, 16, 1, true, -EPIPE);
	/* An item, then END that counts two. */
	head(s, "BTNM", 0, 0, 0);
	head(s + 16, "BTNE", 0, 2, 0);
	refused("count mismatch", s, 32, 1, false, -EBADMSG);
	/* A MOVE head without its socket. */
	head(s, "BTNM", 0, 0, 0);
	refused("no socket", s, 16, 0, false, -EBADMSG);
	/* Two fds on one head. */
	head(s, "BTNM", 0, 0, 0);
	refused("two fds", s, 16, 2, false, -EBADMSG);
	/* Bad magic, unknown flags, too much unsent. */
	head(s, "XXXX", 0, 0, 0);
	refused("bad magic", s, 16, 1, false, -EBADMSG);
	head(s, "BTNM", 0x80, 0, 0);
	refused("unknown flag", s, 16, 1, false, -EBADMSG);
	head(s, "BTNM", 0, 0, CONNMOVE_MAX_UNSENT + 1);
	refused("unsent over the limit", s, 16, 1, false, -EBADMSG);
	/* A stream that stops mid-item: the deadline refuses it. */
	head(s, "BTNM", 0, 10, 0);
	refused("stalled", s, 16, 1, false, -ETIMEDOUT);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
