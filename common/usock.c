/*
 * usock: unix listening sockets that never exist at their public path
 * with the wrong mode or half set up: bind under a temporary name, chmod,
 * listen, then rename(2) over the public path in one step.  A client sees
 * either the old socket or the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/usock.h"

int
usock_tmp_name(char *out, const char *path)
{
	int n = snprintf(out, PATH_MAX, "%s.tmp.%d", path, (int)getpid());

	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int
usock_listen_tmp(const char *tmp_path, unsigned mode, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = -1, r;

	if (strlen(tmp_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, tmp_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(tmp_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	if (chmod(tmp_path, mode) < 0)
		goto fail_unlink;
	if (listen(fd, backlog) < 0)
		goto fail_unlink;
	return fd;
fail_unlink:
	r = -errno;
	(void)unlink(tmp_path);
	close(fd);
	return r;
fail:
	r = -errno;
	close(fd);
	return r;
}

int
usock_listen(const char *path, unsigned mode, int backlog)
{
	char tmp[PATH_MAX];
	int fd, r;

	r = usock_tmp_name(tmp, path);
	if (r < 0)
		return r;
	fd = usock_listen_tmp(tmp, mode, backlog);
	if (fd < 0)
		return fd;
	if (rename(tmp, path) < 0) {
		r = -errno;
		(void)unlink(tmp);
		close(fd);
		return r;
	}
	return fd;
}

int
usock_accept(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

int
usock_peer(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	if (pid)
		*pid = uc.pid;
	if (uid)
		*uid = uc.uid;
	if (gid)
		*gid = uc.gid;
	return 0;
}

bool
usock_peer_allowed(uid_t uid, gid_t gid, const uid_t *uids, unsigned nuids,
    const gid_t *gids, unsigned ngids)
{
	unsigned i;

	if (uid == 0 || uid == geteuid())
		return true;
	for (i = 0; i < nuids; i++)
		if (uids[i] == uid)
			return true;
	for (i = 0; gids && i < ngids; i++)
		if (gids[i] == gid)
			return true;
	return false;
}
