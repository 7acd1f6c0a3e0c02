/*
 * test_conn: the libuv frame connection.  Each case runs one loop and one
 * socketpair: the conn owns one end, the test drives the other with raw
 * write()/sendmsg() (so malformed input is easy to make) and reads what
 * the conn answers with a small blocking reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "transport/conn.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "tests/lib/tap.h"

#define MAX_REC 128

struct ctx {
	uv_loop_t loop;
	uv_check_t check;
	struct conn *c;
	int peer;

	/* What frame_cb saw. */
	int nframes;
	uint16_t types[MAX_REC];
	uint64_t ts[MAX_REC];
	struct frame kept;	/* the first frame carrying fds, kept */
	bool have_kept;
	bool close_in_cb;
	bool echo;		/* answer each frame with a HEARTBEAT */
	bool pause_in_cb;

	/* Loop iterations, to see how many frames one wake-up delivers. */
	unsigned iter, last_iter, per_iter, max_per_iter;

	int ncloses;
	int close_err;

	/* Writer-side state for timer-driven cases. */
	uv_timer_t timer;
	uint8_t *buf;
	size_t len, off;
	const int *fds;
	unsigned nfds;
	unsigned ticks;
};

static void
on_check(uv_check_t *h)
{
	struct ctx *x = h->data;

	x->iter++;
}

static void
on_frame(struct conn *c, struct frame *f, void *data)
{
	struct ctx *x = data;
	int r;

	if (x->iter != x->last_iter || x->nframes == 0) {
		x->last_iter = x->iter;
		x->per_iter = 0;
	}
	if (++x->per_iter > x->max_per_iter)
		x->max_per_iter = x->per_iter;
	if (x->nframes < MAX_REC) {
		x->types[x->nframes] = f->m.type;
		if (f->m.type == MSG_HEARTBEAT)
			x->ts[x->nframes] = f->m.u.HEARTBEAT.ts_ms;
	}
	x->nframes++;
	if (f->nfds > 0 && !x->have_kept) {
		/* The struct is the conn's; its contents are ours. */
		x->kept = *f;
		x->have_kept = true;
	} else {
		frame_release(f);
	}
	if (x->echo) {
		struct msg m = { .type = MSG_HEARTBEAT };

		m.u.HEARTBEAT.ts_ms = 7;
		r = conn_send(c, &m, NULL, 0);
		check_eq(r, 0);
	}
	if (x->pause_in_cb)
		conn_pause(c);
	if (x->close_in_cb) {
		conn_close(c);
		conn_close(c);	/* idempotent */
	}
}

static void
on_close(struct conn *c, int err, void *data)
{
	struct ctx *x = data;

	(void)c;
	x->ncloses++;
	x->close_err = err;
	x->c = NULL;
}

static void
ctx_open(struct ctx *x, const struct conn_opts *opts)
{
	struct timeval tv = { .tv_sec = 5 };
	int sv[2];

	memset(x, 0, sizeof(*x));
	frame_init(&x->kept);
	require(uv_loop_init(&x->loop) == 0, "uv_loop_init");
	uv_check_init(&x->loop, &x->check);
	x->check.data = x;
	uv_check_start(&x->check, on_check);
	uv_unref((uv_handle_t *)&x->check);
	uv_timer_init(&x->loop, &x->timer);
	x->timer.data = x;
	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	    "socketpair: %s", strerror(errno));
	x->peer = sv[1];
	/* The test's own reads must not hang the case forever. */
	setsockopt(x->peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	require(conn_open(&x->loop, sv[0], opts, on_frame, on_close, x,
	    &x->c) == 0, "conn_open");
}

static void
close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/*
 * The harness ends a case with _exit(), which skips LeakSanitizer's exit
 * check; run it here when the sanitizer is linked in.
 */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static void
leak_check(void)
{
	if (__lsan_do_recoverable_leak_check != NULL)
		check(__lsan_do_recoverable_leak_check() == 0, "no leaks");
}

static void
ctx_fini(struct ctx *x)
{
	if (x->c != NULL)
		conn_close(x->c);
	uv_walk(&x->loop, close_walk, NULL);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	check(uv_loop_close(&x->loop) == 0, "loop closes with no handle left");
	if (x->peer >= 0)
		close(x->peer);
	x->peer = -1;
	if (x->have_kept)
		frame_release(&x->kept);
	x->have_kept = false;
	free(x->buf);
	x->buf = NULL;
	leak_check();
}

/* Run until the conn is gone (the conn's poll keeps the loop alive). */
static void
ctx_run(struct ctx *x)
{
	uv_run(&x->loop, UV_RUN_DEFAULT);
}

static void
encode(const struct msg *m, unsigned nfds, uint8_t **buf, size_t *len)
{
	require(frame_encode(m, nfds, buf, len) == 0, "frame_encode");
}

static struct msg
heartbeat(uint64_t ts)
{
	struct msg m = { .type = MSG_HEARTBEAT };

	m.u.HEARTBEAT.ts_ms = ts;
	return m;
}

/* sendmsg len bytes (at least 1), fds on the first byte; blocking. */
static void
peer_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;
	size_t off;

	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	require(n > 0, "sendmsg: %s", strerror(errno));
	for (off = (size_t)n; off < len; off += (size_t)n) {
		n = write(fd, (const uint8_t *)buf + off, len - off);
		require(n > 0, "write: %s", strerror(errno));
	}
}

static void
peer_send_msg(int fd, const struct msg *m, const int *fds, unsigned nfds)
{
	uint8_t *buf = NULL;
	size_t len;

	encode(m, nfds, &buf, &len);
	peer_send(fd, buf, len, fds, nfds);
	free(buf);
}

/* Blocking read of exactly len bytes, fds of the first read into fds. */
static int
peer_read(int fd, uint8_t *buf, size_t len, int *fds, unsigned *nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
	} ctl;
	size_t off = 0;

	while (off < len) {
		struct iovec iov = { buf + off, len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct cmsghdr *cm;
		ssize_t n;

		if (fds != NULL && off == 0) {
			mh.msg_control = ctl.b;
			mh.msg_controllen = sizeof(ctl.b);
		}
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		for (cm = CMSG_FIRSTHDR(&mh); fds && cm != NULL;
		    cm = CMSG_NXTHDR(&mh, cm)) {
			unsigned k = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) /
			    sizeof(int));

			memcpy(fds + *nfds, CMSG_DATA(cm), k * sizeof(int));
			*nfds += k;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Read one frame the conn sent; returns 0 and *f, or -errno/-PROTO_E*. */
static int
peer_recv(int fd, struct frame *f)
{
	uint8_t hdr[FRAME_HEADER_SIZE], *body = NULL;
	int r;

	frame_init(f);
	r = peer_read(fd, hdr, sizeof(hdr), f->fds, &f->nfds);
	if (r < 0)
		return r;
	r = frame_header_decode(hdr, &f->h);
	if (r < 0)
		goto out;
	body = malloc(f->h.body_len + 1);
	r = peer_read(fd, body, f->h.body_len, NULL, NULL);
	if (r < 0)
		goto out;
	r = msg_decode(f->h.type, body, f->h.body_len, &f->m);
out:
	free(body);
	if (r < 0)
		frame_release(f);
	return r;
}

/* The peer's view of a rejection: one ERROR frame with this code. */
static void
expect_error(int fd, int err)
{
	struct frame f;
	int r;

	r = peer_recv(fd, &f);
	require(r == 0, "peer reads the ERROR frame (%d)", r);
	check_eq(f.m.type, MSG_ERROR);
	if (f.m.type == MSG_ERROR) {
		check(strcmp(f.m.u.ERROR.code, proto_errcode(err)) == 0,
		    "code %s, want %s", f.m.u.ERROR.code, proto_errcode(err));
		check(f.m.u.ERROR.message[0] != '\0', "message not empty");
		tap_diag("ERROR code=%s message=\"%s\"", f.m.u.ERROR.code,
		    f.m.u.ERROR.message);
	}
	frame_release(&f);
}

static int
devnull(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	require(fd >= 0, "open /dev/null");
	return fd;
}

TEST(one_frame)
{
	struct msg m = heartbeat(42);
	struct ctx x;
	pid_t pid;
	uid_t uid;
	gid_t gid;

	ctx_open(&x, NULL);
	conn_peer(x.c, &pid, &uid, &gid);
	check_eq(pid, getpid());
	check_eq(uid, getuid());
	check_eq(gid, getgid());
	peer_send_msg(x.peer, &m, NULL, 0);
	shutdown(x.peer, SHUT_WR);
	ctx_run(&x);
	check_eq(x.nframes, 1);
	check_eq(x.types[0], MSG_HEARTBEAT);
	check_eq(x.ts[0], 42);
	check_eq(x.ncloses, 1);
	check_eq(x.close_err, 0);
	ctx_fini(&x);
}

/* 100 frames in one write: all arrive in order, at most 16 per wake-up. */
TEST(hundred_frames_one_write)
{
	uint8_t *all = NULL, *buf;
	size_t total = 0, len;
	struct ctx x;
	int i;

	ctx_open(&x, NULL);
	for (i = 0; i < 100; i++) {
		struct msg m = heartbeat((uint64_t)i);

		encode(&m, 0, &buf, &len);
		all = realloc(all, total + len);
		memcpy(all + total, buf, len);
		total += len;
		free(buf);
	}
	peer_send(x.peer, all, total, NULL, 0);
	free(all);
	shutdown(x.peer, SHUT_WR);
	ctx_run(&x);
	check_eq(x.nframes, 100);
	for (i = 0; i < 100 && i < x.nframes; i++)
		if (!check(x.ts[i] == (uint64_t)i, "frame %d has ts %llu", i,
		    (unsigned long long)x.ts[i]))
			break;
	check(x.max_per_iter <= 16, "at most 16 frames per wake-up (%u)",
	    x.max_per_iter);
	check(x.max_per_iter >= 2, "several frames per wake-up (%u)",
	    x.max_per_iter);
	check_eq(x.close_err, 0);
	ctx_fini(&x);
}

static void
on_trickle(uv_timer_t *t)
{
	struct ctx *x = t->data;

	x->ticks++;
	if (x->off == 0)
		peer_send(x->peer, x->buf, 1, x->fds, x->nfds);
	else
		require(write(x->peer, x->buf + x->off, 1) == 1, "write");
	if (++x->off == x->len) {
		uv_timer_stop(t);
		shutdown(x->peer, SHUT_WR);
	}
}

/* One byte per loop iteration, with an fd on the first byte. */
TEST(trickled_frame)
{
	struct conn_opts o = { .max_fds = 1 };
	struct msg m = heartbeat(99);
	struct ctx x;
	int fd = devnull();
	struct stat st;

	ctx_open(&x, &o);
	encode(&m, 1, &x.buf, &x.len);
	x.fds = &fd;
	x.nfds = 1;
	uv_timer_start(&x.timer, on_trickle, 1, 1);
	ctx_run(&x);
	check_eq(x.ticks, x.len);
	check_eq(x.nframes, 1);
	check_eq(x.ts[0], 99);
	check_eq(x.close_err, 0);
	require(x.have_kept, "frame with its fd kept");
	check_eq(x.kept.nfds, 1);
	check(fstat(x.kept.fds[0], &st) == 0 && S_ISCHR(st.st_mode),
	    "the received fd is /dev/null");
	close(fd);
	ctx_fini(&x);
}

static void
fds_case(unsigned n)
{
	struct conn_opts o = { .max_fds = n };
	struct msg m = heartbeat(n);
	int fds[FRAME_MAX_FDS], before, held;
	struct stat st, ref;
	struct ctx x;
	unsigned i;

	require(stat("/dev/null", &ref) == 0, "stat /dev/null");
	before = tap_count_fds();
	ctx_open(&x, &o);
	for (i = 0; i < n; i++)
		fds[i] = devnull();
	peer_send_msg(x.peer, &m, fds, n);
	for (i = 0; i < n; i++)
		close(fds[i]);
	shutdown(x.peer, SHUT_WR);
	ctx_run(&x);
	check_eq(x.nframes, 1);
	check_eq(x.close_err, 0);
	require(x.have_kept, "frame kept");
	check_eq(x.kept.nfds, n);
	check_eq(x.kept.h.nfds, n);
	for (i = 0; i < n; i++) {
		int fl = fcntl(x.kept.fds[i], F_GETFD);

		check(fl >= 0 && (fl & FD_CLOEXEC), "fd %u CLOEXEC", i);
		check(fstat(x.kept.fds[i], &st) == 0 &&
		    st.st_rdev == ref.st_rdev, "fd %u is /dev/null", i);
	}
	held = tap_count_fds();
	frame_release(&x.kept);
	x.have_kept = false;
	check_eq(tap_count_fds(), held - (int)n);
	ctx_fini(&x);
	check_eq(tap_count_fds(), before);
}

TEST(fds_attached_1)
{
	fds_case(1);
}

TEST(fds_attached_16)
{
	fds_case(16);
}

/* Run a conn against raw input the peer sends, expect a rejection. */
static void
reject_case(const struct conn_opts *o, const void *bytes, size_t len,
    const int *fds, unsigned nfds, bool peer_shuts, int err)
{
	struct ctx x;
	int before = tap_count_fds();

	ctx_open(&x, o);
	peer_send(x.peer, bytes, len, fds, nfds);
	if (peer_shuts)
		shutdown(x.peer, SHUT_WR);
	ctx_run(&x);
	check_eq(x.nframes, 0);
	check_eq(x.ncloses, 1);
	check(x.close_err == err, "close_cb err %d (%s), want %d (%s)",
	    x.close_err, proto_strerror(x.close_err), err, proto_strerror(err));
	if (o == NULL || o->errstyle == CONN_ERR_CONTROL)
		expect_error(x.peer, err);
	ctx_fini(&x);
	check_eq(tap_count_fds(), before);
}

TEST(nfds_mismatch)
{
	struct conn_opts o = { .max_fds = 4 };
	struct msg m = heartbeat(1);
	uint8_t *buf;
	size_t len;
	int fd = devnull();
	int before = tap_count_fds();

	encode(&m, 2, &buf, &len);
	reject_case(&o, buf, len, &fd, 1, false, -PROTO_ENFDS);
	free(buf);
	close(fd);
	check_eq(tap_count_fds(), before - 1);
}

TEST(fds_not_allowed)
{
	struct msg m = heartbeat(1);
	uint8_t *buf;
	size_t len;
	int fd = devnull();

	encode(&m, 1, &buf, &len);
	reject_case(NULL, buf, len, &fd, 1, false, -PROTO_ENFDS);
	free(buf);
	close(fd);
}

static void
on_rest_with_fd(uv_timer_t *t)
{
	struct ctx *x = t->data;

	peer_send(x->peer, x->buf + x->off, x->len - x->off, x->fds, x->nfds);
}

/* fds that arrive with a later byte of the frame are refused. */
TEST(fds_after_first_byte)
{
	struct conn_opts o = { .max_fds = 1 };
	struct msg m = heartbeat(1);
	struct ctx x;
	int fd = devnull();
	int before = tap_count_fds();

	ctx_open(&x, &o);
	encode(&m, 1, &x.buf, &x.len);
	x.off = 8;
	x.fds = &fd;
	x.nfds = 1;
	peer_send(x.peer, x.buf, x.off, NULL, 0);
	uv_timer_start(&x.timer, on_rest_with_fd, 50, 0);
	ctx_run(&x);
	check_eq(x.nframes, 0);
	check_eq(x.close_err, -PROTO_ENFDS);
	expect_error(x.peer, -PROTO_ENFDS);
	ctx_fini(&x);
	check_eq(tap_count_fds(), before);
	close(fd);
}

static void
raw_header(uint8_t out[FRAME_HEADER_SIZE], uint32_t magic, uint16_t version,
    uint16_t type, uint32_t body_len, uint16_t nfds)
{
	struct frame_header h = {
		.magic = magic, .version = version, .type = type,
		.body_len = body_len, .nfds = nfds,
	};

	frame_header_encode(&h, out);
}

TEST(bad_magic)
{
	uint8_t h[FRAME_HEADER_SIZE];

	raw_header(h, 0xdeadbeef, 1, MSG_HEARTBEAT, 10, 0);
	reject_case(NULL, h, sizeof(h), NULL, 0, false, -PROTO_EMAGIC);
}

/*
 * The body is never sent: the rejection must come from the header alone,
 * otherwise the case would hang until its timeout.
 */
TEST(too_big_without_body)
{
	struct conn_opts o = { .max_body = 64 };
	uint8_t h[FRAME_HEADER_SIZE];

	raw_header(h, FRAME_MAGIC, 1, MSG_HEARTBEAT, 4096, 0);
	reject_case(&o, h, sizeof(h), NULL, 0, false, -PROTO_ETOOBIG);
	raw_header(h, FRAME_MAGIC, 1, MSG_HEARTBEAT, 2u << 20, 0);
	reject_case(NULL, h, sizeof(h), NULL, 0, false, -PROTO_ETOOBIG);
}

/* A header for a version we do not speak, with its body behind it. */
TEST(bad_version_body_skipped)
{
	uint8_t b[FRAME_HEADER_SIZE + 1];

	raw_header(b, FRAME_MAGIC, 9, MSG_HEARTBEAT, 1, 0);
	b[FRAME_HEADER_SIZE] = 0x80;	/* {} */
	reject_case(NULL, b, sizeof(b), NULL, 0, false, -PROTO_EVERSION);
}

TEST(bad_body)
{
	uint8_t b[FRAME_HEADER_SIZE + 2];
	struct msg m = { .type = MSG_HELLO };
	const char *caps[] = { "x" };
	uint8_t *buf;
	size_t len;

	/* A string where the map should be. */
	raw_header(b, FRAME_MAGIC, 1, MSG_HEARTBEAT, 2, 0);
	b[FRAME_HEADER_SIZE] = 0xa1;
	b[FRAME_HEADER_SIZE + 1] = 'x';
	reject_case(NULL, b, sizeof(b), NULL, 0, false, -PROTO_ENOTMAP);

	/* Well-formed, semantically wrong: msg_validate refuses it. */
	m.u.HELLO.role = "bogus";
	m.u.HELLO.pid = 1;
	m.u.HELLO.build_id = "b";
	m.u.HELLO.proto_min = 1;
	m.u.HELLO.proto_max = 1;
	m.u.HELLO.capabilities.n = 1;
	m.u.HELLO.capabilities.v = caps;
	encode(&m, 0, &buf, &len);
	reject_case(NULL, buf, len, NULL, 0, false, -PROTO_EINVAL);
	free(buf);
}

static void
ns_case(const struct conn_opts *o, const void *bytes, size_t len,
    const int *fds, unsigned nfds, int err, const char *kind)
{
	struct ctx x;
	struct frame f;
	int before = tap_count_fds();

	ctx_open(&x, o);
	peer_send(x.peer, bytes, len, fds, nfds);
	ctx_run(&x);
	check(x.close_err == err, "close_cb err %d, want %d", x.close_err, err);
	require(peer_recv(x.peer, &f) == 0, "peer reads the NS_ERROR frame");
	check_eq(f.m.type, MSG_NS_ERROR);
	if (f.m.type == MSG_NS_ERROR) {
		check(f.m.u.NS_ERROR.allocation_id == NULL, "no alloc id");
		check(strcmp(f.m.u.NS_ERROR.kind, kind) == 0,
		    "kind %s, want %s", f.m.u.NS_ERROR.kind, kind);
		check(f.m.u.NS_ERROR.message[0] != '\0', "message not empty");
	}
	frame_release(&f);
	ctx_fini(&x);
	check_eq(tap_count_fds(), before);
}

TEST(ns_style_rejections)
{
	struct conn_opts o = { .errstyle = CONN_ERR_NS, .max_fds = 2,
	    .max_body = 64 };
	struct msg m = { .type = MSG_STATUS };
	uint8_t h[FRAME_HEADER_SIZE + 2], *buf;
	size_t len;
	int fd = devnull();

	raw_header(h, FRAME_MAGIC, 2, MSG_STATUS, 1, 0);
	h[FRAME_HEADER_SIZE] = 0x80;
	ns_case(&o, h, FRAME_HEADER_SIZE + 1, NULL, 0, -PROTO_EVERSION,
	    "unsupported_version");
	raw_header(h, FRAME_MAGIC, 1, MSG_STATUS, 65, 0);
	ns_case(&o, h, FRAME_HEADER_SIZE, NULL, 0, -PROTO_ETOOBIG,
	    "limit_exceeded");
	encode(&m, 2, &buf, &len);
	ns_case(&o, buf, len, &fd, 1, -PROTO_ENFDS, "fd_passing");
	free(buf);
	raw_header(h, FRAME_MAGIC, 1, MSG_STATUS, 2, 0);
	h[FRAME_HEADER_SIZE] = 0xa1;
	h[FRAME_HEADER_SIZE + 1] = 'x';
	ns_case(&o, h, sizeof(h), NULL, 0, -PROTO_ENOTMAP, "invalid_request");
	close(fd);
}

/* The owner rejects a frame it does not like. */
static void
on_frame_reject(struct conn *c, struct frame *f, void *data)
{
	(void)data;
	frame_release(f);
	conn_reject(c, -PROTO_ETYPE, "HEARTBEAT not expected here");
	conn_reject(c, -PROTO_EMAGIC, "second reject is ignored");
}

TEST(owner_reject)
{
	struct msg m = heartbeat(1);
	struct ctx x;
	struct frame f;
	int sv[2];

	memset(&x, 0, sizeof(x));
	require(uv_loop_init(&x.loop) == 0, "loop");
	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	    "socketpair");
	x.peer = sv[1];
	require(conn_open(&x.loop, sv[0], NULL, on_frame_reject, on_close, &x,
	    &x.c) == 0, "conn_open");
	peer_send_msg(x.peer, &m, NULL, 0);
	ctx_run(&x);
	check_eq(x.close_err, -PROTO_ETYPE);
	require(peer_recv(x.peer, &f) == 0, "peer reads ERROR");
	check(f.m.type == MSG_ERROR &&
	    strcmp(f.m.u.ERROR.code, proto_errcode(-PROTO_ETYPE)) == 0 &&
	    strcmp(f.m.u.ERROR.message, "HEARTBEAT not expected here") == 0,
	    "ERROR carries the owner's code and message");
	frame_release(&f);
	check(peer_recv(x.peer, &f) < 0, "nothing after the ERROR");
	ctx_fini(&x);
}

TEST(send_queue_limit)
{
	struct conn_opts o = { .max_queued = 1000 };
	struct msg m = { .type = MSG_ERROR };
	char text[201];
	size_t q;
	struct ctx x;
	int i, n, r = 0;

	memset(text, 'a', 200);
	text[200] = '\0';
	m.u.ERROR.code = "x";
	m.u.ERROR.message = text;
	ctx_open(&x, &o);
	/*
	 * conn_send writes at once while the socket takes bytes (the peer
	 * never reads here), so the queue starts to fill only once the
	 * socket buffer is full; count the frames queued from then on.
	 */
	for (i = 0, n = 0; i < 100000; i++) {
		q = conn_queued(x.c);
		r = conn_send(x.c, &m, NULL, 0);
		if (r < 0)
			break;
		if (conn_queued(x.c) > 0)
			n++;
	}
	check_eq(r, -ENOBUFS);
	check(n >= 3 && n <= 5, "%d frames fit in 1000 bytes", n);
	check_eq(conn_queued(x.c), q);
	check(conn_queued(x.c) <= 1000, "queued %zu", conn_queued(x.c));
	conn_close(x.c);
	r = conn_send(x.c, &m, NULL, 0);
	check_eq(r, -EPIPE);
	ctx_run(&x);
	check_eq(x.ncloses, 1);
	check_eq(x.close_err, 0);
	ctx_fini(&x);
}

static struct msg
big_msg(char *text, size_t n)
{
	struct msg m = { .type = MSG_ERROR };

	memset(text, 'z', n - 1);
	text[n - 1] = '\0';
	m.u.ERROR.code = "x";
	m.u.ERROR.message = text;
	return m;
}

/* Keep the conn's queue at ~1 MiB while the peer reads nothing. */
static void
on_fill(uv_timer_t *t)
{
	static char text[4000];
	struct ctx *x = t->data;
	struct msg m = big_msg(text, sizeof(text));

	if (x->c == NULL)
		return;
	while (conn_queued(x->c) < (1u << 20))
		require(conn_send(x->c, &m, NULL, 0) == 0, "conn_send");
	/* Queue still full after a few ticks: the socket buffer is too. */
	if (++x->ticks < 5)
		return;
	uv_timer_stop(t);
	if (x->nfds == 0) {
		close(x->peer);
		x->peer = -1;
	} else {
		conn_close_after_flush(x->c);
	}
}

TEST(peer_never_reads_then_closes)
{
	struct ctx x;
	int before = tap_count_fds();

	ctx_open(&x, NULL);
	uv_timer_start(&x.timer, on_fill, 5, 5);
	ctx_run(&x);
	check_eq(x.ncloses, 1);
	check(x.close_err == -EPIPE || x.close_err == -ECONNRESET,
	    "close_cb err %d (%s)", x.close_err, strerror(-x.close_err));
	ctx_fini(&x);
	check_eq(tap_count_fds(), before);
}

/* close_after_flush against a peer that never reads ends after ~1 s. */
TEST(close_after_flush_peer_stuck)
{
	struct timespec a, b;
	struct ctx x;
	long ms;

	ctx_open(&x, NULL);
	x.nfds = 1;	/* on_fill: close_after_flush instead of closing */
	uv_timer_start(&x.timer, on_fill, 5, 5);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ctx_run(&x);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	check_eq(x.ncloses, 1);
	check_eq(x.close_err, -ETIMEDOUT);
	check(ms >= 900 && ms < 5000, "closed after %ld ms", ms);
	ctx_fini(&x);
}

TEST(peer_closes_mid_frame)
{
	struct msg m = heartbeat(5);
	uint8_t *buf;
	size_t len;

	encode(&m, 0, &buf, &len);
	/* Inside the header, then inside the body. */
	reject_case(NULL, buf, 10, NULL, 0, true, -PROTO_ETRUNC);
	reject_case(NULL, buf, len - 1, NULL, 0, true, -PROTO_ETRUNC);
	free(buf);
}

TEST(close_inside_frame_cb)
{
	struct msg m = heartbeat(1);
	struct ctx x;
	int i;

	ctx_open(&x, NULL);
	x.close_in_cb = true;
	for (i = 0; i < 3; i++)
		peer_send_msg(x.peer, &m, NULL, 0);
	ctx_run(&x);
	check_eq(x.nframes, 1);
	check_eq(x.ncloses, 1);
	check_eq(x.close_err, 0);
	ctx_fini(&x);
}

/* A reply queued in frame_cb still goes out after the peer's EOF. */
TEST(reply_after_peer_eof)
{
	struct msg m = heartbeat(1);
	struct frame f;
	struct ctx x;

	ctx_open(&x, NULL);
	x.echo = true;
	peer_send_msg(x.peer, &m, NULL, 0);
	shutdown(x.peer, SHUT_WR);
	ctx_run(&x);
	check_eq(x.nframes, 1);
	check_eq(x.close_err, 0);
	require(peer_recv(x.peer, &f) == 0, "peer reads the reply");
	check(f.m.type == MSG_HEARTBEAT && f.m.u.HEARTBEAT.ts_ms == 7,
	    "the reply");
	frame_release(&f);
	check(peer_recv(x.peer, &f) < 0, "one reply only");
	ctx_fini(&x);
}

static void
on_resume(uv_timer_t *t)
{
	struct ctx *x = t->data;

	check_eq(x->nframes, 1);	/* nothing read while paused */
	x->pause_in_cb = false;
	conn_resume(x->c);
}

TEST(pause_resume)
{
	struct msg m = heartbeat(1);
	struct ctx x;

	ctx_open(&x, NULL);
	x.pause_in_cb = true;
	peer_send_msg(x.peer, &m, NULL, 0);
	peer_send_msg(x.peer, &m, NULL, 0);
	shutdown(x.peer, SHUT_WR);
	uv_timer_start(&x.timer, on_resume, 50, 0);
	ctx_run(&x);
	check_eq(x.nframes, 2);
	check_eq(x.close_err, 0);
	ctx_fini(&x);
}

TEST(send_with_fds)
{
	struct msg m = heartbeat(3);
	int p[2], fds[2], base, r;
	struct frame f;
	struct ctx x;
	char ch = 0;

	ctx_open(&x, NULL);
	require(pipe2(p, O_CLOEXEC) == 0, "pipe2");
	fds[0] = p[1];
	fds[1] = p[1];
	base = tap_count_fds();
	r = conn_send(x.c, &m, fds, 2);
	check_eq(r, 0);
	/*
	 * conn_send writes at once: with room in the socket the duplicates
	 * are already sent and closed; if it had to queue, they are held.
	 */
	check_eq(tap_count_fds(), base + (conn_queued(x.c) > 0 ? 2 : 0));
	close(p[1]);
	while (conn_queued(x.c) > 0)
		uv_run(&x.loop, UV_RUN_ONCE);
	/* The duplicates are closed once sent. */
	check_eq(tap_count_fds(), base - 1);
	require(peer_recv(x.peer, &f) == 0, "peer reads the frame");
	check_eq(f.nfds, 2);
	check_eq(f.h.nfds, 2);
	check(f.m.type == MSG_HEARTBEAT && f.m.u.HEARTBEAT.ts_ms == 3, "msg");
	check(write(f.fds[1], "k", 1) == 1, "write through the passed fd");
	frame_release(&f);
	check(read(p[0], &ch, 1) == 1 && ch == 'k', "read it on the pipe");
	close(p[0]);
	ctx_fini(&x);
}

int
main(int argc, char **argv)
{
	uv_loop_t l;

	/* libuv's first loop opens process-wide fds (its signal lock pipe);
	 * open them here so the cases' fd counts see only their own. */
	uv_loop_init(&l);
	uv_loop_close(&l);
	return tap_main(argc, argv);
}
