/*
 * crashpoint: injected crashes for test builds (SPEC §7).  CRASHPOINT(x)
 * compiles to nothing unless BATON_CRASHPOINTS is defined; then, when
 * HANDOFF_CRASH_AT names point x, the process writes
 * $HANDOFF_CRASH_MARKER_DIR/crashed-<role>-<pid>.marker holding the name
 * and calls _exit(99).  HANDOFF_STALL_AT=<point> instead stops the
 * process there (SIGSTOP) until SIGCONT: a hung peer, not a dead one.
 * Release binaries contain no point names.
 */
#ifndef BATON_CRASHPOINT_H
#define BATON_CRASHPOINT_H

#include <stdbool.h>

enum crashpoint_id {
#define CP(ident, name) CP_##ident,
#include "crashpoints/crashpoints.def"
#undef CP
	CP_COUNT
};

/* The role written into marker names ("supervisor", "incumbent", ...). */
void crashpoint_set_role(const char *role);

#ifdef BATON_CRASHPOINTS
void crashpoint_hit(enum crashpoint_id id);
const char *crashpoint_name(enum crashpoint_id id);
/* Is any crash point armed in this process? */
bool crashpoint_armed(void);
#define CRASHPOINT(ident) crashpoint_hit(CP_##ident)
#else
#define CRASHPOINT(ident) ((void)0)
#endif

#endif
