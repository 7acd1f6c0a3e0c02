/*
 * paths: every default path of SPEC §2, resolved under --root.  Each has
 * its own override flag in the programs; this module only joins.
 */
#ifndef BATON_PATHS_H
#define BATON_PATHS_H

#include <limits.h>

struct baton_paths {
	char root[PATH_MAX];
	char ns_socket[PATH_MAX];	/* run/pact/handoff.sock */
	char ready_file[PATH_MAX];	/* run/pact/ready */
	char pin_dir[PATH_MAX];		/* run/pact/ns */
	char uenv_mount_base[PATH_MAX];	/* run/pact/uenv */
	char uenv_dir[PATH_MAX];	/* var/lib/pact/uenv */
	char agent_socket[PATH_MAX];	/* run/baton/agent.sock */
	char supervisor_socket[PATH_MAX]; /* run/baton/supervisor.sock */
	char state_dir[PATH_MAX];	/* var/lib/baton */
	char journal[PATH_MAX];		/* var/lib/baton/journal */
	char last_handoff[PATH_MAX];	/* var/lib/baton/last-handoff */
	char allocations[PATH_MAX];	/* var/lib/baton/allocations */
	char metrics[PATH_MAX];		/* var/lib/prometheus/node-exporter/baton.prom */
};

/* Fill every path from root ("/" when NULL).  Returns 0 or -ENAMETOOLONG. */
int paths_init(struct baton_paths *p, const char *root);

/* Join root and a relative path into out (PATH_MAX). */
int paths_join(char *out, const char *root, const char *rel);

/* mkdir -p of the parent directory of path, mode for new dirs. */
int paths_mkparent(const char *path, unsigned mode);
/* mkdir -p of dir: missing parents 0755, dir itself mode.  0 or -errno. */
int paths_mkdirs(const char *dir, unsigned mode);

/*
 * A --root from the command line: absolute (else -EINVAL, a usage
 * error), and when it exists a directory others cannot write (else
 * -ENOTDIR / -EPERM, a configuration error).  *ret_why says which.
 */
int paths_check_root(const char *root, const char **ret_why);
/* A directory named on the command line exists: 0 or -errno, *ret_why. */
int paths_check_dir(const char *dir, const char **ret_why);

#endif
