/*
 * agent_int: what the three parts of baton-agent share (agent.c:
 * lifecycle, cold start, control socket; incumbent.c and succrole.c: the
 * two handoff roles, each a table of states x events).  Not a public
 * interface: only the agent's own files and tests include it.
 *
 * One struct agent per process, owned by agent_run() (on its stack); the
 * role files borrow it in every callback.  cur_* hold the input of the
 * event being dispatched and are valid only during that dispatch.
 */
#ifndef BATON_AGENT_INT_H
#define BATON_AGENT_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/listenfds.h"
#include "successor/agent.h"
#include "successor/connxfer.h"

struct acceptor;
struct acceptor_peer;
struct conn;
struct dirlock;
struct msg;
struct nsserver;

#define AGENT_HEARTBEAT_MS	2000
#define AGENT_RELOCK_MS		2000

/* The incumbent's states: its supervisor session (incumbent.c). */
enum ostate {
	OS_NONE,	/* no supervisor session */
	OS_HELLO_SENT,	/* HELLO sent, waiting for HELLO_ACK */
	OS_IDLE,	/* session open, serving */
	OS_DRAINING,	/* PREPARE received, drain running */
	OS_DRAINED,	/* DRAINED sent */
	OS_SEALED,	/* lock released, SEAL_COMPLETE sent */
	OS_NSTATES
};

/* The incumbent's events, in the order of its table's columns. */
enum oevent {
	OE_HELLO_ACK,		/* frames from the supervisor, by type */
	OE_GET_LISTENERS,
	OE_PREPARE,
	OE_SEAL_REQUEST,
	OE_COMMIT,
	OE_ABORT,
	OE_RESUME_REQUEST,	/* RESUME_AFTER_ABORT */
	OE_HEARTBEAT,
	OE_OTHER_FRAME,		/* any other type */
	OE_EOF,			/* the session closed (a->sess already NULL) */
	OE_WATCHDOG,		/* wd_timer: deadline + slack passed */
	OE_TICK,		/* hb_timer */
	OE_DRAINED,		/* nsserver's drain finished (cur_remaining) */
	OE_SIGNAL,		/* SIGTERM/SIGINT, first one */
	OE_ACCEPT,		/* a supervisor connected (cur_peer) */
	OE_NEVENTS
};

/* The successor's states: start-up under a supervisor (succrole.c). */
enum nstate {
	NST_OFF,	/* not a successor, or done (READY sent or failed) */
	NST_HELLO_SENT,	/* HELLO sent, waiting for HELLO_ACK */
	NST_WAIT_BEGIN,	/* control socket bound aside, waiting for BEGIN */
	NST_NSTATES
};

enum nevent {
	NE_HELLO_ACK,		/* frames from the supervisor, by type */
	NE_BEGIN,
	NE_ABORT,
	NE_HEARTBEAT,
	NE_OTHER_FRAME,
	NE_EOF,			/* the socketpair closed (a->up already NULL) */
	NE_TIMEOUT,		/* n_timer: no HELLO_ACK / BEGIN in time */
	NE_TICK,		/* hb_timer */
	NE_SIGNAL,		/* SIGTERM/SIGINT, first one */
	NE_NEVENTS
};

struct agent {
	const struct agent_config *cfg;
	uv_loop_t *loop;
	char build_id[64];

	struct listenfd lfds[LISTENFDS_MAX];
	unsigned nlfds;
	int ns_fd;		/* the namespace listener */
	int own_ns_fd;		/* ns listener we bound ourselves, or -1 */

	struct dirlock *lock;
	struct nsserver *ns;

	int ctl_fd;		/* control listener, -1 until bound */
	struct acceptor *ctl_acc; /* replaced when the path is reclaimed */
	char ctl_tmp[PATH_MAX];
	ino_t ctl_ino;		/* inode of our socket at the control path */

	struct conn *sess;	/* incumbent: supervisor session */
	enum ostate ost;
	char hid[40];

	int xfer_fd;		/* incumbent: channel to the successor */
	struct connxfer_out xout; /* incumbent: connections sent, copies */
	struct connxfer_in *xin; /* successor: connections coming */
	struct nsserver_preload *pre; /* successor: the table, read early */

	struct conn *up;	/* successor: socketpair to the supervisor */
	enum nstate nst;
	uint64_t begin_wait_ms;

	/* The event being dispatched: its frame, peer or drain count. */
	const struct msg *cur;
	struct frame *cur_frame;	/* ...and its fds, to take */
	const struct acceptor_peer *cur_peer;
	unsigned cur_remaining;
	int cur_err;			/* a closed connection's error */
	/* Events raised by an action's own calls, run after it (FIFO). */
	bool stepping;
	unsigned ndeferred;
	enum oevent deferred[4];

	uv_timer_t hb_timer, wd_timer, n_timer;
	uv_signal_t sig_term, sig_int, sig_chld;

	bool stopping;
	int exit_code;
};

/*
 * A role's table, for the step log and tests/unit/test_agent_table.c:
 * names of states and events, and of the action in each cell
 * (action_name() returns NULL out of range).
 */
struct agent_table {
	const char *role;
	unsigned nstates, nevents;
	const char *const *states;	/* nstates names */
	const char *const *events;	/* nevents names */
	const char *(*action_name)(unsigned st, unsigned ev);
};
extern const struct agent_table agent_incumbent_table;
extern const struct agent_table agent_successor_table;

/* ---- agent.c: shared helpers ---- */
const char *agent_hid(const struct agent *a);	/* handoff id or "-" */
int agent_write_ready(const struct agent *a);
void agent_send(struct conn *c, const struct msg *m);	/* logs a failure */
void agent_send_hello(const struct agent *a, struct conn *c, const char *role);
void agent_hb_cb(uv_timer_t *t);	/* hb_timer: the role's OE/NE_TICK */
void agent_exit(struct agent *a, int code);
/* Stop serving: close the control socket, drain clients, then exit 0. */
void agent_stop(struct agent *a);
/* The table (and the head start, a->pre); sealed_digest: nsserver_config. */
int agent_open_ns(struct agent *a, const uint8_t *sealed_digest);
int agent_reload_ns(struct agent *a);
int agent_find_ns_listener(struct agent *a);
int agent_start_control(struct agent *a);
void agent_stop_control(struct agent *a);
void agent_reclaim_paths(struct agent *a);

/* ---- incumbent.c ---- */
/* Dispatch one event to the incumbent table (a->cur* set as it needs). */
void incumbent_event(struct agent *a, enum oevent ev);
/* The control acceptor's callback. */
void incumbent_accept_cb(void *data, const struct acceptor_peer *p);

/* ---- succrole.c ---- */
/* HANDOFF_SOCK_FD: HELLO and wait for BEGIN; returns 0 or an exit code. */
/*
 * A standby (HANDOFF_STANDBY, proto/standby.h): block until the
 * supervisor's start record, which sets HANDOFF_DEADLINE_MS.  true to go
 * on as a successor (also when not a standby); false with the exit code
 * (0: dismissed).  Runs before the loop exists.
 */
bool successor_standby_wait(int *ret_exit);
int successor_start(struct agent *a);
void successor_event(struct agent *a, enum nevent ev);

#endif
