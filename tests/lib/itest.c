/*
 * itest: run the real daemons under a temporary root for integration
 * tests.  Everything started here is in the test case's process group,
 * which tap.c kills when the case ends, so a failing test leaves nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/lock.h"
#include "common/paths.h"
#include "common/proc.h"
#include "transport/wire.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

/* Read a small /proc file, NUL-terminated; bytes read, or -1. */
static ssize_t
read_proc(const char *pid, const char *what, char *buf, size_t len)
{
	char p[300];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "/proc/%s/%s", pid, what);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* State letter and parent of /proc/<pid>/stat; false when unreadable. */
static bool
proc_stat(const char *pid, char *ret_state, pid_t *ret_ppid)
{
	char buf[512], *s;
	int ppid;

	if (read_proc(pid, "stat", buf, sizeof(buf)) < 0)
		return false;
	/* comm may hold ')': the fields follow the last one. */
	s = strrchr(buf, ')');
	if (!s || sscanf(s + 2, "%c %d", ret_state, &ppid) != 2)
		return false;
	*ret_ppid = (pid_t)ppid;
	return true;
}

pid_t
it_proc_ppid(pid_t pid)
{
	char id[16], st;
	pid_t ppid;

	snprintf(id, sizeof(id), "%d", (int)pid);
	return proc_stat(id, &st, &ppid) ? ppid : -1;
}

char
it_proc_state(pid_t pid)
{
	char id[16], st;
	pid_t ppid;

	snprintf(id, sizeof(id), "%d", (int)pid);
	return proc_stat(id, &st, &ppid) ? st : 0;
}

void
it_setup(struct itest *t)
{
	const char *b = getenv("BATON_TEST_BIN");
	char tmpl[] = "/tmp/baton-it.XXXXXX";
	char bin[PATH_MAX];

	memset(t, 0, sizeof(*t));
	t->sup = -1;
	t->sup_log_fd = -1;
	if (!realpath(b ? b : "build-san-cp", bin) ||
	    strlen(bin) >= sizeof(t->bin))
		tap_skip("test binaries not built (BATON_TEST_BIN)");
	strcpy(t->bin, bin);
	snprintf(t->agent, sizeof(t->agent), "%s/baton-agent", t->bin);
	if (access(t->agent, X_OK) < 0)
		tap_skip("%s not built", t->agent);
	if (!mkdtemp(tmpl))
		tap_bail();
	snprintf(t->root, sizeof(t->root), "%s", tmpl);
	snprintf(t->markers, sizeof(t->markers), "%s/markers", t->root);
	mkdir(t->markers, 0755);
	/* Daemons spawned by tests must not inherit our stdout (TAP). */
	signal(SIGPIPE, SIG_IGN);
}

pid_t
it_start_supervisor(struct itest *t, const char *const *env)
{
	/* Seccomp on: every integration test runs the real filters. */
	return it_start_supervisor_wrapped(t, env, NULL, t->sup_args);
}

pid_t
it_start_supervisor_wrapped(struct itest *t, const char *const *env,
    const char *const *wrap, const char *const *extra)
{
	char exe[PATH_MAX + 32], logp[PATH_MAX + 16];
	const char *argv[64];
	pid_t pid;
	int i, k = 0;

	snprintf(exe, sizeof(exe), "%s/baton-supervisor", t->bin);
	snprintf(logp, sizeof(logp), "%s/supervisor.log", t->root);
	for (i = 0; wrap && wrap[i] && k < 40; i++)
		argv[k++] = wrap[i];
	argv[k++] = exe;
	argv[k++] = "--root";
	argv[k++] = t->root;
	argv[k++] = "--agent";
	argv[k++] = t->agent;
	for (i = 0; extra && extra[i] && k < 63; i++)
		argv[k++] = extra[i];
	argv[k] = NULL;
	if (t->sup_log_fd < 0)
		t->sup_log_fd = open(logp, O_WRONLY | O_CREAT | O_APPEND |
		    O_CLOEXEC, 0644);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(t->sup_log_fd, 1);
		dup2(t->sup_log_fd, 2);
		setenv("HANDOFF_CRASH_MARKER_DIR", t->markers, 1);
		/*
		 * Leak checks of the daemons are off unless a test asks for
		 * them in env (the 100-upgrade leak test does): processes the
		 * tests kill would report what they held.
		 */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		for (i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	t->sup = pid;
	return pid;
}

pid_t
it_ns_status(struct itest *t, uint64_t *generation, uint64_t *allocs)
{
	return it_ns_status_dead(t, generation, allocs, NULL);
}

pid_t
it_ns_status_dead(struct itest *t, uint64_t *generation, uint64_t *allocs,
    uint64_t *dead)
{
	struct baton_paths p;
	struct msg m = { .type = MSG_STATUS };
	struct frame f;
	pid_t pid;
	int fd, r;

	paths_init(&p, t->root);
	fd = wire_connect(p.ns_socket, 2000);
	if (fd < 0)
		return fd;
	r = wire_send(fd, &m, NULL, 0, 2000);
	if (r == 0)
		r = wire_recv(fd, 5000, &f);
	close(fd);
	if (r < 0)
		return r;
	if (f.m.type != MSG_STATUS_REPLY) {
		frame_release(&f);
		return -EPROTO;
	}
	pid = (pid_t)f.m.u.STATUS_REPLY.pid;
	if (generation)
		*generation = f.m.u.STATUS_REPLY.generation;
	if (allocs)
		*allocs = f.m.u.STATUS_REPLY.allocations;
	if (dead)
		*dead = f.m.u.STATUS_REPLY.dead_allocations;
	frame_release(&f);
	return pid;
}

pid_t
it_wait_serving(struct itest *t, int timeout_ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)timeout_ms;
	char out[256];
	const char *args[] = { "status", NULL };
	pid_t pid;

	for (;;) {
		pid = it_ns_status(t, NULL, NULL);
		if (pid > 0 && it_ctl(t, out, sizeof(out), args) == 0 &&
		    strstr(out, "state running"))
			return pid;
		if (clock_mono_ms() > until)
			return -ETIMEDOUT;
		usleep(20000);
	}
}

int
it_ctl(struct itest *t, char *out, size_t outlen, const char *const *args)
{
	const char *argv[64];
	char exe[PATH_MAX + 16];
	int p[2], status, i, k = 0;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/batonctl", t->bin);
	argv[k++] = exe;
	argv[k++] = "--root";
	argv[k++] = t->root;
	for (i = 0; args[i] && k < 63; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		if (t->sup_log_fd >= 0)
			dup2(t->sup_log_fd, 2);
		setenv("ASAN_OPTIONS", "detect_leaks=0", 0);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (outlen > 0 && len < outlen - 1 &&
	    (n = read(p[0], out + len, outlen - 1 - len)) > 0)
		len += (size_t)n;
	if (outlen > 0)
		out[len] = '\0';
	close(p[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int
it_upgrade(struct itest *t, char *out, size_t len, const char *const *extra)
{
	const char *args[40] = { "upgrade", "--json" };
	int i, k = 2;

	for (i = 0; extra && extra[i] && k < 39; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	return it_ctl(t, out, len, args);
}

bool
it_alive(pid_t pid)
{
	return proc_running(pid);
}

pid_t
it_lock_holder(struct itest *t)
{
	struct baton_paths p;
	pid_t pid = 0;

	paths_init(&p, t->root);
	return lock_probe(p.state_dir, &pid) == 1 ? pid : 0;
}

int
it_count_fds(pid_t pid)
{
	char p[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	d = opendir(p);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int
it_count_children(pid_t pid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t ppid;
	char st;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
		    proc_stat(e->d_name, &st, &ppid) && ppid == pid && st != 'Z')
			n++;
	closedir(d);
	return n;
}

void
it_dump_log(struct itest *t)
{
	char p[PATH_MAX + 16], line[1024];
	FILE *f;
	int n = 0;

	snprintf(p, sizeof(p), "%s/supervisor.log", t->root);
	f = fopen(p, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && n++ < 400) {
		line[strcspn(line, "\n")] = '\0';
		tap_diag("log: %s", line);
	}
	fclose(f);
}

long
it_log_mark(struct itest *t)
{
	char p[PATH_MAX + 16];
	struct stat st;

	snprintf(p, sizeof(p), "%s/supervisor.log", t->root);
	return stat(p, &st) == 0 ? (long)st.st_size : 0;
}

uint64_t
it_log_max_since(struct itest *t, long mark, const char *event,
    const char *key)
{
	char p[PATH_MAX + 16], line[2048], ev[128], k[64];
	uint64_t v, max = 0;
	const char *at;
	FILE *f;

	snprintf(p, sizeof(p), "%s/supervisor.log", t->root);
	snprintf(ev, sizeof(ev), "event=%s ", event);
	snprintf(k, sizeof(k), " %s=", key);
	f = fopen(p, "re");
	if (!f)
		return 0;
	if (fseek(f, mark, SEEK_SET) == 0)
		while (fgets(line, sizeof(line), f))
			if (strstr(line, ev) && (at = strstr(line, k)) &&
			    (v = strtoull(at + strlen(k), NULL, 10)) > max)
				max = v;
	fclose(f);
	return max;
}

static void
kill_wait(pid_t pid, int ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)ms;

	while (it_alive(pid) && clock_mono_ms() < until) {
		(void)waitpid(pid, NULL, WNOHANG);
		usleep(10000);
	}
	if (it_alive(pid))
		kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
}

bool
it_proc_named(pid_t pid, const char *comm)
{
	char id[16], buf[64];
	size_t cl = strlen(comm);

	snprintf(id, sizeof(id), "%d", (int)pid);
	return read_proc(id, "comm", buf, sizeof(buf)) > 0 &&
	    strncmp(buf, comm, cl) == 0 && buf[cl] == '\n';
}

unsigned
it_find_procs(const char *root, const char *comm, pid_t *pids, unsigned max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char buf[8192];
	unsigned n = 0;
	ssize_t len, i;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
		    !it_proc_named(atoi(e->d_name), comm))
			continue;
		/* cmdline is NUL-separated: join it to look for the root. */
		len = read_proc(e->d_name, "cmdline", buf, sizeof(buf));
		for (i = 0; i < len; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		if (len > 0 && strstr(buf, root) && it_alive(atoi(e->d_name)))
			pids[n++] = atoi(e->d_name);
	}
	closedir(d);
	return n;
}

/*
 * The smallest and largest value of field (1-based, as in proc(5)) of
 * /proc/PID/task/ * /stat over the process's threads; false if none read.
 */
static bool
task_stat_range(pid_t pid, int field, long *min, long *max)
{
	char id[16], path[300], buf[1024], *p;
	struct dirent *e;
	bool any = false;
	long v;
	int i;
	DIR *d;

	snprintf(id, sizeof(id), "%d", (int)pid);
	snprintf(path, sizeof(path), "/proc/%s/task", id);
	d = opendir(path);
	if (!d)
		return false;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "task/%s/stat", e->d_name);
		if (read_proc(id, path, buf, sizeof(buf)) < 0)
			continue;
		/* After the comm's ")" comes field 3, the state. */
		p = strrchr(buf, ')');
		for (i = 2; p && i < field; i++)
			p = strchr(p + 1, ' ');
		if (!p || sscanf(p + 1, "%ld", &v) != 1)
			continue;
		if (!any || v < *min)
			*min = v;
		if (!any || v > *max)
			*max = v;
		any = true;
	}
	closedir(d);
	return any;
}

int
it_proc_nice_max(pid_t pid)
{
	long min, max;

	return task_stat_range(pid, 19, &min, &max) ? (int)max : -100;
}

int
it_proc_policy(pid_t pid)
{
	long min, max;

	return task_stat_range(pid, 41, &min, &max) && min == max ?
	    (int)min : -1;
}

pid_t
it_wait_standby(struct itest *t, pid_t not, int ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)ms;
	pid_t pids[8];
	unsigned n;

	do {
		n = it_find_procs(t->root, "baton-standby", pids, 8);
		if (n == 1 && pids[0] != not)
			return pids[0];
		usleep(10000);
	} while (clock_mono_ms() < until);
	return 0;
}

/*
 * Allocations outlive agents by design: their pid namespaces' inits
 * (baton-nsinit, forks of an agent of this root) are ended here.
 */
static void
kill_inits(const char *root)
{
	pid_t pids[1024];
	unsigned i, n = it_find_procs(root, "baton-nsinit", pids, 1024);

	for (i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
}

/* Detach every mount below root, deepest first. */
static void
umount_below(const char *root)
{
	char line[4096], mp[4096], list[64][512];
	size_t rl = strlen(root);
	int n = 0, i;
	FILE *f = fopen("/proc/self/mountinfo", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && n < 64)
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 &&
		    strncmp(mp, root, rl) == 0 && (mp[rl] == '/' || !mp[rl]) &&
		    strlen(mp) < sizeof(list[0]))
			strcpy(list[n++], mp);
	fclose(f);
	for (i = n - 1; i >= 0; i--)
		(void)umount2(list[i], MNT_DETACH);
}

void
it_teardown(struct itest *t)
{
	char cmd[PATH_MAX + 64];
	pid_t agent = it_ns_status(t, NULL, NULL);
	int r;

	if (t->sup > 0 && it_alive(t->sup)) {
		kill(t->sup, SIGTERM);
		kill_wait(t->sup, 20000);
	}
	if (agent > 0 && it_alive(agent))
		kill(agent, SIGKILL);
	if (t->sup_log_fd >= 0)
		close(t->sup_log_fd);
	if (getenv("BATON_KEEP_ROOT"))
		return;
	kill_inits(t->root);
	umount_below(t->root);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	r = system(cmd);
	(void)r;
}

struct it_load {
	pid_t pid;
	int pipe_fd;
};

struct it_load *
it_load_start(struct itest *t)
{
	struct it_load *l = calloc(1, sizeof(*l));
	int p[2];

	if (!l || pipe2(p, O_CLOEXEC) < 0)
		tap_bail();
	l->pid = fork();
	if (l->pid == 0) {
		volatile sig_atomic_t stop = 0;
		uint64_t ok = 0, failed = 0;
		sigset_t ss;
		int sig;

		close(p[0]);
		sigemptyset(&ss);
		sigaddset(&ss, SIGUSR1);
		sigprocmask(SIG_BLOCK, &ss, NULL);
		while (!stop) {
			struct timespec z = { 0, 0 };

			if (it_ns_status(t, NULL, NULL) > 0)
				ok++;
			else
				failed++;
			sig = sigtimedwait(&ss, NULL, &z);
			if (sig == SIGUSR1)
				stop = 1;
		}
		if (write(p[1], &ok, sizeof(ok)) < 0 ||
		    write(p[1], &failed, sizeof(failed)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	l->pipe_fd = p[0];
	return l;
}

void
it_load_stop(struct it_load *l, uint64_t *ok, uint64_t *failed)
{
	*ok = *failed = 0;
	kill(l->pid, SIGUSR1);
	if (read(l->pipe_fd, ok, sizeof(*ok)) != sizeof(*ok) ||
	    read(l->pipe_fd, failed, sizeof(*failed)) != sizeof(*failed))
		*failed = UINT64_MAX;
	close(l->pipe_fd);
	waitpid(l->pid, NULL, 0);
	free(l);
}

const char *
it_script(struct itest *t, const char *name, const char *body)
{
	static char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", t->root, name);
	f = fopen(path, "w");
	if (!f)
		tap_bail();
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(path, 0755);
	return path;
}
