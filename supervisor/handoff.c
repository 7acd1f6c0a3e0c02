/*
 * handoff: one handoff as an object on its owner's loop: it is started
 * with an explicit environment (struct handoff_env: loop, paths,
 * listeners, incumbent, callbacks), turns frames, closes, exits and its
 * timer into events, and dispatches each through the table in
 * handoff_table.c.
 *
 * Invariants kept here:
 * - nothing here blocks the loop: the connect to the incumbent is one
 *   non-blocking attempt, everything after it is callbacks;
 * - a timer never acts before the frames already waiting in the sockets
 *   are read, and timers count from the current time, not libuv's cached
 *   loop time (stale after any blocking call, a stall, an fsync);
 * - every fd and process of a handoff is tracked in it (conns, pidfd
 *   watches) and released when it finishes; the owner hears of the end
 *   exactly once, through done_cb, after which the handoff is gone;
 * - the owner is reached only through the env's callbacks.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid.h>

#include "common/clock.h"
#include "common/log.h"
#include "transport/conn.h"
#include "transport/wire.h"
#include "supervisor/handoff_int.h"
#include "supervisor/procwatch.h"

unsigned *handoff_ht_bits;

static void timer_cb(uv_timer_t *t);
static void n_exit_cb(struct procwatch *w, pid_t pid, void *data);
static void n_frame_cb(struct conn *c, struct frame *f, void *data);
static void n_close_cb(struct conn *c, int err, void *data);

/* ---- timers ---- */

/* Fire the timer at the earlier of the phase deadline and liveness. */
void
handoff_schedule(struct handoff *h, uint64_t now)
{
	uint64_t at = h->phase_at < h->live_at ? h->phase_at : h->live_at;

	if (handoff_ht_bits)
		return;
	/* libuv counts from its cached loop time: make it now. */
	uv_update_time(h->env.loop);
	uv_timer_start(&h->timer, timer_cb, at > now ? at - now : 0, 0);
}

/* Wait at most phase_ms for the phase; liveness resets on every frame. */
void
handoff_arm(struct handoff *h, uint64_t phase_ms, bool liveness)
{
	uint64_t now = clock_mono_ms();

	h->phase_at = now + phase_ms;
	h->live_at = liveness ? now + LIVENESS_MS : UINT64_MAX;
	handoff_schedule(h, now);
}

static void
touch(struct handoff *h)
{
	uint64_t now = clock_mono_ms();

	if (h->live_at == UINT64_MAX)
		return;
	h->live_at = now + LIVENESS_MS;
	handoff_schedule(h, now);
}

/* ---- the successor ---- */

int
handoff_spawn(struct handoff *h)
{
	const struct handoff_env *e = &h->env;
	struct conn_opts opts = { .max_body = 65536, .errstyle = CONN_ERR_CONTROL };
	static char fake_conn;
	const char *envx[AGENT_MAX_ENV + 2];
	char dl[48];
	unsigned i, k = 0;
	int fd = -1, r;
	pid_t pid;

	if (handoff_ht_bits) {
		HT(HT_SPAWN_N);
		h->n_pid = 2002;
		h->n_alive = true;
		h->n = (struct conn *)&fake_conn;
		return 0;
	}
	if (e->take_standby && e->take_standby(&h->p, &pid, &fd, e->data) == 0) {
		log_info("handoff.standby", "the successor started ahead takes "
		    "over", "handoff_id=%s pid=%d", h->id, (int)pid);
	} else {
		snprintf(dl, sizeof(dl), "HANDOFF_DEADLINE_MS=%" PRIu64,
		    h->p.deadline_ms);
		envx[k++] = dl;
		for (i = 0; i < h->p.nenv; i++)
			envx[k++] = h->p.env[i];
		envx[k] = NULL;
		pid = agentcmd_spawn_successor(e->loop,
		    &(struct agentcmd_successor){
			.binary = h->binary,
			.root = e->root,
			.args = h->p.args,
			.nargs = h->p.nargs,
			.lfds = e->lfds,
			.lnames = e->lnames,
			.nl = e->nl,
			.env = envx,
		}, &fd);
		if (pid < 0)
			return (int)pid;
	}
	h->n_pid = pid;
	h->n_alive = true;
	r = procwatch_start(e->loop, pid, n_exit_cb, h, &h->n_watch);
	if (r < 0)
		log_warn("handoff.watch", proto_strerror(r), "pid=%d", (int)pid);
	return conn_open(e->loop, fd, &opts, n_frame_cb, n_close_cb, h,
	    &h->n);
}

/* ---- dispatch ---- */

void
handoff_close_xfer(struct handoff *h)
{
	if (h->xfer_o >= 0)
		close(h->xfer_o);
	h->xfer_o = -1;
}

static void
timer_closed_cb(uv_handle_t *t)
{
	struct handoff *h = t->data;

	handoff_close_xfer(h);
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
	h->st = handoff_cells[h->st][ev](h);
	h->cur = NULL;
	if (h->st != prev)
		log_debug("handoff.step", NULL, "handoff_id=%s from=%s event=%s "
		    "to=%s", h->id, handoff_state_name(prev),
		    handoff_event_name(ev), handoff_state_name(h->st));
	if (h->st == H_DONE && !handoff_ht_bits) {
		struct handoff_result res = h->res;
		struct handoff_env env = h->env;

		/* h is freed once its timer is closed: tell from copies. */
		uv_close((uv_handle_t *)&h->timer, timer_closed_cb);
		env.done_cb(&res, env.data);
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

	if (p->nargs > AGENT_MAX_ARGS - 4 || p->nenv > AGENT_MAX_ENV)
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
		h->env_kv[i] = strcpy(h->strs + off, p->env[i]);
		off += strlen(p->env[i]) + 1;
	}
	h->p.binary = h->binary;
	h->p.args = h->args;
	h->p.env = h->env_kv;
	return 0;
}

int
handoff_start(const struct handoff_env *env, const struct handoff_params *p,
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
	h->env = *env;
	h->xfer_o = -1;
	h->o_pid = env->incumbent_pid;
	h->o_alive = true;
	h->t0 = h->t_phase = clock_mono_ms();
	h->deadline_at = h->t0 + p->deadline_ms;
	/*
	 * One non-blocking attempt: this runs on the owner's loop.  With a
	 * timeout of 0 wire_connect never waits: a unix stream connect
	 * completes or fails at once (EAGAIN when the backlog is full), and
	 * an EINPROGRESS would be polled for 0 ms.  conn_open makes the fd
	 * non-blocking again.
	 */
	fd = wire_connect(env->agent_socket, 0);
	if (fd == -ETIMEDOUT)
		fd = -EAGAIN;	/* backlog full: the caller may try again */
	if (fd < 0) {
		free(h->strs);
		free(h);
		return fd;
	}
	r = conn_open(env->loop, fd, &opts, o_frame_cb, o_close_cb, h, &h->o);
	if (r < 0) {
		free(h->strs);
		free(h);
		return r;
	}
	uv_timer_init(env->loop, &h->timer);
	h->timer.data = h;
	r = procwatch_start(env->loop, h->o_pid, o_exit_cb, h, &h->o_watch);
	if (r < 0)
		log_warn("handoff.watch", proto_strerror(r), "pid=%d",
		    (int)h->o_pid);
	snprintf(h->jr.handoff_id, sizeof(h->jr.handoff_id), "%s", h->id);
	h->jr.incumbent_pid = h->o_pid;
	snprintf(h->jr.incumbent_binary, sizeof(h->jr.incumbent_binary), "%s",
	    env->incumbent_binary);
	snprintf(h->jr.successor_binary, sizeof(h->jr.successor_binary), "%s",
	    h->binary);
	h->jr.started_at_ms = clock_wall_ms();
	snprintf(h->res.id, sizeof(h->res.id), "%s", h->id);
	h->res.old_pid = h->o_pid;
	h->st = H_O_HELLO;
	handoff_arm(h, HELLO_READ_MS < p->deadline_ms ? HELLO_READ_MS :
	    p->deadline_ms, false);
	log_info("handoff.start", NULL, "handoff_id=%s incumbent_pid=%d "
	    "binary=%s deadline_ms=%" PRIu64, h->id, (int)h->o_pid, h->binary,
	    p->deadline_ms);
	*ret = h;
	return 0;
}

const char *
handoff_id(const struct handoff *h)
{
	return h->id;
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
	h.xfer_o = -1;
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
	handoff_ht_bits = &bits;
	dispatch(&h, (enum hevent)ev, frame ? &m : NULL);
	handoff_ht_bits = NULL;
	*next = h.st;
	return (int)bits;
}
