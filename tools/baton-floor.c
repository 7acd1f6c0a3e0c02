/*
 * baton-floor: the physical floor under a handoff, measured on this
 * machine: what the three unavoidable steps cost when nothing else is
 * done around them.
 *
 *   exec     fork + exec of the agent binary with --version, waited for
 *            (the successor has to be started)
 *   journal  atomicfile_write of a small record: temp file, write, fsync,
 *            rename, fsync of the directory (the journal has to be
 *            durable before and after)
 *   rtt      one byte there and back over a socketpair between two
 *            processes (every protocol step is at least one)
 *   netns    with --ns (root): the bare cost of one {net} allocation, the
 *            floor under NS_REQUEST{net}: fork a child, unshare(NEWNET),
 *            bind-mount its /proc/self/ns/net onto a file (the pin) in a
 *            private mount of DIR, child reaped; the unpin (umount +
 *            unlink) is not timed
 *
 * Each is repeated and reported as p50/p99/max in microseconds, readable
 * or as one JSON object.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/clock.h"
#include "common/version.h"

struct series {
	const char *name;
	uint64_t *v;
	size_t n;
};

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const struct series *s, double p)
{
	if (s->n == 0)
		return 0;
	return (double)s->v[(size_t)(p * (double)(s->n - 1) + 0.5)];
}

static int
measure_exec(const char *agent, struct series *s, size_t n)
{
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC), st;
	uint64_t t0;
	pid_t pid;
	size_t i;

	if (devnull < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		t0 = clock_mono_us();
		pid = fork();
		if (pid < 0) {
			close(devnull);
			return -errno;
		}
		if (pid == 0) {
			dup2(devnull, 1);
			execl(agent, agent, "--version", (char *)NULL);
			_exit(127);
		}
		if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0) {
			close(devnull);
			return -ENOEXEC;
		}
		s->v[s->n++] = clock_mono_us() - t0;
	}
	close(devnull);
	return 0;
}

static int
measure_journal(const char *dir, struct series *s, size_t n)
{
	char path[4096], rec[256];
	uint64_t t0;
	size_t i;
	int r;

	snprintf(path, sizeof(path), "%s/baton-floor.journal", dir);
	for (i = 0; i < n; i++) {
		/* About the size of a handoff journal record. */
		int len = snprintf(rec, sizeof(rec), "handoff_id=floor-%zu "
		    "phase=sealed binary=/usr/lib/baton/baton-agent "
		    "incumbent=1234 successor=5678 started_at_ms=%" PRIu64,
		    i, clock_wall_ms());

		t0 = clock_mono_us();
		r = atomicfile_write(path, rec, (size_t)len, 0600);
		if (r < 0)
			return r;
		s->v[s->n++] = clock_mono_us() - t0;
	}
	return atomicfile_remove(path);
}

static int
measure_rtt(struct series *s, size_t n)
{
	int sv[2], st;
	char b = 'x';
	uint64_t t0;
	pid_t pid;
	size_t i;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(sv[0]);
		while (read(sv[1], &b, 1) == 1)
			if (write(sv[1], &b, 1) != 1)
				break;
		_exit(0);
	}
	close(sv[1]);
	for (i = 0; i < n; i++) {
		t0 = clock_mono_us();
		if (write(sv[0], &b, 1) != 1 || read(sv[0], &b, 1) != 1)
			break;
		s->v[s->n++] = clock_mono_us() - t0;
	}
	close(sv[0]);
	waitpid(pid, &st, 0);
	return s->n == n ? 0 : -EIO;
}

/* fork, unshare(NEWNET), pin, reap: the floor of a {net} creation. */
static int
measure_netns(const char *dir, struct series *s, size_t n)
{
	char pins[4096], pin[4200];
	uint64_t t0;
	size_t i;
	pid_t pid;
	int st, fd, r = 0;

	snprintf(pins, sizeof(pins), "%s/pins", dir);
	if (mkdir(pins, 0700) < 0 && errno != EEXIST)
		return -errno;
	/* Like the agent's pin directory: a private mount of its own. */
	if (mount(pins, pins, NULL, MS_BIND, NULL) < 0)
		return -errno;
	if (mount(NULL, pins, NULL, MS_PRIVATE, NULL) < 0) {
		r = -errno;
		goto out;
	}
	for (i = 0; i < n && r == 0; i++) {
		snprintf(pin, sizeof(pin), "%s/net", pins);
		t0 = clock_mono_us();
		fd = open(pin, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
		if (fd < 0) {
			r = -errno;
			break;
		}
		close(fd);
		pid = fork();
		if (pid < 0) {
			r = -errno;
			break;
		}
		if (pid == 0) {
			if (unshare(CLONE_NEWNET) < 0 ||
			    mount("/proc/self/ns/net", pin, NULL, MS_BIND,
			    NULL) < 0)
				_exit(1);
			_exit(0);
		}
		if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			r = -EPERM;
		else
			s->v[s->n++] = clock_mono_us() - t0;
		(void)umount2(pin, MNT_DETACH);
		(void)unlink(pin);
	}
out:
	(void)umount2(pins, MNT_DETACH);
	(void)rmdir(pins);
	return r;
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: baton-floor --agent PATH --dir DIR [--runs N] [--ns] [--json]\n"
"\n"
"Measure the floor under a handoff on this machine: fork+exec of\n"
"\"PATH --version\" (N runs, default 200), a durable atomic journal write\n"
"in DIR (temp+fsync+rename+fsync dir; N runs), and a socketpair round\n"
"trip between two processes (100 x N runs).  Prints p50/p99/max in\n"
"microseconds; --json prints one object.  DIR should be on the file\n"
"system of the state directory.  --ns (root) adds the floor of a {net}\n"
"allocation: fork, unshare(CLONE_NEWNET), bind-mount the namespace onto a\n"
"file in a private mount under DIR, reap (N runs).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "agent", required_argument, NULL, 'a' },
		{ "dir", required_argument, NULL, 'd' },
		{ "runs", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "ns", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct series s[4] = { { .name = "exec" }, { .name = "journal" },
	    { .name = "rtt" }, { .name = "netns" } };
	const char *agent = NULL, *dir = NULL;
	long runs = 200;
	bool json = false, ns = false;
	int c, i, r, nser = 3;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': agent = optarg; break;
		case 'd': dir = optarg; break;
		case 'n': runs = atol(optarg); break;
		case 'j': json = true; break;
		case 's': ns = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("baton-floor %s\n", baton_version); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (!agent || !dir || runs < 1 || runs > 100000) {
		usage(stderr);
		return 64;
	}
	s[0].v = calloc((size_t)runs, sizeof(uint64_t));
	s[1].v = calloc((size_t)runs, sizeof(uint64_t));
	s[2].v = calloc((size_t)runs * 100, sizeof(uint64_t));
	s[3].v = calloc((size_t)runs, sizeof(uint64_t));
	if (!s[0].v || !s[1].v || !s[2].v || !s[3].v)
		return 71;
	if ((r = measure_exec(agent, &s[0], (size_t)runs)) < 0) {
		fprintf(stderr, "baton-floor: exec %s: %s\n", agent,
		    strerror(-r));
		return 69;
	}
	if ((r = measure_journal(dir, &s[1], (size_t)runs)) < 0) {
		fprintf(stderr, "baton-floor: journal write in %s: %s\n", dir,
		    strerror(-r));
		return 73;
	}
	if ((r = measure_rtt(&s[2], (size_t)runs * 100)) < 0) {
		fprintf(stderr, "baton-floor: socketpair: %s\n", strerror(-r));
		return 71;
	}
	if (ns) {
		if ((r = measure_netns(dir, &s[3], (size_t)runs)) < 0) {
			fprintf(stderr, "baton-floor: netns in %s: %s\n", dir,
			    strerror(-r));
			return 77;
		}
		nser = 4;
	}
	for (i = 0; i < nser; i++)
		qsort(s[i].v, s[i].n, sizeof(uint64_t), cmp_u64);
	if (json) {
		printf("{");
		for (i = 0; i < nser; i++)
			printf("%s\"%s_p50_us\":%.0f,\"%s_p99_us\":%.0f,"
			    "\"%s_max_us\":%.0f,\"%s_runs\":%zu", i ? "," : "",
			    s[i].name, pct(&s[i], 0.5), s[i].name,
			    pct(&s[i], 0.99), s[i].name, pct(&s[i], 1.0),
			    s[i].name, s[i].n);
		printf("}\n");
	} else {
		printf("%-8s %8s %8s %8s %8s\n", "floor", "runs", "p50 us",
		    "p99 us", "max us");
		for (i = 0; i < nser; i++)
			printf("%-8s %8zu %8.0f %8.0f %8.0f\n", s[i].name, s[i].n,
			    pct(&s[i], 0.5), pct(&s[i], 0.99), pct(&s[i], 1.0));
	}
	for (i = 0; i < 4; i++)
		free(s[i].v);
	return 0;
}
