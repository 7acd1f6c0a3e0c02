/*
 * itmatrix: case registration, names and the summary table of the crash
 * and stall matrices.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crashpoints/crashpoint.h"
#include "tests/lib/itmatrix.h"
#include "tests/lib/tap.h"

#define MAX_ROUNDS	8

const char *const itm_how_names[] = {
	"supervisor", "successor", "incumbent", "incumbent",
};

static char table[PATH_MAX];

static int
point_index(const char *point)
{
	unsigned id;

	for (id = 0; id < CP_COUNT; id++)
		if (strcmp(crashpoint_name((enum crashpoint_id)id), point) == 0)
			return (int)id;
	return 0;
}

void
itm_parse(const char *name, struct itm_case *c)
{
	const char *r = strchr(name, '#');
	unsigned k;

	memset(c, 0, sizeof(*c));
	snprintf(c->point, sizeof(c->point), "%s", name);
	c->point[strcspn(c->point, "#")] = '\0';
	c->round = r ? (unsigned)atoi(r + 1) : 1;
	switch (c->point[0]) {
	case 'o': c->how = ITM_INCUMBENT; break;
	case 'n': c->how = ITM_SUCCESSOR; break;
	case 'p': c->how = ITM_PROVIDER; break;
	default: c->how = ITM_SUPERVISOR; break;	/* s-, j- */
	}
	if (strchr(c->point, '@')) {
		*strchr(c->point, '@') = '\0';
		c->how = ITM_SUCCESSOR;
	}
	k = (unsigned)point_index(c->point) + c->round +
	    (c->how == ITM_SUCCESSOR && c->point[0] == 'j');
	snprintf(c->label, sizeof(c->label), "%s%s", c->point,
	    c->how == ITM_SUCCESSOR && c->point[0] == 'j' ? "@successor" : "");
	/* The load reaches provider points only by creating. */
	if (c->how == ITM_PROVIDER)
		c->shape = k % 2 ? ITC_TABLE : ITC_BOTH;
	else
		c->shape = (enum itc_shape)(k % ITC_NSHAPES);
}

void
itm_row(const struct itm_case *c, const char *outcome, uint64_t recover_ms,
    const struct itc_result *res, bool ok)
{
	FILE *f = fopen(table, "a");

	if (!f)
		return;
	fprintf(f, "%-28s %-10s %-6s %-24s %8llu %8u %6u %7u  %s\n", c->label,
	    itm_how_names[c->how], itc_shape_names[c->shape], outcome,
	    (unsigned long long)recover_ms, res->answered, res->failed,
	    res->refused, ok ? "ok" : "FAIL");
	fclose(f);
}

static void
summary(void)
{
	char line[256];
	FILE *f = fopen(table, "r");
	unsigned n = 0, bad = 0;

	if (!f)
		tap_skip("no rows (not root?)");
	tap_diag("%-28s %-10s %-6s %-24s %8s %8s %6s %7s", "point", "process",
	    "load", "outcome", "recov_ms", "answered", "failed", "refused");
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		tap_diag("%s", line);
		n++;
		if (strstr(line, "FAIL"))
			bad++;
	}
	fclose(f);
	if (!getenv("BATON_MATRIX_TABLE") && !getenv("BATON_STALL_TABLE"))
		unlink(table);	/* our own scratch file */
	tap_diag("%u cases, %u failed", n, bad);
	check(bad == 0, "every case recovered");
}

static bool
wanted(const char *point, const char *const *only)
{
	unsigned i;

	for (i = 0; only && only[i]; i++)
		if (strcmp(only[i], point) == 0)
			return true;
	return !only;
}

unsigned
itm_register(void (*fn)(void), int timeout_s, unsigned rounds,
    const char *const *only, const char *table_path)
{
	static char names[MAX_ROUNDS * 2 * CP_COUNT][80];
	char suffix[16] = "";
	unsigned id, k = 0, round;

	snprintf(table, sizeof(table), "%s", table_path);
	unlink(table);
	/* Repeated rounds make a flaky recovery show up. */
	for (round = 1; round <= rounds && round <= MAX_ROUNDS; round++) {
		if (round > 1)
			snprintf(suffix, sizeof(suffix), "#%u", round);
		for (id = 0; id < CP_COUNT; id++) {
			const char *n = crashpoint_name((enum crashpoint_id)id);

			if (!wanted(n, only))
				continue;
			snprintf(names[k], sizeof(names[k]), "%s%s", n, suffix);
			tap_register(names[k++], fn, timeout_s);
			/* Durable writes: in the supervisor and a successor. */
			if (n[0] == 'j') {
				snprintf(names[k], sizeof(names[k]),
				    "%s@successor%s", n, suffix);
				tap_register(names[k++], fn, timeout_s);
			}
		}
	}
	tap_register("summary", summary, 10);
	return k;
}

void
itm_start(struct itest *t, const struct itm_case *c, const char *kv,
    unsigned held, struct itc_load *l)
{
	char menv[PATH_MAX + 40], out[4096];
	int rc;

	it_setup(t);
	snprintf(menv, sizeof(menv), "HANDOFF_CRASH_MARKER_DIR=%s", t->markers);
	require(it_start_supervisor(t, c->how == ITM_SUPERVISOR ?
	    (const char *[]){ kv, NULL } : NULL) > 0, "supervisor");
	require(it_wait_serving(t, 15000) > 0, "serving");
	itc_hold(t, held);
	if (c->how == ITM_INCUMBENT || c->how == ITM_PROVIDER) {
		rc = it_upgrade(t, out, sizeof(out),
		    (const char *[]){ "--env", kv, "--env", menv, NULL });
		require(rc == 0, "%s: arming upgrade commits (%d): %s",
		    c->point, rc, out);
	}
	itc_load_start(t, l, c->shape);
	usleep(150000);
}

int
itm_upgrade(struct itest *t, const struct itm_case *c, const char *kv,
    const char *const *extra, char *out, size_t len)
{
	char menv[PATH_MAX + 40];
	const char *args[32];
	unsigned k = 0, i;

	snprintf(menv, sizeof(menv), "HANDOFF_CRASH_MARKER_DIR=%s", t->markers);
	if (c->how == ITM_SUCCESSOR) {
		args[k++] = "--env";
		args[k++] = kv;
		args[k++] = "--env";
		args[k++] = menv;
	}
	for (i = 0; extra && extra[i] && k < 31; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	return it_upgrade(t, out, len, args);
}

const char *
itm_outcome(struct itest *t, const struct itm_case *c)
{
	static const char *const recovered[][2] = {
		{ "recovered-committed", "committed (recovered)" },
		{ "recovered-rolled-back", "rolled back (recovered)" },
		{ "recovered-none", "cold start (recovered)" },
	};
	char out[4096];
	unsigned i;

	if (it_ctl(t, out, sizeof(out), (const char *[]){ "journal", "--json",
	    NULL }) != 0)
		return "?";
	for (i = 0; i < sizeof(recovered) / sizeof(recovered[0]); i++)
		if (strstr(out, recovered[i][0]))
			return recovered[i][1];
	if (c->how == ITM_PROVIDER)
		return "agent restarted";
	if (c->how == ITM_INCUMBENT && strstr(out, "committed"))
		return "promoted";
	if (strstr(out, "rolled-back"))
		return "rolled back";
	if (strstr(out, "committed"))
		return "committed";
	if (strstr(out, "\"last_outcome\":null"))
		return "nothing journaled";
	return "?";
}

unsigned
itm_rounds(const char *var, unsigned def, unsigned max)
{
	const char *s = getenv(var);
	int n = s ? atoi(s) : (int)def;

	if (n < 1)
		return def;
	return (unsigned)n > max ? max : (unsigned)n;
}
