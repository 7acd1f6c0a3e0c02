/*
 * acceptor: the one accept loop of baton's servers (the supervisor's
 * control socket, the agent's control socket, the namespace socket).
 *
 * A listening unix socket on uv_poll.  Each wake accepts at most
 * `per_wake` connections, so a flood cannot keep the loop from the
 * connections it already has.  Each peer's SO_PEERCRED is read and
 * checked against the allow-list (root, our euid, the listed uids and
 * gids); a peer not allowed is logged and gets an error frame in the
 * owner's style, then is closed; an allowed one goes to the owner's
 * callback, which owns the fd from then on.  EMFILE, ENFILE, ENOBUFS and
 * ENOMEM stop polling for `backoff_ms` instead of waking a level-
 * triggered loop again and again.  The listening fd is borrowed.
 */
#ifndef BATON_ACCEPTOR_H
#define BATON_ACCEPTOR_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "transport/conn.h"

struct acceptor;

struct acceptor_peer {
	int fd;			/* non-blocking, CLOEXEC; the callee's */
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

typedef void (*acceptor_cb)(void *data, const struct acceptor_peer *p);

struct acceptor_opts {
	const uid_t *allow_uids;	/* besides root and our euid */
	unsigned n_allow_uids;
	const gid_t *allow_gids;
	unsigned n_allow_gids;
	unsigned per_wake;		/* 0 = 64 */
	unsigned backoff_ms;		/* 0 = 100 */
	enum conn_errstyle errstyle;	/* how a refused peer is told */
	const char *refused_event;	/* log event, e.g. "ns.peer_refused" */
	const char *refused_text;	/* what the peer is told */
};

/* Start accepting on lfd.  0 or -errno. */
int acceptor_start(uv_loop_t *loop, int lfd, const struct acceptor_opts *o,
    acceptor_cb cb, void *data, struct acceptor **ret);
/* The listening fd (borrowed). */
int acceptor_fd(const struct acceptor *a);
/* Polling now (false while stopped for a back-off). */
bool acceptor_active(const struct acceptor *a);
/* Stop and free (handles close on the loop; lfd is not closed).  NULL ok. */
void acceptor_stop(struct acceptor *a);

#endif
