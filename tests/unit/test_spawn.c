/*
 * test_spawn: what the spawned program sees is exactly SPEC §6: fds 0-2,
 * the listeners at 3.. in order, the extra fd after them, nothing else;
 * LISTEN_PID is its own pid; signals are default and unblocked; a binary
 * that cannot run is an error from spawn_agent, not a child.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/spawn.h"
#include "tests/lib/tap.h"

/* Prints what a test wants to know about the shell's own process. */
static const char probe[] =
    "i=0; fds=''\n"
    "while [ $i -lt 100 ]; do\n"
    "  [ -e /proc/$$/fd/$i ] && fds=\"$fds $i\"\n"
    "  i=$((i+1))\n"
    "done\n"
    "echo \"fds:$fds\"\n"
    "echo \"pid:${LISTEN_PID-unset}:$$\"\n"
    "echo \"nfds:${LISTEN_FDS-unset}\"\n"
    "echo \"names:${LISTEN_FDNAMES-unset}\"\n"
    "echo \"extra:${HANDOFF_SOCK_FD-unset}\"\n"
    "echo \"drop:${SPAWN_TEST_DROP-unset}\"\n"
    "echo \"add:${SPAWN_TEST_ADD-unset}\"\n"
    "echo \"keep:${SPAWN_TEST_KEEP-unset}\"\n"
    "for i in 3 4 5; do\n"
    "  echo \"fd$i:$(readlink /proc/$$/fd/$i)\"\n"
    "done\n"
    "grep -E '^Sig(Blk|Ign):' /proc/$$/status | tr -d '\\t'\n";

static const char *const probe_argv[] = { "sh", "-c", probe, NULL };

/*
 * Spawn with the child's stdout on a pipe; collect all of it and the exit
 * status.  Returns spawn_agent's result.
 */
static pid_t
run(struct spawn_opts *o, char *out, size_t size, int *ret_status)
{
	int p[2], saved;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	require(pipe2(p, O_CLOEXEC) == 0, "pipe");
	saved = fcntl(1, F_DUPFD_CLOEXEC, 3);
	fflush(stdout);
	require(dup2(p[1], 1) == 1, "dup2");
	pid = spawn_agent(o);
	dup2(saved, 1);
	close(saved);
	close(p[1]);
	while (len + 1 < size && (n = read(p[0], out + len,
	    size - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	*ret_status = -1;
	if (pid > 0)
		require(waitpid(pid, ret_status, 0) == pid, "waitpid");
	return pid;
}

/* The value after "key:" on its own line, copied into buf. */
static const char *
field(const char *out, const char *key, char *buf, size_t size)
{
	char pat[32];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "%s:", key);
	for (p = out; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, pat, strlen(pat)) == 0) {
			p += strlen(pat);
			e = strchrnul(p, '\n');
			snprintf(buf, size, "%.*s", (int)(e - p), p);
			return buf;
		}
	}
	snprintf(buf, size, "<missing>");
	return buf;
}

static void
expect(const char *out, const char *key, const char *want)
{
	char buf[256];

	field(out, key, buf, sizeof(buf));
	check(strcmp(buf, want) == 0, "%s: got '%s', want '%s'", key, buf,
	    want);
}

static void
sock_name(int fd, char *buf, size_t size)
{
	struct stat st;

	require(fstat(fd, &st) == 0, "fstat");
	snprintf(buf, size, "socket:[%lu]", (unsigned long)st.st_ino);
}

TEST(layout_env_and_signals)
{
	static const char *const names[] = { "ns", "ctl" };
	static const char *const drop[] = { "SPAWN_TEST_DROP", NULL };
	static const char *const extra_env[] = { "SPAWN_TEST_ADD=yes", NULL };
	char out[4096], want[64], buf[64];
	int a[2], b[2], c[2], lfds[2], junk, status;
	struct spawn_opts o;
	sigset_t blk;
	pid_t pid;

	/*
	 * Sources at awkward numbers: listener 0 at 4 and listener 1 at 3,
	 * so a naive dup2 into place would clobber one with the other.
	 */
	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) == 0 &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) == 0 &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c) == 0,
	    "socketpair");
	require(dup3(a[0], 4, O_CLOEXEC) == 4 && dup3(b[0], 3, O_CLOEXEC) == 3,
	    "dup3");
	lfds[0] = 4;
	lfds[1] = 3;
	/* A non-CLOEXEC fd the child must not see. */
	junk = open("/dev/null", O_RDONLY);
	require(junk >= 0 && dup2(junk, 50) == 50, "junk fd");

	setenv("SPAWN_TEST_DROP", "1", 1);
	setenv("SPAWN_TEST_KEEP", "kept", 1);
	setenv("SPAWN_TEST_ADD", "overridden", 1);
	setenv("LISTEN_FDS", "9", 1);		/* stale: must be replaced */
	setenv("HANDOFF_SOCK_FD", "42", 1);
	signal(SIGTERM, SIG_IGN);
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR1);
	sigprocmask(SIG_BLOCK, &blk, NULL);

	memset(&o, 0, sizeof(o));
	o.path = "/bin/sh";
	o.argv = probe_argv;
	o.env_extra = extra_env;
	o.env_drop = drop;
	o.listen_fds = lfds;
	o.listen_names = names;
	o.n_listen = 2;
	o.extra_fd = c[0];
	o.extra_fd_env = "HANDOFF_SOCK_FD";
	pid = run(&o, out, sizeof(out), &status);
	require(pid > 0, "spawn_agent: %s", strerror(-pid));
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x",
	    status);

	expect(out, "fds", " 0 1 2 3 4 5");
	snprintf(want, sizeof(want), "%ld:%ld", (long)pid, (long)pid);
	expect(out, "pid", want);
	expect(out, "nfds", "2");
	expect(out, "names", "ns:ctl");
	expect(out, "extra", "5");
	expect(out, "drop", "unset");
	expect(out, "add", "yes");
	expect(out, "keep", "kept");
	sock_name(4, buf, sizeof(buf));
	expect(out, "fd3", buf);
	sock_name(3, buf, sizeof(buf));
	expect(out, "fd4", buf);
	sock_name(c[0], buf, sizeof(buf));
	expect(out, "fd5", buf);
	expect(out, "SigBlk", "0000000000000000");
	expect(out, "SigIgn", "0000000000000000");
	if (!check(strstr(out, "fds: 0 1 2 3 4 5\n") != NULL, "output"))
		tap_diag("child said:\n%s", out);
}

TEST(no_listeners_no_listen_vars)
{
	char out[4096], want[64];
	struct spawn_opts o;
	int status;
	pid_t pid;

	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_PID", "1", 1);
	setenv("HANDOFF_SOCK_FD", "42", 1);
	memset(&o, 0, sizeof(o));
	o.path = "/bin/sh";
	o.argv = probe_argv;
	o.extra_fd = -1;
	o.extra_fd_env = "HANDOFF_SOCK_FD";
	pid = run(&o, out, sizeof(out), &status);
	require(pid > 0, "spawn_agent: %s", strerror(-pid));
	expect(out, "fds", " 0 1 2");
	expect(out, "nfds", "unset");
	snprintf(want, sizeof(want), "unset:%ld", (long)pid);
	expect(out, "pid", want);
	expect(out, "extra", "unset");
}

/* No child is left behind, no fd leaks, the error is the exec errno. */
static void
exec_fails(const char *path, int want)
{
	static const char *const argv[] = { "agent", NULL };
	struct spawn_opts o;
	char out[64];
	int status, before = tap_count_fds();
	pid_t pid;

	memset(&o, 0, sizeof(o));
	o.path = path;
	o.argv = argv;
	o.extra_fd = -1;
	pid = run(&o, out, sizeof(out), &status);
	check(pid == -want, "%s: got %d, want %d", path, (int)pid, -want);
	check(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD,
	    "child reaped");
	check_eq(tap_count_fds(), before);
}

TEST(missing_binary_is_enoent)
{
	exec_fails("/nonexistent/baton-agent", ENOENT);
}

TEST(non_executable_is_eacces)
{
	char dir[] = "/tmp/baton-spawn-XXXXXX", path[64];
	int fd;

	require(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/agent", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	require(fd >= 0, "create");
	require(write(fd, "#!/bin/sh\n", 10) == 10, "write");
	close(fd);
	exec_fails(path, EACCES);
	unlink(path);
	rmdir(dir);
}

TEST(bad_arguments)
{
	static const char *const argv[] = { "x", NULL };
	int bad = -1;
	struct spawn_opts o;

	memset(&o, 0, sizeof(o));
	o.extra_fd = -1;
	check_eq(spawn_agent(&o), -EINVAL);
	o.path = "/bin/true";
	o.argv = argv;
	o.listen_fds = &bad;
	o.n_listen = 1;
	check_eq(spawn_agent(&o), -EBADF);
	check_eq(spawn_agent(NULL), -EINVAL);
}

/* `sleep 30` with no listeners. */
static pid_t
spawn_sleep(int nice, bool idle, int pdeathsig)
{
	static const char *const argv[] = { "sleep", "30", NULL };
	struct spawn_opts o;

	memset(&o, 0, sizeof(o));
	o.path = "/bin/sleep";
	o.argv = argv;
	o.extra_fd = -1;
	o.nice = nice;
	o.idle = idle;
	o.pdeathsig = pdeathsig;
	return spawn_agent(&o);
}

/* nice: the program runs at that value; we keep ours. */
TEST(child_runs_at_its_nice_value)
{
	int ours = getpriority(PRIO_PROCESS, 0);
	pid_t pid = spawn_sleep(10, false, 0);

	require(pid > 0, "spawn: %d", (int)pid);
	check_eq(getpriority(PRIO_PROCESS, (id_t)pid), 10);
	check_eq(getpriority(PRIO_PROCESS, 0), ours);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	pid = spawn_sleep(0, false, 0);	/* 0: it keeps ours */
	require(pid > 0, "spawn: %d", (int)pid);
	check_eq(getpriority(PRIO_PROCESS, (id_t)pid), ours);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* idle: the program runs under SCHED_IDLE once it has exec'd. */
TEST(idle_child_runs_under_sched_idle)
{
	pid_t pid = spawn_sleep(10, true, 0);

	require(pid > 0, "spawn: %d", (int)pid);
	check_eq(sched_getscheduler(pid), SCHED_IDLE);
	check_eq(getpriority(PRIO_PROCESS, (id_t)pid), 10);
	check_eq(sched_getscheduler(0), SCHED_OTHER);	/* ours unchanged */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	pid = spawn_sleep(0, false, 0);
	require(pid > 0, "spawn: %d", (int)pid);
	check_eq(sched_getscheduler(pid), SCHED_OTHER);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

TEST(pdeathsig_kills_orphan)
{
	int p[2], status;
	pid_t mid, agent = 0;

	/* Become the orphan's reaper, so we can see how it died. */
	require(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "subreaper");
	require(pipe2(p, O_CLOEXEC) == 0, "pipe");
	fflush(stdout);
	mid = fork();
	require(mid >= 0, "fork");
	if (mid == 0) {
		pid_t pid = spawn_sleep(0, false, SIGKILL);

		if (write(p[1], &pid, sizeof(pid)) != sizeof(pid))
			_exit(2);
		_exit(pid > 0 ? 0 : 1);
	}
	close(p[1]);
	require(read(p[0], &agent, sizeof(agent)) == sizeof(agent), "read");
	require(agent > 0, "spawn in middle process: %d", (int)agent);
	require(waitpid(mid, &status, 0) == mid, "waitpid mid");
	require(waitpid(agent, &status, 0) == agent, "waitpid agent");
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "agent status 0x%x, want SIGKILL", status);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
