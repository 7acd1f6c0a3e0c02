/*
 * acceptor: uv_poll on the listener plus a back-off timer.  Both handles
 * live in the struct, which is freed from the last close callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/usock.h"
#include "transport/acceptor.h"

#define DEF_PER_WAKE	64
#define DEF_BACKOFF_MS	100

struct acceptor {
	uv_poll_t poll;
	uv_timer_t backoff;
	int lfd;
	int open_handles;
	bool active;
	struct acceptor_opts o;
	acceptor_cb cb;
	void *data;
};

static void poll_cb(uv_poll_t *h, int status, int events);

static void
backoff_cb(uv_timer_t *t)
{
	struct acceptor *a = t->data;

	a->active = uv_poll_start(&a->poll, UV_READABLE, poll_cb) == 0;
}

/* Tell a peer that may not connect, then let conn close it. */
static void
refuse(struct acceptor *a, int fd, pid_t pid, uid_t uid, gid_t gid)
{
	struct conn_opts co = { .max_body = 4096, .errstyle = a->o.errstyle };
	struct conn *c;

	log_warn(a->o.refused_event, a->o.refused_text, "peer_pid=%d "
	    "peer_uid=%u peer_gid=%u", (int)pid, (unsigned)uid, (unsigned)gid);
	if (conn_open(uv_handle_get_loop((uv_handle_t *)&a->poll), fd, &co,
	    NULL, NULL, NULL, &c) == 0)
		conn_reject(c, -EACCES, a->o.refused_text);
}

static void
poll_cb(uv_poll_t *h, int status, int events)
{
	struct acceptor *a = h->data;
	struct acceptor_peer p;
	unsigned i;
	int fd;

	(void)events;
	if (status < 0)
		return;
	for (i = 0; i < a->o.per_wake; i++) {
		fd = usock_accept(a->lfd);
		if (fd == -EINTR || fd == -ECONNABORTED)
			continue;
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS ||
		    fd == -ENOMEM) {
			/* Level-triggered: stop, or the loop spins on it. */
			log_warn("accept.backoff", strerror(-fd), "fd=%d ms=%u",
			    a->lfd, a->o.backoff_ms);
			uv_poll_stop(&a->poll);
			a->active = false;
			uv_timer_start(&a->backoff, backoff_cb, a->o.backoff_ms,
			    0);
			return;
		}
		if (fd < 0)
			return;	/* EAGAIN: the backlog is empty */
		memset(&p, 0, sizeof(p));
		p.fd = fd;
		if (usock_peer(fd, &p.pid, &p.uid, &p.gid) < 0) {
			close(fd);
			continue;
		}
		if (!usock_peer_allowed(p.uid, p.gid, a->o.allow_uids,
		    a->o.n_allow_uids, a->o.allow_gids, a->o.n_allow_gids)) {
			refuse(a, fd, p.pid, p.uid, p.gid);
			continue;
		}
		a->cb(a->data, &p);
	}
}

int
acceptor_start(uv_loop_t *loop, int lfd, const struct acceptor_opts *o,
    acceptor_cb cb, void *data, struct acceptor **ret)
{
	struct acceptor *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->lfd = lfd;
	a->o = *o;
	if (!a->o.per_wake)
		a->o.per_wake = DEF_PER_WAKE;
	if (!a->o.backoff_ms)
		a->o.backoff_ms = DEF_BACKOFF_MS;
	if (!a->o.refused_event)
		a->o.refused_event = "accept.peer_refused";
	if (!a->o.refused_text)
		a->o.refused_text = "peer not allowed";
	a->cb = cb;
	a->data = data;
	r = uv_poll_init(loop, &a->poll, lfd);
	if (r < 0) {
		free(a);
		return r;
	}
	a->poll.data = a;
	uv_timer_init(loop, &a->backoff);
	a->backoff.data = a;
	a->open_handles = 2;
	r = uv_poll_start(&a->poll, UV_READABLE, poll_cb);
	if (r < 0) {
		acceptor_stop(a);
		return r;
	}
	a->active = true;
	*ret = a;
	return 0;
}

int
acceptor_fd(const struct acceptor *a)
{
	return a->lfd;
}

bool
acceptor_active(const struct acceptor *a)
{
	return a->active;
}

static void
closed_cb(uv_handle_t *h)
{
	struct acceptor *a = h->data;

	if (--a->open_handles == 0)
		free(a);
}

void
acceptor_stop(struct acceptor *a)
{
	if (!a)
		return;
	a->active = false;
	uv_close((uv_handle_t *)&a->poll, closed_cb);
	uv_close((uv_handle_t *)&a->backoff, closed_cb);
}
