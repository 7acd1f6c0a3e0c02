/*
 * nsserver: the namespace socket (SPEC §5) and the allocation table
 * behind it.  Accepts consumers on the inherited "ns" listener, answers
 * NS_REQUEST / ALLOCATION_ENDED / STATUS / SUBSCRIBE, creates namespaces
 * through a short-lived helper process (the loop never blocks on it),
 * pins them under run/pact/ns/<id>/, keeps the table durable, and
 * releases allocations whose cgroup empties.
 *
 * The agent (successor/agent.c) owns the lock and the handoff; it drives
 * this module through start/stop_accepting/drain/seal/unseal.  Allocations
 * (pins, reaper processes, uenv mounts) outlive the nsserver object: free
 * does not release them, so they survive handoffs.
 */
#ifndef BATON_NSSERVER_H
#define BATON_NSSERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "transport/connmove.h"

#define NSSERVER_DIGEST_LEN 32

struct nsserver;

struct nsserver_config {
	const char *root;		/* "/" or a test root; paths below under it */
	const char *pin_dir;		/* <root>/run/pact/ns */
	const char *uenv_dir;		/* <root>/var/lib/pact/uenv */
	const char *uenv_mount_base;	/* <root>/run/pact/uenv */
	const char *state_path;		/* <root>/var/lib/baton/allocations */
	const char *cgroup_root;	/* e.g. /sys/fs/cgroup; NULL = no watch */
	const char *alloc_cgroup;	/* nscgroup_open() spec; NULL default */
	const char *build_id;
	const uid_t *allow_uids;	/* besides root and our euid */
	unsigned n_allow_uids;
	const gid_t *allow_gids;
	unsigned n_allow_gids;
	unsigned max_conns;		/* 0 = default 1024 */
	unsigned max_pending;		/* creations in flight; 0 = 64 */
	unsigned max_conns_per_uid;	/* one peer uid; 0 = max_conns / 2 */
	unsigned max_pending_per_uid;	/* one peer uid; 0 = max_pending / 2 */
	unsigned max_allocations;	/* 0 = 4096 */
	unsigned max_subscribers;	/* 0 = 64 */
	unsigned max_body;		/* request frame body; 0 = 64 KiB */
	unsigned max_queued;		/* bytes queued per conn; 0 = 256 KiB */
	/*
	 * Borrowed, may be NULL: the table as nsserver_preload() read it
	 * before the lock was ours.  When the file is still the one it read
	 * (same digest) its table is taken whole (the preload keeps none)
	 * and its cgroups are used as resolved.  The pin sweep then waits
	 * for the first tick, after serving has begun.
	 */
	struct nsserver_preload *preload;
	/*
	 * A successor's load at BEGIN: BEGIN's state_digest
	 * (NSSERVER_DIGEST_LEN bytes).  The table is then the one the
	 * incumbent sealed (the caller compares the digest loaded with it
	 * next) and served until then: when the preload read that very
	 * table it is taken without reading the file again, and its pins
	 * are not checked again (a pid namespace's init still is; every
	 * answer opens the pins and checks the init anyway).  NULL (cold
	 * start, restart, a promoted successor, a resuming incumbent):
	 * every pin is checked.
	 */
	const uint8_t *sealed_digest;
};

/*
 * A successor's head start, while the incumbent still serves: read and
 * decode the table (replaced atomically, so it needs no lock) and resolve
 * the allocation cgroups, so that BEGIN only compares digests.  Nothing
 * on the host changes but dead writers' leftovers of the table file
 * (atomicfile_cleanup: a live owner's are kept).  0 or -errno (*ret
 * NULL: no head start, nothing else lost).
 */
struct nsserver_preload;
int nsserver_preload(const char *state_path, const char *alloc_cgroup,
    struct nsserver_preload **ret);
void nsserver_preload_free(struct nsserver_preload *p);

/*
 * Load the allocation table (the caller holds the data-dir lock), find
 * each allocation's pins and reaper again, and get ready to serve.  A
 * missing state file is an empty table.  Returns 0 or -errno (-EBADMSG for
 * a torn or inconsistent table).
 */
int nsserver_new(uv_loop_t *loop, const struct nsserver_config *cfg,
    struct nsserver **ret);

/* Start accepting on listen_fd (borrowed; never closed by this module). */
int nsserver_start(struct nsserver *s, int listen_fd);

/* Stop accepting new connections (they wait in the kernel backlog). */
void nsserver_stop_accepting(struct nsserver *s);

/*
 * Drain: stop accepting, answer every request already read or in
 * creation, close idle consumer connections, then call done_cb with the
 * number of connections that could not be finished by deadline_ms
 * (monotonic ms, clock_mono_ms()).  The table is fsynced before done_cb.
 */
typedef void (*nsserver_drain_cb)(void *data, unsigned open_remaining);
void nsserver_drain(struct nsserver *s, uint64_t deadline_ms,
    nsserver_drain_cb done_cb, void *data);

/*
 * Seal: no further mutation; the table on disk is final.  Returns its
 * sequence number and SHA-256 digest (of the bytes on disk).  0 or -errno.
 */
int nsserver_seal(struct nsserver *s, uint64_t *ret_seq,
    uint8_t ret_digest[NSSERVER_DIGEST_LEN]);

/* Undo drain/seal after an aborted handoff: mutate and accept again. */
void nsserver_resume(struct nsserver *s, int listen_fd);

/*
 * Moving connections to a successor (docs/PROTOCOL.md).  With keep set
 * before nsserver_drain(), the drain parks connections (answered, then not
 * read) instead of closing them, and is done when no request is in
 * flight.  nsserver_resume() reads them again.
 */
void nsserver_keep_conns(struct nsserver *s, bool keep);

/*
 * After the seal: take every parked connection out (*ret_v owned by the
 * caller, connmove_items_free()); each leaves this server without its
 * peer noticing.  One that cannot move (an answer with fds still unsent)
 * is closed after its queue flushes and counted in *ret_closed.
 */
int nsserver_export_conns(struct nsserver *s, struct connmove_item **ret_v,
    unsigned *ret_n, unsigned *ret_closed);

/*
 * Serve moved connections: takes every item (the sockets included) and
 * returns how many are served; subscribers stay subscribed.
 */
unsigned nsserver_adopt_conns(struct nsserver *s, struct connmove_item *v,
    unsigned n);

/* The table's generation: one more for every successor that served. */
uint64_t nsserver_generation(const struct nsserver *s);

/* seq/digest of the table as loaded or last written. */
void nsserver_state(const struct nsserver *s, uint64_t *ret_seq,
    uint8_t ret_digest[NSSERVER_DIGEST_LEN]);

/*
 * After a successor has verified the loaded state against BEGIN: count
 * one more handoff in the table's generation.  It counts at once (STATUS,
 * and every later write carries it); done(data, err) runs on the loop
 * once it is durable or its write failed.  0 or -errno (nothing changed).
 */
int nsserver_bump_generation_async(struct nsserver *s,
    void (*done)(void *data, int err), void *data);

/* Number of allocations; whether accepting now. */
unsigned nsserver_count(const struct nsserver *s);
bool nsserver_accepting(const struct nsserver *s);

/* Mark ready (STATUS_REPLY.ready) and set the pid reported. */
void nsserver_set_ready(struct nsserver *s, bool ready);

/*
 * Close every consumer connection and free.  Allocations stay: pins,
 * reapers and the state file are left for the next agent.  The memory is
 * released from the last libuv close callback: run the loop afterwards.
 * A creation still in flight is killed and undone (never answered).
 */
void nsserver_free(struct nsserver *s);

/*
 * Reap a child pid if it belongs to the provider (helpers, reapers).
 * Reapers are orphans of the creation helper, so they are children of
 * the nearest child subreaper: the agent if it is one, else the
 * supervisor.  Either way the provider copes (kill via pidfd, ESRCH ok).
 */
bool nsserver_reap(struct nsserver *s, pid_t pid, int status);

#endif
