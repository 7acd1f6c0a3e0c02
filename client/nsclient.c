/*
 * nsclient: blocking consumer of the namespace socket, and the namespace
 * maker shared by the local fallback and the provider's helper.
 *
 * Invariants:
 * - A caller never owns a namespace fd whose NS_GET_NSTYPE differs from
 *   the type announced next to it; a mismatch closes the whole set.
 * - A request is sent at most twice: once, and once more on a fresh
 *   connection when the first closed without an answer.
 * - nsclient_make() leaves nothing behind on failure: its child exits,
 *   the init (if any) is killed, the loop device auto-clears.
 *
 * nsclient_make() forks a child C that unshares the namespaces and sets
 * them up; with a pid namespace C forks the init I (pid 1 there).  C
 * reports on a pipe and then waits until the caller has opened
 * /proc/C/ns/{net,mnt} and /proc/I/ns/pid, so the caller never needs to
 * enter the namespaces itself.  I blocks every signal and reaps in a
 * sigwaitinfo loop: only SIGKILL from outside ends it.  The children are
 * made with _Fork(): atfork handlers (libuv's re-creates its signal lock
 * pipe) must not renumber fds under the child's feet.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/paths.h"
#include "client/nsclient.h"
#include "proto/msg.h"
#include "transport/wire.h"

struct nsclient {
	char path[108];
	int fd;
	unsigned reconnects;
	char err_kind[32];
	char err_msg[256];
};

_Static_assert(NSCLIENT_MAX_NS == MSG_NS_KINDS, "one namespace vocabulary");
static const int kind_nstypes[NSCLIENT_MAX_NS] = {
	CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWNS
};

const char *
nsclient_kind_name(unsigned kind)
{
	return kind < NSCLIENT_MAX_NS ? msg_ns_kind_names[kind] : "?";
}

int
nsclient_kind_parse(const char *name)
{
	int k = msg_ns_kind_parse(name);

	return k < 0 ? -EINVAL : k;
}

int
nsclient_kind_nstype(unsigned kind)
{
	return kind < NSCLIENT_MAX_NS ? kind_nstypes[kind] : 0;
}

void
nsclient_ns_free(struct nsclient_ns *r)
{
	unsigned i;

	for (i = 0; i < NSCLIENT_MAX_NS; i++) {
		if (i < r->n && r->fds[i] >= 0)
			close(r->fds[i]);
		r->fds[i] = -1;
	}
	r->n = 0;
	free(r->uenv_mount_path);
	r->uenv_mount_path = NULL;
}

void
nsclient_ns_kill_fallback(struct nsclient_ns *r)
{
	if (r->fallback && r->fallback_init > 0)
		(void)kill(r->fallback_init, SIGKILL);
	r->fallback_init = 0;
}

int
nsclient_ns_find(const struct nsclient_ns *r, unsigned kind)
{
	unsigned i;

	for (i = 0; i < r->n; i++)
		if (r->kinds[i] == kind)
			return (int)i;
	return -1;
}

static void
ns_init(struct nsclient_ns *r)
{
	memset(r, 0, sizeof(*r));
	r->fds[0] = r->fds[1] = r->fds[2] = -1;
}

int
nsclient_uenv_path(const char *base, const char *image, char *buf,
    size_t len)
{
	size_t n = strlen(image);
	int w;

	if (n > 5 && strcmp(image + n - 5, ".sqfs") == 0)
		n -= 5;
	w = snprintf(buf, len, "%s/%.*s", base, (int)n, image);
	if (w < 0 || (size_t)w >= len)
		return -ENAMETOOLONG;
	return 0;
}

int
nsclient_open_image(const char *dir_path, const char *name)
{
	struct stat st;
	int dfd = -1, fd = -1, r, fl;

	if (!msg_uenv_image_ok(name))
		return -EINVAL;
	dfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		goto out;
	}
	/* O_NONBLOCK: a FIFO planted under the name must not block us. */
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		r = errno == ELOOP ? -EINVAL : -errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto out;
	}
	r = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

int
nsclient_uenv_mount(int image_fd, const char *target)
{
	struct loop_config cfg;
	char dev[32];
	int ctl = -1, lfd = -1, r, tries, n;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		r = -errno;
		goto out;
	}
	/* Another process may grab the same free device: retry on EBUSY. */
	for (tries = 0;; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			r = -errno;
			goto out;
		}
		snprintf(dev, sizeof(dev), "/dev/loop%d", n);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			r = -errno;
			goto out;
		}
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (uint32_t)image_fd;
		cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
			break;
		r = -errno;
		close(lfd);
		lfd = -1;
		if (r != -EBUSY || tries >= 16)
			goto out;
	}
	if (mount(dev, target, "squashfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
	    NULL) < 0) {
		r = -errno;
		goto out;
	}
	r = 0;
out:
	/* With AUTOCLEAR the device detaches when the last user is gone. */
	if (lfd >= 0)
		close(lfd);
	if (ctl >= 0)
		close(ctl);
	return r;
}

/* What the child reports to the caller of nsclient_make(). */
struct make_report {
	int err;		/* 0 or -errno */
	pid_t init;
	char step[120];
};

static void
report_fail(int fd, int err, const char *step, const char *arg)
{
	struct make_report rep;
	ssize_t w;

	memset(&rep, 0, sizeof(rep));
	rep.err = err;
	if (arg)
		snprintf(rep.step, sizeof(rep.step), "%s '%s'", step, arg);
	else
		snprintf(rep.step, sizeof(rep.step), "%s", step);
	w = write(fd, &rep, sizeof(rep));
	(void)w;
}

static void
lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		(void)ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
}

/* pid 1 of the new pid namespace: reap until killed. */
static __attribute__((noreturn)) void
init_loop(void)
{
	sigset_t all, chld;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		(void)sigwaitinfo(&chld, NULL);
	}
}

/*
 * The forked child: unshare, set up, report on rep_fd, wait for EOF on
 * go_fd.  Never returns.
 */
static __attribute__((noreturn)) void
make_child(const struct nsclient_make_opts *o, int rep_fd, int go_fd)
{
	struct make_report rep;
	int flags = 0, ip[2] = { -1, -1 }, ierr = 0;
	pid_t init = 0;
	char c;
	ssize_t n;

	if (o->mask & NSM_PID)
		flags |= CLONE_NEWPID;
	if (o->mask & NSM_NET)
		flags |= CLONE_NEWNET;
	if (o->mask & NSM_MNT)
		flags |= CLONE_NEWNS;
	if (unshare(flags) < 0) {
		report_fail(rep_fd, -errno, "unshare", NULL);
		_exit(1);
	}
	if (o->mask & NSM_NET)
		lo_up();
	if (o->mask & NSM_MNT) {
		/* Nothing we mount here may leak back, nor the reverse. */
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			report_fail(rep_fd, -errno, "make / private", NULL);
			_exit(1);
		}
		/* Other allocations' pins are none of this one's business. */
		if (o->hide_dir && umount2(o->hide_dir, MNT_DETACH) < 0 &&
		    errno != EINVAL && errno != ENOENT) {
			report_fail(rep_fd, -errno, "detach", o->hide_dir);
			_exit(1);
		}
		if (o->image_fd >= 0) {
			int r;

			(void)paths_mkdirs(o->uenv_base, 0755);
			if (mount("tmpfs", o->uenv_base, "tmpfs",
			    MS_NOSUID | MS_NODEV | MS_NOEXEC,
			    "mode=0755,size=64k") < 0) {
				report_fail(rep_fd, -errno, "mount tmpfs on",
				    o->uenv_base);
				_exit(1);
			}
			if (mkdir(o->uenv_path, 0755) < 0) {
				report_fail(rep_fd, -errno, "mkdir",
				    o->uenv_path);
				_exit(1);
			}
			r = nsclient_uenv_mount(o->image_fd, o->uenv_path);
			if (r < 0) {
				report_fail(rep_fd, r, "mount uenv on",
				    o->uenv_path);
				_exit(1);
			}
		}
	}
	if (o->image_fd >= 0)
		close(o->image_fd);
	if (o->mask & NSM_PID) {
		if (pipe2(ip, O_CLOEXEC) < 0) {
			report_fail(rep_fd, -errno, "pipe", NULL);
			_exit(1);
		}
		init = _Fork();
		if (init < 0) {
			report_fail(rep_fd, -errno, "fork init", NULL);
			_exit(1);
		}
		if (init == 0) {
			int e = 0;

			close(ip[0]);
			(void)setsid();
			(void)prctl(PR_SET_NAME, "baton-nsinit", 0, 0, 0);
			/* ps and /proc inside must show this namespace. */
			if ((o->mask & NSM_MNT) && mount("proc", "/proc",
			    "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
				e = -errno;
			n = write(ip[1], &e, sizeof(e));
			(void)n;
			if (e < 0)
				_exit(1);
			close_range(0, ~0U, 0);
			init_loop();
		}
		close(ip[1]);
		n = read(ip[0], &ierr, sizeof(ierr));
		if (n != (ssize_t)sizeof(ierr) || ierr < 0) {
			(void)kill(init, SIGKILL);
			(void)waitpid(init, NULL, 0);
			report_fail(rep_fd, n == (ssize_t)sizeof(ierr) ? ierr :
			    -EPIPE, "mount /proc in the pid namespace", NULL);
			_exit(1);
		}
	}
	memset(&rep, 0, sizeof(rep));
	rep.init = init;
	n = write(rep_fd, &rep, sizeof(rep));
	if (n != (ssize_t)sizeof(rep)) {
		if (init > 0)
			(void)kill(init, SIGKILL);
		_exit(1);
	}
	/* Stay until the caller has opened our namespaces. */
	while ((n = read(go_fd, &c, 1)) < 0 && errno == EINTR)
		;
	_exit(0);
}

static int
open_ns(pid_t pid, const char *name)
{
	char p[64];
	int fd;

	snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)pid, name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int
nsclient_make(const struct nsclient_make_opts *o,
    int ret_fds[NSCLIENT_MAX_NS], pid_t *ret_init, char *errbuf,
    size_t errlen)
{
	struct make_report rep;
	int rp[2] = { -1, -1 }, gp[2] = { -1, -1 };
	int fds[NSCLIENT_MAX_NS] = { -1, -1, -1 };
	pid_t child = -1;
	ssize_t n;
	int r, i, st;

	if (errlen)
		errbuf[0] = '\0';
	if (!o->mask || (o->mask & ~(NSM_PID | NSM_NET | NSM_MNT)) ||
	    (o->image_fd >= 0 && (!(o->mask & NSM_MNT) || !o->uenv_base ||
	    !o->uenv_path))) {
		r = -EINVAL;
		goto out;
	}
	if (pipe2(rp, O_CLOEXEC) < 0 || pipe2(gp, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(errbuf, errlen, "pipe");
		goto out;
	}
	child = _Fork();
	if (child < 0) {
		r = -errno;
		snprintf(errbuf, errlen, "fork");
		goto out;
	}
	if (child == 0) {
		close(rp[0]);
		close(gp[1]);
		make_child(o, rp[1], gp[0]);
	}
	close(rp[1]);
	rp[1] = -1;
	close(gp[0]);
	gp[0] = -1;
	while ((n = read(rp[0], &rep, sizeof(rep))) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(rep)) {
		r = -EPIPE;
		snprintf(errbuf, errlen, "namespace child died");
		goto out;
	}
	if (rep.err < 0) {
		r = rep.err;
		rep.step[sizeof(rep.step) - 1] = '\0';
		snprintf(errbuf, errlen, "%s", rep.step);
		goto out;
	}
	if (o->mask & NSM_NET)
		fds[NSK_NET] = open_ns(child, "net");
	if (o->mask & NSM_MNT)
		fds[NSK_MNT] = open_ns(child, "mnt");
	if (o->mask & NSM_PID)
		fds[NSK_PID] = open_ns(rep.init, "pid");
	for (i = 0; i < NSCLIENT_MAX_NS; i++) {
		if ((o->mask & (1u << i)) && fds[i] < 0) {
			r = fds[i];
			snprintf(errbuf, errlen, "open %s namespace",
			    msg_ns_kind_names[i]);
			goto out;
		}
	}
	for (i = 0; i < NSCLIENT_MAX_NS; i++) {
		ret_fds[i] = fds[i];
		fds[i] = -1;
	}
	*ret_init = rep.init;
	rep.init = 0;
	r = 0;
out:
	for (i = 0; i < NSCLIENT_MAX_NS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (r < 0 && child > 0 && n == (ssize_t)sizeof(rep) && rep.err == 0 &&
	    rep.init > 0)
		(void)kill(rep.init, SIGKILL);
	if (gp[1] >= 0)
		close(gp[1]);
	if (child > 0)
		while (waitpid(child, &st, 0) < 0 && errno == EINTR)
			;
	if (rp[0] >= 0)
		close(rp[0]);
	if (rp[1] >= 0)
		close(rp[1]);
	if (gp[0] >= 0)
		close(gp[0]);
	return r;
}

/* ---- the socket side ---- */

static int
kind_errno(const char *kind)
{
	if (strcmp(kind, "invalid_request") == 0)
		return -EINVAL;
	if (strcmp(kind, "allocation_not_found") == 0)
		return -ENOENT;
	if (strcmp(kind, "limit_exceeded") == 0)
		return -EAGAIN;
	if (strcmp(kind, "creation_failed") == 0)
		return -EIO;
	return -EPROTO;
}

int
nsclient_open(const char *sock_path, struct nsclient **ret)
{
	struct nsclient *c;
	int fd;

	if (strlen(sock_path) >= sizeof(c->path))
		return -ENAMETOOLONG;
	fd = wire_connect(sock_path, NSCLIENT_CONNECT_MS);
	if (fd < 0)
		return fd;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	strcpy(c->path, sock_path);
	c->fd = fd;
	*ret = c;
	return 0;
}

void
nsclient_close(struct nsclient *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

const char *
nsclient_error(const struct nsclient *c, const char **ret_msg)
{
	if (ret_msg)
		*ret_msg = c->err_msg;
	return c->err_kind;
}

unsigned
nsclient_reconnects(const struct nsclient *c)
{
	return c->reconnects;
}

/*
 * Send m and read one answer.  A connection that is gone (before or
 * instead of the answer) is replaced once and the request repeated.
 */
static int
roundtrip(struct nsclient *c, const struct msg *m, struct frame *ret_f)
{
	int r, attempt, fd;

	c->err_kind[0] = c->err_msg[0] = '\0';
	for (attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0) {
			fd = wire_connect(c->path, NSCLIENT_CONNECT_MS);
			if (fd < 0)
				return fd;
			c->fd = fd;
			c->reconnects++;
		}
		r = wire_send(c->fd, m, NULL, 0, NSCLIENT_CONNECT_MS);
		if (r == 0)
			r = wire_recv(c->fd, NSCLIENT_REPLY_MS, ret_f);
		if (r == 0)
			break;
		close(c->fd);
		c->fd = -1;
		if (r != -ECONNRESET && r != -EPIPE)
			return r;
	}
	if (r < 0)
		return r;
	if (ret_f->m.type == MSG_NS_ERROR) {
		snprintf(c->err_kind, sizeof(c->err_kind), "%s",
		    ret_f->m.u.NS_ERROR.kind);
		snprintf(c->err_msg, sizeof(c->err_msg), "%s",
		    ret_f->m.u.NS_ERROR.message);
		frame_release(ret_f);
		return kind_errno(c->err_kind);
	}
	return 0;
}

static int
take_response(struct frame *f, const struct nsclient_req *req,
    struct nsclient_ns *ret)
{
	const msg_NS_RESPONSE_t *b = &f->m.u.NS_RESPONSE;
	struct nsclient_ns res;
	unsigned i;
	int k, t, r;

	ns_init(&res);
	if (f->m.type != MSG_NS_RESPONSE ||
	    strcmp(b->allocation_id, req->allocation_id) != 0 ||
	    b->fd_types.n != f->nfds || f->nfds != req->n ||
	    f->nfds > NSCLIENT_MAX_NS) {
		r = -EPROTO;
		goto out;
	}
	for (i = 0; i < f->nfds; i++) {
		k = nsclient_kind_parse(b->fd_types.v[i]);
		if (k < 0 || strcmp(b->fd_types.v[i],
		    req->namespaces[i]) != 0) {
			r = -EPROTO;
			goto out;
		}
		t = ioctl(f->fds[i], NS_GET_NSTYPE);
		if (t != nsclient_kind_nstype((unsigned)k)) {
			r = -EPROTO;
			goto out;
		}
		res.kinds[i] = (unsigned)k;
	}
	if (b->uenv_mount_path) {
		res.uenv_mount_path = strdup(b->uenv_mount_path);
		if (!res.uenv_mount_path) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < f->nfds; i++)
		res.fds[i] = frame_take_fd(f, i);
	res.n = f->nfds;
	*ret = res;
	ns_init(&res);
	r = 0;
out:
	nsclient_ns_free(&res);
	return r;
}

int
nsclient_request(struct nsclient *c, const struct nsclient_req *req,
    struct nsclient_ns *ret)
{
	struct msg m;
	struct frame f;
	int r;

	if (req->n == 0 || req->n > NSCLIENT_MAX_NS)
		return -EINVAL;
	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_REQUEST;
	m.u.NS_REQUEST.allocation_id = req->allocation_id;
	m.u.NS_REQUEST.namespaces.n = req->n;
	m.u.NS_REQUEST.namespaces.v = (const char **)req->namespaces;
	m.u.NS_REQUEST.uenv_image = req->uenv_image;
	frame_init(&f);
	r = roundtrip(c, &m, &f);
	if (r < 0)
		return r;
	r = take_response(&f, req, ret);
	frame_release(&f);
	return r;
}

int
nsclient_release(struct nsclient *c, const char *allocation_id)
{
	struct msg m;
	struct frame f;
	int r;

	memset(&m, 0, sizeof(m));
	m.type = MSG_ALLOCATION_ENDED;
	m.u.ALLOCATION_ENDED.allocation_id = allocation_id;
	frame_init(&f);
	r = roundtrip(c, &m, &f);
	if (r < 0)
		return r;
	if (f.m.type != MSG_ALLOCATION_RELEASED ||
	    strcmp(f.m.u.ALLOCATION_RELEASED.allocation_id,
	    allocation_id) != 0)
		r = -EPROTO;
	frame_release(&f);
	return r;
}

int
nsclient_status(struct nsclient *c, struct nsclient_status *ret)
{
	struct msg m;
	struct frame f;
	int r;

	memset(&m, 0, sizeof(m));
	m.type = MSG_STATUS;
	frame_init(&f);
	r = roundtrip(c, &m, &f);
	if (r < 0)
		return r;
	if (f.m.type != MSG_STATUS_REPLY) {
		r = -EPROTO;
	} else {
		memset(ret, 0, sizeof(*ret));
		ret->pid = f.m.u.STATUS_REPLY.pid;
		snprintf(ret->build_id, sizeof(ret->build_id), "%s",
		    f.m.u.STATUS_REPLY.build_id);
		ret->generation = f.m.u.STATUS_REPLY.generation;
		ret->allocations = f.m.u.STATUS_REPLY.allocations;
		ret->ready = f.m.u.STATUS_REPLY.ready;
	}
	frame_release(&f);
	return r;
}

static int
subscribe(const char *sock_path, const struct optu64 *since, int *ret_fd)
{
	struct msg m;
	int fd, r;

	fd = wire_connect(sock_path, NSCLIENT_CONNECT_MS);
	if (fd < 0)
		return fd;
	memset(&m, 0, sizeof(m));
	m.type = MSG_SUBSCRIBE;
	m.u.SUBSCRIBE.since_seq = *since;
	r = wire_send(fd, &m, NULL, 0, NSCLIENT_CONNECT_MS);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int
nsclient_subscribe(const char *sock_path, int *ret_fd)
{
	const struct optu64 none = { false, 0 };

	return subscribe(sock_path, &none, ret_fd);
}

int
nsclient_subscribe_since(const char *sock_path, uint64_t since_seq,
    int *ret_fd)
{
	const struct optu64 since = { true, since_seq };

	return subscribe(sock_path, &since, ret_fd);
}

int
nsclient_next_event_seq(int fd, int timeout_ms,
    char ret_id[NSCLIENT_ID_MAX + 1], uint64_t *ret_seq)
{
	struct frame f;
	int r;

	frame_init(&f);
	r = wire_recv(fd, timeout_ms, &f);
	if (r < 0)
		return r;
	if (f.m.type == MSG_ALLOCATION_ENDED) {
		snprintf(ret_id, NSCLIENT_ID_MAX + 1, "%s",
		    f.m.u.ALLOCATION_ENDED.allocation_id);
		if (ret_seq)
			*ret_seq = f.m.u.ALLOCATION_ENDED.seq.v;
	} else if (f.m.type == MSG_NS_ERROR &&
	    strcmp(f.m.u.NS_ERROR.kind, "too_old") == 0) {
		r = -ESTALE;
	} else {
		r = -EPROTO;
	}
	frame_release(&f);
	return r;
}

int
nsclient_next_event(int fd, int timeout_ms, char ret_id[NSCLIENT_ID_MAX + 1])
{
	return nsclient_next_event_seq(fd, timeout_ms, ret_id, NULL);
}

/* ---- the local fallback ---- */

static int
fallback(const struct nsclient_req *req, struct nsclient_ns *ret)
{
	struct nsclient_make_opts o;
	struct nsclient_ns res;
	const char *udir = req->uenv_dir ? req->uenv_dir :
	    "/" NSCLIENT_UENV_DIR;
	const char *ubase = req->uenv_mount_base ? req->uenv_mount_base :
	    "/" NSCLIENT_UENV_BASE;
	char upath[4096], err[160];
	int fds[NSCLIENT_MAX_NS] = { -1, -1, -1 };
	pid_t init = 0;
	unsigned i, mask = 0;
	int r, k, img = -1;

	ns_init(&res);
	for (i = 0; i < req->n; i++) {
		k = nsclient_kind_parse(req->namespaces[i]);
		if (k < 0 || (mask & (1u << k))) {
			r = -EINVAL;
			goto out;
		}
		mask |= 1u << k;
		res.kinds[i] = (unsigned)k;
	}
	memset(&o, 0, sizeof(o));
	o.mask = mask;
	o.image_fd = -1;
	if (req->uenv_image) {
		if (!(mask & NSM_MNT)) {
			r = -EINVAL;
			goto out;
		}
		img = nsclient_open_image(udir, req->uenv_image);
		if (img < 0) {
			r = img;
			goto out;
		}
		r = nsclient_uenv_path(ubase, req->uenv_image, upath,
		    sizeof(upath));
		if (r < 0)
			goto out;
		o.image_fd = img;
		o.uenv_base = ubase;
		o.uenv_path = upath;
		res.uenv_mount_path = strdup(upath);
		if (!res.uenv_mount_path) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = nsclient_make(&o, fds, &init, err, sizeof(err));
	if (r < 0) {
		log_error("ns.fallback_failed", err, "allocation_id=%s err=%d",
		    req->allocation_id, r);
		goto out;
	}
	for (i = 0; i < req->n; i++) {
		res.fds[i] = fds[res.kinds[i]];
		fds[res.kinds[i]] = -1;
	}
	res.n = req->n;
	res.fallback = true;
	res.fallback_init = init;
	*ret = res;
	ns_init(&res);
	r = 0;
out:
	for (i = 0; i < NSCLIENT_MAX_NS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (img >= 0)
		close(img);
	nsclient_ns_free(&res);
	return r;
}

int
nsclient_request_path(const char *sock_path,
    const struct nsclient_req *req, unsigned flags, struct nsclient_ns *ret)
{
	struct nsclient *c = NULL;
	int r;

	if (!msg_allocation_id_ok(req->allocation_id) ||
	    (req->uenv_image && !msg_uenv_image_ok(req->uenv_image)))
		return -EINVAL;
	r = nsclient_open(sock_path, &c);
	if (r < 0) {
		if (!(flags & NSCLIENT_LOCAL_FALLBACK))
			return r;
		log_warn("ns.fallback", "namespace provider unreachable; "
		    "creating namespaces locally", "allocation_id=%s "
		    "socket=%s err=%d", req->allocation_id, sock_path, r);
		return fallback(req, ret);
	}
	r = nsclient_request(c, req, ret);
	nsclient_close(c);
	return r;
}
