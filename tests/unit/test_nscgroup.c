/*
 * test_nscgroup: where allocation cgroups go, on fake hierarchies (plain
 * directories named by a fake mountinfo): the default is next to the
 * agent's cgroup in cgroup v2 and name=systemd, other v1 hierarchies and
 * sub-root mounts are ignored, a spec is used as given, "none" places
 * nothing, a relative or dotted spec is refused; enter writes the pid,
 * remove and sweep rmdir only allocation directories.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "successor/nscgroup.h"
#include "tests/lib/tap.h"

static char T[64], mounts[128], self[128];

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	require(f != NULL, "create %s", path);
	fputs(text, f);
	fclose(f);
}

static void
setup(const char *self_v2, const char *self_sd)
{
	char buf[2048];

	snprintf(T, sizeof(T), "/tmp/baton-cg-XXXXXX");
	require(mkdtemp(T) != NULL, "mkdtemp");
	snprintf(mounts, sizeof(mounts), "%s/mountinfo", T);
	snprintf(self, sizeof(self), "%s/cgroup", T);
	snprintf(buf, sizeof(buf),
	    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n"
	    "32 31 0:29 / %s/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	    "40 31 0:37 /sub %s/other-v2 rw - cgroup2 cgroup2 rw\n"
	    "41 31 0:37 / %s/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
	    "42 31 0:38 / %s/unified rw,relatime - cgroup2 cgroup2 rw\n",
	    T, T, T, T);
	put(mounts, buf);
	snprintf(buf, sizeof(buf), "9:name=systemd:%s\n4:cpu:/elsewhere\n"
	    "0::%s\n", self_sd, self_v2);
	put(self, buf);
}

static void
cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T);
	check_eq(system(cmd), 0);
}

TEST(default_is_next_to_the_service)
{
	struct nscgroup g;
	char want[256];
	struct stat st;

	setup("/system.slice/baton-supervisor.service",
	    "/system.slice/baton-supervisor.service");
	require(nscgroup_open(NULL, mounts, self, &g) == 0, "open");
	require(g.n == 2, "v2 and name=systemd: %u", g.n);
	snprintf(want, sizeof(want), "%s/unified/system.slice/%s", T,
	    NSCGROUP_SLICE);
	check(strcmp(g.dir[0], want) == 0, "v2: %s", g.dir[0]);
	snprintf(want, sizeof(want), "%s/systemd/system.slice/%s", T,
	    NSCGROUP_SLICE);
	check(strcmp(g.dir[1], want) == 0, "systemd: %s", g.dir[1]);
	check(stat(g.dir[0], &st) == 0 && S_ISDIR(st.st_mode), "made");
	nscgroup_close(&g);
	cleanup();
}

TEST(root_cgroup_spec_and_none)
{
	struct nscgroup g;
	char want[256];

	setup("/", "/");
	require(nscgroup_open(NULL, mounts, self, &g) == 0, "open");
	snprintf(want, sizeof(want), "%s/unified/%s", T, NSCGROUP_SLICE);
	check(g.n == 2 && strcmp(g.dir[0], want) == 0, "from /: %s",
	    g.n ? g.dir[0] : "-");
	nscgroup_close(&g);
	require(nscgroup_open("/jobs.slice/baton", mounts, self, &g) == 0,
	    "spec");
	snprintf(want, sizeof(want), "%s/systemd/jobs.slice/baton", T);
	check(g.n == 2 && strcmp(g.dir[1], want) == 0, "spec: %s",
	    g.n > 1 ? g.dir[1] : "-");
	nscgroup_close(&g);
	require(nscgroup_open("none", mounts, self, &g) == 0, "none");
	check_eq(g.n, 0);
	check_eq(nscgroup_enter(&g, "a1", getpid()), 0);
	check_eq(nscgroup_open("jobs", mounts, self, &g), -EINVAL);
	check_eq(nscgroup_open("/a/../b", mounts, self, &g), -EINVAL);
	check_eq(nscgroup_open("/a/..", mounts, self, &g), -EINVAL);
	cleanup();
}

static bool
known_cb(const char *id, void *data)
{
	(void)data;
	return strcmp(id, "known") == 0;
}

TEST(enter_remove_sweep)
{
	struct nscgroup g;
	char path[512], buf[32];
	int fd, n;

	setup("/svc", "/svc");
	require(nscgroup_open(NULL, mounts, self, &g) == 0, "open");
	/* Plain directories have no cgroup.procs: make them. */
	snprintf(path, sizeof(path), "%s/a1", g.dir[0]);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/a1/cgroup.procs", g.dir[0]);
	put(path, "");
	snprintf(path, sizeof(path), "%s/a1", g.dir[1]);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/a1/cgroup.procs", g.dir[1]);
	put(path, "");
	check_eq(nscgroup_enter(&g, "a1", 4242), 0);
	fd = open(path, O_RDONLY);
	n = fd < 0 ? -1 : (int)read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	check(strcmp(buf, "4242\n") == 0, "pid written: '%s'", buf);
	check_eq(nscgroup_enter(&g, "../x", 1), -EINVAL);
	check_eq(nscgroup_enter(&g, "new", 1), -ENOENT);	/* no cgroupfs */
	/* Populated (here: not empty) is kept; emptied goes. */
	check(nscgroup_remove(&g, "a1") < 0, "a busy one stays");
	unlink(path);
	snprintf(path, sizeof(path), "%s/a1/cgroup.procs", g.dir[0]);
	unlink(path);
	check_eq(nscgroup_remove(&g, "a1"), 0);
	check_eq(nscgroup_remove(&g, "a1"), 0);		/* gone is fine */

	snprintf(path, sizeof(path), "%s/known", g.dir[0]);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/stale", g.dir[0]);
	mkdir(path, 0755);
	/* An hour old: a young one may be another agent's, mid-creation. */
	{
		struct timeval tv[2] = { { time(NULL) - 3600, 0 },
		    { time(NULL) - 3600, 0 } };

		check(utimes(path, tv) == 0, "age the stale one");
	}
	snprintf(path, sizeof(path), "%s/young", g.dir[0]);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/.hidden", g.dir[0]);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/cgroup.procs", g.dir[0]);
	put(path, "");
	/* young and new (made by the failed enter above): later */
	check_eq(nscgroup_sweep(&g, known_cb, NULL), 2);
	snprintf(path, sizeof(path), "%s/stale", g.dir[0]);
	check(access(path, F_OK) < 0, "stale removed");
	snprintf(path, sizeof(path), "%s/young", g.dir[0]);
	check(access(path, F_OK) == 0, "young kept for a later sweep");
	snprintf(path, sizeof(path), "%s/known", g.dir[0]);
	check(access(path, F_OK) == 0, "known kept");
	snprintf(path, sizeof(path), "%s/.hidden", g.dir[0]);
	check(access(path, F_OK) == 0, "not an id: kept");
	nscgroup_close(&g);
	cleanup();
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
