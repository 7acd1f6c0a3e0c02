/*
 * listentake: pidfd_open + pidfd_getfd over /proc/<pid>/fd, keeping the
 * duplicates that are listening (SO_ACCEPTCONN) unix sockets whose bound
 * name is one of the wanted paths (or the temporary name it was bound
 * under before being renamed into place).
 *
 * Invariants: the target process is not stopped, signalled or otherwise
 * disturbed (pidfd_getfd only duplicates); every duplicate not kept is
 * closed; on failure nothing is kept.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "supervisor/listentake.h"

#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/*
 * The name a socket was bound with is the path itself, or the temporary
 * name it was renamed from (usock_listen: "<path>.tmp.<pid>").
 */
static bool
bound_at(const char *name, const char *path)
{
	size_t n = strlen(path);
	const char *p;

	if (strncmp(name, path, n) != 0)
		return false;
	if (name[n] == '\0')
		return true;
	if (strncmp(name + n, ".tmp.", 5) != 0 || !name[n + 5])
		return false;
	for (p = name + n + 5; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* Index of the wanted path fd is a listener on, or -1. */
static int
which_listener(int fd, const char (*paths)[PATH_MAX], unsigned n)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int acc = 0;
	socklen_t alen = sizeof(acc);
	unsigned i;

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) < 0 || !acc)
		return -1;
	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    sa.sun_family != AF_UNIX || len <= sizeof(sa.sun_family))
		return -1;
	for (i = 0; i < n; i++)
		if (bound_at(sa.sun_path, paths[i]))
			return (int)i;
	return -1;
}

int
listen_take(pid_t pid, const char (*paths)[PATH_MAX], unsigned n, int *fds)
{
	char dir[64];
	struct dirent *de;
	unsigned i, found = 0;
	int pidfd, fd, k, r = 0;
	long target;
	char *end;
	DIR *d;

	for (i = 0; i < n; i++)
		fds[i] = -1;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d) {
		r = -errno;
		goto out;
	}
	while (found < n && (de = readdir(d))) {
		target = strtol(de->d_name, &end, 10);
		if (*end || end == de->d_name || target < 0)
			continue;
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)target, 0);
		if (fd < 0) {
			if (errno == EPERM || errno == ESRCH) {
				r = -errno;
				break;
			}
			continue;	/* closed meanwhile */
		}
		k = which_listener(fd, paths, n);
		if (k >= 0 && fds[k] < 0) {
			fds[k] = fd;
			found++;
		} else {
			close(fd);
		}
	}
	closedir(d);
	if (r == 0 && found < n)
		r = -ENOENT;
out:
	close(pidfd);
	if (r < 0) {
		for (i = 0; i < n; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return r;
	}
	return (int)n;
}
