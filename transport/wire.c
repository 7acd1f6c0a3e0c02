/*
 * wire: blocking frame I/O for programs that do one thing at a time.
 *
 * Every send and receive is MSG_DONTWAIT followed by poll() on EAGAIN,
 * so one deadline bounds the whole frame whether the socket is blocking
 * or not, and partial transfers simply continue after the wait.
 *
 * Invariants: fds travel only with the first byte of a frame; a receive
 * hands back either a decoded, validated frame that owns exactly the
 * header's nfds fds, or an error with every received fd closed and the
 * body freed.  Reads never go past the end of the current frame, so the
 * next frame's fds are never consumed by this one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "transport/fdpass.h"
#include "transport/wire.h"

/* Milliseconds left before deadline, -1 for none, 0 when past. */
static int
remaining(uint64_t deadline, int timeout_ms)
{
	uint64_t now;

	if (timeout_ms < 0)
		return -1;
	now = clock_mono_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

static int
wait_for(int fd, short events, uint64_t deadline, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	for (;;) {
		r = poll(&pfd, 1, remaining(deadline, timeout_ms));
		if (r > 0)
			return 0;	/* ready, or an error the I/O will see */
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int
wire_send(int fd, const struct msg *m, const int *fds, unsigned nfds,
    int timeout_ms)
{
	uint64_t deadline = timeout_ms >= 0 ?
	    clock_mono_ms() + (uint64_t)timeout_ms : 0;
	uint8_t *buf = NULL;
	size_t len, off = 0;
	ssize_t n;
	int r;

	if (nfds > 0 && fds == NULL)
		return -EINVAL;
	if ((r = frame_encode(m, nfds, &buf, &len)) < 0)
		goto out;
	while (off < len) {
		/* The fds go with the first sendmsg that carries data. */
		n = fdpass_send(fd, buf + off, len - off,
		    off == 0 ? fds : NULL, off == 0 ? nfds : 0, MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == 0)
			continue;
		if (n != -EAGAIN && n != -EWOULDBLOCK && n != -EINTR) {
			r = (int)n;
			goto out;
		}
		if (n != -EINTR && (r = wait_for(fd, POLLOUT, deadline,
		    timeout_ms)) < 0)
			goto out;
	}
	r = 0;
out:
	free(buf);
	return r;
}

/*
 * Read exactly len bytes.  Fds may arrive only while *got == 0 (with the
 * first byte of the frame); they are stored in f.  *got counts frame
 * bytes read before this call and is advanced.
 */
static int
recv_exact(int fd, uint8_t *buf, size_t len, struct frame *f, size_t *got,
    uint64_t deadline, int timeout_ms)
{
	int tmp[FRAME_MAX_FDS];
	unsigned nfds, i;
	size_t off = 0;
	ssize_t n;
	int r;

	while (off < len) {
		n = fdpass_recv(fd, buf + off, len - off, tmp, FRAME_MAX_FDS,
		    &nfds, MSG_DONTWAIT);
		if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
			if (n != -EINTR && (r = wait_for(fd, POLLIN, deadline,
			    timeout_ms)) < 0)
				return r;
			continue;
		}
		if (n == -EMSGSIZE)
			return -PROTO_ENFDS;	/* truncated or > 16 fds */
		if (n < 0)
			return (int)n;
		if (nfds > 0) {
			if (*got + off != 0 || n == 0) {
				fdpass_close_all(tmp, nfds);
				return -PROTO_ENFDS;
			}
			for (i = 0; i < nfds; i++)
				f->fds[i] = tmp[i];
			f->nfds = nfds;
		}
		if (n == 0)
			return *got + off == 0 ? -ECONNRESET : -PROTO_ETRUNC;
		off += (size_t)n;
	}
	*got += off;
	return 0;
}

int
wire_recv(int fd, int timeout_ms, struct frame *ret_f)
{
	uint64_t deadline = timeout_ms >= 0 ?
	    clock_mono_ms() + (uint64_t)timeout_ms : 0;
	uint8_t hdr[FRAME_HEADER_SIZE];
	uint8_t *body = NULL;
	struct frame f;
	size_t got = 0;
	int r;

	frame_init(&f);
	frame_init(ret_f);
	if ((r = recv_exact(fd, hdr, sizeof(hdr), &f, &got, deadline,
	    timeout_ms)) < 0)
		goto out;
	if ((r = frame_header_decode(hdr, &f.h)) < 0)
		goto out;
	if (f.nfds != f.h.nfds) {
		r = -PROTO_ENFDS;
		goto out;
	}
	/* body_len <= FRAME_MAX_BODY was checked by the header decode. */
	if (f.h.body_len > 0 && (body = malloc(f.h.body_len)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = recv_exact(fd, body, f.h.body_len, &f, &got, deadline,
	    timeout_ms)) < 0)
		goto out;
	if ((r = msg_decode(f.h.type, body, f.h.body_len, &f.m)) < 0)
		goto out;
	if ((r = msg_validate(&f.m, NULL)) < 0)
		goto out;
	*ret_f = f;
	frame_init(&f);
out:
	free(body);
	frame_release(&f);
	return r;
}

int
wire_connect(const char *path, int timeout_ms)
{
	uint64_t deadline = timeout_ms >= 0 ?
	    clock_mono_ms() + (uint64_t)timeout_ms : 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t elen = sizeof(int);
	int fd = -1, r, err, fl, left;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			if ((r = wait_for(fd, POLLOUT, deadline,
			    timeout_ms)) < 0)
				goto out;
			err = 0;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
			    &elen) < 0) {
				r = -errno;
				goto out;
			}
			if (err != 0) {
				r = -err;
				goto out;
			}
			break;
		}
		if (errno != EAGAIN) {
			r = -errno;
			goto out;
		}
		/*
		 * A unix listener with a full backlog: the kernel gives no
		 * wakeup to poll for, so retry in short steps.
		 */
		left = remaining(deadline, timeout_ms);
		if (left == 0) {
			r = -ETIMEDOUT;
			goto out;
		}
		poll(NULL, 0, left < 0 || left > 10 ? 10 : left);
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto out;
	}
	r = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return r;
}
