/*
 * test_sandbox: the seccomp filters.  The tables nest (nshelper ⊆ agent ⊆
 * supervisor, since filters are inherited and stack) and deny the
 * dangerous calls in every role; installed in a forked process, each
 * filter turns a forbidden call into EPERM plus a seccomp.denied log
 * line, leaves the process running and the allowed calls working, and
 * shows as "Seccomp: 2" in /proc/self/status.  The cases that install a
 * filter do it in a grandchild that leaves with _exit (LeakSanitizer
 * would need ptrace at exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/sandbox.h"
#include "tests/lib/tap.h"

/* Denied in every role, whatever else changes. */
static const char *const never[] = {
	"ptrace", "bpf", "kexec_load", "kexec_file_load", "init_module",
	"finit_module", "delete_module", "keyctl", "add_key", "request_key",
	"perf_event_open", "process_vm_readv", "process_vm_writev",
	"userfaultfd", "reboot", "swapon", "swapoff", "pivot_root", "chroot",
	"setns", "open_by_handle_at", "iopl", "ioperm", "acct", "settimeofday",
	"clock_settime", "syslog", "setuid", "setgid", "mknod", "fanotify_init",
	"io_uring_setup", "lookup_dcookie", "personality",
};

TEST(dangerous_calls_denied_everywhere)
{
	unsigned r, i;

	for (r = 0; r < SANDBOX_NROLES; r++)
		for (i = 0; i < sizeof(never) / sizeof(never[0]); i++)
			check(sandbox_policy(r, never[i]) == 0, "%s allows %s",
			    sandbox_role_name(r), never[i]);
	check(sandbox_policy(SANDBOX_SUPERVISOR, "no_such_call") == -EINVAL,
	    "unknown names are reported");
}

TEST(role_differences)
{
	check_eq(sandbox_policy(SANDBOX_SUPERVISOR, "execve"), 1);
	check_eq(sandbox_policy(SANDBOX_AGENT, "execve"), 0);
	check_eq(sandbox_policy(SANDBOX_NSHELPER, "execve"), 0);
	check_eq(sandbox_policy(SANDBOX_AGENT, "connect"), 0);
	check_eq(sandbox_policy(SANDBOX_AGENT, "accept4"), 1);
	check_eq(sandbox_policy(SANDBOX_NSHELPER, "accept4"), 0);
	check_eq(sandbox_policy(SANDBOX_NSHELPER, "sendmsg"), 0);
	check_eq(sandbox_policy(SANDBOX_NSHELPER, "flock"), 0);
	check_eq(sandbox_policy(SANDBOX_NSHELPER, "socket"), 2);
	/* The spawner: the helper's rules and forking on request. */
	check_eq(sandbox_policy(SANDBOX_NSSPAWN, "recvmsg"), 1);
	check_eq(sandbox_policy(SANDBOX_NSSPAWN, "sendmsg"), 1);
	check_eq(sandbox_policy(SANDBOX_NSSPAWN, "execve"), 0);
	check_eq(sandbox_policy(SANDBOX_NSSPAWN, "accept4"), 0);
	check_eq(sandbox_policy(SANDBOX_NSSPAWN, "connect"), 0);
	check_eq(sandbox_policy(SANDBOX_NSSPAWN, "fdatasync"), 0);
	check_eq(sandbox_policy(SANDBOX_NSSPAWN, "socket"), 2);
	check_eq(sandbox_policy(SANDBOX_AGENT, "unshare"), 2);
	check_eq(sandbox_policy(SANDBOX_AGENT, "ioctl"), 2);
	check_eq(sandbox_policy(SANDBOX_AGENT, "clone3"), 0);
}

/* A child's filter is useless unless its parent allows the same calls. */
TEST(tables_nest)
{
	const unsigned parent[] = { SANDBOX_SUPERVISOR, SANDBOX_AGENT,
	    SANDBOX_AGENT, SANDBOX_NSSPAWN };
	const unsigned child[] = { SANDBOX_AGENT, SANDBOX_NSHELPER,
	    SANDBOX_NSSPAWN, SANDBOX_NSHELPER };
	char *name;
	unsigned k;
	int nr, pc, pp, bad = 0;

	for (k = 0; k < sizeof(parent) / sizeof(parent[0]); k++) {
		for (nr = 0; nr < 512; nr++) {
			name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE,
			    nr);
			if (!name)
				continue;
			pc = sandbox_policy(child[k], name);
			pp = sandbox_policy(parent[k], name);
			if (pc > 0 && pp <= 0) {
				check(false, "%s allows %s but %s does not",
				    sandbox_role_name(child[k]), name,
				    sandbox_role_name(parent[k]));
				bad++;
			}
			free(name);
		}
	}
	check_eq(bad, 0);
}

struct probe {
	int seccomp_mode, filters;
	int ptrace_err, bpf_err, keyctl_err, userns_err, clone3_err;
	int execve_err, unix_err, inet_err, ioctl_err, getpid_ok, open_ok;
	int nice_raise_err, nice_other_err, nice_ok_err, nice_reset_err;
	int sched_fifo_err, sched_batch_err, sched_idle_err, sched_other_err;
	int alive;
};

static int
err_of(long rc)
{
	return rc < 0 ? errno : 0;
}

/* Set by a case: probe_main compiles child's filter first (prepared). */
static bool probe_prepare;

/* Grandchild: install role (and then child, if >= 0), try things. */
static __attribute__((noreturn)) void
probe_main(int role, int child, int wfd, int logfd)
{
	struct probe p;
	char *const argv[] = { (char *)"x", NULL };
	int fd, ifd, sv = -1;

	memset(&p, 0, sizeof(p));
	dup2(logfd, STDERR_FILENO);
	if (role >= 0 && sandbox_install((enum sandbox_role)role) < 0)
		_exit(3);
	if (probe_prepare && child >= 0 &&
	    (sandbox_prepare((enum sandbox_role)child) < 0 ||
	    !sandbox_prepared((enum sandbox_role)child)))
		_exit(6);
	if (child >= 0 && sandbox_enter_child((enum sandbox_role)child) < 0)
		_exit(4);
	p.seccomp_mode = (int)tap_proc_status(getpid(), "Seccomp");
	p.filters = (int)tap_proc_status(getpid(), "Seccomp_filters");
	errno = 0;
	if (role < 0)	/* unfiltered: TRACEME would really trace us */
		goto sockets;
	p.ptrace_err = err_of(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
	p.bpf_err = err_of(syscall(SYS_bpf, 0, NULL, 0));
	p.keyctl_err = err_of(syscall(SYS_keyctl, 0, 0, 0, 0, 0));
	p.userns_err = err_of(unshare(CLONE_NEWUSER));
	p.clone3_err = err_of(syscall(SYS_clone3, NULL, 0));
	p.execve_err = err_of(execve("/nonexistent/baton-x", argv, argv + 1));
	/* Only the helper's own nice value, never a raise (root could). */
	p.nice_raise_err = err_of(setpriority(PRIO_PROCESS, 0, -5));
	p.nice_other_err = err_of(setpriority(PRIO_PROCESS, 0, 3));
	p.nice_ok_err = err_of(setpriority(PRIO_PROCESS, 0,
	    SANDBOX_HELPER_NICE));
	/* Back to 0: the supervisor does it to a standby it takes. */
	p.nice_reset_err = err_of(setpriority(PRIO_PROCESS, 0, 0));
	/* A standby's policy: into SCHED_IDLE and back, never real-time. */
	p.sched_fifo_err = err_of(sched_setscheduler(0, SCHED_FIFO,
	    &(struct sched_param){ .sched_priority = 1 }));
	p.sched_batch_err = err_of(sched_setscheduler(0, SCHED_BATCH,
	    &(struct sched_param){ .sched_priority = 0 }));
	p.sched_idle_err = err_of(sched_setscheduler(0, SCHED_IDLE,
	    &(struct sched_param){ .sched_priority = 0 }));
	p.sched_other_err = err_of(sched_setscheduler(0, SCHED_OTHER,
	    &(struct sched_param){ .sched_priority = 0 }));
sockets:
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	p.unix_err = err_of(fd);
	if (fd >= 0)
		close(fd);
	ifd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	p.inet_err = err_of(ifd);
	/* TIOCSTI (push input into a tty) is never on the ioctl list. */
	p.ioctl_err = err_of(ioctl(ifd >= 0 ? ifd : 0, TIOCSTI, &sv));
	if (ifd >= 0)
		close(ifd);
	p.getpid_ok = getpid() > 0;
	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	p.open_ok = fd >= 0;
	if (fd >= 0)
		close(fd);
	p.alive = 1;
	if (write(wfd, &p, sizeof(p)) != (ssize_t)sizeof(p))
		_exit(5);
	_exit(0);
}

/* Run probe_main in a child; log lines it wrote go into log. */
static int
run_probe(int role, int child, struct probe *p, char *log, size_t loglen)
{
	int rp[2], lp[2], st;
	ssize_t n;
	size_t len = 0;
	pid_t pid;

	memset(p, 0, sizeof(*p));
	if (pipe2(rp, O_CLOEXEC) < 0 || pipe2(lp, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid == 0)
		probe_main(role, child, rp[1], lp[1]);
	close(rp[1]);
	close(lp[1]);
	n = read(rp[0], p, sizeof(*p));
	while (len + 1 < loglen &&
	    (n = read(lp[0], log + len, loglen - 1 - len)) > 0)
		len += (size_t)n;
	log[len] = '\0';
	close(rp[0]);
	close(lp[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
expect_denied_logged(const char *log, const char *name)
{
	char pat[64];

	snprintf(pat, sizeof(pat), "event=seccomp.denied syscall=%s ", name);
	check(strstr(log, pat) != NULL, "log has '%s'", pat);
}

TEST(agent_filter)
{
	static char log[16384];
	struct probe p;

	check_eq(run_probe(SANDBOX_AGENT, -1, &p, log, sizeof(log)), 0);
	check(p.alive, "the process survives forbidden calls");
	check_eq(p.seccomp_mode, 2);
	check_eq(p.filters, 1);
	check_eq(p.ptrace_err, EPERM);
	check_eq(p.bpf_err, EPERM);
	check_eq(p.keyctl_err, EPERM);
	check_eq(p.userns_err, EPERM);
	check_eq(p.clone3_err, ENOSYS);
	check_eq(p.execve_err, EPERM);
	check_eq(p.unix_err, 0);
	check_eq(p.inet_err, 0);
	check_eq(p.ioctl_err, EPERM);
	check_eq(p.nice_ok_err, 0);
	check_eq(p.nice_reset_err, EPERM);	/* only the supervisor raises */
	check_eq(p.sched_fifo_err, EPERM);
	check_eq(p.sched_idle_err, EPERM);	/* only the supervisor's */
	check_eq(p.sched_other_err, EPERM);
	check(p.getpid_ok && p.open_ok, "allowed calls still work");
	expect_denied_logged(log, "ptrace");
	expect_denied_logged(log, "bpf");
	expect_denied_logged(log, "keyctl");
	expect_denied_logged(log, "execve");
	check(strstr(log, "role=agent") != NULL, "log names the role");
	check(strstr(log, "syscall=clone3") == NULL, "clone3 is ENOSYS, "
	    "quietly");
}

TEST(supervisor_filter)
{
	static char log[16384];
	struct probe p;

	check_eq(run_probe(SANDBOX_SUPERVISOR, -1, &p, log, sizeof(log)), 0);
	check_eq(p.seccomp_mode, 2);
	check_eq(p.ptrace_err, EPERM);
	check_eq(p.bpf_err, EPERM);
	check_eq(p.keyctl_err, EPERM);
	check_eq(p.userns_err, EPERM);
	check_eq(p.execve_err, ENOENT);	/* allowed: the file is missing */
	check_eq(p.nice_raise_err, EPERM);	/* never below 0 */
	check_eq(p.nice_other_err, 0);	/* a standby's nice back: 0..19 */
	check_eq(p.nice_ok_err, 0);
	check_eq(p.nice_reset_err, 0);
	check_eq(p.sched_fifo_err, EPERM);	/* root could: the filter */
	check_eq(p.sched_batch_err, EPERM);
	check_eq(p.sched_idle_err, 0);	/* a standby starts under it */
	check_eq(p.sched_other_err, 0);	/* and is taken out of it */
	check(p.getpid_ok && p.open_ok, "allowed calls still work");
	expect_denied_logged(log, "ptrace");
	expect_denied_logged(log, "sched_setscheduler");
}

/* The helper's filter, built after the fork or prepared before it. */
static void
helper_filter(bool prep)
{
	static char log[16384];
	struct probe p;

	probe_prepare = prep;
	check_eq(run_probe(SANDBOX_AGENT, SANDBOX_NSHELPER, &p, log,
	    sizeof(log)), 0);
	probe_prepare = false;
	check_eq(p.seccomp_mode, 2);
	check_eq(p.filters, 2);
	check_eq(p.ptrace_err, EPERM);
	check_eq(p.unix_err, EPERM);	/* the helper talks to nobody */
	check_eq(p.inet_err, 0);	/* lo up in a new net namespace */
	check_eq(p.execve_err, EPERM);
	check_eq(p.nice_raise_err, EPERM);
	check_eq(p.nice_other_err, EPERM);
	check_eq(p.nice_ok_err, 0);	/* the helper lowers its priority */
	check_eq(p.nice_reset_err, EPERM);	/* and never raises it */
	check_eq(p.sched_fifo_err, EPERM);
	check_eq(p.sched_idle_err, EPERM);
	check(p.getpid_ok && p.open_ok, "allowed calls still work");
	expect_denied_logged(log, "socket");
	check(strstr(log, "role=nshelper") != NULL, "log names the helper");
}

TEST(helper_filter_stacks_on_agent)
{
	helper_filter(false);
}

/* What the spawner does: the same filter, compiled once, one load. */
TEST(prepared_helper_filter_is_the_same)
{
	helper_filter(true);
}

TEST(enter_child_without_parent_filter_is_noop)
{
	static char log[4096];
	struct probe p;

	check_eq(run_probe(-1, SANDBOX_NSHELPER, &p, log, sizeof(log)), 0);
	check_eq(p.seccomp_mode, 0);
	check_eq(p.unix_err, 0);
	check(!sandbox_active(), "nothing installed in the test process");
	check_eq(sandbox_prepare(SANDBOX_NSHELPER), 0);	/* nothing to do */
	check(!sandbox_prepared(SANDBOX_NSHELPER), "nothing prepared");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
