/*
 * agent: the roles of baton-agent (SPEC §4, §6) around the namespace
 * provider (nsserver).
 *
 * Cold start: take the data-dir lock, load the allocation table, serve
 * the inherited "ns" listener (or bind one), bind the control socket.
 * Successor: HELLO on HANDOFF_SOCK_FD, prepare what needs no lock (the
 * control socket under a temporary name), wait for BEGIN, take the lock,
 * load and verify the sealed state, serve, rename the control socket into
 * place, READY.  Both then run as the incumbent: one supervisor session
 * at a time on the control socket, driven through drain, seal and commit
 * or resume.
 *
 * Invariants kept here:
 * - the lock is released only after a successful seal, right before
 *   SEAL_COMPLETE, and retaken before serving again;
 * - the incumbent never stays sealed on a supervisor's word alone: its
 *   own watchdog (deadline + slack) and supervisor EOF both resume it;
 * - a successor serves only state whose seq/digest match BEGIN, and only
 *   after it holds the lock; it exits 75 if the supervisor goes first;
 * - listeners are never closed while the process serves.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/version.h"
#include "common/atomicfile.h"
#include "common/clock.h"
#include "transport/acceptor.h"
#include "transport/conn.h"
#include "common/listenfds.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/sandbox.h"
#include "common/usock.h"
#include "crashpoints/crashpoint.h"
#include "proto/frame.h"
#include "successor/agent.h"
#include "successor/connxfer.h"
#include "successor/nsserver.h"

#define HEARTBEAT_MS		2000
#define WATCHDOG_SLACK_MS	1000
#define RELOCK_MS		2000
#define HELLO_ACK_MS		10000
#define BEGIN_WAIT_MS		(300000 + 10000)
#define STOP_DRAIN_MS		10000
#define COLD_LOCK_MS		5000
#define READY_TRIES		20
#define XFER_SEND_MS		5000	/* moving connections, at most */
#define XFER_WAIT_MS		2000

enum ostate {
	OS_NONE,	/* no supervisor session */
	OS_HELLO_SENT,	/* HELLO sent, waiting for HELLO_ACK */
	OS_IDLE,	/* session open, serving */
	OS_DRAINING,	/* PREPARE received, drain running */
	OS_DRAINED,	/* DRAINED sent */
	OS_SEALED,	/* lock released, SEAL_COMPLETE sent */
};

static const char *const ostate_names[] = {
	"none", "hello-sent", "idle", "draining", "drained", "sealed",
};

enum nstate {
	NST_OFF,	/* not a successor (or done) */
	NST_HELLO_SENT,
	NST_WAIT_BEGIN,
};

struct agent {
	const struct agent_config *cfg;
	uv_loop_t *loop;
	char build_id[64];

	struct listenfd lfds[LISTENFDS_MAX];
	unsigned nlfds;
	int ns_fd;		/* the namespace listener */
	int own_ns_fd;		/* ns listener we bound ourselves, or -1 */

	struct dirlock *lock;
	struct nsserver *ns;

	int ctl_fd;		/* control listener, -1 until bound */
	struct acceptor *ctl_acc; /* replaced when the path is reclaimed */
	char ctl_tmp[PATH_MAX];
	ino_t ctl_ino;		/* inode of our socket at the control path */

	struct conn *sess;	/* incumbent: supervisor session */
	enum ostate ost;
	char hid[40];

	int xfer_fd;		/* incumbent: channel to the successor */
	struct connxfer_out xout; /* incumbent: connections sent, copies */
	struct connxfer_in *xin; /* successor: connections coming */

	struct conn *up;	/* successor: socketpair to the supervisor */
	enum nstate nst;
	uint64_t begin_wait_ms;

	uv_timer_t hb_timer, wd_timer, n_timer;
	uv_signal_t sig_term, sig_int, sig_chld;

	bool stopping;
	int exit_code;
};

static void sess_frame_cb(struct conn *c, struct frame *f, void *data);
static void sess_close_cb(struct conn *c, int err, void *data);
static int start_control(struct agent *a);
static void reclaim_paths(struct agent *a);
static void agent_exit(struct agent *a, int code);
static int reload_nsserver(struct agent *a);

static const char *
handoff_id_or_dash(const struct agent *a)
{
	return a->hid[0] ? a->hid : "-";
}

/* The readiness file: plain text for humans and scripts, written atomically. */
static int
write_ready(const struct agent *a)
{
	char buf[128];
	int n, r = 0, i;

	n = snprintf(buf, sizeof(buf), "pid=%d build_id=%s\n", (int)getpid(),
	    a->build_id);
	/*
	 * The supervisor waits for this file before it counts the agent as
	 * started: a transient I/O error must not leave it waiting.
	 */
	for (i = 0; i < READY_TRIES; i++) {
		r = atomicfile_write_plain(a->cfg->paths.ready_file, buf,
		    (size_t)n, 0644);
		if (r == 0 || (r != -EIO && r != -ENOSPC && r != -EINTR &&
		    r != -EAGAIN && r != -EMFILE && r != -ENFILE))
			break;
	}
	if (r < 0)
		log_error("agent.ready", strerror(-r), "path=%s",
		    a->cfg->paths.ready_file);
	return r;
}

static void
send_or_log(struct conn *c, const struct msg *m)
{
	int r = conn_send(c, m, NULL, 0);

	if (r < 0)
		log_warn("agent.send", proto_strerror(r), "type=%s",
		    msg_type_name(m->type));
}

/* HELLO in a role: the first frame on a supervisor connection (SPEC §4). */
static void
send_hello(const struct agent *a, struct conn *c, const char *role)
{
	static const char *caps[] = { CONNXFER_CAPABILITY };
	struct msg m = { .type = MSG_HELLO };

	m.u.HELLO.capabilities.n = 1;
	m.u.HELLO.capabilities.v = caps;
	m.u.HELLO.role = role;
	m.u.HELLO.pid = (uint32_t)getpid();
	m.u.HELLO.build_id = a->build_id;
	m.u.HELLO.proto_min = PROTO_VERSION_MIN;
	m.u.HELLO.proto_max = PROTO_VERSION_MAX;
	send_or_log(c, &m);
}

static void
stop_handoff_timers(struct agent *a)
{
	uv_timer_stop(&a->hb_timer);
	uv_timer_stop(&a->wd_timer);
}

/*
 * Back to serving after an aborted or abandoned handoff.  When sealed the
 * lock must be retaken first; if someone else holds it (a successor got
 * BEGIN and now serves), this process is superseded and leaves.
 */
static int
resume_local(struct agent *a, const char *why)
{
	bool relocked = false;
	pid_t holder = 0;
	int r;

	stop_handoff_timers(a);
	if (!a->lock) {
		r = lock_acquire_wait(a->cfg->paths.state_dir, RELOCK_MS,
		    &a->lock, &holder);
		if (r < 0) {
			log_warn("handoff.superseded", "lock held by another "
			    "agent; leaving", "handoff_id=%s holder=%d",
			    handoff_id_or_dash(a), (int)holder);
			a->ost = OS_NONE;
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
	if (relocked && reload_nsserver(a) < 0) {
		log_error("handoff.reload", "cannot reload the allocation table "
		    "after retaking the lock; leaving so a fresh agent starts",
		    "handoff_id=%s", handoff_id_or_dash(a));
		a->ost = OS_NONE;
		agent_exit(a, 69);
		return -EIO;
	}
	nsserver_resume(a->ns, a->ns_fd);
	connxfer_resume(a->ns, relocked, &a->xout);
	if (a->xfer_fd >= 0)
		close(a->xfer_fd);
	a->xfer_fd = -1;
	reclaim_paths(a);
	log_info("handoff.resume", why, "handoff_id=%s state=%s",
	    handoff_id_or_dash(a), ostate_names[a->ost]);
	a->ost = a->sess ? OS_IDLE : OS_NONE;
	return 0;
}

static void
hb_cb(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct msg m = { .type = MSG_HEARTBEAT };

	m.u.HEARTBEAT.ts_ms = clock_wall_ms();
	if (a->sess)
		send_or_log(a->sess, &m);
	/* A successor in start-up shows it is alive too (SPEC §4). */
	if (a->up && a->nst != NST_OFF)
		send_or_log(a->up, &m);
}

static void
wd_cb(uv_timer_t *t)
{
	struct agent *a = t->data;

	log_warn("handoff.watchdog", "handoff deadline passed; resuming on "
	    "our own", "handoff_id=%s state=%s", handoff_id_or_dash(a),
	    ostate_names[a->ost]);
	if (resume_local(a, "deadline passed") == 0 && a->sess)
		conn_close(a->sess);
}

static void
drained_cb(void *data, unsigned remaining)
{
	struct agent *a = data;
	struct msg m = { .type = MSG_DRAINED };

	if (a->ost != OS_DRAINING || !a->sess)
		return;	/* aborted meanwhile */
	m.u.DRAINED.handoff_id = a->hid;
	m.u.DRAINED.open_conns_remaining = remaining;
	m.u.DRAINED.accept_closed = true;
	send_or_log(a->sess, &m);
	a->ost = OS_DRAINED;
	log_info("handoff.drained", NULL, "handoff_id=%s open_remaining=%u",
	    a->hid, remaining);
	CRASHPOINT(o_after_drained_sent);
}

static void
do_seal(struct agent *a)
{
	struct msg m = { .type = MSG_SEAL_COMPLETE };
	uint8_t digest[NSSERVER_DIGEST_LEN];
	uint64_t seq;
	int r;

	CRASHPOINT(o_inside_seal);
	/* The write below may be long: tell the supervisor we are at it. */
	{
		struct msg p = { .type = MSG_SEAL_PROGRESS };

		p.u.SEAL_PROGRESS.handoff_id = a->hid;
		p.u.SEAL_PROGRESS.done = 0;
		p.u.SEAL_PROGRESS.total = nsserver_count(a->ns);
		send_or_log(a->sess, &p);
	}
#ifdef BATON_CRASHPOINTS
	/* Test builds: BATON_FAULT_SEAL makes the seal fail (docs/TESTING.md). */
	if (getenv("BATON_FAULT_SEAL"))
		r = -EIO;
	else
#endif
	r = nsserver_seal(a->ns, &seq, digest);
	if (r < 0) {
		struct msg f = { .type = MSG_SEAL_FAILED };

		f.u.SEAL_FAILED.handoff_id = a->hid;
		f.u.SEAL_FAILED.error = proto_strerror(r);
		send_or_log(a->sess, &f);
		log_error("handoff.seal_failed", proto_strerror(r),
		    "handoff_id=%s", a->hid);
		resume_local(a, "seal failed");
		return;
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
	send_or_log(a->sess, &m);
	a->ost = OS_SEALED;
	log_info("handoff.sealed", NULL, "handoff_id=%s state_seq=%" PRIu64,
	    a->hid, seq);
	CRASHPOINT(o_after_seal_complete_sent);
}

static void
send_listeners(struct agent *a)
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
}

static bool
id_matches(struct agent *a, const char *id)
{
	if (strcmp(a->hid, id) == 0)
		return true;
	conn_reject(a->sess, -PROTO_EINVAL, "handoff_id does not match");
	return false;
}

static void
sess_frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct agent *a = data;
	const struct msg *m = &f->m;
	uint64_t now = clock_mono_ms(), budget;
	uint16_t v;

	(void)c;
	switch (m->type) {
	case MSG_HEARTBEAT:
		goto out;
	case MSG_HELLO_ACK:
		if (a->ost != OS_HELLO_SENT)
			break;
		if (proto_negotiate(PROTO_VERSION_MIN, PROTO_VERSION_MAX,
		    m->u.HELLO_ACK.proto_version, m->u.HELLO_ACK.proto_version,
		    &v) < 0) {
			conn_reject(a->sess, -PROTO_ENOVERSION,
			    "unsupported protocol version");
			goto out;
		}
		snprintf(a->hid, sizeof(a->hid), "%s", m->u.HELLO_ACK.handoff_id);
		a->ost = OS_IDLE;
		goto out;
	case MSG_GET_LISTENERS:
		if (a->ost != OS_IDLE)
			break;
		send_listeners(a);
		goto out;
	case MSG_PREPARE_HANDOFF:
		if (a->ost != OS_IDLE)
			break;
		if (!id_matches(a, m->u.PREPARE_HANDOFF.handoff_id))
			goto out;
		budget = m->u.PREPARE_HANDOFF.deadline_ms;
		/* The loop's cached time may be stale: timers count from now. */
		uv_update_time(a->loop);
		now = clock_mono_ms();
		uv_timer_start(&a->wd_timer, wd_cb, budget + WATCHDOG_SLACK_MS, 0);
		uv_timer_start(&a->hb_timer, hb_cb, HEARTBEAT_MS, HEARTBEAT_MS);
		if (m->u.PREPARE_HANDOFF.drain_grace_ms < budget)
			budget = m->u.PREPARE_HANDOFF.drain_grace_ms;
		a->ost = OS_DRAINING;
		/* With a channel to the successor the connections move. */
		if (f->nfds == 1) {
			if (a->xfer_fd >= 0)
				close(a->xfer_fd);
			a->xfer_fd = frame_take_fd(f, 0);
		}
		nsserver_keep_conns(a->ns, a->xfer_fd >= 0);
		log_info("handoff.prepare", NULL, "handoff_id=%s successor_pid=%u "
		    "deadline_ms=%" PRIu64 " move_conns=%d", a->hid,
		    m->u.PREPARE_HANDOFF.successor_pid,
		    m->u.PREPARE_HANDOFF.deadline_ms, a->xfer_fd >= 0);
		CRASHPOINT(o_inside_drain);
		nsserver_drain(a->ns, now + budget, drained_cb, a);
		goto out;
	case MSG_SEAL_REQUEST:
		if (a->ost != OS_DRAINED)
			break;
		if (id_matches(a, m->u.SEAL_REQUEST.handoff_id))
			do_seal(a);
		goto out;
	case MSG_COMMIT:
		if (a->ost != OS_SEALED)
			break;
		if (!id_matches(a, m->u.COMMIT.handoff_id))
			goto out;
		CRASHPOINT(o_after_commit_recv);
		log_info("handoff.commit", "handed over; exiting",
		    "handoff_id=%s", a->hid);
		connxfer_out_free(&a->xout);
		stop_handoff_timers(a);
		a->ost = OS_NONE;
		agent_exit(a, 0);
		goto out;
	case MSG_ABORT:
	case MSG_RESUME_AFTER_ABORT: {
		struct msg r = { .type = MSG_RESUMED };
		const char *id = m->type == MSG_ABORT ?
		    m->u.ABORT.handoff_id : m->u.RESUME_AFTER_ABORT.handoff_id;

		if (a->ost == OS_HELLO_SENT || !id_matches(a, id))
			goto out;
		if (a->ost != OS_IDLE &&
		    resume_local(a, m->type == MSG_ABORT ?
		    m->u.ABORT.reason : "supervisor asked") < 0)
			goto out;
		r.u.RESUMED.handoff_id = a->hid;
		send_or_log(a->sess, &r);
		goto out;
	}
	default:
		break;
	}
	log_warn("handoff.unexpected", "unexpected message", "type=%s state=%s",
	    msg_type_name(m->type), ostate_names[a->ost]);
	conn_reject(a->sess, -PROTO_EINVAL, "unexpected message in this state");
out:
	frame_release(f);
}

static void
sess_close_cb(struct conn *c, int err, void *data)
{
	struct agent *a = data;

	(void)c;
	a->sess = NULL;
	if (a->ost >= OS_DRAINING) {
		log_warn("handoff.supervisor_lost", err ? proto_strerror(err) :
		    "connection closed", "handoff_id=%s state=%s",
		    handoff_id_or_dash(a), ostate_names[a->ost]);
		resume_local(a, "supervisor went away");
	}
	stop_handoff_timers(a);
	a->ost = OS_NONE;
	a->hid[0] = '\0';
}

/* The acceptor's callback: one supervisor session at a time. */
static void
ctl_accept(void *data, const struct acceptor_peer *p)
{
	struct agent *a = data;
	/* PREPARE_HANDOFF may carry the channel to the successor. */
	struct conn_opts opts = { .max_body = 65536, .max_fds = 1,
	    .errstyle = CONN_ERR_CONTROL };
	struct conn *c;
	int r;

	if (a->sess || a->stopping) {
		if (conn_open(a->loop, p->fd, &opts, NULL, NULL, NULL, &c) == 0)
			conn_reject(c, -EBUSY, a->stopping ? "agent is stopping" :
			    "another supervisor session is open");
		return;
	}
	r = conn_open(a->loop, p->fd, &opts, sess_frame_cb, sess_close_cb, a,
	    &a->sess);
	if (r < 0) {
		log_warn("control.accept", proto_strerror(r), NULL);
		return;
	}
	send_hello(a, a->sess, "incumbent");
	a->ost = OS_HELLO_SENT;
	a->hid[0] = '\0';
}

static void
stop_control(struct agent *a)
{
	acceptor_stop(a->ctl_acc);
	a->ctl_acc = NULL;
}

/* Start polling the (already bound and renamed) control listener. */
static int
start_control(struct agent *a)
{
	struct stat st;

	if (stat(a->cfg->paths.agent_socket, &st) == 0)
		a->ctl_ino = st.st_ino;
	return acceptor_start(a->loop, a->ctl_fd, &(struct acceptor_opts){
	    .allow_uids = a->cfg->allow_uids, .n_allow_uids = a->cfg->n_allow_uids,
	    .per_wake = 16, .errstyle = CONN_ERR_CONTROL,
	    .refused_event = "control.denied", .refused_text = "permission denied" },
	    ctl_accept, a, &a->ctl_acc);
}

/*
 * After a resume: a successor that died between renaming its control
 * socket into place and READY left the path pointing at a dead socket,
 * and the ready file naming itself.  Take both back.
 */
static void
reclaim_paths(struct agent *a)
{
	struct stat st;
	int fd;

	if (a->ctl_fd >= 0 && (stat(a->cfg->paths.agent_socket, &st) < 0 ||
	    st.st_ino != a->ctl_ino)) {
		fd = usock_listen(a->cfg->paths.agent_socket, 0600, 16);
		if (fd < 0) {
			log_error("agent.control", proto_strerror(fd), "path=%s",
			    a->cfg->paths.agent_socket);
		} else {
			stop_control(a);
			close(a->ctl_fd);
			a->ctl_fd = fd;
			if (start_control(a) < 0)
				log_error("agent.control", "cannot poll", NULL);
			log_info("agent.control", "control socket path reclaimed",
			    "path=%s", a->cfg->paths.agent_socket);
		}
	}
	/* A successor killed mid-write leaves its temp state file. */
	(void)atomicfile_cleanup(a->cfg->paths.allocations);
	write_ready(a);
}

static int
open_nsserver(struct agent *a)
{
	const struct baton_paths *p = &a->cfg->paths;
	struct nsserver_config nc = {
		.root = p->root,
		.pin_dir = p->pin_dir,
		.uenv_dir = p->uenv_dir,
		.uenv_mount_base = p->uenv_mount_base,
		.state_path = p->allocations,
		.cgroup_root = a->cfg->cgroup_root,
		.alloc_cgroup = a->cfg->alloc_cgroup,
		.build_id = a->build_id,
		.allow_uids = a->cfg->allow_uids,
		.n_allow_uids = a->cfg->n_allow_uids,
		.allow_gids = a->cfg->allow_gids,
		.n_allow_gids = a->cfg->n_allow_gids,
		.max_conns = a->cfg->max_conns,
		.max_pending = a->cfg->max_pending,
		.max_conns_per_uid = a->cfg->max_conns_per_uid,
		.max_pending_per_uid = a->cfg->max_pending_per_uid,
		.max_allocations = a->cfg->max_allocations,
		.max_subscribers = a->cfg->max_subscribers,
		.max_body = a->cfg->max_frame,
		.max_queued = a->cfg->max_buffered,
	};
	int r = nsserver_new(a->loop, &nc, &a->ns);

	if (r < 0)
		log_error("agent.state", proto_strerror(r), "path=%s",
		    p->allocations);
	return r;
}

/*
 * Drop the in-memory table and load it again from disk, as a cold start
 * does (pins reconciled, unknown pins swept).  Only while sealed or
 * drained: no creation is in flight and no client is being answered.
 */
static int
reload_nsserver(struct agent *a)
{
	struct nsserver *old = a->ns;
	uint64_t seq_before = 0, seq_after = 0;
	uint8_t d[NSSERVER_DIGEST_LEN];

	if (old)
		nsserver_state(old, &seq_before, d);
	a->ns = NULL;
	if (open_nsserver(a) < 0) {
		a->ns = old;
		return -EIO;
	}
	nsserver_free(old);
	nsserver_state(a->ns, &seq_after, d);
	log_info("ns.reloaded", "table reloaded from disk after the lock was "
	    "let go", "seq_memory=%" PRIu64 " seq_disk=%" PRIu64
	    " allocations=%u", seq_before, seq_after, nsserver_count(a->ns));
	return 0;
}

/* The "ns" listener: inherited when supervised, bound here when alone. */
static int
find_ns_listener(struct agent *a)
{
	const struct listenfd *l = listenfds_find(a->lfds, a->nlfds, "ns");

	if (l) {
		a->ns_fd = l->fd;
		return 0;
	}
	if (a->nlfds > 0) {
		log_error("agent.listeners", "inherited listeners have no "
		    "\"ns\" socket", "count=%u", a->nlfds);
		return -EINVAL;
	}
	paths_mkparent(a->cfg->paths.ns_socket, 0755);
	a->own_ns_fd = usock_listen(a->cfg->paths.ns_socket, 0660, SOMAXCONN);
	if (a->own_ns_fd < 0) {
		log_error("agent.listen", proto_strerror(a->own_ns_fd), "path=%s",
		    a->cfg->paths.ns_socket);
		return a->own_ns_fd;
	}
	a->ns_fd = a->own_ns_fd;
	return 0;
}

static int
cold_start(struct agent *a)
{
	pid_t holder = 0;
	int r;

	r = lock_acquire_wait(a->cfg->paths.state_dir, COLD_LOCK_MS, &a->lock,
	    &holder);
	if (r < 0) {
		log_error("agent.lock", r == -EWOULDBLOCK ? "data-dir lock is "
		    "held by a live agent" : proto_strerror(r), "dir=%s holder=%d",
		    a->cfg->paths.state_dir, (int)holder);
		return 69;
	}
	if (find_ns_listener(a) < 0 || open_nsserver(a) < 0)
		return 78;
	r = nsserver_start(a->ns, a->ns_fd);
	if (r < 0) {
		log_error("agent.serve", proto_strerror(r), NULL);
		return 69;
	}
	paths_mkparent(a->cfg->paths.agent_socket, 0755);
	a->ctl_fd = usock_listen(a->cfg->paths.agent_socket, 0600, 16);
	if (a->ctl_fd < 0 || start_control(a) < 0) {
		log_error("agent.control", proto_strerror(a->ctl_fd), "path=%s",
		    a->cfg->paths.agent_socket);
		return 69;
	}
	nsserver_set_ready(a->ns, true);
	write_ready(a);
	log_info("agent.serving", "cold start", "allocations=%u",
	    nsserver_count(a->ns));
	return 0;
}

/* ---- successor ---- */

static void
successor_fail(struct agent *a, const char *why)
{
	log_error("successor.abandon", why, "handoff_id=%s",
	    handoff_id_or_dash(a));
	if (a->ctl_tmp[0])
		(void)unlink(a->ctl_tmp);
	a->nst = NST_OFF;
	agent_exit(a, 75);
}

static void
n_timer_cb(uv_timer_t *t)
{
	struct agent *a = t->data;

	successor_fail(a, a->nst == NST_HELLO_SENT ?
	    "no HELLO_ACK from the supervisor in time" :
	    "no BEGIN from the supervisor in time");
}

static void
do_begin(struct agent *a, const struct msg *m)
{
	struct msg r = { .type = MSG_READY };
	const char *names[LISTENFDS_MAX];
	uint8_t digest[NSSERVER_DIGEST_LEN];
	const struct bin *want = &m->u.BEGIN.state_digest;
	bool promoted = want->len == 0;
	bool match;
	uint64_t seq;
	pid_t holder = 0;
	unsigned i;
	int rc;

	uv_timer_stop(&a->n_timer);
	/* From here on this process outlives a dying supervisor. */
	(void)prctl(PR_SET_PDEATHSIG, 0);
	CRASHPOINT(n_after_begin);
	rc = lock_acquire_wait(a->cfg->paths.state_dir, RELOCK_MS + 1000,
	    &a->lock, &holder);
	if (rc < 0) {
		log_error("successor.lock", proto_strerror(rc), "holder=%d",
		    (int)holder);
		successor_fail(a, "could not take the data-dir lock");
		return;
	}
	CRASHPOINT(n_after_lock);
	if (open_nsserver(a) < 0) {
		successor_fail(a, "could not load the allocation table");
		return;
	}
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
		send_or_log(a->up, &r);
		lock_release(a->lock);
		a->lock = NULL;
		successor_fail(a, "state mismatch");
		return;
	}
	rc = nsserver_bump_generation(a->ns);
	if (rc < 0)
		log_warn("successor.generation", proto_strerror(rc), NULL);
	/*
	 * Moved connections only with the bump durable: it tells a resuming
	 * incumbent that its copies are no longer its own (connxfer.h).
	 */
	if (a->xin && rc == 0) {
		rc = connxfer_in_adopt(a->xin, a->ns, clock_mono_ms() +
		    XFER_WAIT_MS);
		if (rc >= 0)
			log_info("successor.conns_adopted", NULL, "conns=%d", rc);
	} else if (a->xin) {
		connxfer_in_free(a->xin);
	}
	a->xin = NULL;
	rc = nsserver_start(a->ns, a->ns_fd);
	if (rc < 0) {
		lock_release(a->lock);
		a->lock = NULL;
		successor_fail(a, "could not start serving");
		return;
	}
	nsserver_set_ready(a->ns, true);
	if (rename(a->ctl_tmp, a->cfg->paths.agent_socket) < 0 ||
	    start_control(a) < 0) {
		log_error("successor.control", strerror(errno), "path=%s",
		    a->cfg->paths.agent_socket);
	}
	a->ctl_tmp[0] = '\0';
	write_ready(a);
	for (i = 0; i < a->nlfds; i++)
		names[i] = a->lfds[i].name;
	r.u.READY.listening_on.n = a->nlfds;
	r.u.READY.listening_on.v = names;
	r.u.READY.healthz_ok = true;
	CRASHPOINT(n_before_announce_ready);
	send_or_log(a->up, &r);
	a->nst = NST_OFF;
	uv_timer_stop(&a->hb_timer);
	crashpoint_set_role("incumbent");
	log_info("agent.serving", promoted ? "successor promoted" :
	    "successor took over", "handoff_id=%s allocations=%u "
	    "state_seq=%" PRIu64, a->hid, nsserver_count(a->ns), seq);
	CRASHPOINT(n_after_ready_sent);
}

static void
up_frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct agent *a = data;
	const struct msg *m = &f->m;
	uint16_t v;
	int r;

	(void)c;
	if (m->type == MSG_HEARTBEAT)
		goto out;
	if (a->nst == NST_HELLO_SENT && m->type == MSG_HELLO_ACK) {
		if (proto_negotiate(PROTO_VERSION_MIN, PROTO_VERSION_MAX,
		    m->u.HELLO_ACK.proto_version, m->u.HELLO_ACK.proto_version,
		    &v) < 0) {
			successor_fail(a, "unsupported protocol version");
			goto out;
		}
		snprintf(a->hid, sizeof(a->hid), "%s", m->u.HELLO_ACK.handoff_id);
		/* The channel on which the incumbent's connections will come. */
		if (f->nfds == 1 && !a->xin &&
		    connxfer_in_start(a->loop, frame_take_fd(f, 0), &a->xin) < 0)
			log_warn("successor.conns", "cannot receive moved "
			    "connections", NULL);
		CRASHPOINT(n_after_handshake);
		/* Everything that needs no lock, before BEGIN: the gap stays small. */
		usock_tmp_name(a->ctl_tmp, a->cfg->paths.agent_socket);
		paths_mkparent(a->ctl_tmp, 0755);
		r = usock_listen_tmp(a->ctl_tmp, 0600, 16);
		if (r < 0) {
			successor_fail(a, "cannot bind the control socket");
			goto out;
		}
		a->ctl_fd = r;
		a->nst = NST_WAIT_BEGIN;
		uv_timer_start(&a->n_timer, n_timer_cb, a->begin_wait_ms, 0);
		goto out;
	}
	if (a->nst == NST_WAIT_BEGIN && m->type == MSG_BEGIN &&
	    strcmp(m->u.BEGIN.handoff_id, a->hid) == 0) {
		do_begin(a, m);
		goto out;
	}
	if (a->nst != NST_OFF && m->type == MSG_ABORT) {
		successor_fail(a, m->u.ABORT.reason);
		goto out;
	}
	if (a->nst == NST_OFF)
		goto out;	/* after READY: nothing more is expected */
	log_warn("successor.unexpected", "unexpected message", "type=%s",
	    msg_type_name(m->type));
	successor_fail(a, "protocol violation by the supervisor");
out:
	frame_release(f);
}

static void
up_close_cb(struct conn *c, int err, void *data)
{
	struct agent *a = data;

	(void)c;
	(void)err;
	a->up = NULL;
	if (a->nst != NST_OFF)
		successor_fail(a, "supervisor went away before BEGIN");
}

static int
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
	if (find_ns_listener(a) < 0 || a->own_ns_fd >= 0) {
		log_error("successor.listeners", "a successor must inherit the "
		    "\"ns\" listener", NULL);
		return 78;
	}
	r = conn_open(a->loop, (int)fd, &opts, up_frame_cb, up_close_cb, a,
	    &a->up);
	if (r < 0)
		return 78;
	CRASHPOINT(n_before_handshake);
	send_hello(a, a->up, "successor");
	a->nst = NST_HELLO_SENT;
	uv_timer_start(&a->n_timer, n_timer_cb, HELLO_ACK_MS, 0);
	uv_timer_start(&a->hb_timer, hb_cb, HEARTBEAT_MS, HEARTBEAT_MS);
	return 0;
}

/* ---- lifecycle ---- */

static void
close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
agent_exit(struct agent *a, int code)
{
	a->exit_code = code;
	a->stopping = true;
	uv_stop(a->loop);
}

static void
stop_drained_cb(void *data, unsigned remaining)
{
	struct agent *a = data;
	struct stat st;

	/* Stopping without a successor: the paths no longer lead anywhere. */
	if (a->ctl_ino && stat(a->cfg->paths.agent_socket, &st) == 0 &&
	    st.st_ino == a->ctl_ino)
		(void)unlink(a->cfg->paths.agent_socket);
	(void)unlink(a->cfg->paths.ready_file);
	log_info("agent.stop", "stopped", "open_remaining=%u", remaining);
	agent_exit(a, 0);
}

static void
sig_cb(uv_signal_t *s, int signum)
{
	struct agent *a = s->data;

	if (signum == SIGCHLD) {
		int status;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (!a->ns || !nsserver_reap(a->ns, pid, status))
				log_debug("agent.reap", NULL, "child=%d", (int)pid);
		return;
	}
	if (a->stopping)
		return;
	a->stopping = true;
	log_info("agent.stopping", "signal received", "signal=%d", signum);
	if (a->nst != NST_OFF || !a->ns) {
		successor_fail(a, "stopped by signal");
		return;
	}
	stop_control(a);
	nsserver_drain(a->ns, clock_mono_ms() + STOP_DRAIN_MS, stop_drained_cb, a);
}

int
agent_run(const struct agent_config *cfg)
{
	struct agent a = { .cfg = cfg, .ns_fd = -1, .own_ns_fd = -1, .ctl_fd = -1,
	    .xfer_fd = -1 };
	const char *role;
	uv_loop_t loop;
	unsigned i;
	int r;

	snprintf(a.build_id, sizeof(a.build_id), "baton-agent %s", baton_version);
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	/* A hangup aimed at the supervisor's process group is not for us. */
	signal(SIGHUP, SIG_IGN);
	r = listenfds_parse(a.lfds, LISTENFDS_MAX, &a.nlfds);
	if (r < 0) {
		log_error("agent.listeners", proto_strerror(r), NULL);
		return 78;
	}
	role = getenv("HANDOFF_ROLE");
	if (role && strcmp(role, "successor") != 0) {
		log_error("agent.env", "unknown HANDOFF_ROLE", "value=%s", role);
		return 78;
	}
	crashpoint_set_role(role ? "successor" : "incumbent");
	if (paths_mkdirs(cfg->paths.state_dir, 0700) < 0 ||
	    paths_mkparent(cfg->paths.ready_file, 0755) < 0) {
		log_error("agent.dirs", strerror(errno), "dir=%s",
		    cfg->paths.state_dir);
		return 78;
	}
	if (sandbox_check_dir(cfg->paths.state_dir, false) < 0 ||
	    sandbox_check_dir(cfg->paths.ready_file, true) < 0)
		return 78;
	uv_loop_init(&loop);
	a.loop = &loop;
	uv_timer_init(&loop, &a.hb_timer);
	uv_timer_init(&loop, &a.wd_timer);
	uv_timer_init(&loop, &a.n_timer);
	a.hb_timer.data = a.wd_timer.data = a.n_timer.data = &a;
	uv_signal_init(&loop, &a.sig_term);
	uv_signal_init(&loop, &a.sig_int);
	uv_signal_init(&loop, &a.sig_chld);
	a.sig_term.data = a.sig_int.data = a.sig_chld.data = &a;
	uv_signal_start(&a.sig_term, sig_cb, SIGTERM);
	uv_signal_start(&a.sig_int, sig_cb, SIGINT);
	uv_signal_start(&a.sig_chld, sig_cb, SIGCHLD);

	r = role ? successor_start(&a) : cold_start(&a);
	/* Last start-up step: listeners, sockets and lock are set up. */
	if (r == 0 && sandbox_start(SANDBOX_AGENT, cfg->no_seccomp) < 0)
		r = 78;
	if (r == 0)
		uv_run(&loop, UV_RUN_DEFAULT);
	else
		a.exit_code = r;

	/* Tear down: connections closed, allocations and listeners left. */
	if (a.sess)
		conn_close(a.sess);
	if (a.up)
		conn_close(a.up);
	connxfer_in_free(a.xin);
	a.xin = NULL;
	connxfer_out_free(&a.xout);
	if (a.xfer_fd >= 0)
		close(a.xfer_fd);
	if (a.ns)
		nsserver_free(a.ns);
	a.ns = NULL;
	stop_control(&a);
	uv_walk(&loop, close_walk_cb, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (a.ctl_tmp[0])
		(void)unlink(a.ctl_tmp);
	if (a.ctl_fd >= 0)
		close(a.ctl_fd);
	if (a.own_ns_fd >= 0)
		close(a.own_ns_fd);
	for (i = 0; i < a.nlfds; i++)
		close(a.lfds[i].fd);
	lock_release(a.lock);
	return a.exit_code;
}
