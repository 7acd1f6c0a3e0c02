/*
 * nsserver: the namespace provider's life cycle on the agent's loop:
 * new (load, sweep, writer), start/stop accepting, drain, seal, resume,
 * the tick, free.  The invariants of the whole provider are in
 * nsserver_int.h.
 */
#include "successor/nsserver_int.h"

static void tick_cb(uv_timer_t *t);
static bool known_cb(const char *id, void *data);
static int load(struct nsserver *s, struct nsserver_preload *pre,
    const uint8_t *sealed, struct nsfile *file);
static void free_server(struct nsserver *s);
static void drain_timer_cb(uv_timer_t *t);
static void close_idle(struct nsserver *s, bool fresh_too);
static void grace_timer_cb(uv_timer_t *t);

/* Pins of allocations the table does not know: a creation cut short. */
static void
sweep_pins(struct nsserver *s)
{
	int r = nsprov_sweep(s->pin_dir, known_cb, s);

	s->pins_dirty = false;
	if (r < 0)
		log_warn("ns.sweep", strerror(-r), "path=%s", s->pin_dir);
}

/*
 * Whether the tick has work: a creation to time out, a table to write
 * again, a sweep left, or (with --cgroup-root) watches to attach.  An
 * idle agent has none, and no timer wakes it.
 */
static bool
tick_wanted(const struct nsserver *s)
{
	return s->creations || s->dirty || s->pins_dirty || s->cg_dirty ||
	    s->ino_fd >= 0;
}

/* After every turn of the loop (never a wake-up of its own). */
static void
kick_cb(uv_check_t *h)
{
	struct nsserver *s = h->data;

	if (!s->freeing && !uv_is_active((uv_handle_t *)&s->tick) &&
	    tick_wanted(s))
		uv_timer_start(&s->tick, tick_cb, TICK_MS, TICK_MS);
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
			nss_creation_kill(cr);
		}
	}
	if (s->dirty && !s->sealed && !nswriter_pending(s->wr))
		(void)nss_persist_async(s, NULL, NULL);
	if (s->pins_dirty)
		sweep_pins(s);
	if (s->cg_dirty)
		nss_sweep_cgroups(s);
	for (a = s->t.head; a; a = next) {
		next = a->next;
		if (a->cg_wd < 0)
			nss_watch_alloc(s, a);
	}
	if (!tick_wanted(s))
		uv_timer_stop(&s->tick);
}

/* ---- life cycle ---- */

static bool
known_cb(const char *id, void *data)
{
	struct nsserver *s = data;

	/*
	 * A creation in flight has its pins before its table entry, and a
	 * release keeps its pins until its write is durable.
	 */
	return nsstate_find(&s->t, id) || nss_find_creation(s, id) ||
	    nss_find_release(s, id);
}

struct nsserver_preload {
	struct ns_table t;
	uint8_t digest[NSSERVER_DIGEST_LEN];	/* of the file read */
	/* The allocation cgroups, resolved from a mountinfo that every pin
	 * makes longer (20,000 lines with 10,000 allocations). */
	struct nscgroup cg;
	bool cg_open;
	char *cg_spec;
};

int
nsserver_preload(const char *state_path, const char *alloc_cgroup,
    struct nsserver_preload **ret)
{
	struct nsserver_preload *p;
	uint64_t t0 = clock_mono_us(), t1, t2;
	struct nsfile f;
	void *buf = NULL;
	size_t len;
	int r;

	*ret = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	/* Dead writers' leftovers (their owners are gone: no lock needed). */
	(void)atomicfile_cleanup(state_path);
	/*
	 * The incumbent may be writing a slot as we read it: a torn read
	 * fails its checksum and the other copy is taken; BEGIN's digest
	 * then tells whether this is the sealed table.
	 */
	r = nsfile_init(&f, state_path);
	if (r == 0) {
		f.live = true;
		r = nsfile_read(&f, ATOMICFILE_MAX, &buf, &len, p->digest, NULL);
	}
	t1 = clock_mono_us();
	if (r == 0)
		r = nsstate_decode(buf, len, &p->t);
	free(buf);
	if (r < 0) {
		nsserver_preload_free(p);
		return r;
	}
	t2 = clock_mono_us();
	p->cg_spec = nss_dup_or_null(alloc_cgroup);
	p->cg_open = (!alloc_cgroup || p->cg_spec) &&
	    nscgroup_open(alloc_cgroup, NULL, NULL, &p->cg) == 0;
	log_info("ns.preloaded", NULL, "allocations=%u seq=%" PRIu64
	    " read_us=%" PRIu64 " decode_us=%" PRIu64 " cgroup_us=%" PRIu64,
	    p->t.n, p->t.seq, t1 - t0, t2 - t1, clock_mono_us() - t2);
	*ret = p;
	return 0;
}

void
nsserver_preload_free(struct nsserver_preload *p)
{
	if (!p)
		return;
	nsstate_clear(&p->t);
	if (p->cg_open)
		nscgroup_close(&p->cg);
	free(p->cg_spec);
	free(p);
}

/* The preload's cgroups, when resolved for the same spec (taken). */
static bool
take_preloaded_cg(struct nsserver_preload *p, const char *spec,
    struct nscgroup *ret)
{
	if (!p || !p->cg_open || (spec == NULL) != (p->cg_spec == NULL) ||
	    (spec && strcmp(spec, p->cg_spec) != 0))
		return false;
	*ret = p->cg;
	memset(&p->cg, 0, sizeof(p->cg));
	p->cg_open = false;
	return true;
}

/* The head start's table becomes ours (the preload keeps none). */
static void
take_preloaded_table(struct nsserver *s, struct nsserver_preload *pre)
{
	s->t = pre->t;
	memset(&pre->t, 0, sizeof(pre->t));
}

/* Load the table from file's copies (and note where its slots stand). */
static int
load(struct nsserver *s, struct nsserver_preload *pre, const uint8_t *sealed,
    struct nsfile *file)
{
	struct ns_alloc *a, *next;
	void *buf = NULL;
	const char *why;
	size_t len;
	bool same;
	int r;

	s->preload_use = "none";
	/*
	 * The sealed table is the one the head start read: it is in memory,
	 * and the head start removed dead writers' leftovers already.
	 */
	if (sealed && pre && memcmp(pre->digest, sealed,
	    NSSERVER_DIGEST_LEN) == 0) {
		memcpy(s->digest, pre->digest, NSSERVER_DIGEST_LEN);
		take_preloaded_table(s, pre);
		nsfile_locate(file, s->t.seq);
		s->preload_use = "sealed";
		goto loaded;
	}
	(void)atomicfile_cleanup(s->state_path);
	r = nsfile_read(file, ATOMICFILE_MAX, &buf, &len, s->digest, NULL);
	if (r == -ENOENT) {
		s->dirty = true;	/* seal must leave a file behind */
		return 0;
	}
	if (r < 0)
		return r;
	/* The file the head start read, unchanged: take its table whole. */
	same = pre && memcmp(pre->digest, s->digest, NSSERVER_DIGEST_LEN) == 0;
	s->preload_use = same ? "whole" : pre ? "changed" : "none";
	if (same) {
		take_preloaded_table(s, pre);
	} else {
		r = nsstate_decode(buf, len, &s->t);
		if (r < 0)
			goto out;
	}
loaded:
	s->written_seq = s->t.seq;	/* what is on disk is durable */
	for (a = s->t.head; a; a = next) {
		next = a->next;
		why = "";
		if (sealed)	/* nsserver_config.sealed_digest */
			r = a->mask & NSVM_PID ? nsprov_check_init(a->reaper,
			    a->ino[NSV_PID], &why) : 0;
		else
			r = nsprov_check(s->pin_dir, a->id, a->mask, a->ino,
			    a->reaper, &why);
		if (r == 0)
			continue;
		if (r == -ESRCH) {	/* pins fine, init gone: kept, dead */
			nss_mark_dead(a, why);
			continue;
		}
		log_warn("ns.allocation_dropped", why, "allocation_id=%s "
		    "err=%d", a->id, r);
		nss_destroy_alloc(s, a);
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
	struct nsfile file;
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
	s->cgroup_root = nss_dup_or_null(cfg->cgroup_root);
	s->build_id = nss_dup_or_null(cfg->build_id);
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
	(void)paths_mkdirs(s->uenv_base, 0755);
	r = take_preloaded_cg(cfg->preload, cfg->alloc_cgroup, &s->cg) ? 0 :
	    nscgroup_open(cfg->alloc_cgroup, NULL, NULL, &s->cg);
	if (r < 0) {
		log_error("ns.alloc_cgroup", strerror(-r), "spec=%s",
		    cfg->alloc_cgroup);
		goto fail;
	}
	r = nsfile_init(&file, s->state_path);
	if (r == 0)
		r = load(s, cfg->preload, cfg->sealed_digest, &file);
	if (r < 0) {
		log_error("ns.load", strerror(-r), "path=%s", s->state_path);
		goto fail;
	}
	r = nswriter_new(loop, &file, &(struct nswriter_ops){
	    .encode = nss_encode_cb, .written = nss_written_cb }, s, &s->wr);
	if (r < 0)
		goto fail;
	/*
	 * A table an incumbent sealed names every pin but those of earlier
	 * crashes, which their recovery swept: the sweeps wait for the first
	 * tick, off the handoff's path.  Any other load (cold start, restart,
	 * a successor promoted because its incumbent died) may follow a
	 * crash between a release's durable write and its undo: those pins
	 * go now, before the first client can be told the allocation is gone
	 * while its namespaces stay (a tick may never come before the next
	 * handoff).
	 */
	if (cfg->preload && cfg->sealed_digest) {
		s->pins_dirty = true;
		s->cg_dirty = true;
	} else {
		sweep_pins(s);
		nss_sweep_cgroups(s);
	}
	uv_timer_init(loop, &s->tick);
	uv_check_init(loop, &s->kick);
	s->kick.data = s;
	uv_check_start(&s->kick, kick_cb);
	/* The check keeps nothing alive by itself. */
	uv_unref((uv_handle_t *)&s->kick);
	s->tick.data = s;
	uv_timer_init(loop, &s->drain_timer);
	s->drain_timer.data = s;
	uv_timer_init(loop, &s->grace_timer);
	s->grace_timer.data = s;
	s->open_handles += 4;
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
		uv_poll_start(&s->ipoll, UV_READABLE, nss_inotify_cb);
		for (a = s->t.head; a; a = a->next)
			nss_watch_alloc(s, a);
	}
	log_info("ns.loaded", NULL, "allocations=%u dead=%u seq=%" PRIu64
	    " generation=%" PRIu64 " alloc_cgroup=%s%s%s preload=%s", s->t.n,
	    nss_count_dead(s), s->t.seq, s->t.generation,
	    s->cg.n ? s->cg.dir[0] : "none", s->cg.n > 1 ? "," : "",
	    s->cg.n > 1 ? s->cg.dir[1] : "", s->preload_use);
	*ret = s;
	return 0;
fail:
	free_server(s);
	return r;
}

int
nsserver_start(struct nsserver *s, int listen_fd)
{
	struct acceptor_opts ao = {
		.allow_uids = s->allow_uids, .n_allow_uids = s->n_allow_uids,
		.allow_gids = s->allow_gids, .n_allow_gids = s->n_allow_gids,
		.per_wake = ACCEPTS_PER_WAKE, .errstyle = CONN_ERR_NS,
		.refused_event = "ns.peer_refused",
		.refused_text = "peer not allowed",
	};
	int fl;

	if (s->freeing)
		return -EINVAL;
	if (s->acc && acceptor_fd(s->acc) == listen_fd)
		return 0;
	nsserver_stop_accepting(s);
	/* Several processes poll one listener in a handoff: never block. */
	fl = fcntl(listen_fd, F_GETFL);
	if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return acceptor_start(s->loop, listen_fd, &ao, nss_accept, s, &s->acc);
}

void
nsserver_stop_accepting(struct nsserver *s)
{
	/* Closing (not just stopping) lets a later start use another fd. */
	acceptor_stop(s->acc);
	s->acc = NULL;
}

static void
drain_timer_cb(uv_timer_t *t)
{
	struct nsserver *s = t->data;
	struct client *cl, *next;
	struct creation *cr;
	nsserver_drain_cb cb = s->drain_cb;
	unsigned left = s->ncreations, busy = 0;

	if (!cb)
		return;
	for (cl = s->clients; cl; cl = cl->next)
		busy += cl->w || cl->rel;
	/* Parked connections are not left over: they move (keep_conns). */
	left += s->keep_conns ? busy : s->nclients;
	s->drain_cb = NULL;
	if (left) {
		log_warn("ns.drain_deadline", "closing what is left",
		    "conns=%u creations=%u", s->nclients, s->ncreations);
		for (cr = s->creations; cr; cr = cr->next) {
			if (cr->reaped)
				continue;	/* only its write is left */
			cr->timed_out = true;
			nss_creation_kill(cr);
		}
		for (cl = s->clients; cl; cl = next) {
			next = cl->next;
			if (!s->keep_conns || cl->w || cl->rel)
				conn_close(cl->c);
		}
	}
	cb(s->drain_data, left);
}

void
nss_maybe_drained(struct nsserver *s)
{
	if (!s->draining || !s->drain_cb || (s->nclients && !s->keep_conns) ||
	    s->ncreations || s->nreleasing)
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

	if (s->draining && !s->keep_conns)
		close_idle(s, true);
}

void
nsserver_drain(struct nsserver *s, uint64_t deadline_ms,
    nsserver_drain_cb done_cb, void *data)
{
	uint64_t now = clock_mono_ms();

	/*
	 * With connections that move, accepting and reading go on until the
	 * seal (changes are held, frame_cb); otherwise they stop here.
	 */
	s->draining = true;
	s->drain_cb = done_cb;
	s->drain_data = data;
	if (!s->keep_conns) {
		nsserver_stop_accepting(s);
		close_idle(s, false);
		uv_timer_stop(&s->grace_timer);
		uv_timer_start(&s->grace_timer, grace_timer_cb,
		    deadline_ms > now + DRAIN_FIRST_REQUEST_MS ?
		    DRAIN_FIRST_REQUEST_MS : deadline_ms > now ?
		    deadline_ms - now : 0, 0);
	}
	uv_timer_stop(&s->drain_timer);
	uv_timer_start(&s->drain_timer, drain_timer_cb,
	    deadline_ms > now ? deadline_ms - now : 0, 0);
	nss_maybe_drained(s);
}

int
nsserver_seal(struct nsserver *s, uint64_t *ret_seq,
    uint8_t ret_digest[NSSERVER_DIGEST_LEN])
{
	int r;

	/* Writes in flight end first: a creation or release waiting only
	 * for its write is settled by it. */
	r = nss_persist_sync(s);
	if (r < 0)
		return r;
	if (s->ncreations || s->nreleasing)
		return -EBUSY;
	nsserver_stop_accepting(s);
	s->sealed = true;
	*ret_seq = s->t.seq;
	memcpy(ret_digest, s->digest, NSSERVER_DIGEST_LEN);
	return 0;
}

void
nsserver_resume(struct nsserver *s, int listen_fd)
{
	struct client *cl, *next;
	int r;

	s->sealed = false;
	s->draining = false;
	s->keep_conns = false;
	s->drain_cb = NULL;
	/* Read again; a change held by the drain is served now. */
	for (cl = s->clients; cl; cl = next) {
		next = cl->next;
		if (cl->w || cl->rel)
			continue;
		conn_resume(cl->c);
		if (cl->held) {
			cl->held = false;
			(void)conn_read_now(cl->c, 1);
		}
	}
	uv_timer_stop(&s->drain_timer);
	uv_timer_stop(&s->grace_timer);
	if (s->dirty && !nswriter_pending(s->wr))
		(void)nss_persist_async(s, NULL, NULL);
	nss_recheck_all(s);
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
nsserver_bump_generation_async(struct nsserver *s,
    void (*done)(void *data, int err), void *data)
{
	int r;

	if (s->sealed)
		return -EROFS;
	s->t.generation++;
	r = nss_persist_async(s, done, data);
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
	return s->acc != NULL && acceptor_active(s->acc);
}

void
nsserver_set_ready(struct nsserver *s, bool ready)
{
	s->ready = ready;
}

void
nss_maybe_free(struct nsserver *s)
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
		nss_uid_put(s, cr->uid, false);
		nss_creation_kill(cr);
		nss_creation_wait(cr);
		(void)nsprov_destroy(s->pin_dir, cr->id, 0, 0);
		nss_answer_waiters(cr, NULL, "creation_failed", "shutting down");
		uv_close((uv_handle_t *)&cr->poll, nss_creation_closed_cb);
	}
	nsspawn_free(s->spawner);
	s->spawner = NULL;
	uv_close((uv_handle_t *)&s->tick, nss_handle_closed_cb);
	uv_close((uv_handle_t *)&s->kick, nss_handle_closed_cb);
	uv_close((uv_handle_t *)&s->drain_timer, nss_handle_closed_cb);
	uv_close((uv_handle_t *)&s->grace_timer, nss_handle_closed_cb);
	if (s->ino_fd >= 0) {
		uv_close((uv_handle_t *)&s->ipoll, nss_handle_closed_cb);
		close(s->ino_fd);
		s->ino_fd = -1;
	}
	nss_maybe_free(s);
}

bool
nsserver_reap(struct nsserver *s, pid_t pid, int status)
{
	struct creation *cr;
	struct ns_alloc *a;
	unsigned i;

	for (cr = s->creations; cr; cr = cr->next) {
		/* The spawner's helpers are its children, not ours. */
		if (cr->pidfd < 0 && !cr->spawning && cr->helper == pid) {
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
			nss_mark_dead(a, "reaper exited");
			return true;
		}
	}
	return false;
}

/* ---- moving connections (docs/PROTOCOL.md, "Moving connections") ---- */

void
nsserver_keep_conns(struct nsserver *s, bool keep)
{
	s->keep_conns = keep;
}

uint64_t
nsserver_generation(const struct nsserver *s)
{
	return s->t.generation;
}

int
nsserver_export_conns(struct nsserver *s, struct connmove_item **ret_v,
    unsigned *ret_n, unsigned *ret_closed)
{
	struct connmove_item *v;
	struct client *cl, *next;
	unsigned n = 0, closed = 0;
	int r;

	v = calloc(s->nclients ? s->nclients : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (cl = s->clients; cl; cl = next) {
		next = cl->next;
		/* Busy ones were closed by the drain's deadline already. */
		v[n].flags = cl->subscriber ? CONNMOVE_F_SUBSCRIBER : 0;
		r = cl->w || cl->rel ? -EBUSY : conn_export(cl->c, &v[n].c);
		if (r == 0) {
			n++;
			continue;
		}
		/* Unsent fds (an answer the peer has not read) cannot move. */
		log_info("ns.move_skipped", proto_strerror(r), "uid=%u",
		    (unsigned)cl->uid);
		conn_close_after_flush(cl->c);
		closed++;
	}
	*ret_v = v;
	*ret_n = n;
	*ret_closed = closed;
	return 0;
}
