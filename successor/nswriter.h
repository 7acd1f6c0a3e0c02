/*
 * nswriter: the allocation table's durable writes, off the agent's loop.
 *
 * The loop changes the table in memory and calls nswriter_change() with
 * what to do once that change is durable (answer the client).  One writer
 * thread runs nsfile_write (a slot written in place, one fdatasync, then
 * the copy older builds read) for one snapshot at a time; every change
 * made while a write is in flight rides the next one (group commit: many
 * changes, one flush).  A snapshot
 * is encoded on the loop when its write starts, so it holds every change
 * made until then.  Results come back to the loop through a uv_async.
 *
 * Invariants:
 * - a change's done callback runs only after a write that started after
 *   the change has finished (err 0: durable; else the write's error);
 * - at most one write is in flight, and none once nswriter_flush_sync()
 *   or nswriter_free() has returned: the caller may then hand the file
 *   (and the data-dir lock) to another process;
 * - callbacks run on the loop thread, in the order changes were made.
 */
#ifndef BATON_NSWRITER_H
#define BATON_NSWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define NSWRITER_DIGEST_LEN 32

struct nswriter;

struct nswriter_ops {
	/*
	 * Snapshot the table now (owned buffer) for the write about to
	 * start, and the table seq it holds (each write's is higher).
	 */
	int (*encode)(void *data, uint8_t **ret_buf, size_t *ret_len,
	    uint64_t *ret_seq);
	/* A write ended: err 0 with the digest of what is on disk, or -errno. */
	void (*written)(void *data, int err,
	    const uint8_t digest[NSWRITER_DIGEST_LEN]);
};

typedef void (*nswriter_done_fn)(void *arg, int err);

struct nsfile;

/*
 * Start the next writer's thread ahead (a successor's head start): it
 * waits until nswriter_new() takes it, so creating a thread (~65 us
 * here) is not among what BEGIN does while nobody accepts.  Taken once;
 * without one, nswriter_new() creates its thread.  0 or -errno.
 */
int nswriter_prestart(void);

/* Writes go to file (copied: where its slots stand, from the load). */
int nswriter_new(uv_loop_t *loop, const struct nsfile *file,
    const struct nswriter_ops *ops, void *data, struct nswriter **ret);

/*
 * A change was made in memory; done(arg, err) runs once it is durable (or
 * its write failed).  done may be NULL (nobody waits).  0 or -ENOMEM (then
 * nothing was queued and the caller must undo the change).
 */
int nswriter_change(struct nswriter *w, nswriter_done_fn done, void *arg);

/*
 * The same, and post(post_arg) runs once the change is durable, before
 * done, on the thread that wrote it (the writer thread, or the caller of
 * nswriter_flush_sync()), never after a failed write.  post makes system
 * calls only: no allocation, no logging, no libuv; it runs under the fork
 * lock, and the loop must not touch what it writes until done runs.
 */
int nswriter_change_post(struct nswriter *w, nswriter_done_fn done,
    void *arg, void (*post)(void *post_arg), void *post_arg);

/* Changes not yet durable (queued or in the write in flight). */
unsigned nswriter_pending(const struct nswriter *w);

/*
 * Finish the write in flight, then write every pending change (or, when
 * force, the current table even without one) on the calling thread.
 * Callbacks run before it returns.  0 or the last write's -errno.
 */
int nswriter_flush_sync(struct nswriter *w, int force);

/*
 * Around a fork without atfork handlers (the namespace helper's _Fork):
 * where nswriter_fork_waits(), the lock waits until no writer thread is
 * inside a write, and keeps any from starting one, so the child inherits
 * no lock held by a thread it does not have.  Taken while a write is in
 * flight it waits for that write (the disk): the loop then forks only
 * when nswriter_busy() is false, and otherwise from nswriter_between().
 * Elsewhere both are no-ops and a fork never waits for the disk.
 */
void nswriter_fork_lock(void);
void nswriter_fork_unlock(void);

/*
 * Whether a fork must wait for a moment with no write in flight: when a
 * library may be interposed on the write's calls and hold a lock inside
 * them (a sanitizer build, LD_PRELOAD set, /etc/ld.so.preload not
 * empty).  Decided once per process.
 */
bool nswriter_fork_waits(void);
/* The decision itself, for tests. */
bool nswriter_fork_waits_for(bool sanitizer, const char *ld_preload,
    const char *preload_file);

/* A write is in flight: its thread may hold the fork lock. */
bool nswriter_busy(const struct nswriter *w);

typedef void (*nswriter_between_fn)(void *arg, int err);

/*
 * fn(arg, 0) runs on the loop once no write is in flight and before the
 * next one starts (the fork lock is then free within microseconds); at
 * once when no write is in flight.  fn(arg, -ECANCELED) from
 * nswriter_free() when that moment never came.  0 or -ENOMEM.
 */
int nswriter_between(struct nswriter *w, nswriter_between_fn fn, void *arg);

/*
 * Wait for the write in flight, stop the thread and free (the async
 * handle is closed on the loop; run it afterwards).  Changes never
 * written get done(arg, -ECANCELED).
 */
void nswriter_free(struct nswriter *w);

#endif
