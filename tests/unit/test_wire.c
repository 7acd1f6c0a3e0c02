/*
 * test_wire: blocking frame I/O over real unix sockets: fds riding with
 * frames, partial reads and writes, every fd-count mismatch closing what
 * arrived (checked with tap_count_fds), EOF and timeouts, connect.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "transport/fdpass.h"
#include "transport/wire.h"
#include "tests/lib/tap.h"
#include "tests/unit/msg_fixture.h"

static void
pair(int sv[2])
{
	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	    "socketpair: %s", strerror(errno));
}

static void
mkpipe(int p[2])
{
	require(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
}

/* Encode m as a frame whose header claims nfds. */
static uint8_t *
encode(uint16_t type, unsigned nfds, size_t *len)
{
	struct msg m;
	uint8_t *buf = NULL;

	fixture_fill(&m, type);
	require(frame_encode(&m, nfds, &buf, len) == 0, "frame_encode");
	return buf;
}

static void
send_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		require(n > 0, "send: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

TEST(roundtrip_with_fds)
{
	struct frame f;
	struct msg m;
	int sv[2], a[2], b[2], fds[2], before;
	char c = 0;

	pair(sv);
	mkpipe(a);
	mkpipe(b);
	before = tap_count_fds();
	fixture_fill(&m, MSG_NS_RESPONSE);
	fds[0] = a[1];
	fds[1] = b[0];
	require(wire_send(sv[0], &m, fds, 2, 1000) == 0, "send");
	require(wire_recv(sv[1], 1000, &f) == 0, "recv");
	check_is(f.h.type, MSG_NS_RESPONSE);
	check_is(f.nfds, 2);
	check(msg_equal(&m, &f.m), "same message");
	check(fcntl(f.fds[0], F_GETFD) & FD_CLOEXEC, "received fd is CLOEXEC");
	/* The received fds are the pipes' ends, in order. */
	check(write(f.fds[0], "x", 1) == 1, "write via received fd");
	check(read(a[0], &c, 1) == 1 && c == 'x', "arrives on the pipe");
	check(write(b[1], "y", 1) == 1 && read(f.fds[1], &c, 1) == 1 &&
	    c == 'y', "second fd is b's read end");
	check_is(tap_count_fds(), before + 2);
	frame_release(&f);
	check_is(tap_count_fds(), before);
}

TEST(every_wire_type)
{
	struct frame f;
	struct msg m;
	int sv[2];
	size_t i;

	pair(sv);
	for (i = 0; i < FIXTURE_NTYPES; i++) {
		fixture_fill(&m, fixture_types[i]);
		if (!msg_type_wire(m.type)) {
			check_is(wire_send(sv[0], &m, NULL, 0, 1000),
			    -PROTO_ETYPE);
			continue;
		}
		require(wire_send(sv[0], &m, NULL, 0, 1000) == 0, "send %s",
		    msg_type_name(m.type));
		require(wire_recv(sv[1], 1000, &f) == 0, "recv %s",
		    msg_type_name(m.type));
		check(msg_equal(&m, &f.m), "%s equal", msg_type_name(m.type));
		frame_release(&f);
	}
}

/* Two frames queued back to back: each gets exactly its own fds. */
TEST(back_to_back_frames_keep_their_fds)
{
	struct frame f1, f2;
	struct msg m;
	int sv[2], a[2], b[2], before;

	pair(sv);
	mkpipe(a);
	mkpipe(b);
	before = tap_count_fds();
	fixture_fill(&m, MSG_LISTENERS);
	require(wire_send(sv[0], &m, a, 2, 1000) == 0, "send 1");
	require(wire_send(sv[0], &m, b, 1, 1000) == 0, "send 2");
	require(wire_recv(sv[1], 1000, &f1) == 0, "recv 1");
	require(wire_recv(sv[1], 1000, &f2) == 0, "recv 2");
	check_is(f1.nfds, 2);
	check_is(f2.nfds, 1);
	frame_release(&f1);
	frame_release(&f2);
	check_is(tap_count_fds(), before);
}

/* The sender trickles one byte at a time; reads span many poll waits. */
TEST(trickled_frame)
{
	struct frame f;
	uint8_t *buf;
	size_t len, i;
	int sv[2], p[2], before;
	pid_t pid;

	pair(sv);
	mkpipe(p);
	buf = encode(MSG_NS_RESPONSE, 1, &len);
	pid = fork();
	require(pid >= 0, "fork");
	if (pid == 0) {
		close(sv[1]);
		if (fdpass_send(sv[0], buf, 1, &p[0], 1, 0) != 1)
			_exit(1);
		for (i = 1; i < len; i++) {
			usleep(1000);
			if (send(sv[0], buf + i, 1, MSG_NOSIGNAL) != 1)
				_exit(1);
		}
		_exit(0);
	}
	close(sv[0]);
	close(p[0]);
	close(p[1]);
	before = tap_count_fds();
	require(wire_recv(sv[1], 10000, &f) == 0, "recv");
	check_is(f.nfds, 1);
	check_is(f.h.body_len, len - FRAME_HEADER_SIZE);
	frame_release(&f);
	check_is(tap_count_fds(), before);
	free(buf);
}

/* A body far over the socket buffer: the sender writes in pieces. */
TEST(large_frame_partial_writes)
{
	static char big[64][4001];
	static const char *args[64];
	struct frame f;
	struct msg m;
	int sv[2], status, sz = 4096, i;
	pid_t pid;

	for (i = 0; i < 64; i++) {
		memset(big[i], 'a' + i % 26, 4000);
		args[i] = big[i];
	}
	fixture_fill(&m, MSG_CTL_UPGRADE);
	m.u.CTL_UPGRADE.args.n = 64;
	m.u.CTL_UPGRADE.args.v = args;
	pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	pid = fork();
	require(pid >= 0, "fork");
	if (pid == 0) {
		close(sv[0]);
		usleep(100000);	/* let the sender fill the buffer */
		if (wire_recv(sv[1], 10000, &f) != 0)
			_exit(2);
		_exit(msg_equal(&m, &f.m) ? 0 : 3);
	}
	close(sv[1]);
	check_is(wire_send(sv[0], &m, NULL, 0, 10000), 0);
	require(waitpid(pid, &status, 0) == pid, "wait");
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "receiver got an equal message (status %d)", status);
}

/* Send buf with nfds fds attached to the first byte, raw. */
static void
send_with_fds(int sock, const uint8_t *buf, size_t len, const int *fds,
    unsigned nfds)
{
	require(fdpass_send(sock, buf, len, fds, nfds, 0) == (ssize_t)len,
	    "fdpass_send");
}

TEST(fd_count_mismatch)
{
	struct frame f;
	uint8_t *buf;
	size_t len;
	int sv[2], p[2], before;
	pid_t pid;

	pair(sv);
	mkpipe(p);
	before = tap_count_fds();

	/* Header says 2, one attached. */
	buf = encode(MSG_NS_RESPONSE, 2, &len);
	send_with_fds(sv[0], buf, len, &p[0], 1);
	free(buf);
	check_is(wire_recv(sv[1], 1000, &f), -PROTO_ENFDS);
	check_is(tap_count_fds(), before);
	check_is(f.nfds, 0);

	/* A rejected frame ends the connection: each case gets a new one. */
	close(sv[0]);
	close(sv[1]);

	/* Header says 0, two attached. */
	pair(sv);
	buf = encode(MSG_NS_RESPONSE, 0, &len);
	send_with_fds(sv[0], buf, len, p, 2);
	free(buf);
	check_is(wire_recv(sv[1], 1000, &f), -PROTO_ENFDS);
	check_is(tap_count_fds(), before);

	close(sv[0]);
	close(sv[1]);

	/*
	 * Header says 1, but the fd rides on byte 5, not byte 0, and the
	 * receiver has already read bytes 0-3 (the kernel would otherwise
	 * hand both pieces to one recvmsg).
	 */
	pair(sv);
	buf = encode(MSG_NS_RESPONSE, 1, &len);
	pid = fork();
	require(pid >= 0, "fork");
	if (pid == 0) {
		send_all(sv[0], buf, 4);
		usleep(200000);
		send_with_fds(sv[0], buf + 4, len - 4, &p[1], 1);
		_exit(0);
	}
	close(sv[0]);
	free(buf);
	check_is(wire_recv(sv[1], 5000, &f), -PROTO_ENFDS);
	check_is(waitpid(pid, NULL, 0), pid);
	check_is(tap_count_fds(), before - 1);	/* sv[0] went to the child */
	close(sv[1]);
}

/* 17 fds with a header claiming 16: the control data is refused whole. */
TEST(too_many_fds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 17)];
	} ctl;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *c;
	struct frame f;
	uint8_t *buf;
	size_t len;
	int sv[2], p[2], fds[17], i, before;

	pair(sv);
	mkpipe(p);
	for (i = 0; i < 17; i++)
		fds[i] = p[i % 2];
	before = tap_count_fds();
	buf = encode(MSG_NS_RESPONSE, 16, &len);
	memset(&ctl, 0, sizeof(ctl));
	iov.iov_base = buf;
	iov.iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * 17);
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	require(sendmsg(sv[0], &mh, MSG_NOSIGNAL) == (ssize_t)len, "sendmsg");
	free(buf);
	check_is(wire_recv(sv[1], 1000, &f), -PROTO_ENFDS);
	check_is(tap_count_fds(), before);
}

TEST(eof)
{
	struct frame f;
	uint8_t *buf;
	size_t len;
	int sv[2], p[2], before;

	pair(sv);
	close(sv[0]);
	check_is(wire_recv(sv[1], 1000, &f), -ECONNRESET);
	close(sv[1]);

	/* Mid-header. */
	pair(sv);
	buf = encode(MSG_HEARTBEAT, 0, &len);
	send_all(sv[0], buf, 5);
	close(sv[0]);
	check_is(wire_recv(sv[1], 1000, &f), -PROTO_ETRUNC);
	close(sv[1]);
	free(buf);

	/* Mid-body, with an fd already received: it is closed. */
	pair(sv);
	mkpipe(p);
	before = tap_count_fds();
	buf = encode(MSG_NS_RESPONSE, 1, &len);
	send_with_fds(sv[0], buf, len - 3, &p[0], 1);
	close(sv[0]);
	check_is(wire_recv(sv[1], 1000, &f), -PROTO_ETRUNC);
	check_is(tap_count_fds(), before - 1);	/* sv[0] only */
	free(buf);
}

TEST_T(timeouts, 20)
{
	struct frame f;
	uint8_t *buf;
	uint64_t t0, dt;
	size_t len;
	int sv[2], p[2], before;

	pair(sv);
	t0 = clock_mono_ms();
	check_is(wire_recv(sv[1], 150, &f), -ETIMEDOUT);
	dt = clock_mono_ms() - t0;
	check(dt >= 140 && dt < 2000, "waited %llu ms",
	    (unsigned long long)dt);

	/* A header and half a body, with an fd, then silence. */
	mkpipe(p);
	before = tap_count_fds();
	buf = encode(MSG_NS_RESPONSE, 1, &len);
	send_with_fds(sv[0], buf, FRAME_HEADER_SIZE + 4, &p[0], 1);
	t0 = clock_mono_ms();
	check_is(wire_recv(sv[1], 150, &f), -ETIMEDOUT);
	dt = clock_mono_ms() - t0;
	check(dt >= 140 && dt < 2000, "waited %llu ms",
	    (unsigned long long)dt);
	check_is(tap_count_fds(), before);
	free(buf);
}

TEST(send_timeout_and_closed_peer)
{
	static char big[MSG_MAX_STR + 1];
	static const char *args[MSG_MAX_ARR];
	struct msg m;
	uint64_t t0, dt;
	int sv[2], sz = 4096, i;

	memset(big, 'z', MSG_MAX_STR);
	for (i = 0; i < MSG_MAX_ARR; i++)
		args[i] = big;
	fixture_fill(&m, MSG_CTL_UPGRADE);
	m.u.CTL_UPGRADE.env.n = MSG_MAX_ARR;
	m.u.CTL_UPGRADE.env.v = args;
	pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	t0 = clock_mono_ms();
	check_is(wire_send(sv[0], &m, NULL, 0, 150), -ETIMEDOUT);
	dt = clock_mono_ms() - t0;
	check(dt >= 140 && dt < 2000, "waited %llu ms",
	    (unsigned long long)dt);
	close(sv[0]);
	close(sv[1]);

	/* No SIGPIPE even with the default action. */
	signal(SIGPIPE, SIG_DFL);
	pair(sv);
	close(sv[1]);
	fixture_fill(&m, MSG_HEARTBEAT);
	check_is(wire_send(sv[0], &m, NULL, 0, 1000), -EPIPE);
}

TEST(rejected_frames_close_fds)
{
	static const uint8_t junk[FRAME_HEADER_SIZE] = "not a header!!!";
	struct frame f;
	struct msg m;
	uint8_t *buf;
	size_t len;
	int sv[2], p[2], before;

	pair(sv);
	mkpipe(p);
	before = tap_count_fds();

	send_with_fds(sv[0], junk, sizeof(junk), &p[0], 1);
	check_is(wire_recv(sv[1], 1000, &f), -PROTO_EMAGIC);
	check_is(tap_count_fds(), before);

	/* Shape is fine, meaning is not: msg_validate runs on receive. */
	fixture_fill(&m, MSG_HELLO);
	m.u.HELLO.role = "boss";
	check_is(wire_send(sv[0], &m, &p[1], 1, 1000), 0);
	check_is(wire_recv(sv[1], 1000, &f), -PROTO_EINVAL);
	check_is(tap_count_fds(), before);

	/* A body that is not a map. */
	buf = encode(MSG_HEARTBEAT, 1, &len);
	buf[FRAME_HEADER_SIZE] = 0x90;
	send_with_fds(sv[0], buf, len, &p[0], 1);
	check_is(wire_recv(sv[1], 1000, &f), -PROTO_ENOTMAP);
	check_is(tap_count_fds(), before);
	free(buf);
}

static int
listener(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	require(fd >= 0, "socket");
	require(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");
	if (backlog >= 0)
		require(listen(fd, backlog) == 0, "listen");
	return fd;
}

TEST_T(connect, 20)
{
	char dir[] = "/tmp/test_wire.XXXXXX", path[128], longp[200];
	struct frame f;
	struct msg m;
	int l, c, a, i, fl, extra[8];
	uint64_t t0, dt;

	require(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/ok.sock", dir);
	l = listener(path, 8);
	c = wire_connect(path, 1000);
	require(c >= 0, "connect: %s", proto_strerror(c));
	fl = fcntl(c, F_GETFL);
	check(!(fl & O_NONBLOCK), "blocking again");
	check(fcntl(c, F_GETFD) & FD_CLOEXEC, "CLOEXEC");
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	require(a >= 0, "accept");
	fixture_fill(&m, MSG_STATUS);
	check_is(wire_send(c, &m, NULL, 0, 1000), 0);
	require(wire_recv(a, 1000, &f) == 0, "frame over the connection");
	frame_release(&f);
	close(a);
	close(c);
	close(l);

	snprintf(path, sizeof(path), "%s/missing.sock", dir);
	check_is(wire_connect(path, 1000), -ENOENT);
	snprintf(path, sizeof(path), "%s/bound.sock", dir);
	l = listener(path, -1);
	check_is(wire_connect(path, 1000), -ECONNREFUSED);
	close(l);
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	check_is(wire_connect(longp, 1000), -ENAMETOOLONG);

	/* A listener that never accepts: once its backlog is full, time out. */
	snprintf(path, sizeof(path), "%s/full.sock", dir);
	l = listener(path, 0);
	for (i = 0; i < 8; i++)
		extra[i] = -1;
	for (i = 0; i < 8; i++) {
		extra[i] = wire_connect(path, 50);
		if (extra[i] < 0)
			break;
	}
	check(i < 8 && extra[i] == -ETIMEDOUT, "backlog fills (%d)", i);
	t0 = clock_mono_ms();
	check_is(wire_connect(path, 150), -ETIMEDOUT);
	dt = clock_mono_ms() - t0;
	check(dt >= 140 && dt < 2000, "waited %llu ms",
	    (unsigned long long)dt);
	for (i = 0; i < 8; i++)
		if (extra[i] >= 0)
			close(extra[i]);
	close(l);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ok.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/bound.sock", dir);
	unlink(path);
	rmdir(dir);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
