/* proc: process liveness as /proc/<pid>/stat tells it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/proc.h"

bool
proc_running(pid_t pid)
{
	char p[64], buf[512], *s;
	ssize_t n;
	int fd;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	/*
	 * kill() found it: only ENOENT (or an empty read) proves it gone.
	 * EMFILE, EINTR, EIO... are our trouble, not its death; calling a
	 * live agent dead made the supervisor forget it and cold-start
	 * another one against the held lock.
	 */
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return true;
	if (n == 0)
		return false;
	buf[n] = '\0';
	/* The state letter follows the last ')' (comm may contain one). */
	s = strrchr(buf, ')');
	return s && s[1] == ' ' && s[2] != 'Z' && s[2] != 'X';
}

void
proc_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}
