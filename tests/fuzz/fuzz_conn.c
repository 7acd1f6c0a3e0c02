/*
 * fuzz_conn: libFuzzer target for a live frame connection (transport/conn.c)
 * on a uv loop.  The input is a byte stream a peer writes into a
 * socketpair, cut into writes: byte 0 picks the conn options (fds
 * allowed or not, namespace or control error style, a small send queue),
 * then each chunk is a length byte and that many bytes; a length byte
 * with the top bit set also attaches a pipe fd to the chunk.  A tiny
 * dispatcher answers STATUS, subscribes on SUBSCRIBE (an event per
 * frame afterwards) and rejects everything else, as the agent would.
 * The peer stops reading after a few replies, so queue limits and
 * half-closed peers are exercised too.
 *
 * Invariants checked: the process survives, close_cb runs exactly once,
 * every fd the input attached or the conn received is closed at the end
 * (the fd count comes back), and ASan/UBSan see nothing.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "transport/conn.h"
#include "transport/fdpass.h"
#include "proto/frame.h"
#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct state {
	int closed;
	int subscribed;
	unsigned frames;
};

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void
frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct state *st = data;
	struct msg m;

	st->frames++;
	memset(&m, 0, sizeof(m));
	switch (f->m.type) {
	case MSG_STATUS:
		m.type = MSG_STATUS_REPLY;
		m.u.STATUS_REPLY.pid = 1;
		m.u.STATUS_REPLY.build_id = "fuzz";
		if (conn_send(c, &m, NULL, 0) < 0)
			conn_close(c);
		break;
	case MSG_SUBSCRIBE:
		st->subscribed = 1;
		break;
	case MSG_HEARTBEAT:
		m.type = MSG_HEARTBEAT;
		m.u.HEARTBEAT.ts_ms = f->m.u.HEARTBEAT.ts_ms;
		(void)conn_send(c, &m, NULL, 0);
		break;
	default:
		conn_reject(c, -PROTO_EINVAL, "not for this dispatcher");
		break;
	}
	if (st->subscribed && st->frames % 2 == 0) {
		memset(&m, 0, sizeof(m));
		m.type = MSG_ALLOCATION_ENDED;
		m.u.ALLOCATION_ENDED.allocation_id = "fuzz-alloc";
		(void)conn_send(c, &m, NULL, 0);
	}
	frame_release(f);
}

static void
close_cb(struct conn *c, int err, void *data)
{
	struct state *st = data;

	(void)c;
	(void)err;
	st->closed++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn_opts o;
	struct state st = { 0 };
	struct conn *c = NULL;
	uv_loop_t loop;
	uint8_t junk[4096];
	int sv[2], p[2], before, after, i;
	size_t off = 1, n;
	unsigned reads = 0;

	if (size < 1)
		return 0;
	/* Measured with the loop up: libuv keeps one process-wide pipe. */
	uv_loop_init(&loop);
	before = count_fds();
	memset(&o, 0, sizeof(o));
	o.max_fds = (data[0] & 1) ? 2 : 0;
	o.errstyle = (data[0] & 2) ? CONN_ERR_NS : CONN_ERR_CONTROL;
	o.max_queued = (data[0] & 4) ? 512 : 0;
	o.max_body = (data[0] & 8) ? 256 : 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* Small buffers, so a peer that stops reading fills them quickly. */
	i = 4096;
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &i, sizeof(i));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &i, sizeof(i));
	(void)fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (conn_open(&loop, sv[0], &o, frame_cb, close_cb, &st, &c) < 0)
		abort();
	while (off < size && !st.closed) {
		n = data[off] & 0x7f;
		if (n > size - off - 1)
			n = size - off - 1;
		if (n > 0 && (data[off] & 0x80) && pipe2(p, O_CLOEXEC) == 0) {
			(void)fdpass_send(sv[1], data + off + 1, n, p, 2,
			    MSG_DONTWAIT);
			close(p[0]);
			close(p[1]);
		} else if (n > 0) {
			(void)send(sv[1], data + off + 1, n,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		off += 1 + n;
		uv_run(&loop, UV_RUN_NOWAIT);
		/* Read a few replies, then behave like a slow reader. */
		if (reads++ < 4) {
			int rfds[16];
			unsigned rn = 0;

			if (fdpass_recv(sv[1], junk, sizeof(junk), rfds, 16, &rn,
			    MSG_DONTWAIT) > 0)
				fdpass_close_all(rfds, rn);
		}
	}
	/* The peer hangs up; the conn must finish and close by itself. */
	(void)shutdown(sv[1], SHUT_WR);
	for (i = 0; i < 200 && !st.closed; i++) {
		int rfds[16];
		unsigned rn = 0;

		if (fdpass_recv(sv[1], junk, sizeof(junk), rfds, 16, &rn,
		    MSG_DONTWAIT) > 0)
			fdpass_close_all(rfds, rn);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	if (!st.closed) {
		conn_close(c);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	if (st.closed != 1)
		abort();	/* close_cb must run exactly once */
	close(sv[1]);
	uv_run(&loop, UV_RUN_DEFAULT);
	after = count_fds();
	if (uv_loop_close(&loop) != 0)
		abort();	/* a handle was left open */
	if (before >= 0 && after != before)
		abort();	/* an fd leaked */
	return 0;
}
