/*
 * nsclients: consumer connections of the namespace socket: accept with
 * SO_PEERCRED, global and per-uid limits, one request per connection at a
 * time, and the requests (NS_REQUEST, ALLOCATION_ENDED, STATUS, SUBSCRIBE,
 * NS_LIST).  Invariants: nsserver_int.h.
 */
#include "successor/nsserver_int.h"

static struct uidslot * uid_slot(struct nsserver *s, uid_t uid, bool create);
static bool uid_exempt(uid_t uid);
static void handle_request(struct client *cl, const struct msg *m);
static void handle_release(struct client *cl, const char *id);
static void handle_subscribe(struct client *cl, const struct optu64 *since);
static void handle_status(struct client *cl);
static void list_entry(const struct nsserver *s, struct nslist_entry *e,
    const struct ns_alloc *a,
    const char *names[1u << NSV_KINDS][NSV_KINDS],
    const unsigned *counts);
static void handle_list(struct client *cl);
static void frame_cb(struct conn *c, struct frame *f, void *data);
static void close_cb(struct conn *c, int err, void *data);
static bool over_uid_share(struct nsserver *s, int fd, uid_t uid);

/* ---- small helpers ---- */

void
nss_handle_closed_cb(uv_handle_t *h)
{
	struct nsserver *s = h->data;

	s->open_handles--;
	nss_maybe_free(s);
}

char *
nss_dup_or_null(const char *p)
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

void
nss_uid_put(struct nsserver *s, uid_t uid, bool conn)
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

void
nss_send_error(struct client *cl, const char *id, const char *kind,
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

/*
 * The client's request is answered: read again, also while draining when
 * connections move (the next change is held, frame_cb); when they do not,
 * leave.
 */
void
nss_client_done(struct client *cl)
{
	cl->w = NULL;
	if (cl->s->draining && !cl->s->keep_conns)
		conn_close_after_flush(cl->c);
	else
		conn_resume(cl->c);
}

void
nss_answer(struct client *cl, const struct ns_alloc *a, const uint8_t *order,
    unsigned n)
{
	const char *types[NSV_KINDS];
	char upath[4096];
	int fds[NSV_KINDS] = { -1, -1, -1 };
	struct msg m;
	unsigned i;
	int r;

	for (i = 0; i < n; i++) {
		fds[i] = nsprov_open_pin(cl->s->pin_dir, a->id, order[i],
		    a->ino[order[i]]);
		if (fds[i] < 0) {
			r = fds[i];
			snprintf(upath, sizeof(upath), "open %s pin: %s",
			    nsvocab_kind_name(order[i]), strerror(-r));
			nss_send_error(cl, a->id, "creation_failed", upath);
			goto out;
		}
		types[i] = nsvocab_kind_name(order[i]);
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_RESPONSE;
	m.u.NS_RESPONSE.allocation_id = a->id;
	m.u.NS_RESPONSE.fd_types.n = n;
	m.u.NS_RESPONSE.fd_types.v = types;
	m.u.NS_RESPONSE.uenv_mount_path = NULL;
	if (a->image && nsvocab_uenv_path(cl->s->uenv_base, a->image, upath,
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

/* ---- requests ---- */

static void
handle_request(struct client *cl, const struct msg *m)
{
	struct nsserver *s = cl->s;
	const msg_NS_REQUEST_t *b = &m->u.NS_REQUEST;
	uint8_t order[NSV_KINDS];
	struct ns_alloc *a;
	struct creation *cr;
	struct uidslot *u;
	bool uid_full;
	char err[512];
	unsigned i, mask = 0;
	int k, r;

	/*
	 * conn validated the frame (msg_validate): the id, the namespace set
	 * (one to three kinds, no repeats) and the image (with mount) are
	 * well-formed; what is left is the order of the kinds.
	 */
	for (i = 0; i < b->namespaces.n && i < NSV_KINDS; i++) {
		k = nsvocab_kind_parse(b->namespaces.v[i]);
		mask |= 1u << k;
		order[i] = (uint8_t)k;
	}
	if (nss_find_release(s, b->allocation_id)) {
		nss_send_error(cl, b->allocation_id, "invalid_request",
		    "allocation is being released; ask again");
		return;
	}
	/* A creation not yet durable is joined, never answered early. */
	cr = nss_find_creation(s, b->allocation_id);
	a = cr ? NULL : nsstate_find(&s->t, b->allocation_id);
	if (a || cr) {
		unsigned emask = a ? a->mask : cr->mask;
		const char *eimg = a ? a->image : cr->image;

		/* No image in the request means "whatever it has". */
		if (emask != mask || (b->uenv_image && (!eimg ||
		    strcmp(eimg, b->uenv_image) != 0))) {
			nss_send_error(cl, b->allocation_id, "invalid_request",
			    "allocation exists with other namespaces or image");
			return;
		}
		if (a && !nss_init_alive(a)) {
			nss_send_error(cl, a->id, "creation_failed",
			    DEAD_INIT_MSG);
			return;
		}
		if (a) {
			nss_answer(cl, a, order, b->namespaces.n);
			return;
		}
		if (nss_add_waiter(cr, cl, order, b->namespaces.n) < 0)
			nss_send_error(cl, b->allocation_id, "creation_failed",
			    "out of memory");
		return;
	}
	if (s->sealed) {
		nss_send_error(cl, b->allocation_id, "creation_failed",
		    "provider is sealed for a handoff");
		return;
	}
	u = uid_slot(s, cl->uid, true);
	uid_full = !u || (!uid_exempt(cl->uid) &&
	    u->pending >= s->max_pending_uid);
	if (s->ncreations >= s->max_pending || uid_full ||
	    s->t.n + s->ncreations >= s->max_allocs) {
		nss_send_error(cl, b->allocation_id, "limit_exceeded", uid_full ?
		    "too many creations in flight for this uid" :
		    s->ncreations >= s->max_pending ?
		    "too many creations in flight" : "too many allocations");
		if (u && !u->conns && !u->pending)
			nss_uid_put(s, cl->uid, true);
		return;
	}
	err[0] = '\0';
	r = nss_start_creation(s, b->allocation_id, mask, b->uenv_image, err,
	    sizeof(err), &cr);
	if (r < 0) {
		nss_send_error(cl, b->allocation_id, r == -EINVAL ?
		    "invalid_request" : "creation_failed",
		    err[0] ? err : strerror(-r));
		return;
	}
	cr->uid = cl->uid;
	u->pending++;
	if (nss_add_waiter(cr, cl, order, b->namespaces.n) < 0)
		nss_send_error(cl, b->allocation_id, "creation_failed",
		    "out of memory");
}

/* Answer the client of a release once its write ended. */
void
nss_release_answer(struct release *rel, int err)
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
		nss_send_error(cl, rel->id, "creation_failed", msg);
	} else {
		memset(&m, 0, sizeof(m));
		m.type = MSG_ALLOCATION_RELEASED;
		m.u.ALLOCATION_RELEASED.allocation_id = rel->id;
		if (conn_send(cl->c, &m, NULL, 0) < 0)
			conn_close(cl->c);
	}
	nss_client_done(cl);
}

static void
handle_release(struct client *cl, const char *id)
{
	struct nsserver *s = cl->s;
	struct ns_alloc *a;
	char msg[160];
	int r;

	if (nss_find_creation(s, id) || nss_find_release(s, id)) {
		nss_send_error(cl, id, "invalid_request", nss_find_creation(s, id) ?
		    "allocation is still being created" :
		    "allocation is already being released");
		return;
	}
	a = nsstate_find(&s->t, id);
	if (!a) {
		/*
		 * Gone means gone: pins left under the id (its agent died
		 * between the release's write and its undo, and the sweep
		 * waits for a tick) go before the answer says so.
		 */
		if (!s->sealed && nsprov_sweep_one(s->pin_dir, id))
			s->cg_dirty = true;
		nss_send_error(cl, id, "allocation_not_found", "no such allocation");
		return;
	}
	if (s->sealed) {
		nss_send_error(cl, id, "creation_failed",
		    "provider is sealed for a handoff");
		return;
	}
	r = nss_release_alloc(s, a, "allocation_ended", cl);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "persist allocation table: %s; the "
		    "allocation is kept", strerror(-r));
		nss_send_error(cl, id, "creation_failed", msg);
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
		nss_send_error(cl, NULL, "limit_exceeded", "too many subscribers");
		conn_close_after_flush(cl->c);
		return;
	}
	if (since->set && since->v < s->t.ev_floor) {
		nss_send_error(cl, NULL, "too_old", "since_seq is older than the "
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
		nss_ended_msg(&m, e->id, e->seq);
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
	m.u.STATUS_REPLY.dead_allocations = nss_count_dead(s);
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
    const char *names[1u << NSV_KINDS][NSV_KINDS],
    const unsigned *counts)
{
	unsigned mask = a->mask & ((1u << NSV_KINDS) - 1);
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
	const char *names[1u << NSV_KINDS][NSV_KINDS];
	unsigned counts[1u << NSV_KINDS], i = 0, k, mask;
	unsigned cap = s->t.n + s->nreleasing;
	struct nslist_entry *v = NULL;
	const struct ns_alloc *a;
	struct release *rel = s->releasing;
	struct msg m;

	if (cap > 0 && !(v = calloc(cap, sizeof(*v)))) {
		nss_send_error(cl, NULL, "limit_exceeded", "out of memory");
		return;
	}
	/* The names of each namespace set, in kind order. */
	for (mask = 0; mask < (1u << NSV_KINDS); mask++) {
		counts[mask] = 0;
		for (k = 0; k < NSV_KINDS; k++)
			if (mask & (1u << k))
				names[mask][counts[mask]++] =
				    nsvocab_kind_name(k);
	}
	/*
	 * The durable table at `seq`: not what is still being written
	 * (creations in flight), but what a release in flight still has.
	 */
	for (a = s->t.head; a && i < cap; a = a->next) {
		if (nss_find_creation(s, a->id))
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
		nss_send_error(cl, NULL, "limit_exceeded",
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

	cl->requests++;
	/*
	 * Draining with connections that move: reads are still answered
	 * here, a change is held unread and moves with its connection at the
	 * seal, to be served by the successor (PROTOCOL.md, "Moving
	 * connections").
	 */
	if (s->draining && s->keep_conns && (f->m.type == MSG_NS_REQUEST ||
	    f->m.type == MSG_ALLOCATION_ENDED) && conn_hold(c) == 0) {
		cl->held = true;
		frame_release(f);
		return;
	}
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
		nss_send_error(cl, NULL, "invalid_request",
		    "not a request of the namespace protocol");
		conn_close_after_flush(cl->c);
		break;
	}
	frame_release(f);
	if (s->draining && !cl->w && !cl->rel)
		nss_client_done(cl);
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
	nss_uid_put(s, cl->uid, true);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		s->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	s->nclients--;
	free(cl);
	nss_maybe_drained(s);
	nss_maybe_free(s);
}

/*
 * A uid already at its share of connections: answered and closed right
 * here, with no connection object, so a flood drains from the kernel's
 * backlog as fast as it can be accepted.  True when fd was consumed.
 */
static bool
over_uid_share(struct nsserver *s, int fd, uid_t uid)
{
	struct msg m;
	struct uidslot *u;
	uint8_t *buf = NULL;
	size_t len;

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
	return true;
}

/*
 * A consumer connection on fd, or on a moved one: one of ours, counted
 * (global and per uid, the uid as the conn read it with SO_PEERCRED).
 */
static struct client *
client_new(struct nsserver *s, int fd, struct conn_moved *moved)
{
	struct conn_opts o = { .max_body = s->max_body,
	    .max_queued = s->max_queued, .max_fds = 0,
	    .errstyle = CONN_ERR_NS };
	struct uidslot *u;
	struct client *cl;
	int r;

	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		if (moved)
			conn_moved_free(moved);
		else
			close(fd);
		return NULL;
	}
	cl->s = s;
	r = moved ? conn_import(s->loop, moved, &o, frame_cb, close_cb, cl,
	    &cl->c) : conn_open(s->loop, fd, &o, frame_cb, close_cb, cl,
	    &cl->c);
	if (r < 0) {
		free(cl);
		return NULL;
	}
	cl->next = s->clients;
	if (s->clients)
		s->clients->prev = cl;
	s->clients = cl;
	s->nclients++;
	conn_peer(cl->c, NULL, &cl->uid, NULL);
	u = uid_slot(s, cl->uid, true);
	if (u)
		u->conns++;
	return cl;
}

/*
 * Serve connections moved from the incumbent (or back to it): admitted
 * once already, so no limit refuses them.  Takes every item.  Returns
 * how many are served.
 */
unsigned
nsserver_adopt_conns(struct nsserver *s, struct connmove_item *v, unsigned n)
{
	struct client *cl;
	unsigned i, k = 0;

	for (i = 0; i < n; i++) {
		cl = client_new(s, -1, &v[i].c);
		if (!cl)
			continue;
		k++;
		if (v[i].flags & CONNMOVE_F_SUBSCRIBER) {
			cl->subscriber = true;
			s->nsubs++;
		}
		/* A request it sent and nobody read yet is served now. */
		(void)conn_read_now(cl->c, 1);
	}
	return k;
}

/* The acceptor's callback: a peer the allow-list lets in. */
void
nss_accept(void *data, const struct acceptor_peer *p)
{
	struct nsserver *s = data;
	struct client *cl;
	struct uidslot *u;

	if (over_uid_share(s, p->fd, p->uid))
		return;
	cl = client_new(s, p->fd, NULL);
	if (!cl)
		return;
	u = uid_slot(s, p->uid, false);
	if (s->nclients > s->max_conns || (!uid_exempt(p->uid) &&
	    (!u || u->conns > s->max_conns_uid))) {
		nss_send_error(cl, NULL, "limit_exceeded", s->nclients >
		    s->max_conns ? "too many connections" :
		    "too many connections from this uid");
		conn_close_after_flush(cl->c);
		return;
	}
	/*
	 * A client sends its request as soon as it is connected: most are
	 * in the socket by now.  Read now, not on the loop's next turn,
	 * which would first run every other callback then ready (under 8
	 * creating clients that turn is most of a STATUS's wait).
	 */
	(void)conn_read_now(cl->c, 1);
}
