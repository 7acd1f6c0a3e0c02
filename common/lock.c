/*
 * lock: one process owns a data dir at a time.
 *
 * Invariants:
 *  - Ownership is the flock on <dir>/baton.lock and nothing else; the
 *    pidfile only names the owner for humans and for error messages.  The
 *    kernel drops a dead owner's flock, so a stale pidfile never blocks
 *    anyone: the next owner overwrites it.
 *  - The lock file is never unlinked: unlinking would let two processes
 *    each hold a flock on a different inode under the same name.
 *  - The pidfile is replaced with tmp+fsync+rename, so a reader sees the
 *    old pid or the new one, never a torn number.
 *  - The lock fd is CLOEXEC: an exec'd child never inherits ownership.
 *  - The holder is named by the kernel (/proc/locks records the pid that
 *    took the flock, atomically with the lock itself), so "held, holder
 *    unknown" cannot be seen in the window between a new owner's flock and
 *    its pidfile write, nor can a stale pidfile name a dead owner while a
 *    live one holds the lock.  The pidfile is only the fallback when
 *    /proc/locks cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/lock.h"

#define LOCK_NAME	"baton.lock"
#define PID_NAME	"baton.pid"
#define RETRY_MS	25

struct dirlock {
	int fd;
	char pidpath[PATH_MAX];
};

static int
join(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* The pid named by the pidfile, or 0 when it is missing or garbage. */
static pid_t
read_pidfile(const char *dir)
{
	char path[PATH_MAX], buf[32], *end;
	ssize_t n;
	long v;
	int fd;

	if (join(path, sizeof(path), dir, PID_NAME) < 0)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || v <= 0 ||
	    v > INT_MAX)
		return 0;
	return (pid_t)v;
}

/*
 * The pid that holds a flock on the file at path, from /proc/locks: 0
 * when nobody does, -errno when the table cannot be read.
 */
static pid_t
locks_holder(const char *path)
{
	char line[256];
	unsigned maj, min;
	unsigned long long ino;
	long pid;
	struct stat st;
	pid_t found = 0;
	FILE *f;

	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	f = fopen("/proc/locks", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* "1: FLOCK  ADVISORY  WRITE 123 fe:00:4567 0 EOF"; waiters
		 * have "->" after the number and hold nothing. */
		if (strstr(line, "->") || !strstr(line, " FLOCK "))
			continue;
		if (sscanf(line, "%*u: FLOCK %*s %*s %ld %x:%x:%llu", &pid, &maj,
		    &min, &ino) != 4)
			continue;
		if (maj == major(st.st_dev) && min == minor(st.st_dev) &&
		    ino == (unsigned long long)st.st_ino && pid > 0) {
			found = (pid_t)pid;
			break;
		}
	}
	fclose(f);
	return found;
}

/* The holder of a lock known to be held: the kernel's word, else the pidfile. */
static pid_t
holder_of(const char *dir, const char *lockpath)
{
	pid_t p = locks_holder(lockpath);

	return p > 0 ? p : read_pidfile(dir);
}

static int
write_pidfile(const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	/* Leftovers of a holder that died mid-write are ours to remove. */
	(void)atomicfile_cleanup(path);
	return atomicfile_write_plain(path, buf, (size_t)n, 0600);
}

static int
acquire(const char *dir, struct dirlock **ret, pid_t *ret_holder,
    bool with_pid)
{
	struct dirlock *l = NULL;
	char path[PATH_MAX];
	int fd = -1, r;

	if (!dir || !ret)
		return -EINVAL;
	if (ret_holder)
		*ret_holder = 0;
	r = join(path, sizeof(path), dir, LOCK_NAME);
	if (r < 0)
		goto out;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		if (r == -EWOULDBLOCK && ret_holder)
			*ret_holder = holder_of(dir, path);
		goto out;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		r = -ENOMEM;
		goto out;
	}
	r = join(l->pidpath, sizeof(l->pidpath), dir, PID_NAME);
	if (r < 0)
		goto out;
	r = with_pid ? write_pidfile(l->pidpath) : 0;
	if (r < 0)
		goto out;
	l->fd = fd;
	fd = -1;
	*ret = l;
	l = NULL;
out:
	free(l);
	if (fd >= 0)
		close(fd);	/* drops the flock if we took it */
	return r;
}

static long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int
lock_acquire(const char *dir, struct dirlock **ret, pid_t *ret_holder)
{
	return acquire(dir, ret, ret_holder, true);
}

int
lock_write_pid(struct dirlock *l)
{
	return write_pidfile(l->pidpath);
}

static int
acquire_wait(const char *dir, int timeout_ms, struct dirlock **ret,
    pid_t *ret_holder, bool with_pid)
{
	long deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct timespec nap = { 0, RETRY_MS * 1000000L };
	int r;

	for (;;) {
		r = acquire(dir, ret, ret_holder, with_pid);
		/*
		 * A pidfile write that failed with a transient I/O error
		 * dropped the flock again: retry it like a busy lock rather
		 * than give up ownership (an incumbent resuming after an
		 * abort would otherwise leave with nobody serving).
		 */
		if ((r != -EWOULDBLOCK && !atomicfile_transient(r)) ||
		    mono_ms() >= deadline)
			return r;
		nanosleep(&nap, NULL);
	}
}

int
lock_acquire_wait(const char *dir, int timeout_ms, struct dirlock **ret,
    pid_t *ret_holder)
{
	return acquire_wait(dir, timeout_ms, ret, ret_holder, true);
}

int
lock_acquire_wait_nopid(const char *dir, int timeout_ms,
    struct dirlock **ret, pid_t *ret_holder)
{
	return acquire_wait(dir, timeout_ms, ret, ret_holder, false);
}

void
lock_release(struct dirlock *l)
{
	if (!l)
		return;
	/* Pidfile first: once the flock drops, it may be someone else's. */
	unlink(l->pidpath);
	close(l->fd);
	free(l);
}

int
lock_probe(const char *dir, pid_t *ret_pid)
{
	char path[PATH_MAX];
	int fd = -1, r;
	pid_t pid;

	if (!dir)
		return -EINVAL;
	r = join(path, sizeof(path), dir, LOCK_NAME);
	if (r < 0)
		goto out;
	/*
	 * The kernel's table answers without touching the lock, so a probe
	 * never makes an owner-to-be's lock_acquire fail.
	 */
	pid = locks_holder(path);
	if (pid >= 0) {
		if (ret_pid)
			*ret_pid = pid;
		return pid > 0 ? 1 : 0;
	}
	/* No lock file: nobody ever locked this dir.  Do not create one. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		r = 0;
		goto out;	/* close() drops it at once */
	}
	if (errno != EWOULDBLOCK) {
		r = -errno;
		goto out;
	}
	/* Only here without /proc/locks: the pidfile is all there is. */
	if (ret_pid)
		*ret_pid = read_pidfile(dir);
	r = 1;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int
lock_fd(const struct dirlock *l)
{
	return l ? l->fd : -1;
}
