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
 *   slot     the same record written in place into a file that already
 *            has its size, then fdatasync: one flush and no metadata, the
 *            shape of the allocation table's durable write
 *            (successor/nsfile.c)
 *   renamed  the journal's record as a handoff wrote it until the sixth
 *            2026-12-02 session: temp file, write, rename, no flush
 *            (atomicfile_write_nosync)
 *   inplace  the same record as a handoff writes it now: into the next
 *            slot of a pair, in place, no flush (slotfile_write)
 *   rtt      one byte there and back over a socketpair between two
 *            processes (every protocol step is at least one)
 *   netns    with --ns (root): the bare cost of one {net} allocation, the
 *            floor under NS_REQUEST{net}: fork a child, unshare(NEWNET),
 *            bind-mount its /proc/self/ns/net onto a file (the pin) in a
 *            private tmpfs under DIR, child reaped; the unpin (umount +
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
#include "common/slotfile.h"
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

/* About the size of a handoff journal record; its length. */
static size_t
journal_rec(char *rec, size_t cap, size_t i)
{
	int len = snprintf(rec, cap, "handoff_id=floor-%zu phase=sealed "
	    "binary=/usr/lib/baton/baton-agent incumbent=1234 successor=5678 "
	    "started_at_ms=%" PRIu64, i, clock_wall_ms());

	return len > 0 && (size_t)len < cap ? (size_t)len : 0;
}

/* How a journal record is written. */
enum rec_way {
	REC_DURABLE,	/* atomicfile_write: the floor's `journal` */
	REC_RENAMED,	/* atomicfile_write_nosync: a handoff's, until 2026-12 */
	REC_INPLACE,	/* slotfile_write, no flush: a handoff's now */
};

static int
measure_record(const char *dir, struct series *s, size_t n, enum rec_way way)
{
	char path[4096], slot[4200], rec[256];
	uint64_t t0;
	unsigned k;
	size_t i;
	int r;

	snprintf(path, sizeof(path), "%s/baton-floor.journal", dir);
	for (i = 0; i < n; i++) {
		size_t len = journal_rec(rec, sizeof(rec), i);

		t0 = clock_mono_us();
		r = way == REC_DURABLE ? atomicfile_write(path, rec, len, 0600) :
		    way == REC_RENAMED ? atomicfile_write_nosync(path, rec, len,
		    0600) : slotfile_write(path, "BTFL", rec, len, false);
		if (r < 0)
			return r;
		s->v[s->n++] = clock_mono_us() - t0;
	}
	for (k = 0; k < 2; k++)
		if (slotfile_name(slot, sizeof(slot), path, k) == 0)
			(void)unlink(slot);
	return atomicfile_remove(path);
}

static int
measure_slot(const char *dir, struct series *s, size_t n)
{
	char path[4096], rec[256] = { 0 };
	uint64_t t0;
	size_t i;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/baton-floor.slot", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* The file at its size and flushed first, as a slot is. */
	if (pwrite(fd, rec, sizeof(rec), 0) != (ssize_t)sizeof(rec) ||
	    fsync(fd) < 0)
		r = -errno;
	for (i = 0; r == 0 && i < n; i++) {
		int len = snprintf(rec, sizeof(rec), "allocation table seq "
		    "%zu, about the size of a small table", i);

		t0 = clock_mono_us();
		if (pwrite(fd, rec, (size_t)len, 0) != len || fdatasync(fd) < 0)
			r = -errno;
		s->v[s->n++] = clock_mono_us() - t0;
	}
	close(fd);
	unlink(path);
	return r;
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

/*
 * Like the agent's pin directory: a private tmpfs of its own under dir,
 * made (dir/pins) or removed (make false).
 */
static int
pin_mount(const char *dir, char *pins, size_t len, bool make)
{
	snprintf(pins, len, "%s/pins", dir);
	if (!make) {
		(void)umount2(pins, MNT_DETACH);
		(void)rmdir(pins);
		return 0;
	}
	if (mkdir(pins, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (mount("baton-floor", pins, "tmpfs", MS_NOSUID | MS_NODEV |
	    MS_NOEXEC, "mode=0700") < 0 ||
	    mount(NULL, pins, NULL, MS_PRIVATE, NULL) < 0) {
		int r = -errno;

		(void)pin_mount(dir, pins, len, false);
		return r;
	}
	return 0;
}

/* One bare {net} allocation on pin: fork, unshare(NEWNET), pin, reap. */
static int
netns_create(const char *pin)
{
	pid_t pid;
	int st, fd;

	fd = open(pin, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	close(fd);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0 ||
		    mount("/proc/self/ns/net", pin, NULL, MS_BIND, NULL) < 0)
			_exit(1);
		_exit(0);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		return -EPERM;
	return 0;
}

/* ... and its release: unpin, remove. */
static void
netns_release(const char *pin)
{
	(void)umount2(pin, MNT_DETACH);
	(void)unlink(pin);
}

/* The floor of a {net} creation, n times one after another. */
static int
measure_netns(const char *dir, struct series *s, size_t n)
{
	char pins[4096], pin[4200];
	uint64_t t0;
	size_t i;
	int r;

	if ((r = pin_mount(dir, pins, sizeof(pins), true)) < 0)
		return r;
	snprintf(pin, sizeof(pin), "%s/net", pins);
	for (i = 0; i < n && r == 0; i++) {
		t0 = clock_mono_us();
		r = netns_create(pin);
		if (r == 0)
			s->v[s->n++] = clock_mono_us() - t0;
		netns_release(pin);
	}
	(void)pin_mount(dir, pins, sizeof(pins), false);
	return r;
}

/*
 * The kernel's ceiling: workers processes create and release bare {net}
 * allocations for secs seconds; prints their total rate.  0 or -errno.
 */
static int
measure_netns_parallel(const char *dir, long workers, long secs)
{
	char pins[4096], pin[4200];
	uint64_t end, total = 0, n;
	int p[2], r, st, failed = 0;
	long w;
	pid_t pid;

	if ((r = pin_mount(dir, pins, sizeof(pins), true)) < 0)
		return r;
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	end = clock_mono_us() + (uint64_t)secs * 1000000u;
	for (w = 0; w < workers; w++) {
		pid = fork();
		if (pid < 0) {
			r = -errno;
			break;
		}
		if (pid > 0)
			continue;
		close(p[0]);
		snprintf(pin, sizeof(pin), "%s/net%ld", pins, w);
		n = 0;
		while (clock_mono_us() < end) {
			if (netns_create(pin) < 0)
				_exit(1);
			netns_release(pin);
			n++;
		}
		_exit(write(p[1], &n, sizeof(n)) == sizeof(n) ? 0 : 1);
	}
	close(p[1]);
	while (read(p[0], &n, sizeof(n)) == sizeof(n))
		total += n;
	close(p[0]);
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	if (r == 0 && failed)
		r = -EPERM;
	if (r == 0)
		printf("netns x%ld  %" PRIu64 " bare {net} create+release in "
		    "%ld s: %.0f ops/s\n", workers, total, secs,
		    (double)total / (double)secs);
out:
	(void)pin_mount(dir, pins, sizeof(pins), false);
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
"in DIR (temp+fsync+rename+fsync dir; N runs), a socketpair round\n"
"trip between two processes (100 x N runs), and a record written in\n"
"place into an existing file in DIR and fdatasync'ed (\"slot\": the\n"
"allocation table's one-flush write; N runs), and a handoff's journal\n"
"record without a flush, renamed into place as until 2026-12 (\"renamed\")\n"
"and written in place into a slot pair as now (\"inplace\"; N runs\n"
"each).  Prints p50/p99/max in\n"
"microseconds; --json prints one object.  DIR should be on the file\n"
"system of the state directory.  --ns (root) adds the floor of a {net}\n"
"allocation: fork, unshare(CLONE_NEWNET), bind-mount the namespace onto a\n"
"file in a private tmpfs under DIR, reap (N runs).\n"
"\n"
"       baton-floor --ns-workers W --dir DIR [--seconds S]\n"
"\n"
"The kernel's ceiling for {net} allocations (root): W processes create\n"
"and release bare ones as above for S seconds (default 3); prints the\n"
"rate.  Nothing of baton is in their path.\n");
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
		{ "ns-workers", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct series s[7] = { { .name = "exec" }, { .name = "journal" },
	    { .name = "rtt" }, { .name = "slot" }, { .name = "renamed" },
	    { .name = "inplace" }, { .name = "netns" } };
	const char *agent = NULL, *dir = NULL;
	long runs = 200, workers = 0, secs = 3;
	bool json = false, ns = false;
	int c, i, r, nser = 6;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': agent = optarg; break;
		case 'd': dir = optarg; break;
		case 'n': runs = atol(optarg); break;
		case 'j': json = true; break;
		case 's': ns = true; break;
		case 'w': workers = atol(optarg); break;
		case 'S': secs = atol(optarg); break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("baton-floor %s\n", baton_version); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (workers) {
		if (!dir || workers < 1 || workers > 256 || secs < 1 ||
		    secs > 3600) {
			usage(stderr);
			return 64;
		}
		if ((r = measure_netns_parallel(dir, workers, secs)) < 0) {
			fprintf(stderr, "baton-floor: netns x%ld in %s: %s\n",
			    workers, dir, strerror(-r));
			return 77;
		}
		return 0;
	}
	if (!agent || !dir || runs < 1 || runs > 100000) {
		usage(stderr);
		return 64;
	}
	s[0].v = calloc((size_t)runs, sizeof(uint64_t));
	s[1].v = calloc((size_t)runs, sizeof(uint64_t));
	s[2].v = calloc((size_t)runs * 100, sizeof(uint64_t));
	s[3].v = calloc((size_t)runs, sizeof(uint64_t));
	for (i = 4; i < 7; i++)
		if (!(s[i].v = calloc((size_t)runs, sizeof(uint64_t))))
			return 71;
	if (!s[0].v || !s[1].v || !s[2].v || !s[3].v)
		return 71;
	if ((r = measure_exec(agent, &s[0], (size_t)runs)) < 0) {
		fprintf(stderr, "baton-floor: exec %s: %s\n", agent,
		    strerror(-r));
		return 69;
	}
	if ((r = measure_record(dir, &s[1], (size_t)runs, REC_DURABLE)) < 0) {
		fprintf(stderr, "baton-floor: journal write in %s: %s\n", dir,
		    strerror(-r));
		return 73;
	}
	if ((r = measure_rtt(&s[2], (size_t)runs * 100)) < 0) {
		fprintf(stderr, "baton-floor: socketpair: %s\n", strerror(-r));
		return 71;
	}
	if ((r = measure_slot(dir, &s[3], (size_t)runs)) < 0) {
		fprintf(stderr, "baton-floor: slot write in %s: %s\n", dir,
		    strerror(-r));
		return 73;
	}
	if ((r = measure_record(dir, &s[4], (size_t)runs, REC_RENAMED)) < 0 ||
	    (r = measure_record(dir, &s[5], (size_t)runs, REC_INPLACE)) < 0) {
		fprintf(stderr, "baton-floor: journal record in %s: %s\n", dir,
		    strerror(-r));
		return 73;
	}
	if (ns) {
		if ((r = measure_netns(dir, &s[6], (size_t)runs)) < 0) {
			fprintf(stderr, "baton-floor: netns in %s: %s\n", dir,
			    strerror(-r));
			return 77;
		}
		nser = 7;
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
	for (i = 0; i < 7; i++)
		free(s[i].v);
	return 0;
}
