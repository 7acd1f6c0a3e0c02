/*
 * handoff: one handoff, driven by events on the supervisor's loop.
 *
 * The behaviour is the table `cells` below: for every state and every
 * event one action, written out, so a reader (and a test) can see every
 * case.  Actions return the next state.
 *
 * Invariants kept here:
 * - the successor is spawned with PDEATHSIG until it gets BEGIN, and is
 *   killed (SIGTERM, grace, SIGKILL) and reaped before the incumbent is
 *   told to resume, so the lock is free when the incumbent retakes it;
 * - once READY with a matching state has arrived there is no rollback:
 *   the successor serves and becomes the supervisor's agent;
 * - if the incumbent dies after PREPARE, the successor is promoted
 *   (BEGIN with an empty digest: adopt what is on disk), never nobody;
 * - roll forward: once the successor holds the data-dir lock it may have
 *   answered clients, so an expired deadline does not abort it while it
 *   shows signs of life; only a successor silent for the liveness period
 *   is killed (and then the incumbent or a cold start reloads the table
 *   from disk, where every acknowledged change already is);
 * - a timer never acts before the frames already waiting in the sockets
 *   are read, and timers count from the current time, not libuv's cached
 *   loop time (stale after any blocking call, a stall, an fsync);
 * - a journal record that guards a recovery decision and cannot be
 *   written aborts the handoff before the step it guards;
 * - every phase is in the journal before the step it guards, and the
 *   journal is cleared (last outcome kept) when the handoff ends.
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
#include <uuid.h>

#include "common/clock.h"
#include "transport/conn.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/spawn.h"
#include "crashpoints/crashpoint.h"
#include "transport/wire.h"
#include "supervisor/agentlog.h"
#include "supervisor/handoff.h"
#include "supervisor/journal.h"
#include "supervisor/procwatch.h"
#include "supervisor/sup.h"

#define HELLO_READ_MS		5000
#define LIVENESS_MS		10000
#define WIRE_SLACK_MS		1000
#define READ_FLOOR_MS		100
#define COMMIT_EXIT_MS		10000
#define KILL_GRACE_MS		2000
#define RESUME_MS		10000
#define O_LOST_MS		1000	/* EOF to exit of a dying incumbent */
#define XFER_CAPABILITY		"conn-move"	/* HELLO: moves connections */

enum hstate {
	H_O_HELLO,	/* connected to O, waiting for its HELLO */
	H_N_HELLO,	/* N spawned, waiting for its HELLO */
	H_DRAIN,	/* PREPARE sent, waiting for DRAINED */
	H_SEAL,		/* SEAL_REQUEST sent, waiting for SEAL_COMPLETE */
	H_BEGIN,	/* BEGIN sent, waiting for READY */
	H_COMMIT,	/* COMMIT sent, waiting for O to exit */
	H_KILL_N,	/* aborting: waiting for N to exit */
	H_RESUME,	/* RESUME_AFTER_ABORT sent, waiting for RESUMED */
	H_O_LOST,	/* O's connection closed in drain/seal: dead or alive? */
	H_DONE,
	H_NSTATES
};

static const char *const state_names[] = {
	"o-hello", "n-hello", "drain", "seal", "begin", "commit", "kill-n",
	"resume", "o-lost", "done",
};

enum hevent {
	EV_O_HELLO, EV_N_HELLO, EV_DRAINED, EV_SEAL_COMPLETE, EV_SEAL_FAILED,
	EV_READY, EV_RESUMED,
	EV_ALIVE,	/* HEARTBEAT, SEAL_PROGRESS: liveness only */
	EV_O_EOF, EV_O_EXIT, EV_N_EOF, EV_N_EXIT,
	EV_TIMEOUT,
	EV_BAD,		/* unexpected, wrong id/pid, ERROR from a peer */
	EV_NEVENTS
};

static const char *const event_names[] = {
	"o-hello", "n-hello", "drained", "seal-complete", "seal-failed",
	"ready", "resumed", "alive", "o-eof", "o-exit", "n-eof", "n-exit",
	"timeout", "bad",
};

struct handoff {
	struct sup *sup;
	enum hstate st;
	char id[40];
	struct handoff_params p;
	char binary[PATH_MAX];
	const char *args[SUP_MAX_ARGS];
	const char *env[SUP_MAX_ENV];
	char *strs;			/* copies of args/env */

	struct conn *o, *n;
	pid_t o_pid, n_pid;
	struct procwatch *n_watch, *o_watch;
	bool o_alive, n_alive, promoted;
	bool forward;			/* deadline passed, N holds the lock */
	bool o_moves;			/* O can move its connections */
	int xfer_o;			/* O's end of the move channel, or -1 */
	enum hstate lost_in;		/* where O's EOF came, for H_O_LOST */

	uint64_t t0, deadline_at, phase_at, live_at, t_phase;
	uv_timer_t timer;
	bool timer_init;

	uint64_t seal_seq;
	uint8_t seal_digest[64];
	uint32_t seal_len;

	const struct msg *cur;		/* the frame being handled */
	struct journal_rec jr;
	struct handoff_result res;
};

typedef enum hstate (*action_fn)(struct handoff *h);

/*
 * Test mode (handoff_test_step(), tests/unit/handoff_hook.h): while set,
 * the actions record what they would do here (HT_* bits) instead of
 * sending, spawning, signalling, journaling or arming timers.
 */
static unsigned *ht_bits;
#define HT(bit) (*ht_bits |= (bit))
#define HT_HELLO_ACK	(1u << 0)
#define HT_SPAWN_N	(1u << 1)
#define HT_PREPARE	(1u << 2)
#define HT_SEAL		(1u << 3)
#define HT_BEGIN	(1u << 4)
#define HT_PROMOTE	(1u << 5)
#define HT_COMMIT	(1u << 6)
#define HT_ABORT_N	(1u << 7)
#define HT_KILL_N	(1u << 8)
#define HT_RESUME	(1u << 9)
#define HT_KILL_O	(1u << 10)
#define HT_COMMITTED	(1u << 11)
#define HT_ROLLED_BACK	(1u << 12)

static enum hstate begin_abort(struct handoff *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum hstate finish(struct handoff *h, bool committed);

/* ---- helpers ---- */

static int
journal(struct handoff *h, const char *phase)
{
	int r;

	snprintf(h->jr.phase, sizeof(h->jr.phase), "%s", phase);
	h->jr.successor_pid = h->n_pid;
	if (ht_bits)
		return 0;
	r = journal_write(h->sup->cfg->paths.journal, &h->jr);
	if (r < 0)
		log_error("journal.write", proto_strerror(r), "handoff_id=%s "
		    "phase=%s path=%s", h->id, phase, h->sup->cfg->paths.journal);
	return r;
}

/* Signal a process of this handoff through its pidfd (no pid reuse). */
static void
signal_proc(struct handoff *h, struct procwatch *w, pid_t pid, int sig)
{
	int r;

	if (ht_bits) {
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

static void timer_cb(uv_timer_t *t);

/* Fire the timer at the earlier of the phase deadline and liveness. */
static void
schedule(struct handoff *h, uint64_t now)
{
	uint64_t at = h->phase_at < h->live_at ? h->phase_at : h->live_at;

	if (ht_bits)
		return;
	/* libuv counts from its cached loop time: make it now. */
	uv_update_time(h->sup->loop);
	uv_timer_start(&h->timer, timer_cb, at > now ? at - now : 0, 0);
}

/* Wait at most phase_ms for the phase; liveness resets on every frame. */
static void
arm(struct handoff *h, uint64_t phase_ms, bool liveness)
{
	uint64_t now = clock_mono_ms();

	h->phase_at = now + phase_ms;
	h->live_at = liveness ? now + LIVENESS_MS : UINT64_MAX;
	schedule(h, now);
}

static void
touch(struct handoff *h)
{
	uint64_t now = clock_mono_ms();

	if (h->live_at == UINT64_MAX)
		return;
	h->live_at = now + LIVENESS_MS;
	schedule(h, now);
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
	if (ht_bits) {
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

static void
close_xfer(struct handoff *h)
{
	if (h->xfer_o >= 0)
		close(h->xfer_o);
	h->xfer_o = -1;
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

	if (!h->o_moves || !has_capability(n_hello, XFER_CAPABILITY))
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		log_warn("handoff.xfer", strerror(errno), "handoff_id=%s; "
		    "connections will not move", h->id);
		return -1;
	}
	close_xfer(h);
	h->xfer_o = sp[0];
	return sp[1];
}

static void n_exit_cb(struct procwatch *w, pid_t pid, void *data);
static void n_frame_cb(struct conn *c, struct frame *f, void *data);
static void n_close_cb(struct conn *c, int err, void *data);
static void dispatch(struct handoff *h, enum hevent ev, const struct msg *m);

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

static int
spawn_successor(struct handoff *h)
{
	struct sup *s = h->sup;
	struct conn_opts opts = { .max_body = 65536, .errstyle = CONN_ERR_CONTROL };
	static char fake_conn;
	const char *argv[SUP_MAX_ARGS + 4];
	const char *envx[SUP_MAX_ENV + 3];
	const char *names[LISTENFDS_MAX];
	char dl[48];
	int sp[2] = { -1, -1 }, r;
	unsigned i, k = 0;
	pid_t pid;

	if (ht_bits) {
		HT(HT_SPAWN_N);
		h->n_pid = 2002;
		h->n_alive = true;
		h->n = (struct conn *)&fake_conn;
		return 0;
	}
	sup_agent_argv(s, h->binary, h->p.args, h->p.nargs, argv, names);
	envx[k++] = "HANDOFF_ROLE=successor";
	snprintf(dl, sizeof(dl), "HANDOFF_DEADLINE_MS=%" PRIu64, h->p.deadline_ms);
	envx[k++] = dl;
	for (i = 0; i < h->p.nenv; i++)
		envx[k++] = h->p.env[i];
	envx[k] = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	pid = agentlog_spawn(s->loop, &(struct spawn_opts){
		.path = h->binary,
		.argv = argv,
		.env_extra = envx,
		.env_drop = sup_env_drop,
		.listen_fds = s->lfds,
		.listen_names = names,
		.n_listen = s->nl,
		.extra_fd = sp[1],
		.extra_fd_env = "HANDOFF_SOCK_FD",
		.pdeathsig = SIGKILL,
	});
	close(sp[1]);
	if (pid < 0) {
		close(sp[0]);
		return (int)pid;
	}
	h->n_pid = pid;
	h->n_alive = true;
	r = procwatch_start(s->loop, pid, n_exit_cb, h, &h->n_watch);
	if (r < 0)
		log_warn("handoff.watch", proto_strerror(r), "pid=%d", (int)pid);
	return conn_open(s->loop, sp[0], &opts, n_frame_cb, n_close_cb, h,
	    &h->n);
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
	h->o_moves = has_capability(m, XFER_CAPABILITY);
	send_to(h, h->o, &ack);
	h->res.hello_ms = lap(h);
	CRASHPOINT(s_after_o_hello);
	/* The successor's pid is journaled once known ("negotiating"). */
	if (journal(h, "spawning") < 0)
		return begin_abort(h, "cannot write the journal");
	r = spawn_successor(h);
	if (r < 0)
		return begin_abort(h, "spawn %s: %s", h->binary, proto_strerror(r));
	CRASHPOINT(s_after_spawn_successor);
	if (journal(h, "negotiating") < 0)
		return begin_abort(h, "cannot write the journal");
	arm(h, min_u64(HELLO_READ_MS, remaining(h)), false);
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
	close_xfer(h);
	CRASHPOINT(s_after_prepare_sent);
	arm(h, (h->p.drain_grace_ms < remaining(h) ? h->p.drain_grace_ms :
	    remaining(h)) + WIRE_SLACK_MS, true);
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
	arm(h, remaining(h) + WIRE_SLACK_MS, true);
	return H_SEAL;
}

static enum hstate
send_begin(struct handoff *h)
{
	struct msg m = { .type = MSG_BEGIN };

	/* Recovery after our crash adopts whoever holds the lock: a record
	 * that cannot be written only costs the outcome's label, but stop
	 * here anyway, before the successor takes the lock. */
	if (journal(h, "beginning") < 0)
		return begin_abort(h, "cannot write the journal");
	m.u.BEGIN.handoff_id = h->id;
	m.u.BEGIN.state_seq = h->promoted ? 0 : h->seal_seq;
	m.u.BEGIN.state_digest.p = h->seal_digest;
	m.u.BEGIN.state_digest.len = h->promoted ? 0 : h->seal_len;
	send_to(h, h->n, &m);
	CRASHPOINT(s_after_begin_sent);
	arm(h, remaining(h) + WIRE_SLACK_MS, true);
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
	arm(h, O_LOST_MS, false);
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
	if (h->n_alive && !ht_bits && lock_probe(h->sup->cfg->paths.state_dir,
	    &holder) == 1 && holder == h->n_pid) {
		if (!h->forward)
			log_warn("handoff.roll_forward", "deadline passed, but "
			    "the successor holds the lock: waiting for READY "
			    "while it shows signs of life", "handoff_id=%s "
			    "pid=%d", h->id, (int)h->n_pid);
		h->forward = true;
		h->phase_at = UINT64_MAX;
		schedule(h, now);
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
	if (!ht_bits)
		sup_set_agent(h->sup, h->n_pid, h->binary);
	h->res.new_pid = h->n_pid;
	if (!h->o_alive)
		return finish(h, true);
	c.u.COMMIT.handoff_id = h->id;
	send_to(h, h->o, &c);
	CRASHPOINT(s_after_commit_sent);
	arm(h, COMMIT_EXIT_MS, false);
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
	arm(h, RESUME_MS, false);
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
	arm(h, HELLO_READ_MS, false);
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
static const action_fn cells[H_NSTATES][EV_NEVENTS] = {
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
	arm(h, KILL_GRACE_MS, false);
	return H_KILL_N;
}

/* A successor that died before READY may leave its temporary socket. */
static void
unlink_successor_socket(struct sup *s, pid_t pid)
{
	char p[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s.tmp.%d", s->cfg->paths.agent_socket, (int)pid);
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
	struct sup *s = h->sup;
	int r;

	if (ht_bits) {
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
		unlink_successor_socket(s, h->n_pid);
	procwatch_stop(h->n_watch);
	h->n_watch = NULL;
	procwatch_stop(h->o_watch);
	h->o_watch = NULL;
	snprintf(h->jr.phase, sizeof(h->jr.phase), "%s",
	    committed ? "committed" : "rolled-back");
	r = journal_write(s->cfg->paths.last_handoff, &h->jr);
	if (r < 0)
		log_warn("journal.write", proto_strerror(r), "path=%s",
		    s->cfg->paths.last_handoff);
	r = journal_clear(s->cfg->paths.journal);
	if (r < 0)
		log_error("journal.clear", proto_strerror(r), "path=%s",
		    s->cfg->paths.journal);
	CRASHPOINT(s_after_journal_clear);
	log_info(committed ? "handoff.committed" : "handoff.rolled_back",
	    committed ? NULL : h->res.abort_reason,
	    "handoff_id=%s old_pid=%d new_pid=%d total_ms=%" PRIu64
	    " drain_ms=%" PRIu64 " seal_ms=%" PRIu64 " begin_ms=%" PRIu64,
	    h->id, (int)h->o_pid, (int)h->res.new_pid, h->res.total_ms,
	    h->res.drain_ms, h->res.seal_ms, h->res.begin_ms);
	return H_DONE;
}

static void
timer_closed_cb(uv_handle_t *t)
{
	struct handoff *h = t->data;

	close_xfer(h);
	free(h->strs);
	free(h);
}

static void
dispatch(struct handoff *h, enum hevent ev, const struct msg *m)
{
	enum hstate prev = h->st;

	if (h->st == H_DONE)
		return;
	h->cur = m;
	h->st = cells[h->st][ev](h);
	h->cur = NULL;
	if (h->st != prev)
		log_debug("handoff.step", NULL, "handoff_id=%s from=%s event=%s "
		    "to=%s", h->id, state_names[prev], event_names[ev],
		    state_names[h->st]);
	if (h->st == H_DONE && !ht_bits) {
		struct handoff_result res = h->res;
		struct sup *s = h->sup;

		s->handoff = NULL;
		uv_close((uv_handle_t *)&h->timer, timer_closed_cb);
		sup_handoff_done(s, &res);
	}
}

/* ---- event sources ---- */

/* Frames read ahead of a timer: enough for any backlog of heartbeats. */
#define READ_AHEAD_FRAMES	1024

static void
timer_cb(uv_timer_t *t)
{
	struct handoff *h = t->data;
	enum hstate st = h->st;

	/*
	 * A READY (or DRAINED, SEAL_COMPLETE) may already wait in a socket,
	 * e.g. after this process was stopped past the deadline: what the
	 * peers said before the timer fired decides first.
	 */
	if (h->n)
		(void)conn_read_now(h->n, READ_AHEAD_FRAMES);
	if (h->st == st && h->o)
		(void)conn_read_now(h->o, READ_AHEAD_FRAMES);
	if (h->st != st || h->st == H_DONE ||
	    uv_is_active((uv_handle_t *)&h->timer))
		return;	/* moved on, or a frame re-armed the timer */
	dispatch(h, EV_TIMEOUT, NULL);
}

static enum hevent
classify(const struct msg *m, bool from_o)
{
	switch (m->type) {
	case MSG_HELLO:
		return from_o ? EV_O_HELLO : EV_N_HELLO;
	case MSG_DRAINED:
		return from_o ? EV_DRAINED : EV_BAD;
	case MSG_SEAL_COMPLETE:
		return from_o ? EV_SEAL_COMPLETE : EV_BAD;
	case MSG_SEAL_FAILED:
		return from_o ? EV_SEAL_FAILED : EV_BAD;
	case MSG_RESUMED:
		return from_o ? EV_RESUMED : EV_BAD;
	case MSG_READY:
		return from_o ? EV_BAD : EV_READY;
	case MSG_HEARTBEAT:
		return EV_ALIVE;
	case MSG_SEAL_PROGRESS:
		return from_o ? EV_ALIVE : EV_BAD;
	default:
		return EV_BAD;
	}
}

static void
o_frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct handoff *h = data;

	(void)c;
	if (h) {
		touch(h);
		dispatch(h, classify(&f->m, true), &f->m);
	}
	frame_release(f);
}

static void
o_close_cb(struct conn *c, int err, void *data)
{
	struct handoff *h = data;

	(void)c;
	if (!h)
		return;
	h->o = NULL;
	log_debug("handoff.o_eof", err ? proto_strerror(err) : NULL,
	    "handoff_id=%s", h->id);
	dispatch(h, EV_O_EOF, NULL);
}

static void
n_frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct handoff *h = data;

	(void)c;
	if (h) {
		touch(h);
		dispatch(h, classify(&f->m, false), &f->m);
	}
	frame_release(f);
}

static void
n_close_cb(struct conn *c, int err, void *data)
{
	struct handoff *h = data;

	(void)c;
	if (!h)
		return;
	h->n = NULL;
	log_debug("handoff.n_eof", err ? proto_strerror(err) : NULL,
	    "handoff_id=%s", h->id);
	dispatch(h, EV_N_EOF, NULL);
}

static void
n_exit_cb(struct procwatch *w, pid_t pid, void *data)
{
	struct handoff *h = data;

	(void)pid;
	procwatch_stop(w);
	h->n_watch = NULL;
	h->n_alive = false;
	dispatch(h, EV_N_EXIT, NULL);
}

static void
o_exit_cb(struct procwatch *w, pid_t pid, void *data)
{
	struct handoff *h = data;

	(void)pid;
	procwatch_stop(w);
	h->o_watch = NULL;
	h->o_alive = false;
	dispatch(h, EV_O_EXIT, NULL);
}

/* ---- start ---- */

static int
copy_params(struct handoff *h, const struct handoff_params *p)
{
	size_t need = 0, off = 0;
	unsigned i;

	if (p->nargs > SUP_MAX_ARGS - 4 || p->nenv > SUP_MAX_ENV)
		return -E2BIG;
	if (snprintf(h->binary, sizeof(h->binary), "%s", p->binary) >=
	    (int)sizeof(h->binary))
		return -ENAMETOOLONG;
	for (i = 0; i < p->nargs; i++)
		need += strlen(p->args[i]) + 1;
	for (i = 0; i < p->nenv; i++)
		need += strlen(p->env[i]) + 1;
	h->strs = malloc(need + 1);
	if (!h->strs)
		return -ENOMEM;
	h->p = *p;
	for (i = 0; i < p->nargs; i++) {
		h->args[i] = strcpy(h->strs + off, p->args[i]);
		off += strlen(p->args[i]) + 1;
	}
	for (i = 0; i < p->nenv; i++) {
		h->env[i] = strcpy(h->strs + off, p->env[i]);
		off += strlen(p->env[i]) + 1;
	}
	h->p.binary = h->binary;
	h->p.args = h->args;
	h->p.env = h->env;
	return 0;
}

int
handoff_start(struct sup *s, const struct handoff_params *p,
    struct handoff **ret)
{
	struct conn_opts opts = { .max_body = 65536, .errstyle = CONN_ERR_CONTROL };
	struct handoff *h;
	uuid_t u;
	int fd, r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = copy_params(h, p);
	if (r < 0) {
		free(h->strs);
		free(h);
		return r;
	}
	uuid_generate_random(u);
	uuid_unparse_lower(u, h->id);
	h->sup = s;
	h->xfer_o = -1;
	h->o_pid = s->agent_pid;
	h->o_alive = true;
	h->t0 = h->t_phase = clock_mono_ms();
	h->deadline_at = h->t0 + p->deadline_ms;
	/* One non-blocking attempt: this runs on the supervisor's loop. */
	fd = wire_connect(s->cfg->paths.agent_socket, 0);
	if (fd == -ETIMEDOUT)
		fd = -EAGAIN;	/* backlog full: the caller may try again */
	if (fd < 0) {
		free(h->strs);
		free(h);
		return fd;
	}
	r = conn_open(s->loop, fd, &opts, o_frame_cb, o_close_cb, h, &h->o);
	if (r < 0) {
		free(h->strs);
		free(h);
		return r;
	}
	uv_timer_init(s->loop, &h->timer);
	h->timer.data = h;
	r = procwatch_start(s->loop, h->o_pid, o_exit_cb, h, &h->o_watch);
	if (r < 0)
		log_warn("handoff.watch", proto_strerror(r), "pid=%d",
		    (int)h->o_pid);
	snprintf(h->jr.handoff_id, sizeof(h->jr.handoff_id), "%s", h->id);
	h->jr.incumbent_pid = h->o_pid;
	snprintf(h->jr.incumbent_binary, sizeof(h->jr.incumbent_binary), "%s",
	    s->agent_binary);
	snprintf(h->jr.successor_binary, sizeof(h->jr.successor_binary), "%s",
	    h->binary);
	h->jr.started_at_ms = clock_wall_ms();
	snprintf(h->res.id, sizeof(h->res.id), "%s", h->id);
	h->res.old_pid = h->o_pid;
	h->st = H_O_HELLO;
	arm(h, min_u64(HELLO_READ_MS, p->deadline_ms), false);
	log_info("handoff.start", NULL, "handoff_id=%s incumbent_pid=%d "
	    "binary=%s deadline_ms=%" PRIu64, h->id, (int)h->o_pid, h->binary,
	    p->deadline_ms);
	*ret = h;
	return 0;
}

const char *
handoff_phase(const struct handoff *h)
{
	return state_names[h->st];
}

const char *
handoff_id(const struct handoff *h)
{
	return h->id;
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
	return st < H_NSTATES && ev < EV_NEVENTS && cells[st][ev] != NULL;
}

/*
 * The test hook (tests/unit/handoff_hook.h): one event on a fake
 * handoff in state st, with what st implies of its peers, and the HT_*
 * bits of what the table's action did.
 */
int handoff_test_step(unsigned st, unsigned ev, unsigned *next);

int
handoff_test_step(unsigned st, unsigned ev, unsigned *next)
{
	static char fake_o, fake_n;
	static uint8_t digest[32];
	struct handoff h;
	struct msg m;
	unsigned bits = 0;
	bool frame = true;

	if (st >= H_NSTATES || ev >= EV_NEVENTS)
		return -EINVAL;
	memset(&h, 0, sizeof(h));
	memset(&m, 0, sizeof(m));
	memset(digest, 0xab, sizeof(digest));
	snprintf(h.id, sizeof(h.id), "00000000-0000-4000-8000-000000000001");
	h.st = (enum hstate)st;
	h.p.deadline_ms = 300000;
	h.p.drain_grace_ms = 60000;
	h.t0 = h.t_phase = clock_mono_ms();
	h.deadline_at = h.t0 + h.p.deadline_ms;
	h.live_at = UINT64_MAX;
	h.o_pid = 1001;
	h.o_alive = st != H_DONE;
	h.o = st == H_O_LOST || st == H_DONE ? NULL : (struct conn *)&fake_o;
	if (st != H_O_HELLO && st != H_RESUME && st != H_DONE) {
		h.n_pid = 2002;
		h.n_alive = true;
		h.n = (struct conn *)&fake_n;
	}
	h.lost_in = H_DRAIN;
	h.seal_seq = 7;
	h.seal_len = sizeof(digest);
	memcpy(h.seal_digest, digest, sizeof(digest));
	switch (ev) {
	case EV_O_HELLO:
	case EV_N_HELLO:
		m.type = MSG_HELLO;
		m.u.HELLO.role = ev == EV_O_HELLO ? "incumbent" : "successor";
		m.u.HELLO.pid = (uint32_t)(ev == EV_O_HELLO ? h.o_pid :
		    (h.n_pid ? h.n_pid : 2002));
		m.u.HELLO.proto_min = PROTO_VERSION_MIN;
		m.u.HELLO.proto_max = PROTO_VERSION_MAX;
		if (ev == EV_N_HELLO && !h.n_pid)
			h.n_pid = 2002;
		break;
	case EV_DRAINED:
		m.type = MSG_DRAINED;
		m.u.DRAINED.handoff_id = h.id;
		break;
	case EV_SEAL_COMPLETE:
		m.type = MSG_SEAL_COMPLETE;
		m.u.SEAL_COMPLETE.handoff_id = h.id;
		m.u.SEAL_COMPLETE.state_seq = h.seal_seq;
		m.u.SEAL_COMPLETE.state_digest.p = digest;
		m.u.SEAL_COMPLETE.state_digest.len = sizeof(digest);
		break;
	case EV_SEAL_FAILED:
		m.type = MSG_SEAL_FAILED;
		m.u.SEAL_FAILED.handoff_id = h.id;
		m.u.SEAL_FAILED.error = "test";
		break;
	case EV_READY:
		m.type = MSG_READY;
		m.u.READY.handoff_id = h.id;
		m.u.READY.healthz_ok = true;
		m.u.READY.state_seq = h.seal_seq;
		m.u.READY.state_digest.p = digest;
		m.u.READY.state_digest.len = sizeof(digest);
		break;
	case EV_RESUMED:
		m.type = MSG_RESUMED;
		m.u.RESUMED.handoff_id = h.id;
		break;
	case EV_ALIVE:
		m.type = MSG_HEARTBEAT;
		break;
	case EV_BAD:
		m.type = MSG_ERROR;
		m.u.ERROR.code = "test";
		m.u.ERROR.message = "a peer's error";
		break;
	default:
		frame = false;	/* what the close and exit callbacks do first */
		if (ev == EV_O_EOF)
			h.o = NULL;
		else if (ev == EV_O_EXIT)
			h.o_alive = false;
		else if (ev == EV_N_EOF)
			h.n = NULL;
		else if (ev == EV_N_EXIT)
			h.n_alive = false;
		break;
	}
	ht_bits = &bits;
	dispatch(&h, (enum hevent)ev, frame ? &m : NULL);
	ht_bits = NULL;
	*next = h.st;
	return (int)bits;
}
