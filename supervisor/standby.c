/*
 * standby: a successor started ahead of the next upgrade (standby.h).
 */
#include <errno.h>
#include <limits.h>
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
 * CPU here) and waits at the helpers' nice value: right after a handoff
 * it competes with the new incumbent's first requests for the CPU, and
 * it has until the next upgrade.  Taking it gives it back the nice value
 * it would have had, ours (0, or what systemd's Nice= set), before it is
 * told to go (it has one thread then).  If that is refused (no
 * CAP_SYS_NICE), the standby is dismissed and later ones start at ours.
 * A supervisor already at the helpers' nice or above, or below 0 (the
 * filter gives back 0..19 only), starts them at its own.
 */
static bool nice_refused;

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
	struct procwatch *watch;
	struct stat st;			/* the binary, just before the spawn */
	char binary[PATH_MAX];
	char *args[AGENT_MAX_ARGS];
	unsigned nargs;
};

static void
release(struct standby *s)
{
	unsigned i;

	procwatch_stop(s->watch);
	if (s->fd >= 0)
		close(s->fd);
	for (i = 0; i < s->nargs; i++)
		free(s->args[i]);
	free(s);
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
	unsigned i;
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
	if (nice_refused || s->nice < 0 || s->nice >= SANDBOX_HELPER_NICE)
		s->nice = -1;	/* not niced: it runs at ours */
	q.nice = s->nice >= 0 ? SANDBOX_HELPER_NICE : 0;
	pid = agentcmd_spawn_successor(loop, &q, &s->fd);
	if (pid < 0) {
		release(s);
		return (int)pid;
	}
	s->pid = pid;
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
	char ready[STANDBY_READY_LEN];
	ssize_t n;

	if (s->exited) {
		standby_dismiss(&s, NULL);
		return -ESRCH;
	}
	/* Its word that it waits: else still starting, or a build without
	 * standbys (its HELLO would be here), and not taken. */
	do
		n = recv(s->fd, ready, sizeof(ready), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(ready) ||
	    memcmp(ready, STANDBY_READY, sizeof(ready)) != 0) {
		standby_dismiss(&s, "it has not said that it waits (still "
		    "starting, or a build without standbys)");
		return -EAGAIN;
	}
	if (s->nice >= 0 && setpriority(PRIO_PROCESS, s->pid, s->nice) < 0) {
		log_warn("standby.renice", "cannot give the standby its nice "
		    "value back; later standbys start at the supervisor's",
		    "standby_pid=%d nice=%d error=\"%s\"", (int)s->pid,
		    s->nice, strerror(errno));
		nice_refused = true;
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
	if (!s->exited)
		log_info("standby.dismissed", why, "pid=%d", (int)s->pid);
	release(s);
}
