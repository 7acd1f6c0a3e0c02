/*
 * connxfer: moving client connections from incumbent to successor
 * (connxfer.h has the rule of who serves them).
 *
 * Invariants:
 * - no connection is read by both processes: the incumbent stopped
 *   reading at the drain and reads its copies again only after a resume
 *   in which no successor can have served them (lock never let go, or the
 *   generation on disk unchanged); the successor reads only after END,
 *   with the lock held and its generation durable;
 * - every fd is closed on every path: a refused stream closes what it
 *   brought, the incumbent's copies close at commit, exit or resume.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "crashpoints/crashpoint.h"
#include "proto/frame.h"
#include "successor/connxfer.h"

struct connxfer_in {
	uv_poll_t poll;
	int fd;
	struct connmove_rx *rx;
	int state;			/* 0 receiving, 1 END, <0 refused */
};

int
connxfer_send(struct nsserver *ns, int xfer_fd, uint64_t deadline_ms,
    struct connxfer_out *out)
{
	unsigned closed = 0;
	uint64_t t0 = clock_mono_ms();
	int r;

	connxfer_out_free(out);
	out->generation = nsserver_generation(ns);
	out->held = true;
	r = nsserver_export_conns(ns, &out->v, &out->n, &closed);
	if (r == 0)
		r = connmove_send(xfer_fd, out->v, out->n, deadline_ms);
	close(xfer_fd);
	if (r < 0) {
		log_warn("handoff.conns_unsent", proto_strerror(r),
		    "conns=%u", out->n);
		return r;
	}
	log_info("handoff.conns_sent", NULL, "conns=%u not_moved=%u ms=%" PRIu64,
	    out->n, closed, clock_mono_ms() - t0);
	CRASHPOINT(o_after_conns_sent);
	return (int)out->n;
}

void
connxfer_out_free(struct connxfer_out *out)
{
	connmove_items_free(out->v, out->n);
	out->v = NULL;
	out->n = 0;
	out->held = false;
}

void
connxfer_resume(struct nsserver *ns, bool relocked, struct connxfer_out *out)
{
	uint64_t gen;
	unsigned k;

	if (!out->held)
		return;
	gen = nsserver_generation(ns);
	if (relocked && gen != out->generation) {
		/* A successor served them (and may still): not ours. */
		log_warn("handoff.conns_left", "a successor served the moved "
		    "connections; closing our copies", "conns=%u "
		    "generation_sealed=%" PRIu64 " generation_now=%" PRIu64,
		    out->n, out->generation, gen);
		connxfer_out_free(out);
		return;
	}
	k = nsserver_adopt_conns(ns, out->v, out->n);
	log_info("handoff.conns_kept", "serving the connections again",
	    "conns=%u", k);
	free(out->v);
	out->v = NULL;
	out->n = 0;
	out->held = false;
}

static void
in_poll_cb(uv_poll_t *p, int status, int events)
{
	struct connxfer_in *in = p->data;

	(void)events;
	in->state = status < 0 ? status : connmove_rx_read(in->rx);
	if (in->state != 0)
		uv_poll_stop(p);
}

int
connxfer_in_start(uv_loop_t *loop, int fd, struct connxfer_in **ret)
{
	struct connxfer_in *in;
	int r;

	in = calloc(1, sizeof(*in));
	if (!in) {
		close(fd);
		return -ENOMEM;
	}
	in->fd = fd;
	r = connmove_rx_new(fd, &in->rx);
	if (r == 0)
		r = uv_poll_init(loop, &in->poll, fd);
	if (r < 0) {
		connmove_rx_free(in->rx);
		close(fd);
		free(in);
		return r;
	}
	in->poll.data = in;
	(void)uv_poll_start(&in->poll, UV_READABLE, in_poll_cb);
	*ret = in;
	return 0;
}

static void
in_closed_cb(uv_handle_t *h)
{
	struct connxfer_in *in = h->data;

	connmove_rx_free(in->rx);
	close(in->fd);
	free(in);
}

void
connxfer_in_free(struct connxfer_in *in)
{
	if (in)
		uv_close((uv_handle_t *)&in->poll, in_closed_cb);
}

int
connxfer_in_adopt(struct connxfer_in *in, struct nsserver *ns,
    uint64_t deadline_ms)
{
	struct connmove_item *v = NULL;
	unsigned n, k;
	int r = in->state;

	uv_poll_stop(&in->poll);
	if (r == 0)
		r = connmove_rx_finish(in->rx, deadline_ms);
	if (r < 0) {
		log_warn("successor.conns_refused", proto_strerror(r),
		    "moved connections are not served");
		connxfer_in_free(in);
		return r;
	}
	n = connmove_rx_take(in->rx, &v);
	connxfer_in_free(in);
	k = nsserver_adopt_conns(ns, v, n);
	free(v);
	CRASHPOINT(n_after_conns_adopted);
	return (int)k;
}
