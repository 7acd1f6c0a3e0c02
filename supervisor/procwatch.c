/*
 * procwatch: pidfd_open + uv_poll.  A pidfd becomes readable when its
 * process exits, and signalling through it cannot hit a recycled pid.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "supervisor/procwatch.h"

struct procwatch {
	uv_poll_t poll;
	pid_t pid;
	int pidfd;
	procwatch_cb cb;
	void *data;
};

static void
closed_cb(uv_handle_t *h)
{
	struct procwatch *w = h->data;

	close(w->pidfd);
	free(w);
}

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct procwatch *w = p->data;

	(void)status;
	(void)events;
	uv_poll_stop(p);
	w->cb(w, w->pid, w->data);
}

int
procwatch_start(uv_loop_t *loop, pid_t pid, procwatch_cb cb, void *data,
    struct procwatch **ret)
{
	struct procwatch *w;
	int fd, r;

	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return -errno;
	w = calloc(1, sizeof(*w));
	if (!w) {
		close(fd);
		return -ENOMEM;
	}
	w->pid = pid;
	w->pidfd = fd;
	w->cb = cb;
	w->data = data;
	r = uv_poll_init(loop, &w->poll, fd);
	if (r < 0) {
		close(fd);
		free(w);
		return r;
	}
	w->poll.data = w;
	uv_poll_start(&w->poll, UV_READABLE, poll_cb);
	*ret = w;
	return 0;
}

void
procwatch_stop(struct procwatch *w)
{
	if (!w || uv_is_closing((uv_handle_t *)&w->poll))
		return;
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, closed_cb);
}

int
procwatch_kill(struct procwatch *w, int sig)
{
	if (syscall(SYS_pidfd_send_signal, w->pidfd, sig, NULL, 0) < 0)
		return -errno;
	return 0;
}
