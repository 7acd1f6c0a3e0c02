/*
 * agent: baton-agent's lifecycle around the namespace provider
 * (nsserver): start-up in a role, the control socket, signals, tear-down,
 * and the helpers both handoff roles share.
 *
 * Cold start: take the data-dir lock, load the allocation table, serve
 * the inherited "ns" listener (or bind one), bind the control socket.
 * Started as a successor, succrole.c runs the start-up under the
 * supervisor.  Both then run as the incumbent (incumbent.c).
 *
 * Invariants kept here:
 * - listeners are never closed while the process serves;
 * - the readiness file is written only once this process serves (cold
 *   start, READY, every resume) and removed when it stops without a
 *   successor;
 * - each timer and signal handler feeds exactly one role's table: the
 *   successor's while it is one (nst != off), the incumbent's after.
 */
#include <errno.h>
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
#include "successor/agent_int.h"
#include "successor/nsserver.h"

#define STOP_DRAIN_MS		10000
#define COLD_LOCK_MS		5000
#define READY_TRIES		20

const char *
agent_hid(const struct agent *a)
{
	return a->hid[0] ? a->hid : "-";
}

/* The readiness file: plain text for humans and scripts, written atomically. */
int
agent_write_ready(const struct agent *a)
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
		if (r == 0 || !atomicfile_transient(r))
			break;
	}
	if (r < 0)
		log_error("agent.ready", strerror(-r), "path=%s",
		    a->cfg->paths.ready_file);
	return r;
}

void
agent_send(struct conn *c, const struct msg *m)
{
	int r = conn_send(c, m, NULL, 0);

	if (r < 0)
		log_warn("agent.send", proto_strerror(r), "type=%s",
		    msg_type_name(m->type));
}

/* HELLO in a role: the first frame on a supervisor connection (SPEC §4). */
void
agent_send_hello(const struct agent *a, struct conn *c, const char *role)
{
	static const char *caps[] = { PROTO_CAP_CONN_MOVE };
	struct msg m = { .type = MSG_HELLO };

	m.u.HELLO.capabilities.n = 1;
	m.u.HELLO.capabilities.v = caps;
	m.u.HELLO.role = role;
	m.u.HELLO.pid = (uint32_t)getpid();
	m.u.HELLO.build_id = a->build_id;
	m.u.HELLO.proto_min = PROTO_VERSION_MIN;
	m.u.HELLO.proto_max = PROTO_VERSION_MAX;
	agent_send(c, &m);
}

/* The heartbeat timer: a tick for whichever role is running. */
void
agent_hb_cb(uv_timer_t *t)
{
	struct agent *a = t->data;

	if (a->nst != NST_OFF)
		successor_event(a, NE_TICK);
	else
		incumbent_event(a, OE_TICK);
}

void
agent_stop_control(struct agent *a)
{
	acceptor_stop(a->ctl_acc);
	a->ctl_acc = NULL;
}

/* Start polling the (already bound and renamed) control listener. */
int
agent_start_control(struct agent *a)
{
	struct stat st;

	if (stat(a->cfg->paths.agent_socket, &st) == 0)
		a->ctl_ino = st.st_ino;
	return acceptor_start(a->loop, a->ctl_fd, &(struct acceptor_opts){
	    .allow_uids = a->cfg->allow_uids, .n_allow_uids = a->cfg->n_allow_uids,
	    .per_wake = 16, .errstyle = CONN_ERR_CONTROL,
	    .refused_event = "control.denied", .refused_text = "permission denied" },
	    incumbent_accept_cb, a, &a->ctl_acc);
}

/*
 * After a resume: a successor that died between renaming its control
 * socket into place and READY left the path pointing at a dead socket,
 * and the ready file naming itself.  Take both back.
 */
void
agent_reclaim_paths(struct agent *a)
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
			agent_stop_control(a);
			close(a->ctl_fd);
			a->ctl_fd = fd;
			if (agent_start_control(a) < 0)
				log_error("agent.control", "cannot poll", NULL);
			log_info("agent.control", "control socket path reclaimed",
			    "path=%s", a->cfg->paths.agent_socket);
		}
	}
	/* Temp table files an older build's successor left when killed. */
	(void)atomicfile_cleanup(a->cfg->paths.allocations);
	agent_write_ready(a);
}

int
agent_open_ns(struct agent *a, const uint8_t *sealed_digest)
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
		.preload = a->pre,
		.sealed_digest = sealed_digest,
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
int
agent_reload_ns(struct agent *a)
{
	struct nsserver *old = a->ns;
	uint64_t seq_before = 0, seq_after = 0;
	uint8_t d[NSSERVER_DIGEST_LEN];

	if (old)
		nsserver_state(old, &seq_before, d);
	a->ns = NULL;
	if (agent_open_ns(a, NULL) < 0) {
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
int
agent_find_ns_listener(struct agent *a)
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
	if (agent_find_ns_listener(a) < 0 || agent_open_ns(a, NULL) < 0)
		return 78;
	r = nsserver_start(a->ns, a->ns_fd);
	if (r < 0) {
		log_error("agent.serve", proto_strerror(r), NULL);
		return 69;
	}
	paths_mkparent(a->cfg->paths.agent_socket, 0755);
	a->ctl_fd = usock_listen(a->cfg->paths.agent_socket, 0600, 16);
	if (a->ctl_fd < 0 || agent_start_control(a) < 0) {
		log_error("agent.control", proto_strerror(a->ctl_fd), "path=%s",
		    a->cfg->paths.agent_socket);
		return 69;
	}
	nsserver_set_ready(a->ns, true);
	agent_write_ready(a);
	log_info("agent.serving", "cold start", "allocations=%u",
	    nsserver_count(a->ns));
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

void
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

void
agent_stop(struct agent *a)
{
	agent_stop_control(a);
	nsserver_drain(a->ns, clock_mono_ms() + STOP_DRAIN_MS, stop_drained_cb, a);
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
	/* No table served yet (or still starting up): the successor's. */
	if (a->nst != NST_OFF || !a->ns)
		successor_event(a, NE_SIGNAL);
	else
		incumbent_event(a, OE_SIGNAL);
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
	/*
	 * A successor enters its sandbox first: building and loading the
	 * filter is ~0.7 ms of CPU, which a standby spends before it says
	 * it waits, and a spawned successor before its HELLO, never between
	 * the incumbent's seal and BEGIN.  Its start-up (head start, lock,
	 * control socket) runs under the agent's rules.
	 */
	if (role && sandbox_start(SANDBOX_AGENT, cfg->no_seccomp) < 0)
		return 78;
	/* Started ahead: everything before this point is off the handoff. */
	if (role && !successor_standby_wait(&r))
		return r;
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
	/* A cold start's last step: listeners, sockets and lock are set up. */
	if (r == 0 && !role && sandbox_start(SANDBOX_AGENT, cfg->no_seccomp) < 0)
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
	nsserver_preload_free(a.pre);
	a.pre = NULL;
	connxfer_out_free(&a.xout);
	if (a.xfer_fd >= 0)
		close(a.xfer_fd);
	if (a.ns)
		nsserver_free(a.ns);
	a.ns = NULL;
	agent_stop_control(&a);
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
