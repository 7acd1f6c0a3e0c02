/*
 * test_nsclient: the consumer library on its own: image name checks,
 * the uenv path convention, nsclient_make(), and the local fallback
 * when no provider listens.  Namespace cases need root.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/nsclient.h"
#include "common/nsvocab.h"
#include "tests/lib/tap.h"

static void
need_root(void)
{
	if (geteuid() != 0)
		tap_skip("needs root (namespaces, mounts)");
}

TEST(uenv_path_convention)
{
	char buf[64];

	check_eq(nsclient_uenv_path("/run/pact/uenv", "pytorch-2.5.sqfs", buf,
	    sizeof(buf)), 0);
	check(strcmp(buf, "/run/pact/uenv/pytorch-2.5") == 0, "%s", buf);
	check_eq(nsclient_uenv_path("/x", "a.sqfs", buf, 4), -ENAMETOOLONG);
	check_eq(nsclient_kind_parse("mount"), NSK_MNT);
	check_eq(nsclient_kind_parse("mnt"), -EINVAL);
	check_eq(nsclient_kind_nstype(NSK_NET), CLONE_NEWNET);
}

/*
 * The installed header repeats the vocabulary's numbers and paths (it is
 * installed alone); the numbers are asserted where the library is built,
 * the paths here, and every kind reads the same through both.
 */
TEST(public_header_speaks_the_vocabulary)
{
	unsigned k;

	check(strcmp(NSCLIENT_SOCK, NSV_SOCK) == 0, "%s", NSCLIENT_SOCK);
	check(strcmp(NSCLIENT_UENV_DIR, NSV_UENV_DIR) == 0, "%s",
	    NSCLIENT_UENV_DIR);
	check(strcmp(NSCLIENT_UENV_BASE, NSV_UENV_BASE) == 0, "%s",
	    NSCLIENT_UENV_BASE);
	for (k = 0; k < NSCLIENT_MAX_NS; k++) {
		check(strcmp(nsclient_kind_name(k), nsvocab_kind_name(k)) == 0,
		    "kind %u: %s", k, nsclient_kind_name(k));
		check_eq(nsclient_kind_parse(nsvocab_kind_name(k)), (int)k);
		check_eq(nsclient_kind_nstype(k), nsvocab_kind_nstype(k));
	}
	check(strcmp(nsclient_kind_name(NSCLIENT_MAX_NS), "?") == 0,
	    "out of range");
	check_eq(nsclient_kind_nstype(NSCLIENT_MAX_NS), 0);
}

TEST(open_image_refuses_escapes)
{
	char dir[] = "/tmp/nscl.XXXXXX", p[256], q[256];
	int fd;

	require(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(p, sizeof(p), "%s/ok.sqfs", dir);
	close(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	snprintf(p, sizeof(p), "%s/d.sqfs", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/f.sqfs", dir);
	mkfifo(p, 0600);
	snprintf(p, sizeof(p), "%s/ok.sqfs", dir);
	snprintf(q, sizeof(q), "%s/l.sqfs", dir);
	symlink(p, q);
	fd = nsclient_open_image(dir, "ok.sqfs");
	check(fd >= 0, "plain file opens: %d", fd);
	if (fd >= 0)
		close(fd);
	check_eq(nsclient_open_image(dir, "l.sqfs"), -EINVAL);
	check_eq(nsclient_open_image(dir, "d.sqfs"), -EINVAL);
	check_eq(nsclient_open_image(dir, "f.sqfs"), -EINVAL);	/* no hang */
	check_eq(nsclient_open_image(dir, "../ok.sqfs"), -EINVAL);
	check_eq(nsclient_open_image(dir, "x/ok.sqfs"), -EINVAL);
	check_eq(nsclient_open_image(dir, "ok.img"), -EINVAL);
	check_eq(nsclient_open_image(dir, "nope.sqfs"), -ENOENT);
	snprintf(p, sizeof(p), "rm -rf %s", dir);
	(void)system(p);
}

static int
child_only_lo(int netfd)
{
	char line[256];
	FILE *f;
	int n = 0, st;
	pid_t p = fork();

	if (p == 0) {
		if (setns(netfd, CLONE_NEWNET) < 0)
			_exit(2);
		f = fopen("/proc/net/dev", "re");
		if (!f)
			_exit(3);
		while (fgets(line, sizeof(line), f))
			if (strchr(line, ':'))
				n++;
		_exit(n == 1 ? 0 : 1);
	}
	if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

TEST_T(fallback_without_provider, 30)
{
	static const char *const ns[] = { "net", "pid", "mount" };
	struct nsclient_req rq = { .allocation_id = "fb-1", .namespaces = ns,
	    .n = 3 };
	struct nsclient_ns r;
	unsigned i;
	int rc, before;

	need_root();
	before = tap_count_fds();
	rc = nsclient_request_path("/nonexistent/handoff.sock", &rq,
	    NSCLIENT_NO_FALLBACK, &r);
	check(rc < 0, "no fallback when told: %d", rc);
	rc = nsclient_request_path("/nonexistent/handoff.sock", &rq, 0, &r);
	check(rc < 0, "no fallback by default: %d", rc);
	rc = nsclient_request_path("/nonexistent/handoff.sock", &rq,
	    NSCLIENT_LOCAL_FALLBACK, &r);
	require(rc == 0, "fallback: %s", strerror(-rc));
	check(r.fallback, "result says it was a fallback");
	check(r.fallback_init > 0, "pid namespace has an init");
	check_eq(r.n, 3);
	for (i = 0; i < r.n; i++)
		check_eq(ioctl(r.fds[i], NS_GET_NSTYPE),
		    nsclient_kind_nstype(r.kinds[i]));
	check_eq(r.kinds[0], NSK_NET);
	check_eq(child_only_lo(r.fds[0]), 0);
	nsclient_ns_kill_fallback(&r);
	nsclient_ns_free(&r);
	check_eq(tap_count_fds(), before);
}

TEST_T(make_undoes_on_failure, 30)
{
	struct nsclient_make_opts o = { .mask = NSM_MNT, .image_fd = -1 };
	int fds[NSCLIENT_MAX_NS], before, fd, r;
	char err[160];
	pid_t init = 0;

	need_root();
	before = tap_count_fds();
	/* A non-squashfs "image": the mount fails, nothing stays. */
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	o.image_fd = fd;
	o.uenv_base = "/tmp/nscl-base";
	o.uenv_path = "/tmp/nscl-base/bad";
	r = nsclient_make(&o, fds, &init, err, sizeof(err));
	check(r < 0, "bad image fails: %d", r);
	check(strstr(err, "mount uenv") != NULL, "step named: %s", err);
	close(fd);
	check_eq(tap_count_fds(), before);
	(void)rmdir("/tmp/nscl-base/bad");
	(void)rmdir("/tmp/nscl-base");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
