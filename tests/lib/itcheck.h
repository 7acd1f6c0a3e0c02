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

/*
 * A background client: NS_REQUEST{net} for ld-<i>, every other one
 * released, STATUS after each, through the consumer library.  Each answer
 * or failure is one line of <root>/load.log: C id (created), R id
 * (released or already gone), S (status), F id (no answer), X (refused).
 */
struct itc_load {
	pid_t pid;
	char log[PATH_MAX];
};
void itc_load_start(struct itest *t, struct itc_load *l);
void itc_load_stop(struct itc_load *l);

struct itc_result {
	unsigned answered, failed, refused;
	unsigned lost, resurrected;	/* acknowledged, yet wrong afterwards */
};
/*
 * Read the load log and check invariant 2 against the pins on disk; one
 * check() per violation.  A release that got no answer may go either way.
 */
void itc_verify_load(struct itest *t, const struct itc_load *l,
    const char *label, struct itc_result *ret);

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
