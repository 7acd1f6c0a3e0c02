/*
 * spawn: fork+exec a program with listeners placed at fd 3.. and an
 * optional extra fd after them, LISTEN_PID set to the child's own pid
 * (which uv_spawn cannot do), and every other fd closed.
 */
#ifndef BATON_SPAWN_H
#define BATON_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

struct spawn_opts {
	const char *path;		/* absolute binary */
	const char *const *argv;	/* argv[0] included, NULL-terminated */
	const char *const *env_extra;	/* "K=V", NULL-terminated, may be NULL */
	const char *const *env_drop;	/* names removed from environ, may be NULL */
	const int *listen_fds;		/* borrowed */
	const char *const *listen_names;
	unsigned n_listen;
	int extra_fd;			/* -1 or placed at 3+n_listen */
	const char *extra_fd_env;	/* e.g. "HANDOFF_SOCK_FD", or NULL */
	int pdeathsig;			/* 0 or a signal sent if we die */
	int stderr_fd;			/* > 2: the child's stderr; else ours */
	int nice;			/* > 0: the child's nice value at exec */
	bool idle;			/* SCHED_IDLE once it has exec'd */
};

/*
 * Returns the child's pid, or -errno.  Exec failure in the child is
 * reported as -errno too (through a CLOEXEC pipe), never as a child that
 * runs on.
 * (Also: LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID are set only when
 * n_listen > 0; inherited LISTEN_* and extra_fd_env are always dropped,
 * so a stale value never reaches the child; env_extra overrides environ.
 * Every signal disposition is default and the mask is empty at exec.
 * The caller reaps the child.  All allocation happens before fork.)
 */
pid_t spawn_agent(const struct spawn_opts *o);

#endif
