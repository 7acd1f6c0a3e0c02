/*
 * connxfer: the agent's two ends of moving client connections across a
 * handoff (docs/PROTOCOL.md, "Moving connections").
 *
 * The incumbent, at the seal, takes its parked connections out of the
 * namespace server, sends them to the successor on the channel the
 * supervisor gave it with PREPARE_HANDOFF, and keeps its own copies
 * until it knows who serves them.  The successor receives them while it
 * waits for BEGIN and serves them once it holds the lock and has counted
 * its generation.
 *
 * Who serves a moved connection: the process that holds the data-dir
 * lock, and of those only one that may: a successor serves them only
 * after its generation bump is durable; an incumbent that got the lock
 * back serves its copies only when the generation on disk is still the
 * one it sealed (no successor served), and closes them otherwise.
 */
#ifndef BATON_CONNXFER_H
#define BATON_CONNXFER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "successor/nsserver.h"

/* Incumbent side: what was sent, kept until the handoff ends. */
struct connxfer_out {
	struct connmove_item *v;
	unsigned n;
	uint64_t generation;		/* the table's, at the seal */
	bool held;
};

/*
 * After a successful seal, before the lock is let go: export ns's parked
 * connections, send them on xfer_fd (taken, closed here) by deadline_ms.
 * The copies stay in *out.  Returns the number sent, or -errno (then the
 * copies are kept all the same and the successor gets no END).
 */
int connxfer_send(struct nsserver *ns, int xfer_fd, uint64_t deadline_ms,
    struct connxfer_out *out);

/*
 * Back to serving (resume).  relocked: the lock was let go and taken
 * again; ns is the table as reloaded.  Serves the copies again when no
 * successor can have served them, else closes them.  Empties *out.
 */
void connxfer_resume(struct nsserver *ns, bool relocked,
    struct connxfer_out *out);

/* Close the copies (commit: the successor serves them). */
void connxfer_out_free(struct connxfer_out *out);

/* Successor side: receiving on the loop while waiting for BEGIN. */
struct connxfer_in;

/* fd taken.  0 or -errno. */
int connxfer_in_start(uv_loop_t *loop, int fd, struct connxfer_in **ret);

/*
 * After the generation bump is durable and before the listener is
 * served: wait for the rest of the stream (up to deadline_ms), then
 * serve what came.  Frees in.  Returns the number served or -errno (a
 * broken or late stream: everything received is closed, nothing served).
 */
int connxfer_in_adopt(struct connxfer_in *in, struct nsserver *ns,
    uint64_t deadline_ms);

/* Free without serving (the received sockets are closed).  NULL ok. */
void connxfer_in_free(struct connxfer_in *in);

#endif
