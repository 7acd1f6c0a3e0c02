/*
 * nscreate: creations (helper process, waiters), releases, and the
 * durable writes behind both (nswriter: group commit off the loop); an
 * answer goes out only from its write's completion.  Invariants:
 * nsserver_int.h.
 */
#include "successor/nsserver_int.h"

static void notify_subscribers(struct nsserver *s, const char *id,
    uint64_t seq);
static void remember_dying(struct nsserver *s, pid_t pid);
static void undo_on_host(struct nsserver *s, struct ns_alloc *a,
    int pins_err);
static void undo_pins_post(void *arg);
static void keep_alloc(struct nsserver *s, struct ns_alloc *a);
static void release_durable(void *arg, int err);
static void creation_durable(void *arg, int err);
static bool commit_creation(struct nsserver *s, struct creation *cr);
static void remove_creation(struct nsserver *s, struct creation *cr);
static void finish_creation(struct nsserver *s, struct creation *cr);
static void helper_cb(uv_poll_t *h, int status, int events);

/* nswriter: snapshot the table for the write that starts now. */
int
nss_encode_cb(void *data, uint8_t **buf, size_t *len, uint64_t *ret_seq)
{
	struct nsserver *s = data;
	uint64_t before = s->t.seq;
	int r;

	/* Each allocation ended since the last write gets its own seq. */
	s->t.seq = nsstate_event_stamp(&s->t, before);
	if (s->t.seq == before)
		s->t.seq++;
	r = nsstate_encode(&s->t, buf, len);
	if (r < 0) {
		nsstate_event_unstamp(&s->t, before);
		s->t.seq = before;
	}
	*ret_seq = s->t.seq;
	return r;
}

void
nss_written_cb(void *data, int err, const uint8_t digest[NSWRITER_DIGEST_LEN])
{
	struct nsserver *s = data;

	if (err == 0) {
		memcpy(s->digest, digest, NSSERVER_DIGEST_LEN);
		s->dirty = false;
		s->written_seq = s->t.seq;
		return;
	}
	/*
	 * The file may hold the new table anyway (rename done, then the
	 * directory fsync failed): the next write or the seal writes again.
	 */
	s->dirty = true;
	log_error("ns.persist_failed", strerror(-err), "path=%s",
	    s->state_path);
}

/* A change made in memory; done(arg, err) once durable.  0 or -errno. */
int
nss_persist_async(struct nsserver *s, nswriter_done_fn done, void *arg)
{
	if (s->sealed)
		return -EROFS;
	return nswriter_change(s->wr, done, arg);
}

/*
 * Everything durable now, on this thread (seal, generation): the write in
 * flight, what is queued, and the whole table again when a write failed
 * or a change was made outside the queue (dirty).  0 or -errno.
 */
int
nss_persist_sync(struct nsserver *s)
{
	int r = nswriter_flush_sync(s->wr, 0);

	if (r == 0 && s->dirty)
		r = nswriter_flush_sync(s->wr, 1);
	return r;
}

/* ALLOCATION_ENDED for id, ended at table sequence seq. */
void
nss_ended_msg(struct msg *m, const char *id, uint64_t seq)
{
	memset(m, 0, sizeof(*m));
	m->type = MSG_ALLOCATION_ENDED;
	m->u.ALLOCATION_ENDED.allocation_id = id;
	m->u.ALLOCATION_ENDED.seq.set = true;
	m->u.ALLOCATION_ENDED.seq.v = seq;
}

static void
notify_subscribers(struct nsserver *s, const char *id, uint64_t seq)
{
	struct client *cl, *next;
	struct msg m;

	nss_ended_msg(&m, id, seq);
	for (cl = s->clients; cl; cl = next) {
		next = cl->next;
		/* A subscriber that does not read is dropped, not waited for. */
		if (cl->subscriber && conn_send(cl->c, &m, NULL, 0) < 0)
			conn_close(cl->c);
	}
}

static void
remember_dying(struct nsserver *s, pid_t pid)
{
	if (pid <= 0)
		return;
	if (s->ndying == DYING_MAX) {
		memmove(s->dying, s->dying + 1,
		    (DYING_MAX - 1) * sizeof(s->dying[0]));
		s->ndying--;
	}
	s->dying[s->ndying++] = pid;
}

/*
 * Undo the allocation on the host (pins, init, watch); the table is
 * untouched.  pins_err: the pins and init were undone already (by the
 * writer thread, undo_pins_post()) with this result; 1: not yet.
 */
static void
undo_on_host(struct nsserver *s, struct ns_alloc *a, int pins_err)
{
	int r = pins_err;

	if (a->cg_wd >= 0 && s->ino_fd >= 0)
		(void)inotify_rm_watch(s->ino_fd, a->cg_wd);
	a->cg_wd = -1;
	if (r > 0)
		r = nsprov_destroy(s->pin_dir, a->id, a->reaper,
		    a->ino[NSV_PID]);
	if (r < 0)
		log_warn("ns.destroy", strerror(-r), "allocation_id=%s",
		    a->id);
	remember_dying(s, a->reaper);
	/*
	 * Only a pid namespace's init was moved into a cgroup (spawn_helper).
	 * Skipped otherwise: even a lookup that finds nothing there waits
	 * for the kernfs lock every network namespace's creation takes
	 * (7-13 ms on the loop under 8 creating clients).  A cgroup left by
	 * an older agent is swept as nobody's.  EBUSY until the killed init
	 * has exited: the tick retries.
	 */
	if ((a->mask & NSVM_PID) && nscgroup_remove(&s->cg, a->id) < 0)
		s->cg_dirty = true;
}

/* Undo the allocation on the host and forget it (no persist). */
void
nss_destroy_alloc(struct nsserver *s, struct ns_alloc *a)
{
	undo_on_host(s, a, 1);
	nsstate_remove(&s->t, a);
}

struct release *
nss_find_release(const struct nsserver *s, const char *id)
{
	struct release *r;

	for (r = s->releasing; r; r = r->next)
		if (strcmp(r->a->id, id) == 0)
			return r;
	return NULL;
}

/* A release that did not become durable: the allocation stays served. */
static void
keep_alloc(struct nsserver *s, struct ns_alloc *a)
{
	if (nsstate_insert(&s->t, a) < 0) {
		/* Cannot keep it in memory either: undo it fully. */
		undo_on_host(s, a, 1);
		nsstate_alloc_free(a);
		return;
	}
	nss_watch_alloc(s, a);
}

/* The release's write ended: undo on the host, or put it back. */
static void
release_durable(void *arg, int err)
{
	struct release *rel = arg, **pp;
	struct nsserver *s = rel->s;
	struct ns_alloc *a = rel->a;
	char id[NSV_ID_MAX + 1];

	for (pp = &s->releasing; *pp; pp = &(*pp)->next)
		if (*pp == rel) {
			*pp = rel->next;
			s->nreleasing--;
			break;
		}
	snprintf(id, sizeof(id), "%s", a->id);
	if (err < 0) {
		nsstate_event_undo(&s->t, id);
		keep_alloc(s, a);
		s->dirty = true;
		log_warn("ns.release_failed", strerror(-err), "allocation_id=%s "
		    "reason=%s", id, rel->why);
	} else {
		uint64_t seq = nsstate_event_seq(&s->t, id);
		uint64_t t0 = clock_mono_us();

		undo_on_host(s, a, rel->pins_undone ? rel->pins_err : 1);
		nsstate_alloc_free(a);
		/* undo_us: the host's undo, on the loop (docs/BENCH.md) */
		log_info("ns.release", NULL, "allocation_id=%s reason=%s "
		    "allocations=%u seq=%" PRIu64 " undo_us=%" PRIu64, id,
		    rel->why, s->t.n, seq, clock_mono_us() - t0);
		notify_subscribers(s, id, seq);
	}
	rel->a = NULL;
	if (rel->cl)
		nss_release_answer(rel, err);
	free(rel);
	nss_maybe_drained(s);
}

/*
 * On the writer thread, right after the write that made the release
 * durable: detach the pins and kill the init there, not on the loop (a
 * detach waits for the kernel; the loop serves meanwhile).  System calls
 * only (nswriter_change_post); the loop leaves rel->a alone until
 * release_durable().
 */
static void
undo_pins_post(void *arg)
{
	struct release *rel = arg;
	struct ns_alloc *a = rel->a;

	/* Durable, not undone, not answered (the writer thread's _exit). */
	CRASHPOINT(p_after_release_persist);
	rel->pins_err = nsprov_destroy(rel->s->pin_dir, a->id, a->reaper,
	    a->ino[NSV_PID]);
	rel->pins_undone = true;
}

/*
 * Release: the table without it is made durable first, then the host is
 * undone (the pins by the writer thread), subscribers told and cl (may
 * be NULL) answered.  When the write fails nothing is undone: the
 * allocation stays and cl gets an error.  A
 * crash between the write and the undo leaves pins no table names: the
 * next load sweeps them.  0, or -errno when the change could not even be
 * queued (nothing changed then).
 */
int
nss_release_alloc(struct nsserver *s, struct ns_alloc *a, const char *why,
    struct client *cl)
{
	struct release *rel = calloc(1, sizeof(*rel));
	int r;

	if (!rel)
		return -ENOMEM;
	rel->s = s;
	rel->a = a;
	rel->cl = cl;
	snprintf(rel->id, sizeof(rel->id), "%s", a->id);
	snprintf(rel->why, sizeof(rel->why), "%s", why);
	if (a->cg_wd >= 0 && s->ino_fd >= 0)
		(void)inotify_rm_watch(s->ino_fd, a->cg_wd);
	a->cg_wd = -1;
	nsstate_remove(&s->t, a);
	CRASHPOINT(p_before_release_persist);
	/* The event rides the same write as the release itself. */
	r = nsstate_event_add(&s->t, a->id);
	if (r == 0) {
		r = s->sealed ? -EROFS : nswriter_change_post(s->wr,
		    release_durable, rel, undo_pins_post, rel);
		if (r < 0)
			nsstate_event_undo(&s->t, a->id);
	}
	if (r < 0) {
		keep_alloc(s, a);
		free(rel);
		return r;
	}
	rel->next = s->releasing;
	s->releasing = rel;
	s->nreleasing++;
	if (cl) {
		cl->rel = rel;
		conn_pause(cl->c);
	}
	return 0;
}

/* ---- creations ---- */

void
nss_creation_closed_cb(uv_handle_t *h)
{
	struct creation *cr = h->data;
	struct nsserver *s = cr->s;

	close(cr->fd);
	if (cr->pidfd >= 0)
		close(cr->pidfd);
	free(cr->image);
	free(cr);
	s->open_handles--;
	nss_maybe_free(s);
}

void
nss_answer_waiters(struct creation *cr, const struct ns_alloc *a,
    const char *kind, const char *message)
{
	struct waiter *w;

	while ((w = cr->waiters)) {
		cr->waiters = w->next;
		if (w->cl) {
			if (a)
				nss_answer(w->cl, a, w->order, w->n);
			else
				nss_send_error(w->cl, cr->id, kind, message);
			nss_client_done(w->cl);
		}
		free(w);
	}
}

static void remove_creation(struct nsserver *s, struct creation *cr);

static uint64_t
span(uint64_t from, uint64_t to)
{
	return from && to > from ? to - from : 0;
}

/*
 * ns.create, with where the time went (us, docs/BENCH.md): waiting for a
 * moment between writes, the fork on the loop, the helper's steps, the
 * report reaching the loop, the durable write.
 */
static void
log_create(struct nsserver *s, struct creation *cr, const struct ns_alloc *a)
{
	const uint64_t *h = cr->last.t_us;
	uint64_t now = clock_mono_us();

	log_info("ns.create", NULL, "allocation_id=%s mask=%u reaper=%d "
	    "ms=%" PRIu64 " allocations=%u us=%" PRIu64 " wait_us=%" PRIu64
	    " fork_us=%" PRIu64 " start_us=%" PRIu64 " setup_us=%" PRIu64
	    " dir_us=%" PRIu64 " cgroup_us=%" PRIu64 " make_us=%" PRIu64
	    " pin_us=%" PRIu64 " report_us=%" PRIu64 " write_us=%" PRIu64,
	    a->id, a->mask, (int)a->reaper, clock_mono_ms() - cr->started_ms,
	    s->t.n, span(cr->t_req, now), span(cr->t_req, cr->t_fork),
	    span(cr->t_fork, cr->t_forked),
	    span(cr->t_fork, h[NSPROV_T_START]),
	    span(h[NSPROV_T_START], h[NSPROV_T_SETUP]),
	    span(h[NSPROV_T_SETUP], h[NSPROV_T_DIR]),
	    span(h[NSPROV_T_DIR], h[NSPROV_T_CGROUP]),
	    span(h[NSPROV_T_CGROUP], h[NSPROV_T_MADE]),
	    span(h[NSPROV_T_MADE], h[NSPROV_T_PINNED]),
	    span(h[NSPROV_T_PINNED], cr->t_seen), span(cr->t_commit, now));
}

/* The creation's write ended: answer its waiters either way. */
static void
creation_durable(void *arg, int err)
{
	struct creation *cr = arg;
	struct nsserver *s = cr->s;
	struct ns_alloc *a = cr->alloc;
	char msg[256];

	cr->alloc = NULL;
	if (err < 0) {
		nss_destroy_alloc(s, a);
		nsstate_alloc_free(a);
		snprintf(msg, sizeof(msg), "persist allocation table: %s",
		    strerror(-err));
		nss_answer_waiters(cr, NULL, "creation_failed", msg);
	} else {
		CRASHPOINT(p_after_persist);
		log_create(s, cr, a);
		nss_watch_alloc(s, a);
		nss_answer_waiters(cr, a, NULL, NULL);
	}
	remove_creation(s, cr);
	uv_close((uv_handle_t *)&cr->poll, nss_creation_closed_cb);
	nss_maybe_drained(s);
}

/*
 * The helper pinned everything: into the table, and answered once that is
 * durable.  Returns false when it failed at once (waiters answered, the
 * host undone): the caller then retires the creation.
 */
static bool
commit_creation(struct nsserver *s, struct creation *cr)
{
	struct ns_alloc *a;
	char msg[256];
	int r;

	a = nsstate_alloc_new();
	if (!a) {
		(void)nsprov_destroy(s->pin_dir, cr->id, cr->last.reaper,
		    cr->last.ino[NSV_PID]);
		nss_answer_waiters(cr, NULL, "creation_failed", "out of memory");
		return false;
	}
	snprintf(a->id, sizeof(a->id), "%s", cr->id);
	a->mask = cr->mask;
	a->image = cr->image;
	cr->image = NULL;
	a->reaper = cr->last.reaper;
	memcpy(a->ino, cr->last.ino, sizeof(a->ino));
	a->created_ms = clock_wall_ms();
	if (nsstate_insert(&s->t, a) < 0) {
		(void)nsprov_destroy(s->pin_dir, cr->id, cr->last.reaper,
		    cr->last.ino[NSV_PID]);
		nsstate_alloc_free(a);
		nss_answer_waiters(cr, NULL, "creation_failed", "out of memory");
		return false;
	}
	cr->alloc = a;
	cr->t_commit = clock_mono_us();
	r = nss_persist_async(s, creation_durable, cr);
	if (r < 0) {
		cr->alloc = NULL;
		nss_destroy_alloc(s, a);
		nsstate_alloc_free(a);
		snprintf(msg, sizeof(msg), "persist allocation table: %s",
		    strerror(-r));
		nss_answer_waiters(cr, NULL, "creation_failed", msg);
		return false;
	}
	return true;
}

static void
remove_creation(struct nsserver *s, struct creation *cr)
{
	struct creation **pp;

	for (pp = &s->creations; *pp; pp = &(*pp)->next) {
		if (*pp == cr) {
			*pp = cr->next;
			s->ncreations--;
			nss_uid_put(s, cr->uid, false);
			break;
		}
	}
}

/*
 * The helper's pipe hit EOF, or the spawner's helper reported PINNED: the
 * helper is done; settle the creation.
 */
static void
finish_creation(struct nsserver *s, struct creation *cr)
{
	char msg[300];
	int st;

	uv_poll_stop(&cr->poll);
	/*
	 * Its answer came before the EOF (nsspawn.h), and almost always
	 * before PINNED: take it.
	 */
	if (cr->spawning)
		nsspawn_collect(s->spawner);
	if (cr->spawning) {
		/*
		 * Lost (a send that failed), or not here yet at PINNED
		 * (dropped when it comes): the helper is done anyway.
		 */
		nsspawn_forget(s->spawner, cr);
		cr->spawning = false;
		cr->reaped = true;
	}
	if (cr->pidfd >= 0) {
		/* The spawner reaps it; nothing left to stop. */
		close(cr->pidfd);
		cr->pidfd = -1;
		cr->reaped = true;
	}
	/* Past its last write the helper only exits: this wait is short. */
	if (!cr->reaped && waitpid(cr->helper, &st, 0) == cr->helper)
		cr->reaped = true;
	if (cr->last.stage == NSPROV_PINNED && !cr->timed_out) {
		/* In flight until durable: creation_durable() retires it. */
		if (commit_creation(s, cr))
			return;
	} else {
		if (cr->timed_out)
			snprintf(msg, sizeof(msg), "creation timed out");
		else if (cr->last.stage == NSPROV_FAILED)
			snprintf(msg, sizeof(msg), "%.*s",
			    (int)sizeof(cr->last.what), cr->last.what);
		else
			snprintf(msg, sizeof(msg), "creation helper died");
		/* A helper killed mid-way could not undo its work. */
		(void)nsprov_destroy(s->pin_dir, cr->id, 0, 0);
		s->cg_dirty = true;
		log_warn("ns.creation_failed", msg, "allocation_id=%s",
		    cr->id);
		nss_answer_waiters(cr, NULL, "creation_failed", msg);
	}
	remove_creation(s, cr);
	uv_close((uv_handle_t *)&cr->poll, nss_creation_closed_cb);
	nss_maybe_drained(s);
}

static void
helper_cb(uv_poll_t *h, int status, int events)
{
	struct creation *cr = h->data;
	struct nsprov_report rep;
	ssize_t n;

	(void)status;
	(void)events;
	for (;;) {
		n = read(cr->fd, &rep, sizeof(rep));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n != (ssize_t)sizeof(rep))
			break;	/* EOF, error or a torn record: done */
		if (rep.stage == NSPROV_CREATED) {
			CRASHPOINT(p_after_create);
		} else if (rep.stage == NSPROV_PINNED) {
			CRASHPOINT(p_after_pin);
			cr->t_seen = clock_mono_us();
			/*
			 * Past PINNED a helper only exits.  The spawner's is
			 * not ours to wait for, so its creation is settled now,
			 * not at the EOF its exit makes (~200 us later at one
			 * client, docs/BENCH.md).  Our own child is waited out
			 * at EOF, as ever, so that finish never blocks on it.
			 * The spawner's: asked for, or named by its answer.
			 */
			if (cr->spawning || cr->pidfd >= 0) {
				cr->last = rep;
				break;
			}
		}
		cr->last = rep;
	}
	finish_creation(cr->s, cr);
}

struct creation *
nss_find_creation(struct nsserver *s, const char *id)
{
	struct creation *cr;

	for (cr = s->creations; cr; cr = cr->next)
		if (strcmp(cr->id, id) == 0)
			return cr;
	return NULL;
}

int
nss_add_waiter(struct creation *cr, struct client *cl, const uint8_t *order,
    unsigned n)
{
	struct waiter *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->cl = cl;
	w->n = n;
	memcpy(w->order, order, n);
	w->next = cr->waiters;
	cr->waiters = w;
	cl->w = w;
	conn_pause(cl->c);
	return 0;
}

/* A fork that waits for a moment with no table write in flight. */
struct spawn_later {
	struct creation *cr;
	int wfd;		/* the report pipe's write end */
	int image_fd;		/* -1 without uenv */
	char *upath;		/* NULL without uenv */
};

/*
 * The spawner, started (or started again after it died) when a helper
 * is wanted: called where forking is allowed (nswriter_fork_waits).
 * With none, helpers are forked here as before.  0 or -errno.
 */
static int
ensure_spawner(struct nsserver *s)
{
	struct nsprov_req base;
	int r;

	if (nsspawn_alive(s->spawner))
		return 0;
	nsspawn_free(s->spawner);
	s->spawner = NULL;
	memset(&base, 0, sizeof(base));
	base.pin_dir = s->pin_dir;
	base.uenv_base = s->uenv_base;
	base.cg = &s->cg;	/* per request: only with a pid namespace */
	base.image_fd = -1;
	r = nsspawn_start(s->loop, &base, &s->spawner);
	if (r < 0)
		log_warn("ns.spawner", strerror(-r), "not started: the agent "
		    "forks its helpers");
	return r;
}

/* The spawner's answer for cr: its helper, or none (err). */
static void
spawned_cb(void *arg, pid_t pid, int pidfd, int err)
{
	struct creation *cr = arg;

	cr->spawning = false;
	if (err < 0) {
		/* Failed: the report pipe says so (or the spawner died). */
		cr->reaped = true;
		return;
	}
	cr->helper = pid;
	cr->pidfd = pidfd;
	if (cr->kill_asked)
		nss_creation_kill(cr);
}

void
nss_creation_kill(struct creation *cr)
{
	if (cr->spawning) {
		cr->kill_asked = true;
		return;
	}
	if (cr->reaped)
		return;
	if (cr->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, cr->pidfd, SIGKILL, NULL,
		    0);
	else if (cr->helper > 0)
		(void)kill(cr->helper, SIGKILL);
}

void
nss_creation_wait(struct creation *cr)
{
	struct pollfd p;
	int st;

	if (cr->spawning)
		nsspawn_flush(cr->s->spawner);
	if (cr->reaped)
		return;
	if (cr->pidfd >= 0) {
		/* Readable once it exited; the spawner reaps it. */
		p.fd = cr->pidfd;
		p.events = POLLIN;
		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
	} else if (cr->helper > 0) {
		(void)waitpid(cr->helper, &st, 0);
	}
	cr->reaped = true;
}

/* Fork cr's helper reporting on wfd.  0 or -errno. */
static int
spawn_helper(struct creation *cr, int wfd, int image_fd, const char *upath)
{
	struct nsserver *s = cr->s;
	struct nsprov_req rq;
	int r;

	memset(&rq, 0, sizeof(rq));
	rq.pin_dir = s->pin_dir;
	rq.id = cr->id;
	rq.mask = cr->mask;
	rq.image_fd = image_fd;
	if (image_fd >= 0) {
		rq.uenv_base = s->uenv_base;
		rq.uenv_path = upath;
	}
	/*
	 * Only a pid namespace's init outlives the creation: without one no
	 * process is left for a service stop to kill, and the move into the
	 * allocation cgroup (a cgroup migration per hierarchy) is skipped.
	 */
	rq.cg = (cr->mask & NSVM_PID) ? &s->cg : NULL;
	cr->t_fork = clock_mono_us();
	if (ensure_spawner(s) == 0) {
		r = nsspawn_request(s->spawner, &rq, wfd, spawned_cb, cr);
		if (r == 0) {
			cr->t_forked = clock_mono_us();
			cr->spawning = true;
			cr->reaped = false;
			return 0;
		}
		log_warn("ns.spawner", strerror(-r), "allocation_id=%s: "
		    "forking the helper here", cr->id);
	}
	r = nsprov_spawn(&rq, wfd, &cr->helper);
	cr->t_forked = clock_mono_us();
	if (r == 0)
		cr->reaped = false;
	return r;
}

/* nswriter_between: no write in flight now, fork (or fail) the helper. */
static void
spawn_later_cb(void *arg, int err)
{
	struct spawn_later *l = arg;
	int r;

	if (err == 0) {
		r = spawn_helper(l->cr, l->wfd, l->image_fd, l->upath);
		/* Read from the pipe like a helper's own failure. */
		if (r < 0)
			nsprov_report_failed(l->wfd, r, "fork helper");
	}
	/* Cancelled: nsserver_free() settles the creation itself. */
	close(l->wfd);
	if (l->image_fd >= 0)
		close(l->image_fd);
	free(l->upath);
	free(l);
}

/*
 * Start a creation: its report pipe watched on the loop, its helper
 * forked now, or, where a fork waits for the writer (nswriter_fork_waits)
 * and a table write is in flight (forking then would wait for the disk
 * on the loop), as soon as that write ended.  Until then the creation
 * has no helper (helper 0, reaped: nothing to kill or wait for).
 */
int
nss_start_creation(struct nsserver *s, const char *id, unsigned mask,
    const char *image, char *errbuf, size_t errlen, struct creation **ret)
{
	struct spawn_later *later = NULL;
	struct creation *cr;
	char upath[4096];
	int img = -1, wfd = -1, r;

	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return -ENOMEM;
	cr->s = s;
	cr->fd = -1;
	cr->pidfd = -1;
	cr->reaped = true;	/* no helper yet */
	cr->t_req = clock_mono_us();
	snprintf(cr->id, sizeof(cr->id), "%s", id);
	cr->mask = mask;
	upath[0] = '\0';
	if (image) {
		img = nsmake_open_image(s->uenv_dir, image);
		if (img < 0) {
			r = img;
			snprintf(errbuf, errlen, "uenv image '%s': %s", image,
			    r == -EINVAL ? "not a regular file in the uenv "
			    "directory" : strerror(-r));
			r = -EINVAL;
			goto out;
		}
		r = nsvocab_uenv_path(s->uenv_base, image, upath,
		    sizeof(upath));
		if (r < 0) {
			snprintf(errbuf, errlen, "uenv path too long");
			r = -EINVAL;
			goto out;
		}
		cr->image = strdup(image);
		if (!cr->image) {
			r = -ENOMEM;
			goto out;
		}
	}
	cr->started_ms = clock_mono_ms();
	r = nsprov_open_report(&cr->fd, &wfd);
	if (r < 0) {
		snprintf(errbuf, errlen, "pipe: %s", strerror(-r));
		r = -EIO;
		goto out;
	}
	if (!nswriter_fork_waits() || !nswriter_busy(s->wr)) {
		r = spawn_helper(cr, wfd, img, upath);
		if (r < 0) {
			snprintf(errbuf, errlen, "fork helper: %s",
			    strerror(-r));
			r = -EIO;
			goto out;
		}
	} else {
		later = calloc(1, sizeof(*later));
		if (!later || (image && !(later->upath = strdup(upath)))) {
			r = -ENOMEM;
			goto out;
		}
		later->cr = cr;
		later->wfd = wfd;
		later->image_fd = img;
		r = nswriter_between(s->wr, spawn_later_cb, later);
		if (r < 0)
			goto out;
		wfd = -1;	/* the later's now */
		img = -1;
		later = NULL;
	}
	uv_poll_init(s->loop, &cr->poll, cr->fd);
	cr->poll.data = cr;
	s->open_handles++;
	uv_poll_start(&cr->poll, UV_READABLE | UV_DISCONNECT, helper_cb);
	cr->next = s->creations;
	s->creations = cr;
	s->ncreations++;
	*ret = cr;
	cr = NULL;
	r = 0;
out:
	if (later) {
		free(later->upath);
		free(later);
	}
	if (wfd >= 0)
		close(wfd);
	if (img >= 0)
		close(img);
	if (cr) {
		if (cr->fd >= 0)
			close(cr->fd);
		free(cr->image);
		free(cr);
	}
	return r;
}
