/*
 * agent: baton-agent's roles around the namespace-provider core.
 * Cold start and successor both end up as the incumbent: the process
 * that holds the data-dir lock, serves the namespace socket and answers
 * the supervisor on the control socket.
 */
#ifndef BATON_AGENT_H
#define BATON_AGENT_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/paths.h"

struct agent_config {
	struct baton_paths paths;
	const char *cgroup_root;	/* NULL: no cgroup watch */
	const char *alloc_cgroup;	/* --alloc-cgroup; NULL: default */
	bool no_seccomp;
	const uid_t *allow_uids;
	unsigned n_allow_uids;
	const gid_t *allow_gids;
	unsigned n_allow_gids;
	/* Namespace-socket limits (nsserver_config); 0 = its default. */
	unsigned max_conns, max_pending, max_allocations, max_subscribers;
	unsigned max_frame, max_buffered;	/* bytes */
	unsigned max_conns_per_uid, max_pending_per_uid;
};

/* Run the agent until it exits; returns the process exit code. */
int agent_run(const struct agent_config *cfg);

#endif
