/*
 * nsspawn: the spawner of namespace helpers (see nsspawn.h).
 *
 * Wire (SOCK_SEQPACKET, one datagram each way per creation):
 *   agent -> spawner  struct spawn_req, SCM_RIGHTS [report wfd, image fd?]
 *   spawner -> agent  struct spawn_ans, SCM_RIGHTS [pidfd] when pid > 0
 * Both ends are this build: no versioning, sizes checked.  An answer
 * names its request (cookie): one lost (a send that failed for good)
 * never names another creation's helper.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/nsmake.h"
#include "common/sandbox.h"
#include "successor/nsspawn.h"
#include "successor/nswriter.h"
#include "transport/fdpass.h"

struct spawn_req {
	uint64_t cookie;	/* echoed in the answer */
	uint32_t mask;
	uint32_t has_image;
	uint32_t use_cg;	/* into base's cgroups (a pid namespace) */
	char id[NSV_ID_MAX + 1];
	char uenv_path[PATH_MAX];
};

struct spawn_ans {
	uint64_t cookie;
	int32_t pid;
	int32_t err;
};

struct waiting {
	uint64_t cookie;
	nsspawn_fn fn;
	void *arg;
	struct waiting *next;
};

struct nsspawn {
	uv_poll_t poll;
	int fd;
	pid_t pid;
	bool dead;
	struct waiting *head, **tailp;
	unsigned pending;
	uint64_t next_cookie;
};

/* ---- the spawner process ---- */

/*
 * One spawn_req datagram and its fds (fdpass_recv: fds[0] the report
 * pipe, fds[1] the image, -1 where none came; all or none of them).  One
 * byte more than a request is asked for, so that a longer datagram shows
 * in its length.  fdpass_recv's result.
 */
static ssize_t
recv_req(int sock, int flags, struct spawn_req *rq, int *fds,
    unsigned *ret_nfds)
{
	union {
		struct spawn_req rq;
		char more[sizeof(struct spawn_req) + 1];
	} u;
	ssize_t n;

	fds[0] = fds[1] = -1;
	memset(&u, 0, sizeof(u));
	n = fdpass_recv(sock, &u, sizeof(u.more), fds, 2, ret_nfds, flags);
	*rq = u.rq;
	return n;
}

/* Whether a datagram of n bytes with nfds fds is a whole rq. */
static bool
req_whole(ssize_t n, const struct spawn_req *rq, unsigned nfds)
{
	return n == (ssize_t)sizeof(*rq) && nfds == 1 + (rq->has_image != 0);
}

/* The helper's request: base, with what the datagram names. */
static void
req_of(struct nsprov_req *r, const struct nsprov_req *base,
    struct spawn_req *rq, int image_fd)
{
	rq->id[sizeof(rq->id) - 1] = '\0';
	rq->uenv_path[sizeof(rq->uenv_path) - 1] = '\0';
	*r = *base;
	r->id = rq->id;
	r->mask = rq->mask;
	r->cg = rq->use_cg ? base->cg : NULL;
	r->image_fd = rq->has_image ? image_fd : -1;
	r->uenv_path = rq->has_image ? rq->uenv_path : NULL;
}

static void
chld_cb(int sig)
{
	(void)sig;	/* only to interrupt ppoll */
}

/*
 * The spare: a helper forked ahead of its request, named and niced,
 * waiting on its own socket for one spawn_req.  A creation handed to it
 * skips the fork and the helper's start (docs/BENCH.md).  The next spare
 * is forked only when no helper of ours runs: forked beside a creation,
 * it took that creation's CPU back (make_us and report_us grew by what
 * start_us lost).  Under load there is none, and requests fork.  One that
 * died idle is not replaced before the next request (no fork loop).
 *
 * When the last request had a net namespace, the spare makes the next
 * one while it waits (nsmake_net_ahead: the kernel's setup_net, most of
 * make_us), and only a request with net is handed to it: its children
 * (a pid namespace's init, a mount namespace's holder) would otherwise
 * live in that new namespace instead of the host's.  A request without
 * net kills it and forks, and the next spare waits in the host's.  The
 * spawner is single-threaded: file-scope state is its own.
 */
static struct {
	pid_t pid;	/* 0: none */
	int pidfd;
	int sock;	/* the spawner's end */
	bool wanted;	/* false after one died idle, until a request */
	pid_t killed;	/* dropped, not reaped yet (no helper) */
	bool net_ahead;	/* asked to make a net namespace ahead */
} spare = { 0, -1, -1, true, 0, false };

static bool net_next = true;	/* the last request had net */

static unsigned running;	/* helpers started and not reaped */

static void
spare_drop(bool kill_it)
{
	if (spare.pid > 0 && kill_it) {
		(void)syscall(SYS_pidfd_send_signal, spare.pidfd, SIGKILL, NULL,
		    0);
		spare.killed = spare.pid;
	}
	if (spare.pidfd >= 0)
		close(spare.pidfd);
	if (spare.sock >= 0)
		close(spare.sock);
	spare.pid = 0;
	spare.pidfd = -1;
	spare.sock = -1;
}

static void
reap_all(void)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		if (pid == spare.pid) {
			spare_drop(false);	/* died idle */
			spare.wanted = false;
		} else if (pid == spare.killed) {
			spare.killed = 0;
		} else if (running > 0) {
			running--;
		}
	}
}

/* The spare's side: one request, then it is that creation's helper. */
static __attribute__((noreturn)) void
spare_main(int sock, const struct nsprov_req *base, bool net_ahead)
{
	struct spawn_req rq;
	struct nsprov_req r;
	unsigned nfds;
	int fds[2];
	ssize_t n;
	bool made;

	if ((sock = fcntl(sock, F_DUPFD_CLOEXEC, 10)) < 0 || dup2(sock, 3) < 0)
		_exit(1);
	close_range(4, ~0U, 0);
	nsprov_spare_enter();
	/* Failed, the creation makes its own, as a forked helper does. */
	made = net_ahead && nsmake_net_ahead() == 0;
	/* EOF: the spawner is gone (or dropped us), and with it the agent. */
	n = recv_req(3, 0, &rq, fds, &nfds);
	if (n <= 0)
		_exit(0);
	/* Checked by the spawner before it was sent: the same bytes. */
	if (!req_whole(n, &rq, nfds))
		_exit(1);
	req_of(&r, base, &rq, fds[1]);
	r.net_made = made;
	nsprov_spare_run(&r, fds[0], clock_mono_us());
}

/* Fork the next spare (none on failure: requests fork as before). */
static void
spare_make(const struct nsprov_req *base)
{
	int sv[2];
	pid_t pid;

	if (spare.pid > 0 || !spare.wanted || running > 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	pid = _Fork();
	if (pid == 0) {
		close(sv[0]);
		spare_main(sv[1], base, net_next);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return;
	}
	spare.pid = pid;
	spare.sock = sv[0];
	spare.net_ahead = net_next;
	spare.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (spare.pidfd < 0) {
		(void)kill(pid, SIGKILL);	/* our unreaped child: no reuse */
		spare_drop(false);
	}
}

/*
 * Hand the request (its datagram and fds as received) to the spare: 0
 * and the spare's pid and pidfd (ours now), or -errno (it died: dropped).
 */
static int
spare_take(const struct spawn_req *rq, const int *fds, unsigned nfds,
    pid_t *ret_pid, int *ret_pidfd)
{
	ssize_t n;

	if (spare.pid <= 0)
		return -ESRCH;
	if (spare.net_ahead && !(rq->mask & NSVM_NET)) {
		spare_drop(true);	/* not for its namespace's children */
		return -ESRCH;
	}
	n = fdpass_send(spare.sock, rq, sizeof(*rq), fds, nfds, MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(*rq)) {
		spare_drop(true);
		return n < 0 ? (int)n : -EIO;
	}
	*ret_pid = spare.pid;
	*ret_pidfd = spare.pidfd;
	spare.pidfd = -1;
	spare_drop(false);	/* our end closed: it has its datagram */
	return 0;
}

/*
 * One request: hand it to the spare or fork its helper, answer, make the
 * next spare.  Fds received are closed.
 */
static void
serve_one(int sock, const struct nsprov_req *base)
{
	struct spawn_req rq;
	struct spawn_ans ans = { 0, 0, 0 };
	struct nsprov_req r;
	int fds[2], pidfd = -1, tries;
	unsigned nfds;
	pid_t pid = 0;
	ssize_t n;

	n = recv_req(sock, MSG_DONTWAIT, &rq, fds, &nfds);
	if (n == 0)
		_exit(0);	/* the agent closed: done */
	if (n == -EAGAIN)
		return;
	/* A message fdpass refused (its fds closed) is answered as bad. */
	if (n < 0 && n != -EMSGSIZE && n != -EBADMSG)
		_exit(1);
	ans.cookie = rq.cookie;	/* 0 unless that much came */
	if (!req_whole(n, &rq, nfds)) {
		ans.err = -EBADMSG;	/* cannot happen between one build */
	} else {
		if (spare_take(&rq, fds, nfds, &pid, &pidfd) < 0) {
			req_of(&r, base, &rq, fds[1]);
			ans.err = nsprov_spawn_alone(&r, fds[0], &pid);
			if (ans.err < 0)
				nsprov_report_failed(fds[0], ans.err,
				    "fork helper");
		}
		net_next = (rq.mask & NSVM_NET) != 0;
	}
	spare.wanted = true;
	if (pid > 0)
		running++;
	if (pid > 0 && pidfd < 0) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0) {
			/* Unnamed, it could not be stopped: not started. */
			ans.err = -errno;
			(void)kill(pid, SIGKILL);
			pid = 0;
		}
	}
	ans.pid = pid;
	/* Not lost to a passing EAGAIN (a fault injector's, say). */
	for (tries = 0; fdpass_send(sock, &ans, sizeof(ans), &pidfd,
	    pidfd >= 0, 0) == -EAGAIN && tries < 100; tries++) {
		struct pollfd w = { .fd = sock, .events = POLLOUT };

		(void)poll(&w, 1, 10);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
}

static __attribute__((noreturn)) void
spawner_main(int sock, const struct nsprov_req *base, pid_t agent)
{
	struct sigaction sa;
	struct pollfd pfd;
	sigset_t chld, during;

	(void)prctl(PR_SET_NAME, "baton-nsspawn", 0, 0, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != agent)
		_exit(0);	/* the agent died before PDEATHSIG was set */
	/*
	 * Bulk work, like its helpers: a request's wake-up is a sync one
	 * (unix socket), which puts the spawner on the loop's CPU; at nice 0
	 * it preempted the loop there for the whole fork.
	 */
	(void)setpriority(PRIO_PROCESS, 0, SANDBOX_HELPER_NICE);
	nsprov_child_signals();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = chld_cb;	/* no SA_RESTART: ppoll returns */
	(void)sigaction(SIGCHLD, &sa, NULL);
	/* Only stdio and the socket (3); SIGCHLD only inside ppoll. */
	if ((sock = fcntl(sock, F_DUPFD_CLOEXEC, 10)) < 0 || dup2(sock, 3) < 0)
		_exit(1);
	close_range(4, ~0U, 0);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_SETMASK, &chld, NULL);
	/*
	 * Its own filter, built here off the agent's loop and start-up
	 * (single-threaded, allocating is fine), which every helper it forks
	 * keeps (common/sandbox.c, nsspawn_rules).  Failing that, the
	 * helpers' own filter, compiled once for each of them to load.
	 */
	if (sandbox_active()) {
		int r = sandbox_enter_child(SANDBOX_NSSPAWN);

		if (r == 0) {
			sandbox_test_forbidden(SANDBOX_NSSPAWN);
		} else {
			log_warn("sandbox.install", strerror(-r), "role=nsspawn: "
			    "each helper loads its own filter");
			(void)sandbox_prepare(SANDBOX_NSHELPER);
		}
	}
	sigemptyset(&during);
	pfd.fd = 3;
	pfd.events = POLLIN;
	for (;;) {
		reap_all();
		spare_make(base);
		pfd.revents = 0;
		if (ppoll(&pfd, 1, NULL, &during) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (pfd.revents & POLLIN)
			serve_one(3, base);
		else if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))
			_exit(0);
	}
}

/* ---- the agent's side ---- */

/* Take the request with cookie (or, with arg, the one for arg) off. */
static struct waiting *
take(struct nsspawn *sp, uint64_t cookie, const void *arg)
{
	struct waiting **pp, *w;

	for (pp = &sp->head; (w = *pp); pp = &w->next) {
		if (arg ? w->arg != arg : w->cookie != cookie)
			continue;
		*pp = w->next;
		if (sp->tailp == &w->next)
			sp->tailp = pp;
		sp->pending--;
		return w;
	}
	return NULL;
}

static void
answer(struct nsspawn *sp, uint64_t cookie, pid_t pid, int pidfd, int err)
{
	struct waiting *w = take(sp, cookie, NULL);

	if (!w) {
		if (pidfd >= 0)
			close(pidfd);	/* forgotten (nsspawn_forget) */
		return;
	}
	w->fn(w->arg, pid, pidfd, err);
	free(w);
}

static void
mark_dead(struct nsspawn *sp)
{
	if (sp->dead)
		return;
	sp->dead = true;
	uv_poll_stop(&sp->poll);
	while (sp->head)
		answer(sp, sp->head->cookie, 0, -1, -EPIPE);
}

/* Read one answer: 1 read, 0 none now, -1 the spawner is gone. */
static int
read_answer(struct nsspawn *sp, bool wait)
{
	struct spawn_ans ans;
	int pidfd = -1;
	unsigned nfds;
	ssize_t n;

	n = fdpass_recv(sp->fd, &ans, sizeof(ans), &pidfd, 1, &nfds,
	    wait ? 0 : MSG_DONTWAIT);
	if (n == -EAGAIN)
		return 0;
	if (n != (ssize_t)sizeof(ans) || (ans.pid > 0) != (pidfd >= 0)) {
		if (pidfd >= 0)
			close(pidfd);
		if (n != 0)
			log_error("ns.spawner", n < 0 ? strerror((int)-n) :
			    "malformed answer", "pid=%d", (int)sp->pid);
		return -1;
	}
	answer(sp, ans.cookie, ans.pid > 0 ? ans.pid : 0, pidfd,
	    ans.pid > 0 ? 0 : (ans.err < 0 ? ans.err : -EIO));
	return 1;
}

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct nsspawn *sp = p->data;
	int r = 0;

	(void)events;
	if (status < 0) {
		mark_dead(sp);
		return;
	}
	/* Every answer there; EOF (nothing asked or not) is its death. */
	while ((r = read_answer(sp, false)) > 0)
		;
	if (r < 0)
		mark_dead(sp);
}

int
nsspawn_start(uv_loop_t *loop, const struct nsprov_req *base,
    struct nsspawn **ret)
{
	struct nsspawn *sp;
	sigset_t all, old;
	pid_t agent = getpid(), pid;
	int sv[2], r;

	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(sp);
		return r;
	}
	/* As a helper's fork (nsprov.c): no libuv handler runs in it. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	nswriter_fork_lock();
	pid = _Fork();
	if (pid == 0)
		spawner_main(sv[1], base, agent);
	nswriter_fork_unlock();
	r = pid < 0 ? -errno : 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		free(sp);
		return r;
	}
	sp->fd = sv[0];
	sp->pid = pid;
	sp->tailp = &sp->head;
	uv_poll_init(loop, &sp->poll, sp->fd);
	sp->poll.data = sp;
	uv_poll_start(&sp->poll, UV_READABLE | UV_DISCONNECT, poll_cb);
	log_info("ns.spawner", "started", "pid=%d", (int)pid);
	*ret = sp;
	return 0;
}

bool
nsspawn_alive(const struct nsspawn *sp)
{
	return sp && !sp->dead;
}

int
nsspawn_request(struct nsspawn *sp, const struct nsprov_req *rq, int wfd,
    nsspawn_fn fn, void *arg)
{
	struct spawn_req m;
	struct waiting *w;
	int fds[2] = { wfd, rq->image_fd };
	unsigned nfds = rq->image_fd >= 0 ? 2 : 1;
	ssize_t n;

	if (sp->dead)
		return -EPIPE;
	memset(&m, 0, sizeof(m));
	m.cookie = ++sp->next_cookie;
	m.mask = rq->mask;
	m.has_image = rq->image_fd >= 0;
	m.use_cg = rq->cg != NULL;
	if (snprintf(m.id, sizeof(m.id), "%s", rq->id) >= (int)sizeof(m.id) ||
	    (m.has_image && snprintf(m.uenv_path, sizeof(m.uenv_path), "%s",
	    rq->uenv_path ? rq->uenv_path : "") >=
	    (int)sizeof(m.uenv_path)))
		return -ENAMETOOLONG;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	/* Small and answered in order: the buffer holds hundreds. */
	n = fdpass_send(sp->fd, &m, sizeof(m), fds, nfds, MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(m)) {
		int r = n < 0 ? (int)n : -EIO;

		free(w);
		if (r != -EAGAIN)
			mark_dead(sp);
		return r;
	}
	w->cookie = m.cookie;
	w->fn = fn;
	w->arg = arg;
	*sp->tailp = w;
	sp->tailp = &w->next;
	sp->pending++;
	return 0;
}

void
nsspawn_collect(struct nsspawn *sp)
{
	if (!sp->dead)
		poll_cb(&sp->poll, 0, UV_READABLE);
}

void
nsspawn_forget(struct nsspawn *sp, void *arg)
{
	free(take(sp, 0, arg));
}

/* How long shutdown waits for an answer before it gives up on them. */
#define FLUSH_TIMEOUT_MS 5000

void
nsspawn_flush(struct nsspawn *sp)
{
	struct pollfd p = { .fd = sp->fd, .events = POLLIN };
	int r;

	while (!sp->dead && sp->head) {
		while ((r = poll(&p, 1, FLUSH_TIMEOUT_MS)) < 0 && errno == EINTR)
			;
		if (r == 0) {
			/* Alive (a dead one's socket reads EOF): not reaped. */
			log_error("ns.spawner", "no answer", "pid=%d "
			    "pending=%u timeout_ms=%d: killed", (int)sp->pid,
			    sp->pending, FLUSH_TIMEOUT_MS);
			(void)kill(sp->pid, SIGKILL);
		}
		if (r <= 0 || read_answer(sp, true) < 0)
			mark_dead(sp);
	}
}

static void
closed_cb(uv_handle_t *h)
{
	struct nsspawn *sp = h->data;

	close(sp->fd);
	free(sp);
}

void
nsspawn_free(struct nsspawn *sp)
{
	if (!sp)
		return;
	nsspawn_flush(sp);
	mark_dead(sp);
	(void)shutdown(sp->fd, SHUT_RDWR);	/* EOF: the spawner exits */
	uv_close((uv_handle_t *)&sp->poll, closed_cb);
}
