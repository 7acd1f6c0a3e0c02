/*
 * rollout: `batonctl rollout`, a fleet upgrade through pdsh(1).  Preflight
 * on every host, a canary, then batches with bounded fanout and a failure
 * budget; a per-host table or one JSON object at the end.
 */
#ifndef BATON_ROLLOUT_H
#define BATON_ROLLOUT_H

/*
 * argv[0] is "rollout"; root is batonctl's --root (borrowed), under which
 * the rollout record lives.  Returns the process exit status: 0 every host
 * committed, 1 some host failed (stopped or within budget), 2 could not
 * start (preflight or local setup), 64 usage.
 */
int rollout_main(const char *root, int argc, char **argv);

#endif
