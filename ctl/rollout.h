/*
 * rollout: `batonctl rollout`, a fleet upgrade through pdsh(1).  Preflight
 * on every host, a canary, then batches with bounded fanout and a failure
 * budget; a per-host table or one JSON object at the end.
 */
#ifndef BATON_ROLLOUT_H
#define BATON_ROLLOUT_H

#include <stdint.h>

/*
 * argv[0] is "rollout"; root is batonctl's --root (borrowed), under which
 * the rollout record lives.  Returns the process exit status: 0 every host
 * committed, 1 some host failed (stopped or within budget), 69 could not
 * start (preflight or local setup), 64 usage.
 */
int rollout_main(const char *root, int argc, char **argv);

/* Shared with the host side (rollout_host.c). */
#define HOST_MAX 288		/* user@FQDN + NUL (HOSTLIST_NAME_MAX) */
#define BIN_MAX 1024
#define MAX_TMPL 32		/* --remote-cmd words */
#define TRAILER "@baton-rollout "	/* the gate's last line per host */
#define KILL_GRACE_MS 2000	/* SIGTERM to SIGKILL for a remote command */

/*
 * Host side, run by pdsh on each host (batonctl rollout --exec-host):
 * run the remote command unless the failure budget is spent, bound it by
 * timeout_ms, and print one trailer line.  Returns an exit code.
 */
int rollout_exec_host(const char *host, const char *gate, unsigned budget,
    uint64_t timeout_ms, const char *map, char **cmd, int ncmd);
/* Print {"binary","ok","error"} for path; 0 when executable. */
int rollout_probe_binary(const char *path);

#endif
