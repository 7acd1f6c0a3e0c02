/*
 * agentlog: agents' stderr through pipes into the supervisor's log, the
 * last lines of each agent, and its exit status (see agentlog.h).
 *
 * Invariants:
 * - the write end of a pipe lives only in the child (and what it forks);
 *   the supervisor keeps the read end, non-blocking, so a flood of output
 *   never blocks the loop and a full pipe drops the agent's lines rather
 *   than stalling the agent (the write end is non-blocking too);
 * - at most NREC agents are remembered; the oldest record of an agent
 *   that is gone (and its pipe) goes first, so the table and the fds it
 *   holds stay bounded, and a live agent's pipe is never closed;
 * - agentlog_describe() may block for at most REAP_WAIT_MS, and only when
 *   it is told about a process that is exiting but not yet a zombie.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/spawn.h"
#include "supervisor/agentlog.h"

#define NREC		8	/* agents remembered */
#define RING		8	/* lines kept per agent */
#define LINE_KEEP	200	/* bytes kept per line */
#define PART_MAX	2048	/* longest line relayed whole */
#define DESCRIBE_LINES	3
#define REAP_WAIT_MS	50

struct stream {
	uv_poll_t poll;
	int fd;
	struct rec *rec;	/* NULL once the record moved on */
	char part[PART_MAX];
	size_t partlen;
};

struct rec {
	pid_t pid;
	bool have_status;
	int status;
	struct stream *st;	/* NULL when no pipe (or closed) */
	char ring[RING][LINE_KEEP];
	unsigned next, count;
	char first[LINE_KEEP];	/* first line that was not logfmt */
	unsigned lines;		/* lines since first */
};

static struct rec recs[NREC];
static unsigned rec_next;

static struct rec *
find(pid_t pid)
{
	unsigned i;

	for (i = 0; i < NREC; i++)
		if (pid > 0 && recs[i].pid == pid)
			return &recs[i];
	return NULL;
}

static void
stream_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void
stream_close(struct stream *st)
{
	if (!st)
		return;
	if (st->rec)
		st->rec->st = NULL;
	st->rec = NULL;
	close(st->fd);
	st->fd = -1;
	st->poll.data = st;
	uv_close((uv_handle_t *)&st->poll, stream_closed_cb);
}

/*
 * One of baton's own logfmt lines: log.c's ("ts=..."), or the one line
 * the crash-point injector writes without a clock ("level=... event=").
 */
static bool
is_logfmt(const char *line)
{
	return strncmp(line, "ts=", 3) == 0 ||
	    (strncmp(line, "level=", 6) == 0 && strstr(line, " event="));
}

/* The line as the ring keeps it: a logfmt line from its event= on. */
static void
keep(struct rec *r, const char *line)
{
	const char *ev = strstr(line, " event=");

	if (is_logfmt(line) && ev)
		line = ev + 1;
	else if (!r->first[0])
		snprintf(r->first, LINE_KEEP, "%s", line);
	if (r->first[0])
		r->lines++;
	snprintf(r->ring[r->next], LINE_KEEP, "%s", line);
	r->next = (r->next + 1) % RING;
	if (r->count < RING)
		r->count++;
}

static void
line_out(struct stream *st, char *line)
{
	size_t n = strlen(line);
	const char *body = line;

	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = '\0';
	if (n == 0)
		return;
	/* An agent's own logfmt line (maybe with a journald prefix). */
	if (body[0] == '<' && body[1] && body[2] == '>')
		body += 3;
	if (is_logfmt(body))
		log_relay(body);
	else
		log_warn("agent.stderr", body, "agent_pid=%d",
		    st->rec ? (int)st->rec->pid : 0);
	if (st->rec)
		keep(st->rec, body);
}

/* Read what is there; 1 at EOF or error, else 0. */
static int
drain(struct stream *st)
{
	char buf[4096], *nl;
	size_t room, take;
	ssize_t n;
	char *p;

	for (;;) {
		n = read(st->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : 1;
		if (n == 0) {
			if (st->partlen) {
				st->part[st->partlen] = '\0';
				line_out(st, st->part);
				st->partlen = 0;
			}
			return 1;
		}
		p = buf;
		while (n > 0) {
			nl = memchr(p, '\n', (size_t)n);
			take = nl ? (size_t)(nl - p) : (size_t)n;
			room = sizeof(st->part) - 1 - st->partlen;
			memcpy(st->part + st->partlen, p, take < room ? take : room);
			st->partlen += take < room ? take : room;
			if (nl || st->partlen == sizeof(st->part) - 1) {
				st->part[st->partlen] = '\0';
				line_out(st, st->part);
				st->partlen = 0;
			}
			take += nl ? 1 : 0;
			p += take;
			n -= (ssize_t)take;
		}
	}
}

static void
poll_cb(uv_poll_t *h, int status, int events)
{
	struct stream *st = h->data;

	(void)events;
	if (status < 0 || drain(st)) {
		uv_poll_stop(h);
		stream_close(st);
	}
}

/*
 * A record for pid: the oldest slot whose agent is gone.  A live agent's
 * record is never taken (closing its pipe would silence it); with NREC
 * live agents (never, in practice) there is none and NULL comes back.
 */
static struct rec *
new_rec(pid_t pid)
{
	struct rec *r;
	unsigned i;

	for (i = 0; i < NREC; i++) {
		r = &recs[(rec_next + i) % NREC];
		if (r->pid <= 0 || r->have_status ||
		    (kill(r->pid, 0) < 0 && errno == ESRCH))
			break;
	}
	if (i == NREC)
		return NULL;
	rec_next = (rec_next + i + 1) % NREC;
	stream_close(r->st);
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	return r;
}

pid_t
agentlog_spawn(uv_loop_t *loop, const struct spawn_opts *o)
{
	struct spawn_opts so = *o;
	struct stream *st = NULL;
	int p[2] = { -1, -1 };
	pid_t pid;

	/* No pipe (fds exhausted, ...): the child keeps our stderr. */
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0 && (st = calloc(1,
	    sizeof(*st))) != NULL && uv_poll_init(loop, &st->poll, p[0]) == 0) {
		st->fd = p[0];
		so.stderr_fd = p[1];
	} else {
		log_warn("agent.stderr", strerror(errno ? errno : ENOMEM),
		    "what=pipe");
		free(st);
		st = NULL;
		if (p[0] >= 0)
			close(p[0]);
		so.stderr_fd = -1;
	}
	pid = spawn_agent(&so);
	if (p[1] >= 0)
		close(p[1]);
	if (!st)
		return pid;
	st->poll.data = st;
	if (pid < 0) {
		stream_close(st);
		return pid;
	}
	st->rec = new_rec(pid);
	if (st->rec)
		st->rec->st = st;
	if (!st->rec || uv_poll_start(&st->poll, UV_READABLE, poll_cb) < 0)
		stream_close(st);
	return pid;
}

void
agentlog_reaped(pid_t pid, int status)
{
	struct rec *r = find(pid);

	if (r) {
		r->have_status = true;
		r->status = status;
	}
}

/* Our dead, unreaped child: its status, waiting briefly while it exits. */
static bool
reap(pid_t pid, int *status)
{
	int i;
	pid_t w;

	for (i = 0; i <= REAP_WAIT_MS; i++) {
		w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return true;
		if (w < 0 && errno != EINTR)
			return false;
		/* Exiting: its fds are closed, it is not a zombie yet. */
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return false;
		usleep(1000);
	}
	return false;
}

const char *
agentlog_describe(pid_t pid, char *buf, size_t len)
{
	struct rec *r = find(pid);
	size_t n;
	unsigned i, k, from;
	int status;

	if (!buf || len == 0)
		return buf;
	if (r && r->st && drain(r->st)) {
		uv_poll_stop(&r->st->poll);
		stream_close(r->st);
	}
	if (r && r->have_status) {
		status = r->status;
	} else if (reap(pid, &status)) {
		if (!r)
			r = new_rec(pid);
		if (r) {
			r->have_status = true;
			r->status = status;
		}
	} else {
		status = -1;
	}
	if (status == -1)
		n = (size_t)snprintf(buf, len, "exit status unknown");
	else if (WIFEXITED(status))
		n = (size_t)snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		n = (size_t)snprintf(buf, len, "killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		n = (size_t)snprintf(buf, len, "status %d", status);
	if (!r || r->count == 0 || n >= len)
		return buf;
	/*
	 * The first line that was not the agent's logfmt (a usage error
	 * says what is wrong there), then the last ones.
	 */
	k = r->count < DESCRIBE_LINES ? r->count : DESCRIBE_LINES;
	if (r->first[0] && r->lines > k) {
		n += (size_t)snprintf(buf + n, len - n, "; stderr: %s%s",
		    r->first, r->lines > k + 1 ? " | ..." : "");
		k = k > 1 ? k - 1 : k;
	}
	from = (r->next + RING - k) % RING;
	for (i = 0; i < k && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ||
		    strstr(buf, "; stderr: ") ? " | " : "; stderr: ",
		    r->ring[(from + i) % RING]);
	return buf;
}

void
agentlog_close_all(void)
{
	unsigned i;

	for (i = 0; i < NREC; i++)
		if (recs[i].st) {
			uv_poll_stop(&recs[i].st->poll);
			stream_close(recs[i].st);
		}
}
