/*
 * itcheck: the client load and the invariant checks shared by the crash
 * matrix and the chaos test (SPEC §4 invariants 1-3).
 */
#ifndef BATON_ITCHECK_H
#define BATON_ITCHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/lib/itest.h"

struct nsclient;

/*
 * A background client load of ITC_WORKERS processes in one of three
 * shapes:
 *   ITC_STATUS  STATUS only, a new connection per request (raw, no
 *               library retry: a refused connect is seen as such);
 *   ITC_TABLE   NS_REQUEST{net} for ld-<w>-<i>, every other one released
 *               (ALLOCATION_ENDED), on a persistent nsclient connection;
 *   ITC_BOTH    the same plus a STATUS after each.
 * Each answer or failure is one line of <root>/load.log:
 *   C id ms ino      created, with the inode of the net namespace fd
 *   R id ms          released (or allocation_not_found: already gone)
 *   S - ms           status answered
 *   E id ms errno    answered with NS_ERROR (not allocation_not_found)
 *   F id ms errno    no answer
 *   X id ms errno    refused: ECONNREFUSED, or ENOENT from connect, also
 *                    when it happens inside nsclient's reconnect-and-retry
 */
enum itc_shape { ITC_STATUS, ITC_TABLE, ITC_BOTH, ITC_NSHAPES };
#define ITC_WORKERS	2
struct itc_load {
	pid_t pids[ITC_WORKERS];
	enum itc_shape shape;
	char log[PATH_MAX];
};
extern const char *const itc_shape_names[ITC_NSHAPES];
void itc_load_start(struct itest *t, struct itc_load *l, enum itc_shape shape);
void itc_load_stop(struct itc_load *l);

struct itc_result {
	unsigned answered, failed, refused;
	unsigned errors;		/* answered NS_ERROR */
	unsigned creates, releases;	/* acknowledged */
	unsigned lost, resurrected;	/* acknowledged, yet wrong afterwards */
	unsigned mismatched;		/* served, but other namespaces */
};
/*
 * The history check.  Read the load log and compare the served table
 * with it: every acknowledged, unreleased allocation is pinned on disk
 * and a repeat NS_REQUEST through the agent hands back the namespace with
 * the inode the create got; every acknowledged release has no pin (and
 * itc_check_clean() checks the agent serves exactly the pinned ones).  A
 * release that got no answer may go either way.  One check() per
 * violation; also refused == 0 and failed <= max_failed (0 unless a
 * serving process was killed while it held the load's connections: then
 * at most ITC_WORKERS per such kill).  NS_ERROR answers are counted
 * (errors) and checked by the caller.
 */
void itc_verify_load(struct itest *t, const struct itc_load *l,
    const char *label, unsigned max_failed, struct itc_result *ret);

/*
 * NS_REQUEST for id with the n namespaces kinds[] through the agent (a
 * create if it is not there): the inodes of the fds it hands back into
 * ret_ino[].  0 or -errno.
 */
int itc_served_inodes(struct itest *t, const char *id,
    const char *const *kinds, unsigned n, unsigned long long *ret_ino);
/* The same for {net}: its inode, or 0 and the errno in *ret_err. */
unsigned long long itc_served_ino(struct itest *t, const char *id,
    int *ret_err);
/* The same on a connection the caller keeps open. */
unsigned long long itc_served_ino_on(struct nsclient *c, const char *id,
    int *ret_err);

/* A crash marker (SPEC §7) naming point exists. */
bool itc_crashed(struct itest *t, const char *point);
/*
 * The same, waiting up to wait_ms for it: for a point reached after the
 * upgrade has already returned (the successor's moved connections are
 * served once its generation is durable, after READY).
 */
bool itc_wait_crashed(struct itest *t, const char *point, int wait_ms);
/*
 * The pid of the process that logged event=crashpoint.stall for point
 * (HANDOFF_STALL_AT) and is now stopped, waiting up to wait_ms; or -1.
 */
pid_t itc_wait_stalled(struct itest *t, const char *point, int wait_ms);

/* baton-agent processes (comm) of this root; namespace inits excluded. */
int itc_count_agents(struct itest *t);
/* The allocation's pin directory exists. */
bool itc_pinned(struct itest *t, const char *id);
/* Agent pid the supervisor reports (batonctl status --json), or -1. */
pid_t itc_supervisor_agent(struct itest *t);
/*
 * Invariant 1: wait until exactly one agent serves, holds the lock and is
 * the one the supervisor names.  Returns the ms it took, or -1.
 */
long itc_wait_one_agent(struct itest *t, int timeout_ms, pid_t *ret_pid);
/*
 * Invariant 3: no stray agent, temp file or journal (checks, with label).
 * quiescent: no request is in flight, so every pin directory must also
 * belong to a served allocation (a creation in flight pins first).
 */
void itc_check_clean(struct itest *t, const char *label, bool quiescent);

/* Create allocations held-0.. (held-0 with pid,net,mount; others net). */
void itc_hold(struct itest *t, unsigned n);
void itc_check_held(struct itest *t, unsigned n, const char *label);
/*
 * If the supervisor exits within wait_ms (a crash marker is written just
 * before _exit), reap it and start it again, as systemd would.
 */
bool itc_restart_if_dead(struct itest *t, int wait_ms, int *ret_status);

#endif
