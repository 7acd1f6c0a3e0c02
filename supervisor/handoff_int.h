/*
 * handoff_int: what the two halves of the handoff module share, and no
 * one else: handoff.c (the object, its event sources, timers, spawn and
 * dispatch) and handoff_table.c (the states x events table and its
 * actions).  Not a public API.
 */
#ifndef BATON_HANDOFF_INT_H
#define BATON_HANDOFF_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "proto/msg.h"
#include "supervisor/agentcmd.h"
#include "supervisor/handoff.h"
#include "supervisor/journal.h"

struct conn;
struct procwatch;

#define HELLO_READ_MS		5000
#define LIVENESS_MS		10000

enum hstate {
	H_O_HELLO,	/* connected to O, waiting for its HELLO */
	H_N_HELLO,	/* N spawned, waiting for its HELLO */
	H_DRAIN,	/* PREPARE sent, waiting for DRAINED */
	H_SEAL,		/* SEAL_REQUEST sent, waiting for SEAL_COMPLETE */
	H_BEGIN,	/* BEGIN sent, waiting for READY */
	H_COMMIT,	/* COMMIT sent, waiting for O to exit */
	H_KILL_N,	/* aborting: waiting for N to exit */
	H_RESUME,	/* RESUME_AFTER_ABORT sent, waiting for RESUMED */
	H_O_LOST,	/* O's connection closed in drain/seal: dead or alive? */
	H_DONE,
	H_NSTATES
};

enum hevent {
	EV_O_HELLO, EV_N_HELLO, EV_DRAINED, EV_SEAL_COMPLETE, EV_SEAL_FAILED,
	EV_READY, EV_RESUMED,
	EV_ALIVE,	/* HEARTBEAT, SEAL_PROGRESS: liveness only */
	EV_O_EOF, EV_O_EXIT, EV_N_EOF, EV_N_EXIT,
	EV_TIMEOUT,
	EV_BAD,		/* unexpected, wrong id/pid, ERROR from a peer */
	EV_NEVENTS
};

struct handoff {
	struct handoff_env env;		/* the owner's, borrowed */
	enum hstate st;
	char id[40];
	struct handoff_params p;
	char binary[PATH_MAX];
	const char *args[AGENT_MAX_ARGS];
	const char *env_kv[AGENT_MAX_ENV];
	char *strs;			/* copies of args/env */

	struct conn *o, *n;
	pid_t o_pid, n_pid;
	struct procwatch *n_watch, *o_watch;
	bool o_alive, n_alive, promoted;
	bool forward;			/* deadline passed, N holds the lock */
	bool o_moves;			/* O can move its connections */
	int xfer_o;			/* O's end of the move channel, or -1 */
	enum hstate lost_in;		/* where O's EOF came, for H_O_LOST */

	uint64_t t0, deadline_at, phase_at, live_at, t_phase;
	uv_timer_t timer;

	uint64_t seal_seq;
	uint8_t seal_digest[64];
	uint32_t seal_len;

	const struct msg *cur;		/* the frame being handled */
	struct journal_rec jr;
	struct handoff_result res;
};

typedef enum hstate (*action_fn)(struct handoff *h);

/* handoff_table.c: the table (names: handoff_state_name() and co.). */
extern const action_fn handoff_cells[H_NSTATES][EV_NEVENTS];

/*
 * handoff.c.  Test mode (handoff_test_step(), tests/unit/handoff_hook.h):
 * while handoff_ht_bits is set, the actions record what they would do
 * (HT_* bits) instead of sending, spawning, signalling, journaling or
 * arming timers.
 */
extern unsigned *handoff_ht_bits;
#define HT(bit) (*handoff_ht_bits |= (bit))
#define HT_HELLO_ACK	(1u << 0)
#define HT_SPAWN_N	(1u << 1)
#define HT_PREPARE	(1u << 2)
#define HT_SEAL		(1u << 3)
#define HT_BEGIN	(1u << 4)
#define HT_PROMOTE	(1u << 5)
#define HT_COMMIT	(1u << 6)
#define HT_ABORT_N	(1u << 7)
#define HT_KILL_N	(1u << 8)
#define HT_RESUME	(1u << 9)
#define HT_KILL_O	(1u << 10)
#define HT_COMMITTED	(1u << 11)
#define HT_ROLLED_BACK	(1u << 12)

/* Fire the timer at the earlier of the phase deadline and liveness. */
void handoff_schedule(struct handoff *h, uint64_t now);
/* Wait at most phase_ms for the phase; liveness resets on every frame. */
void handoff_arm(struct handoff *h, uint64_t phase_ms, bool liveness);
/* Close O's end of the connection-move channel if still held. */
void handoff_close_xfer(struct handoff *h);
/* Spawn the successor N with its end of a socketpair; 0 or -errno. */
int handoff_spawn(struct handoff *h);

#endif
