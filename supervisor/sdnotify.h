/*
 * sdnotify: the supervisor's side of sd_notify(3), without libsystemd.
 * Every call is a no-op when $NOTIFY_SOCKET is not set.  One per process
 * (the environment is process-wide), so the state is the module's.
 */
#ifndef BATON_SDNOTIFY_H
#define BATON_SDNOTIFY_H

#include <stdint.h>
#include <uv.h>

/*
 * Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID; with a watchdog
 * for us, send WATCHDOG=1 every half period from a timer on loop (unref'd:
 * it never keeps the loop alive; closed by whoever closes every handle).
 */
void sdnotify_init(uv_loop_t *loop);

/* READY=1, MAINPID, STATUS; ends a RELOADING=1 (and its extensions). */
void sdnotify_ready(const char *status);

/*
 * RELOADING=1 with MONOTONIC_USEC and STATUS, then EXTEND_TIMEOUT_USEC
 * every few seconds until sdnotify_ready(), so a handoff longer than the
 * unit's timeout (deadline_ms can be minutes) is not killed as hung.
 */
void sdnotify_reloading(const char *status, uint64_t deadline_ms);

void sdnotify_status(const char *status);
void sdnotify_stopping(void);

/* The raw datagram (tests, rare messages).  0 or -errno. */
int sdnotify_send(const char *msg);

#endif
