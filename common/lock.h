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
 * holder's pid in *ret_holder (the kernel's record; 0 if unknown; may be
 * NULL), or -errno.
 */
int lock_acquire(const char *dir, struct dirlock **ret, pid_t *ret_holder);

/* Retry every 25 ms for up to timeout_ms. */
int lock_acquire_wait(const char *dir, int timeout_ms, struct dirlock **ret,
    pid_t *ret_holder);

/*
 * The same without writing the pidfile (the flock is the truth, and
 * lock_probe reads the kernel's record): for a caller on a clock, which
 * writes it with lock_write_pid() once it can spare the write (a
 * successor at BEGIN, after its first accepts).
 */
int lock_acquire_wait_nopid(const char *dir, int timeout_ms,
    struct dirlock **ret, pid_t *ret_holder);
int lock_write_pid(struct dirlock *l);

/* Remove the pidfile, drop the flock, free. NULL is fine. */
void lock_release(struct dirlock *l);

/*
 * Who holds the lock, without taking it: returns 1 and the holder's pid
 * (from /proc/locks, so known from the instant the lock is taken) when it
 * is held, 0 when free, -errno on error.  Only where /proc/locks cannot be
 * read does it fall back to a non-blocking flock it drops at once and the
 * pidfile (pid 0 then means "held, holder unknown": treat as alive).
 */
int lock_probe(const char *dir, pid_t *ret_pid);

/* The fd of the lock file (for fcntl/CLOEXEC checks in tests). */
int lock_fd(const struct dirlock *l);

#endif
