/*
 * nsserver: the namespace socket on the agent's loop (SPEC §5).
 *
 * Invariants:
 * - The loop never blocks on a creation: nsprov_spawn() forks a helper
 *   and its report pipe is watched with uv_poll.  A creation is final
 *   only at the pipe's EOF (the helper has finished or undone its work).
 * - Nothing is answered before it is durable: a change is made in memory
 *   and handed to nswriter, whose thread writes the table (atomicfile)
 *   off the loop; NS_RESPONSE and ALLOCATION_RELEASED go out from the
 *   write's completion.  Changes made while a write is in flight share
 *   the next one (group commit).  Reads (STATUS, repeats of durable
 *   allocations) never wait for a write.  Every write bumps seq; digest
 *   is the SHA-256 of the payload written.
 * - Until its change is durable, a creation stays in `creations` (a
 *   repeat request joins it) and a release in `releasing` (a request for
 *   that id is told to ask again): no second change to an id can race
 *   the first one's write.  A failed write undoes its changes in memory
 *   and answers NS_ERROR.
 * - One request per connection at a time: a connection waiting for a
 *   creation is paused, so answers keep their order and a peer cannot
 *   queue unbounded work.  Connections, creations in flight,
 *   allocations and subscribers all have limits (limit_exceeded), and
 *   connections and creations also per peer uid other than root and
 *   ours, so one uid's flood cannot take the slots every other client
 *   needs.
 * - Requests for one allocation id are idempotent: the same namespace
 *   set (and image) gets fds to the same namespaces, in each request's
 *   order; a request during the creation joins it.
 * - Sealed: no mutation.  A cgroup that empties while sealed is released
 *   after resume (or by the successor, which sees the same files).
 *
 * cgroup-empty: one inotify fd (raw, on uv_poll, keeping libuv's thread
 * pool out of the agent) watches <scope>/cgroup.events for IN_MODIFY.  A
 * scope not there yet is found through a watch on workload.slice for
 * IN_CREATE and a 1 s tick that retries every allocation without a watch
 * (which also covers a missing workload.slice).  "populated 1" is
 * remembered durably (cg_seen) so the 1→0 edge survives handoffs; the
 * edge (a change notification that reads 0 counts: cgroupfs notifies
 * only on flips), or the scope vanishing after it was seen populated,
 * releases the allocation and tells every subscriber.  A scope that
 * exists but is empty when first seen is a job not started yet: kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/clock.h"
#include "transport/conn.h"
#include "common/log.h"
#include "client/nsclient.h"
#include "common/usock.h"
#include "crashpoints/crashpoint.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "successor/nscgroup.h"
#include "successor/nsprov.h"
#include "successor/nsserver.h"
#include "successor/nsstate.h"
#include "successor/nswriter.h"

#define DEF_MAX_CONNS		1024
#define DEF_MAX_PENDING		64
#define UID_SHARE		2	/* one uid: 1/UID_SHARE of a limit */
#define DEF_MAX_ALLOCS		4096
#define DEF_MAX_SUBS		64
#define MAX_BODY		(64u << 10)	/* requests are tiny */
#define DEF_MAX_QUEUED		(256u << 10)	/* answers are small too */
#define CREATE_TIMEOUT_MS	30000
#define TICK_MS			1000
#define ACCEPTS_PER_WAKE	64
#define DYING_MAX		256
#define DRAIN_FIRST_REQUEST_MS	500	/* a fresh connection's request */

struct client;

struct waiter {
	struct client *cl;		/* NULL once the client left */
	unsigned n;
	uint8_t order[NSCLIENT_MAX_NS];
	struct waiter *next;
};

/* What one peer uid holds; a slot is freed when it holds nothing. */
struct uidslot {
	uid_t uid;
	unsigned conns, pending;
};

struct release;

struct client {
	struct nsserver *s;
	struct conn *c;
	uid_t uid;
	struct release *rel;		/* set while its release is written */
	bool subscriber;
	struct waiter *w;		/* set while waiting for a creation */
	unsigned requests;		/* frames received */
	struct client *prev, *next;
};

struct creation {
	struct nsserver *s;
	struct ns_alloc *alloc;		/* in the table, being written */
	uid_t uid;			/* who started it (per-uid limit) */
	char id[NSCLIENT_ID_MAX + 1];
	unsigned mask;
	char *image;
	pid_t helper;
	bool reaped;
	bool timed_out;
	int fd;
	uv_poll_t poll;
	struct nsprov_report last;	/* last complete record */
	uint64_t started_ms;
	struct waiter *waiters;
	struct creation *next;
};

/* A release waiting for its table write. */
struct release {
	struct nsserver *s;
	struct ns_alloc *a;		/* out of the table, still on the host */
	struct client *cl;		/* who asked, NULL when it left or none */
	char id[NSCLIENT_ID_MAX + 1];
	char why[24];
	struct release *next;
};

struct lpoll {
	uv_poll_t h;
	struct nsserver *s;
	int fd;
};

struct nsserver {
	uv_loop_t *loop;
	char *pin_dir, *uenv_dir, *uenv_base, *state_path, *cgroup_root;
	char *build_id;
	uid_t *allow_uids;
	unsigned n_allow_uids;
	gid_t *allow_gids;
	unsigned n_allow_gids;
	unsigned max_conns, max_pending, max_allocs, max_subs;
	unsigned max_conns_uid, max_pending_uid;
	struct uidslot *uids;		/* one per uid holding something */
	unsigned nuids, cap_uids;
	uint64_t uid_refused;		/* connections over a uid's share */
	unsigned max_body, max_queued;

	struct ns_table t;
	uint8_t digest[NSSERVER_DIGEST_LEN];
	bool dirty;			/* needs a write nothing has queued */
	uint64_t written_seq;		/* seq of the newest durable table */
	struct nswriter *wr;
	struct release *releasing;
	unsigned nreleasing;
	bool ready, draining, sealed, freeing;

	struct lpoll *lp;		/* accepting when started */
	bool accept_paused;		/* EMFILE: retried by the tick */

	struct client *clients;
	unsigned nclients, nsubs;
	struct creation *creations;
	unsigned ncreations;

	struct nscgroup cg;		/* allocation cgroups (nscgroup.h) */
	bool cg_dirty;			/* one may be left to remove */
	pid_t dying[DYING_MAX];		/* killed reapers not yet reaped */
	unsigned ndying;

	int ino_fd;
	int slice_wd;
	uv_poll_t ipoll;
	uv_timer_t tick;
	uv_timer_t drain_timer;
	uv_timer_t grace_timer;		/* drain: first-request grace */
	nsserver_drain_cb drain_cb;
	void *drain_data;
	unsigned open_handles;
};

static void maybe_free(struct nsserver *s);
static void maybe_drained(struct nsserver *s);
static void watch_alloc(struct nsserver *s, struct ns_alloc *a);
static struct creation *find_creation(struct nsserver *s, const char *id);

/* ---- allocations whose init died; allocation cgroups ---- */

#define DEAD_INIT_MSG "allocation's namespace init is dead; release it"

/*
 * Mark a dead (its pid namespace can take no process any more): it is
 * kept, answered with NS_ERROR and counted in STATUS until released.
 */
static void
mark_dead(struct ns_alloc *a, const char *why)
{
	if (a->dead)
		return;
	a->dead = true;
	log_error("ns.init_dead", why, "allocation_id=%s reaper=%d",
	    a->id, (int)a->reaper);
}

/* With a pid namespace: its init still runs (checked before answering). */
static bool
init_alive(struct ns_alloc *a)
{
	const char *why = "";

	if (a->dead)
		return false;
	if (!(a->mask & NSM_PID))
		return true;
	if (nsprov_check_init(a->reaper, a->ino[NSK_PID], &why) == 0)
		return true;
	mark_dead(a, why);
	return false;
}

static unsigned
count_dead(const struct nsserver *s)
{
	const struct ns_alloc *a;
	unsigned n = 0;

	for (a = s->t.head; a; a = a->next)
		n += a->dead;
	return n;
}

static bool
cg_known_cb(const char *id, void *data)
{
	struct nsserver *s = data;

	return nsstate_find(&s->t, id) || find_creation(s, id);
}

/* rmdir allocation cgroups nobody owns; again on the tick if busy. */
static void
sweep_cgroups(struct nsserver *s)
{
	s->cg_dirty = nscgroup_sweep(&s->cg, cg_known_cb, s) > 0;
}

/* ---- small helpers ---- */

static void
handle_closed_cb(uv_handle_t *h)
{
	struct nsserver *s = h->data;

	s->open_handles--;
	maybe_free(s);
}

static void
lpoll_closed_cb(uv_handle_t *h)
{
	struct lpoll *lp = h->data;
	struct nsserver *s = lp->s;

	free(lp);
	s->open_handles--;
	maybe_free(s);
}

static char *
dup_or_null(const char *p)
{
	return p ? strdup(p) : NULL;
}

/* The slot of uid, created when create is set; NULL when none (or ENOMEM). */
static struct uidslot *
uid_slot(struct nsserver *s, uid_t uid, bool create)
{
	struct uidslot *u;
	unsigned i, cap;

	for (i = 0; i < s->nuids; i++)
		if (s->uids[i].uid == uid)
			return &s->uids[i];
	if (!create)
		return NULL;
	if (s->nuids == s->cap_uids) {
		cap = s->cap_uids ? s->cap_uids * 2 : 8;
		u = realloc(s->uids, cap * sizeof(*u));
		if (!u)
			return NULL;
		s->uids = u;
		s->cap_uids = cap;
	}
	u = &s->uids[s->nuids++];
	memset(u, 0, sizeof(*u));
	u->uid = uid;
	return u;
}

/*
 * Root and our own uid are the node's own services (the supervisor,
 * batonctl, the job launcher): only the global limits bind them.
 */
static bool
uid_exempt(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

static void
uid_put(struct nsserver *s, uid_t uid, bool conn)
{
	struct uidslot *u = uid_slot(s, uid, false);

	if (!u)
		return;
	if (conn && u->conns)
		u->conns--;
	else if (!conn && u->pending)
		u->pending--;
	if (!u->conns && !u->pending)
		*u = s->uids[--s->nuids];
}

/* nswriter: snapshot the table for the write that starts now. */
static int
encode_cb(void *data, uint8_t **buf, size_t *len)
{
	struct nsserver *s = data;
	int r;

	s->t.seq++;
	/* Allocations ended since the last write end at this seq. */
	nsstate_event_stamp(&s->t, s->t.seq);
	r = nsstate_encode(&s->t, buf, len);
	if (r < 0)
		s->t.seq--;
	return r;
}

static void
written_cb(void *data, int err, const uint8_t digest[NSWRITER_DIGEST_LEN])
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
static int
persist_async(struct nsserver *s, nswriter_done_fn done, void *arg)
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
static int
persist_sync(struct nsserver *s)
{
	int r = nswriter_flush_sync(s->wr, 0);

	if (r == 0 && s->dirty)
		r = nswriter_flush_sync(s->wr, 1);
	return r;
}

static void
send_error(struct client *cl, const char *id, const char *kind,
    const char *message)
{
	struct msg m;

	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_ERROR;
	m.u.NS_ERROR.allocation_id = id;
	m.u.NS_ERROR.kind = kind;
	m.u.NS_ERROR.message = message;
	if (conn_send(cl->c, &m, NULL, 0) < 0)
		conn_close(cl->c);
}

/* The client's request is answered: read again, or leave when draining. */
static void
client_done(struct client *cl)
{
	cl->w = NULL;
	if (cl->s->draining)
		conn_close_after_flush(cl->c);
	else
		conn_resume(cl->c);
}

static void
answer(struct client *cl, const struct ns_alloc *a, const uint8_t *order,
    unsigned n)
{
	const char *types[NSCLIENT_MAX_NS];
	char upath[4096];
	int fds[NSCLIENT_MAX_NS] = { -1, -1, -1 };
	struct msg m;
	unsigned i;
	int r;

	for (i = 0; i < n; i++) {
		fds[i] = nsprov_open_pin(cl->s->pin_dir, a->id, order[i],
		    a->ino[order[i]]);
		if (fds[i] < 0) {
			r = fds[i];
			snprintf(upath, sizeof(upath), "open %s pin: %s",
			    nsclient_kind_name(order[i]), strerror(-r));
			send_error(cl, a->id, "creation_failed", upath);
			goto out;
		}
		types[i] = nsclient_kind_name(order[i]);
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_RESPONSE;
	m.u.NS_RESPONSE.allocation_id = a->id;
	m.u.NS_RESPONSE.fd_types.n = n;
	m.u.NS_RESPONSE.fd_types.v = types;
	m.u.NS_RESPONSE.uenv_mount_path = NULL;
	if (a->image && nsclient_uenv_path(cl->s->uenv_base, a->image, upath,
	    sizeof(upath)) == 0)
		m.u.NS_RESPONSE.uenv_mount_path = upath;
	r = conn_send(cl->c, &m, fds, n);
	if (r < 0) {
		log_warn("ns.send_failed", strerror(-r), "allocation_id=%s",
		    a->id);
		conn_close(cl->c);
	}
out:
	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* ALLOCATION_ENDED for id, ended at table sequence seq. */
static void
ended_msg(struct msg *m, const char *id, uint64_t seq)
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

	ended_msg(&m, id, seq);
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

/* Undo the allocation on the host (pins, init, watch); the table is untouched. */
static void
undo_on_host(struct nsserver *s, struct ns_alloc *a)
{
	int r;

	if (a->cg_wd >= 0 && s->ino_fd >= 0)
		(void)inotify_rm_watch(s->ino_fd, a->cg_wd);
	a->cg_wd = -1;
	r = nsprov_destroy(s->pin_dir, a->id, a->reaper, a->ino[NSK_PID]);
	if (r < 0)
		log_warn("ns.destroy", strerror(-r), "allocation_id=%s",
		    a->id);
	remember_dying(s, a->reaper);
	/* EBUSY until the killed init has exited: the tick retries. */
	if (nscgroup_remove(&s->cg, a->id) < 0)
		s->cg_dirty = true;
}

/* Undo the allocation on the host and forget it (no persist). */
static void
destroy_alloc(struct nsserver *s, struct ns_alloc *a)
{
	undo_on_host(s, a);
	nsstate_remove(&s->t, a);
}

static struct release *
find_release(const struct nsserver *s, const char *id)
{
	struct release *r;

	for (r = s->releasing; r; r = r->next)
		if (strcmp(r->a->id, id) == 0)
			return r;
	return NULL;
}

static void release_answer(struct release *rel, int err);

/* A release that did not become durable: the allocation stays served. */
static void
keep_alloc(struct nsserver *s, struct ns_alloc *a)
{
	if (nsstate_insert(&s->t, a) < 0) {
		/* Cannot keep it in memory either: undo it fully. */
		undo_on_host(s, a);
		nsstate_alloc_free(a);
		return;
	}
	watch_alloc(s, a);
}

/* The release's write ended: undo on the host, or put it back. */
static void
release_durable(void *arg, int err)
{
	struct release *rel = arg, **pp;
	struct nsserver *s = rel->s;
	struct ns_alloc *a = rel->a;
	char id[NSCLIENT_ID_MAX + 1];

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
		undo_on_host(s, a);
		nsstate_alloc_free(a);
		log_info("ns.release", NULL, "allocation_id=%s reason=%s "
		    "allocations=%u seq=%" PRIu64, id, rel->why, s->t.n,
		    s->written_seq);
		notify_subscribers(s, id, s->written_seq);
	}
	rel->a = NULL;
	if (rel->cl)
		release_answer(rel, err);
	free(rel);
	maybe_drained(s);
}

/*
 * Release: the table without it is made durable first, then the host is
 * undone, subscribers told and cl (may be NULL) answered.  When the write
 * fails nothing is undone: the allocation stays and cl gets an error.  A
 * crash between the write and the undo leaves pins no table names: the
 * next load sweeps them.  0, or -errno when the change could not even be
 * queued (nothing changed then).
 */
static int
release_alloc(struct nsserver *s, struct ns_alloc *a, const char *why,
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
		r = persist_async(s, release_durable, rel);
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

static void
creation_closed_cb(uv_handle_t *h)
{
	struct creation *cr = h->data;
	struct nsserver *s = cr->s;

	close(cr->fd);
	free(cr->image);
	free(cr);
	s->open_handles--;
	maybe_free(s);
}

static void
answer_waiters(struct creation *cr, const struct ns_alloc *a,
    const char *kind, const char *message)
{
	struct waiter *w;

	while ((w = cr->waiters)) {
		cr->waiters = w->next;
		if (w->cl) {
			if (a)
				answer(w->cl, a, w->order, w->n);
			else
				send_error(w->cl, cr->id, kind, message);
			client_done(w->cl);
		}
		free(w);
	}
}

static void remove_creation(struct nsserver *s, struct creation *cr);

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
		destroy_alloc(s, a);
		nsstate_alloc_free(a);
		snprintf(msg, sizeof(msg), "persist allocation table: %s",
		    strerror(-err));
		answer_waiters(cr, NULL, "creation_failed", msg);
	} else {
		CRASHPOINT(p_after_persist);
		log_info("ns.create", NULL, "allocation_id=%s mask=%u reaper=%d "
		    "ms=%" PRIu64 " allocations=%u", a->id, a->mask,
		    (int)a->reaper, clock_mono_ms() - cr->started_ms, s->t.n);
		watch_alloc(s, a);
		answer_waiters(cr, a, NULL, NULL);
	}
	remove_creation(s, cr);
	uv_close((uv_handle_t *)&cr->poll, creation_closed_cb);
	maybe_drained(s);
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
		    cr->last.ino[NSK_PID]);
		answer_waiters(cr, NULL, "creation_failed", "out of memory");
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
		    cr->last.ino[NSK_PID]);
		nsstate_alloc_free(a);
		answer_waiters(cr, NULL, "creation_failed", "out of memory");
		return false;
	}
	cr->alloc = a;
	r = persist_async(s, creation_durable, cr);
	if (r < 0) {
		cr->alloc = NULL;
		destroy_alloc(s, a);
		nsstate_alloc_free(a);
		snprintf(msg, sizeof(msg), "persist allocation table: %s",
		    strerror(-r));
		answer_waiters(cr, NULL, "creation_failed", msg);
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
			uid_put(s, cr->uid, false);
			break;
		}
	}
}

/* The helper's pipe hit EOF: the helper is done; settle the creation. */
static void
finish_creation(struct nsserver *s, struct creation *cr)
{
	char msg[300];
	int st;

	uv_poll_stop(&cr->poll);
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
		answer_waiters(cr, NULL, "creation_failed", msg);
	}
	remove_creation(s, cr);
	uv_close((uv_handle_t *)&cr->poll, creation_closed_cb);
	maybe_drained(s);
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
		}
		cr->last = rep;
	}
	finish_creation(cr->s, cr);
}

static struct creation *
find_creation(struct nsserver *s, const char *id)
{
	struct creation *cr;

	for (cr = s->creations; cr; cr = cr->next)
		if (strcmp(cr->id, id) == 0)
			return cr;
	return NULL;
}

static int
add_waiter(struct creation *cr, struct client *cl, const uint8_t *order,
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

static int
start_creation(struct nsserver *s, const char *id, unsigned mask,
    const char *image, char *errbuf, size_t errlen, struct creation **ret)
{
	struct nsprov_req rq;
	struct creation *cr;
	char upath[4096];
	int img = -1, r;

	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return -ENOMEM;
	cr->s = s;
	cr->fd = -1;
	snprintf(cr->id, sizeof(cr->id), "%s", id);
	cr->mask = mask;
	memset(&rq, 0, sizeof(rq));
	rq.pin_dir = s->pin_dir;
	rq.id = id;
	rq.mask = mask;
	rq.image_fd = -1;
	rq.cg = &s->cg;
	if (image) {
		img = nsclient_open_image(s->uenv_dir, image);
		if (img < 0) {
			r = img;
			snprintf(errbuf, errlen, "uenv image '%s': %s", image,
			    r == -EINVAL ? "not a regular file in the uenv "
			    "directory" : strerror(-r));
			r = -EINVAL;
			goto out;
		}
		r = nsclient_uenv_path(s->uenv_base, image, upath,
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
		rq.image_fd = img;
		rq.uenv_base = s->uenv_base;
		rq.uenv_path = upath;
	}
	cr->started_ms = clock_mono_ms();
	r = nsprov_spawn(&rq, &cr->helper, &cr->fd);
	if (r < 0) {
		snprintf(errbuf, errlen, "fork helper: %s", strerror(-r));
		r = -EIO;
		goto out;
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
	if (img >= 0)
		close(img);
	if (cr) {
		free(cr->image);
		free(cr);
	}
	return r;
}

/* ---- requests ---- */

static void
handle_request(struct client *cl, const struct msg *m)
{
	struct nsserver *s = cl->s;
	const struct msg_body_32 *b = &m->u.NS_REQUEST;
	uint8_t order[NSCLIENT_MAX_NS];
	struct ns_alloc *a;
	struct creation *cr;
	struct uidslot *u;
	char err[512];
	unsigned i, mask = 0;
	int k, r;

	if (!msg_allocation_id_ok(b->allocation_id)) {
		send_error(cl, NULL, "invalid_request", "bad allocation_id");
		return;
	}
	if (b->namespaces.n == 0 || b->namespaces.n > NSCLIENT_MAX_NS) {
		send_error(cl, b->allocation_id, "invalid_request",
		    "namespaces: one to three of pid, net, mount");
		return;
	}
	for (i = 0; i < b->namespaces.n; i++) {
		k = nsclient_kind_parse(b->namespaces.v[i]);
		if (k < 0 || (mask & (1u << k))) {
			send_error(cl, b->allocation_id, "invalid_request",
			    "namespaces: unknown or repeated name");
			return;
		}
		mask |= 1u << k;
		order[i] = (uint8_t)k;
	}
	if (b->uenv_image && (!msg_uenv_image_ok(b->uenv_image) ||
	    !(mask & NSM_MNT))) {
		send_error(cl, b->allocation_id, "invalid_request",
		    "uenv_image: a .sqfs file name, with a mount namespace");
		return;
	}
	if (find_release(s, b->allocation_id)) {
		send_error(cl, b->allocation_id, "invalid_request",
		    "allocation is being released; ask again");
		return;
	}
	/* A creation not yet durable is joined, never answered early. */
	cr = find_creation(s, b->allocation_id);
	a = cr ? NULL : nsstate_find(&s->t, b->allocation_id);
	if (a || cr) {
		unsigned emask = a ? a->mask : cr->mask;
		const char *eimg = a ? a->image : cr->image;

		/* No image in the request means "whatever it has". */
		if (emask != mask || (b->uenv_image && (!eimg ||
		    strcmp(eimg, b->uenv_image) != 0))) {
			send_error(cl, b->allocation_id, "invalid_request",
			    "allocation exists with other namespaces or image");
			return;
		}
		if (a && !init_alive(a)) {
			send_error(cl, a->id, "creation_failed",
			    DEAD_INIT_MSG);
			return;
		}
		if (a) {
			answer(cl, a, order, b->namespaces.n);
			return;
		}
		if (add_waiter(cr, cl, order, b->namespaces.n) < 0)
			send_error(cl, b->allocation_id, "creation_failed",
			    "out of memory");
		return;
	}
	if (s->sealed) {
		send_error(cl, b->allocation_id, "creation_failed",
		    "provider is sealed for a handoff");
		return;
	}
	u = uid_slot(s, cl->uid, true);
	if (s->ncreations >= s->max_pending || !u ||
	    (!uid_exempt(cl->uid) && u->pending >= s->max_pending_uid) ||
	    s->t.n + s->ncreations >= s->max_allocs) {
		send_error(cl, b->allocation_id, "limit_exceeded",
		    !u || (!uid_exempt(cl->uid) &&
		    u->pending >= s->max_pending_uid) ?
		    "too many creations in flight for this uid" :
		    s->ncreations >= s->max_pending ?
		    "too many creations in flight" : "too many allocations");
		if (u && !u->conns && !u->pending)
			uid_put(s, cl->uid, true);
		return;
	}
	err[0] = '\0';
	r = start_creation(s, b->allocation_id, mask, b->uenv_image, err,
	    sizeof(err), &cr);
	if (r < 0) {
		send_error(cl, b->allocation_id, r == -EINVAL ?
		    "invalid_request" : "creation_failed",
		    err[0] ? err : strerror(-r));
		return;
	}
	cr->uid = cl->uid;
	u->pending++;
	if (add_waiter(cr, cl, order, b->namespaces.n) < 0)
		send_error(cl, b->allocation_id, "creation_failed",
		    "out of memory");
}

/* Answer the client of a release once its write ended. */
static void
release_answer(struct release *rel, int err)
{
	struct client *cl = rel->cl;
	char msg[160];
	struct msg m;

	cl->rel = NULL;
	rel->cl = NULL;
	if (err < 0) {
		/* Not durable: not released.  The client may ask again. */
		snprintf(msg, sizeof(msg), "persist allocation table: %s; the "
		    "allocation is kept", strerror(-err));
		send_error(cl, rel->id, "creation_failed", msg);
	} else {
		memset(&m, 0, sizeof(m));
		m.type = MSG_ALLOCATION_RELEASED;
		m.u.ALLOCATION_RELEASED.allocation_id = rel->id;
		if (conn_send(cl->c, &m, NULL, 0) < 0)
			conn_close(cl->c);
	}
	if (cl->s->draining)
		conn_close_after_flush(cl->c);
	else
		conn_resume(cl->c);
}

static void
handle_release(struct client *cl, const char *id)
{
	struct nsserver *s = cl->s;
	struct ns_alloc *a;
	char msg[160];
	int r;

	if (find_creation(s, id) || find_release(s, id)) {
		send_error(cl, id, "invalid_request", find_creation(s, id) ?
		    "allocation is still being created" :
		    "allocation is already being released");
		return;
	}
	a = nsstate_find(&s->t, id);
	if (!a) {
		send_error(cl, id, "allocation_not_found", "no such allocation");
		return;
	}
	if (s->sealed) {
		send_error(cl, id, "creation_failed",
		    "provider is sealed for a handoff");
		return;
	}
	r = release_alloc(s, a, "allocation_ended", cl);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "persist allocation table: %s; the "
		    "allocation is kept", strerror(-r));
		send_error(cl, id, "creation_failed", msg);
	}
}

/*
 * SUBSCRIBE: from now on every durable release reaches cl.  With
 * since_seq, first the durable events after it, oldest first, from the
 * log that rides every handoff; when the log no longer reaches back that
 * far: NS_ERROR too_old and no subscription (list, then subscribe).
 */
static void
handle_subscribe(struct client *cl, const struct optu64 *since)
{
	struct nsserver *s = cl->s;
	const struct ns_event *e;
	struct msg m;
	unsigned i;

	if (!cl->subscriber && s->nsubs >= s->max_subs) {
		send_error(cl, NULL, "limit_exceeded", "too many subscribers");
		conn_close_after_flush(cl->c);
		return;
	}
	if (since->set && since->v < s->t.ev_floor) {
		send_error(cl, NULL, "too_old", "since_seq is older than the "
		    "event log keeps: list the allocations, then subscribe "
		    "again");
		return;
	}
	if (!cl->subscriber) {
		cl->subscriber = true;
		s->nsubs++;
	}
	if (!since->set)
		return;
	for (i = 0; i < s->t.ev_n; i++) {
		e = nsstate_event(&s->t, i);
		/* Events of a write in flight are told when it ends. */
		if (e->seq <= since->v || e->seq == 0 || e->seq > s->written_seq)
			continue;
		ended_msg(&m, e->id, e->seq);
		if (conn_send(cl->c, &m, NULL, 0) < 0) {
			conn_close(cl->c);
			return;
		}
	}
}

static void
handle_status(struct client *cl)
{
	struct nsserver *s = cl->s;
	struct msg m;

	memset(&m, 0, sizeof(m));
	m.type = MSG_STATUS_REPLY;
	m.u.STATUS_REPLY.pid = (uint32_t)getpid();
	m.u.STATUS_REPLY.build_id = s->build_id ? s->build_id : "";
	m.u.STATUS_REPLY.generation = s->t.generation;
	m.u.STATUS_REPLY.allocations = s->t.n;
	m.u.STATUS_REPLY.ready = s->ready;
	m.u.STATUS_REPLY.dead_allocations = count_dead(s);
	if (conn_send(cl->c, &m, NULL, 0) < 0)
		conn_close(cl->c);
}

/*
 * NS_LIST: every allocation in the table (not those still being
 * created), with alive = its namespaces are still pinned and, with a pid
 * namespace, its init (the reaper) still runs (nsprov_check).
 */
static void
list_entry(const struct nsserver *s, struct nslist_entry *e,
    const struct ns_alloc *a,
    const char *names[1u << NSCLIENT_MAX_NS][NSCLIENT_MAX_NS],
    const unsigned *counts)
{
	unsigned mask = a->mask & ((1u << NSCLIENT_MAX_NS) - 1);
	const char *why;

	e->allocation_id = a->id;
	e->namespaces.n = counts[mask];
	e->namespaces.v = names[mask];
	e->uenv_image = a->image;
	e->alive = nsprov_check(s->pin_dir, a->id, a->mask, a->ino, a->reaper,
	    &why) == 0;
}

static void
handle_list(struct client *cl)
{
	struct nsserver *s = cl->s;
	const char *names[1u << NSCLIENT_MAX_NS][NSCLIENT_MAX_NS];
	unsigned counts[1u << NSCLIENT_MAX_NS], i = 0, k, mask;
	unsigned cap = s->t.n + s->nreleasing;
	struct nslist_entry *v = NULL;
	const struct ns_alloc *a;
	struct release *rel = s->releasing;
	struct msg m;

	if (cap > 0 && !(v = calloc(cap, sizeof(*v)))) {
		send_error(cl, NULL, "limit_exceeded", "out of memory");
		return;
	}
	/* The names of each namespace set, in kind order. */
	for (mask = 0; mask < (1u << NSCLIENT_MAX_NS); mask++) {
		counts[mask] = 0;
		for (k = 0; k < NSCLIENT_MAX_NS; k++)
			if (mask & (1u << k))
				names[mask][counts[mask]++] =
				    nsclient_kind_name(k);
	}
	/*
	 * The durable table at `seq`: not what is still being written
	 * (creations in flight), but what a release in flight still has.
	 */
	for (a = s->t.head; a && i < cap; a = a->next) {
		if (find_creation(s, a->id))
			continue;
		list_entry(s, &v[i++], a, names, counts);
	}
	for (; rel && i < cap; rel = rel->next)
		list_entry(s, &v[i++], rel->a, names, counts);
	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_LIST_REPLY;
	m.u.NS_LIST_REPLY.seq = s->written_seq;
	m.u.NS_LIST_REPLY.allocations.n = i;
	m.u.NS_LIST_REPLY.allocations.v = v;
	if (conn_send(cl->c, &m, NULL, 0) < 0) {
		send_error(cl, NULL, "limit_exceeded",
		    "the allocation list does not fit one frame");
		conn_close_after_flush(cl->c);
	}
	free(v);
}

static void
frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct client *cl = data;
	struct nsserver *s = cl->s;

	(void)c;
	cl->requests++;
	switch (f->m.type) {
	case MSG_NS_REQUEST:
		handle_request(cl, &f->m);
		break;
	case MSG_ALLOCATION_ENDED:
		handle_release(cl, f->m.u.ALLOCATION_ENDED.allocation_id);
		break;
	case MSG_STATUS:
		handle_status(cl);
		break;
	case MSG_NS_LIST:
		handle_list(cl);
		break;
	case MSG_SUBSCRIBE:
		handle_subscribe(cl, &f->m.u.SUBSCRIBE.since_seq);
		break;
	default:
		send_error(cl, NULL, "invalid_request",
		    "not a request of the namespace protocol");
		conn_close_after_flush(cl->c);
		break;
	}
	frame_release(f);
	if (s->draining && !cl->w && !cl->rel)
		conn_close_after_flush(cl->c);
}

static void
close_cb(struct conn *c, int err, void *data)
{
	struct client *cl = data;
	struct nsserver *s = cl->s;

	(void)c;
	(void)err;
	if (cl->w)
		cl->w->cl = NULL;
	if (cl->rel)
		cl->rel->cl = NULL;
	if (cl->subscriber)
		s->nsubs--;
	uid_put(s, cl->uid, true);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		s->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	s->nclients--;
	free(cl);
	maybe_drained(s);
	maybe_free(s);
}

/*
 * A uid already at its share of connections: answered and closed right
 * here, with no connection object, so a flood drains from the kernel's
 * backlog as fast as it can be accepted.  True when fd was consumed.
 */
static bool
over_uid_share(struct nsserver *s, int fd)
{
	struct msg m;
	struct uidslot *u;
	uint8_t *buf = NULL;
	size_t len;
	uid_t uid;
	gid_t gid;
	pid_t pid;

	if (usock_peer(fd, &pid, &uid, &gid) < 0)
		return false;	/* conn_open reports it */
	if (uid_exempt(uid))
		return false;
	u = uid_slot(s, uid, false);
	if (!u || u->conns < s->max_conns_uid)
		return false;
	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_ERROR;
	m.u.NS_ERROR.kind = "limit_exceeded";
	m.u.NS_ERROR.message = "too many connections from this uid";
	if (frame_encode(&m, 0, &buf, &len) == 0)
		(void)send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	free(buf);
	close(fd);
	s->uid_refused++;
	return true;
}

static void
accept_cb(uv_poll_t *h, int status, int events)
{
	struct lpoll *lp = h->data;
	struct nsserver *s = lp->s;
	struct conn_opts o = { .max_body = s->max_body,
	    .max_queued = s->max_queued, .max_fds = 0,
	    .errstyle = CONN_ERR_NS };
	struct client *cl;
	struct uidslot *u;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int fd, i, r;

	(void)status;
	(void)events;
	for (i = 0; i < ACCEPTS_PER_WAKE; i++) {
		fd = accept4(lp->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered: back off to the tick. */
				log_warn("ns.accept", strerror(errno), NULL);
				uv_poll_stop(h);
				s->accept_paused = true;
			}
			return;
		}
		if (over_uid_share(s, fd))
			continue;
		cl = calloc(1, sizeof(*cl));
		if (!cl) {
			close(fd);
			return;
		}
		cl->s = s;
		r = conn_open(s->loop, fd, &o, frame_cb, close_cb, cl, &cl->c);
		if (r < 0) {
			free(cl);
			continue;
		}
		cl->next = s->clients;
		if (s->clients)
			s->clients->prev = cl;
		s->clients = cl;
		s->nclients++;
		conn_peer(cl->c, &pid, &uid, &gid);
		cl->uid = uid;
		u = uid_slot(s, uid, true);
		if (u)
			u->conns++;
		if (!usock_peer_allowed(uid, gid, s->allow_uids,
		    s->n_allow_uids, s->allow_gids, s->n_allow_gids)) {
			log_warn("ns.peer_refused", NULL, "peer_pid=%d uid=%u "
			    "gid=%u", (int)pid, (unsigned)uid, (unsigned)gid);
			conn_reject(cl->c, -EACCES, "peer not allowed");
		} else if (s->nclients > s->max_conns || (!uid_exempt(uid) &&
		    (!u || u->conns > s->max_conns_uid))) {
			send_error(cl, NULL, "limit_exceeded", s->nclients >
			    s->max_conns ? "too many connections" :
			    "too many connections from this uid");
			conn_close_after_flush(cl->c);
		}
	}
}

/* ---- cgroup-empty ---- */

static int
read_populated(struct nsserver *s, const struct ns_alloc *a)
{
	char path[4096], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/workload.slice/%s.scope/"
	    "cgroup.events", s->cgroup_root, a->id);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	for (p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, "populated ", 10) == 0)
			return p[10] == '1' ? 1 : p[10] == '0' ? 0 : -EINVAL;
	}
	return -ENODATA;	/* mid-rewrite: wait for the next event */
}

/*
 * changed: the kernel told us the file changed.  cgroupfs notifies only
 * when "populated" flips, so a change that reads 0 is a 1→0 edge even if
 * the 1 came and went before we could read it.
 */
static void
check_cg(struct nsserver *s, struct ns_alloc *a, bool gone, bool changed)
{
	int pop = gone ? 0 : read_populated(s, a);

	if (pop == 1 && !a->cg_seen) {
		a->cg_seen = true;
		if (s->sealed || persist_async(s, NULL, NULL) < 0)
			s->dirty = true;
	} else if (pop == 0 && (a->cg_seen || changed) && !s->sealed) {
		log_info("ns.cgroup_empty", NULL, "allocation_id=%s", a->id);
		if (release_alloc(s, a, "cgroup_empty", NULL) < 0)
			s->dirty = true;
	}
}

static void
watch_alloc(struct nsserver *s, struct ns_alloc *a)
{
	char path[4096];
	int wd;

	if (s->ino_fd < 0 || a->cg_wd >= 0)
		return;
	snprintf(path, sizeof(path), "%s/workload.slice/%s.scope/"
	    "cgroup.events", s->cgroup_root, a->id);
	wd = inotify_add_watch(s->ino_fd, path, IN_MODIFY | IN_DELETE_SELF);
	if (wd < 0) {
		if (s->slice_wd < 0) {
			snprintf(path, sizeof(path), "%s/workload.slice",
			    s->cgroup_root);
			s->slice_wd = inotify_add_watch(s->ino_fd, path,
			    IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
		}
		return;
	}
	a->cg_wd = wd;
	check_cg(s, a, false, false);
}

static struct ns_alloc *
find_wd(struct nsserver *s, int wd)
{
	struct ns_alloc *a;

	for (a = s->t.head; a; a = a->next)
		if (a->cg_wd == wd)
			return a;
	return NULL;
}

static void
inotify_cb(uv_poll_t *h, int status, int events)
{
	struct nsserver *s = h->data;
	char buf[4096] __attribute__((aligned(__alignof__(struct
	    inotify_event))));
	const struct inotify_event *ev;
	struct ns_alloc *a;
	char id[NSCLIENT_ID_MAX + 1];
	ssize_t n;
	size_t len;
	char *p;

	(void)status;
	(void)events;
	for (;;) {
		n = read(s->ino_fd, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (p = buf; p < buf + n;
		    p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				for (a = s->t.head; a; a = a->next)
					a->cg_wd = -1;
				continue;
			}
			if (ev->wd == s->slice_wd) {
				if (ev->mask & IN_IGNORED)
					s->slice_wd = -1;
				len = ev->len ? strlen(ev->name) : 0;
				if (len > 6 && len - 6 < sizeof(id) &&
				    strcmp(ev->name + len - 6, ".scope") == 0) {
					memcpy(id, ev->name, len - 6);
					id[len - 6] = '\0';
					a = nsstate_find(&s->t, id);
					if (a)
						watch_alloc(s, a);
				}
				continue;
			}
			a = find_wd(s, ev->wd);
			if (!a)
				continue;
			if (ev->mask & (IN_IGNORED | IN_DELETE_SELF)) {
				a->cg_wd = -1;
				check_cg(s, a, true, false);
			} else {
				check_cg(s, a, false, true);
			}
		}
	}
}

static void
recheck_all(struct nsserver *s)
{
	struct ns_alloc *a, *next;

	for (a = s->t.head; a; a = next) {
		next = a->next;
		if (a->cg_wd < 0)
			watch_alloc(s, a);
		else
			check_cg(s, a, false, false);
	}
}

static void
tick_cb(uv_timer_t *t)
{
	struct nsserver *s = t->data;
	struct creation *cr;
	struct ns_alloc *a, *next;
	uint64_t now = clock_mono_ms();

	for (cr = s->creations; cr; cr = cr->next) {
		if (!cr->timed_out && !cr->reaped &&
		    now - cr->started_ms > CREATE_TIMEOUT_MS) {
			cr->timed_out = true;
			(void)kill(cr->helper, SIGKILL);
		}
	}
	if (s->accept_paused && s->lp) {
		s->accept_paused = false;
		uv_poll_start(&s->lp->h, UV_READABLE, accept_cb);
	}
	if (s->dirty && !s->sealed && !nswriter_pending(s->wr))
		(void)persist_async(s, NULL, NULL);
	if (s->cg_dirty)
		sweep_cgroups(s);
	for (a = s->t.head; a; a = next) {
		next = a->next;
		if (a->cg_wd < 0)
			watch_alloc(s, a);
	}
}

/* ---- life cycle ---- */

static bool
known_cb(const char *id, void *data)
{
	const struct nsserver *s = data;

	return nsstate_find(&s->t, id) != NULL;
}

static int
load(struct nsserver *s)
{
	struct ns_alloc *a, *next;
	void *buf = NULL;
	const char *why;
	size_t len;
	int r;

	(void)atomicfile_cleanup(s->state_path);
	r = atomicfile_read_sum(s->state_path, ATOMICFILE_MAX, &buf, &len,
	    s->digest);
	if (r == -ENOENT) {
		s->dirty = true;	/* seal must leave a file behind */
		return 0;
	}
	if (r < 0)
		return r;
	r = nsstate_decode(buf, len, &s->t);
	if (r < 0)
		goto out;
	s->written_seq = s->t.seq;	/* what is on disk is durable */
	for (a = s->t.head; a; a = next) {
		next = a->next;
		why = "";
		r = nsprov_check(s->pin_dir, a->id, a->mask, a->ino, a->reaper,
		    &why);
		if (r == 0)
			continue;
		if (r == -ESRCH) {	/* pins fine, init gone: kept, dead */
			mark_dead(a, why);
			continue;
		}
		log_warn("ns.allocation_dropped", why, "allocation_id=%s "
		    "err=%d", a->id, r);
		destroy_alloc(s, a);
		nsstate_alloc_free(a);
		s->dirty = true;
	}
	r = 0;
out:
	free(buf);
	return r;
}

/* The memory of s, once no handle or client refers to it. */
static void
free_server(struct nsserver *s)
{
	nsstate_clear(&s->t);
	free(s->pin_dir);
	free(s->uenv_dir);
	free(s->uenv_base);
	free(s->state_path);
	free(s->cgroup_root);
	nscgroup_close(&s->cg);
	free(s->build_id);
	free(s->allow_uids);
	free(s->allow_gids);
	free(s->uids);
	free(s);
}

int
nsserver_new(uv_loop_t *loop, const struct nsserver_config *cfg,
    struct nsserver **ret)
{
	struct nsserver *s;
	struct ns_alloc *a;
	unsigned i;
	int r;

	if (!cfg->pin_dir || !cfg->uenv_dir || !cfg->uenv_mount_base ||
	    !cfg->state_path)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->ino_fd = -1;
	s->slice_wd = -1;
	s->pin_dir = strdup(cfg->pin_dir);
	s->uenv_dir = strdup(cfg->uenv_dir);
	s->uenv_base = strdup(cfg->uenv_mount_base);
	s->state_path = strdup(cfg->state_path);
	s->cgroup_root = dup_or_null(cfg->cgroup_root);
	s->build_id = dup_or_null(cfg->build_id);
	s->max_conns = cfg->max_conns ? cfg->max_conns : DEF_MAX_CONNS;
	s->max_pending = cfg->max_pending ? cfg->max_pending :
	    DEF_MAX_PENDING;
	s->max_allocs = cfg->max_allocations ? cfg->max_allocations :
	    DEF_MAX_ALLOCS;
	s->max_subs = cfg->max_subscribers ? cfg->max_subscribers :
	    DEF_MAX_SUBS;
	s->max_conns_uid = cfg->max_conns_per_uid ? cfg->max_conns_per_uid :
	    s->max_conns / UID_SHARE ? s->max_conns / UID_SHARE : 1;
	s->max_pending_uid = cfg->max_pending_per_uid ?
	    cfg->max_pending_per_uid : s->max_pending / UID_SHARE ?
	    s->max_pending / UID_SHARE : 1;
	s->max_body = cfg->max_body ? cfg->max_body : MAX_BODY;
	s->max_queued = cfg->max_queued ? cfg->max_queued : DEF_MAX_QUEUED;
	if (cfg->n_allow_uids) {
		s->allow_uids = calloc(cfg->n_allow_uids, sizeof(uid_t));
		if (s->allow_uids) {
			for (i = 0; i < cfg->n_allow_uids; i++)
				s->allow_uids[i] = cfg->allow_uids[i];
			s->n_allow_uids = cfg->n_allow_uids;
		}
	}
	if (cfg->n_allow_gids) {
		s->allow_gids = calloc(cfg->n_allow_gids, sizeof(gid_t));
		if (s->allow_gids) {
			for (i = 0; i < cfg->n_allow_gids; i++)
				s->allow_gids[i] = cfg->allow_gids[i];
			s->n_allow_gids = cfg->n_allow_gids;
		}
	}
	if (!s->pin_dir || !s->uenv_dir || !s->uenv_base || !s->state_path ||
	    (cfg->cgroup_root && !s->cgroup_root) ||
	    (cfg->build_id && !s->build_id) ||
	    (cfg->n_allow_uids && !s->allow_uids) ||
	    (cfg->n_allow_gids && !s->allow_gids)) {
		r = -ENOMEM;
		goto fail;
	}
	r = nsprov_prepare_pin_dir(s->pin_dir);
	if (r < 0) {
		log_error("ns.pin_dir", strerror(-r), "path=%s", s->pin_dir);
		goto fail;
	}
	(void)nsprov_mkdir_p(s->uenv_base, 0755);
	r = nscgroup_open(cfg->alloc_cgroup, NULL, NULL, &s->cg);
	if (r < 0) {
		log_error("ns.alloc_cgroup", strerror(-r), "spec=%s",
		    cfg->alloc_cgroup);
		goto fail;
	}
	r = load(s);
	if (r < 0) {
		log_error("ns.load", strerror(-r), "path=%s", s->state_path);
		goto fail;
	}
	r = nswriter_new(loop, s->state_path, &(struct nswriter_ops){
	    .encode = encode_cb, .written = written_cb }, s, &s->wr);
	if (r < 0)
		goto fail;
	r = nsprov_sweep(s->pin_dir, known_cb, s);
	if (r < 0)
		log_warn("ns.sweep", strerror(-r), "path=%s", s->pin_dir);
	sweep_cgroups(s);
	uv_timer_init(loop, &s->tick);
	s->tick.data = s;
	uv_timer_init(loop, &s->drain_timer);
	s->drain_timer.data = s;
	uv_timer_init(loop, &s->grace_timer);
	s->grace_timer.data = s;
	s->open_handles += 3;
	uv_timer_start(&s->tick, tick_cb, TICK_MS, TICK_MS);
	if (s->cgroup_root) {
		s->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (s->ino_fd < 0) {
			r = -errno;
			log_error("ns.inotify", strerror(-r), NULL);
			nsserver_free(s);
			return r;
		}
		uv_poll_init(loop, &s->ipoll, s->ino_fd);
		s->ipoll.data = s;
		s->open_handles++;
		uv_poll_start(&s->ipoll, UV_READABLE, inotify_cb);
		for (a = s->t.head; a; a = a->next)
			watch_alloc(s, a);
	}
	log_info("ns.loaded", NULL, "allocations=%u dead=%u seq=%" PRIu64
	    " generation=%" PRIu64 " alloc_cgroup=%s%s%s", s->t.n,
	    count_dead(s), s->t.seq, s->t.generation,
	    s->cg.n ? s->cg.dir[0] : "none", s->cg.n > 1 ? "," : "",
	    s->cg.n > 1 ? s->cg.dir[1] : "");
	*ret = s;
	return 0;
fail:
	free_server(s);
	return r;
}

int
nsserver_start(struct nsserver *s, int listen_fd)
{
	struct lpoll *lp;
	int fl, r;

	if (s->freeing)
		return -EINVAL;
	if (s->lp && s->lp->fd == listen_fd) {
		uv_poll_start(&s->lp->h, UV_READABLE, accept_cb);
		s->accept_paused = false;
		return 0;
	}
	nsserver_stop_accepting(s);
	/* Several processes poll one listener in a handoff: never block. */
	fl = fcntl(listen_fd, F_GETFL);
	if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return -ENOMEM;
	lp->s = s;
	lp->fd = listen_fd;
	r = uv_poll_init(s->loop, &lp->h, listen_fd);
	if (r < 0) {
		free(lp);
		return r;
	}
	lp->h.data = lp;
	s->open_handles++;
	s->lp = lp;
	s->accept_paused = false;
	uv_poll_start(&lp->h, UV_READABLE, accept_cb);
	return 0;
}

void
nsserver_stop_accepting(struct nsserver *s)
{
	if (!s->lp)
		return;
	/* Closing (not just stopping) lets a later start use another fd. */
	uv_close((uv_handle_t *)&s->lp->h, lpoll_closed_cb);
	s->lp = NULL;
}

static void
drain_timer_cb(uv_timer_t *t)
{
	struct nsserver *s = t->data;
	struct client *cl, *next;
	struct creation *cr;
	nsserver_drain_cb cb = s->drain_cb;
	unsigned left = s->nclients + s->ncreations;

	if (!cb)
		return;
	s->drain_cb = NULL;
	if (left) {
		log_warn("ns.drain_deadline", "closing what is left",
		    "conns=%u creations=%u", s->nclients, s->ncreations);
		for (cr = s->creations; cr; cr = cr->next) {
			if (cr->reaped)
				continue;	/* only its write is left */
			cr->timed_out = true;
			(void)kill(cr->helper, SIGKILL);
		}
		for (cl = s->clients; cl; cl = next) {
			next = cl->next;
			conn_close(cl->c);
		}
	}
	cb(s->drain_data, left);
}

static void
maybe_drained(struct nsserver *s)
{
	if (!s->draining || !s->drain_cb || s->nclients || s->ncreations ||
	    s->nreleasing)
		return;
	uv_timer_stop(&s->drain_timer);
	uv_timer_start(&s->drain_timer, drain_timer_cb, 0, 0);
}

/*
 * Drain: close the connections with nothing to answer.  A connection that
 * was accepted but has not sent its request yet, or whose request is
 * still unread in the socket buffer, is not idle: its client is waiting
 * for an answer, so it keeps being read (and is closed once answered)
 * until the first-request grace ends (`fresh_too`).
 */
static void
close_idle(struct nsserver *s, bool fresh_too)
{
	struct client *cl, *next;
	int pending;

	for (cl = s->clients; cl; cl = next) {
		next = cl->next;
		if (cl->w || cl->rel)
			continue;
		if (ioctl(conn_fd(cl->c), FIONREAD, &pending) < 0)
			pending = 0;
		if (pending > 0 || (cl->requests == 0 && !fresh_too))
			continue;
		conn_close_after_flush(cl->c);
	}
}

static void
grace_timer_cb(uv_timer_t *t)
{
	struct nsserver *s = t->data;

	if (s->draining)
		close_idle(s, true);
}

void
nsserver_drain(struct nsserver *s, uint64_t deadline_ms,
    nsserver_drain_cb done_cb, void *data)
{
	uint64_t now = clock_mono_ms();

	nsserver_stop_accepting(s);
	s->draining = true;
	s->drain_cb = done_cb;
	s->drain_data = data;
	close_idle(s, false);
	uv_timer_stop(&s->grace_timer);
	uv_timer_start(&s->grace_timer, grace_timer_cb,
	    deadline_ms > now + DRAIN_FIRST_REQUEST_MS ? DRAIN_FIRST_REQUEST_MS :
	    deadline_ms > now ? deadline_ms - now : 0, 0);
	uv_timer_stop(&s->drain_timer);
	uv_timer_start(&s->drain_timer, drain_timer_cb,
	    deadline_ms > now ? deadline_ms - now : 0, 0);
	maybe_drained(s);
}

int
nsserver_seal(struct nsserver *s, uint64_t *ret_seq,
    uint8_t ret_digest[NSSERVER_DIGEST_LEN])
{
	int r;

	/* Writes in flight end first: a creation or release waiting only
	 * for its write is settled by it. */
	r = persist_sync(s);
	if (r < 0)
		return r;
	if (s->ncreations || s->nreleasing)
		return -EBUSY;
	s->sealed = true;
	*ret_seq = s->t.seq;
	memcpy(ret_digest, s->digest, NSSERVER_DIGEST_LEN);
	return 0;
}

void
nsserver_resume(struct nsserver *s, int listen_fd)
{
	int r;

	s->sealed = false;
	s->draining = false;
	s->drain_cb = NULL;
	uv_timer_stop(&s->drain_timer);
	uv_timer_stop(&s->grace_timer);
	if (s->dirty && !nswriter_pending(s->wr))
		(void)persist_async(s, NULL, NULL);
	recheck_all(s);
	r = nsserver_start(s, listen_fd);
	if (r < 0)
		log_error("ns.resume", strerror(-r), NULL);
}

void
nsserver_state(const struct nsserver *s, uint64_t *ret_seq,
    uint8_t ret_digest[NSSERVER_DIGEST_LEN])
{
	*ret_seq = s->t.seq;
	memcpy(ret_digest, s->digest, NSSERVER_DIGEST_LEN);
}

int
nsserver_bump_generation(struct nsserver *s)
{
	int r;

	if (s->sealed)
		return -EROFS;
	s->t.generation++;
	s->dirty = true;
	r = persist_sync(s);
	if (r < 0)
		s->t.generation--;
	return r;
}

unsigned
nsserver_count(const struct nsserver *s)
{
	return s->t.n;
}

bool
nsserver_accepting(const struct nsserver *s)
{
	return s->lp != NULL && !s->accept_paused;
}

void
nsserver_set_ready(struct nsserver *s, bool ready)
{
	s->ready = ready;
}

static void
maybe_free(struct nsserver *s)
{
	if (!s->freeing || s->open_handles || s->nclients)
		return;
	free_server(s);
}

void
nsserver_free(struct nsserver *s)
{
	struct client *cl, *next;
	struct creation *cr;
	int st;

	if (!s)
		return;
	/* The write in flight ends first (its answers go out), and none
	 * starts later: the file may be the next agent's the moment we return. */
	nswriter_free(s->wr);
	s->wr = NULL;
	s->freeing = true;
	nsserver_stop_accepting(s);
	for (cl = s->clients; cl; cl = next) {
		next = cl->next;
		conn_close(cl->c);
	}
	/* A creation nobody will answer: stop it and undo its leftovers. */
	while ((cr = s->creations)) {
		s->creations = cr->next;
		s->ncreations--;
		uid_put(s, cr->uid, false);
		if (!cr->reaped)
			(void)kill(cr->helper, SIGKILL);
		if (!cr->reaped)
			(void)waitpid(cr->helper, &st, 0);
		(void)nsprov_destroy(s->pin_dir, cr->id, 0, 0);
		answer_waiters(cr, NULL, "creation_failed", "shutting down");
		uv_close((uv_handle_t *)&cr->poll, creation_closed_cb);
	}
	uv_close((uv_handle_t *)&s->tick, handle_closed_cb);
	uv_close((uv_handle_t *)&s->drain_timer, handle_closed_cb);
	uv_close((uv_handle_t *)&s->grace_timer, handle_closed_cb);
	if (s->ino_fd >= 0) {
		uv_close((uv_handle_t *)&s->ipoll, handle_closed_cb);
		close(s->ino_fd);
		s->ino_fd = -1;
	}
	maybe_free(s);
}

bool
nsserver_reap(struct nsserver *s, pid_t pid, int status)
{
	struct creation *cr;
	struct ns_alloc *a;
	unsigned i;

	for (cr = s->creations; cr; cr = cr->next) {
		if (cr->helper == pid) {
			cr->reaped = true;
			return true;
		}
	}
	for (i = 0; i < s->ndying; i++) {
		if (s->dying[i] == pid) {
			memmove(s->dying + i, s->dying + i + 1,
			    (s->ndying - i - 1) * sizeof(s->dying[0]));
			s->ndying--;
			return true;
		}
	}
	for (a = s->t.head; a; a = a->next) {
		if (a->reaper == pid) {
			/* Its pid namespace can take no process any more. */
			log_error("ns.reaper_died", NULL, "allocation_id=%s "
			    "pid=%d status=%d", a->id, (int)pid, status);
			mark_dead(a, "reaper exited");
			return true;
		}
	}
	return false;
}
