/*
 * nscgroup: allocation cgroups next to the service's (see nscgroup.h).
 *
 * Why: systemd stops a service by killing every process of its cgroup
 * (KillMode=control-group or mixed).  An allocation's pid namespace
 * lives only as long as its init, which used to be a child of the agent
 * in the service's cgroup; a `systemctl restart` killed every job.  The
 * creation helper moves itself into <dir>/<id> before it forks, so the
 * init and anything it starts are born outside the service's subtree.
 *
 * Invariants:
 * - Only directories named like an allocation id are ever removed, and
 *   only with rmdir (the kernel refuses a populated cgroup: EBUSY).
 * - Hierarchies are found from /proc/self/mountinfo (cgroup2, and cgroup
 *   with name=systemd) and the agent's own path from /proc/self/cgroup.
 *   A hierarchy mounted at a sub-root is used only when the mount root
 *   is "/" (the usual case; documented).  Every pin is a mount, so with
 *   10,000 allocations mountinfo has 20,000 lines and takes ~40 ms to
 *   read: the usual places (/sys/fs/cgroup, .../unified, .../systemd)
 *   are tried first with statfs, and mountinfo is read only when a
 *   hierarchy the agent is in is not found there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/paths.h"
#include "proto/msg.h"
#include "successor/nscgroup.h"
#include "successor/nsprov.h"

#define SWEEP_MIN_AGE_S	2	/* a younger cgroup may be mid-creation */

enum { H_V2, H_SYSTEMD };

struct hier {
	char mnt[4096];		/* "" when not mounted */
	char self[4096];	/* the agent's cgroup path, "" unknown */
};

static bool
has_opt(const char *opts, const char *want)
{
	size_t n = strlen(want);
	const char *p = opts;

	for (;;) {
		if (strncmp(p, want, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
		p = strchr(p, ',');
		if (!p)
			return false;
		p++;
	}
}

/* mountinfo: id parent maj:min root mountpoint opts [tags] - fstype src sopts */
static void
read_mounts(const char *path, struct hier h[NSCGROUP_MAX])
{
	char line[8192], root[4096], mp[4096], fstype[64], sopts[1024];
	const char *dash;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", root,
		    mp) != 2 || sscanf(dash + 3, "%63s %*s %1023s", fstype,
		    sopts) != 2 || strcmp(root, "/") != 0)
			continue;
		if (strcmp(fstype, "cgroup2") == 0 && !h[H_V2].mnt[0])
			snprintf(h[H_V2].mnt, sizeof(h[H_V2].mnt), "%s", mp);
		else if (strcmp(fstype, "cgroup") == 0 &&
		    has_opt(sopts, "name=systemd") && !h[H_SYSTEMD].mnt[0])
			snprintf(h[H_SYSTEMD].mnt, sizeof(h[H_SYSTEMD].mnt),
			    "%s", mp);
	}
	fclose(f);
}

static bool
fs_is(const char *path, long magic)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && (long)sf.f_type == magic;
}

/*
 * The usual mount points, without reading mountinfo.  True when every
 * hierarchy the agent is in (read_self) was found; the systemd one only
 * where /proc/self/cgroup says it exists.
 */
static bool
usual_mounts(struct hier h[NSCGROUP_MAX])
{
	static const char *const v2[] = { "/sys/fs/cgroup/unified",
	    "/sys/fs/cgroup" };
	unsigned i;

	for (i = 0; i < 2 && !h[H_V2].mnt[0]; i++)
		if (fs_is(v2[i], CGROUP2_SUPER_MAGIC))
			snprintf(h[H_V2].mnt, sizeof(h[H_V2].mnt), "%s", v2[i]);
	if (h[H_SYSTEMD].self[0] && fs_is("/sys/fs/cgroup/systemd",
	    CGROUP_SUPER_MAGIC))
		snprintf(h[H_SYSTEMD].mnt, sizeof(h[H_SYSTEMD].mnt), "%s",
		    "/sys/fs/cgroup/systemd");
	return (!h[H_V2].self[0] || h[H_V2].mnt[0]) &&
	    (!h[H_SYSTEMD].self[0] || h[H_SYSTEMD].mnt[0]);
}

/* /proc/self/cgroup: "0::/path" (v2), "N:name=systemd:/path" (v1). */
static void
read_self(const char *path, struct hier h[NSCGROUP_MAX])
{
	char line[8192], *p, *ctl, *cg;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		ctl = strchr(line, ':');
		if (!ctl)
			continue;
		cg = strchr(ctl + 1, ':');
		if (!cg)
			continue;
		*cg++ = '\0';
		*ctl = '\0';
		p = ctl + 1;
		if (strcmp(line, "0") == 0 && *p == '\0')
			snprintf(h[H_V2].self, sizeof(h[H_V2].self), "%s", cg);
		else if (strcmp(p, "name=systemd") == 0)
			snprintf(h[H_SYSTEMD].self, sizeof(h[H_SYSTEMD].self),
			    "%s", cg);
	}
	fclose(f);
}

/* "<parent of self>/baton-allocations.slice" ("/" has no parent). */
static int
default_rel(const char *self, char *buf, size_t len)
{
	const char *slash = strrchr(self, '/');
	int n;

	if (!slash || self[0] != '/')
		return -EINVAL;
	n = snprintf(buf, len, "%.*s/%s", (int)(slash - self), self,
	    NSCGROUP_SLICE);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int
nscgroup_open(const char *spec, const char *mounts, const char *self_cgroup,
    struct nscgroup *ret)
{
	struct hier h[NSCGROUP_MAX];
	struct nscgroup g;
	char rel[4096], dir[8192];
	unsigned i;
	int r = 0;

	memset(&g, 0, sizeof(g));
	memset(h, 0, sizeof(h));
	if (spec && strcmp(spec, "none") == 0)
		goto done;
	/* Absolute, and no "." or ".." component: it must stay a plain path. */
	if (spec && (spec[0] != '/' || strstr(spec, "/..") ||
	    strstr(spec, "/./") || (strlen(spec) > 1 &&
	    strcmp(spec + strlen(spec) - 2, "/.") == 0)))
		return -EINVAL;
	read_self(self_cgroup ? self_cgroup : "/proc/self/cgroup", h);
	if (mounts || !usual_mounts(h)) {
		memset(h[H_V2].mnt, 0, sizeof(h[H_V2].mnt));
		memset(h[H_SYSTEMD].mnt, 0, sizeof(h[H_SYSTEMD].mnt));
		read_mounts(mounts ? mounts : "/proc/self/mountinfo", h);
	}
	for (i = 0; i < NSCGROUP_MAX; i++) {
		if (!h[i].mnt[0])
			continue;
		if (spec)
			r = snprintf(rel, sizeof(rel), "%s", spec) >=
			    (int)sizeof(rel) ? -ENAMETOOLONG : 0;
		else if (h[i].self[0])
			r = default_rel(h[i].self, rel, sizeof(rel));
		else
			continue;	/* mounted, but we are not in it */
		if (r == 0 && snprintf(dir, sizeof(dir), "%s%s", h[i].mnt,
		    strcmp(rel, "/") == 0 ? "" : rel) >= (int)sizeof(dir))
			r = -ENAMETOOLONG;
		if (r == 0)
			r = paths_mkdirs(dir, 0755);
		if (r == 0 && access(dir, W_OK) < 0)
			r = -errno;
		if (r < 0) {
			log_warn("ns.alloc_cgroup", strerror(-r), "path=%s%s",
			    h[i].mnt, rel);
			if (spec)
				goto fail;
			r = 0;
			continue;
		}
		g.dir[g.n] = strdup(dir);
		if (!g.dir[g.n]) {
			r = -ENOMEM;
			goto fail;
		}
		g.n++;
	}
done:
	*ret = g;
	return 0;
fail:
	nscgroup_close(&g);
	return r;
}

void
nscgroup_close(struct nscgroup *g)
{
	unsigned i;

	for (i = 0; i < g->n; i++)
		free(g->dir[i]);
	memset(g, 0, sizeof(*g));
}

int
nscgroup_enter(const struct nscgroup *g, const char *id, pid_t pid)
{
	char path[8192], buf[32];
	unsigned i;
	int fd, len, tries, r = 0;

	if (!nsvocab_id_ok(id))
		return -EINVAL;
	for (i = 0; i < g->n && r == 0; i++) {
		tries = 0;
again:
		snprintf(path, sizeof(path), "%s/%s", g->dir[i], id);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		snprintf(path, sizeof(path), "%s/%s/cgroup.procs", g->dir[i],
		    id);
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		/*
		 * Another agent's sweep may rmdir it while still empty:
		 * before the open (ENOENT) or between the open and the
		 * write (ENODEV, the cgroup is dying).  Make it again.
		 */
		if (fd < 0 && errno == ENOENT && ++tries < 3)
			goto again;
		if (fd < 0)
			return -errno;
		len = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
		r = write(fd, buf, (size_t)len) == len ? 0 : -errno;
		close(fd);
		/* ... or between our open and write (a removed cgroup). */
		if (r == -ENODEV && ++tries < 3) {
			r = 0;
			goto again;
		}
	}
	return r;
}

int
nscgroup_remove(const struct nscgroup *g, const char *id)
{
	char path[8192];
	unsigned i;
	int r = 0;

	if (!nsvocab_id_ok(id))
		return -EINVAL;
	for (i = 0; i < g->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", g->dir[i], id);
		if (rmdir(path) < 0 && errno != ENOENT && r == 0)
			r = -errno;
	}
	return r;
}

int
nscgroup_sweep(const struct nscgroup *g,
    bool (*known)(const char *id, void *data), void *data)
{
	struct dirent *e;
	struct stat st;
	char path[8192];
	unsigned i;
	DIR *d;
	int left = 0;

	for (i = 0; i < g->n; i++) {
		d = opendir(g->dir[i]);
		if (!d)
			continue;
		while ((e = readdir(d))) {
			if (e->d_type != DT_DIR ||
			    !nsvocab_id_ok(e->d_name) ||
			    known(e->d_name, data))
				continue;
			snprintf(path, sizeof(path), "%s/%s", g->dir[i],
			    e->d_name);
			/*
			 * A young one may be another agent's creation between
			 * its mkdir and its move (two agents of one node in a
			 * handoff, or test roots side by side): later.
			 */
			if (stat(path, &st) == 0 &&
			    time(NULL) - st.st_mtime < SWEEP_MIN_AGE_S) {
				left++;
				continue;
			}
			if (rmdir(path) < 0 && errno != ENOENT)
				left++;
		}
		closedir(d);
	}
	return left;
}
