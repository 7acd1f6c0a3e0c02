/*
 * sandbox: seccomp allowlists for the supervisor, the agent and the
 * agent's namespace helper.
 *
 * Invariants:
 * - Each role has one table below; a syscall not in it is denied.  A few
 *   entries carry argument conditions (clone and unshare never create a
 *   user namespace, ioctl only takes the requests baton issues, socket
 *   only AF_UNIX/AF_INET, prctl only the options baton uses); clone3 is
 *   answered ENOSYS so glibc falls back to clone, whose flags a filter
 *   can see.
 * - Filters are inherited across fork and execve and stack (the
 *   strictest verdict wins), so a parent's table is a superset of every
 *   descendant's: supervisor ⊇ agent ⊇ nshelper.  The supervisor's own
 *   table therefore also holds what the agents it spawns need (mount,
 *   unshare, ...); only execve is supervisor-only.
 * - A denied call fails with EPERM and is logged: the filter's default
 *   action is SECCOMP_RET_TRAP and a SIGSYS handler (async-signal-safe:
 *   clock_gettime, getpid, write) writes one logfmt line and sets the
 *   call's return value to -EPERM.  Where we cannot edit the return
 *   register (other architectures) the action is ERRNO(EPERM) with
 *   kernel audit logging instead.  Calls through a foreign ABI (i386 on
 *   x86_64) kill the process.
 * - no_new_privs is set with the filter; nothing baton execs needs
 *   privilege transitions.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/loop.h>
#include <linux/seccomp.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/sockios.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sandbox.h"

#if defined(__x86_64__) || defined(__aarch64__)
#define SANDBOX_TRAP 1
#endif

#define NAMES_MAX 1024	/* syscall numbers we keep a name for */

/* Argument conditions an entry may carry. */
enum cond {
	C_NONE,
	C_ENOSYS,	/* answer ENOSYS (clone3: glibc falls back to clone) */
	C_CLONE,	/* no CLONE_NEW* flag */
	C_UNSHARE,	/* only CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWNS */
	C_IOCTL,	/* only the requests in ioctl_ok[] */
	C_SOCK_UNIX_INET,
	C_SOCK_INET,	/* lo_up in a new net namespace */
	C_PRCTL,	/* only the options in prctl_ok[] */
	C_PRCTL_HELPER,	/* PR_SET_NAME, PR_SET_PDEATHSIG */
	C_NICE_SELF,	/* setpriority(PRIO_PROCESS, 0, SANDBOX_HELPER_NICE) */
	C_NICE_RESET,	/* setpriority(PRIO_PROCESS, any, 0..19): a standby's */
	C_SCHED_STANDBY, /* sched_setscheduler(any, SCHED_OTHER or SCHED_IDLE) */
};

struct rule {
	const char *name;
	enum cond cond;
};

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | \
    CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | 0x80)
	/* 0x80 is CLONE_NEWTIME */
#define UNSHARE_OK (CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS)

static const unsigned long ioctl_ok[] = {
	FIONBIO, FIONREAD, FIOCLEX, FIONCLEX,	/* libuv, nsserver */
	TCGETS, TIOCGWINSZ,			/* isatty() in stdio */
	NS_GET_NSTYPE,				/* received namespace fds */
	LOOP_CTL_GET_FREE, LOOP_CONFIGURE,	/* uenv images */
	SIOCGIFFLAGS, SIOCSIFFLAGS,		/* lo up in a new netns */
};

static const int prctl_ok[] = {
	PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NAME, PR_GET_NAME,
	PR_GET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS,
	PR_GET_SECCOMP,
};

#define A(n) { .name = #n, .cond = C_NONE }
#define C(n, c) { .name = #n, .cond = (c) }

/* Every role: memory, signals, time, plain fd I/O, exit. */
#define BASE_RULES \
	A(read), A(write), A(readv), A(writev), A(pread64), \
	A(pwrite64), A(lseek), A(close), A(close_range), \
	A(dup), A(dup2), A(dup3), A(fcntl), A(pipe), \
	A(pipe2), A(poll), A(ppoll), \
	A(brk), A(mmap), A(munmap), A(mprotect), A(madvise), \
	A(mremap), A(futex), A(set_robust_list), A(rseq), \
	A(rt_sigaction), A(rt_sigprocmask), A(rt_sigreturn), \
	A(rt_sigtimedwait), A(rt_sigpending), A(sigaltstack), \
	A(restart_syscall), A(clock_gettime), A(clock_getres), \
	A(clock_nanosleep), A(nanosleep), A(gettimeofday), \
	A(time), A(getpid), A(gettid), A(getppid), \
	A(getuid), A(geteuid), A(getgid), A(getegid), \
	A(getgroups), A(getpgrp), A(getrlimit), A(prlimit64), \
	A(uname), A(sched_yield), A(sched_getaffinity), \
	A(getrandom), A(exit), A(exit_group), A(tgkill), \
	A(openat), A(open), A(newfstatat), A(fstat), \
	A(stat), A(lstat), A(statx), A(readlink), \
	A(readlinkat), A(access), A(faccessat), A(faccessat2), \
	A(getcwd), A(wait4), A(waitid), A(kill)

/* Creating namespaces and pinning them: the helper and its children. */
#define NS_RULES \
	C(clone, C_CLONE), C(clone3, C_ENOSYS), \
	C(unshare, C_UNSHARE), A(mount), A(umount2), \
	A(mkdir), A(mkdirat), A(unlink), A(unlinkat), \
	A(rmdir), A(statfs), A(fstatfs), A(setsid), \
	A(pidfd_open), A(pidfd_send_signal), C(ioctl, C_IOCTL), \
	C(setpriority, C_NICE_SELF)

/* Serving sockets on a libuv loop, durable files, inotify. */
#define SERVE_RULES \
	A(accept), A(accept4), A(bind), A(listen), \
	A(recvmsg), A(sendmsg), A(recvfrom), A(sendto), \
	A(getsockopt), A(setsockopt), A(shutdown), \
	A(getsockname), A(getpeername), \
	A(epoll_create), A(epoll_create1), A(epoll_ctl), \
	A(epoll_wait), A(epoll_pwait), A(eventfd2), \
	A(inotify_init1), A(inotify_add_watch), \
	A(inotify_rm_watch), A(rename), A(renameat), \
	A(renameat2), A(chmod), A(fchmod), A(fchmodat), \
	A(fsync), A(fdatasync), A(ftruncate), A(flock), \
	A(getdents64), A(seccomp), C(prctl, C_PRCTL)

static const struct rule nshelper_rules[] = {
	BASE_RULES,
	NS_RULES,
	C(socket, C_SOCK_INET),
	C(prctl, C_PRCTL_HELPER),
};

/*
 * The spawner: the helper's rules and the three calls of forking them on
 * request (a datagram with fds in, the pidfd out, a spare's socket).
 * Its helpers keep this filter instead of loading their own (~3% of all
 * CPU at 8 creating clients: the kernel converts and compiles each
 * program it is given; docs/BENCH.md): a helper may then also send and
 * receive on a socket, which it holds none of, or make a socketpair.
 */
static const struct rule nsspawn_rules[] = {
	BASE_RULES,
	NS_RULES,
	C(socket, C_SOCK_INET),
	C(prctl, C_PRCTL_HELPER),
	A(recvmsg), A(sendmsg), A(socketpair),
};

static const struct rule agent_rules[] = {
	BASE_RULES,
	NS_RULES,
	SERVE_RULES,
	C(socket, C_SOCK_UNIX_INET),
	A(socketpair),		/* the spawner's socket (nsspawn) */
};

/*
 * The agent's table, plus spawning: exec, connect, socketpair, setpgid,
 * and what an exec'd program calls before its own filter exists: the
 * dynamic loader (arch_prctl, set_tid_address) or a wrapper script.
 */
static const struct rule supervisor_rules[] = {
	BASE_RULES,
	NS_RULES,
	SERVE_RULES,
	C(socket, C_SOCK_UNIX_INET),
	A(execve), A(connect), A(socketpair), A(setpgid),
	C(setpriority, C_NICE_RESET),	/* a standby taken (standby.c) */
	A(getpriority),
	/* A standby into SCHED_IDLE and back (standby.c). */
	C(sched_setscheduler, C_SCHED_STANDBY), A(sched_getscheduler),
	A(arch_prctl), A(set_tid_address), A(vfork), A(fork),
	/* Harmless calls of a wrapper script (sh, cat, sleep) around it. */
	A(fadvise64), A(umask), A(chdir), A(fchdir), A(getpgid), A(getsid),
	A(sysinfo), A(getxattr), A(lgetxattr), A(fgetxattr), A(sendfile),
	A(copy_file_range), A(getdents),
};

static const struct {
	const char *name;
	const struct rule *rules;
	size_t n;
} tables[SANDBOX_NROLES] = {
	[SANDBOX_SUPERVISOR] = { "supervisor", supervisor_rules,
	    sizeof(supervisor_rules) / sizeof(supervisor_rules[0]) },
	[SANDBOX_AGENT] = { "agent", agent_rules,
	    sizeof(agent_rules) / sizeof(agent_rules[0]) },
	[SANDBOX_NSHELPER] = { "nshelper", nshelper_rules,
	    sizeof(nshelper_rules) / sizeof(nshelper_rules[0]) },
	[SANDBOX_NSSPAWN] = { "nsspawn", nsspawn_rules,
	    sizeof(nsspawn_rules) / sizeof(nsspawn_rules[0]) },
};

static bool active;
static int loaded = -1;	/* the role whose filter this process loaded */
static const char *cur_role = "baton";
static char *names[NAMES_MAX];	/* resolved once, before any filter */

const char *
sandbox_role_name(enum sandbox_role role)
{
	return role < SANDBOX_NROLES ? tables[role].name : "?";
}

bool
sandbox_active(void)
{
	return active;
}

int
sandbox_policy(enum sandbox_role role, const char *syscall_name)
{
	size_t i;
	int r = 0;

	if (role >= SANDBOX_NROLES ||
	    seccomp_syscall_resolve_name(syscall_name) == __NR_SCMP_ERROR)
		return -EINVAL;
	for (i = 0; i < tables[role].n; i++) {
		if (strcmp(tables[role].rules[i].name, syscall_name) != 0)
			continue;
		if (tables[role].rules[i].cond == C_ENOSYS)
			return 0;
		r = tables[role].rules[i].cond == C_NONE ? 1 : 2;
	}
	return r;
}

/* ---- the SIGSYS handler: async-signal-safe only ---- */

static size_t
put_str(char *buf, size_t len, size_t cap, const char *s)
{
	while (*s && len < cap)
		buf[len++] = *s++;
	return len;
}

static size_t
put_num(char *buf, size_t len, size_t cap, unsigned long v, int width)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(tmp));
	while (n < width && n < (int)sizeof(tmp))
		tmp[n++] = '0';
	while (n > 0 && len < cap)
		buf[len++] = tmp[--n];
	return len;
}

/* Days since 1970-01-01 to y/m/d (Howard Hinnant's civil_from_days). */
static void
civil(long z, long *y, unsigned *m, unsigned *d)
{
	long era, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	yoe = z - era * 146097;
	yoe = (yoe - yoe / 1460 + yoe / 36524 - yoe / 146096) / 365;
	doy = z - era * 146097 - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static void
sigsys_cb(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno, nr = si->si_syscall;
	char buf[320];
	struct timespec ts;
	size_t n = 0, cap = sizeof(buf) - 1;
	long y, secs;
	unsigned mo, d;
	ssize_t w;

	(void)sig;
	clock_gettime(CLOCK_REALTIME, &ts);
	secs = (long)ts.tv_sec;
	civil(secs / 86400, &y, &mo, &d);
	secs %= 86400;
	n = put_str(buf, n, cap, "ts=");
	n = put_num(buf, n, cap, (unsigned long)y, 4);
	n = put_str(buf, n, cap, "-");
	n = put_num(buf, n, cap, mo, 2);
	n = put_str(buf, n, cap, "-");
	n = put_num(buf, n, cap, d, 2);
	n = put_str(buf, n, cap, "T");
	n = put_num(buf, n, cap, (unsigned long)secs / 3600, 2);
	n = put_str(buf, n, cap, ":");
	n = put_num(buf, n, cap, (unsigned long)secs / 60 % 60, 2);
	n = put_str(buf, n, cap, ":");
	n = put_num(buf, n, cap, (unsigned long)secs % 60, 2);
	n = put_str(buf, n, cap, ".");
	n = put_num(buf, n, cap, (unsigned long)ts.tv_nsec / 1000000, 3);
	n = put_str(buf, n, cap, "Z level=warn role=");
	n = put_str(buf, n, cap, cur_role);
	n = put_str(buf, n, cap, " pid=");
	n = put_num(buf, n, cap, (unsigned long)getpid(), 1);
	n = put_str(buf, n, cap, " event=seccomp.denied syscall=");
	n = put_str(buf, n, cap, nr >= 0 && nr < NAMES_MAX && names[nr] ?
	    names[nr] : "?");
	n = put_str(buf, n, cap, " nr=");
	n = put_num(buf, n, cap, (unsigned long)(nr < 0 ? 0 : nr), 1);
	n = put_str(buf, n, cap, " msg=\"blocked by the seccomp filter; "
	    "returned EPERM\"\n");
	w = write(STDERR_FILENO, buf, n);
	(void)w;
#if defined(__x86_64__)
	((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
	((ucontext_t *)ctx)->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#else
	(void)ctx;
#endif
	errno = saved;
}

/* ---- building and loading a filter ---- */

static int
add_cond(scmp_filter_ctx f, int nr, enum cond c, enum sandbox_role role)
{
	uint32_t ok = SCMP_ACT_ALLOW;
	size_t i;
	int r = 0;

	switch (c) {
	case C_NONE:
		return seccomp_rule_add(f, ok, nr, 0);
	case C_ENOSYS:
		return seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	case C_CLONE:
		return seccomp_rule_add(f, ok, nr, 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, NS_FLAGS, 0));
	case C_UNSHARE:
		return seccomp_rule_add(f, ok, nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ,
		    0xffffffffULL & ~(unsigned long long)UNSHARE_OK, 0));
	case C_IOCTL:
		for (i = 0; r == 0 && i < sizeof(ioctl_ok) / sizeof(ioctl_ok[0]);
		    i++)
			r = seccomp_rule_add(f, ok, nr, 1,
			    SCMP_A1(SCMP_CMP_EQ, ioctl_ok[i]));
		return r;
	case C_SOCK_UNIX_INET:
		r = seccomp_rule_add(f, ok, nr, 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
		/* FALLTHROUGH */
	case C_SOCK_INET:
		return r < 0 ? r : seccomp_rule_add(f, ok, nr, 1,
		    SCMP_A0(SCMP_CMP_EQ, AF_INET));
	case C_PRCTL:
		for (i = 0; r == 0 && i < sizeof(prctl_ok) / sizeof(prctl_ok[0]);
		    i++)
			r = seccomp_rule_add(f, ok, nr, 1,
			    SCMP_A0(SCMP_CMP_EQ, (unsigned)prctl_ok[i]));
		return r;
	case C_PRCTL_HELPER:
		r = seccomp_rule_add(f, ok, nr, 1,
		    SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
		return r < 0 ? r : seccomp_rule_add(f, ok, nr, 1,
		    SCMP_A0(SCMP_CMP_EQ, PR_SET_PDEATHSIG));
	case C_NICE_SELF:
		/* That one value only: never a raise, whatever the caps. */
		return seccomp_rule_add(f, ok, nr, 3,
		    SCMP_A0_32(SCMP_CMP_EQ, PRIO_PROCESS),
		    SCMP_A1_32(SCMP_CMP_EQ, 0),
		    SCMP_A2_32(SCMP_CMP_EQ, SANDBOX_HELPER_NICE));
	case C_NICE_RESET:
		/*
		 * A taken standby's nice value back (0..19: unsigned, a
		 * negative one is above 19), never below 0.
		 */
		return seccomp_rule_add(f, ok, nr, 2,
		    SCMP_A0_32(SCMP_CMP_EQ, PRIO_PROCESS),
		    SCMP_A2_32(SCMP_CMP_LE, 19));
	case C_SCHED_STANDBY:
		/* Never a real-time policy, whatever the caps. */
		r = seccomp_rule_add(f, ok, nr, 1,
		    SCMP_A1_32(SCMP_CMP_EQ, SCHED_OTHER));
		return r < 0 ? r : seccomp_rule_add(f, ok, nr, 1,
		    SCMP_A1_32(SCMP_CMP_EQ, SCHED_IDLE));
	}
	(void)role;
	return -EINVAL;
}

/*
 * Sanitizer builds only (test builds; release builds never have these):
 * LeakSanitizer checks at exit by stopping the world from a tracer
 * thread, which needs ptrace, PR_SET_PTRACER, PR_[GS]ET_DUMPABLE and
 * getdents.  Denied,
 * the tracer hangs and the process never exits (a supervisor spun at
 * 100% CPU, agents took 10 s to leave after COMMIT).
 */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SAN 1
#endif
#endif

static int
add_sanitizer_rules(scmp_filter_ctx f)
{
#ifdef SANDBOX_SAN
	static const int prctl_san[] = {
		PR_SET_PTRACER, PR_SET_DUMPABLE, PR_GET_DUMPABLE,
	};
	size_t i;
	int r;

	/* The tracer attaches to its own threads; never TRACEME. */
	r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ptrace), 1,
	    SCMP_A0(SCMP_CMP_NE, PTRACE_TRACEME));
	for (i = 0; r == 0 && i < sizeof(prctl_san) / sizeof(prctl_san[0]);
	    i++)
		r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
		    SCMP_A0(SCMP_CMP_EQ, (unsigned)prctl_san[i]));
	/* The tracer lists threads with the old getdents (x86_64), with
	 * every signal blocked: a trapped call kills it silently. */
	if (r == 0)
		r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(getdents), 0);
	return r;
#else
	(void)f;
	return 0;
#endif
}

bool
sandbox_sanitizer_rules(void)
{
#ifdef SANDBOX_SAN
	return true;
#else
	return false;
#endif
}

static int
set_sigsys_handler(void)
{
#ifdef SANDBOX_TRAP
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys_cb;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return -errno;
	sigemptyset(&set);
	sigaddset(&set, SIGSYS);
	if (sigprocmask(SIG_UNBLOCK, &set, NULL) < 0)
		return -errno;
#endif
	return 0;
}

/* role's filter, built (not loaded) into *ret.  0 or -errno. */
static int
build(enum sandbox_role role, scmp_filter_ctx *ret)
{
	const struct rule *rules = tables[role].rules;
	scmp_filter_ctx f = NULL;
	size_t i;
	int nr, r;

#ifdef SANDBOX_TRAP
	f = seccomp_init(SCMP_ACT_TRAP);
#else
	f = seccomp_init(SCMP_ACT_ERRNO(EPERM));
#endif
	if (!f)
		return -ENOMEM;
	r = seccomp_attr_set(f, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		r = seccomp_attr_set(f, SCMP_FLTATR_CTL_NNP, 1);
	/*
	 * A binary tree over the syscall numbers instead of a chain of
	 * ~130 comparisons run on every system call (libseccomp >= 2.5).
	 */
	if (r == 0)
		r = seccomp_attr_set(f, SCMP_FLTATR_CTL_OPTIMIZE, 2);
#ifndef SANDBOX_TRAP
	if (r == 0)
		r = seccomp_attr_set(f, SCMP_FLTATR_CTL_LOG, 1);
#endif
	for (i = 0; r == 0 && i < tables[role].n; i++) {
		nr = seccomp_syscall_resolve_name(rules[i].name);
		if (nr == __NR_SCMP_ERROR || nr < 0)
			continue;	/* not a syscall on this architecture */
		r = add_cond(f, nr, rules[i].cond, role);
	}
	if (r == 0)
		r = add_sanitizer_rules(f);
	if (r < 0) {
		seccomp_release(f);
		return r;
	}
	*ret = f;
	return 0;
}

static int
load(enum sandbox_role role)
{
	scmp_filter_ctx f;
	int r;

	r = build(role, &f);
	if (r < 0)
		return r;
	r = set_sigsys_handler();
	if (r == 0)
		r = seccomp_load(f);
	seccomp_release(f);
	if (r == 0) {
		active = true;
		cur_role = tables[role].name;
		loaded = role;
	}
	return r > 0 ? -r : r;
}

/*
 * Filters compiled once (sandbox_prepare) for the children a process
 * forks without exec (the spawner's namespace helpers): building one
 * with libseccomp in each child cost ~0.5 ms of CPU per creation
 * (ns.create setup_us), loading the compiled program costs one system
 * call.  The program is what seccomp_load() would have loaded
 * (seccomp_export_bpf() of the same context).
 */
static struct sock_fprog prepared[SANDBOX_NROLES];

static int
prepare(enum sandbox_role role)
{
	/* A program has at most BPF_MAXINSNS instructions. */
	const size_t cap = BPF_MAXINSNS * sizeof(struct sock_filter);
	scmp_filter_ctx f;
	uint8_t *buf = NULL;
	size_t len = 0;
	ssize_t n = 0;
	int p[2] = { -1, -1 }, r;

	r = build(role, &f);
	if (r < 0)
		return r;
	/*
	 * Exported through a pipe (memfd_create is in no filter): one
	 * write(2), non-blocking, so a pipe shrunk below the program's size
	 * fails instead of hanging.
	 */
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0 || !(buf = malloc(cap))) {
		r = buf ? -errno : -ENOMEM;
		goto out;
	}
	r = seccomp_export_bpf(f, p[1]);
	close(p[1]);
	p[1] = -1;
	while (r == 0 && (n = read(p[0], buf + len, cap - len)) > 0)
		len += (size_t)n;
	if (r == 0 && n < 0)
		r = -errno;	/* never a program cut short */
	if (r == 0 && (len == 0 || len % sizeof(struct sock_filter) != 0))
		r = -EINVAL;
	if (r == 0) {
		prepared[role].filter = (struct sock_filter *)buf;
		prepared[role].len = (unsigned short)(len /
		    sizeof(struct sock_filter));
		buf = NULL;
	}
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	free(buf);
	seccomp_release(f);
	return r > 0 ? -r : r;
}

int
sandbox_prepare(enum sandbox_role role)
{
	int r;

	if (role >= SANDBOX_NROLES)
		return -EINVAL;
	if (!active || prepared[role].filter)
		return 0;
	r = prepare(role);
	if (r < 0)
		log_warn("sandbox.prepare", strerror(-r), "role=%s: each "
		    "child builds its filter", tables[role].name);
	return r;
}

bool
sandbox_prepared(enum sandbox_role role)
{
	return role < SANDBOX_NROLES && prepared[role].filter != NULL;
}

/* Load role's prepared program: a system call, no allocation. */
static int
load_prepared(enum sandbox_role role)
{
	unsigned flags = 0;
	int r;

#ifndef SANDBOX_TRAP
	flags |= SECCOMP_FILTER_FLAG_LOG;	/* as SCMP_FLTATR_CTL_LOG */
#endif
	r = set_sigsys_handler();
	if (r < 0)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags,
	    &prepared[role]) < 0) {
		if (errno != EINVAL || flags == 0)
			return -errno;
		/* A kernel without SECCOMP_FILTER_FLAG_LOG, as libseccomp. */
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0,
		    &prepared[role]) < 0)
			return -errno;
	}
	active = true;
	cur_role = tables[role].name;
	loaded = role;
	return 0;
}

int
sandbox_install(enum sandbox_role role)
{
	int nr, r;

	if (role >= SANDBOX_NROLES)
		return -EINVAL;
	/* Names for the SIGSYS log line, while allocating is still fine. */
	for (nr = 0; nr < NAMES_MAX; nr++)
		if (!names[nr])
			names[nr] = seccomp_syscall_resolve_num_arch(
			    SCMP_ARCH_NATIVE, nr);
	r = load(role);
	if (r < 0) {
		log_error("sandbox.install", strerror(-r), "role=%s",
		    tables[role].name);
		return r;
	}
	log_info("sandbox.installed", "seccomp filter installed; denied "
	    "calls fail with EPERM and are logged", "role=%s rules=%zu "
	    "sanitizer_rules=%s", tables[role].name, tables[role].n,
	    sandbox_sanitizer_rules() ? "yes" : "no");
	return 0;
}

/*
 * Whether a child entering role keeps the filter its parent loaded:
 * nsspawn's rules are nshelper's and the spawner's three calls (above),
 * and loading a program costs the kernel a conversion and a compile.
 */
static bool
keeps(enum sandbox_role role)
{
	return loaded == SANDBOX_NSSPAWN && role == SANDBOX_NSHELPER;
}

int
sandbox_enter_child(enum sandbox_role role)
{
	if (!active)
		return 0;
	if (role >= SANDBOX_NROLES)
		return -EINVAL;
	log_set_role(tables[role].name);
	if (keeps(role)) {
		cur_role = tables[role].name;
		return set_sigsys_handler();	/* the child may have reset it */
	}
	return prepared[role].filter ? load_prepared(role) : load(role);
}

int
sandbox_start(enum sandbox_role role, bool off)
{
	int r;

	if (off) {
		log_warn("sandbox.disabled", "--no-seccomp: running without a "
		    "seccomp filter", "role=%s", sandbox_role_name(role));
		return 0;
	}
	r = sandbox_install(role);
	if (r == 0)
		sandbox_test_forbidden(role);
	return r;
}

int
sandbox_check_dir(const char *path, bool parent_of)
{
	char dir[4096], *slash;
	struct stat st;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	if (parent_of) {
		slash = strrchr(dir, '/');
		if (!slash)
			snprintf(dir, sizeof(dir), ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
	}
	if (stat(dir, &st) < 0) {
		log_error("config.unsafe_dir", strerror(errno), "dir=%s", dir);
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || (st.st_mode & 0022) ||
	    (st.st_uid != 0 && st.st_uid != geteuid())) {
		log_error("config.unsafe_dir", !S_ISDIR(st.st_mode) ?
		    "not a directory" : (st.st_mode & 0022) ? "directory is "
		    "writable by group or others; refusing to start" :
		    "directory is owned by another user; refusing to start",
		    "dir=%s mode=%04o uid=%u", dir,
		    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
		return -EPERM;
	}
	return 0;
}

#ifdef BATON_CRASHPOINTS
static void
probe(const char *what, long rc)
{
	int e = errno;

	log_info("sandbox.probe", NULL, "syscall=%s result=%ld errno=%s",
	    what, rc, rc < 0 ? strerrorname_np(e) : "0");
}
#endif

void
sandbox_test_forbidden(enum sandbox_role role)
{
#ifdef BATON_CRASHPOINTS
	const char *v = getenv("BATON_TEST_FORBIDDEN_SYSCALL");
	char *const argv[] = { (char *)"baton-probe", NULL };
	int fd;

	if (!v || strcmp(v, "1") != 0 || !active)
		return;
	errno = 0;
	probe("ptrace", ptrace(PTRACE_TRACEME, 0, NULL, NULL));
	probe("bpf", syscall(SYS_bpf, 0, NULL, 0));
	probe("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
	probe("unshare_user", unshare(CLONE_NEWUSER));
	if (role != SANDBOX_SUPERVISOR)	/* a missing file: ENOENT if allowed */
		probe("execve", execve("/nonexistent/baton-probe", argv, argv + 1));
	if (role == SANDBOX_NSHELPER) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		probe("socket_unix", fd);
		if (fd >= 0)
			close(fd);
	}
#else
	(void)role;
#endif
}
