/*
 * connmove: the channel on which an incumbent hands its open client
 * connections to its successor (docs/PROTOCOL.md, "Moving connections").
 *
 * A stream of records on a unix socket the supervisor gave both agents:
 *
 *   MOVE  16-byte head "BTNM" u16 version u16 flags u32 unread u32 unsent,
 *         the socket attached (SCM_RIGHTS) to the head's first byte, then
 *         the unread bytes and the unsent bytes (struct conn_moved)
 *   END   16-byte head "BTNE" u16 version u16 0 u32 count u32 0
 *
 * Numbers are big-endian like the frame header.  The receiver owns
 * nothing it has not seen END for: a stream that ends, breaks a limit or
 * goes wrong before END is refused whole (every fd received is closed),
 * so a connection is never served by both processes on a half transfer.
 */
#ifndef BATON_CONNMOVE_H
#define BATON_CONNMOVE_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/conn.h"

#define CONNMOVE_F_SUBSCRIBER	0x1u	/* the connection subscribed */
#define CONNMOVE_MAX_CONNS	65536u
#define CONNMOVE_MAX_UNSENT	(4u << 20)

struct connmove_item {
	struct conn_moved c;
	unsigned flags;			/* CONNMOVE_F_* */
};

/* Close and free n items (their sockets and bytes), then free v. */
void connmove_items_free(struct connmove_item *v, unsigned n);

/*
 * Send n items then END on sock, blocking up to deadline_ms (monotonic,
 * clock_mono_ms()).  Items are borrowed (the sender keeps its copies).
 * 0 or -errno (-ETIMEDOUT when the receiver does not read in time).
 */
int connmove_send(int sock, const struct connmove_item *v, unsigned n,
    uint64_t deadline_ms);

struct connmove_rx;

/* Start receiving on sock (borrowed, made non-blocking).  0 or -errno. */
int connmove_rx_new(int sock, struct connmove_rx **ret);

/*
 * Read what the socket holds now, never blocking.  1 once END has come
 * (and the count matched), 0 when more is to come, -errno when the
 * stream is refused (EOF before END: -EPIPE; a bad head or limit:
 * -EBADMSG); after a refusal every item received so far is closed.
 */
int connmove_rx_read(struct connmove_rx *rx);

/*
 * As connmove_rx_read, but wait (poll) until END, a refusal or
 * deadline_ms (monotonic): -ETIMEDOUT then, and the items are closed.
 */
int connmove_rx_finish(struct connmove_rx *rx, uint64_t deadline_ms);

/*
 * After END: the items, owned by the caller (free with
 * connmove_items_free); rx keeps none.  Returns the count.
 */
unsigned connmove_rx_take(struct connmove_rx *rx, struct connmove_item **ret);

/* Free, closing every item not taken.  NULL is fine. */
void connmove_rx_free(struct connmove_rx *rx);

#endif
