/*
 * nsserver: the namespace socket on the agent's loop (SPEC §5).
 *
 * Invariants:
 * - The loop never blocks on a creation: nsprov_spawn() forks a helper
 *   and its report pipe is watched with uv_poll.  A creation is final
 *   only at the pipe's EOF (the helper has finished or undone its work).
 * - Nothing is answered before it is durable: the table is written with
 *   atomicfile before NS_RESPONSE goes out, and before
 *   ALLOCATION_RELEASED.  Every write bumps seq; digest is the SHA-256 of
 *   the payload written.
 * - One request per connection at a time: a connection waiting for a
 *   creation is paused, so answers keep their order and a peer cannot
 *   queue unbounded work.  Connections, creations in flight,
 *   allocations and subscribers all have limits (limit_exceeded).
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
#include "common/conn.h"
#include "common/log.h"
#include "common/nsclient.h"
#include "crashpoints/crashpoint.h"
#include "proto/msg.h"
#include "successor/nsprov.h"
#include "successor/nsserver.h"
#include "successor/nsstate.h"

#define DEF_MAX_CONNS		1024
#define DEF_MAX_PENDING		64
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

struct client {
	struct nsserver *s;
	struct conn *c;
	bool subscriber;
	struct waiter *w;		/* set while waiting for a creation */
	unsigned requests;		/* frames received */
	struct client *prev, *next;
};

struct creation {
	struct nsserver *s;
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
	unsigned max_body, max_queued;

	struct ns_table t;
	uint8_t digest[NSSERVER_DIGEST_LEN];
	bool dirty;			/* memory differs from disk */
	bool ready, draining, sealed, freeing;

	struct lpoll *lp;		/* accepting when started */
	bool accept_paused;		/* EMFILE: retried by the tick */

	struct client *clients;
	unsigned nclients, nsubs;
	struct creation *creations;
	unsigned ncreations;

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

static int
persist(struct nsserver *s)
{
	uint8_t *buf = NULL;
	size_t len;
	int r;

	if (s->sealed)
		return -EROFS;
	s->t.seq++;
	r = nsstate_encode(&s->t, &buf, &len);
	if (r == 0)
		r = atomicfile_write(s->state_path, buf, len, 0600);
	if (r < 0) {
		s->t.seq--;
		/*
		 * The file may hold the new table anyway (rename done, then
		 * the directory fsync failed): memory and disk may differ, so
		 * the next persist or seal must write again.
		 */
		s->dirty = true;
		log_error("ns.persist_failed", strerror(-r), "path=%s",
		    s->state_path);
		goto out;
	}
	nsstate_digest(buf, len, s->digest);
	s->dirty = false;
out:
	free(buf);
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

static void
notify_subscribers(struct nsserver *s, const char *id)
{
	struct client *cl, *next;
	struct msg m;

	memset(&m, 0, sizeof(m));
	m.type = MSG_ALLOCATION_ENDED;
	m.u.ALLOCATION_ENDED.allocation_id = id;
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

/* Undo the allocation on the host and forget it (no persist). */
static void
destroy_alloc(struct nsserver *s, struct ns_alloc *a)
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
	nsstate_remove(&s->t, a);
}

/* Release: destroy, persist, tell subscribers.  0 or the persist error. */
static int
release_alloc(struct nsserver *s, struct ns_alloc *a, const char *why)
{
	char id[NSCLIENT_ID_MAX + 1];
	int r;

	snprintf(id, sizeof(id), "%s", a->id);
	destroy_alloc(s, a);
	nsstate_alloc_free(a);
	CRASHPOINT(p_before_release_persist);
	r = persist(s);
	if (r < 0)
		s->dirty = true;
	log_info("ns.release", NULL, "allocation_id=%s reason=%s "
	    "allocations=%u", id, why, s->t.n);
	notify_subscribers(s, id);
	return r;
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

static void
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
		return;
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
		return;
	}
	r = persist(s);
	if (r < 0) {
		destroy_alloc(s, a);
		nsstate_alloc_free(a);
		snprintf(msg, sizeof(msg), "persist allocation table: %s",
		    strerror(-r));
		answer_waiters(cr, NULL, "creation_failed", msg);
		return;
	}
	CRASHPOINT(p_after_persist);
	log_info("ns.create", NULL, "allocation_id=%s mask=%u reaper=%d "
	    "ms=%" PRIu64 " allocations=%u", a->id, a->mask, (int)a->reaper,
	    clock_mono_ms() - cr->started_ms, s->t.n);
	watch_alloc(s, a);
	answer_waiters(cr, a, NULL, NULL);
}

static void
remove_creation(struct nsserver *s, struct creation *cr)
{
	struct creation **pp;

	for (pp = &s->creations; *pp; pp = &(*pp)->next) {
		if (*pp == cr) {
			*pp = cr->next;
			s->ncreations--;
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
	remove_creation(s, cr);
	/* Past its last write the helper only exits: this wait is short. */
	if (!cr->reaped && waitpid(cr->helper, &st, 0) == cr->helper)
		cr->reaped = true;
	if (cr->last.stage == NSPROV_PINNED && !cr->timed_out) {
		commit_creation(s, cr);
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
		log_warn("ns.creation_failed", msg, "allocation_id=%s",
		    cr->id);
		answer_waiters(cr, NULL, "creation_failed", msg);
	}
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
	a = nsstate_find(&s->t, b->allocation_id);
	cr = a ? NULL : find_creation(s, b->allocation_id);
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
	if (s->ncreations >= s->max_pending ||
	    s->t.n + s->ncreations >= s->max_allocs) {
		send_error(cl, b->allocation_id, "limit_exceeded",
		    s->ncreations >= s->max_pending ?
		    "too many creations in flight" : "too many allocations");
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
	if (add_waiter(cr, cl, order, b->namespaces.n) < 0)
		send_error(cl, b->allocation_id, "creation_failed",
		    "out of memory");
}

static void
handle_release(struct client *cl, const char *id)
{
	struct nsserver *s = cl->s;
	struct ns_alloc *a = nsstate_find(&s->t, id);
	struct msg m;

	if (!a) {
		send_error(cl, id, find_creation(s, id) ? "invalid_request" :
		    "allocation_not_found", find_creation(s, id) ?
		    "allocation is still being created" :
		    "no such allocation");
		return;
	}
	if (s->sealed) {
		send_error(cl, id, "creation_failed",
		    "provider is sealed for a handoff");
		return;
	}
	(void)release_alloc(s, a, "allocation_ended");
	memset(&m, 0, sizeof(m));
	m.type = MSG_ALLOCATION_RELEASED;
	m.u.ALLOCATION_RELEASED.allocation_id = id;
	if (conn_send(cl->c, &m, NULL, 0) < 0)
		conn_close(cl->c);
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
	if (conn_send(cl->c, &m, NULL, 0) < 0)
		conn_close(cl->c);
}

/*
 * NS_LIST: every allocation in the table (not those still being
 * created), with alive = its namespaces are still pinned and, with a pid
 * namespace, its init (the reaper) still runs (nsprov_check).
 */
static void
handle_list(struct client *cl)
{
	struct nsserver *s = cl->s;
	const char *names[1u << NSCLIENT_MAX_NS][NSCLIENT_MAX_NS], *why;
	unsigned counts[1u << NSCLIENT_MAX_NS], i = 0, k, mask;
	struct nslist_entry *v = NULL;
	const struct ns_alloc *a;
	struct msg m;

	if (s->t.n > 0 && !(v = calloc(s->t.n, sizeof(*v)))) {
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
	for (a = s->t.head; a && i < s->t.n; a = a->next, i++) {
		mask = a->mask & ((1u << NSCLIENT_MAX_NS) - 1);
		v[i].allocation_id = a->id;
		v[i].namespaces.n = counts[mask];
		v[i].namespaces.v = names[mask];
		v[i].uenv_image = a->image;
		v[i].alive = nsprov_check(s->pin_dir, a->id, a->mask, a->ino,
		    a->reaper, &why) == 0;
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_LIST_REPLY;
	m.u.NS_LIST_REPLY.seq = s->t.seq;
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
		if (!cl->subscriber && s->nsubs >= s->max_subs) {
			send_error(cl, NULL, "limit_exceeded",
			    "too many subscribers");
			conn_close_after_flush(cl->c);
		} else if (!cl->subscriber) {
			cl->subscriber = true;
			s->nsubs++;
		}
		break;
	default:
		send_error(cl, NULL, "invalid_request",
		    "not a request of the namespace protocol");
		conn_close_after_flush(cl->c);
		break;
	}
	frame_release(f);
	if (s->draining && !cl->w)
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
	if (cl->subscriber)
		s->nsubs--;
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

static bool
peer_allowed(const struct nsserver *s, uid_t uid, gid_t gid)
{
	unsigned i;

	if (uid == 0 || uid == geteuid())
		return true;
	for (i = 0; i < s->n_allow_uids; i++)
		if (s->allow_uids[i] == uid)
			return true;
	for (i = 0; i < s->n_allow_gids; i++)
		if (s->allow_gids[i] == gid)
			return true;
	return false;
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
		if (!peer_allowed(s, uid, gid)) {
			log_warn("ns.peer_refused", NULL, "peer_pid=%d uid=%u "
			    "gid=%u", (int)pid, (unsigned)uid, (unsigned)gid);
			conn_reject(cl->c, -EACCES, "peer not allowed");
		} else if (s->nclients > s->max_conns) {
			send_error(cl, NULL, "limit_exceeded",
			    "too many connections");
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
		if (s->sealed || persist(s) < 0)
			s->dirty = true;
	} else if (pop == 0 && (a->cg_seen || changed) && !s->sealed) {
		log_info("ns.cgroup_empty", NULL, "allocation_id=%s", a->id);
		(void)release_alloc(s, a, "cgroup_empty");
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
		if (!cr->timed_out && now - cr->started_ms > CREATE_TIMEOUT_MS) {
			cr->timed_out = true;
			(void)kill(cr->helper, SIGKILL);
		}
	}
	if (s->accept_paused && s->lp) {
		s->accept_paused = false;
		uv_poll_start(&s->lp->h, UV_READABLE, accept_cb);
	}
	if (s->dirty && !s->sealed)
		(void)persist(s);
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
	r = atomicfile_read(s->state_path, ATOMICFILE_MAX, &buf, &len);
	if (r == -ENOENT) {
		s->dirty = true;	/* seal must leave a file behind */
		return 0;
	}
	if (r < 0)
		return r;
	r = nsstate_decode(buf, len, &s->t);
	if (r < 0)
		goto out;
	nsstate_digest(buf, len, s->digest);
	for (a = s->t.head; a; a = next) {
		next = a->next;
		why = "";
		r = nsprov_check(s->pin_dir, a->id, a->mask, a->ino, a->reaper,
		    &why);
		if (r == 0)
			continue;
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
	free(s->build_id);
	free(s->allow_uids);
	free(s->allow_gids);
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
	r = load(s);
	if (r < 0) {
		log_error("ns.load", strerror(-r), "path=%s", s->state_path);
		goto fail;
	}
	r = nsprov_sweep(s->pin_dir, known_cb, s);
	if (r < 0)
		log_warn("ns.sweep", strerror(-r), "path=%s", s->pin_dir);
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
	log_info("ns.loaded", NULL, "allocations=%u seq=%" PRIu64
	    " generation=%" PRIu64, s->t.n, s->t.seq, s->t.generation);
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
	if (!s->draining || !s->drain_cb || s->nclients || s->ncreations)
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
		if (cl->w)
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

	if (s->ncreations)
		return -EBUSY;
	if (s->dirty) {
		s->sealed = false;
		r = persist(s);
		if (r < 0)
			return r;
	}
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
	if (s->dirty)
		(void)persist(s);
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

	s->t.generation++;
	r = persist(s);
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
			return true;
		}
	}
	return false;
}
