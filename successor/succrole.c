/*
 * succrole: the agent started as a successor (SPEC §4, §6).  HELLO on
 * HANDOFF_SOCK_FD, prepare what needs no lock (the control socket under
 * a temporary name), wait for BEGIN, take the lock, load and verify the
 * sealed state, serve, rename the control socket into place, READY.
 * From then on the process is the incumbent (incumbent.c) and this role
 * is off.
 *
 * The behaviour is the table `cells` below: for every state and every
 * event one named action, written out; actions return the next state.
 * Anything unexpected from the supervisor before READY abandons the
 * start-up (exit 75); after it, the socketpair is only kept, not read.
 *
 * Invariants kept here:
 * - a successor serves only state whose seq/digest match BEGIN, and only
 *   after it holds the lock; it exits 75 if the supervisor goes first;
 * - until BEGIN it dies with the supervisor (PDEATHSIG, set by the
 *   spawner), from BEGIN on it outlives it;
 * - n_timer runs only in hello-sent and wait-begin: BEGIN stops it and
 *   every failure leaves the process; BEGIN then starts it once more,
 *   for the generation bump a loop turn later (bump_cb).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/usock.h"
#include "crashpoints/crashpoint.h"
#include "proto/frame.h"
#include "proto/standby.h"
#include "successor/agent_int.h"
#include "successor/nsserver.h"
#include "successor/nswriter.h"
#include "transport/conn.h"

#define HELLO_ACK_MS		10000
#define BEGIN_WAIT_MS		(300000 + 10000)
#define BUMP_DELAY_MS		1	/* after BEGIN: see do_begin */
#define XFER_WAIT_MS		2000	/* the rest of the moved connections */

static const char *const state_names[NST_NSTATES] = {
	"off", "hello-sent", "wait-begin",
};

static const char *const event_names[NE_NEVENTS] = {
	"hello-ack", "begin", "abort", "heartbeat", "other-frame", "eof",
	"timeout", "tick", "signal",
};

typedef enum nstate (*action_fn)(struct agent *a);

static void n_timer_cb(uv_timer_t *t);

/* Give up the start-up: the incumbent resumes (or a cold start runs). */
static enum nstate
successor_fail(struct agent *a, const char *why)
{
	log_error("successor.abandon", why, "handoff_id=%s", agent_hid(a));
	if (a->ctl_tmp[0])
		(void)unlink(a->ctl_tmp);
	agent_exit(a, 75);
	return NST_OFF;
}

/* ---- actions ---- */

static enum nstate
a_ignore(struct agent *a)
{
	return a->nst;
}

static enum nstate
a_unexpected(struct agent *a)
{
	log_warn("successor.unexpected", "unexpected message", "type=%s",
	    msg_type_name(a->cur->type));
	return successor_fail(a, "protocol violation by the supervisor");
}

static enum nstate
a_hello_ack(struct agent *a)
{
	const struct msg *m = a->cur;
	uint16_t v;
	int r;

	if (proto_negotiate(PROTO_VERSION_MIN, PROTO_VERSION_MAX,
	    m->u.HELLO_ACK.proto_version, m->u.HELLO_ACK.proto_version,
	    &v) < 0)
		return successor_fail(a, "unsupported protocol version");
	snprintf(a->hid, sizeof(a->hid), "%s", m->u.HELLO_ACK.handoff_id);
	/* The channel on which the incumbent's connections will come. */
	if (a->cur_frame && a->cur_frame->nfds == 1 && !a->xin &&
	    connxfer_in_start(a->loop, frame_take_fd(a->cur_frame, 0),
	    &a->xin) < 0)
		log_warn("successor.conns", "cannot receive moved connections",
		    NULL);
	CRASHPOINT(n_after_handshake);
	/* Everything that needs no lock, before BEGIN: the gap stays small. */
	usock_tmp_name(a->ctl_tmp, a->cfg->paths.agent_socket);
	paths_mkparent(a->ctl_tmp, 0755);
	r = usock_listen_tmp(a->ctl_tmp, 0600, 16);
	if (r < 0)
		return successor_fail(a, "cannot bind the control socket");
	a->ctl_fd = r;
	uv_timer_start(&a->n_timer, n_timer_cb, a->begin_wait_ms, 0);
	return NST_WAIT_BEGIN;
}

/*
 * The generation bump is durable (or failed).  Moved connections only
 * now: the bump on disk tells a resuming incumbent that its copies are no
 * longer its own (connxfer.h).
 */
static void
generation_durable_cb(void *data, int err)
{
	struct agent *a = data;
	int n;

	if (err < 0)
		log_warn("successor.generation", proto_strerror(err),
		    "moved connections are closed");
	if (!a->xin)
		return;
	if (err < 0 || !a->ns) {
		connxfer_in_free(a->xin);
		a->xin = NULL;
		return;
	}
	n = connxfer_in_adopt(a->xin, a->ns, clock_mono_ms() + XFER_WAIT_MS);
	a->xin = NULL;
	if (n >= 0)
		log_info("successor.conns_adopted", NULL, "conns=%d", n);
}

/*
 * The lock's pidfile, the readiness file and the generation bump, once
 * the first accepts had their loop turn (the flock is the lock, and the
 * supervisor reads the readiness file at a cold start only).
 */
static void
bump_cb(uv_timer_t *t)
{
	struct agent *a = t->data;
	int rc;

	if (!a->ns || a->stopping)
		return;
	if (a->lock && (rc = lock_write_pid(a->lock)) < 0)
		log_warn("successor.pidfile", proto_strerror(rc), NULL);
	agent_write_ready(a);
	rc = nsserver_bump_generation_async(a->ns, generation_durable_cb, a);
	if (rc < 0) {
		log_warn("successor.generation", proto_strerror(rc), NULL);
		connxfer_in_free(a->xin);
		a->xin = NULL;
	}
}

/* Take the lock, load, check against BEGIN, serve, READY. */
static enum nstate
do_begin(struct agent *a)
{
	const struct msg *m = a->cur;
	struct msg r = { .type = MSG_READY };
	const char *names[LISTENFDS_MAX];
	uint8_t digest[NSSERVER_DIGEST_LEN];
	const struct bin *want = &m->u.BEGIN.state_digest;
	bool promoted = want->len == 0;
	bool match;
	uint64_t seq, start_us, t_lock, t_open, t_serve;
	uint64_t t_begin = clock_mono_us();
	pid_t holder = 0;
	unsigned i;
	int rc;

	uv_timer_stop(&a->n_timer);
	/* From here on this process outlives a dying supervisor. */
	(void)prctl(PR_SET_PDEATHSIG, 0);
	CRASHPOINT(n_after_begin);
	/* The pidfile waits for bump_cb: ~150 us of nobody accepting. */
	rc = lock_acquire_wait_nopid(a->cfg->paths.state_dir,
	    AGENT_RELOCK_MS + 1000, &a->lock, &holder);
	if (rc < 0) {
		log_error("successor.lock", proto_strerror(rc), "holder=%d",
		    (int)holder);
		return successor_fail(a, "could not take the data-dir lock");
	}
	CRASHPOINT(n_after_lock);
	t_lock = clock_mono_us();
	/* The sealed table is served as sealed (nsserver_config). */
	rc = agent_open_ns(a, !promoted && want->len == NSSERVER_DIGEST_LEN ?
	    want->p : NULL);
	nsserver_preload_free(a->pre);
	a->pre = NULL;
	if (rc < 0)
		return successor_fail(a, "could not load the allocation table");
	t_open = clock_mono_us();
	nsserver_state(a->ns, &seq, digest);
	match = promoted || (seq == m->u.BEGIN.state_seq &&
	    want->len == sizeof(digest) &&
	    memcmp(want->p, digest, sizeof(digest)) == 0);
	r.u.READY.handoff_id = a->hid;
	r.u.READY.state_seq = seq;
	r.u.READY.state_digest.p = digest;
	r.u.READY.state_digest.len = sizeof(digest);
	if (!match) {
		/* Do not serve state the incumbent did not seal. */
		log_error("successor.state_mismatch", "loaded state differs "
		    "from the sealed state", "handoff_id=%s loaded_seq=%" PRIu64
		    " sealed_seq=%" PRIu64, a->hid, seq, m->u.BEGIN.state_seq);
		r.u.READY.healthz_ok = false;
		agent_send(a->up, &r);
		lock_release(a->lock);
		a->lock = NULL;
		return successor_fail(a, "state mismatch");
	}
	/*
	 * The generation goes to disk with the writer, a loop turn from now
	 * (bump_cb): new connections are served at once, before the table is
	 * even encoded, moved ones once it is durable (generation_durable_cb).
	 */
	uv_timer_start(&a->n_timer, bump_cb, BUMP_DELAY_MS, 0);
	rc = nsserver_start(a->ns, a->ns_fd);
	if (rc < 0) {
		lock_release(a->lock);
		a->lock = NULL;
		return successor_fail(a, "could not start serving");
	}
	nsserver_set_ready(a->ns, true);
	t_serve = clock_mono_us();
	if (rename(a->ctl_tmp, a->cfg->paths.agent_socket) < 0 ||
	    agent_start_control(a) < 0) {
		log_error("successor.control", strerror(errno), "path=%s",
		    a->cfg->paths.agent_socket);
	}
	a->ctl_tmp[0] = '\0';
	for (i = 0; i < a->nlfds; i++)
		names[i] = a->lfds[i].name;
	r.u.READY.listening_on.n = a->nlfds;
	r.u.READY.listening_on.v = names;
	r.u.READY.healthz_ok = true;
	CRASHPOINT(n_before_announce_ready);
	agent_send(a->up, &r);
	uv_timer_stop(&a->hb_timer);
	crashpoint_set_role("incumbent");
	/* Back to the loop next: the first accept can happen from here. */
	start_us = clock_mono_us();
	log_info("agent.serving", promoted ? "successor promoted" :
	    "successor took over", "handoff_id=%s allocations=%u "
	    "state_seq=%" PRIu64 " accept_start_us=%" PRIu64 " begin_us=%"
	    PRIu64 " lock_us=%" PRIu64 " open_us=%" PRIu64 " serve_us=%"
	    PRIu64, a->hid, nsserver_count(a->ns), seq, start_us,
	    start_us - t_begin, t_lock - t_begin, t_open - t_lock,
	    t_serve - t_open);
	CRASHPOINT(n_after_ready_sent);
	return NST_OFF;
}

static enum nstate
a_begin(struct agent *a)
{
	/* A BEGIN for another handoff is as unexpected as any frame. */
	if (strcmp(a->cur->u.BEGIN.handoff_id, a->hid) != 0)
		return a_unexpected(a);
	return do_begin(a);
}

static enum nstate
a_abort(struct agent *a)
{
	return successor_fail(a, a->cur->u.ABORT.reason);
}

static enum nstate
a_lost(struct agent *a)
{
	return successor_fail(a, "supervisor went away before BEGIN");
}

static enum nstate
a_no_hello_ack(struct agent *a)
{
	return successor_fail(a, "no HELLO_ACK from the supervisor in time");
}

static enum nstate
a_no_begin(struct agent *a)
{
	return successor_fail(a, "no BEGIN from the supervisor in time");
}

/* A successor in start-up shows it is alive too (SPEC §4). */
static enum nstate
a_heartbeat(struct agent *a)
{
	struct msg m = { .type = MSG_HEARTBEAT };

	m.u.HEARTBEAT.ts_ms = clock_wall_ms();
	if (a->up)
		agent_send(a->up, &m);
	return a->nst;
}

static enum nstate
a_stopped(struct agent *a)
{
	return successor_fail(a, "stopped by signal");
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
static const struct cell cells[NST_NSTATES][NE_NEVENTS] = {
	/*
	 * After READY (or a failure, while leaving): the socketpair has
	 * nothing more to say; ticks and signals go to the incumbent then.
	 * A signal lands here only in a process that never served.
	 */
	[NST_OFF] = {
		[NE_HELLO_ACK] = C(a_ignore),
		[NE_BEGIN] = C(a_ignore),
		[NE_ABORT] = C(a_ignore),
		[NE_HEARTBEAT] = C(a_ignore),
		[NE_OTHER_FRAME] = C(a_ignore),
		[NE_EOF] = C(a_ignore),
		[NE_TIMEOUT] = C(a_ignore),
		[NE_TICK] = C(a_ignore),
		[NE_SIGNAL] = C(a_stopped),
	},
	[NST_HELLO_SENT] = {
		[NE_HELLO_ACK] = C(a_hello_ack),
		[NE_BEGIN] = C(a_unexpected),
		[NE_ABORT] = C(a_abort),
		[NE_HEARTBEAT] = C(a_ignore),
		[NE_OTHER_FRAME] = C(a_unexpected),
		[NE_EOF] = C(a_lost),
		[NE_TIMEOUT] = C(a_no_hello_ack),
		[NE_TICK] = C(a_heartbeat),
		[NE_SIGNAL] = C(a_stopped),
	},
	[NST_WAIT_BEGIN] = {
		[NE_HELLO_ACK] = C(a_unexpected),
		[NE_BEGIN] = C(a_begin),
		[NE_ABORT] = C(a_abort),
		[NE_HEARTBEAT] = C(a_ignore),
		[NE_OTHER_FRAME] = C(a_unexpected),
		[NE_EOF] = C(a_lost),
		[NE_TIMEOUT] = C(a_no_begin),
		[NE_TICK] = C(a_heartbeat),
		[NE_SIGNAL] = C(a_stopped),
	},
};
#undef C

/* ---- dispatch and the event sources ---- */

void
successor_event(struct agent *a, enum nevent ev)
{
	enum nstate prev = a->nst;

	a->nst = cells[prev][ev].fn(a);
	if (a->nst != prev)
		log_debug("agent.step", NULL, "role=successor from=%s event=%s "
		    "action=%s to=%s", state_names[prev], event_names[ev],
		    cells[prev][ev].name, state_names[a->nst]);
}

static enum nevent
frame_event(enum msg_type t)
{
	switch (t) {
	case MSG_HELLO_ACK:	return NE_HELLO_ACK;
	case MSG_BEGIN:		return NE_BEGIN;
	case MSG_ABORT:		return NE_ABORT;
	case MSG_HEARTBEAT:	return NE_HEARTBEAT;
	default:		return NE_OTHER_FRAME;
	}
}

static void
up_frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct agent *a = data;

	(void)c;
	a->cur = &f->m;
	a->cur_frame = f;
	successor_event(a, frame_event(f->m.type));
	a->cur = NULL;
	a->cur_frame = NULL;
	frame_release(f);
}

static void
up_close_cb(struct conn *c, int err, void *data)
{
	struct agent *a = data;

	(void)c;
	(void)err;
	a->up = NULL;
	successor_event(a, NE_EOF);
}

static void
n_timer_cb(uv_timer_t *t)
{
	successor_event(t->data, NE_TIMEOUT);
}

bool
successor_standby_wait(int *ret_exit)
{
	const char *s = getenv("HANDOFF_SOCK_FD");
	uint8_t b[STANDBY_GO_LEN];
	char comm[17] = "", dl[32];
	uint64_t deadline;
	size_t got = 0;
	ssize_t n;
	long fd;

	if (!getenv("HANDOFF_STANDBY"))
		return true;
	unsetenv("HANDOFF_STANDBY");
#ifdef BATON_CRASHPOINTS
	/* Test builds: act as a build without standbys (PROTOCOL.md). */
	if (getenv("BATON_TEST_NO_STANDBY"))
		return true;
#endif
	fd = s ? strtol(s, NULL, 10) : -1;
	if (fd < 3 || fd > INT_MAX) {
		log_error("standby.env", "HANDOFF_STANDBY without "
		    "HANDOFF_SOCK_FD", NULL);
		*ret_exit = 78;
		return false;
	}
	/* That it waits (proto/standby.h); the supervisor may be gone. */
	do
		n = write((int)fd, STANDBY_READY, STANDBY_READY_LEN);
	while (n < 0 && errno == EINTR);
	if (n != STANDBY_READY_LEN) {
		log_info("standby.dismissed", "cannot reach the supervisor",
		    NULL);
		*ret_exit = 0;
		return false;
	}
	/* Seen as what it is (ps, and tests counting agents) until told. */
	(void)prctl(PR_GET_NAME, comm, 0, 0, 0);
	(void)prctl(PR_SET_NAME, "baton-standby", 0, 0, 0);
	log_debug("standby.waiting", NULL, NULL);
	while (got < sizeof(b)) {
		n = read((int)fd, b + got, sizeof(b) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A reset too: our word was left unread. */
			log_info("standby.dismissed", n < 0 && errno != ECONNRESET ?
			    strerror(errno) : "the supervisor closed its end",
			    NULL);
			*ret_exit = 0;
			return false;
		}
		got += (size_t)n;
	}
	if (standby_go_get(b, &deadline) < 0) {
		log_error("standby.go", "not a start record", NULL);
		*ret_exit = 78;
		return false;
	}
	snprintf(dl, sizeof(dl), "%" PRIu64, deadline);
	setenv("HANDOFF_DEADLINE_MS", dl, 1);
	(void)prctl(PR_SET_NAME, comm, 0, 0, 0);
	return true;
}

int
successor_start(struct agent *a)
{
	/* HELLO_ACK may carry the channel from the incumbent. */
	struct conn_opts opts = { .max_body = 65536, .max_fds = 1,
	    .errstyle = CONN_ERR_CONTROL };
	const char *s = getenv("HANDOFF_SOCK_FD");
	const char *d = getenv("HANDOFF_DEADLINE_MS");
	unsigned long long deadline;
	char *end;
	struct stat st;
	long fd;
	int r;

	if (!s || !*s) {
		log_error("successor.env", "HANDOFF_ROLE=successor without "
		    "HANDOFF_SOCK_FD", NULL);
		return 78;
	}
	errno = 0;
	fd = strtol(s, &end, 10);
	if (errno || *end || fd < 3 || fd > INT_MAX || fstat((int)fd, &st) < 0 ||
	    !S_ISSOCK(st.st_mode)) {
		log_error("successor.env", "HANDOFF_SOCK_FD is not a socket",
		    "value=%s", s);
		return 78;
	}
	a->begin_wait_ms = BEGIN_WAIT_MS;
	if (d && (deadline = strtoull(d, NULL, 10)) > 0)
		a->begin_wait_ms = deadline + 10000;
	unsetenv("HANDOFF_SOCK_FD");
	unsetenv("HANDOFF_ROLE");
	unsetenv("HANDOFF_DEADLINE_MS");
	(void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	if (agent_find_ns_listener(a) < 0 || a->own_ns_fd >= 0) {
		log_error("successor.listeners", "a successor must inherit the "
		    "\"ns\" listener", NULL);
		return 78;
	}
	r = conn_open(a->loop, (int)fd, &opts, up_frame_cb, up_close_cb, a,
	    &a->up);
	if (r < 0)
		return 78;
	/*
	 * The head start: the table read and the cgroups resolved now,
	 * while the incumbent serves, so BEGIN only compares digests.
	 */
	r = nsserver_preload(a->cfg->paths.allocations, a->cfg->alloc_cgroup,
	    &a->pre);
	if (r < 0 && r != -ENOENT)
		log_warn("successor.preload", proto_strerror(r), NULL);
	/* The table's writer thread too (BEGIN would start it otherwise). */
	r = nswriter_prestart();
	if (r < 0)
		log_warn("successor.prestart", strerror(-r), NULL);
	/*
	 * The decoder's scratch (msgpack zone chunks between the entries it
	 * made) is free now: give its pages back, or a successor of a large
	 * table holds a few MiB more than the agent that built it.
	 */
	(void)malloc_trim(0);
	CRASHPOINT(n_before_handshake);
	agent_send_hello(a, a->up, "successor");
	a->nst = NST_HELLO_SENT;
	uv_timer_start(&a->n_timer, n_timer_cb, HELLO_ACK_MS, 0);
	uv_timer_start(&a->hb_timer, agent_hb_cb, AGENT_HEARTBEAT_MS,
	    AGENT_HEARTBEAT_MS);
	return 0;
}

/* ---- names, for logs and tests/unit/test_agent_table.c ---- */

static const char *
action_name(unsigned st, unsigned ev)
{
	return st < NST_NSTATES && ev < NE_NEVENTS ? cells[st][ev].name : NULL;
}

const struct agent_table agent_successor_table = {
	.role = "successor",
	.nstates = NST_NSTATES,
	.nevents = NE_NEVENTS,
	.states = state_names,
	.events = event_names,
	.action_name = action_name,
};
