/*
 * sup: baton-supervisor's core.  Holds the listeners for its whole life,
 * keeps exactly one incumbent agent running (cold start, restart with
 * backoff, adoption after its own restart), runs handoffs one at a time
 * and stops the agent gracefully on SIGTERM.
 *
 * Invariants kept here:
 * - listener fds are never closed while the process runs; after a
 *   restart they are taken back from the running agent (GET_LISTENERS)
 *   rather than bound again, so the socket clients know never changes;
 * - a cold start happens only when no live agent holds the data-dir lock;
 * - a journal left by a dead supervisor is resolved (adopt the lock
 *   holder, kill the other agent of that handoff) and cleared at start,
 *   before the loop runs (recover.c; it blocks, nothing else here does):
 *   listeners are bound only when recovery took none;
 * - once the loop runs, nothing waits on another process or a socket:
 *   children are reaped with WNOHANG, waits are timers, sockets are the
 *   non-blocking conns of ctl and handoff, sd_notify drops rather than
 *   waits; the exceptions are bounded and local: the durable writes
 *   (journal, metrics) fsync, and agentlog_describe() waits at most
 *   REAP_WAIT_MS for a child whose pipe closed to become reapable;
 * - sup owns the state (struct sup) and the modules it runs; they do not
 *   see it.  A handoff gets a struct handoff_env and reports through its
 *   serving/done callbacks, the control socket gets struct ctl_ops
 *   (status, upgrade) and is told results with ctl_upgrade_done().
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/spawn.h"
#include "common/sandbox.h"
#include "common/usock.h"
#include "proto/frame.h"
#include "supervisor/agentcmd.h"
#include "supervisor/agentlog.h"
#include "supervisor/ctl.h"
#include "supervisor/handoff.h"
#include "supervisor/metrics.h"
#include "supervisor/procwatch.h"
#include "supervisor/recover.h"
#include "supervisor/sdnotify.h"
#include "supervisor/standby.h"
#include "supervisor/sup.h"

#define READY_POLL_MS		20
#define READY_TIMEOUT_MS	30000
#define BACKOFF_MIN_MS		1000
#define BACKOFF_MAX_MS		30000
#define HEALTHY_MS		10000
#define STOP_GRACE_MS		15000

static const char *const state_names[] = {
	"starting", "running", "handoff", "backoff", "stopping",
};

static void agent_exit_cb(struct procwatch *w, pid_t pid, void *data);
static void schedule_restart(struct sup *s);
static void cold_start(struct sup *s);
static void replace_done(struct sup *s, bool ready, const char *why);
static void standby_refresh(struct sup *s);

/* The incumbent is now pid (a committed successor or an adopted agent). */
static void
set_agent(struct sup *s, pid_t pid, const char *binary)
{
	int r;

	procwatch_stop(s->agent_watch);
	s->agent_watch = NULL;
	s->agent_pid = pid;
	s->agent_since_ms = clock_mono_ms();
	if (binary && binary != s->agent_binary)
		snprintf(s->agent_binary, sizeof(s->agent_binary), "%s", binary);
	if (pid <= 0)
		return;
	r = procwatch_start(s->loop, pid, agent_exit_cb, s, &s->agent_watch);
	if (r < 0) {
		log_warn("agent.watch", proto_strerror(r), "pid=%d", (int)pid);
		s->agent_pid = 0;
		if (s->state == SUP_RUNNING)
			schedule_restart(s);
	}
}

static void
stop_done(struct sup *s)
{
	log_info("supervisor.stopped", NULL, NULL);
	uv_stop(s->loop);
}

static void
agent_exit_cb(struct procwatch *w, pid_t pid, void *data)
{
	struct sup *s = data;
	char why[256];

	procwatch_stop(w);
	if (w == s->agent_watch)
		s->agent_watch = NULL;
	if (pid != s->agent_pid)
		return;
	s->agent_pid = 0;
	if (s->state == SUP_STOPPING) {
		uv_timer_stop(&s->timer);
		stop_done(s);
		return;
	}
	if (s->state == SUP_HANDOFF)
		return;	/* the handoff sees it through its own watch */
	agentlog_describe(pid, why, sizeof(why));
	log_warn("agent.exited", why, "pid=%d", (int)pid);
	snprintf(s->last_agent_exit, sizeof(s->last_agent_exit), "pid %d: %s",
	    (int)pid, why);
	replace_done(s, false, why);
	schedule_restart(s);
}

/* ---- cold start ---- */

static pid_t
ready_file_pid(const struct sup *s)
{
	char buf[128];
	ssize_t n;
	int fd = open(s->cfg->paths.ready_file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 4 || strncmp(buf, "pid=", 4) != 0)
		return 0;
	buf[n] = '\0';
	return (pid_t)atoi(buf + 4);
}

static void
ready_poll_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	if (s->state != SUP_STARTING)
		return;
	if (s->agent_pid > 0 && ready_file_pid(s) == s->agent_pid) {
		s->state = SUP_RUNNING;
		log_info("agent.ready", NULL, "pid=%d binary=%s", (int)s->agent_pid,
		    s->agent_binary);
		sdnotify_ready("agent serving");
		replace_done(s, true, NULL);
		metrics_write();
		standby_refresh(s);
		return;
	}
	if (clock_mono_ms() - s->agent_since_ms > READY_TIMEOUT_MS) {
		log_error("agent.start_timeout", "agent did not become ready; "
		    "killing it", "pid=%d", (int)s->agent_pid);
		if (s->agent_pid > 0)
			kill(s->agent_pid, SIGKILL);
		return;	/* the exit watch schedules the restart */
	}
	uv_timer_start(&s->timer, ready_poll_cb, READY_POLL_MS, 0);
}

static void
cold_start(struct sup *s)
{
	const char *argv[AGENT_MAX_ARGS + 4];
	const char *names[LISTENFDS_MAX];
	pid_t pid;

	agentcmd_argv(s->agent_binary, s->cfg->paths.root, s->cfg->agent_args,
	    s->cfg->n_agent_args, (const char (*)[LISTENFDS_NAME_MAX])s->lnames,
	    s->nl, argv, names);
	s->state = SUP_STARTING;
	pid = agentlog_spawn(s->loop, &(struct spawn_opts){
		.path = s->agent_binary,
		.argv = argv,
		.env_drop = agentcmd_env_drop,
		.listen_fds = s->lfds,
		.listen_names = names,
		.n_listen = s->nl,
		.extra_fd = -1,
	});
	if (pid < 0) {
		log_error("agent.spawn", proto_strerror((int)pid), "binary=%s",
		    s->agent_binary);
		s->agent_pid = 0;
		replace_done(s, false, proto_strerror((int)pid));
		schedule_restart(s);
		return;
	}
	log_info("agent.start", "cold start", "pid=%d binary=%s", (int)pid,
	    s->agent_binary);
	set_agent(s, pid, NULL);
	uv_timer_start(&s->timer, ready_poll_cb, READY_POLL_MS, 0);
}

static void
backoff_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	if (s->state == SUP_BACKOFF)
		cold_start(s);
}

static void
schedule_restart(struct sup *s)
{
	uint64_t delay = 0;
	unsigned k;

	if (s->agent_since_ms && clock_mono_ms() - s->agent_since_ms >= HEALTHY_MS)
		s->restarts_in_row = 0;
	k = s->restarts_in_row++;
	if (k > 0) {
		delay = BACKOFF_MIN_MS;
		while (--k > 0 && delay < BACKOFF_MAX_MS)
			delay *= 2;
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
	}
	s->agent_restarts++;
	s->state = SUP_BACKOFF;
	metrics_write();
	log_info("agent.restart", "restarting the agent", "delay_ms=%" PRIu64
	    " in_row=%u", delay, s->restarts_in_row);
	sdnotify_status("restarting agent");
	uv_timer_start(&s->timer, backoff_cb, delay, 0);
}

/*
 * The supervisor execs only an absolute, regular, executable file that
 * others cannot write, inside --allow-binary-dir when one is given.
 * Returns 0 or -errno (logged).
 */
static int
check_agent_binary(const struct sup_config *cfg, const char *path)
{
	char real[PATH_MAX], dir[PATH_MAX];
	struct stat st;
	const char *why = NULL;
	size_t dl;
	int r = -EPERM;

	if (path[0] != '/') {
		why = "not an absolute path";
		r = -EINVAL;
	} else if (stat(path, &st) < 0) {
		r = -errno;
		why = strerror(errno);
	} else if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
		why = "not an executable regular file";
		r = -EACCES;
	} else if (st.st_mode & 0002) {
		why = "writable by others; refusing to exec it";
	} else if (cfg->allow_binary_dir) {
		/* Resolved, so neither symlinks nor ".." lead outside. */
		if (!realpath(path, real) || !realpath(cfg->allow_binary_dir, dir))
			why = "cannot resolve the binary or --allow-binary-dir";
		else if (dl = strlen(dir), strncmp(real, dir, dl) != 0 ||
		    (real[dl] != '/' && dir[dl - 1] != '/'))
			why = "outside --allow-binary-dir";
	}
	if (!why)
		return 0;
	log_error("supervisor.agent_binary", why, "binary=%s", path);
	return r;
}

/* ---- replace: an upgrade while no agent serves ---- */

/*
 * In back-off (the agent died, maybe crash-looping) there is no incumbent
 * to hand over from: cold-start the given binary now instead of waiting,
 * and make it the agent binary from here on.  The waiting batonctl gets
 * CTL_UPGRADE_RESULT when the new agent serves or dies (replace_done).
 * The configured agent arguments apply; --arg/--env are refused.
 */
static int
replace(struct sup *s, const char *binary, unsigned nextra)
{
	int r;

	if (nextra > 0)
		return -ENOTSUP;
	r = check_agent_binary(s->cfg, binary);
	if (r < 0)
		return r;
	uv_timer_stop(&s->timer);
	log_info("agent.replace", "no agent serves: cold-starting the new "
	    "binary", "binary=%s previous=%s", binary, s->agent_binary);
	if (binary != s->agent_binary)
		snprintf(s->agent_binary, sizeof(s->agent_binary), "%s", binary);
	s->replace_t0 = clock_mono_ms();
	s->restarts_in_row = 0;
	cold_start(s);
	return 0;
}

static void
replace_done(struct sup *s, bool ready, const char *why)
{
	struct handoff_result r;
	uuid_t u;

	if (!s->replace_t0)
		return;
	memset(&r, 0, sizeof(r));
	uuid_generate_random(u);
	uuid_unparse_lower(u, r.id);
	r.committed = ready;
	snprintf(r.abort_reason, sizeof(r.abort_reason), "replacement agent "
	    "%s", why ? why : "did not start");
	r.new_pid = ready ? s->agent_pid : 0;
	snprintf(r.new_binary, sizeof(r.new_binary), "%s", s->agent_binary);
	r.total_ms = r.spawn_ms = clock_mono_ms() - s->replace_t0;
	s->replace_t0 = 0;
	snprintf(s->last_abort_reason, sizeof(s->last_abort_reason), "%s",
	    ready ? "" : r.abort_reason);
	log_info("agent.replaced", ready ? NULL : r.abort_reason, "ready=%d "
	    "pid=%d ms=%llu", ready, (int)s->agent_pid,
	    (unsigned long long)r.total_ms);
	ctl_upgrade_done(s->ctl, &r);
}

/* ---- handoffs ---- */

static void
handoff_serving_cb(pid_t pid, const char *binary, void *data)
{
	set_agent(data, pid, binary);
}

static void
handoff_done_cb(const struct handoff_result *r, void *data)
{
	struct sup *s = data;

	s->handoff = NULL;
	if (r->committed)
		s->handoffs_committed++;
	else
		s->handoffs_rolled_back++;
	snprintf(s->last_handoff_id, sizeof(s->last_handoff_id), "%s", r->id);
	snprintf(s->last_abort_reason, sizeof(s->last_abort_reason), "%s",
	    r->committed ? "" : r->abort_reason);
	metrics_handoff(r);
	ctl_upgrade_done(s->ctl, r);
	if (s->agent_pid > 0 && !proc_running(s->agent_pid))
		s->agent_pid = 0;
	if (s->stop_after_handoff) {
		s->state = SUP_RUNNING;
		kill(getpid(), SIGTERM);
		return;
	}
	if (s->agent_pid <= 0) {
		s->state = SUP_RUNNING;
		s->restarts_in_row = 0;
		schedule_restart(s);
		return;
	}
	s->state = SUP_RUNNING;
	sdnotify_ready("agent serving");
	standby_refresh(s);
}

/* ---- the successor started ahead (standby.h) ---- */

/* Keep one for the agent binary while an agent serves and none runs. */
static void
standby_refresh(struct sup *s)
{
	int r;

	if (s->cfg->no_standby || s->state != SUP_RUNNING ||
	    standby_fits(s->standby, s->agent_binary, s->cfg->agent_args,
	    s->cfg->n_agent_args, 0))
		return;
	standby_dismiss(&s->standby, "the agent binary or its arguments "
	    "changed");
	r = standby_start(s->loop, &(struct agentcmd_successor){
		.binary = s->agent_binary,
		.root = s->cfg->paths.root,
		.args = s->cfg->agent_args,
		.nargs = s->cfg->n_agent_args,
		.lfds = s->lfds,
		.lnames = (const char (*)[LISTENFDS_NAME_MAX])s->lnames,
		.nl = s->nl,
	}, &s->standby);
	if (r < 0)
		log_warn("standby.start", proto_strerror(r), "binary=%s",
		    s->agent_binary);
}

/* handoff_env.take_standby: it, if it is what the handoff would spawn. */
static int
take_standby(const struct handoff_params *p, pid_t *ret_pid, int *ret_fd,
    void *data)
{
	struct sup *s = data;
	struct standby *sb = s->standby;

	s->standby = NULL;
	if (!sb)
		return -ENOENT;
	if (!standby_fits(sb, p->binary, p->args, p->nargs, p->nenv)) {
		standby_dismiss(&sb, "the upgrade asks for another binary, "
		    "file, arguments or environment");
		return -ESTALE;
	}
	return standby_take(sb, p->deadline_ms, ret_pid, ret_fd);
}

/* Start an upgrade: from batonctl (ctl_ops.upgrade) or SIGHUP. */
static int
upgrade(void *data, const char *binary, const char *const *args,
    unsigned nargs, const char *const *env, unsigned nenv,
    uint64_t deadline_ms, uint64_t drain_grace_ms)
{
	struct sup *s = data;
	struct handoff_params p = {
		.binary = binary && *binary ? binary : s->agent_binary,
		.args = nargs ? args : s->cfg->agent_args,
		.nargs = nargs ? nargs : s->cfg->n_agent_args,
		.env = env,
		.nenv = nenv,
		.deadline_ms = deadline_ms ? deadline_ms : s->cfg->deadline_ms,
		.drain_grace_ms = drain_grace_ms ? drain_grace_ms :
		    s->cfg->drain_grace_ms,
	};
	int r;

	if (s->state == SUP_HANDOFF || s->replace_t0)
		return -EINPROGRESS;
	if (s->state == SUP_BACKOFF)
		return replace(s, p.binary, nargs + nenv);
	if (s->state == SUP_STARTING)
		return -EBUSY;	/* batonctl waits for the agent to serve */
	if (s->state != SUP_RUNNING || s->agent_pid <= 0)
		return -EAGAIN;
	r = check_agent_binary(s->cfg, p.binary);
	if (r < 0)
		return r;
	r = handoff_start(&(struct handoff_env){
		.loop = s->loop,
		.root = s->cfg->paths.root,
		.agent_socket = s->cfg->paths.agent_socket,
		.state_dir = s->cfg->paths.state_dir,
		.journal = s->cfg->paths.journal,
		.last_handoff = s->cfg->paths.last_handoff,
		.lfds = s->lfds,
		.lnames = (const char (*)[LISTENFDS_NAME_MAX])s->lnames,
		.nl = s->nl,
		.incumbent_pid = s->agent_pid,
		.incumbent_binary = s->agent_binary,
		.serving_cb = handoff_serving_cb,
		.done_cb = handoff_done_cb,
		.take_standby = take_standby,
		.data = s,
	}, &p, &s->handoff);
	if (r < 0)
		return r;
	s->state = SUP_HANDOFF;
	sdnotify_reloading("handoff in progress", p.deadline_ms);
	return 0;
}

/* ---- the control socket's view ---- */

static void
ctl_status_cb(void *data, struct ctl_status *ret)
{
	const struct sup *s = data;

	ret->agent_pid = s->agent_pid > 0 ? s->agent_pid : 0;
	ret->agent_binary = s->agent_binary;
	ret->state = state_names[s->state];
	ret->stopping = s->state == SUP_STOPPING;
	ret->handoff_id = s->handoff ? handoff_id(s->handoff) : NULL;
	ret->handoffs_committed = s->handoffs_committed;
	ret->handoffs_rolled_back = s->handoffs_rolled_back;
	ret->agent_restarts = s->agent_restarts;
	ret->uptime_ms = clock_mono_ms() - s->started_ms;
	ret->last_abort_reason = s->last_abort_reason;
	ret->last_agent_exit = s->last_agent_exit;
}

static void
metrics_view_cb(void *data, struct metrics_view *ret)
{
	const struct sup *s = data;

	ret->handoffs_committed = s->handoffs_committed;
	ret->handoffs_rolled_back = s->handoffs_rolled_back;
	ret->agent_restarts = s->agent_restarts;
	ret->agent_pid = s->agent_pid > 0 ? s->agent_pid : 0;
	ret->agent_up = s->agent_pid > 0 && (s->state == SUP_RUNNING ||
	    s->state == SUP_HANDOFF);
	ret->restarts_in_row = s->restarts_in_row;
	ret->state_names = state_names;
	ret->nstates = sizeof(state_names) / sizeof(state_names[0]);
	ret->state = s->state;
}

/* ---- recovery after our own restart (before the loop runs) ---- */

/* Returns true when a running agent was adopted. */
static bool
recover_agent(struct sup *s)
{
	struct recover rc = {
		.paths = &s->cfg->paths,
		.listen_names = (const char (*)[LISTENFDS_NAME_MAX])
		    s->cfg->listen_names,
		.listen_paths = (const char (*)[PATH_MAX])s->cfg->listen_paths,
		.n_listen = s->cfg->n_listen,
		.from_systemd = s->from_systemd,
		.lfds = s->lfds,
		.lnames = s->lnames,
		.nl = &s->nl,
	};

	snprintf(rc.agent_binary, sizeof(rc.agent_binary), "%s",
	    s->agent_binary);
	if (recover_run(&rc))
		snprintf(s->agent_binary, sizeof(s->agent_binary), "%s",
		    rc.agent_binary);
	if (rc.outcome == RECOVER_COMMITTED)
		s->handoffs_committed++;
	else if (rc.outcome == RECOVER_ROLLED_BACK)
		s->handoffs_rolled_back++;
	if (!rc.adopted)
		return false;
	s->state = SUP_RUNNING;
	set_agent(s, rc.adopted, NULL);
	return true;
}

/* ---- listeners ---- */

static int
bind_listeners(struct sup *s)
{
	unsigned i;
	int fd;

	for (i = 0; i < s->cfg->n_listen; i++) {
		paths_mkparent(s->cfg->listen_paths[i], 0755);
		fd = usock_listen(s->cfg->listen_paths[i], 0660, SOMAXCONN);
		if (fd < 0) {
			log_error("supervisor.listen", proto_strerror(fd),
			    "name=%s path=%s", s->cfg->listen_names[i],
			    s->cfg->listen_paths[i]);
			return fd;
		}
		/* Agents get them blocking-agnostic; they poll before accept. */
		s->lfds[i] = fd;
		snprintf(s->lnames[i], sizeof(s->lnames[i]), "%s",
		    s->cfg->listen_names[i]);
	}
	s->nl = s->cfg->n_listen;
	return 0;
}

/* ---- signals and stop ---- */

static void
stop_timeout_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	log_warn("supervisor.stop", "agent did not stop in time; SIGKILL",
	    "pid=%d", (int)s->agent_pid);
	if (s->agent_pid > 0)
		kill(s->agent_pid, SIGKILL);
	stop_done(s);
}

static void
begin_stop(struct sup *s)
{
	if (s->state == SUP_HANDOFF) {
		log_info("supervisor.stop", "waiting for the handoff to end", NULL);
		s->stop_after_handoff = true;
		return;
	}
	s->state = SUP_STOPPING;
	sdnotify_stopping();
	ctl_stop(s->ctl);
	standby_dismiss(&s->standby, "stopping");
	if (s->agent_pid <= 0 || !proc_running(s->agent_pid)) {
		stop_done(s);
		return;
	}
	log_info("supervisor.stop", "stopping the agent", "pid=%d",
	    (int)s->agent_pid);
	kill(s->agent_pid, SIGTERM);
	uv_timer_start(&s->timer, stop_timeout_cb, STOP_GRACE_MS, 0);
}

static void
sig_cb(uv_signal_t *h, int signum)
{
	struct sup *s = h->data;
	int status, r;
	pid_t pid;

	switch (signum) {
	case SIGCHLD:
		/* We are a subreaper: orphans of agents end here too. */
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			log_debug("supervisor.reap", NULL, "pid=%d status=%d",
			    (int)pid, status);
			agentlog_reaped(pid, status);
		}
		break;
	case SIGHUP:
		r = upgrade(s, NULL, NULL, 0, NULL, 0, 0, 0);
		if (r < 0)
			log_warn("supervisor.sighup", proto_strerror(r), NULL);
		break;
	default:
		if (s->state != SUP_STOPPING)
			begin_stop(s);
		break;
	}
}

static void
close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int
sup_run(struct sup_config *cfg)
{
	struct sup s = { .cfg = cfg };
	struct listenfd lf[LISTENFDS_MAX];
	uv_loop_t loop;
	unsigned i, n = 0;
	int r;

	s.started_ms = clock_mono_ms();
	snprintf(s.agent_binary, sizeof(s.agent_binary), "%s", cfg->agent_path);
	signal(SIGPIPE, SIG_IGN);
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (paths_mkdirs(cfg->paths.state_dir, 0700) < 0 ||
	    paths_mkparent(cfg->paths.supervisor_socket, 0755) < 0) {
		log_error("supervisor.dirs", strerror(errno), "dir=%s",
		    cfg->paths.state_dir);
		return 78;
	}
	if (sandbox_check_dir(cfg->paths.state_dir, false) < 0 ||
	    sandbox_check_dir(cfg->paths.supervisor_socket, true) < 0 ||
	    check_agent_binary(cfg, cfg->agent_path) < 0)
		return 78;
	r = listenfds_parse(lf, LISTENFDS_MAX, &n);
	if (r < 0) {
		log_error("supervisor.listeners", proto_strerror(r), NULL);
		return 78;
	}
	for (i = 0; i < n; i++) {
		s.lfds[i] = lf[i].fd;
		snprintf(s.lnames[i], sizeof(s.lnames[i]), "%s", lf[i].name);
	}
	s.nl = n;
	s.from_systemd = n > 0;
	uv_loop_init(&loop);
	s.loop = &loop;
	metrics_init(&(struct metrics_opts){
		.loop = &loop,
		.path = cfg->paths.metrics,
		.ns_socket = cfg->paths.ns_socket,
		.view = metrics_view_cb,
		.data = &s,
	});
	uv_timer_init(&loop, &s.timer);
	s.timer.data = &s;
	sdnotify_init(&loop);

	if (!recover_agent(&s) && s.nl == 0 && bind_listeners(&s) < 0) {
		r = 69;
		goto out;
	}
	if (s.nl == 0 && bind_listeners(&s) < 0) {
		r = 69;
		goto out;
	}
	r = ctl_start(&loop, &(struct ctl_opts){
		.socket_path = cfg->paths.supervisor_socket,
		.journal = cfg->paths.journal,
		.last_handoff = cfg->paths.last_handoff,
		.allow_uids = cfg->allow_uids,
		.n_allow_uids = cfg->n_allow_uids,
	}, &(struct ctl_ops){
		.status = ctl_status_cb,
		.upgrade = upgrade,
		.data = &s,
	}, &s.ctl);
	if (r < 0) {
		log_error("supervisor.control", proto_strerror(r), "path=%s",
		    cfg->paths.supervisor_socket);
		r = 69;
		goto out;
	}
	uv_signal_init(&loop, &s.sig_term);
	uv_signal_init(&loop, &s.sig_int);
	uv_signal_init(&loop, &s.sig_hup);
	uv_signal_init(&loop, &s.sig_chld);
	s.sig_term.data = s.sig_int.data = s.sig_hup.data = s.sig_chld.data = &s;
	uv_signal_start(&s.sig_term, sig_cb, SIGTERM);
	uv_signal_start(&s.sig_int, sig_cb, SIGINT);
	uv_signal_start(&s.sig_hup, sig_cb, SIGHUP);
	uv_signal_start(&s.sig_chld, sig_cb, SIGCHLD);
	/* Last start-up step: listeners, control socket, signals are set up. */
	if (sandbox_start(SANDBOX_SUPERVISOR, cfg->no_seccomp) < 0) {
		r = 78;
		goto out;
	}
	if (s.state != SUP_RUNNING)
		cold_start(&s);
	else
		sdnotify_ready("agent adopted");
	standby_refresh(&s);
	log_info("supervisor.start", NULL, "root=%s agent=%s listeners=%u",
	    cfg->paths.root, s.agent_binary, s.nl);
	metrics_write();
	uv_run(&loop, UV_RUN_DEFAULT);
	r = 0;
out:
	ctl_stop(s.ctl);
	standby_dismiss(&s.standby, "stopping");
	agentlog_close_all();
	procwatch_stop(s.agent_watch);
	uv_walk(&loop, close_walk_cb, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	ctl_free(s.ctl);
	for (i = 0; i < s.nl; i++)
		close(s.lfds[i]);
	return r;
}
