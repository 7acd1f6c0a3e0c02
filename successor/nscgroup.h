/*
 * nscgroup: where allocations' processes live, outside the service.
 *
 * Each allocation's pid-namespace init (and the creation helper that
 * makes it) is moved into <dir>/<allocation id> in every hierarchy a
 * service manager kills by: cgroup v2 and the v1 name=systemd hierarchy
 * when mounted.  <dir> is by default "<parent of the agent's cgroup>/
 * baton-allocations.slice", so stopping the service (SIGKILL of its
 * whole cgroup) leaves every allocation's namespaces alive.
 */
#ifndef BATON_NSCGROUP_H
#define BATON_NSCGROUP_H

#include <stdbool.h>
#include <sys/types.h>

#define NSCGROUP_SLICE	"baton-allocations.slice"
#define NSCGROUP_MAX	2	/* cgroup v2, name=systemd */

struct nscgroup {
	unsigned n;
	char *dir[NSCGROUP_MAX];	/* owned, absolute, e.g.
					 * /sys/fs/cgroup/x/baton-allocations.slice */
};

/*
 * Resolve and create the parent directories.  spec: NULL for the
 * default, "none" for no placement (allocations stay in the agent's
 * cgroup), or a cgroup path like "/system.slice/baton-allocations.slice"
 * applied in each hierarchy.  The default skips a hierarchy it cannot
 * write to (logged); an explicit spec fails instead.  mounts and
 * self_cgroup are the files to read (NULL: /proc/self/mountinfo and
 * /proc/self/cgroup).  0 or -errno; *ret is filled (owned) on success.
 */
int nscgroup_open(const char *spec, const char *mounts,
    const char *self_cgroup, struct nscgroup *ret);
void nscgroup_close(struct nscgroup *g);

/* Make <dir>/<id> in each hierarchy and move pid there.  0 or -errno. */
int nscgroup_enter(const struct nscgroup *g, const char *id, pid_t pid);

/* rmdir <dir>/<id> in each (missing is fine).  0 or -EBUSY, -errno. */
int nscgroup_remove(const struct nscgroup *g, const char *id);

/*
 * Remove every <dir>/<id> for which known(id) is false.  Returns how
 * many are left that could not be removed yet (still populated).
 */
int nscgroup_sweep(const struct nscgroup *g,
    bool (*known)(const char *id, void *data), void *data);

#endif
