/*
 * nsserver_int: what the namespace provider's rooms share (SPEC §5).
 *
 * nsserver.c    life cycle, drain, seal, resume: the interface of nsserver.h
 * nsclients.c   consumer connections: accept, per-uid limits, requests
 * nscreate.c    creations, releases and their durable writes (nswriter)
 * nscgwatch.c   cgroup-empty watch, dead inits, allocation cgroups
 *
 * Invariants:
 * - The loop never blocks on a creation: nsprov_spawn() forks a helper
 *   and its report pipe is watched with uv_poll.  A creation is final
 *   only at the pipe's EOF (the helper has finished or undone its work).
 *   Nor on the disk through it: where a fork waits for the writer
 *   (nswriter_fork_waits(): an interposed libc) and a table write is in
 *   flight (its thread holds the fork lock) the fork waits for the
 *   moment between that write and the next (nswriter_between()); until
 *   then the creation has no helper (helper 0, reaped) and its pipe is
 *   open.
 * - Nothing is answered before it is durable: a change is made in memory
 *   and handed to nswriter, whose thread writes the table (atomicfile)
 *   off the loop; NS_RESPONSE and ALLOCATION_RELEASED go out from the
 *   write's completion.  Changes made while a write is in flight share
 *   the next one (group commit).  Reads (STATUS, repeats of durable
 *   allocations) never wait for a write.  Every write bumps seq; digest
 *   is the SHA-256 of the payload written.
 * - Until its change is durable, a creation stays in `creations` (a
 *   repeat request joins it) and a release in `releasing` (a request for
 *   that id is told to ask again): no second change to an id can race
 *   the first one's write.  A failed write undoes its changes in memory
 *   and answers NS_ERROR.
 * - One request per connection at a time: a connection waiting for a
 *   creation is paused, so answers keep their order and a peer cannot
 *   queue unbounded work.  Connections, creations in flight,
 *   allocations and subscribers all have limits (limit_exceeded), and
 *   connections and creations also per peer uid other than root and
 *   ours, so one uid's flood cannot take the slots every other client
 *   needs.
 * - Requests for one allocation id are idempotent: the same namespace
 *   set (and image) gets fds to the same namespaces, in each request's
 *   order; a request during the creation joins it.
 * - Sealed: no mutation.  A cgroup that empties while sealed is released
 *   after resume (or by the successor, which sees the same files).
 *
 * cgroup-empty: one inotify fd (raw, on uv_poll, keeping libuv's thread
 * pool out of the agent) watches <scope>/cgroup.events for IN_MODIFY.  A
 * scope not there yet is found through a watch on workload.slice for
 * IN_CREATE and a 1 s tick that retries every allocation without a watch
 * (which also covers a missing workload.slice).  "populated 1" is
 * remembered durably (cg_seen) so the 1→0 edge survives handoffs; the
 * edge (a change notification that reads 0 counts: cgroupfs notifies
 * only on flips), or the scope vanishing after it was seen populated,
 * releases the allocation and tells every subscriber.  A scope that
 * exists but is empty when first seen is a job not started yet: kept.
 */
#ifndef BATON_NSSERVER_INT_H
#define BATON_NSSERVER_INT_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/clock.h"
#include "transport/acceptor.h"
#include "transport/conn.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/nsmake.h"
#include "common/nsvocab.h"
#include "common/usock.h"
#include "crashpoints/crashpoint.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "successor/nscgroup.h"
#include "successor/nsfile.h"
#include "successor/nsprov.h"
#include "successor/nsserver.h"
#include "successor/nsspawn.h"
#include "successor/nsstate.h"
#include "successor/nswriter.h"

#define DEF_MAX_CONNS		1024
#define DEF_MAX_PENDING		64
#define UID_SHARE		2	/* one uid: 1/UID_SHARE of a limit */
#define DEF_MAX_ALLOCS		4096
#define DEF_MAX_SUBS		64
#define MAX_BODY		(64u << 10)	/* requests are tiny */
#define DEF_MAX_QUEUED		(256u << 10)	/* answers are small too */
#define CREATE_TIMEOUT_MS	30000
#define TICK_MS			1000
#define ACCEPTS_PER_WAKE	64
#define DYING_MAX		256
#define DRAIN_FIRST_REQUEST_MS	500	/* a fresh connection's request */
#define DEAD_INIT_MSG "allocation's namespace init is dead; release it"

struct client;

struct waiter {
	struct client *cl;		/* NULL once the client left */
	unsigned n;
	uint8_t order[NSV_KINDS];
	struct waiter *next;
};

/* What one peer uid holds; a slot is freed when it holds nothing. */
struct uidslot {
	uid_t uid;
	unsigned conns, pending;
};

struct release;

struct client {
	struct nsserver *s;
	struct conn *c;
	uid_t uid;
	struct release *rel;		/* set while its release is written */
	bool subscriber;
	bool held;			/* a change request held unread (drain) */
	struct waiter *w;		/* set while waiting for a creation */
	unsigned requests;		/* frames received */
	struct client *prev, *next;
};

struct creation {
	struct nsserver *s;
	struct ns_alloc *alloc;		/* in the table, being written */
	uid_t uid;			/* who started it (per-uid limit) */
	char id[NSV_ID_MAX + 1];
	unsigned mask;
	char *image;
	pid_t helper;
	int pidfd;		/* the spawner's helper: kill and wait by it */
	bool spawning;		/* asked the spawner, no answer yet */
	bool kill_asked;	/* kill it once the answer names it */
	bool reaped;		/* no helper left to kill or wait for */
	bool timed_out;
	int fd;
	uv_poll_t poll;
	struct nsprov_report last;	/* last complete record */
	uint64_t started_ms;
	/* CLOCK_MONOTONIC us: request, fork call, forked, PINNED read,
	 * queued for the write (the breakdown in ns.create) */
	uint64_t t_req, t_fork, t_forked, t_seen, t_commit;
	struct waiter *waiters;
	struct creation *next;
};

/* A release waiting for its table write. */
struct release {
	struct nsserver *s;
	struct ns_alloc *a;		/* out of the table, still on the host */
	struct client *cl;		/* who asked, NULL when it left or none */
	char id[NSV_ID_MAX + 1];
	char why[24];
	/* Pins undone by the writer thread once durable (undo_pins_post) */
	bool pins_undone;
	int pins_err;
	struct release *next;
};

struct nsserver {
	uv_loop_t *loop;
	char *pin_dir, *uenv_dir, *uenv_base, *state_path, *cgroup_root;
	char *build_id;
	uid_t *allow_uids;
	unsigned n_allow_uids;
	gid_t *allow_gids;
	unsigned n_allow_gids;
	unsigned max_conns, max_pending, max_allocs, max_subs;
	unsigned max_conns_uid, max_pending_uid;
	struct uidslot *uids;		/* one per uid holding something */
	unsigned nuids, cap_uids;
	unsigned max_body, max_queued;

	struct ns_table t;
	uint8_t digest[NSSERVER_DIGEST_LEN];
	bool dirty;			/* needs a write nothing has queued */
	uint64_t written_seq;		/* seq of the newest durable table */
	struct nswriter *wr;
	struct nsspawn *spawner;	/* forks the helpers; NULL until needed */
	struct release *releasing;
	unsigned nreleasing;
	bool ready, draining, sealed, freeing;
	bool keep_conns;	/* drain parks connections to move them */

	struct acceptor *acc;		/* accepting when started */

	struct client *clients;
	unsigned nclients, nsubs;
	struct creation *creations;
	unsigned ncreations;

	struct nscgroup cg;		/* allocation cgroups (nscgroup.h) */
	bool cg_dirty;			/* one may be left to remove */
	bool pins_dirty;		/* the pin sweep is still to run */
	const char *preload_use;	/* ns.loaded's preload= */
	pid_t dying[DYING_MAX];		/* killed reapers not yet reaped */
	unsigned ndying;

	int ino_fd;
	int slice_wd;
	uv_poll_t ipoll;
	uv_timer_t tick;		/* runs only while it has work */
	uv_check_t kick;		/* after each turn: restart the tick */
	uv_timer_t drain_timer;
	uv_timer_t grace_timer;		/* drain: first-request grace */
	nsserver_drain_cb drain_cb;
	void *drain_data;
	unsigned open_handles;
};

/* nsserver.c: life cycle */
void nss_maybe_drained(struct nsserver *s);
void nss_maybe_free(struct nsserver *s);

/* nsclients.c: connections and requests */
void nss_accept(void *data, const struct acceptor_peer *p);
void nss_answer(struct client *cl, const struct ns_alloc *a,
    const uint8_t *order, unsigned n);
void nss_client_done(struct client *cl);
char *nss_dup_or_null(const char *p);
void nss_handle_closed_cb(uv_handle_t *h);
void nss_release_answer(struct release *rel, int err);
void nss_send_error(struct client *cl, const char *id, const char *kind,
    const char *message);
void nss_uid_put(struct nsserver *s, uid_t uid, bool conn);

/* nscreate.c: creations, releases, durable writes */
int nss_add_waiter(struct creation *cr, struct client *cl,
    const uint8_t *order, unsigned n);
void nss_answer_waiters(struct creation *cr, const struct ns_alloc *a,
    const char *kind, const char *message);
void nss_creation_closed_cb(uv_handle_t *h);
/* SIGKILL cr's helper, if it has one (or once the spawner names it). */
void nss_creation_kill(struct creation *cr);
/* Wait (blocking: shutdown) until cr's helper exited. */
void nss_creation_wait(struct creation *cr);
void nss_destroy_alloc(struct nsserver *s, struct ns_alloc *a);
int nss_encode_cb(void *data, uint8_t **buf, size_t *len,
    uint64_t *ret_seq);
void nss_ended_msg(struct msg *m, const char *id, uint64_t seq);
struct creation *nss_find_creation(struct nsserver *s, const char *id);
struct release *nss_find_release(const struct nsserver *s, const char *id);
int nss_persist_async(struct nsserver *s, nswriter_done_fn done, void *arg);
int nss_persist_sync(struct nsserver *s);
int nss_release_alloc(struct nsserver *s, struct ns_alloc *a,
    const char *why, struct client *cl);
int nss_start_creation(struct nsserver *s, const char *id, unsigned mask,
    const char *image, char *errbuf, size_t errlen, struct creation **ret);
void nss_written_cb(void *data, int err,
    const uint8_t digest[NSWRITER_DIGEST_LEN]);

/* nscgwatch.c: cgroup watch, dead inits, allocation cgroups */
unsigned nss_count_dead(const struct nsserver *s);
bool nss_init_alive(struct ns_alloc *a);
void nss_inotify_cb(uv_poll_t *h, int status, int events);
void nss_mark_dead(struct ns_alloc *a, const char *why);
void nss_recheck_all(struct nsserver *s);
void nss_sweep_cgroups(struct nsserver *s);
void nss_watch_alloc(struct nsserver *s, struct ns_alloc *a);

#endif
