/*
 * paths: join SPEC §2's defaults under a root.  Roots let tests, demos and
 * simulated hosts run side by side without touching the real /run.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/paths.h"

int
paths_join(char *out, const char *root, const char *rel)
{
	size_t rl;
	int n;

	if (!root || !*root)
		root = "/";
	rl = strlen(root);
	while (*rel == '/')
		rel++;
	if (rl > 0 && root[rl - 1] == '/')
		n = snprintf(out, PATH_MAX, "%s%s", root, rel);
	else
		n = snprintf(out, PATH_MAX, "%s/%s", root, rel);
	if (n < 0 || n >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int
paths_init(struct baton_paths *p, const char *root)
{
	static const struct {
		size_t off;
		const char *rel;
	} tab[] = {
		{ offsetof(struct baton_paths, ns_socket), "run/pact/handoff.sock" },
		{ offsetof(struct baton_paths, ready_file), "run/pact/ready" },
		{ offsetof(struct baton_paths, pin_dir), "run/pact/ns" },
		{ offsetof(struct baton_paths, uenv_mount_base), "run/pact/uenv" },
		{ offsetof(struct baton_paths, uenv_dir), "var/lib/pact/uenv" },
		{ offsetof(struct baton_paths, agent_socket), "run/baton/agent.sock" },
		{ offsetof(struct baton_paths, supervisor_socket), "run/baton/supervisor.sock" },
		{ offsetof(struct baton_paths, state_dir), "var/lib/baton" },
		{ offsetof(struct baton_paths, journal), "var/lib/baton/journal" },
		{ offsetof(struct baton_paths, last_handoff), "var/lib/baton/last-handoff" },
		{ offsetof(struct baton_paths, allocations), "var/lib/baton/allocations" },
		{ offsetof(struct baton_paths, metrics), "var/lib/prometheus/node-exporter/baton.prom" },
	};
	size_t i;
	int r;

	if (!root || !*root)
		root = "/";
	if (strlen(root) >= sizeof(p->root))
		return -ENAMETOOLONG;
	strcpy(p->root, root);
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		r = paths_join((char *)p + tab[i].off, root, tab[i].rel);
		if (r < 0)
			return r;
	}
	return 0;
}

int
paths_mkdirs(const char *dir, unsigned mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);
	char *s;

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, len + 1);
	for (s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int
paths_mkparent(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	char *slash;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	slash = strrchr(buf, '/');
	if (!slash || slash == buf)
		return 0;
	*slash = '\0';
	return paths_mkdirs(buf, mode);
}

int
paths_check_root(const char *root, const char **ret_why)
{
	struct stat st;

	if (root[0] != '/') {
		*ret_why = "must be an absolute path";
		return -EINVAL;
	}
	if (stat(root, &st) < 0)
		return 0;	/* made on first use, 0755 */
	if (!S_ISDIR(st.st_mode)) {
		*ret_why = "not a directory";
		return -ENOTDIR;
	}
	/* Sockets, journal and pins live below: nobody else may swap them. */
	if (st.st_mode & S_IWOTH) {
		*ret_why = "writable by others (chmod o-w)";
		return -EPERM;
	}
	return 0;
}

int
paths_check_dir(const char *dir, const char **ret_why)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		*ret_why = strerror(errno);
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		*ret_why = "not a directory";
		return -ENOTDIR;
	}
	return 0;
}
