/*
 * spawn: fork+exec an agent with its listeners at fd 3.. (SPEC §6).
 *
 * Invariants:
 *  - Everything that allocates happens before fork: the caller may be a
 *    libuv process with other threads, and between fork and exec the
 *    child only makes syscalls and formats into buffers it already has.
 *  - All signals are blocked across fork, so none of the parent's
 *    handlers (libuv's signal pipe among them) runs in the child; the
 *    child resets every disposition to default and unblocks before exec.
 *  - The child ends up with exactly 0, 1, 2, the listeners at 3..3+n-1
 *    and the extra fd at 3+n, none CLOEXEC.  Sources are first copied
 *    above the target range so placing one never clobbers another.
 *  - spawn_agent returns a pid only when execve succeeded: a failure in
 *    the child travels back as an errno through a CLOEXEC pipe, which
 *    exec closes (EOF = success).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/listenfds.h"
#include "common/spawn.h"

extern char **environ;

/* Does "K=V" (or a bare "K") have the name `name`? */
static bool
env_is(const char *kv, const char *name, size_t nlen)
{
	return strncmp(kv, name, nlen) == 0 && kv[nlen] == '=';
}

static size_t
name_len(const char *kv)
{
	const char *eq = strchr(kv, '=');

	return eq ? (size_t)(eq - kv) : strlen(kv);
}

static size_t
count(const char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

/* Is environ entry kv replaced or dropped by what we set? */
static bool
env_drop_entry(const char *kv, const struct spawn_opts *o)
{
	static const char *const ours[] = {
		"LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", NULL
	};
	size_t i;

	for (i = 0; ours[i]; i++)
		if (env_is(kv, ours[i], strlen(ours[i])))
			return true;
	if (o->extra_fd_env && env_is(kv, o->extra_fd_env,
	    strlen(o->extra_fd_env)))
		return true;
	for (i = 0; o->env_drop && o->env_drop[i]; i++)
		if (env_is(kv, o->env_drop[i], strlen(o->env_drop[i])))
			return true;
	for (i = 0; o->env_extra && o->env_extra[i]; i++)
		if (env_is(kv, o->env_extra[i], name_len(o->env_extra[i])))
			return true;
	return false;
}

/* Close every fd >= from except keep. */
static void
close_from(int from, int keep)
{
	struct rlimit rl;
	long max, fd;

	if (keep > from && close_range((unsigned)from, (unsigned)keep - 1,
	    0) == 0 && close_range((unsigned)keep + 1, ~0U, 0) == 0)
		return;
	/* No close_range (before Linux 5.9): walk the whole table. */
	max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
	    ? (long)rl.rlim_cur : 65536;
	for (fd = from; fd < max; fd++)
		if (fd != keep)
			close((int)fd);
}

/* After fork: never returns.  Reports errno on errfd when it fails. */
__attribute__((noreturn)) static void
child(const struct spawn_opts *o, char **envp, char *fds_var,
    char *names_var, char *pid_var, int errfd, pid_t parent)
{
	int stage[LISTENFDS_MAX + 1];
	unsigned n = o->n_listen, nsrc = n + (o->extra_fd >= 0), i;
	int first_free = LISTENFDS_START + (int)nsrc, sig, e;
	struct sigaction sa;
	sigset_t none;

	/* First, before fd 3.. are filled: stderr_fd may sit there. */
	if (o->stderr_fd > STDERR_FILENO &&
	    dup2(o->stderr_fd, STDERR_FILENO) < 0)
		goto fail;
	/* Keep the error pipe clear of the range we are about to fill. */
	e = fcntl(errfd, F_DUPFD_CLOEXEC, first_free + 1);
	if (e < 0)
		goto fail;
	errfd = e;
	for (i = 0; i < nsrc; i++) {
		int src = i < n ? o->listen_fds[i] : o->extra_fd;

		stage[i] = fcntl(src, F_DUPFD_CLOEXEC, first_free + 1);
		if (stage[i] < 0)
			goto fail;
	}
	/* dup2 clears CLOEXEC on the placed copy; the stages stay CLOEXEC. */
	for (i = 0; i < nsrc; i++)
		if (dup2(stage[i], LISTENFDS_START + (int)i) < 0)
			goto fail;
	close_from(first_free, errfd);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);	/* KILL/STOP: EINVAL */
	/*
	 * glibc's sigaction refuses its two reserved real-time signals, yet
	 * an ignored disposition for them survives exec: reset those with
	 * the raw system call (kernel struct: handler, flags, restorer, mask).
	 */
	for (sig = SIGRTMIN - 2; sig < SIGRTMIN; sig++) {
		struct {
			void (*handler)(int);
			unsigned long flags;
			void (*restorer)(void);
			unsigned long mask;
		} ksa = { SIG_DFL, 0, NULL, 0 };

		if (sig >= 32)
			(void)syscall(SYS_rt_sigaction, sig, &ksa, NULL,
			    sizeof(ksa.mask));
	}

	/* Lowering one's own priority needs no privilege. */
	if (o->nice > 0)
		(void)setpriority(PRIO_PROCESS, 0, o->nice);
	if (o->pdeathsig > 0) {
		if (prctl(PR_SET_PDEATHSIG, o->pdeathsig) < 0)
			goto fail;
		/* The parent may have died before prctl took effect. */
		if (getppid() != parent)
			_exit(127);
	}
	if (n > 0)
		listenfds_format(getpid(), o->listen_names, n, fds_var,
		    names_var, pid_var);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		goto fail;
	execve(o->path, (char *const *)o->argv, envp);
fail:
	e = errno;
	if (write(errfd, &e, sizeof(e)) < 0) {
		/* Parent gone or pipe broken: the exit status must do. */
	}
	_exit(127);
}

pid_t
spawn_agent(const struct spawn_opts *o)
{
	char fds_var[32], pid_var[32], extra_var[64];
	char names_var[LISTENFDS_MAX * (LISTENFDS_NAME_MAX + 1) + 16];
	char **envp = NULL;
	size_t nenv, k = 0, i;
	sigset_t all, old;
	int pipefd[2] = { -1, -1 }, err = 0;
	pid_t pid = -1, parent = getpid();
	ssize_t rd;
	int r;

	if (!o || !o->path || !o->argv || !o->argv[0] ||
	    o->n_listen > LISTENFDS_MAX || (o->n_listen > 0 && !o->listen_fds))
		return -EINVAL;
	for (i = 0; i < o->n_listen; i++)
		if (o->listen_fds[i] < 0)
			return -EBADF;
	if (o->extra_fd_env && strlen(o->extra_fd_env) > 40)
		return -EINVAL;

	/* envp: environ minus what we drop or override, then ours. */
	nenv = count((const char *const *)environ) + count(o->env_extra) + 5;
	envp = calloc(nenv, sizeof(*envp));
	if (!envp) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; environ && environ[i]; i++)
		if (!env_drop_entry(environ[i], o))
			envp[k++] = environ[i];
	for (i = 0; o->env_extra && o->env_extra[i]; i++)
		envp[k++] = (char *)o->env_extra[i];
	if (o->n_listen > 0) {
		/* Filled for real in the child, which knows its pid. */
		listenfds_format(0, o->listen_names, o->n_listen, fds_var,
		    names_var, pid_var);
		envp[k++] = fds_var;
		envp[k++] = names_var;
		envp[k++] = pid_var;
	}
	if (o->extra_fd >= 0 && o->extra_fd_env) {
		snprintf(extra_var, sizeof(extra_var), "%s=%u",
		    o->extra_fd_env, LISTENFDS_START + o->n_listen);
		envp[k++] = extra_var;
	}
	envp[k] = NULL;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		child(o, envp, fds_var, names_var, pid_var, pipefd[1], parent);
	}
	r = pid < 0 ? -errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto out;
	close(pipefd[1]);
	pipefd[1] = -1;

	do
		rd = read(pipefd[0], &err, sizeof(err));
	while (rd < 0 && errno == EINTR);
	if (rd == 0) {
		/*
		 * Exec closed the pipe.  Only now SCHED_IDLE: we wait for the
		 * exec above, and a child that had it before would keep us
		 * waiting for as long as anything else wants the CPU.
		 */
		if (o->idle)
			(void)sched_setscheduler(pid, SCHED_IDLE,
			    &(struct sched_param){ .sched_priority = 0 });
		r = pid;
		goto out;
	}
	/* The child failed before or at exec: reap it, report why. */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	r = rd == (ssize_t)sizeof(err) && err > 0 ? -err : -EIO;
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	free(envp);
	return r;
}
