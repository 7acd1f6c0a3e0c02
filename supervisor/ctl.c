/*
 * ctl: the supervisor's control socket (run/baton/supervisor.sock) for
 * batonctl.  Messages CTL_* (docs/PROTOCOL.md).  Peers are checked with
 * SO_PEERCRED; a bad peer or a bad frame closes only that connection.
 * One upgrade at a time: a second CTL_UPGRADE gets ERROR in_progress.
 *
 * Invariants kept here:
 * - the owner is reached only through struct ctl_ops (status, upgrade);
 *   ctl never reads or changes the owner's state itself;
 * - at most CTL_MAX_CLIENTS connections; one more gets ERROR and closes;
 * - the batonctl waiting for an upgrade's result (upgrade_client) is
 *   set before the owner is asked, so a result given at once finds it,
 *   and is forgotten when it disconnects;
 * - the socket file is unlinked on stop only while it is still the one
 *   this process bound (same inode).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "transport/acceptor.h"
#include "transport/conn.h"
#include "common/log.h"
#include "common/version.h"
#include "common/usock.h"
#include "supervisor/ctl.h"
#include "supervisor/handoff.h"
#include "supervisor/journal.h"

#define CTL_MAX_CLIENTS 64

struct ctl {
	uv_loop_t *loop;
	struct ctl_opts opts;
	struct ctl_ops ops;
	int fd;				/* -1 once stopped */
	ino_t ino;			/* of the socket file we bound */
	struct acceptor *acc;
	unsigned nclients;
	struct conn *upgrade_client;	/* batonctl waiting for the result */
};

static void
send_error(struct conn *c, const char *code, const char *message)
{
	struct msg m = { .type = MSG_ERROR };

	m.u.ERROR.code = code;
	m.u.ERROR.message = message;
	(void)conn_send(c, &m, NULL, 0);
}

static void
reply_status(struct ctl *ctl, struct conn *c)
{
	struct msg m = { .type = MSG_CTL_STATUS_REPLY };
	struct ctl_status s = { 0 };
	char build_id[96];

	snprintf(build_id, sizeof(build_id), "baton-supervisor %s",
	    baton_version);

	ctl->ops.status(ctl->ops.data, &s);
	m.u.CTL_STATUS_REPLY.supervisor_pid = (uint32_t)getpid();
	m.u.CTL_STATUS_REPLY.agent_pid = s.agent_pid > 0 ?
	    (uint32_t)s.agent_pid : 0;
	m.u.CTL_STATUS_REPLY.agent_binary = s.agent_binary;
	m.u.CTL_STATUS_REPLY.state = s.state;
	m.u.CTL_STATUS_REPLY.handoff_id = s.handoff_id;
	m.u.CTL_STATUS_REPLY.handoffs_committed = s.handoffs_committed;
	m.u.CTL_STATUS_REPLY.handoffs_rolled_back = s.handoffs_rolled_back;
	m.u.CTL_STATUS_REPLY.agent_restarts = s.agent_restarts;
	m.u.CTL_STATUS_REPLY.uptime_ms = s.uptime_ms;
	m.u.CTL_STATUS_REPLY.build_id = build_id;
	(void)conn_send(c, &m, NULL, 0);
}

static void
reply_journal(struct ctl *ctl, struct conn *c)
{
	struct msg m = { .type = MSG_CTL_JOURNAL_REPLY };
	struct ctl_status s = { 0 };
	struct journal_rec cur, last;
	char outcome[128];
	bool have_cur, have_last;

	have_cur = journal_read(ctl->opts.journal, &cur) == 0;
	have_last = journal_read(ctl->opts.last_handoff, &last) == 0;
	m.u.CTL_JOURNAL_REPLY.active = have_cur;
	if (have_cur) {
		m.u.CTL_JOURNAL_REPLY.handoff_id = cur.handoff_id;
		m.u.CTL_JOURNAL_REPLY.phase = cur.phase;
		m.u.CTL_JOURNAL_REPLY.incumbent_pid = (uint32_t)cur.incumbent_pid;
		m.u.CTL_JOURNAL_REPLY.successor_pid = (uint32_t)cur.successor_pid;
		m.u.CTL_JOURNAL_REPLY.binary = cur.successor_binary;
		m.u.CTL_JOURNAL_REPLY.started_at_ms = cur.started_at_ms;
	}
	if (have_last) {
		snprintf(outcome, sizeof(outcome), "%s %s", last.handoff_id,
		    last.phase);
		m.u.CTL_JOURNAL_REPLY.last_outcome = outcome;
	}
	ctl->ops.status(ctl->ops.data, &s);
	if (s.last_abort_reason && s.last_abort_reason[0])
		m.u.CTL_JOURNAL_REPLY.last_abort_reason = s.last_abort_reason;
	if (s.last_agent_exit && s.last_agent_exit[0])
		m.u.CTL_JOURNAL_REPLY.last_agent_exit = s.last_agent_exit;
	(void)conn_send(c, &m, NULL, 0);
}

/*
 * Variables `upgrade --env` must not set: anyone allowed on the control
 * socket could otherwise steer the handoff (LISTEN_*, HANDOFF_*), the
 * service manager's view (NOTIFY_SOCKET, WATCHDOG_*, ...) or the dynamic
 * loader and libc of a root process (glibc's unsecure-envvars list).
 * Crash-point builds keep the test hooks that tests inject this way.
 */
static const char *const env_refused_prefix[] = {
	"LISTEN_", "HANDOFF_", "LD_", "MALLOC_", "WATCHDOG_", NULL,
};
static const char *const env_refused_name[] = {
	"NOTIFY_SOCKET", "MAINPID", "JOURNAL_STREAM", "GCONV_PATH",
	"GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN",
	"LOCPATH", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS",
	"TMPDIR", "TZDIR", "BATON_FAULT_SEAL", NULL,
};
#ifdef BATON_CRASHPOINTS
static const char *const env_test_hooks[] = {
	"HANDOFF_CRASH_AT", "HANDOFF_STALL_AT", "HANDOFF_CRASH_MARKER_DIR",
	"BATON_FAULT_SEAL", NULL,
};
#endif

/* NULL when K=V may be passed to a successor, else why not. */
static const char *
env_refusal(const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t n = eq ? (size_t)(eq - kv) : 0, i;
	unsigned k;

	if (!eq || n == 0)
		return "--env takes K=V";
	for (i = 0; i < n; i++)
		if (!(kv[i] == '_' || (kv[i] >= 'A' && kv[i] <= 'Z') ||
		    (kv[i] >= 'a' && kv[i] <= 'z') ||
		    (i > 0 && kv[i] >= '0' && kv[i] <= '9')))
			return "--env: the name must be [A-Za-z_][A-Za-z0-9_]*";
#ifdef BATON_CRASHPOINTS
	for (k = 0; env_test_hooks[k]; k++)
		if (strlen(env_test_hooks[k]) == n &&
		    strncmp(kv, env_test_hooks[k], n) == 0)
			return NULL;
#endif
	for (k = 0; env_refused_prefix[k]; k++)
		if (strncmp(kv, env_refused_prefix[k],
		    strlen(env_refused_prefix[k])) == 0)
			return "--env: this variable steers the handoff, the "
			    "service manager or the loader and cannot be set";
	for (k = 0; env_refused_name[k]; k++)
		if (strlen(env_refused_name[k]) == n &&
		    strncmp(kv, env_refused_name[k], n) == 0)
			return "--env: this variable steers the handoff, the "
			    "service manager or the loader and cannot be set";
	return NULL;
}

/* ERROR for a refused CTL_UPGRADE: a code batonctl acts on, and why. */
static void
upgrade_refused(struct conn *c, int r, const char *binary)
{
	const char *code = "failed";
	char msg[PATH_MAX + 160];

	switch (r) {
	case -EINPROGRESS:
		code = "in_progress";
		snprintf(msg, sizeof(msg), "an upgrade is in progress");
		break;
	case -EBUSY:
		code = "starting";
		snprintf(msg, sizeof(msg), "the agent is starting");
		break;
	case -EAGAIN:
		code = "unavailable";
		snprintf(msg, sizeof(msg), "no agent is serving right now");
		break;
	case -ENOTSUP:
		code = "unsupported";
		snprintf(msg, sizeof(msg), "no agent serves, so this replaces "
		    "it with the configured arguments: --arg and --env are "
		    "not taken");
		break;
	case -EINVAL:
	case -ENOENT:
	case -EACCES:
	case -EPERM:
		code = "bad_binary";
		snprintf(msg, sizeof(msg), "'%s': %s", binary, r == -EINVAL ?
		    "not an absolute path" : r == -EPERM ? "refused: writable "
		    "by others or outside --allow-binary-dir" : strerror(-r));
		break;
	default:
		snprintf(msg, sizeof(msg), "'%s': %s", binary, strerror(-r));
		break;
	}
	send_error(c, code, msg);
}

static void
start_upgrade(struct ctl *ctl, struct conn *c, const struct msg *m)
{
	const msg_CTL_UPGRADE_t *u = &m->u.CTL_UPGRADE;
	struct conn *prev;
	unsigned i;
	int r;

	for (i = 0; i < u->env.n; i++) {
		const char *why = env_refusal(u->env.v[i]);

		if (why) {
			log_warn("control.env_refused", why, "variable=%.*s",
			    (int)strcspn(u->env.v[i], "="), u->env.v[i]);
			send_error(c, "invalid", why);
			return;
		}
	}
	/* Set first: a replace whose spawn fails answers right away. */
	prev = ctl->upgrade_client;
	ctl->upgrade_client = c;
	r = ctl->ops.upgrade(ctl->ops.data, u->binary, u->args.v, u->args.n,
	    u->env.v, u->env.n, u->deadline_ms, u->drain_grace_ms);
	if (r == 0)
		return;
	ctl->upgrade_client = prev;
	if (u->binary && *u->binary) {
		upgrade_refused(c, r, u->binary);
	} else {
		struct ctl_status s = { 0 };

		ctl->ops.status(ctl->ops.data, &s);
		upgrade_refused(c, r, s.agent_binary);
	}
}

static void
frame_cb(struct conn *c, struct frame *f, void *data)
{
	struct ctl *ctl = data;
	struct ctl_status s = { 0 };

	switch (f->m.type) {
	case MSG_CTL_STATUS:
		reply_status(ctl, c);
		break;
	case MSG_CTL_JOURNAL:
		reply_journal(ctl, c);
		break;
	case MSG_CTL_UPGRADE:
		ctl->ops.status(ctl->ops.data, &s);
		if (s.stopping)
			send_error(c, "unavailable", "supervisor is stopping");
		else
			start_upgrade(ctl, c, &f->m);
		break;
	default:
		conn_reject(c, -PROTO_ETYPE, "not a control request");
		break;
	}
	frame_release(f);
}

static void
close_cb(struct conn *c, int err, void *data)
{
	struct ctl *ctl = data;

	(void)err;
	if (!ctl)
		return;
	ctl->nclients--;
	if (ctl->upgrade_client == c)
		ctl->upgrade_client = NULL;
}

/* The acceptor's callback: an allowed peer of the control socket. */
static void
ctl_accept(void *data, const struct acceptor_peer *p)
{
	struct ctl *ctl = data;
	struct conn_opts opts = { .max_body = 65536, .errstyle = CONN_ERR_CONTROL };
	struct conn *c;

	if (ctl->nclients >= CTL_MAX_CLIENTS) {
		log_warn("control.denied", "too many clients", "peer_pid=%d "
		    "peer_uid=%d", (int)p->pid, (int)p->uid);
		if (conn_open(ctl->loop, p->fd, &opts, NULL, NULL, NULL,
		    &c) == 0)
			conn_reject(c, -ENOBUFS, "too many control clients");
		return;
	}
	if (conn_open(ctl->loop, p->fd, &opts, frame_cb, close_cb, ctl,
	    &c) == 0)
		ctl->nclients++;
}

int
ctl_start(uv_loop_t *loop, const struct ctl_opts *opts,
    const struct ctl_ops *ops, struct ctl **ret)
{
	struct ctl *ctl;
	struct stat st;
	int r;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->loop = loop;
	ctl->opts = *opts;
	ctl->ops = *ops;
	ctl->fd = usock_listen(opts->socket_path, 0600, 64);
	if (ctl->fd < 0) {
		r = ctl->fd;
		free(ctl);
		return r;
	}
	if (stat(opts->socket_path, &st) == 0)
		ctl->ino = st.st_ino;
	r = acceptor_start(loop, ctl->fd, &(struct acceptor_opts){
	    .allow_uids = opts->allow_uids,
	    .n_allow_uids = opts->n_allow_uids,
	    .errstyle = CONN_ERR_CONTROL, .refused_event = "control.denied",
	    .refused_text = "permission denied" }, ctl_accept, ctl, &ctl->acc);
	*ret = ctl;	/* also on failure: ctl_stop closes the socket */
	return r;
}

void
ctl_stop(struct ctl *ctl)
{
	struct stat st;

	if (!ctl || ctl->fd < 0)
		return;
	acceptor_stop(ctl->acc);
	ctl->acc = NULL;
	close(ctl->fd);
	ctl->fd = -1;
	if (stat(ctl->opts.socket_path, &st) == 0 && st.st_ino == ctl->ino)
		(void)unlink(ctl->opts.socket_path);
}

void
ctl_free(struct ctl *ctl)
{
	if (!ctl)
		return;
	ctl_stop(ctl);
	free(ctl);
}

void
ctl_upgrade_done(struct ctl *ctl, const struct handoff_result *r)
{
	struct msg m = { .type = MSG_CTL_UPGRADE_RESULT };
	struct conn *c = ctl ? ctl->upgrade_client : NULL;

	if (!c)
		return;
	ctl->upgrade_client = NULL;
	m.u.CTL_UPGRADE_RESULT.handoff_id = r->id;
	m.u.CTL_UPGRADE_RESULT.committed = r->committed;
	m.u.CTL_UPGRADE_RESULT.abort_reason = r->committed ? NULL :
	    r->abort_reason;
	m.u.CTL_UPGRADE_RESULT.old_pid = (uint32_t)r->old_pid;
	m.u.CTL_UPGRADE_RESULT.new_pid = (uint32_t)r->new_pid;
	m.u.CTL_UPGRADE_RESULT.hello_ms = r->hello_ms;
	m.u.CTL_UPGRADE_RESULT.spawn_ms = r->spawn_ms;
	m.u.CTL_UPGRADE_RESULT.drain_ms = r->drain_ms;
	m.u.CTL_UPGRADE_RESULT.seal_ms = r->seal_ms;
	m.u.CTL_UPGRADE_RESULT.begin_ms = r->begin_ms;
	m.u.CTL_UPGRADE_RESULT.commit_ms = r->commit_ms;
	m.u.CTL_UPGRADE_RESULT.total_ms = r->total_ms;
	if (conn_send(c, &m, NULL, 0) < 0)
		log_warn("control.result", "could not send the upgrade result",
		    "handoff_id=%s", r->id);
}
