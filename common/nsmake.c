/*
 * nsmake: the namespace maker, shared by the consumer library's local
 * fallback (client/nsclient.c) and the provider's helper process
 * (successor/nsprov.c).  OS work only: unshare, mounts, loop devices.
 *
 * Invariants:
 * - nsmake() leaves nothing behind on failure: its child exits, the init
 *   (if any) is killed, the loop device auto-clears.
 * - Every fd it hands back is CLOEXEC and of the kind asked for (opened
 *   from /proc/<pid>/ns of the process that made it).
 *
 * nsmake() forks a child C that unshares the namespaces and sets them
 * up (or, for a net namespace alone and a caller that is a throwaway
 * process, nsmake_opts.in_place, the caller unshares it itself); with a
 * pid namespace C forks the init I (pid 1 there).  C reports on a pipe
 * and then waits until the caller has opened /proc/C/ns/{net,mnt} and
 * /proc/I/ns/pid, so the caller never needs to enter the namespaces
 * itself.  I blocks every signal and reaps in a sigwaitinfo loop: only
 * SIGKILL from outside ends it.  The children are made with _Fork():
 * atfork handlers (libuv's re-creates its signal lock pipe) must not
 * renumber fds under the child's feet.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
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

#include "common/nsmake.h"
#include "common/nsvocab.h"
#include "common/paths.h"

int
nsmake_open_image(const char *dir_path, const char *name)
{
	struct stat st;
	int dfd = -1, fd = -1, r, fl;

	if (!nsvocab_image_ok(name))
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
nsmake_uenv_mount(int image_fd, const char *target)
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

/* What the child reports to the caller of nsmake(). */
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
make_child(const struct nsmake_opts *o, int rep_fd, int go_fd)
{
	struct make_report rep;
	int flags = 0, ip[2] = { -1, -1 }, ierr = 0;
	unsigned k;
	pid_t init = 0;
	char c;
	ssize_t n;

	for (k = 0; k < NSV_KINDS; k++)
		if (o->mask & (1u << k))
			flags |= nsvocab_kind_nstype(k);
	if (o->net_made)
		flags &= ~CLONE_NEWNET;	/* ours, inherited: lo is up */
	if (flags && unshare(flags) < 0) {
		report_fail(rep_fd, -errno, "unshare", NULL);
		_exit(1);
	}
	if ((o->mask & NSVM_NET) && !o->net_made)
		lo_up();
	if (o->mask & NSVM_MNT) {
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
			r = nsmake_uenv_mount(o->image_fd, o->uenv_path);
			if (r < 0) {
				report_fail(rep_fd, r, "mount uenv on",
				    o->uenv_path);
				_exit(1);
			}
		}
	}
	if (o->image_fd >= 0)
		close(o->image_fd);
	if (o->mask & NSVM_PID) {
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
			if ((o->mask & NSVM_MNT) && mount("proc", "/proc",
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
nsmake_net_ahead(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	lo_up();
	return 0;
}

/* nsmake_opts.in_place: a net namespace for this very process. */
static int
make_net_here(const struct nsmake_opts *o, int ret_fds[NSV_KINDS],
    pid_t *ret_init, char *errbuf, size_t errlen)
{
	int fd, r;

	if (!o->net_made && (r = nsmake_net_ahead()) < 0) {
		snprintf(errbuf, errlen, "unshare");
		return r;
	}
	fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(errbuf, errlen, "open net namespace");
		return r;
	}
	ret_fds[NSV_PID] = ret_fds[NSV_MNT] = -1;
	ret_fds[NSV_NET] = fd;
	*ret_init = 0;
	return 0;
}

int
nsmake(const struct nsmake_opts *o,
    int ret_fds[NSV_KINDS], pid_t *ret_init, char *errbuf,
    size_t errlen)
{
	struct make_report rep;
	int rp[2] = { -1, -1 }, gp[2] = { -1, -1 };
	int fds[NSV_KINDS] = { -1, -1, -1 };
	pid_t child = -1;
	ssize_t n;
	int r, i, st;

	if (errlen)
		errbuf[0] = '\0';
	if (!o->mask || (o->mask & ~NSVM_ALL) ||
	    (o->net_made && !(o->mask & NSVM_NET)) ||
	    (o->image_fd >= 0 && (!(o->mask & NSVM_MNT) || !o->uenv_base ||
	    !o->uenv_path))) {
		r = -EINVAL;
		goto out;
	}
	if (o->in_place && o->mask == NSVM_NET)
		return make_net_here(o, ret_fds, ret_init, errbuf, errlen);
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
	/* The pid namespace is the init's; C itself is outside of it. */
	for (i = 0; i < NSV_KINDS; i++)
		if (o->mask & (1u << i))
			fds[i] = open_ns(i == NSV_PID ? rep.init : child,
			    nsvocab_kind_proc((unsigned)i));
	for (i = 0; i < NSV_KINDS; i++) {
		if ((o->mask & (1u << i)) && fds[i] < 0) {
			r = fds[i];
			snprintf(errbuf, errlen, "open %s namespace",
			    nsvocab_kind_name((unsigned)i));
			goto out;
		}
	}
	for (i = 0; i < NSV_KINDS; i++) {
		ret_fds[i] = fds[i];
		fds[i] = -1;
	}
	*ret_init = rep.init;
	rep.init = 0;
	r = 0;
out:
	for (i = 0; i < NSV_KINDS; i++)
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

