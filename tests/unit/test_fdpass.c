/*
 * test_fdpass: fds arrive CLOEXEC and intact, or not at all.  Too many
 * fds, a truncated control buffer and a foreign control message each
 * fail with every received fd closed (fd count unchanged); EOF is 0;
 * signals do not break a blocking receive.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transport/fdpass.h"
#include "tests/lib/tap.h"

static void
pair(int sv[2], int type)
{
	require(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) == 0,
	    "socketpair: %s", strerror(errno));
}

/* n distinct memfds, so each received fd can be matched by inode. */
static void
make_fds(int *fds, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		fds[i] = memfd_create("fdpass-test", MFD_CLOEXEC);
		require(fds[i] >= 0, "memfd_create: %s", strerror(errno));
	}
}

static bool
same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Raw sendmsg of n fds (bypasses fdpass_send's limit). */
static void
raw_send(int sock, const int *fds, unsigned n)
{
	char ctl[CMSG_SPACE(sizeof(int) * 64)];
	struct iovec iov = { .iov_base = (void *)"x", .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	require(n <= 64, "n");
	memset(ctl, 0, sizeof(ctl));
	msg.msg_control = ctl;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	require(sendmsg(sock, &msg, 0) == 1, "sendmsg: %s", strerror(errno));
}

static void
roundtrip(int type, unsigned n)
{
	int sv[2], sent[FDPASS_MAX_FDS], got[FDPASS_MAX_FDS];
	char buf[16];
	unsigned nfds = 99, i;
	ssize_t r;

	pair(sv, type);
	make_fds(sent, n);
	r = fdpass_send(sv[0], "hello", 5, sent, n, 0);
	check_eq(r, 5);
	r = fdpass_recv(sv[1], buf, sizeof(buf), got, FDPASS_MAX_FDS, &nfds, 0);
	check_eq(r, 5);
	check(memcmp(buf, "hello", 5) == 0, "payload");
	require(nfds == n, "got %u fds, sent %u", nfds, n);
	for (i = 0; i < n; i++) {
		int fl = fcntl(got[i], F_GETFD);

		check(same_file(got[i], sent[i]), "fd %u is the one sent", i);
		check(fl >= 0 && (fl & FD_CLOEXEC), "fd %u is CLOEXEC", i);
	}
	fdpass_close_all(got, nfds);
	check(got[0] == -1, "close_all resets slots");
	fdpass_close_all(sent, n);
	close(sv[0]);
	close(sv[1]);
}

TEST(pass_one_fd)
{
	roundtrip(SOCK_STREAM, 1);
	roundtrip(SOCK_SEQPACKET, 1);
}

TEST(pass_sixteen_fds)
{
	roundtrip(SOCK_STREAM, FDPASS_MAX_FDS);
	roundtrip(SOCK_SEQPACKET, FDPASS_MAX_FDS);
}

TEST(data_without_fds)
{
	int sv[2], got[4];
	unsigned nfds = 99;
	char buf[8];
	ssize_t r;

	pair(sv, SOCK_STREAM);
	r = fdpass_send(sv[0], "abc", 3, NULL, 0, 0);
	check_eq(r, 3);
	r = fdpass_recv(sv[1], buf, sizeof(buf), got, 0, &nfds, 0);
	check_eq(r, 3);
	check_eq(nfds, 0);
	close(sv[0]);
	close(sv[1]);
}

TEST(send_rejects_bad_arguments)
{
	int sv[2], fds[FDPASS_MAX_FDS + 1];
	ssize_t r;

	pair(sv, SOCK_STREAM);
	make_fds(fds, FDPASS_MAX_FDS + 1);
	r = fdpass_send(sv[0], "x", 1, fds, FDPASS_MAX_FDS + 1, 0);
	check_eq(r, -EINVAL);
	r = fdpass_send(sv[0], "", 0, fds, 1, 0);
	check_eq(r, -EINVAL);
	fdpass_close_all(fds, FDPASS_MAX_FDS + 1);
	close(sv[0]);
	close(sv[1]);
}

/* Send n fds raw, receive with maxfds; expect err and no fd left over. */
static void
refused(unsigned n, unsigned maxfds, ssize_t err)
{
	int sv[2], sent[64], got[FDPASS_MAX_FDS];
	unsigned nfds = 99;
	int before;
	char buf[4];
	ssize_t r;

	pair(sv, SOCK_STREAM);
	make_fds(sent, n);
	raw_send(sv[0], sent, n);
	fdpass_close_all(sent, n);	/* only the in-flight copies remain */
	before = tap_count_fds();
	memset(got, 0xff, sizeof(got));
	r = fdpass_recv(sv[1], buf, sizeof(buf), got, maxfds, &nfds, 0);
	check(r == err, "sent %u, max %u: r=%zd want %zd", n, maxfds, r, err);
	check_eq(nfds, 0);
	check(tap_count_fds() == before, "fds leaked: %d before, %d after",
	    before, tap_count_fds());
	close(sv[0]);
	close(sv[1]);
}

TEST(too_many_fds_all_closed)
{
	refused(16, 4, -EMSGSIZE);
	refused(1, 0, -EMSGSIZE);
	/* One over the frame limit fits the buffer and is still refused. */
	refused(FDPASS_MAX_FDS + 1, FDPASS_MAX_FDS, -EMSGSIZE);
	/* maxfds above the limit is capped, not trusted. */
	refused(FDPASS_MAX_FDS + 1, 64, -EMSGSIZE);
}

TEST(ctrunc_all_closed)
{
	/* More than the control buffer holds: the kernel sets MSG_CTRUNC. */
	refused(40, FDPASS_MAX_FDS, -EMSGSIZE);
}

TEST(foreign_cmsg_all_closed)
{
	int sv[2], sent[2], got[FDPASS_MAX_FDS], one = 1, before;
	unsigned nfds = 99;
	char buf[4];
	ssize_t r;

	pair(sv, SOCK_STREAM);
	/* SO_PASSCRED adds an SCM_CREDENTIALS message beside the fds. */
	require(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one,
	    sizeof(one)) == 0, "SO_PASSCRED");
	make_fds(sent, 2);
	r = fdpass_send(sv[0], "x", 1, sent, 2, 0);
	check_eq(r, 1);
	fdpass_close_all(sent, 2);
	before = tap_count_fds();
	r = fdpass_recv(sv[1], buf, sizeof(buf), got, FDPASS_MAX_FDS, &nfds, 0);
	check_eq(r, -EBADMSG);
	check_eq(nfds, 0);
	check_eq(tap_count_fds(), before);
	close(sv[0]);
	close(sv[1]);
}

TEST(eof_and_epipe)
{
	int sv[2], got[2], fd;
	unsigned nfds = 99;
	char buf[4];
	ssize_t r;

	pair(sv, SOCK_STREAM);
	close(sv[0]);
	r = fdpass_recv(sv[1], buf, sizeof(buf), got, 2, &nfds, 0);
	check_eq(r, 0);
	check_eq(nfds, 0);
	/* MSG_NOSIGNAL: a dead peer is -EPIPE, not a SIGPIPE death. */
	signal(SIGPIPE, SIG_DFL);
	pair(sv, SOCK_STREAM);
	close(sv[1]);
	fd = memfd_create("x", MFD_CLOEXEC);
	r = fdpass_send(sv[0], "x", 1, &fd, 1, 0);
	check_eq(r, -EPIPE);
	close(fd);
	close(sv[0]);
}

static volatile sig_atomic_t alarms;

static void
alarm_cb(int sig)
{
	(void)sig;
	alarms++;
}

TEST(eintr_is_retried)
{
	struct sigaction sa;
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } };
	int sv[2], got[2], fd, status;
	unsigned nfds = 0;
	char buf[8];
	ssize_t r;
	pid_t pid;

	pair(sv, SOCK_STREAM);
	fflush(stdout);
	pid = fork();
	require(pid >= 0, "fork");
	if (pid == 0) {
		fd = memfd_create("late", MFD_CLOEXEC);
		usleep(300000);
		_exit(fdpass_send(sv[0], "late", 4, &fd, 1, 0) == 4 ? 0 : 1);
	}
	/* No SA_RESTART: every tick interrupts the blocked recvmsg. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = alarm_cb;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	r = fdpass_recv(sv[1], buf, sizeof(buf), got, 2, &nfds, 0);
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	check_eq(r, 4);
	check_eq(nfds, 1);
	check(alarms > 0, "the receive was interrupted %d times", alarms);
	fdpass_close_all(got, nfds);
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sender ok");
	close(sv[0]);
	close(sv[1]);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
