/*
 * itmatrix: what the crash matrix and the stall matrix share: one case
 * per point of crashpoints/crashpoints.def (registered at run time, so a
 * new point is a new case), repeated rounds, the load shape each case
 * runs, and the summary table.
 */
#ifndef BATON_ITMATRIX_H
#define BATON_ITMATRIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/lib/itcheck.h"

enum itm_how {
	ITM_SUPERVISOR,		/* the supervisor carries the point */
	ITM_SUCCESSOR,		/* the upgrade's successor carries it */
	ITM_INCUMBENT,		/* an armed incumbent, reached by an upgrade */
	ITM_PROVIDER,		/* an armed incumbent, reached by the load */
};
extern const char *const itm_how_names[];

/*
 * A case of the matrix, parsed from its name "<point>[@successor][#round]":
 * the point, who carries it, and the load shape.  Shapes rotate over the
 * points and the rounds (point index + round), so ROUNDS=3 runs every
 * point under every shape and any two rounds give each point two shapes;
 * provider points (p-), reached only by a create, alternate between the
 * two shapes that create.
 */
struct itm_case {
	char point[64];
	char label[80];		/* point, "@successor" for j- in a successor */
	enum itm_how how;
	enum itc_shape shape;
	unsigned round;
};
void itm_parse(const char *name, struct itm_case *ret);

/*
 * Register matrix_fn once per point (and once more "@successor" for the
 * j- points) for rounds rounds, then a "summary" case printing the table
 * at table_path.  only: NULL, or a NULL-terminated list of points to
 * keep.  Returns the number of cases.
 */
unsigned itm_register(void (*matrix_fn)(void), int timeout_s,
    unsigned rounds, const char *const *only, const char *table_path);

/* One row of the summary table. */
void itm_row(const struct itm_case *c, const char *outcome,
    uint64_t recover_ms, const struct itc_result *res, bool ok);

/*
 * Start the daemons under a fresh root for case c with kv (a
 * "HANDOFF_CRASH_AT=..." or "HANDOFF_STALL_AT=..." entry) where c->how
 * puts it: in the supervisor's environment, or in an incumbent armed by
 * a first upgrade.  Holds `held` allocations, then starts the load in
 * c->shape.
 */
void itm_start(struct itest *t, const struct itm_case *c, const char *kv,
    unsigned held, struct itc_load *l);
/*
 * The upgrade that reaches the point (a successor case passes kv to it),
 * with extra arguments (NULL-terminated, or NULL).  Exit code, JSON in
 * out.  A provider case needs none: the load reaches it.
 */
int itm_upgrade(struct itest *t, const struct itm_case *c, const char *kv,
    const char *const *extra, char *out, size_t len);
/* The case's outcome, from the journal and last handoff. */
const char *itm_outcome(struct itest *t, const struct itm_case *c);

/* ROUNDS from the environment variable var (1..max, default def). */
unsigned itm_rounds(const char *var, unsigned def, unsigned max);

#endif
