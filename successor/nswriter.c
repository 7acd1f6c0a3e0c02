/*
 * nswriter: one writer thread, one write in flight, group commit.
 *
 * Loop side: `queue` holds the changes not yet in a write; `inflight`
 * those in the write the thread is doing.  When a write ends (uv_async),
 * the loop reports it (ops->written), runs the inflight callbacks, then
 * what waited for a moment between writes (`between`: forks of the
 * namespace helper), and starts the next write if the queue is not
 * empty.
 *
 * Thread side: waits for a job under `mu`, writes it without the lock,
 * posts the result under the lock and wakes the loop.  It makes system
 * calls and hashes, and never allocates: the namespace helper is forked
 * with _Fork() (no atfork handlers), so a lock of the allocator held by
 * this thread at that moment would stay locked forever in the child.
 * The loop allocates the snapshot and frees it once the write ended.
 * Even system calls can take locks in a library interposed on them (a
 * fault injector, a sanitizer): there each write runs under fork_mu,
 * which a fork of the helper takes first (nswriter_fork_lock()); with
 * plain glibc a fork does not wait for the write (nswriter_fork_waits).
 * After a write that succeeded, the thread runs the post hooks of the
 * changes in it (the host's undo of a release: system calls only)
 * before it posts the result; the loop does not touch `inflight` until
 * then.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "successor/nsfile.h"
#include "successor/nswriter.h"

struct change {
	nswriter_done_fn done;
	void *arg;
	void (*post)(void *post_arg);	/* on the writing thread, if durable */
	void *post_arg;
	struct change *next;
};

struct clist {
	struct change *head, **tailp;
	unsigned n;
};

struct between {
	nswriter_between_fn fn;
	void *arg;
	struct between *next;
};

struct nswriter {
	uv_loop_t *loop;
	struct nsfile file;	/* the writer thread's, or flush_sync's */
	struct nswriter_ops ops;
	void *data;
	uv_async_t async;

	struct clist queue;	/* changes waiting for a write */
	struct clist inflight;	/* changes in the write in flight */
	struct between *between, **between_tail; /* waiting for no write */
	bool busy;		/* a write is in flight */
	bool firing;		/* running callbacks: start no write yet */

	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	uint8_t *job;		/* buffer to write, or NULL */
	size_t job_len;
	uint64_t job_seq;
	uint8_t *written_buf;	/* the last job's buffer, for the loop to free */
	bool job_done;		/* result below is ready */
	int job_err;
	uint8_t job_digest[NSWRITER_DIGEST_LEN];
	bool quit;
};

static void
clist_init(struct clist *l)
{
	l->head = NULL;
	l->tailp = &l->head;
	l->n = 0;
}

/* Move all of src to the end of dst. */
static void
clist_move(struct clist *dst, struct clist *src)
{
	if (!src->head)
		return;
	*dst->tailp = src->head;
	dst->tailp = src->tailp;
	dst->n += src->n;
	clist_init(src);
}

/*
 * Run and free l's callbacks.  A change they make waits for the next
 * write, which starts only after all of them ran: a failed write's
 * callbacks undo their changes first, so no snapshot sees half of that.
 */
static void
clist_fire(struct nswriter *w, struct clist *l, int err)
{
	struct change *c, *head = l->head;
	bool was = w->firing;

	clist_init(l);
	w->firing = true;
	while ((c = head)) {
		head = c->next;
		if (c->done)
			c->done(c->arg, err);
		free(c);
	}
	w->firing = was;
}

/*
 * Held by a writer for a whole write, and by the loop around a fork:
 * only where fork_waits.  Plain glibc takes no lock in the calls a
 * write makes (open, pwrite, fdatasync, write, rename, umount2, unlink:
 * system call wrappers) nor does the thread allocate, so a child forked mid-write
 * inherits nothing held.  A library interposed on those calls (a
 * sanitizer's runtime, anything preloaded, e.g. libfiu's fault
 * injector) may take locks inside them: then a fork waits for a moment
 * with no write in flight.
 */
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static int fork_waits = -1;	/* unknown until nswriter_fork_waits() */

bool
nswriter_fork_waits_for(bool sanitizer, const char *ld_preload,
    const char *preload_file)
{
	struct stat st;

	if (sanitizer || (ld_preload && *ld_preload))
		return true;
	return preload_file && stat(preload_file, &st) == 0 && st.st_size > 0;
}

bool
nswriter_fork_waits(void)
{
	if (fork_waits < 0) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
		const bool san = true;
#else
		const bool san = false;
#endif
		fork_waits = nswriter_fork_waits_for(san, getenv("LD_PRELOAD"),
		    "/etc/ld.so.preload");
	}
	return fork_waits;
}

void
nswriter_fork_lock(void)
{
	if (nswriter_fork_waits())
		pthread_mutex_lock(&fork_mu);
}

void
nswriter_fork_unlock(void)
{
	if (nswriter_fork_waits())
		pthread_mutex_unlock(&fork_mu);
}

/* Post hooks of l's changes: l is durable. */
static void
run_posts(const struct clist *l)
{
	const struct change *c;

	for (c = l->head; c; c = c->next)
		if (c->post)
			c->post(c->post_arg);
}

static void *
writer_main(void *p)
{
	struct nswriter *w = p;
	uint8_t digest[NSWRITER_DIGEST_LEN];
	uint8_t *buf;
	uint64_t seq;
	size_t len;
	int r;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->job && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->job)
			break;
		buf = w->job;
		len = w->job_len;
		seq = w->job_seq;
		pthread_mutex_unlock(&w->mu);
		/* Every call of the write, and the wake-up, under fork_mu. */
		nswriter_fork_lock();
		r = nsfile_write(&w->file, buf, len, seq, digest);
		if (r == 0)
			run_posts(&w->inflight);
		pthread_mutex_lock(&w->mu);
		w->written_buf = buf;
		w->job = NULL;
		w->job_err = r;
		if (r == 0)
			memcpy(w->job_digest, digest, sizeof(digest));
		w->job_done = true;
		pthread_cond_broadcast(&w->cv);
		uv_async_send(&w->async);
		nswriter_fork_unlock();
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void start_write(struct nswriter *w);

/* Run (and free) what waited for a moment with no write in flight. */
static void
run_between(struct nswriter *w, int err)
{
	struct between *b;
	bool was = w->firing;

	w->firing = true;	/* no write starts before all of them ran */
	while ((b = w->between)) {
		w->between = b->next;
		if (!w->between)
			w->between_tail = &w->between;
		b->fn(b->arg, err);
		free(b);
	}
	w->firing = was;
}

/* The write in flight ended (loop thread): report, answer, go on. */
static void
complete(struct nswriter *w, int err, const uint8_t *digest)
{
	struct clist done = w->inflight;

	clist_init(&w->inflight);
	w->busy = false;
	w->ops.written(w->data, err, digest);
	clist_fire(w, &done, err);
	run_between(w, 0);
	start_write(w);
}

/* Take a posted result, if any.  Returns true when one was handled. */
static bool
reap(struct nswriter *w, bool wait)
{
	uint8_t digest[NSWRITER_DIGEST_LEN];
	uint8_t *buf;
	int err;

	pthread_mutex_lock(&w->mu);
	while (wait && w->busy && !w->job_done)
		pthread_cond_wait(&w->cv, &w->mu);
	if (!w->job_done) {
		pthread_mutex_unlock(&w->mu);
		return false;
	}
	w->job_done = false;
	err = w->job_err;
	memcpy(digest, w->job_digest, sizeof(digest));
	buf = w->written_buf;
	w->written_buf = NULL;
	pthread_mutex_unlock(&w->mu);
	free(buf);
	complete(w, err, digest);
	return true;
}

static void
async_cb(uv_async_t *a)
{
	(void)reap(a->data, false);
}

static void
start_write(struct nswriter *w)
{
	uint8_t *buf = NULL;
	uint64_t seq = 0;
	size_t len = 0;
	int r;

	if (w->busy || w->firing || !w->queue.head)
		return;
	r = w->ops.encode(w->data, &buf, &len, &seq);
	if (r < 0) {
		/* Nothing can be written: these changes are not durable. */
		w->ops.written(w->data, r, NULL);
		clist_fire(w, &w->queue, r);
		return;
	}
	clist_move(&w->inflight, &w->queue);
	w->busy = true;
	pthread_mutex_lock(&w->mu);
	w->job = buf;
	w->job_len = len;
	w->job_seq = seq;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* The thread started ahead, waiting for its writer (nswriter_prestart). */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool started;		/* a thread waits (or was taken: !w then) */
	struct nswriter *w;	/* given by nswriter_new, taken by the thread */
} spare = { .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER };

static void *
spare_main(void *p)
{
	struct nswriter *w;

	(void)p;
	pthread_mutex_lock(&spare.mu);
	while (!spare.w)
		pthread_cond_wait(&spare.cv, &spare.mu);
	w = spare.w;
	spare.w = NULL;
	pthread_mutex_unlock(&spare.mu);
	return writer_main(w);
}

int
nswriter_prestart(void)
{
	int r;

	if (spare.started)
		return 0;
	(void)nswriter_fork_waits();	/* decided before any thread reads it */
	r = -pthread_create(&spare.th, NULL, spare_main, NULL);
	if (r == 0)
		spare.started = true;
	return r;
}

/* w's thread: the one started ahead if it waits, else a new one. */
static int
start_thread(struct nswriter *w)
{
	if (!spare.started)
		return -pthread_create(&w->th, NULL, writer_main, w);
	pthread_mutex_lock(&spare.mu);
	spare.w = w;
	spare.started = false;
	w->th = spare.th;
	pthread_cond_signal(&spare.cv);
	pthread_mutex_unlock(&spare.mu);
	return 0;
}

int
nswriter_new(uv_loop_t *loop, const struct nsfile *file,
    const struct nswriter_ops *ops, void *data, struct nswriter **ret)
{
	struct nswriter *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->file = *file;
	w->loop = loop;
	w->ops = *ops;
	w->data = data;
	clist_init(&w->queue);
	clist_init(&w->inflight);
	w->between_tail = &w->between;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	r = uv_async_init(loop, &w->async, async_cb);
	if (r < 0)
		goto fail;
	w->async.data = w;
	(void)nswriter_fork_waits();	/* decided before any thread reads it */
	r = start_thread(w);
	if (r < 0) {
		uv_close((uv_handle_t *)&w->async, NULL);
		goto fail;
	}
	*ret = w;
	return 0;
fail:
	/* The async handle (if any) is closed without a callback: the
	 * loop may still hold it until the next iteration, so leak w. */
	log_error("ns.writer", strerror(-r), NULL);
	return r;
}

int
nswriter_change(struct nswriter *w, nswriter_done_fn done, void *arg)
{
	return nswriter_change_post(w, done, arg, NULL, NULL);
}

int
nswriter_change_post(struct nswriter *w, nswriter_done_fn done, void *arg,
    void (*post)(void *post_arg), void *post_arg)
{
	struct change *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->done = done;
	c->arg = arg;
	c->post = post;
	c->post_arg = post_arg;
	*w->queue.tailp = c;
	w->queue.tailp = &c->next;
	w->queue.n++;
	start_write(w);
	return 0;
}

unsigned
nswriter_pending(const struct nswriter *w)
{
	return w->queue.n + w->inflight.n;
}

bool
nswriter_busy(const struct nswriter *w)
{
	return w->busy;
}

int
nswriter_between(struct nswriter *w, nswriter_between_fn fn, void *arg)
{
	struct between *b;

	if (!w->busy) {
		fn(arg, 0);
		return 0;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fn = fn;
	b->arg = arg;
	*w->between_tail = b;
	w->between_tail = &b->next;
	return 0;
}

int
nswriter_flush_sync(struct nswriter *w, int force)
{
	uint8_t digest[NSWRITER_DIGEST_LEN];
	uint8_t *buf = NULL;
	struct clist done;
	uint64_t seq = 0;
	size_t len = 0;
	int r;

	/* The write in flight first (its completion may start another). */
	while (w->busy)
		(void)reap(w, true);
	if (!w->queue.head && !force)
		return 0;
	done = w->queue;
	clist_init(&w->queue);
	r = w->ops.encode(w->data, &buf, &len, &seq);
	if (r == 0)
		r = nsfile_write(&w->file, buf, len, seq, digest);
	if (r == 0)
		run_posts(&done);
	free(buf);
	w->ops.written(w->data, r, r == 0 ? digest : NULL);
	clist_fire(w, &done, r);
	run_between(w, 0);
	start_write(w);
	return r;
}

static void
closed_cb(uv_handle_t *h)
{
	free(h->data);
}

void
nswriter_free(struct nswriter *w)
{
	if (!w)
		return;
	run_between(w, -ECANCELED);	/* nothing is forked any more */
	while (w->busy)
		(void)reap(w, true);
	pthread_mutex_lock(&w->mu);
	w->quit = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	w->busy = true;	/* no write may start any more */
	clist_fire(w, &w->queue, -ECANCELED);
	uv_close((uv_handle_t *)&w->async, closed_cb);
}
