/*
 * handoff_table: the handoff's behaviour, as the table `handoff_cells`
 * below: for every state and every event one action, written out, so a
 * reader (and a test) can see every case.  Actions return the next
 * state.  The object, its event sources, timers and the spawn are in
 * handoff.c; this file acts only through them and the handoff's env.
 *
 * Invariants kept here:
 * - the successor is spawned with PDEATHSIG until it gets BEGIN, and is
 *   killed (SIGTERM, grace, SIGKILL) and reaped before the incumbent is
 *   told to resume, so the lock is free when the incumbent retakes it;
 * - once READY with a matching state has arrived there is no rollback:
 *   the successor serves and becomes the owner's agent (serving_cb);
 * - if the incumbent dies after PREPARE, the successor is promoted
 *   (BEGIN with an empty digest: adopt what is on disk), never nobody;
 * - roll forward: once the successor holds the data-dir lock it may have
 *   answered clients, so an expired deadline does not abort it while it
 *   shows signs of life; only a successor silent for the liveness period
 *   is killed (and then the incumbent or a cold start reloads the table
 *   from disk, where every acknowledged change already is);
 * - a journal record that guards a recovery decision and cannot be
 *   written aborts the handoff before the step it guards;
 * - every phase is in the journal before the step it guards, and the
 *   journal is cleared (last outcome kept) when the handoff ends;
 * - what recovery acts on (the handoff's processes and binaries) is on
 *   disk before the step it guards; a record that only renames the phase
 *   (draining, sealing, beginning, ...) is written atomically without
 *   waiting for the disk, so no fsync lies between PREPARE and BEGIN.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/lock.h"
#include "common/log.h"
#include "crashpoints/crashpoint.h"
#include "transport/conn.h"
#include "supervisor/agentlog.h"
#include "supervisor/handoff_int.h"
#include "supervisor/journal.h"
#include "supervisor/procwatch.h"

#define WIRE_SLACK_MS		1000
#define READ_FLOOR_MS		100
#define COMMIT_EXIT_MS		10000
#define KILL_GRACE_MS		2000
#define RESUME_MS		10000
#define O_LOST_MS		1000	/* EOF to exit of a dying incumbent */

static const char *const state_names[H_NSTATES] = {
	"o-hello", "n-hello", "drain", "seal", "begin", "commit", "kill-n",
	"resume", "o-lost", "done",
};

static const char *const event_names[EV_NEVENTS] = {
	"o-hello", "n-hello", "drained", "seal-complete", "seal-failed",
	"ready", "resumed", "alive", "o-eof", "o-exit", "n-eof", "n-exit",
	"timeout", "bad",
};

static enum hstate begin_abort(struct handoff *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum hstate finish(struct handoff *h, bool committed);

/* ---- helpers ---- */

/*
 * The record of this handoff, atomic and checksummed but not waited to
 * the disk: every decision recovery takes from it concerns processes,
 * which a power loss ends (PROTOCOL.md, "Journal phases").
 */
static int
journal(struct handoff *h, const char *phase)
{
	int r;

	snprintf(h->jr.phase, sizeof(h->jr.phase), "%s", phase);
	h->jr.successor_pid = h->n_pid;
	if (handoff_ht_bits)
		return 0;
	r = journal_note(h->env.journal, &h->jr);
	if (r < 0)
		log_error("journal.write", proto_strerror(r), "handoff_id=%s "
		    "phase=%s path=%s", h->id, phase, h->env.journal);
	return r;
}

/* Signal a process of this handoff through its pidfd (no pid reuse). */
static void
signal_proc(struct handoff *h, struct procwatch *w, pid_t pid, int sig)
{
	int r;

	if (handoff_ht_bits) {
		if (sig == SIGKILL)
			HT(pid == h->n_pid ? HT_KILL_N : HT_KILL_O);
		else if (pid == h->n_pid)
			HT(HT_ABORT_N);	/* SIGTERM: told to abort either way */
		return;
	}
	if (w) {
		r = procwatch_kill(w, sig);
		if (r < 0 && r != -ESRCH)
			log_warn("handoff.kill", proto_strerror(r), "handoff_id=%s "
			    "pid=%d signal=%d", h->id, (int)pid, sig);
		return;
	}
	/* No pidfd (procwatch_start failed and was logged): plain kill. */
	if (pid > 0 && ((pid == h->n_pid && h->n_alive) ||
	    (pid == h->o_pid && h->o_alive)))
		(void)kill(pid, sig);
}

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t
remaining(const struct handoff *h)
{
	uint64_t now = clock_mono_ms();

	if (now + READ_FLOOR_MS >= h->deadline_at)
		return READ_FLOOR_MS;
	return h->deadline_at - now;
}

static uint64_t
lap(struct handoff *h)
{
	uint64_t now = clock_mono_ms(), d = now - h->t_phase;

	h->t_phase = now;
	return d;
}

/* fd (borrowed, -1 for none) rides with the frame. */
static void
send_fd(struct handoff *h, struct conn *c, const struct msg *m, int fd)
{
	int r;

	if (!c)
		return;
	if (handoff_ht_bits) {
		switch (m->type) {
		case MSG_HELLO_ACK: HT(HT_HELLO_ACK); break;
		case MSG_PREPARE_HANDOFF: HT(HT_PREPARE); break;
		case MSG_SEAL_REQUEST: HT(HT_SEAL); break;
		case MSG_BEGIN:
			HT(HT_BEGIN | (m->u.BEGIN.state_digest.len ? 0 :
			    HT_PROMOTE));
			break;
		case MSG_COMMIT: HT(HT_COMMIT); break;
		case MSG_ABORT: HT(HT_ABORT_N); break;
		case MSG_RESUME_AFTER_ABORT: HT(HT_RESUME); break;
		default: break;
		}
		return;
	}
	r = conn_send(c, m, fd >= 0 ? &fd : NULL, fd >= 0);
	if (r < 0)
		log_warn("handoff.send", proto_strerror(r), "handoff_id=%s type=%s",
		    h->id, msg_type_name(m->type));
}

static void
send_to(struct handoff *h, struct conn *c, const struct msg *m)
{
	send_fd(h, c, m, -1);
}

static bool
has_capability(const struct msg *hello, const char *cap)
{
	uint32_t i;

	for (i = 0; i < hello->u.HELLO.capabilities.n; i++)
		if (strcmp(hello->u.HELLO.capabilities.v[i], cap) == 0)
			return true;
	return false;
}

/*
 * Both agents can move connections: a socketpair between them, one end
 * to the successor with HELLO_ACK, the other kept for PREPARE_HANDOFF
 * (docs/PROTOCOL.md, "Moving connections").  -1 when not.
 */
static int
xfer_pair(struct handoff *h, const struct msg *n_hello)
{
	int sp[2];

	if (!h->o_moves || !has_capability(n_hello, PROTO_CAP_CONN_MOVE))
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		log_warn("handoff.xfer", strerror(errno), "handoff_id=%s; "
		    "connections will not move", h->id);
		return -1;
	}
	handoff_close_xfer(h);
	h->xfer_o = sp[0];
	return sp[1];
}

/* ---- actions ---- */

static enum hstate
a_ignore(struct handoff *h)
{
	return h->st;
}

static enum hstate
a_bad(struct handoff *h)
{
	const struct msg *m = h->cur;

	if (m && m->type == MSG_ERROR)
		return begin_abort(h, "peer error in %s: %s: %s",
		    state_names[h->st], m->u.ERROR.code, m->u.ERROR.message);
	return begin_abort(h, "unexpected %s in %s",
	    m ? msg_type_name(m->type) : "event", state_names[h->st]);
}

static enum hstate
a_timeout(struct handoff *h)
{
	return begin_abort(h, "timeout in %s", state_names[h->st]);
}

static enum hstate
a_o_hello(struct handoff *h)
{
	const struct msg *m = h->cur;
	struct msg ack = { .type = MSG_HELLO_ACK };
	uint16_t v;
	int r;

	if (strcmp(m->u.HELLO.role, "incumbent") != 0)
		return begin_abort(h, "incumbent hello with role %s",
		    m->u.HELLO.role);
	if ((pid_t)m->u.HELLO.pid != h->o_pid)
		return begin_abort(h, "incumbent hello from pid %u, expected %d",
		    m->u.HELLO.pid, (int)h->o_pid);
	if (proto_negotiate(PROTO_VERSION_MIN, PROTO_VERSION_MAX,
	    m->u.HELLO.proto_min, m->u.HELLO.proto_max, &v) < 0)
		return begin_abort(h, "no common protocol version with the "
		    "incumbent");
	ack.u.HELLO_ACK.proto_version = v;
	ack.u.HELLO_ACK.handoff_id = h->id;
	h->o_moves = has_capability(m, PROTO_CAP_CONN_MOVE);
	send_to(h, h->o, &ack);
	h->res.hello_ms = lap(h);
	CRASHPOINT(s_after_o_hello);
	/* The successor's pid is journaled once known ("negotiating"). */
	if (journal(h, "spawning") < 0)
		return begin_abort(h, "cannot write the journal");
	r = handoff_spawn(h);
	if (r < 0)
		return begin_abort(h, "spawn %s: %s", h->binary, proto_strerror(r));
	CRASHPOINT(s_after_spawn_successor);
	if (journal(h, "negotiating") < 0)
		return begin_abort(h, "cannot write the journal");
	handoff_arm(h, min_u64(HELLO_READ_MS, remaining(h)), false);
	return H_N_HELLO;
}

static enum hstate
a_n_hello(struct handoff *h)
{
	const struct msg *m = h->cur;
	struct msg ack = { .type = MSG_HELLO_ACK };
	struct msg prep = { .type = MSG_PREPARE_HANDOFF };
	uint16_t v;
	int xfer_n;

	if (strcmp(m->u.HELLO.role, "successor") != 0)
		return begin_abort(h, "successor hello with role %s",
		    m->u.HELLO.role);
	if ((pid_t)m->u.HELLO.pid != h->n_pid)
		return begin_abort(h, "successor hello from pid %u, spawned %d",
		    m->u.HELLO.pid, (int)h->n_pid);
	if (proto_negotiate(PROTO_VERSION_MIN, PROTO_VERSION_MAX,
	    m->u.HELLO.proto_min, m->u.HELLO.proto_max, &v) < 0)
		return begin_abort(h, "no common protocol version with the "
		    "successor");
	ack.u.HELLO_ACK.proto_version = v;
	ack.u.HELLO_ACK.handoff_id = h->id;
	xfer_n = xfer_pair(h, m);
	send_fd(h, h->n, &ack, xfer_n);
	if (xfer_n >= 0)
		close(xfer_n);
	h->res.spawn_ms = lap(h);
	CRASHPOINT(s_after_n_hello);
	if (journal(h, "draining") < 0)
		return begin_abort(h, "cannot write the journal");
	prep.u.PREPARE_HANDOFF.handoff_id = h->id;
	prep.u.PREPARE_HANDOFF.successor_pid = (uint32_t)h->n_pid;
	prep.u.PREPARE_HANDOFF.deadline_ms = remaining(h);
	prep.u.PREPARE_HANDOFF.drain_grace_ms = h->p.drain_grace_ms;
	send_fd(h, h->o, &prep, h->xfer_o);
	handoff_close_xfer(h);
	CRASHPOINT(s_after_prepare_sent);
	handoff_arm(h, min_u64(h->p.drain_grace_ms, remaining(h)) +
	    WIRE_SLACK_MS, true);
	return H_DRAIN;
}

static enum hstate
a_drained(struct handoff *h)
{
	struct msg m = { .type = MSG_SEAL_REQUEST };

	if (strcmp(h->cur->u.DRAINED.handoff_id, h->id) != 0)
		return a_bad(h);
	h->res.drain_ms = lap(h);
	CRASHPOINT(s_after_drained_recv);
	if (journal(h, "sealing") < 0)
		return begin_abort(h, "cannot write the journal");
	m.u.SEAL_REQUEST.handoff_id = h->id;
	send_to(h, h->o, &m);
	CRASHPOINT(s_after_seal_request_sent);
	handoff_arm(h, remaining(h) + WIRE_SLACK_MS, true);
	return H_SEAL;
}

static enum hstate
send_begin(struct handoff *h)
{
	struct msg m = { .type = MSG_BEGIN };

	m.u.BEGIN.handoff_id = h->id;
	m.u.BEGIN.state_seq = h->promoted ? 0 : h->seal_seq;
	m.u.BEGIN.state_digest.p = h->seal_digest;
	m.u.BEGIN.state_digest.len = h->promoted ? 0 : h->seal_len;
	send_to(h, h->n, &m);
	/*
	 * Recorded after the send, out of the time nobody accepts: the
	 * record names no process the last one did not (recovery adopts
	 * whoever holds the lock).  A journal that cannot be written still
	 * aborts, as a successor lost after BEGIN does.
	 */
	if (journal(h, "beginning") < 0)
		return begin_abort(h, "cannot write the journal");
	CRASHPOINT(s_after_begin_sent);
	handoff_arm(h, remaining(h) + WIRE_SLACK_MS, true);
	return H_BEGIN;
}

static enum hstate
a_seal_complete(struct handoff *h)
{
	const struct msg *m = h->cur;

	if (strcmp(m->u.SEAL_COMPLETE.handoff_id, h->id) != 0)
		return a_bad(h);
	h->seal_seq = m->u.SEAL_COMPLETE.state_seq;
	h->seal_len = m->u.SEAL_COMPLETE.state_digest.len;
	if (h->seal_len > sizeof(h->seal_digest))
		return a_bad(h);
	memcpy(h->seal_digest, m->u.SEAL_COMPLETE.state_digest.p, h->seal_len);
	h->res.seal_ms = lap(h);
	CRASHPOINT(s_after_seal_complete_recv);
	return send_begin(h);
}

static enum hstate
a_seal_failed(struct handoff *h)
{
	return begin_abort(h, "seal failed: %s", h->cur->u.SEAL_FAILED.error);
}

/* The incumbent is gone after PREPARE: the successor takes what is on disk. */
static enum hstate
a_promote(struct handoff *h)
{
	h->o_alive = false;
	h->promoted = true;
	log_warn("handoff.promote", "incumbent died mid-handoff; promoting the "
	    "successor", "handoff_id=%s phase=%s", h->id, state_names[h->st]);
	if (h->st == H_DRAIN)
		h->res.drain_ms = lap(h);
	else
		h->res.seal_ms = lap(h);
	return send_begin(h);
}

/*
 * O's connection closed after PREPARE.  A crashed incumbent exits right
 * after; one that is alive (its own deadline passed, or it rejected a
 * frame) resumes serving by itself, and must not be fought for the lock.
 */
static enum hstate
a_o_eof(struct handoff *h)
{
	h->lost_in = h->st;
	handoff_arm(h, O_LOST_MS, false);
	return H_O_LOST;
}

static enum hstate
a_o_lost_exit(struct handoff *h)
{
	h->st = h->lost_in;
	return a_promote(h);
}

static enum hstate
a_o_lost_alive(struct handoff *h)
{
	return begin_abort(h, "incumbent disconnected in %s but lives on; it "
	    "resumes by itself", state_names[h->lost_in]);
}

/*
 * The BEGIN phase's timer.  A successor that holds the lock may already
 * have answered clients: aborting it now would throw away nothing (the
 * table is durable) but would kill the only process serving.  So the
 * deadline rolls forward while it shows signs of life (heartbeats), and
 * only a successor silent for the whole liveness period is given up.
 */
static enum hstate
a_begin_timeout(struct handoff *h)
{
	uint64_t now = clock_mono_ms();
	pid_t holder = 0;

	if (now >= h->live_at)
		return begin_abort(h, "successor silent for %d ms in begin%s",
		    LIVENESS_MS, h->forward ? " while holding the lock" : "");
	if (h->n_alive && !handoff_ht_bits &&
	    lock_probe(h->env.state_dir, &holder) == 1 && holder == h->n_pid) {
		if (!h->forward)
			log_warn("handoff.roll_forward", "deadline passed, but "
			    "the successor holds the lock: waiting for READY "
			    "while it shows signs of life", "handoff_id=%s "
			    "pid=%d", h->id, (int)h->n_pid);
		h->forward = true;
		h->phase_at = UINT64_MAX;
		handoff_schedule(h, now);
		return H_BEGIN;
	}
	return a_timeout(h);
}

static enum hstate
a_o_gone_waiting(struct handoff *h)
{
	/* Sealed: the lock is free and BEGIN is out; READY still decides. */
	h->o_alive = false;
	return h->st;
}

static enum hstate
a_o_gone_early(struct handoff *h)
{
	h->o_alive = false;
	return begin_abort(h, "incumbent went away in %s", state_names[h->st]);
}

static enum hstate
a_ready(struct handoff *h)
{
	const struct msg *m = h->cur;
	struct msg c = { .type = MSG_COMMIT };
	bool match;

	if (strcmp(m->u.READY.handoff_id, h->id) != 0)
		return a_bad(h);
	h->res.begin_ms = lap(h);
	CRASHPOINT(s_after_ready_recv);
	match = h->promoted || (m->u.READY.state_seq == h->seal_seq &&
	    m->u.READY.state_digest.len == h->seal_len &&
	    memcmp(m->u.READY.state_digest.p, h->seal_digest, h->seal_len) == 0);
	if (!m->u.READY.healthz_ok || !match)
		return begin_abort(h, "successor state does not match the sealed "
		    "state (seq %" PRIu64 " vs %" PRIu64 ")",
		    m->u.READY.state_seq, h->seal_seq);
	/* No way back from here: the successor serves.  A journal that
	 * cannot be written is logged; recovery adopts the lock holder. */
	(void)journal(h, "committing");
	procwatch_stop(h->n_watch);
	h->n_watch = NULL;
	if (!handoff_ht_bits)
		h->env.serving_cb(h->n_pid, h->binary, h->env.data);
	h->res.new_pid = h->n_pid;
	if (!h->o_alive)
		return finish(h, true);
	c.u.COMMIT.handoff_id = h->id;
	send_to(h, h->o, &c);
	CRASHPOINT(s_after_commit_sent);
	handoff_arm(h, COMMIT_EXIT_MS, false);
	return H_COMMIT;
}

static enum hstate
a_commit_o_exit(struct handoff *h)
{
	h->o_alive = false;
	h->res.commit_ms = lap(h);
	return finish(h, true);
}

static enum hstate
a_commit_timeout(struct handoff *h)
{
	log_warn("handoff.commit_slow", "incumbent did not exit after COMMIT; "
	    "killing it", "handoff_id=%s pid=%d", h->id, (int)h->o_pid);
	signal_proc(h, h->o_watch, h->o_pid, SIGKILL);
	h->res.commit_ms = lap(h);
	return finish(h, true);
}

static enum hstate
resume_incumbent(struct handoff *h)
{
	struct msg m = { .type = MSG_RESUME_AFTER_ABORT };

	if (!h->o_alive || !h->o)
		return finish(h, false);
	(void)journal(h, "resuming");
	m.u.RESUME_AFTER_ABORT.handoff_id = h->id;
	send_to(h, h->o, &m);
	handoff_arm(h, RESUME_MS, false);
	return H_RESUME;
}

static enum hstate
a_n_exited(struct handoff *h)
{
	h->n_alive = false;
	return resume_incumbent(h);
}

static enum hstate
a_kill_timeout(struct handoff *h)
{
	log_warn("handoff.kill", "successor ignored SIGTERM; SIGKILL",
	    "handoff_id=%s pid=%d", h->id, (int)h->n_pid);
	signal_proc(h, h->n_watch, h->n_pid, SIGKILL);
	handoff_arm(h, HELLO_READ_MS, false);
	return H_KILL_N;
}

static enum hstate
a_n_lost(struct handoff *h)
{
	char why[200];

	return begin_abort(h, "successor went away in %s: %s",
	    state_names[h->st], agentlog_describe(h->n_pid, why, sizeof(why)));
}

static enum hstate
a_resumed(struct handoff *h)
{
	return finish(h, false);
}

static enum hstate
a_resume_o_lost(struct handoff *h)
{
	h->o_alive = false;
	return finish(h, false);
}

static enum hstate
a_resume_timeout(struct handoff *h)
{
	log_error("handoff.resume_timeout", "incumbent did not confirm resume; "
	    "killing it so a fresh agent can start", "handoff_id=%s pid=%d",
	    h->id, (int)h->o_pid);
	signal_proc(h, h->o_watch, h->o_pid, SIGKILL);
	return finish(h, false);
}

/*
 * The table.  Rows: states; columns: events in enum order
 *  o-hello n-hello drained seal-cmp seal-fail ready resumed alive
 *  o-eof o-exit n-eof n-exit timeout bad
 */
#define ROW(a, b, c, d, e, f, g, i, j, k, l, m, n, o) \
	{ a, b, c, d, e, f, g, i, j, k, l, m, n, o }
const action_fn handoff_cells[H_NSTATES][EV_NEVENTS] = {
	[H_O_HELLO] = ROW(a_o_hello, a_bad, a_bad, a_bad, a_bad, a_bad, a_bad,
	    a_ignore, a_o_gone_early, a_o_gone_early, a_ignore, a_ignore,
	    a_timeout, a_bad),
	[H_N_HELLO] = ROW(a_bad, a_n_hello, a_bad, a_bad, a_bad, a_bad, a_bad,
	    a_ignore, a_o_gone_early, a_o_gone_early, a_n_lost, a_n_lost,
	    a_timeout, a_bad),
	[H_DRAIN] = ROW(a_bad, a_bad, a_drained, a_bad, a_bad, a_bad, a_bad,
	    a_ignore, a_o_eof, a_promote, a_n_lost, a_n_lost, a_timeout,
	    a_bad),
	[H_SEAL] = ROW(a_bad, a_bad, a_bad, a_seal_complete, a_seal_failed,
	    a_bad, a_bad, a_ignore, a_o_eof, a_promote, a_n_lost, a_n_lost,
	    a_timeout, a_bad),
	[H_BEGIN] = ROW(a_bad, a_bad, a_bad, a_bad, a_bad, a_ready, a_bad,
	    a_ignore, a_o_gone_waiting, a_o_gone_waiting, a_n_lost, a_n_lost,
	    a_begin_timeout, a_bad),
	[H_COMMIT] = ROW(a_ignore, a_ignore, a_ignore, a_ignore, a_ignore,
	    a_ignore, a_ignore, a_ignore, a_ignore, a_commit_o_exit, a_ignore,
	    a_ignore, a_commit_timeout, a_ignore),
	[H_KILL_N] = ROW(a_ignore, a_ignore, a_ignore, a_ignore, a_ignore,
	    a_ignore, a_ignore, a_ignore, a_o_gone_waiting, a_o_gone_waiting,
	    a_ignore, a_n_exited, a_kill_timeout, a_ignore),
	[H_RESUME] = ROW(a_ignore, a_ignore, a_ignore, a_ignore, a_ignore,
	    a_ignore, a_resumed, a_ignore, a_resume_o_lost, a_resume_o_lost,
	    a_ignore, a_ignore, a_resume_timeout, a_ignore),
	[H_O_LOST] = ROW(a_ignore, a_ignore, a_ignore, a_ignore, a_ignore,
	    a_ignore, a_ignore, a_ignore, a_ignore, a_o_lost_exit, a_n_lost,
	    a_n_lost, a_o_lost_alive, a_ignore),
	[H_DONE] = ROW(a_ignore, a_ignore, a_ignore, a_ignore, a_ignore,
	    a_ignore, a_ignore, a_ignore, a_ignore, a_ignore, a_ignore,
	    a_ignore, a_ignore, a_ignore),
};
#undef ROW

/* ---- abort and finish ---- */

static enum hstate
begin_abort(struct handoff *h, const char *fmt, ...)
{
	struct msg m = { .type = MSG_ABORT };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->res.abort_reason, sizeof(h->res.abort_reason), fmt, ap);
	va_end(ap);
	log_warn("handoff.abort", h->res.abort_reason, "handoff_id=%s phase=%s",
	    h->id, state_names[h->st]);
	(void)journal(h, "aborting");
	if (!h->n_alive)
		return resume_incumbent(h);
	m.u.ABORT.handoff_id = h->id;
	m.u.ABORT.reason = h->res.abort_reason;
	send_to(h, h->n, &m);
	signal_proc(h, h->n_watch, h->n_pid, SIGTERM);
	handoff_arm(h, KILL_GRACE_MS, false);
	return H_KILL_N;
}

/* A successor that died before READY may leave its temporary socket. */
static void
unlink_successor_socket(const struct handoff_env *env, pid_t pid)
{
	char p[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s.tmp.%d", env->agent_socket, (int)pid);
	(void)unlink(p);
}

static void
detach_conn(struct conn **c)
{
	if (!*c)
		return;
	conn_set_data(*c, NULL);
	conn_close_after_flush(*c);
	*c = NULL;
}

static enum hstate
finish(struct handoff *h, bool committed)
{
	int r;

	if (handoff_ht_bits) {
		HT(committed ? HT_COMMITTED : HT_ROLLED_BACK);
		return H_DONE;
	}
	h->res.committed = committed;
	h->res.promoted = h->promoted;
	h->res.total_ms = clock_mono_ms() - h->t0;
	if (!committed)
		h->res.new_pid = 0;
	snprintf(h->res.new_binary, sizeof(h->res.new_binary), "%s", h->binary);
	uv_timer_stop(&h->timer);
	detach_conn(&h->o);
	detach_conn(&h->n);
	if (!committed && h->n_pid > 0)
		unlink_successor_socket(&h->env, h->n_pid);
	procwatch_stop(h->n_watch);
	h->n_watch = NULL;
	procwatch_stop(h->o_watch);
	h->o_watch = NULL;
	snprintf(h->jr.phase, sizeof(h->jr.phase), "%s",
	    committed ? "committed" : "rolled-back");
	/* Neither waits for the disk either (journal()). */
	r = journal_note(h->env.last_handoff, &h->jr);
	if (r < 0)
		log_warn("journal.write", proto_strerror(r), "path=%s",
		    h->env.last_handoff);
	r = journal_drop(h->env.journal);
	if (r < 0)
		log_error("journal.clear", proto_strerror(r), "path=%s",
		    h->env.journal);
	CRASHPOINT(s_after_journal_clear);
	log_info(committed ? "handoff.committed" : "handoff.rolled_back",
	    committed ? NULL : h->res.abort_reason,
	    "handoff_id=%s old_pid=%d new_pid=%d total_ms=%" PRIu64
	    " drain_ms=%" PRIu64 " seal_ms=%" PRIu64 " begin_ms=%" PRIu64,
	    h->id, (int)h->o_pid, (int)h->res.new_pid, h->res.total_ms,
	    h->res.drain_ms, h->res.seal_ms, h->res.begin_ms);
	return H_DONE;
}

/* ---- the table, for handoff.h and its tests ---- */

const char *
handoff_phase(const struct handoff *h)
{
	return state_names[h->st];
}

unsigned
handoff_nstates(void)
{
	return H_NSTATES;
}

unsigned
handoff_nevents(void)
{
	return EV_NEVENTS;
}

const char *
handoff_state_name(unsigned st)
{
	return st < H_NSTATES ? state_names[st] : NULL;
}

const char *
handoff_event_name(unsigned ev)
{
	return ev < EV_NEVENTS ? event_names[ev] : NULL;
}

bool
handoff_cell_defined(unsigned st, unsigned ev)
{
	return st < H_NSTATES && ev < EV_NEVENTS &&
	    handoff_cells[st][ev] != NULL;
}
