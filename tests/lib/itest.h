/*
 * itest: integration-test helpers.  Each test runs the real binaries
 * (from $BATON_TEST_BIN, default build-san-cp) in a fresh temporary root,
 * drives them with batonctl and raw protocol clients, and tears down
 * every process it started.
 */
#ifndef BATON_ITEST_H
#define BATON_ITEST_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct itest {
	char root[PATH_MAX - 64];
	char bin[PATH_MAX - 64];	/* absolute build dir */
	char agent[PATH_MAX];		/* absolute baton-agent */
	char markers[PATH_MAX];		/* crash marker dir */
	pid_t sup;
	int sup_log_fd;
	const char *const *sup_args;	/* extra supervisor args, or NULL */
};

/* Make the root and find the binaries; skips the case if missing. */
void it_setup(struct itest *t);
/* Start the supervisor; env "K=V" entries (NULL-terminated) are added. */
pid_t it_start_supervisor(struct itest *t, const char *const *env);
/*
 * Same, run through a wrapper (wrap: argv prefix, e.g. fiu-run -x -c ...,
 * NULL-terminated; NULL for none) with extra supervisor arguments (extra,
 * NULL-terminated; NULL for none).  The agent is t->agent, as above.
 */
pid_t it_start_supervisor_wrapped(struct itest *t, const char *const *env,
    const char *const *wrap, const char *const *extra);
/* Wait until the namespace socket answers STATUS with ready; agent pid. */
pid_t it_wait_serving(struct itest *t, int timeout_ms);
/* Run batonctl --root ROOT args...; stdout into out.  Returns exit code. */
int it_ctl(struct itest *t, char *out, size_t outlen, const char *const *args);
/* batonctl upgrade --json [extra...]; exit code, the JSON in out. */
int it_upgrade(struct itest *t, char *out, size_t len,
    const char *const *extra);
/* STATUS on the namespace socket: agent pid, or -errno. */
pid_t it_ns_status(struct itest *t, uint64_t *generation, uint64_t *allocs);
/* Same, with STATUS_REPLY's dead_allocations (NULL: not wanted). */
pid_t it_ns_status_dead(struct itest *t, uint64_t *generation,
    uint64_t *allocs, uint64_t *dead);
/* Stop everything (SIGTERM then SIGKILL), remove the root. */
void it_teardown(struct itest *t);
/* Print the supervisor's log as TAP diagnostics. */
void it_dump_log(struct itest *t);
/* The supervisor's log size now: a mark for it_log_max_since(). */
long it_log_mark(struct itest *t);
/*
 * The largest KEY=N over lines with "event=EVENT " the supervisor logged
 * after mark; 0 when there is none.
 */
uint64_t it_log_max_since(struct itest *t, long mark, const char *event,
    const char *key);

/* Parent pid from /proc, or -1. */
pid_t it_proc_ppid(pid_t pid);
/* State letter from /proc ('T': stopped), or 0. */
char it_proc_state(pid_t pid);
/* The process's comm is exactly `comm`. */
bool it_proc_named(pid_t pid, const char *comm);
/*
 * Live processes named `comm` whose command line contains root (all of
 * a test's daemons carry --root ROOT); up to max pids into pids[].
 */
unsigned it_find_procs(const char *root, const char *comm, pid_t *pids,
    unsigned max);
/*
 * The pid of the supervisor's standby (baton-standby) once exactly one
 * waits and it is not `not`; 0 after ms milliseconds without.
 */
pid_t it_wait_standby(struct itest *t, pid_t not, int ms);
/*
 * The highest nice value among a process's threads (/proc/PID/task/ * /stat),
 * or -100 when it cannot be read.
 */
int it_proc_nice_max(pid_t pid);
/*
 * The scheduling policy every thread of a process runs under (SCHED_*,
 * field 41 of their stat files), or -1 if they differ or none was read.
 */
int it_proc_policy(pid_t pid);
/* Number of fds / direct children of a process. */
int it_count_fds(pid_t pid);
int it_count_children(pid_t pid);
/* Who holds the data-dir lock (0 none). */
pid_t it_lock_holder(struct itest *t);
bool it_alive(pid_t pid);

/* A background client hammering STATUS, new connection per request. */
struct it_load;
struct it_load *it_load_start(struct itest *t);
/* Stop it; requests answered and failed. */
void it_load_stop(struct it_load *l, uint64_t *ok, uint64_t *failed);

/* Write an executable shell script at dir/name; returns its path (static). */
const char *it_script(struct itest *t, const char *name, const char *body);

#endif
