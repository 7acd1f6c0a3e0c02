/*
 * recover: start-up recovery of baton-supervisor after its own restart:
 * adopt the agent holding the data-dir lock, resolve the journal of an
 * interrupted handoff.  Blocks; runs before the loop does.
 */
#ifndef BATON_RECOVER_H
#define BATON_RECOVER_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/listenfds.h"
#include "common/paths.h"

enum recover_outcome {
	RECOVER_NO_JOURNAL,		/* nothing was interrupted */
	RECOVER_COMMITTED,		/* the journaled successor serves */
	RECOVER_ROLLED_BACK,		/* anything else */
};

struct recover {
	/* In, borrowed. */
	const struct baton_paths *paths;
	const char (*listen_names)[LISTENFDS_NAME_MAX];	/* configured */
	const char (*listen_paths)[PATH_MAX];
	unsigned n_listen;
	bool from_systemd;		/* listeners came from systemd */
	/*
	 * In and out: the caller's listeners.  While *nl is 0 they are
	 * filled from the adopted agent (GET_LISTENERS) or taken from a
	 * live agent about to be killed; the caller then owns the fds.
	 */
	int *lfds;
	char (*lnames)[LISTENFDS_NAME_MAX];
	unsigned *nl;
	/* In: the configured agent; out: the adopted agent's binary. */
	char agent_binary[PATH_MAX];
	/* Out. */
	pid_t adopted;			/* the agent adopted; 0: none */
	enum recover_outcome outcome;
};

/* Returns true when a running agent was adopted (rc->adopted). */
bool recover_run(struct recover *rc);

#endif
