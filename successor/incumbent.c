/*
 * incumbent: the agent's side of a handoff as the process that serves
 * (SPEC §4): one supervisor session at a time on the control socket,
 * driven through drain, seal and commit or resume.
 *
 * The behaviour is the table `cells` below: for every state and every
 * event one named action, written out; actions return the next state.
 * Unexpected frames are rejected (ERROR, then the session closes), and
 * so are frames whose handoff_id is not this session's.
 *
 * Invariants kept here:
 * - the lock is released only after a successful seal, right before
 *   SEAL_COMPLETE, and retaken before serving again;
 * - the incumbent never stays sealed on a supervisor's word alone: its
 *   own watchdog (deadline + slack) and supervisor EOF both resume it;
 * - the watchdog and heartbeat timers run only in draining, drained and
 *   sealed: every way into another state stops them first;
 * - a session exists exactly when the state is not none, except while
 *   the process is stopping (after COMMIT or when superseded);
 * - an event raised by an action's own call (a drain that ends at once)
 *   runs after that action, in the state it returned.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/lock.h"
#include "common/log.h"
#include "crashpoints/crashpoint.h"
#include "proto/frame.h"
#include "successor/agent_int.h"
#include "successor/nsserver.h"
#include "transport/acceptor.h"
#include "transport/conn.h"

#define WATCHDOG_SLACK_MS	1000
#define XFER_SEND_MS		5000	/* moving connections, at most */

static const char *const state_names[OS_NSTATES] = {
	"none", "hello-sent", "idle", "draining", "drained", "sealed",
};

static const char *const event_names[OE_NEVENTS] = {
	"hello-ack", "get-listeners", "prepare", "seal-request", "commit",
	"abort", "resume-request", "heartbeat", "other-frame", "eof",
	"watchdog", "tick", "drained", "signal", "accept",
};

typedef enum ostate (*action_fn)(struct agent *a);

static void sess_frame_cb(struct conn *c, struct frame *f, void *data);
static void sess_close_cb(struct conn *c, int err, void *data);
static void wd_cb(uv_timer_t *t);
static void drained_cb(void *data, unsigned remaining);

static void
stop_handoff_timers(struct agent *a)
{
	uv_timer_stop(&a->hb_timer);
	uv_timer_stop(&a->wd_timer);
}

/*
 * Back to serving after an aborted or abandoned handoff.  When sealed the
 * lock must be retaken first; if someone else holds it (a successor got
 * BEGIN and now serves), this process is superseded and leaves.  Returns
 * 0 or -errno (leaving), and the state to be in.
 */
static int
resume_local(struct agent *a, const char *why, enum ostate *next)
{
	bool relocked = false;
	pid_t holder = 0;
	int r;

	stop_handoff_timers(a);
	*next = OS_NONE;
	if (!a->ns)
		return 0;	/* tearing down (the session closes last) */
	if (!a->lock) {
		r = lock_acquire_wait(a->cfg->paths.state_dir, AGENT_RELOCK_MS,
		    &a->lock, &holder);
		if (r < 0) {
			log_warn("handoff.superseded", "lock held by another "
			    "agent; leaving", "handoff_id=%s holder=%d",
			    agent_hid(a), (int)holder);
			agent_exit(a, 0);
			return r;
		}
		relocked = true;
	}
	/*
	 * The lock was let go: a successor may have held it, served and
	 * written the table meanwhile.  Memory is a cache valid only while
	 * the lock is held without a break; the file is the truth.
	 */
	if (relocked && agent_reload_ns(a) < 0) {
		log_error("handoff.reload", "cannot reload the allocation table "
		    "after retaking the lock; leaving so a fresh agent starts",
		    "handoff_id=%s", agent_hid(a));
		agent_exit(a, 69);
		return -EIO;
	}
	nsserver_resume(a->ns, a->ns_fd);
	connxfer_resume(a->ns, relocked, &a->xout);
	if (a->xfer_fd >= 0)
		close(a->xfer_fd);
	a->xfer_fd = -1;
	agent_reclaim_paths(a);
	log_info("handoff.resume", why, "handoff_id=%s state=%s",
	    agent_hid(a), state_names[a->ost]);
	*next = a->sess ? OS_IDLE : OS_NONE;
	return 0;
}

static bool
id_matches(struct agent *a, const char *id)
{
	if (strcmp(a->hid, id) == 0)
		return true;
	conn_reject(a->sess, -PROTO_EINVAL, "handoff_id does not match");
	return false;
}

/* ---- actions ---- */

static enum ostate
a_ignore(struct agent *a)
{
	return a->ost;
}

/* A frame this state does not take: ERROR, and the session closes. */
static enum ostate
a_unexpected(struct agent *a)
{
	log_warn("handoff.unexpected", "unexpected message", "type=%s state=%s",
	    msg_type_name(a->cur->type), state_names[a->ost]);
	conn_reject(a->sess, -PROTO_EINVAL, "unexpected message in this state");
	return a->ost;
}

static enum ostate
a_accept(struct agent *a)
{
	/* PREPARE_HANDOFF may carry the channel to the successor. */
	struct conn_opts opts = { .max_body = 65536, .max_fds = 1,
	    .errstyle = CONN_ERR_CONTROL };
	int r;

	r = conn_open(a->loop, a->cur_peer->fd, &opts, sess_frame_cb,
	    sess_close_cb, a, &a->sess);
	if (r < 0) {
		log_warn("control.accept", proto_strerror(r), NULL);
		return a->ost;
	}
	agent_send_hello(a, a->sess, "incumbent");
	a->hid[0] = '\0';
	return OS_HELLO_SENT;
}

/* One supervisor session at a time: a second one is told so. */
static enum ostate
a_busy(struct agent *a)
{
	struct conn_opts opts = { .max_body = 65536, .errstyle = CONN_ERR_CONTROL };
	struct conn *c;

	if (conn_open(a->loop, a->cur_peer->fd, &opts, NULL, NULL, NULL, &c) == 0)
		conn_reject(c, -EBUSY, "another supervisor session is open");
	return a->ost;
}

static enum ostate
a_hello_ack(struct agent *a)
{
	const struct msg *m = a->cur;
	uint16_t v;

	if (proto_negotiate(PROTO_VERSION_MIN, PROTO_VERSION_MAX,
	    m->u.HELLO_ACK.proto_version, m->u.HELLO_ACK.proto_version,
	    &v) < 0) {
		conn_reject(a->sess, -PROTO_ENOVERSION,
		    "unsupported protocol version");
		return a->ost;
	}
	snprintf(a->hid, sizeof(a->hid), "%s", m->u.HELLO_ACK.handoff_id);
	return OS_IDLE;
}

static enum ostate
a_send_listeners(struct agent *a)
{
	struct msg m = { .type = MSG_LISTENERS };
	const char *names[LISTENFDS_MAX];
	int fds[LISTENFDS_MAX];
	unsigned i, n = 0;

	if (a->nlfds == 0 && a->ns_fd >= 0) {
		names[n] = "ns";
		fds[n++] = a->ns_fd;
	}
	for (i = 0; i < a->nlfds; i++) {
		names[n] = a->lfds[i].name;
		fds[n++] = a->lfds[i].fd;
	}
	m.u.LISTENERS.names.n = n;
	m.u.LISTENERS.names.v = names;
	if (conn_send(a->sess, &m, fds, n) < 0)
		log_warn("agent.listeners", "could not send listeners", NULL);
	return a->ost;
}

static enum ostate
a_prepare(struct agent *a)
{
	const struct msg *m = a->cur;
	uint64_t now, budget;
	bool accepting;

	if (!id_matches(a, m->u.PREPARE_HANDOFF.handoff_id))
		return a->ost;
	budget = m->u.PREPARE_HANDOFF.deadline_ms;
	/* The loop's cached time may be stale: timers count from now. */
	uv_update_time(a->loop);
	now = clock_mono_ms();
	uv_timer_start(&a->wd_timer, wd_cb, budget + WATCHDOG_SLACK_MS, 0);
	uv_timer_start(&a->hb_timer, agent_hb_cb, AGENT_HEARTBEAT_MS,
	    AGENT_HEARTBEAT_MS);
	if (m->u.PREPARE_HANDOFF.drain_grace_ms < budget)
		budget = m->u.PREPARE_HANDOFF.drain_grace_ms;
	/* With a channel to the successor the connections move. */
	if (a->cur_frame && a->cur_frame->nfds == 1) {
		if (a->xfer_fd >= 0)
			close(a->xfer_fd);
		a->xfer_fd = frame_take_fd(a->cur_frame, 0);
	}
	nsserver_keep_conns(a->ns, a->xfer_fd >= 0);
	CRASHPOINT(o_inside_drain);
	/* Its end may come at once: then OE_DRAINED runs after this. */
	nsserver_drain(a->ns, now + budget, drained_cb, a);
	/*
	 * accept_stop_us (CLOCK_MONOTONIC; 0: still accepting, until the
	 * seal, a_seal): the bench's accept gap.
	 */
	accepting = nsserver_accepting(a->ns);
	log_info("handoff.prepare", accepting ? "accepting until the seal" :
	    NULL, "handoff_id=%s successor_pid=%u deadline_ms=%" PRIu64
	    " move_conns=%d accept_stop_us=%" PRIu64, a->hid,
	    m->u.PREPARE_HANDOFF.successor_pid,
	    m->u.PREPARE_HANDOFF.deadline_ms, a->xfer_fd >= 0,
	    accepting ? 0 : clock_mono_us());
	return OS_DRAINING;
}

static enum ostate
a_drained(struct agent *a)
{
	struct msg m = { .type = MSG_DRAINED };

	m.u.DRAINED.handoff_id = a->hid;
	m.u.DRAINED.open_conns_remaining = a->cur_remaining;
	/* Connections that move: accepting goes on until the seal. */
	m.u.DRAINED.accept_closed = !nsserver_accepting(a->ns);
	agent_send(a->sess, &m);
	log_info("handoff.drained", NULL, "handoff_id=%s open_remaining=%u",
	    a->hid, a->cur_remaining);
	CRASHPOINT(o_after_drained_sent);
	return OS_DRAINED;
}

static enum ostate
a_seal(struct agent *a)
{
	struct msg m = { .type = MSG_SEAL_COMPLETE };
	uint8_t digest[NSSERVER_DIGEST_LEN];
	enum ostate next;
	uint64_t seq, stop_us;
	int r;

	if (!id_matches(a, a->cur->u.SEAL_REQUEST.handoff_id))
		return a->ost;
	CRASHPOINT(o_inside_seal);
	/* The write below may be long: tell the supervisor we are at it. */
	{
		struct msg p = { .type = MSG_SEAL_PROGRESS };

		p.u.SEAL_PROGRESS.handoff_id = a->hid;
		p.u.SEAL_PROGRESS.done = 0;
		p.u.SEAL_PROGRESS.total = nsserver_count(a->ns);
		agent_send(a->sess, &p);
	}
#ifdef BATON_CRASHPOINTS
	/* Test builds: BATON_FAULT_SEAL makes the seal fail (PROTOCOL.md). */
	if (getenv("BATON_FAULT_SEAL"))
		r = -EIO;
	else
#endif
	r = nsserver_seal(a->ns, &seq, digest);
	stop_us = clock_mono_us();
	if (r < 0) {
		struct msg f = { .type = MSG_SEAL_FAILED };

		f.u.SEAL_FAILED.handoff_id = a->hid;
		f.u.SEAL_FAILED.error = proto_strerror(r);
		agent_send(a->sess, &f);
		log_error("handoff.seal_failed", proto_strerror(r),
		    "handoff_id=%s", a->hid);
		(void)resume_local(a, "seal failed", &next);
		return next;
	}
	/* The successor gets the connections before it can take the lock. */
	if (a->xfer_fd >= 0) {
		(void)connxfer_send(a->ns, a->xfer_fd, clock_mono_ms() +
		    XFER_SEND_MS, &a->xout);
		a->xfer_fd = -1;
	}
	lock_release(a->lock);
	a->lock = NULL;
	CRASHPOINT(o_after_seal_flock_released);
	m.u.SEAL_COMPLETE.handoff_id = a->hid;
	m.u.SEAL_COMPLETE.state_seq = seq;
	m.u.SEAL_COMPLETE.state_digest.p = digest;
	m.u.SEAL_COMPLETE.state_digest.len = sizeof(digest);
	agent_send(a->sess, &m);
	log_info("handoff.sealed", NULL, "handoff_id=%s state_seq=%" PRIu64
	    " accept_stop_us=%" PRIu64, a->hid, seq, stop_us);
	CRASHPOINT(o_after_seal_complete_sent);
	return OS_SEALED;
}

static enum ostate
a_commit(struct agent *a)
{
	if (!id_matches(a, a->cur->u.COMMIT.handoff_id))
		return a->ost;
	CRASHPOINT(o_after_commit_recv);
	log_info("handoff.commit", "handed over; exiting", "handoff_id=%s",
	    a->hid);
	connxfer_out_free(&a->xout);
	stop_handoff_timers(a);
	agent_exit(a, 0);
	return OS_NONE;
}

static void
send_resumed(struct agent *a)
{
	struct msg r = { .type = MSG_RESUMED };

	r.u.RESUMED.handoff_id = a->hid;
	agent_send(a->sess, &r);
}

/* ABORT or RESUME_AFTER_ABORT in the middle of a handoff: resume, confirm. */
static enum ostate
resume_and_confirm(struct agent *a, const char *id, const char *why)
{
	enum ostate next;

	if (!id_matches(a, id))
		return a->ost;
	if (resume_local(a, why, &next) < 0)
		return next;
	send_resumed(a);
	return next;
}

static enum ostate
a_abort(struct agent *a)
{
	return resume_and_confirm(a, a->cur->u.ABORT.handoff_id,
	    a->cur->u.ABORT.reason);
}

static enum ostate
a_resume_request(struct agent *a)
{
	return resume_and_confirm(a, a->cur->u.RESUME_AFTER_ABORT.handoff_id,
	    "supervisor asked");
}

/* ABORT or RESUME_AFTER_ABORT while serving: nothing to undo, confirm. */
static enum ostate
a_confirm_resumed(struct agent *a)
{
	const struct msg *m = a->cur;

	if (id_matches(a, m->type == MSG_ABORT ? m->u.ABORT.handoff_id :
	    m->u.RESUME_AFTER_ABORT.handoff_id))
		send_resumed(a);
	return a->ost;
}

static enum ostate
a_session_closed(struct agent *a)
{
	stop_handoff_timers(a);
	a->hid[0] = '\0';
	return OS_NONE;
}

/* The supervisor went away in the middle of a handoff: resume alone. */
static enum ostate
a_supervisor_lost(struct agent *a)
{
	enum ostate next;

	log_warn("handoff.supervisor_lost", a->cur_err ?
	    proto_strerror(a->cur_err) : "connection closed",
	    "handoff_id=%s state=%s", agent_hid(a), state_names[a->ost]);
	(void)resume_local(a, "supervisor went away", &next);
	return a_session_closed(a);
}

static enum ostate
a_watchdog(struct agent *a)
{
	enum ostate next;

	log_warn("handoff.watchdog", "handoff deadline passed; resuming on "
	    "our own", "handoff_id=%s state=%s", agent_hid(a),
	    state_names[a->ost]);
	if (resume_local(a, "deadline passed", &next) == 0 && a->sess)
		conn_close(a->sess);
	return next;
}

static enum ostate
a_heartbeat(struct agent *a)
{
	struct msg m = { .type = MSG_HEARTBEAT };

	m.u.HEARTBEAT.ts_ms = clock_wall_ms();
	if (a->sess)
		agent_send(a->sess, &m);
	return a->ost;
}

/* SIGTERM/SIGINT: stop accepting, drain, exit 0 (agent_stop). */
static enum ostate
a_stop(struct agent *a)
{
	agent_stop(a);
	return a->ost;
}

/*
 * The table.  Every cell written out; a new event is a new column: one
 * line in each row (test_agent_table fails on an empty cell).
 */
struct cell {
	action_fn fn;
	const char *name;
};
#define C(f) { f, #f }
static const struct cell cells[OS_NSTATES][OE_NEVENTS] = {
	[OS_NONE] = {
		[OE_HELLO_ACK] = C(a_unexpected),
		[OE_GET_LISTENERS] = C(a_unexpected),
		[OE_PREPARE] = C(a_unexpected),
		[OE_SEAL_REQUEST] = C(a_unexpected),
		[OE_COMMIT] = C(a_unexpected),
		/* Frames here come only after COMMIT, while stopping. */
		[OE_ABORT] = C(a_abort),
		[OE_RESUME_REQUEST] = C(a_resume_request),
		[OE_HEARTBEAT] = C(a_ignore),
		[OE_OTHER_FRAME] = C(a_unexpected),
		[OE_EOF] = C(a_session_closed),
		[OE_WATCHDOG] = C(a_ignore),
		[OE_TICK] = C(a_ignore),
		[OE_DRAINED] = C(a_ignore),
		[OE_SIGNAL] = C(a_stop),
		[OE_ACCEPT] = C(a_accept),
	},
	[OS_HELLO_SENT] = {
		[OE_HELLO_ACK] = C(a_hello_ack),
		[OE_GET_LISTENERS] = C(a_unexpected),
		[OE_PREPARE] = C(a_unexpected),
		[OE_SEAL_REQUEST] = C(a_unexpected),
		[OE_COMMIT] = C(a_unexpected),
		[OE_ABORT] = C(a_ignore),
		[OE_RESUME_REQUEST] = C(a_ignore),
		[OE_HEARTBEAT] = C(a_ignore),
		[OE_OTHER_FRAME] = C(a_unexpected),
		[OE_EOF] = C(a_session_closed),
		[OE_WATCHDOG] = C(a_ignore),
		[OE_TICK] = C(a_ignore),
		[OE_DRAINED] = C(a_ignore),
		[OE_SIGNAL] = C(a_stop),
		[OE_ACCEPT] = C(a_busy),
	},
	[OS_IDLE] = {
		[OE_HELLO_ACK] = C(a_unexpected),
		[OE_GET_LISTENERS] = C(a_send_listeners),
		[OE_PREPARE] = C(a_prepare),
		[OE_SEAL_REQUEST] = C(a_unexpected),
		[OE_COMMIT] = C(a_unexpected),
		[OE_ABORT] = C(a_confirm_resumed),
		[OE_RESUME_REQUEST] = C(a_confirm_resumed),
		[OE_HEARTBEAT] = C(a_ignore),
		[OE_OTHER_FRAME] = C(a_unexpected),
		[OE_EOF] = C(a_session_closed),
		[OE_WATCHDOG] = C(a_ignore),
		[OE_TICK] = C(a_ignore),
		[OE_DRAINED] = C(a_ignore),
		[OE_SIGNAL] = C(a_stop),
		[OE_ACCEPT] = C(a_busy),
	},
	[OS_DRAINING] = {
		[OE_HELLO_ACK] = C(a_unexpected),
		[OE_GET_LISTENERS] = C(a_unexpected),
		[OE_PREPARE] = C(a_unexpected),
		[OE_SEAL_REQUEST] = C(a_unexpected),
		[OE_COMMIT] = C(a_unexpected),
		[OE_ABORT] = C(a_abort),
		[OE_RESUME_REQUEST] = C(a_resume_request),
		[OE_HEARTBEAT] = C(a_ignore),
		[OE_OTHER_FRAME] = C(a_unexpected),
		[OE_EOF] = C(a_supervisor_lost),
		[OE_WATCHDOG] = C(a_watchdog),
		[OE_TICK] = C(a_heartbeat),
		[OE_DRAINED] = C(a_drained),
		[OE_SIGNAL] = C(a_stop),
		[OE_ACCEPT] = C(a_busy),
	},
	[OS_DRAINED] = {
		[OE_HELLO_ACK] = C(a_unexpected),
		[OE_GET_LISTENERS] = C(a_unexpected),
		[OE_PREPARE] = C(a_unexpected),
		[OE_SEAL_REQUEST] = C(a_seal),
		[OE_COMMIT] = C(a_unexpected),
		[OE_ABORT] = C(a_abort),
		[OE_RESUME_REQUEST] = C(a_resume_request),
		[OE_HEARTBEAT] = C(a_ignore),
		[OE_OTHER_FRAME] = C(a_unexpected),
		[OE_EOF] = C(a_supervisor_lost),
		[OE_WATCHDOG] = C(a_watchdog),
		[OE_TICK] = C(a_heartbeat),
		[OE_DRAINED] = C(a_ignore),
		[OE_SIGNAL] = C(a_stop),
		[OE_ACCEPT] = C(a_busy),
	},
	[OS_SEALED] = {
		[OE_HELLO_ACK] = C(a_unexpected),
		[OE_GET_LISTENERS] = C(a_unexpected),
		[OE_PREPARE] = C(a_unexpected),
		[OE_SEAL_REQUEST] = C(a_unexpected),
		[OE_COMMIT] = C(a_commit),
		[OE_ABORT] = C(a_abort),
		[OE_RESUME_REQUEST] = C(a_resume_request),
		[OE_HEARTBEAT] = C(a_ignore),
		[OE_OTHER_FRAME] = C(a_unexpected),
		[OE_EOF] = C(a_supervisor_lost),
		[OE_WATCHDOG] = C(a_watchdog),
		[OE_TICK] = C(a_heartbeat),
		[OE_DRAINED] = C(a_ignore),
		[OE_SIGNAL] = C(a_stop),
		[OE_ACCEPT] = C(a_busy),
	},
};
#undef C

/* ---- dispatch and the event sources ---- */

void
incumbent_event(struct agent *a, enum oevent ev)
{
	enum ostate prev;

	if (a->stepping) {
		/* Raised by the running action's call: after it (header). */
		if (a->ndeferred == sizeof(a->deferred) / sizeof(a->deferred[0]))
			abort();
		a->deferred[a->ndeferred++] = ev;
		return;
	}
	a->stepping = true;
	for (;;) {
		prev = a->ost;
		a->ost = cells[prev][ev].fn(a);
		if (a->ost != prev)
			log_debug("agent.step", NULL, "role=incumbent from=%s "
			    "event=%s action=%s to=%s", state_names[prev],
			    event_names[ev], cells[prev][ev].name,
			    state_names[a->ost]);
		if (a->ndeferred == 0)
			break;
		ev = a->deferred[0];
		memmove(a->deferred, a->deferred + 1,
		    --a->ndeferred * sizeof(a->deferred[0]));
	}
	a->stepping = false;
}

static enum oevent
frame_event(enum msg_type t)
{
	switch (t) {
	case MSG_HELLO_ACK:		return OE_HELLO_ACK;
	case MSG_GET_LISTENERS:		return OE_GET_LISTENERS;
	case MSG_PREPARE_HANDOFF:	return OE_PREPARE;
	case MSG_SEAL_REQUEST:		return OE_SEAL_REQUEST;
	case MSG_COMMIT:		return OE_COMMIT;
	case MSG_ABORT:			return OE_ABORT;
	case MSG_RESUME_AFTER_ABORT:	return OE_RESUME_REQUEST;
	case MSG_HEARTBEAT:		return OE_HEARTBEAT;
	default:			return OE_OTHER_FRAME;
	}
}

static void
sess_frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct agent *a = data;

	(void)c;
	a->cur = &f->m;
	a->cur_frame = f;
	incumbent_event(a, frame_event(f->m.type));
	a->cur = NULL;
	a->cur_frame = NULL;
	frame_release(f);
}

static void
sess_close_cb(struct conn *c, int err, void *data)
{
	struct agent *a = data;

	(void)c;
	a->sess = NULL;
	a->cur_err = err;
	incumbent_event(a, OE_EOF);
	a->cur_err = 0;
}

static void
wd_cb(uv_timer_t *t)
{
	incumbent_event(t->data, OE_WATCHDOG);
}

static void
drained_cb(void *data, unsigned remaining)
{
	struct agent *a = data;

	a->cur_remaining = remaining;
	incumbent_event(a, OE_DRAINED);
}

void
incumbent_accept_cb(void *data, const struct acceptor_peer *p)
{
	struct agent *a = data;
	struct conn_opts opts = { .max_body = 65536, .errstyle = CONN_ERR_CONTROL };
	struct conn *c;

	if (a->stopping) {
		if (conn_open(a->loop, p->fd, &opts, NULL, NULL, NULL, &c) == 0)
			conn_reject(c, -EBUSY, "agent is stopping");
		return;
	}
	a->cur_peer = p;
	incumbent_event(a, OE_ACCEPT);
	a->cur_peer = NULL;
}

/* ---- names, for logs and tests/unit/test_agent_table.c ---- */

static const char *
action_name(unsigned st, unsigned ev)
{
	return st < OS_NSTATES && ev < OE_NEVENTS ? cells[st][ev].name : NULL;
}

const struct agent_table agent_incumbent_table = {
	.role = "incumbent",
	.nstates = OS_NSTATES,
	.nevents = OE_NEVENTS,
	.states = state_names,
	.events = event_names,
	.action_name = action_name,
};
