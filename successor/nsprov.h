/*
 * nsprov: the provider's side effects on the host, kept out of the loop
 * code: the creation helper process, the pins under the pin directory,
 * the reaper, and their re-validation and clean-up.
 */
#ifndef BATON_NSPROV_H
#define BATON_NSPROV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/nsvocab.h"

struct nscgroup;

/* What the helper writes on its pipe: CREATED, then PINNED or FAILED. */
enum nsprov_stage { NSPROV_CREATED = 1, NSPROV_PINNED, NSPROV_FAILED };

/*
 * When the helper finished each step (CLOCK_MONOTONIC, us; 0 not
 * reached): the breakdown of a creation's time (docs/BENCH.md).
 */
enum nsprov_mark {
	NSPROV_T_START,		/* first instruction of the helper */
	NSPROV_T_SETUP,		/* signals, fds, seccomp filter */
	NSPROV_T_DIR,		/* leftovers removed, pin dir and files made */
	NSPROV_T_CGROUP,	/* moved into the allocation cgroup */
	NSPROV_T_MADE,		/* namespaces made (nsmake) */
	NSPROV_T_PINNED,	/* pins mounted, reaper file written */
	NSPROV_T_N
};

struct nsprov_report {
	int32_t stage;
	int32_t err;			/* FAILED: -errno */
	int32_t reaper;			/* pid of the namespace's init, or 0 */
	int32_t _pad;
	uint64_t ino[NSV_KINDS];	/* PINNED: inode per kind */
	uint64_t t_us[NSPROV_T_N];	/* step times, see nsprov_mark */
	char what[200];			/* FAILED: the step that failed */
};

struct nsprov_req {
	const char *pin_dir;
	const char *id;
	unsigned mask;
	int image_fd;			/* borrowed; -1 without uenv */
	const char *uenv_base;
	const char *uenv_path;
	/* Allocation cgroups to move the helper (so the init) into; NULL none */
	const struct nscgroup *cg;
	/* The helper sits in a net namespace made ahead (nsmake_opts) */
	bool net_made;
};

/*
 * The helper's report pipe: *ret_rfd (O_NONBLOCK|O_CLOEXEC) for the
 * agent's loop, *ret_wfd for nsprov_spawn().  0 or -errno.
 */
int nsprov_open_report(int *ret_rfd, int *ret_wfd);

/*
 * Fork the helper, which reports on wfd (borrowed: the caller closes its
 * copy after).  Returns 0 and its pid, or -errno.  The helper touches no
 * libuv state and closes every fd it does not need.  The fork takes the
 * table writer's fork lock (nswriter_fork_lock()): where that lock is in
 * use, call it when no write is in flight, or the loop waits for that
 * write.
 */
int nsprov_spawn(const struct nsprov_req *r, int wfd, pid_t *ret_pid);

/*
 * In a child forked from the loop: every signal back to its default
 * action (no libuv handler may run there), SIGPIPE ignored.
 */
void nsprov_child_signals(void);

/* The same from a process with no other thread (the spawner, nsspawn). */
int nsprov_spawn_alone(const struct nsprov_req *r, int wfd, pid_t *ret_pid);

/*
 * A spare helper, forked ahead of its creation by the spawner (nsspawn):
 * nsprov_spare_enter() in the child makes it a helper but for its
 * request (named baton-nsspare, signals, nice); when the request has
 * come, nsprov_spare_run() runs it exactly as a forked helper would (a
 * filter of its own, if any, first: nshelper denies recvmsg), reporting
 * on wfd, t_start its arrival
 * (never returns).
 */
void nsprov_spare_enter(void);

__attribute__((noreturn)) void nsprov_spare_run(const struct nsprov_req *r,
    int wfd, uint64_t t_start);

/* Write a FAILED report on wfd from the agent (the helper never ran). */
void nsprov_report_failed(int wfd, int err, const char *what);

/* "<pin_dir>/<id>" or "<pin_dir>/<id>/<pid|net|mnt>". 0 or -ENAMETOOLONG. */
int nsprov_dir_path(const char *pin_dir, const char *id, char *buf,
    size_t len);
int nsprov_pin_path(const char *pin_dir, const char *id, unsigned kind,
    char *buf, size_t len);

/* Open a pin O_RDONLY|O_CLOEXEC and check its inode.  fd or -errno. */
int nsprov_open_pin(const char *pin_dir, const char *id, unsigned kind,
    uint64_t ino);

/*
 * Kill the reaper if pid still runs the pid namespace with inode
 * pid_ino (pidfd, so a recycled pid is never hit).  0, -ESRCH, -errno.
 */
int nsprov_kill_reaper(pid_t pid, uint64_t pid_ino);

/*
 * Undo an allocation on the host: kill its reaper (if reaper > 0 and it
 * matches pid_ino, or as recorded in the dir), detach the pins, remove
 * the directory.  Missing pieces are fine.  0 or the first -errno.
 */
int nsprov_destroy(const char *pin_dir, const char *id, pid_t reaper,
    uint64_t pid_ino);

/*
 * Re-validate an allocation found in the table: every pin an nsfs mount
 * with the recorded inode, the reaper alive in the recorded pid
 * namespace.  0 or -errno with a reason in *ret_why; -ESRCH means only
 * the init is gone (the pins are fine).
 */
int nsprov_check(const char *pin_dir, const char *id, unsigned mask,
    const uint64_t ino[NSV_KINDS], pid_t reaper, const char **ret_why);

/*
 * The pid namespace's init runs: reaper is alive and in the pid namespace
 * with inode pid_ino.  0, or -ESRCH with the reason in *ret_why.
 */
int nsprov_check_init(pid_t reaper, uint64_t pid_ino, const char **ret_why);


/*
 * Make pin_dir exist and be a private mount point of its own, so pins
 * neither propagate nor follow into new mount namespaces' peers: a
 * tmpfs mounted there unless pin_dir already is a mount point (kept as
 * found: a running or earlier agent's, with its pins).
 */
int nsprov_prepare_pin_dir(const char *pin_dir);

/*
 * Remove every directory under pin_dir for which known(id) is false (a
 * creation that died before it was persisted, a release whose agent died
 * between its durable write and its undo).  Returns how many.
 */
int nsprov_sweep(const char *pin_dir, bool (*known)(const char *id,
    void *data), void *data);

/*
 * Remove id's directory under pin_dir, which no table names, when there
 * is one (logged as nsprov_sweep does).  1 when there was, else 0.
 */
int nsprov_sweep_one(const char *pin_dir, const char *id);

#endif
