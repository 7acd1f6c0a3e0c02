/*
 * fdpass: SCM_RIGHTS over unix sockets.
 *
 * Invariants:
 *  - Every fd this module receives is CLOEXEC from birth
 *    (MSG_CMSG_CLOEXEC), so no window exists where a fork+exec elsewhere
 *    could inherit it.
 *  - fdpass_recv hands the caller all of a message's fds or none: on
 *    MSG_CTRUNC, a foreign control message or more fds than maxfds, every
 *    fd found in the control data is closed before returning.
 *  - The control buffer has room for FDPASS_MAX_FDS + 1 fds, so a sender
 *    that attaches one too many is seen (and refused) rather than
 *    silently truncated by the kernel.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/fdpass.h"

/* Control buffer for n fds, aligned for struct cmsghdr. */
#define CTL_SPACE(n) CMSG_SPACE(sizeof(int) * (n))

ssize_t
fdpass_send(int sock, const void *buf, size_t len, const int *fds,
    unsigned nfds, int flags)
{
	union {
		struct cmsghdr align;
		char buf[CTL_SPACE(FDPASS_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t n;

	if (nfds > FDPASS_MAX_FDS || (nfds > 0 && (len == 0 || !fds)))
		return -EINVAL;
	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CTL_SPACE(nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	/* EINTR from sendmsg means nothing was sent: safe to repeat. */
	do
		n = sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n;
}

ssize_t
fdpass_recv(int sock, void *buf, size_t len, int *fds, unsigned maxfds,
    unsigned *ret_nfds, int flags)
{
	union {
		struct cmsghdr align;
		char buf[CTL_SPACE(FDPASS_MAX_FDS + 1)];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg;
	struct cmsghdr *c;
	/* Holds what the control buffer can: never more than MAX + 1. */
	int got[FDPASS_MAX_FDS + 1];
	unsigned ngot = 0, i;
	int err = 0;
	ssize_t n;

	if (ret_nfds)
		*ret_nfds = 0;
	if (len == 0 || !buf || (maxfds > 0 && !fds) || !ret_nfds)
		return -EINVAL;
	if (maxfds > FDPASS_MAX_FDS)
		maxfds = FDPASS_MAX_FDS;
	do {
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	/* Collect every fd first, whatever else is wrong, so all get closed. */
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t k, cnt;
		int *data;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			err = -EBADMSG;
			continue;
		}
		if (c->cmsg_len < CMSG_LEN(0))
			continue;
		data = (int *)(void *)CMSG_DATA(c);
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int fd;

			memcpy(&fd, data + k, sizeof(fd));
			if (ngot < FDPASS_MAX_FDS + 1)
				got[ngot++] = fd;
			else
				close(fd);	/* the buffer bounds this */
		}
	}
	if (!err && (msg.msg_flags & MSG_CTRUNC))
		err = -EMSGSIZE;
	if (!err && ngot > maxfds)
		err = -EMSGSIZE;
	if (err) {
		fdpass_close_all(got, ngot);
		return err;
	}
	for (i = 0; i < ngot; i++)
		fds[i] = got[i];
	*ret_nfds = ngot;
	return n;
}

void
fdpass_close_all(int *fds, unsigned n)
{
	unsigned i;

	if (!fds)
		return;
	for (i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}
