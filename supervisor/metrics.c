/*
 * metrics: counters come from struct sup; histograms live here.  The file
 * is written to a temporary name and renamed, so a collector never reads
 * half a file.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "supervisor/handoff.h"
#include "supervisor/metrics.h"
#include "supervisor/sup.h"

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
#define HISTOGRAM(id, name, help) H_##id,
#include "supervisor/metrics.def"
#undef COUNTER
#undef HISTOGRAM
	H_COUNT
};

static struct histo histos[H_COUNT];

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
metrics_write(struct sup *s)
{
	const char *last_help = "";
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	f = open_memstream(&text, &len);
	if (!f)
		return;
#define COUNTER(id, name, help) \
	if (strcmp(last_help, help) != 0) { \
		char base[128]; \
		snprintf(base, sizeof(base), "%.*s", (int)strcspn(name, "{"), name); \
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", base, help, base); \
		last_help = help; \
	} \
	fprintf(f, "%s %" PRIu64 "\n", name, s->id);
#define HISTOGRAM(id, name, help) put_histo(f, name, help, &histos[H_##id]);
#include "supervisor/metrics.def"
#undef COUNTER
#undef HISTOGRAM
	if (fclose(f) != 0) {
		free(text);
		return;
	}
	/* A collector reads the whole file or the previous one. */
	r = atomicfile_write_plain(s->cfg->paths.metrics, text, len, 0644);
	if (r < 0)
		log_warn("metrics.write", strerror(-r), "path=%s",
		    s->cfg->paths.metrics);
	free(text);
}

void
metrics_handoff(struct sup *s, const struct handoff_result *r)
{
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
	metrics_write(s);
}
