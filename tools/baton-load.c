/*
 * baton-load: a closed-loop load generator for the namespace socket, and
 * for HTTP servers on loopback so that the same generator drives the peer
 * systems of `make bench-peers`.
 *
 * Each worker thread sends one request after another until the time is
 * up, --count requests were sent, or SIGINT/SIGTERM arrives: STATUS,
 * NS_REQUEST + ALLOCATION_ENDED pairs, NS_REQUEST alone (--mix create,
 * which leaves the allocations held), or HTTP "GET /".  A request uses a
 * new connection, or one persistent connection per worker.  Every
 * request's start, end and outcome is kept in memory and, with --trace,
 * written out at the end (one line per request, CLOCK_MONOTONIC
 * microseconds, so the times line up with baton-reload's handoff windows).
 *
 * A persistent connection that closes without an answer (an agent or a
 * server finishing its drain) is reconnected and the request retried
 * once, as the consumer library and HTTP clients do for idempotent
 * requests; such retries are counted separately.  Nothing else is
 * retried: a fresh connection that is refused or reset is a failure.
 *
 * Only unix sockets and loopback addresses are accepted as targets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/proc.h"
#include "common/nsvocab.h"
#include "common/version.h"
#include "transport/wire.h"

#define MAX_WORKERS	256
#define MAX_RECORDS	(1u << 25)	/* per worker: 32 Mi requests */
#define CONNECT_MS	5000
#define REPLY_MS	10000
#define HTTP_BUF	8192

enum mix { MIX_STATUS, MIX_NS, MIX_CREATE, MIX_HTTP };

/* Outcome of one request, as written in the trace's fourth column. */
enum outcome { OUT_OK, OUT_REFUSED, OUT_RESET, OUT_TIMEOUT, OUT_OTHER };
static const char *const outcome_names[] = {
	"ok", "refused", "reset", "timeout", "error",
};

struct rec {
	uint64_t start_us, end_us;
	uint8_t outcome;
};

struct target {
	enum mix mix;
	bool persistent;
	const char *unix_path;		/* namespace socket or --http-unix */
	struct sockaddr_storage addr;	/* --http HOST:PORT */
	socklen_t addrlen;
	const char *id_prefix;
	const char **nsv;
	unsigned nns;
};

struct worker {
	pthread_t th;
	int id;
	const struct target *t;
	uint64_t ok, failed, refused, reset, timeout, retried;
	struct rec *recs;
	size_t n, cap;
	bool truncated;
	char first_error[128];
};

static atomic_bool stop;
static atomic_uint_fast64_t issued;
static uint64_t max_count;	/* 0 = no limit */
static atomic_uint finished;	/* workers that returned */

static void
on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop, true);
}

static void
record(struct worker *w, uint64_t t0, uint64_t t1, enum outcome o)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 65536;
		struct rec *p;

		if (cap > MAX_RECORDS || !(p = realloc(w->recs,
		    cap * sizeof(*p)))) {
			w->truncated = true;
			return;
		}
		w->recs = p;
		w->cap = cap;
	}
	w->recs[w->n++] = (struct rec){ t0, t1, (uint8_t)o };
}

static enum outcome
classify(int r)
{
	switch (r) {
	case 0:
		return OUT_OK;
	case -ECONNREFUSED: case -ENOENT: case -EAGAIN:
		return OUT_REFUSED;
	case -ECONNRESET: case -EPIPE: case -PROTO_ETRUNC:
		return OUT_RESET;
	case -ETIMEDOUT:
		return OUT_TIMEOUT;
	default:
		return OUT_OTHER;
	}
}

/* --- namespace socket ---------------------------------------------- */

/* One round trip on fd; 0 or -errno/-PROTO_E*. */
static int
round_trip(int fd, const struct msg *m, uint16_t want)
{
	struct frame f;
	int r = wire_send(fd, m, NULL, 0, CONNECT_MS);

	if (r < 0)
		return r;
	r = wire_recv(fd, REPLY_MS, &f);
	if (r < 0)
		return r;
	r = f.m.type == want ? 0 : -EPROTO;
	frame_release(&f);
	return r;
}

/*
 * --hold N: N more connections, each answered once (STATUS), then left
 * idle for the run and asked again at its end: an upgrade that closes an
 * established connection shows up in held_closed.
 */
static int *
hold_open(const char *path, unsigned n)
{
	struct msg st = { .type = MSG_STATUS };
	unsigned i;
	int *fds;

	proc_raise_nofile();
	fds = calloc(n ? n : 1, sizeof(*fds));
	if (!fds)
		return NULL;
	for (i = 0; i < n; i++) {
		fds[i] = wire_connect(path, CONNECT_MS);
		if (fds[i] < 0 || round_trip(fds[i], &st, MSG_STATUS_REPLY) < 0) {
			fprintf(stderr, "baton-load: --hold: connection %u: %s\n",
			    i, fds[i] < 0 ? strerror(-fds[i]) : "no answer");
			while (i-- > 0)
				close(fds[i]);
			free(fds);
			return NULL;
		}
	}
	return fds;
}

/* Ask each held connection again; how many no longer answer. */
static unsigned
hold_check(int *fds, unsigned n)
{
	struct msg st = { .type = MSG_STATUS };
	unsigned i, closed = 0;

	for (i = 0; i < n; i++) {
		closed += round_trip(fds[i], &st, MSG_STATUS_REPLY) < 0;
		close(fds[i]);
	}
	free(fds);
	return closed;
}

static int
ns_request(struct worker *w, int *fd, uint64_t seq)
{
	const struct target *t = w->t;
	struct msg st = { .type = MSG_STATUS };
	struct msg rq = { .type = MSG_NS_REQUEST };
	struct msg end = { .type = MSG_ALLOCATION_ENDED };
	char id[128];
	int r;

	if (*fd < 0) {
		*fd = wire_connect(t->unix_path, CONNECT_MS);
		if (*fd < 0)
			return *fd;
	}
	if (t->mix == MIX_STATUS)
		return round_trip(*fd, &st, MSG_STATUS_REPLY);
	snprintf(id, sizeof(id), "%s-%d-%" PRIu64, t->id_prefix, w->id, seq);
	rq.u.NS_REQUEST.allocation_id = id;
	rq.u.NS_REQUEST.namespaces.n = t->nns;
	rq.u.NS_REQUEST.namespaces.v = t->nsv;
	r = round_trip(*fd, &rq, MSG_NS_RESPONSE);
	if (r < 0 || t->mix == MIX_CREATE)
		return r;
	if (!t->persistent) {
		close(*fd);
		*fd = wire_connect(t->unix_path, CONNECT_MS);
		if (*fd < 0)
			return *fd;
	}
	end.u.ALLOCATION_ENDED.allocation_id = id;
	return round_trip(*fd, &end, MSG_ALLOCATION_RELEASED);
}

/* --- HTTP ---------------------------------------------------------- */

static int
wait_fd(int fd, short ev, uint64_t until_ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	uint64_t now;
	int r;

	for (;;) {
		now = clock_mono_ms();
		if (now >= until_ms)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)(until_ms - now));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int
http_connect(const struct target *t)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	const struct sockaddr *sa;
	socklen_t len;
	int fd, r, one = 1, err = 0;
	socklen_t elen = sizeof(err);

	if (t->unix_path) {
		snprintf(un.sun_path, sizeof(un.sun_path), "%s", t->unix_path);
		sa = (const struct sockaddr *)&un;
		len = sizeof(un);
	} else {
		sa = (const struct sockaddr *)&t->addr;
		len = t->addrlen;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (fd < 0)
		return -errno;
	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto fail;
		}
		r = wait_fd(fd, POLLOUT, clock_mono_ms() + CONNECT_MS);
		if (r < 0)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 ||
		    err) {
			r = err ? -err : -errno;
			goto fail;
		}
	}
	return fd;
fail:
	close(fd);
	return r;
}

/*
 * GET / and read the whole answer.  0 on a 200 with its body read; on a
 * persistent connection *keep says whether the server lets us keep it.
 * -ECONNRESET when the connection ended before the first byte.
 */
static int
http_get(int fd, bool persistent, bool *keep)
{
	static const char req_close[] =
	    "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
	static const char req_keep[] =
	    "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
	const char *req = persistent ? req_keep : req_close;
	size_t reqlen = persistent ? sizeof(req_keep) - 1 :
	    sizeof(req_close) - 1, off = 0, got = 0, hdr = 0;
	uint64_t until = clock_mono_ms() + REPLY_MS;
	char buf[HTTP_BUF + 1], *p;
	long clen = -1;
	int status = 0, r;
	ssize_t n;

	*keep = false;
	while (off < reqlen) {
		n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		if ((r = wait_fd(fd, POLLOUT, until)) < 0)
			return r;
	}
	for (;;) {
		if (got == HTTP_BUF)
			return -EMSGSIZE;
		n = recv(fd, buf + got, HTTP_BUF - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if ((r = wait_fd(fd, POLLIN, until)) < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (got == 0)
				return -ECONNRESET;
			/* Connection: close without a length ends the body. */
			if (hdr && clen < 0)
				break;
			return -PROTO_ETRUNC;
		}
		got += (size_t)n;
		buf[got] = '\0';
		if (!hdr) {
			p = strstr(buf, "\r\n\r\n");
			if (!p)
				continue;
			hdr = (size_t)(p - buf) + 4;
			if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
				return -EPROTO;
			p = strcasestr(buf, "\r\ncontent-length:");
			if (p && p < buf + hdr)
				clen = strtol(p + 17, NULL, 10);
			*keep = persistent && clen >= 0 &&
			    !strcasestr(buf, "\r\nconnection: close");
		}
		if (clen >= 0 && got >= hdr + (size_t)clen)
			break;
	}
	return status == 200 ? 0 : -EPROTO;
}

static int
http_request(struct worker *w, int *fd)
{
	bool keep;
	int r;

	if (*fd < 0) {
		*fd = http_connect(w->t);
		if (*fd < 0)
			return *fd;
	}
	r = http_get(*fd, w->t->persistent, &keep);
	if (r == 0 && !keep) {
		close(*fd);
		*fd = -1;
	}
	return r;
}

/* --- workers ------------------------------------------------------- */

static int
one_request(struct worker *w, int *fd, uint64_t seq)
{
	if (w->t->mix == MIX_HTTP)
		return http_request(w, fd);
	return ns_request(w, fd, seq);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t seq = 0;
	enum outcome o;
	int fd = -1, r;
	bool reused;

	while (!atomic_load(&stop)) {
		uint64_t t0, t1;

		if (max_count && atomic_fetch_add(&issued, 1) >= max_count)
			break;
		t0 = clock_mono_us();
		reused = fd >= 0;
		r = one_request(w, &fd, seq);
		if (r < 0 && w->t->persistent && reused &&
		    classify(r) == OUT_RESET && w->t->mix != MIX_CREATE) {
			/* Drained away mid-conversation: reconnect, retry once. */
			if (fd >= 0)
				close(fd);
			fd = -1;
			w->retried++;
			r = one_request(w, &fd, seq);
		}
		t1 = clock_mono_us();
		seq++;
		o = classify(r);
		record(w, t0, t1, o);
		if (r == 0) {
			w->ok++;
		} else {
			w->failed++;
			w->refused += o == OUT_REFUSED;
			w->reset += o == OUT_RESET;
			w->timeout += o == OUT_TIMEOUT;
			if (!w->first_error[0])
				snprintf(w->first_error, sizeof(w->first_error),
				    "%s", proto_strerror(r));
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		if (!w->t->persistent && fd >= 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	atomic_fetch_add(&finished, 1);
	return NULL;
}

/* --- results ------------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct_ms(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static int
write_trace(const char *path, struct worker *ws, int nw)
{
	FILE *f = fopen(path, "we");
	size_t k;
	int i, r = 0;

	if (!f)
		return -errno;
	fprintf(f, "# start_us end_us ok outcome (CLOCK_MONOTONIC)\n");
	for (i = 0; i < nw; i++)
		for (k = 0; k < ws[i].n; k++) {
			const struct rec *c = &ws[i].recs[k];

			fprintf(f, "%" PRIu64 " %" PRIu64 " %d %s\n", c->start_us,
			    c->end_us, c->outcome == OUT_OK,
			    outcome_names[c->outcome]);
		}
	if (fflush(f) != 0 || ferror(f))
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

/* HOST:PORT or [HOST]:PORT, numeric and loopback only. */
static int
parse_http(const char *s, struct target *t)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	struct sockaddr_in *in4 = (struct sockaddr_in *)&t->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->addr;
	long port;
	size_t hl;

	if (!colon || colon == s)
		return -EINVAL;
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(&t->addr, 0, sizeof(t->addr));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
			return -EPERM;
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		t->addrlen = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return -EPERM;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		t->addrlen = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

/* "net,pid,mount" into at most 3 names (borrowed from the argument). */
static int
parse_namespaces(char *s, const char **v, unsigned *n)
{
	char *tok, *save = NULL;

	*n = 0;
	for (tok = strtok_r(s, ",", &save); tok;
	    tok = strtok_r(NULL, ",", &save)) {
		if (*n == NSV_KINDS || nsvocab_kind_parse(tok) < 0)
			return -EINVAL;
		v[(*n)++] = tok;
	}
	return *n ? 0 : -EINVAL;
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: baton-load (--socket PATH | --http HOST:PORT | --http-unix PATH)\n"
"                  [--seconds N] [--count N] [--workers N]\n"
"                  [--mix status|ns|create] [--namespaces LIST]\n"
"                  [--id-prefix STR] [--persistent] [--hold N]\n"
"                  [--trace FILE] [--json]\n"
"\n"
"Closed-loop load: each worker sends a request, waits for the answer and\n"
"sends the next, until N seconds pass (default 10; 0 = until SIGINT or\n"
"SIGTERM), --count requests were sent in total, or a signal arrives.\n"
"\n"
"  --socket PATH     a baton namespace socket; --mix chooses the request:\n"
"                    status  STATUS (default)\n"
"                    ns      NS_REQUEST + ALLOCATION_ENDED pairs (root)\n"
"                    create  NS_REQUEST only; the allocations stay held\n"
"  --http HOST:PORT  HTTP GET / on a loopback address (127.0.0.0/8, ::1)\n"
"  --http-unix PATH  HTTP GET / on a unix socket\n"
"  --namespaces L    for ns/create: comma list of net,pid,mount (net)\n"
"  --id-prefix STR   allocation id prefix (load); ids are STR-WORKER-SEQ\n"
"  --persistent      one connection per worker (HTTP keep-alive); a\n"
"                    request whose reused connection closes unanswered is\n"
"                    retried once on a new one and counted as retried\n"
"  --hold N          N more connections, answered once and kept idle for\n"
"                    the run, then asked again: held_closed counts those\n"
"                    the server closed meanwhile (--socket only)\n"
"  --workers N       concurrent clients, 1..%d (default 1)\n"
"  --trace FILE      one line per request: start_us end_us ok outcome\n"
"                    (CLOCK_MONOTONIC microseconds; outcome is ok,\n"
"                    refused, reset, timeout or error)\n"
"  --json            one JSON object instead of the readable summary\n"
"\n"
"A request's latency includes its connect.  Exit status 0 when no request\n"
"failed, 1 otherwise, 64 on a usage error.\n", MAX_WORKERS);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "http", required_argument, NULL, 'H' },
		{ "http-unix", required_argument, NULL, 'U' },
		{ "seconds", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },
		{ "mix", required_argument, NULL, 'm' },
		{ "namespaces", required_argument, NULL, 'n' },
		{ "id-prefix", required_argument, NULL, 'i' },
		{ "persistent", no_argument, NULL, 'p' },
		{ "hold", required_argument, NULL, 'o' },
		{ "trace", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct worker ws[MAX_WORKERS];
	static const char *nsv[3] = { "net" };
	struct target t = { .mix = MIX_STATUS, .id_prefix = "load",
	    .nsv = nsv, .nns = 1 };
	const char *sock = NULL, *http = NULL, *http_unix = NULL;
	const char *trace = NULL;
	int seconds = 10, nw = 1, i, c, rc = 0;
	bool json = false, mix_set = false;
	unsigned hold = 0, held_closed = 0;
	int *held = NULL;
	uint64_t ok = 0, failed = 0, refused = 0, reset = 0, timeout = 0;
	uint64_t retried = 0, t0, el;
	uint64_t *lat = NULL;
	size_t n = 0, k;
	bool truncated = false;
	double rps;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'H': http = optarg; break;
		case 'U': http_unix = optarg; break;
		case 't': seconds = atoi(optarg); break;
		case 'c': max_count = strtoull(optarg, NULL, 10); break;
		case 'w': nw = atoi(optarg); break;
		case 'm':
			mix_set = true;
			if (strcmp(optarg, "ns") == 0)
				t.mix = MIX_NS;
			else if (strcmp(optarg, "create") == 0)
				t.mix = MIX_CREATE;
			else if (strcmp(optarg, "status") != 0) {
				usage(stderr);
				return 64;
			}
			break;
		case 'n':
			if (parse_namespaces(optarg, nsv, &t.nns) < 0) {
				fprintf(stderr, "baton-load: --namespaces takes a "
				    "comma list of net, pid, mount\n");
				return 64;
			}
			break;
		case 'i': t.id_prefix = optarg; break;
		case 'p': t.persistent = true; break;
		case 'o': hold = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'T': trace = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("baton-load %s\n", baton_version); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (!!sock + !!http + !!http_unix != 1 || nw < 1 ||
	    nw > MAX_WORKERS || seconds < 0 || seconds > 86400 ||
	    (mix_set && !sock)) {
		usage(stderr);
		return 64;
	}
	if (http) {
		int r = parse_http(http, &t);

		if (r < 0) {
			fprintf(stderr, "baton-load: --http %s: %s\n", http,
			    r == -EPERM ? "not a loopback address" :
			    "expected a numeric HOST:PORT");
			return 64;
		}
		t.mix = MIX_HTTP;
	} else if (http_unix) {
		t.mix = MIX_HTTP;
		t.unix_path = http_unix;
	} else {
		t.unix_path = sock;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (hold > 0 && (!sock || hold > 100000)) {
		usage(stderr);
		return 64;
	}
	if (hold > 0 && !(held = hold_open(sock, hold)))
		return 69;
	t0 = clock_mono_ms();
	for (i = 0; i < nw; i++) {
		ws[i] = (struct worker){ .id = i, .t = &t };
		if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
			fprintf(stderr, "baton-load: cannot start worker %d\n", i);
			atomic_store(&stop, true);
			nw = i;
			rc = 69;
			break;
		}
	}
	while (!atomic_load(&stop) &&
	    (seconds == 0 || clock_mono_ms() - t0 < (uint64_t)seconds * 1000)) {
		usleep(10000);
		/* --count: every worker has sent its share and returned. */
		if (atomic_load(&finished) == (unsigned)nw)
			break;
	}
	atomic_store(&stop, true);
	for (i = 0; i < nw; i++)
		pthread_join(ws[i].th, NULL);
	el = clock_mono_ms() - t0;
	if (held)
		held_closed = hold_check(held, hold);
	for (i = 0; i < nw; i++) {
		ok += ws[i].ok;
		failed += ws[i].failed;
		refused += ws[i].refused;
		reset += ws[i].reset;
		timeout += ws[i].timeout;
		retried += ws[i].retried;
		n += ws[i].n;
		truncated |= ws[i].truncated;
	}
	if (trace) {
		int r = write_trace(trace, ws, nw);

		if (r < 0) {
			fprintf(stderr, "baton-load: write %s: %s\n", trace,
			    strerror(-r));
			rc = 73;
		}
	}
	lat = malloc((n ? n : 1) * sizeof(*lat));
	n = 0;
	for (i = 0; i < nw; i++) {
		for (k = 0; lat && k < ws[i].n; k++)
			if (ws[i].recs[k].outcome == OUT_OK)
				lat[n++] = ws[i].recs[k].end_us -
				    ws[i].recs[k].start_us;
		free(ws[i].recs);
	}
	if (lat)
		qsort(lat, n, sizeof(*lat), cmp_u64);
	rps = el ? (double)ok * 1000.0 / (double)el : 0.0;
	if (json) {
		printf("{\"seconds\":%.3f,\"workers\":%d,\"persistent\":%s,"
		    "\"requests_ok\":%" PRIu64 ",\"requests_failed\":%" PRIu64
		    ",\"refused\":%" PRIu64 ",\"reset\":%" PRIu64
		    ",\"timeout\":%" PRIu64 ",\"retried\":%" PRIu64
		    ",\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
		    "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"trace_truncated\":%s,"
		    "\"held\":%u,\"held_closed\":%u}\n",
		    (double)el / 1000.0, nw, t.persistent ? "true" : "false",
		    ok, failed, refused, reset, timeout, retried, rps,
		    pct_ms(lat, n, 0.5), pct_ms(lat, n, 0.99),
		    pct_ms(lat, n, 0.999), n ? (double)lat[n - 1] / 1000.0 : 0.0,
		    truncated ? "true" : "false", hold, held_closed);
	} else {
		printf("requests  %" PRIu64 " answered, %" PRIu64 " failed "
		    "(%" PRIu64 " refused, %" PRIu64 " reset, %" PRIu64
		    " timed out), %" PRIu64 " retried after drain, %.1f s, "
		    "%.0f req/s\n", ok, failed, refused, reset, timeout,
		    retried, (double)el / 1000.0, rps);
		printf("latency   p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max "
		    "%.3f ms\n", pct_ms(lat, n, 0.5), pct_ms(lat, n, 0.99),
		    pct_ms(lat, n, 0.999), n ? (double)lat[n - 1] / 1000.0 : 0.0);
		if (hold)
			printf("held      %u connections, %u closed by the "
			    "server\n", hold, held_closed);
		for (i = 0; i < nw; i++)
			if (ws[i].first_error[0]) {
				printf("first error (worker %d): %s\n", i,
				    ws[i].first_error);
				break;
			}
		if (truncated)
			printf("note: more than %u requests in a worker; the "
			    "rest are counted but not traced\n", MAX_RECORDS);
	}
	free(lat);
	if (rc)
		return rc;
	return failed || held_closed ? 1 : 0;
}
