/*
 * standby: a successor started ahead of the next upgrade (standby.h).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sandbox.h"
#include "proto/frame.h"
#include "proto/standby.h"
#include "supervisor/agentlog.h"
#include "supervisor/procwatch.h"
#include "supervisor/standby.h"

/*
 * A standby starts (exec, dynamic loader, its seccomp filter: ~2.5 ms of
 * CPU here) right after a handoff, when it competes with the new
 * incumbent's first requests for the CPU, and it has until the next
 * upgrade.  So it starts at the helpers' nice value and, once it has
 * exec'd, under SCHED_IDLE: it runs only on a CPU that nothing else
 * wants.  Where no CPU is idle it would not start at all, so if it has
 * not said that it waits BATON_STANDBY_IDLE_MS after the spawn it is
 * moved to SCHED_OTHER, still at nice 10, and gets its share.  Taking it
 * gives it back SCHED_OTHER and the nice value it would have had, ours
 * (0, or what systemd's Nice= set), before it is told to go (it has one
 * thread then, and every thread it starts inherits both).  Leaving
 * SCHED_IDLE and lowering the nice value need CAP_SYS_NICE (or an
 * RLIMIT_NICE that covers it): refused, the standby is dismissed and
 * later ones start at ours, under our policy.  A supervisor under
 * another policy than SCHED_OTHER starts them under its own; one at the
 * helpers' nice or above, or below 0 (the filter gives back 0..19 only),
 * at its own nice value.
 */
static bool raise_refused;

#define STANDBY_IDLE_MS_DEFAULT 20
#define STANDBY_IDLE_MS_MAX 60000

/* How long a standby may wait for an idle CPU; 0: never SCHED_IDLE. */
static unsigned
idle_ms(void)
{
	const char *e = getenv("BATON_STANDBY_IDLE_MS");
	unsigned long v;
	char *end;

	if (!e || !*e)
		return STANDBY_IDLE_MS_DEFAULT;
	errno = 0;
	v = strtoul(e, &end, 10);
	if (errno || *end || e[0] == '-')
		return STANDBY_IDLE_MS_DEFAULT;
	return v > STANDBY_IDLE_MS_MAX ? STANDBY_IDLE_MS_MAX : (unsigned)v;
}

/*
 * Whether a standby may start under SCHED_IDLE, for ms (idle_ms()): we
 * run under SCHED_OTHER.
 */
static bool
may_idle(unsigned ms)
{
	int p = sched_getscheduler(0);

	return !raise_refused && ms > 0 && p >= 0 &&
	    (p & ~SCHED_RESET_ON_FORK) == SCHED_OTHER;
}

/* Our nice value (what a spawned agent inherits); -1 also if unknown. */
static int
own_nice(void)
{
	int v;

	errno = 0;
	v = getpriority(PRIO_PROCESS, 0);
	return v == -1 && errno ? -1 : v;
}

struct standby {
	pid_t pid;
	int fd;				/* our end of its socketpair */
	bool exited;
	int nice;			/* ours, when started at the helpers' */
	bool idle;			/* under SCHED_IDLE */
	uv_timer_t *promote;		/* out of SCHED_IDLE if still starting */
	struct procwatch *watch;
	struct stat st;			/* the binary, just before the spawn */
	char binary[PATH_MAX];
	char *args[AGENT_MAX_ARGS];
	unsigned nargs;
};

static void
free_handle(uv_handle_t *h)
{
	free(h);
}

static void
release(struct standby *s)
{
	unsigned i;

	if (s->promote) {
		uv_timer_stop(s->promote);
		uv_close((uv_handle_t *)s->promote, free_handle);
	}
	procwatch_stop(s->watch);
	if (s->fd >= 0)
		close(s->fd);
	for (i = 0; i < s->nargs; i++)
		free(s->args[i]);
	free(s);
}

static int
to_sched_other(pid_t pid)
{
	return sched_setscheduler(pid, SCHED_OTHER,
	    &(struct sched_param){ .sched_priority = 0 }) < 0 ? -errno : 0;
}

/*
 * Under SCHED_OTHER again; 0, or -errno (logged: then later standbys
 * start at our policy and nice value).
 */
static int
leave_idle(struct standby *s)
{
	int r;

	if (!s->idle)
		return 0;
	r = to_sched_other(s->pid);
	if (r == 0) {
		s->idle = false;
		return 0;
	}
	log_warn("standby.sched", "cannot move the standby out of "
	    "SCHED_IDLE; later standbys start at the supervisor's policy "
	    "and nice value", "standby_pid=%d error=\"%s\"", (int)s->pid,
	    strerror(-r));
	raise_refused = true;
	return r;
}

/*
 * Whether its word that it waits is there (else still starting, or a
 * build without standbys: its HELLO would be there); flags: MSG_PEEK
 * leaves it unread.
 */
static bool
said_it_waits(const struct standby *s, int flags)
{
	char ready[STANDBY_READY_LEN];
	ssize_t n;

	do
		n = recv(s->fd, ready, sizeof(ready), flags | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(ready) &&
	    memcmp(ready, STANDBY_READY, sizeof(ready)) == 0;
}

/* BATON_STANDBY_IDLE_MS after the spawn: no idle CPU let it start. */
static void
promote_cb(uv_timer_t *t)
{
	struct standby *s = t->data;

	if (s->exited || said_it_waits(s, MSG_PEEK))
		return;
	if (leave_idle(s) == 0)
		log_debug("standby.promoted", "no idle CPU: starting at its "
		    "nice value", "pid=%d", (int)s->pid);
}

static void
exit_cb(struct procwatch *w, pid_t pid, void *data)
{
	struct standby *s = data;
	char why[256];

	procwatch_stop(w);
	s->watch = NULL;
	s->exited = true;
	agentlog_describe(pid, why, sizeof(why));
	log_warn("standby.exited", "the successor started ahead ended; the "
	    "next upgrade spawns one", "pid=%d how=\"%s\"", (int)pid, why);
}

int
standby_start(uv_loop_t *loop, const struct agentcmd_successor *p,
    struct standby **ret)
{
	static const char *const env[] = { "HANDOFF_STANDBY=1", NULL };
	struct agentcmd_successor q = *p;
	struct standby *s;
	unsigned i, ms;
	pid_t pid;
	int r;

	if (p->nargs > AGENT_MAX_ARGS)
		return -E2BIG;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	if (snprintf(s->binary, sizeof(s->binary), "%s", p->binary) >=
	    (int)sizeof(s->binary)) {
		release(s);
		return -ENAMETOOLONG;
	}
	for (i = 0; i < p->nargs; i++) {
		s->args[i] = strdup(p->args[i]);
		if (!s->args[i]) {
			release(s);
			return -ENOMEM;
		}
		s->nargs++;
	}
	if (stat(p->binary, &s->st) < 0) {
		r = -errno;
		release(s);
		return r;
	}
	q.env = env;
	s->nice = own_nice();
	if (raise_refused || s->nice < 0 || s->nice >= SANDBOX_HELPER_NICE)
		s->nice = -1;	/* not niced: it runs at ours */
	q.nice = s->nice >= 0 ? SANDBOX_HELPER_NICE : 0;
	ms = idle_ms();
	s->idle = q.idle = may_idle(ms);
	if (s->idle) {
		s->promote = malloc(sizeof(*s->promote));
		if (!s->promote || uv_timer_init(loop, s->promote) < 0) {
			free(s->promote);
			s->promote = NULL;
			s->idle = q.idle = false;
		} else {
			s->promote->data = s;
		}
	}
	pid = agentcmd_spawn_successor(loop, &q, &s->fd);
	if (pid < 0) {
		release(s);
		return (int)pid;
	}
	s->pid = pid;
	if (s->promote)
		uv_timer_start(s->promote, promote_cb, ms, 0);
	r = procwatch_start(loop, pid, exit_cb, s, &s->watch);
	if (r < 0) {
		/* Unwatched, it could not be told dead from alive: not kept. */
		release(s);
		return r;
	}
	log_info("standby.started", "a successor waits for the next upgrade",
	    "pid=%d binary=%s", (int)pid, s->binary);
	*ret = s;
	return 0;
}

pid_t
standby_pid(const struct standby *s)
{
	return s && !s->exited ? s->pid : 0;
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

bool
standby_fits(const struct standby *s, const char *binary,
    const char *const *args, unsigned nargs, unsigned nenv)
{
	char exe[64];
	struct stat now, ran;
	unsigned i;

	if (!s || s->exited || nenv > 0 || nargs != s->nargs ||
	    strcmp(binary, s->binary) != 0)
		return false;
	for (i = 0; i < nargs; i++)
		if (strcmp(args[i], s->args[i]) != 0)
			return false;
	/*
	 * The path still names the file it named at the spawn, and that is
	 * the file the standby runs (a replacement between our stat and its
	 * exec shows here).
	 */
	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)s->pid);
	return stat(binary, &now) == 0 && same_file(&now, &s->st) &&
	    stat(exe, &ran) == 0 && ran.st_dev == s->st.st_dev &&
	    ran.st_ino == s->st.st_ino;
}

int
standby_take(struct standby *s, uint64_t deadline_ms, pid_t *ret_pid,
    int *ret_fd)
{
	uint8_t go[STANDBY_GO_LEN];
	ssize_t n;

	if (s->exited) {
		standby_dismiss(&s, NULL);
		return -ESRCH;
	}
	/* Its word that it waits, read: else not taken. */
	if (!said_it_waits(s, 0)) {
		standby_dismiss(&s, "it has not said that it waits (still "
		    "starting, or a build without standbys)");
		return -EAGAIN;
	}
	if (leave_idle(s) < 0) {
		standby_dismiss(&s, "cannot give it back SCHED_OTHER");
		return -EAGAIN;
	}
	if (s->nice >= 0 && setpriority(PRIO_PROCESS, s->pid, s->nice) < 0) {
		log_warn("standby.renice", "cannot give the standby its nice "
		    "value back; later standbys start at the supervisor's",
		    "standby_pid=%d nice=%d error=\"%s\"", (int)s->pid,
		    s->nice, strerror(errno));
		raise_refused = true;
		standby_dismiss(&s, "cannot give it back its nice value");
		return -EAGAIN;
	}
	standby_go_put(go, deadline_ms);
	do
		n = write(s->fd, go, sizeof(go));	/* SIGPIPE is ignored */
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(go)) {
		int r = n < 0 ? -errno : -EIO;

		log_warn("standby.take", proto_strerror(r), "pid=%d",
		    (int)s->pid);
		release(s);
		return r;
	}
	*ret_pid = s->pid;
	*ret_fd = s->fd;
	s->fd = -1;
	release(s);
	return 0;
}

void
standby_dismiss(struct standby **sp, const char *why)
{
	struct standby *s = *sp;

	*sp = NULL;
	if (!s)
		return;
	if (!s->exited) {
		log_info("standby.dismissed", why, "pid=%d", (int)s->pid);
		/* Its exit (at EOF on its socket) not held up by SCHED_IDLE. */
		if (s->idle)
			(void)to_sched_other(s->pid);
	}
	release(s);
}
