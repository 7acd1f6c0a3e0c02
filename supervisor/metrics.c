/*
 * metrics: counters and the supervisor's state come from its view
 * callback (metrics.h); gauges and histograms live here.  The file is written to a temporary name and renamed, so a
 * collector never reads half a file; it is 0644 in a directory made 0755
 * (main.c), as node_exporter's textfile collector needs.
 *
 * The agent's own figures (allocations, generation, ready) come from a
 * STATUS probe on the namespace socket every BATON_METRICS_INTERVAL_MS
 * (default 15000), non-blocking on the loop: a connect that would block
 * or an answer that does not come before the next tick counts as a
 * failed probe, never as a stall.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "transport/conn.h"
#include "common/log.h"
#include "common/version.h"
#include "supervisor/handoff.h"
#include "supervisor/metrics.h"

#define PROBE_MS_DEFAULT 15000
#define PROBE_MS_MIN 100

static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1, 2.5, 5, 10, 30, 60 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct histo {
	uint64_t le[NBUCKETS];
	uint64_t count;
	double sum;
};

enum {
#define COUNTER(id, name, help)
#define GAUGE(id, name, help)
#define HISTOGRAM(id, name, help) H_##id,
#include "supervisor/metrics.def"
#undef COUNTER
#undef GAUGE
#undef HISTOGRAM
	H_COUNT
};

static struct histo histos[H_COUNT];

/* What the last probe and the last handoff said; NaN: not known. */
static struct {
	double allocations, generation, ready, probe_ok;
	double last_committed, last_duration, last_end;
} known = { NAN, NAN, NAN, NAN, NAN, NAN, NAN };

static uv_timer_t probe_timer;
static struct conn *probe_conn;
static bool probing;
static struct metrics_opts opt;

typedef const struct metrics_view view_t;
static double gauge_up(view_t *v) { (void)v; return 1; }
static double gauge_agent_up(view_t *v) { return v->agent_up; }
static double gauge_agent_pid(view_t *v) { return v->agent_pid; }
static double gauge_restarts_in_row(view_t *v) { return v->restarts_in_row; }
static double gauge_allocations(view_t *v) { (void)v; return known.allocations; }
static double gauge_agent_generation(view_t *v) { (void)v; return known.generation; }
static double gauge_agent_ready(view_t *v) { (void)v; return known.ready; }
static double gauge_agent_probe_ok(view_t *v) { (void)v; return known.probe_ok; }
static double gauge_last_committed(view_t *v) { (void)v; return known.last_committed; }
static double gauge_last_duration(view_t *v) { (void)v; return known.last_duration; }
static double gauge_last_end(view_t *v) { (void)v; return known.last_end; }

static void
get_view(struct metrics_view *v)
{
	memset(v, 0, sizeof(*v));
	if (opt.view)
		opt.view(opt.data, v);
}

void
metrics_init(const struct metrics_opts *o)
{
	opt = *o;
}

static void
probe_close_cb(struct conn *c, int err, void *data)
{
	(void)err;
	(void)data;
	if (c != probe_conn)
		return;
	probe_conn = NULL;
	if (probing) {		/* closed before the answer */
		probing = false;
		known.probe_ok = 0;
		metrics_write();
	}
}

static void
probe_frame_cb(struct conn *c, struct frame *f, void *data)
{
	(void)data;
	if (f->m.type == MSG_STATUS_REPLY) {
		known.allocations = (double)f->m.u.STATUS_REPLY.allocations;
		known.generation = (double)f->m.u.STATUS_REPLY.generation;
		known.ready = f->m.u.STATUS_REPLY.ready;
		known.probe_ok = 1;
	} else {
		known.probe_ok = 0;
	}
	probing = false;
	frame_release(f);
	conn_close(c);
	metrics_write();
}

/* STATUS on the namespace socket, answered on the loop. */
static void
probe_cb(uv_timer_t *t)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct conn_opts opts = { .max_body = 4096 };
	struct msg m = { .type = MSG_STATUS };
	struct metrics_view v;
	int fd;

	(void)t;
	get_view(&v);
	if (probe_conn) {	/* no answer in a whole interval */
		conn_close(probe_conn);
		probe_conn = NULL;
		probing = false;
		known.probe_ok = 0;
	}
	if (!v.agent_up) {
		known.probe_ok = 0;
		metrics_write();
		return;
	}
	if (!opt.ns_socket || strlen(opt.ns_socket) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, opt.ns_socket, strlen(opt.ns_socket) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		known.probe_ok = 0;
		metrics_write();
		return;
	}
	if (conn_open(opt.loop, fd, &opts, probe_frame_cb, probe_close_cb, NULL,
	    &probe_conn) < 0) {
		probe_conn = NULL;
		return;
	}
	probing = true;
	if (conn_send(probe_conn, &m, NULL, 0) < 0)
		conn_close(probe_conn);
}

static void
probe_start(void)
{
	const char *e = getenv("BATON_METRICS_INTERVAL_MS");
	unsigned long ms = e ? strtoul(e, NULL, 10) : PROBE_MS_DEFAULT;

	if (ms < PROBE_MS_MIN)
		ms = PROBE_MS_MIN;
	if (uv_timer_init(opt.loop, &probe_timer) < 0)
		return;
	uv_timer_start(&probe_timer, probe_cb, 200, ms);
	uv_unref((uv_handle_t *)&probe_timer);
}

/* A gauge line, or nothing while its value is not known. */
static void
put_gauge(FILE *f, const char *name, const char *help, double v)
{
	if (isnan(v))
		return;
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help,
	    name, name, v);
}

static void
observe(struct histo *h, uint64_t ms)
{
	double v = (double)ms / 1000.0;
	size_t i;

	for (i = 0; i < NBUCKETS; i++)
		if (v <= buckets[i])
			h->le[i]++;
	h->count++;
	h->sum += v;
}

static void
put_histo(FILE *f, const char *name, const char *help, const struct histo *h)
{
	size_t i;

	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (i = 0; i < NBUCKETS; i++)
		fprintf(f, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, buckets[i],
		    h->le[i]);
	fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
	fprintf(f, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, h->sum, name,
	    h->count);
}

void
metrics_write(void)
{
	static bool started;
	const char *last_help = "";
	struct metrics_view v;
	char *text = NULL;
	size_t len = 0;
	unsigned i;
	FILE *f;
	int r;

	if (!opt.path)
		return;
	if (!started && opt.loop) {
		started = true;
		probe_start();
	}
	get_view(&v);
	f = open_memstream(&text, &len);
	if (!f)
		return;
	fprintf(f, "# HELP baton_build_info The supervisor's version.\n"
	    "# TYPE baton_build_info gauge\nbaton_build_info{version=\"%s\"} 1\n",
	    baton_version);
	fprintf(f, "# HELP baton_agent_state The supervisor's state (1 for the "
	    "current one).\n# TYPE baton_agent_state gauge\n");
	for (i = 0; i < v.nstates; i++)
		fprintf(f, "baton_agent_state{state=\"%s\"} %d\n",
		    v.state_names[i], v.state == i);
#define GAUGE(id, name, help) put_gauge(f, name, help, gauge_##id(&v));
#define COUNTER(id, name, help)
#define HISTOGRAM(id, name, help)
#include "supervisor/metrics.def"
#undef COUNTER
#undef HISTOGRAM
#undef GAUGE
#define GAUGE(id, name, help)
#define COUNTER(id, name, help) \
	if (strcmp(last_help, help) != 0) { \
		char base[128]; \
		snprintf(base, sizeof(base), "%.*s", (int)strcspn(name, "{"), name); \
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", base, help, base); \
		last_help = help; \
	} \
	fprintf(f, "%s %" PRIu64 "\n", name, v.id);
#define HISTOGRAM(id, name, help) put_histo(f, name, help, &histos[H_##id]);
#include "supervisor/metrics.def"
#undef COUNTER
#undef HISTOGRAM
#undef GAUGE
	if (fclose(f) != 0) {
		free(text);
		return;
	}
	/* A collector reads the whole file or the previous one. */
	r = atomicfile_write_plain(opt.path, text, len, 0644);
	if (r < 0)
		log_warn("metrics.write", strerror(-r), "path=%s", opt.path);
	free(text);
}

void
metrics_handoff(const struct handoff_result *r)
{
	known.last_committed = r->committed;
	known.last_duration = (double)r->total_ms / 1000.0;
	known.last_end = (double)time(NULL);
	/* Probe the (new) agent on the next turn, once the state settled. */
	if (uv_is_active((uv_handle_t *)&probe_timer))
		uv_timer_start(&probe_timer, probe_cb, 0,
		    uv_timer_get_repeat(&probe_timer));
	observe(&histos[H_duration], r->total_ms);
	observe(&histos[H_hello], r->hello_ms);
	if (r->spawn_ms)
		observe(&histos[H_spawn], r->spawn_ms);
	if (r->drain_ms)
		observe(&histos[H_drain], r->drain_ms);
	if (r->seal_ms)
		observe(&histos[H_seal], r->seal_ms);
	if (r->begin_ms)
		observe(&histos[H_begin], r->begin_ms);
	if (r->commit_ms)
		observe(&histos[H_commit], r->commit_ms);
	metrics_write();
}
