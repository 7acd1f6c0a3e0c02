/*
 * nsprov: namespace creation and pinning, outside the event loop.
 *
 * A creation runs in a helper process forked from the agent.  The helper
 * first drops every fd but its report pipe and the image, resets signal
 * handling (libuv's handlers write into the agent's signal pipe), then:
 *   1. mkdir <pin_dir>/<id> (0700) and an empty file per namespace;
 *   2. with a pid namespace, moves itself into the allocation's cgroup
 *      (nscgroup.h), outside the service's (without one no process
 *      outlives the creation: nothing to move); then nsmake():
 *      the namespaces, made in a grandchild; with pid, the new
 *      namespace's init is the reaper that keeps it usable;
 *   3. reports CREATED, bind-mounts /proc/self/fd/<ns fd> onto each file
 *      (these pins keep net and mnt alive with no process at all), writes
 *      <dir>/reaper with the init's pid, and reports PINNED with inodes.
 * Any failure undoes every step and reports FAILED with the step and
 * errno; if the agent is gone when PINNED is written, the helper undoes
 * everything too, since nobody will ever persist it.
 *
 * Pins live in the agent's mount namespace, under pin_dir, which is a
 * private bind mount of itself: mnt pins must sit in a mount namespace
 * older than the one pinned (the kernel refuses loops), and new
 * allocation namespaces detach pin_dir so they neither see nor hold
 * other allocations' pins.
 *
 * The reaper is not the agent's child (its parent, the grandchild, exits
 * at once): the nearest child subreaper (the supervisor) reaps it.  It is
 * killed through a pidfd after its pid namespace inode was checked, so a
 * recycled pid is never signalled.  The helper is made with _Fork(): no
 * atfork handler (libuv's, ASan's) runs in it.  The report carries when
 * each step ended (nsprov_mark): the agent logs the breakdown.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/nsmake.h"
#include "common/paths.h"
#include "common/sandbox.h"
#include "proto/msg.h"
#include "successor/nscgroup.h"
#include "successor/nsprov.h"
#include "successor/nswriter.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

int
nsprov_dir_path(const char *pin_dir, const char *id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", pin_dir, id);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int
nsprov_pin_path(const char *pin_dir, const char *id, unsigned kind,
    char *buf, size_t len)
{
	int n;

	if (kind >= NSV_KINDS)
		return -EINVAL;
	n = snprintf(buf, len, "%s/%s/%s", pin_dir, id,
	    nsvocab_kind_proc(kind));
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int
nsprov_prepare_pin_dir(const char *pin_dir)
{
	struct statx stx;
	int r;

	r = paths_mkdirs(pin_dir, 0755);
	if (r < 0)
		return r;
	if (statx(AT_FDCWD, pin_dir, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS,
	    &stx) < 0)
		return -errno;
	/*
	 * Its own tmpfs, as /run is on a systemd host, wherever the state
	 * root lies: a pin is a few inodes that live as long as the host's
	 * mount, and on a disk file system creating them cost the helper
	 * as much CPU as its network namespace (ext4's inode allocator;
	 * docs/BENCH.md).  Mounted once; a later agent keeps what it finds.
	 */
	if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
	    !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
		if (mount("baton-pins", pin_dir, "tmpfs",
		    MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755") < 0)
			return -errno;
	}
	if (mount(NULL, pin_dir, NULL, MS_PRIVATE, NULL) < 0)
		return -errno;
	return 0;
}

static int
read_reaper(const char *pin_dir, const char *id, pid_t *ret)
{
	char path[4096], buf[32];
	ssize_t n;
	int fd, r;

	r = snprintf(path, sizeof(path), "%s/%s/reaper", pin_dir, id);
	if (r < 0 || (size_t)r >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	buf[n] = '\0';
	*ret = (pid_t)strtol(buf, NULL, 10);
	return *ret > 0 ? 0 : -EINVAL;
}

int
nsprov_kill_reaper(pid_t pid, uint64_t pid_ino)
{
	char path[64];
	struct stat st;
	int pfd, r;

	if (pid <= 0)
		return -ESRCH;
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return -errno;
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	if (stat(path, &st) < 0) {
		r = errno == ENOENT ? -ESRCH : -errno;
		goto out;
	}
	if ((uint64_t)st.st_ino != pid_ino) {
		r = -ESRCH;	/* the pid now names someone else */
		goto out;
	}
	r = syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) < 0 ?
	    -errno : 0;
out:
	close(pfd);
	return r;
}

int
nsprov_destroy(const char *pin_dir, const char *id, pid_t reaper,
    uint64_t pid_ino)
{
	char path[4096];
	struct stat st;
	unsigned k;
	int r, first = 0;

	if (!nsvocab_id_ok(id))
		return -EINVAL;
	if (reaper <= 0)
		(void)read_reaper(pin_dir, id, &reaper);
	if (reaper > 0 && pid_ino == 0 &&
	    nsprov_pin_path(pin_dir, id, NSV_PID, path, sizeof(path)) == 0 &&
	    stat(path, &st) == 0)
		pid_ino = st.st_ino;
	if (reaper > 0 && pid_ino != 0) {
		r = nsprov_kill_reaper(reaper, pid_ino);
		if (r < 0 && r != -ESRCH && !first)
			first = r;
	}
	for (k = 0; k < NSV_KINDS; k++) {
		if (nsprov_pin_path(pin_dir, id, k, path, sizeof(path)) < 0)
			continue;
		/* Detach until nothing is mounted there any more. */
		while (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			;
		if (unlink(path) < 0 && errno != ENOENT && !first)
			first = -errno;
	}
	r = snprintf(path, sizeof(path), "%s/%s/reaper", pin_dir, id);
	if (r > 0 && (size_t)r < sizeof(path) && unlink(path) < 0 &&
	    errno != ENOENT && !first)
		first = -errno;
	if (nsprov_dir_path(pin_dir, id, path, sizeof(path)) == 0 &&
	    rmdir(path) < 0 && errno != ENOENT && !first)
		first = -errno;
	return first;
}

int
nsprov_open_pin(const char *pin_dir, const char *id, unsigned kind,
    uint64_t ino)
{
	char path[4096];
	struct stat st;
	int fd, r;

	r = nsprov_pin_path(pin_dir, id, kind, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

int
nsprov_check(const char *pin_dir, const char *id, unsigned mask,
    const uint64_t ino[NSV_KINDS], pid_t reaper, const char **ret_why)
{
	char path[4096];
	struct statfs sf;
	struct stat st;
	unsigned k;
	int r;

	for (k = 0; k < NSV_KINDS; k++) {
		if (!(mask & (1u << k)))
			continue;
		r = nsprov_pin_path(pin_dir, id, k, path, sizeof(path));
		if (r < 0)
			return r;
		if (statfs(path, &sf) < 0 || stat(path, &st) < 0) {
			*ret_why = "pin missing";
			return -errno;
		}
		if ((unsigned long)sf.f_type != NSFS_MAGIC) {
			*ret_why = "pin is not a namespace mount";
			return -ESTALE;
		}
		if ((uint64_t)st.st_ino != ino[k]) {
			*ret_why = "pin names another namespace";
			return -ESTALE;
		}
	}
	if (mask & NSVM_PID)
		return nsprov_check_init(reaper, ino[NSV_PID], ret_why);
	return 0;
}

int
nsprov_check_init(pid_t reaper, uint64_t pid_ino, const char **ret_why)
{
	char path[64], buf[512], *p;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)reaper);
	if (reaper <= 0 || stat(path, &st) < 0) {
		*ret_why = "reaper gone";
		return -ESRCH;
	}
	if ((uint64_t)st.st_ino != pid_ino) {
		*ret_why = "reaper pid reused";
		return -ESRCH;
	}
	/*
	 * A zombie (killed, not reaped yet: its parent died with the
	 * service) still shows its pid namespace: look at its state too.
	 */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)reaper);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		*ret_why = "reaper gone";
		return -ESRCH;
	}
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) {
		*ret_why = "reaper exited (zombie)";
		return -ESRCH;
	}
	return 0;
}

static void
leftover_remove(const char *pin_dir, const char *id)
{
	int r = nsprov_destroy(pin_dir, id, 0, 0);

	log_warn("ns.leftover_removed", "pin directory not in the table",
	    "allocation_id=%s err=%d", id, r);
}

int
nsprov_sweep(const char *pin_dir, bool (*known)(const char *id, void *data),
    void *data)
{
	DIR *d;
	struct dirent *e;
	int n = 0;

	d = opendir(pin_dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		if (!nsvocab_id_ok(e->d_name) || known(e->d_name, data))
			continue;
		leftover_remove(pin_dir, e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

int
nsprov_sweep_one(const char *pin_dir, const char *id)
{
	char path[4096];
	struct stat st;

	if (!nsvocab_id_ok(id) ||
	    nsprov_dir_path(pin_dir, id, path, sizeof(path)) < 0 ||
	    lstat(path, &st) < 0)
		return 0;
	leftover_remove(pin_dir, id);
	return 1;
}

/* ---- the helper process ---- */

static void
say(int fd, const struct nsprov_report *rep)
{
	ssize_t n;

	while ((n = write(fd, rep, sizeof(*rep))) < 0 && errno == EINTR)
		;
}

static void
fail(int fd, int err, const char *fmt, const char *arg)
{
	struct nsprov_report rep;

	memset(&rep, 0, sizeof(rep));
	rep.stage = NSPROV_FAILED;
	rep.t_us[NSPROV_T_START] = clock_mono_us();
	rep.err = err;
	snprintf(rep.what, sizeof(rep.what), "%s%s%s%s: %s", fmt,
	    arg ? " '" : "", arg ? arg : "", arg ? "'" : "", strerror(-err));
	say(fd, &rep);
}

void
nsprov_report_failed(int wfd, int err, const char *what)
{
	fail(wfd, err, what, NULL);
}

/*
 * The helper's undo: only its own directory.  An agent that died leaves
 * its helpers running; the next agent's sweep removes their directories
 * and a client's retry may make the same id's directory again, which an
 * old helper's undo must not take (seen in the crash matrix: the retry's
 * bind mount found its pin file gone).
 */
static void
undo_own(const struct nsprov_req *rq, const char *dir, const struct stat *own)
{
	struct stat st;

	if (stat(dir, &st) == 0 && st.st_ino == own->st_ino &&
	    st.st_dev == own->st_dev)
		(void)nsprov_destroy(rq->pin_dir, rq->id, 0, 0);
}

static __attribute__((noreturn)) void
helper_main(const struct nsprov_req *rq, int wfd, uint64_t *t)
{
	struct nsmake_opts mo;
	struct nsprov_report rep;
	char dir[4096], path[4096], src[64], tgt[64], err[160], buf[32];
	int fds[NSV_KINDS] = { -1, -1, -1 };
	int pins[NSV_KINDS] = { -1, -1, -1 };
	struct stat own;
	pid_t init = 0;
	unsigned k;
	ssize_t w;
	int r, fd, dfd = -1, len;

	if (nsprov_dir_path(rq->pin_dir, rq->id, dir, sizeof(dir)) < 0) {
		fail(wfd, -ENAMETOOLONG, "pin path", NULL);
		_exit(1);
	}
	/*
	 * A leftover of a creation killed before it could answer is undone
	 * first; only then (mkdir: EEXIST) is it worth the dozen calls.
	 */
	r = mkdir(dir, 0700) < 0 ? -errno : 0;
	if (r == -EEXIST) {
		(void)nsprov_destroy(rq->pin_dir, rq->id, 0, 0);
		r = mkdir(dir, 0700) < 0 ? -errno : 0;
	}
	/*
	 * From here on only through this directory's fd and its files' fds:
	 * a later helper for the same id (this agent died, the client asked
	 * the next) removes this directory as a leftover and makes its own
	 * at the same path, and nothing of ours may land in that one (a
	 * bind mount on its pin file outlived its release).  In a removed
	 * directory our calls fail instead (ENOENT).
	 */
	if (r == 0 && ((dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0 || fstat(dfd, &own) < 0))
		r = -errno;
	if (r < 0) {
		fail(wfd, r, "mkdir", dir);
		_exit(1);
	}
	for (k = 0; k < NSV_KINDS; k++) {
		if (!(rq->mask & (1u << k)))
			continue;
		pins[k] = openat(dfd, nsvocab_kind_proc(k), O_WRONLY | O_CREAT |
		    O_EXCL | O_CLOEXEC, 0400);
		if (pins[k] < 0) {
			r = -errno;
			(void)nsprov_pin_path(rq->pin_dir, rq->id, k, path,
			    sizeof(path));
			fail(wfd, r, "create pin", path);
			goto undo;
		}
	}
	t[NSPROV_T_DIR] = clock_mono_us();
	/* Out of the service's cgroup before the init is forked. */
	if (rq->cg && (r = nscgroup_enter(rq->cg, rq->id, getpid())) < 0) {
		fail(wfd, r, "move into the allocation cgroup", NULL);
		goto undo;
	}
	t[NSPROV_T_CGROUP] = clock_mono_us();
	memset(&mo, 0, sizeof(mo));
	mo.mask = rq->mask;
	mo.image_fd = rq->image_fd;
	mo.uenv_base = rq->uenv_base;
	mo.uenv_path = rq->uenv_path;
	mo.hide_dir = rq->pin_dir;
	mo.in_place = true;	/* this process ends with the creation */
	mo.net_made = rq->net_made;
	r = nsmake(&mo, fds, &init, err, sizeof(err));
	if (r < 0) {
		fail(wfd, r, err, NULL);
		goto undo;
	}
	t[NSPROV_T_MADE] = clock_mono_us();
	memset(&rep, 0, sizeof(rep));
	rep.stage = NSPROV_CREATED;
	rep.reaper = init;
	say(wfd, &rep);
	for (k = 0; k < NSV_KINDS; k++) {
		struct stat st;

		if (!(rq->mask & (1u << k)))
			continue;
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fds[k]);
		snprintf(tgt, sizeof(tgt), "/proc/self/fd/%d", pins[k]);
		if (mount(src, tgt, NULL, MS_BIND, NULL) < 0) {
			r = -errno;
			(void)nsprov_pin_path(rq->pin_dir, rq->id, k, path,
			    sizeof(path));
			fail(wfd, r, "bind-mount pin", path);
			goto undo;
		}
		if (fstat(fds[k], &st) < 0) {
			r = -errno;
			fail(wfd, r, "fstat namespace", NULL);
			goto undo;
		}
		rep.ino[k] = st.st_ino;
	}
	if (init > 0) {
		fd = openat(dfd, "reaper", O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0400);
		len = snprintf(buf, sizeof(buf), "%d\n", (int)init);
		if (fd < 0 || write(fd, buf, (size_t)len) != len) {
			r = -errno;
			if (fd >= 0)
				close(fd);
			fail(wfd, r, "write the reaper file in", dir);
			goto undo;
		}
		close(fd);
	}
	rep.stage = NSPROV_PINNED;
	t[NSPROV_T_PINNED] = clock_mono_us();
	memcpy(rep.t_us, t, sizeof(rep.t_us));
	while ((w = write(wfd, &rep, sizeof(rep))) < 0 && errno == EINTR)
		;
	if (w != (ssize_t)sizeof(rep)) {
		r = -EPIPE;	/* the agent is gone: nobody will keep this */
		goto undo;
	}
	_exit(0);
undo:
	for (k = 0; k < NSV_KINDS; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	if (init > 0)
		(void)kill(init, SIGKILL);
	undo_own(rq, dir, &own);
	_exit(1);
}

int
nsprov_open_report(int *ret_rfd, int *ret_wfd)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;

		close(p[0]);
		close(p[1]);
		return r;
	}
	*ret_rfd = p[0];
	*ret_wfd = p[1];
	return 0;
}

void
nsprov_child_signals(void)
{
	struct sigaction sa;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
}

/*
 * Every helper's start, in the child of a fork: named (so ps and process
 * counts tell it from the agent), no libuv handler left, nothing blocked,
 * behind the loop that answers everyone (nice, never raised back; the
 * init and the namespace child inherit it).
 */
static void
helper_start(const char *name)
{
	sigset_t none;

	(void)prctl(PR_SET_NAME, name, 0, 0, 0);
	nsprov_child_signals();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	(void)setpriority(PRIO_PROCESS, 0, SANDBOX_HELPER_NICE);
}

/*
 * Keep only stdio, the pipe (3) and the image (4: local->image_fd);
 * staging above 10 first so neither dup2 clobbers the other source.
 * Exits on failure (nothing to report on yet).
 */
static void
helper_fds(struct nsprov_req *local, int wfd)
{
	int r;

	if ((wfd = fcntl(wfd, F_DUPFD_CLOEXEC, 10)) < 0 || dup2(wfd, 3) < 0)
		_exit(1);
	if (local->image_fd >= 0) {
		if ((r = fcntl(local->image_fd, F_DUPFD_CLOEXEC, 10)) < 0 ||
		    dup2(r, 4) < 0)
			_exit(1);
		local->image_fd = 4;
	}
	close_range(local->image_fd >= 0 ? 5 : 4, ~0U, 0);
}

/*
 * The helper's fds, then (under a sandboxed agent) the narrower helper
 * filter, unless it runs under the spawner's already, then its work,
 * reporting on wfd.
 */
static __attribute__((noreturn)) void
helper_run(struct nsprov_req *local, int wfd, uint64_t *t)
{
	helper_fds(local, wfd);
	if (sandbox_enter_child(SANDBOX_NSHELPER) < 0) {
		fail(3, -EPERM, "install the helper's seccomp filter", NULL);
		_exit(1);
	}
	sandbox_test_forbidden(SANDBOX_NSHELPER);
	t[NSPROV_T_SETUP] = clock_mono_us();
	helper_main(local, 3, t);
}

static int
spawn(const struct nsprov_req *rq, int wfd, pid_t *ret_pid, bool lock)
{
	uint64_t t[NSPROV_T_N] = { 0 };
	sigset_t all, old;
	struct nsprov_req local;
	int r;
	pid_t pid;

	/* No signal may run a libuv handler in the child before the reset. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	/*
	 * _Fork runs no atfork handler: no other thread may hold a lock the
	 * child could need (the allocator's, an interposed library's).  The
	 * table's writer thread is the only other thread: it never
	 * allocates, and is parked where a library may sit in its calls
	 * (nswriter_fork_lock).  The spawner has no other thread (!lock).
	 */
	if (lock)
		nswriter_fork_lock();
	pid = _Fork();
	if (pid != 0 && lock)
		nswriter_fork_unlock();
	if (pid == 0) {
		t[NSPROV_T_START] = clock_mono_us();
		helper_start("baton-nshelper");
		local = *rq;
		helper_run(&local, wfd, t);
	}
	r = pid < 0 ? -errno : 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		*ret_pid = pid;
	return r;
}

void
nsprov_spare_enter(void)
{
	helper_start("baton-nsspare");
}

void
nsprov_spare_run(const struct nsprov_req *rq, int wfd, uint64_t t_start)
{
	uint64_t t[NSPROV_T_N] = { 0 };
	struct nsprov_req local = *rq;

	t[NSPROV_T_START] = t_start;
	(void)prctl(PR_SET_NAME, "baton-nshelper", 0, 0, 0);
	/* Only now: a filter of its own (nshelper) denies that recvmsg. */
	helper_run(&local, wfd, t);
}

int
nsprov_spawn(const struct nsprov_req *rq, int wfd, pid_t *ret_pid)
{
	return spawn(rq, wfd, ret_pid, true);
}

int
nsprov_spawn_alone(const struct nsprov_req *rq, int wfd, pid_t *ret_pid)
{
	return spawn(rq, wfd, ret_pid, false);
}
