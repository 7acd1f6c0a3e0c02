/*
 * standby: a successor started ahead of the next upgrade, so that the
 * upgrade does not wait for an exec, the dynamic linker and the agent's
 * start-up (proto/standby.h has what it waits for; docs/PROTOCOL.md, "A
 * successor started ahead").
 *
 * The supervisor keeps at most one, for its agent binary with the
 * configured arguments.  An upgrade takes it only when it would spawn
 * the very same thing: the same path, no extra arguments or environment,
 * and the same file (device, inode, size, modification and change time
 * of the path, and the inode the standby actually runs).  Anything else
 * dismisses it and spawns as before.
 *
 * Invariants kept here:
 * - a standby holds no lock, reads no state and accepts nothing: it
 *   blocks before its head start, so what it would read is read when it
 *   is taken;
 * - it dies with the supervisor (PDEATHSIG) and leaves when its
 *   socketpair closes (dismissed), so it never outlives its owner;
 * - its fd and exit watch are released exactly once: when it is taken
 *   (they go to the handoff) or dismissed.
 */
#ifndef BATON_STANDBY_H
#define BATON_STANDBY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "supervisor/agentcmd.h"

struct standby;

/* Spawn one for p (p->env must be NULL); 0 and *ret, or -errno. */
int standby_start(uv_loop_t *loop, const struct agentcmd_successor *p,
    struct standby **ret);

/* Its pid while it runs, else 0. */
pid_t standby_pid(const struct standby *s);

/*
 * Whether s would be what an upgrade with this binary, these args and
 * nenv extra environment entries spawns (see above); false once it
 * exited.
 */
bool standby_fits(const struct standby *s, const char *binary,
    const char *const *args, unsigned nargs, unsigned nenv);

/*
 * Tell it to start (the record of proto/standby.h, with deadline_ms) and
 * give it away: its pid and our end of its socketpair.  s is freed
 * either way.  0, or -errno (then it was dismissed).
 */
int standby_take(struct standby *s, uint64_t deadline_ms, pid_t *ret_pid,
    int *ret_fd);

/* Close its socketpair (it exits 0), free it and set *sp to NULL. */
void standby_dismiss(struct standby **sp, const char *why);

#endif
