/*
 * usock: listening unix sockets that appear atomically at their path
 * (bound under a temporary name with the right mode, then renamed), and
 * peer-credential checks for accepted connections.
 */
#ifndef BATON_USOCK_H
#define BATON_USOCK_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * Bind and listen on tmp_path (created with `mode`), CLOEXEC|NONBLOCK.
 * Returns the fd or -errno.  The caller renames it into place.
 */
int usock_listen_tmp(const char *tmp_path, unsigned mode, int backlog);

/* usock_listen_tmp on "<path>.tmp.<pid>" then rename to path. */
int usock_listen(const char *path, unsigned mode, int backlog);

/* Build "<path>.tmp.<pid>" into out (PATH_MAX). */
int usock_tmp_name(char *out, const char *path);

/* accept4 with CLOEXEC|NONBLOCK.  Returns fd or -errno. */
int usock_accept(int lfd);

/*
 * Peer credentials; allowed when uid is 0, our euid or in uids[], or
 * (gids != NULL) its gid is in gids[].
 */
int usock_peer(int fd, pid_t *pid, uid_t *uid, gid_t *gid);
bool usock_peer_allowed(uid_t uid, gid_t gid, const uid_t *uids,
    unsigned nuids, const gid_t *gids, unsigned ngids);

#endif
