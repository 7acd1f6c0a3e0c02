/*
 * lock: the data-dir lock.  flock(LOCK_EX|LOCK_NB) on <dir>/baton.lock
 * plus <dir>/baton.pid naming the holder (written atomically).  The lock
 * file is never unlinked; a dead holder's flock is gone with it, so a
 * stale pidfile is simply overwritten, and a live holder is refused.
 */
#ifndef BATON_LOCK_H
#define BATON_LOCK_H

#include <sys/types.h>

struct dirlock;

/*
 * Try once.  Returns 0 and an owned lock, or -EWOULDBLOCK with the
 * holder's pid in *ret_holder (0 if unknown; may be NULL), or -errno.
 */
int lock_acquire(const char *dir, struct dirlock **ret, pid_t *ret_holder);

/* Retry every 25 ms for up to timeout_ms. */
int lock_acquire_wait(const char *dir, int timeout_ms, struct dirlock **ret,
    pid_t *ret_holder);

/* Remove the pidfile, drop the flock, free. NULL is fine. */
void lock_release(struct dirlock *l);

/*
 * Who holds the lock, without keeping it: returns 1 and the pidfile's pid
 * when it is held (pid 0 if the pidfile is unreadable), 0 when free,
 * -errno on error.  (Probes with a non-blocking flock that it drops at
 * once; a concurrent lock_acquire_wait absorbs the short overlap.)
 */
int lock_probe(const char *dir, pid_t *ret_pid);

/* The fd of the lock file (for fcntl/CLOEXEC checks in tests). */
int lock_fd(const struct dirlock *l);

#endif
