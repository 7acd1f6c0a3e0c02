/*
 * baton-load: a closed-loop load generator for the namespace socket.
 * Each worker sends STATUS (or NS_REQUEST + ALLOCATION_ENDED pairs) one
 * after another, on a new connection per request or on one persistent
 * connection, records every request's latency and outcome, and prints a
 * summary (and --json) when the time is up or on SIGINT/SIGTERM.
 *
 * A persistent connection that closes without an answer (an agent
 * finishing its drain) is reconnected and the request retried once, as
 * the consumer library does; such retries are counted separately.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "proto/wire.h"

#define MAX_WORKERS 64
#define MAX_SAMPLES (1u << 22)

static atomic_bool stop;

struct worker {
	pthread_t th;
	int id;
	const char *sock;
	bool persistent, ns_mix;
	uint64_t ok, failed, refused, reset, retried;
	uint32_t *lat_us;	/* one per request */
	size_t n, cap;
	char first_error[128];
};

static void
on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop, true);
}

static void
record(struct worker *w, uint64_t us)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 65536;
		uint32_t *p;

		if (cap > MAX_SAMPLES)
			return;
		p = realloc(w->lat_us, cap * sizeof(*p));
		if (!p)
			return;
		w->lat_us = p;
		w->cap = cap;
	}
	w->lat_us[w->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* One round trip on fd; 0 or -errno/-PROTO_E*. */
static int
round_trip(int fd, const struct msg *m, uint16_t want)
{
	struct frame f;
	int r = wire_send(fd, m, NULL, 0, 5000);

	if (r < 0)
		return r;
	r = wire_recv(fd, 10000, &f);
	if (r < 0)
		return r;
	r = f.m.type == want ? 0 : -EPROTO;
	frame_release(&f);
	return r;
}

static int
one_request(struct worker *w, int *fd, uint64_t seq)
{
	struct msg st = { .type = MSG_STATUS };
	struct msg rq = { .type = MSG_NS_REQUEST };
	struct msg end = { .type = MSG_ALLOCATION_ENDED };
	const char *nsv[] = { "net" };
	char id[64];
	int r;

	if (*fd < 0) {
		*fd = wire_connect(w->sock, 5000);
		if (*fd < 0)
			return *fd;
	}
	if (!w->ns_mix)
		return round_trip(*fd, &st, MSG_STATUS_REPLY);
	snprintf(id, sizeof(id), "load-%d-%" PRIu64, w->id, seq);
	rq.u.NS_REQUEST.allocation_id = id;
	rq.u.NS_REQUEST.namespaces.n = 1;
	rq.u.NS_REQUEST.namespaces.v = nsv;
	r = round_trip(*fd, &rq, MSG_NS_RESPONSE);
	if (r < 0)
		return r;
	if (!w->persistent) {
		close(*fd);
		*fd = wire_connect(w->sock, 5000);
		if (*fd < 0)
			return *fd;
	}
	end.u.ALLOCATION_ENDED.allocation_id = id;
	return round_trip(*fd, &end, MSG_ALLOCATION_RELEASED);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t seq = 0;
	int fd = -1, r;

	while (!atomic_load(&stop)) {
		uint64_t t0 = clock_mono_us();

		r = one_request(w, &fd, seq);
		if (r < 0 && w->persistent && fd >= 0 &&
		    (r == -ECONNRESET || r == -EPIPE || r == -PROTO_ETRUNC)) {
			/* Drained away mid-conversation: reconnect, retry once. */
			close(fd);
			fd = -1;
			w->retried++;
			r = one_request(w, &fd, seq);
		}
		seq++;
		if (r == 0) {
			w->ok++;
			record(w, clock_mono_us() - t0);
		} else {
			w->failed++;
			if (r == -ECONNREFUSED || r == -ENOENT || r == -EAGAIN)
				w->refused++;
			if (r == -ECONNRESET || r == -EPIPE)
				w->reset++;
			if (!w->first_error[0])
				snprintf(w->first_error, sizeof(w->first_error),
				    "%s", proto_strerror(r));
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		if (!w->persistent && fd >= 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: baton-load --socket PATH [--seconds N] [--workers N]\n"
"                  [--mix status|ns] [--persistent] [--json]\n"
"\n"
"Closed-loop load on a baton namespace socket until N seconds pass (default\n"
"10; 0 = until SIGINT/SIGTERM).  Prints requests answered and failed and\n"
"the latency distribution.  --mix ns sends NS_REQUEST{net} +\n"
"ALLOCATION_ENDED pairs (needs root); --persistent keeps one connection\n"
"per worker.  Exit status 0 when no request failed, 1 otherwise.\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ "workers", required_argument, NULL, 'w' },
		{ "mix", required_argument, NULL, 'm' },
		{ "persistent", no_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct worker ws[MAX_WORKERS];
	const char *sock = NULL;
	int seconds = 10, nw = 1, i, c;
	bool persistent = false, ns_mix = false, json = false;
	uint64_t ok = 0, failed = 0, refused = 0, reset = 0, retried = 0, t0, el;
	uint32_t *all;
	size_t n = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 't': seconds = atoi(optarg); break;
		case 'w': nw = atoi(optarg); break;
		case 'm':
			if (strcmp(optarg, "ns") == 0)
				ns_mix = true;
			else if (strcmp(optarg, "status") != 0) {
				usage(stderr);
				return 64;
			}
			break;
		case 'p': persistent = true; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (!sock || nw < 1 || nw > MAX_WORKERS || seconds < 0) {
		usage(stderr);
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t0 = clock_mono_ms();
	for (i = 0; i < nw; i++) {
		ws[i] = (struct worker){ .id = i, .sock = sock,
		    .persistent = persistent, .ns_mix = ns_mix };
		pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
	}
	while (!atomic_load(&stop) &&
	    (seconds == 0 || clock_mono_ms() - t0 < (uint64_t)seconds * 1000))
		usleep(10000);
	atomic_store(&stop, true);
	for (i = 0; i < nw; i++) {
		pthread_join(ws[i].th, NULL);
		ok += ws[i].ok;
		failed += ws[i].failed;
		refused += ws[i].refused;
		reset += ws[i].reset;
		retried += ws[i].retried;
		n += ws[i].n;
	}
	el = clock_mono_ms() - t0;
	all = malloc((n ? n : 1) * sizeof(*all));
	n = 0;
	for (i = 0; i < nw && all; i++) {
		memcpy(all + n, ws[i].lat_us, ws[i].n * sizeof(*all));
		n += ws[i].n;
		free(ws[i].lat_us);
	}
	if (all)
		qsort(all, n, sizeof(*all), cmp_u32);
	if (json) {
		printf("{\"seconds\":%.3f,\"requests_ok\":%" PRIu64
		    ",\"requests_failed\":%" PRIu64 ",\"refused\":%" PRIu64
		    ",\"reset\":%" PRIu64 ",\"retried\":%" PRIu64
		    ",\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
		    "\"p999_ms\":%.3f,\"max_ms\":%.3f}\n", (double)el / 1000.0,
		    ok, failed, refused, reset, retried,
		    el ? (double)ok * 1000.0 / (double)el : 0.0,
		    pct(all, n, 0.5), pct(all, n, 0.99), pct(all, n, 0.999),
		    n ? (double)all[n - 1] / 1000.0 : 0.0);
	} else {
		printf("requests  %" PRIu64 " answered, %" PRIu64 " failed "
		    "(%" PRIu64 " refused, %" PRIu64 " reset), %" PRIu64
		    " retried after drain, %.1f s, %.0f req/s\n", ok, failed,
		    refused, reset, retried, (double)el / 1000.0,
		    el ? (double)ok * 1000.0 / (double)el : 0.0);
		printf("latency   p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max "
		    "%.3f ms\n", pct(all, n, 0.5), pct(all, n, 0.99),
		    pct(all, n, 0.999), n ? (double)all[n - 1] / 1000.0 : 0.0);
		for (i = 0; i < nw; i++)
			if (ws[i].first_error[0]) {
				printf("first error (worker %d): %s\n", i,
				    ws[i].first_error);
				break;
			}
	}
	free(all);
	return failed ? 1 : 0;
}
