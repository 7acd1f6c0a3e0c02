/*
 * it_hostile: the real supervisor and agent, seccomp on, against hostile
 * and unprivileged peers.
 *
 * - hostile_clients: thousands of connections sending garbage, half
 *   frames, huge length fields, fds attached to requests, pipelined
 *   requests never read, closes mid-reply, and more connections than
 *   --max-conns; meanwhile a well-behaved client's every answer must be
 *   right, the agent must stay the same process, and its fd count and
 *   RSS must come back to (near) where they started.
 * - seccomp_in_every_process: Seccomp: 2 for supervisor, agent and the
 *   helper's descendant (the pid namespace's init); each of them logs
 *   that the forbidden calls of BATON_TEST_FORBIDDEN_SYSCALL got EPERM.
 * - spawned_fds: a cold-started agent and a successor receive exactly
 *   0-2, the listener and (successor) the handoff socket.
 * - unprivileged_peer_refused: SO_PEERCRED on the namespace and control
 *   sockets: a peer running as nobody gets an error frame and is logged.
 * - socket_and_state_modes, unsafe_state_dir_refused: 0600/0660 sockets,
 *   0600 state files; a group/other-writable state dir is exit 78.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "transport/fdpass.h"
#include "common/json.h"
#include "client/nsclient.h"
#include "common/paths.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "transport/wire.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define SERVE_MS	20000
#define MAX_CONNS	256
#define HOSTILE_S	15
#define HOSTILE_PROCS	3
#define HOSTILE_GAP_US	1000	/* between connections: ~1000/s each */
#define HOLD_MAX	24	/* connections each hostile process keeps open */

/* Start the supervisor with extra agent args and env; like itest's. */
static void
start_with(struct itest *t, const char *agent, const char *const *aargs,
    const char *const *env)
{
	char exe[PATH_MAX + 32], logp[PATH_MAX + 16];
	const char *argv[48];
	int i, k = 0;
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/baton-supervisor", t->bin);
	snprintf(logp, sizeof(logp), "%s/supervisor.log", t->root);
	t->sup_log_fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644);
	argv[k++] = exe;
	argv[k++] = "--root";
	argv[k++] = t->root;
	argv[k++] = "--agent";
	argv[k++] = agent ? agent : t->agent;
	for (i = 0; aargs && aargs[i] && k < 44; i++) {
		argv[k++] = "--agent-arg";
		argv[k++] = aargs[i];
	}
	argv[k] = NULL;
	pid = fork();
	require(pid >= 0, "fork");
	if (pid == 0) {
		dup2(t->sup_log_fd, 1);
		dup2(t->sup_log_fd, 2);
		/* A small quarantine, so RSS reflects what is really held. */
		setenv("ASAN_OPTIONS", "detect_leaks=0:quarantine_size_mb=8", 1);
		for (i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	t->sup = pid;
}

static pid_t
serving(struct itest *t)
{
	pid_t a = it_wait_serving(t, SERVE_MS);

	if (!check(a > 0, "agent serving")) {
		it_dump_log(t);
		it_teardown(t);
		tap_bail();
	}
	return a;
}

/* The whole supervisor log, NUL-terminated, in a static buffer. */
static const char *
read_log(struct itest *t)
{
	static char buf[1 << 20];
	char p[PATH_MAX + 16];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/supervisor.log", t->root);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Is there a log line holding every one of the (NULL-ended) words? */
static bool
log_has(const char *log, const char *const *words)
{
	const char *l = log, *e;
	char line[2048];
	size_t n;
	int i;

	for (; *l; l = *e ? e + 1 : e) {
		e = strchr(l, '\n');
		if (!e)
			e = l + strlen(l);
		n = (size_t)(e - l) < sizeof(line) - 1 ? (size_t)(e - l) :
		    sizeof(line) - 1;
		memcpy(line, l, n);
		line[n] = '\0';
		for (i = 0; words[i] && strstr(line, words[i]); i++)
			;
		if (!words[i])
			return true;
	}
	return false;
}

#define LOG_HAS(log, ...) log_has(log, (const char *const[]){ __VA_ARGS__, NULL })

/* ---- hostile clients ---- */

static int
connect_ns(const char *sock)
{
	return wire_connect(sock, 2000);
}

static void
put_header(uint8_t *out, uint16_t type, uint32_t len, uint16_t nfds)
{
	struct frame_header h = { .magic = FRAME_MAGIC, .version = 1,
	    .type = type, .body_len = len, .nfds = nfds, .flags = 0 };

	frame_header_encode(&h, out);
}

static void
fill_random(uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)random();
}

/* One hostile process: random abuse until `until`; counts to stdout. */
static __attribute__((noreturn)) void
hostile(const char *sock, unsigned seed, uint64_t until, int rfd)
{
	int held[HOLD_MAX], nheld = 0, fd, i, p[2];
	uint8_t buf[8192];
	uint8_t *big = NULL;
	size_t biglen = 0;
	unsigned long conns = 0;
	struct msg st = { .type = MSG_STATUS };
	ssize_t w;

	srandom(seed);
	for (i = 0; i < HOLD_MAX; i++)
		held[i] = -1;
	(void)frame_encode(&st, 0, &big, &biglen);
	while (clock_mono_ms() < until) {
		fd = connect_ns(sock);
		if (fd < 0) {
			usleep(1000);
			continue;
		}
		conns++;
		switch (random() % 8) {
		case 0:	/* garbage */
			fill_random(buf, 64 + (size_t)(random() % 4000));
			w = write(fd, buf, 64 + (size_t)(random() % 4000));
			break;
		case 1:	/* half a header, then silence */
			put_header(buf, MSG_STATUS, 0, 0);
			w = write(fd, buf, 7);
			goto hold;
		case 2:	/* a huge length field */
			put_header(buf, MSG_NS_REQUEST, 0xfffffff0u, 0);
			w = write(fd, buf, FRAME_HEADER_SIZE);
			break;
		case 3:	/* fds attached to a request */
			if (pipe2(p, O_CLOEXEC) == 0) {
				int fds[3] = { p[0], p[1], p[0] };

				put_header(buf, MSG_STATUS, (uint32_t)(biglen -
				    FRAME_HEADER_SIZE), 3);
				memcpy(buf + FRAME_HEADER_SIZE, big +
				    FRAME_HEADER_SIZE, biglen - FRAME_HEADER_SIZE);
				w = fdpass_send(fd, buf, biglen, fds, 3, 0);
				close(p[0]);
				close(p[1]);
			}
			break;
		case 4:	/* pipelined requests, replies never read */
			for (i = 0; i < 4000; i++)
				if (send(fd, big, biglen, MSG_DONTWAIT |
				    MSG_NOSIGNAL) < 0)
					break;
			goto hold;
		case 5:	/* ask, then close before the reply */
			w = write(fd, big, biglen);
			break;
		case 6:	/* a body that is not msgpack */
			put_header(buf, MSG_NS_REQUEST, 200, 0);
			fill_random(buf + FRAME_HEADER_SIZE, 200);
			w = write(fd, buf, FRAME_HEADER_SIZE + 200);
			break;
		default: /* a long body announced, half sent, then hold */
			put_header(buf, MSG_NS_REQUEST, 60000, 0);
			fill_random(buf + FRAME_HEADER_SIZE, 4000);
			w = write(fd, buf, FRAME_HEADER_SIZE + 4000);
			goto hold;
		}
		(void)w;
		close(fd);
		usleep(HOSTILE_GAP_US);
		continue;
hold:
		if (held[nheld] >= 0)
			close(held[nheld]);
		held[nheld] = fd;
		nheld = (nheld + 1) % HOLD_MAX;
		usleep(HOSTILE_GAP_US);
	}
	free(big);
	w = write(rfd, &conns, sizeof(conns));
	_exit(0);
}

struct good_stats {
	unsigned long ok, bad, creates;
	char why[200];
};

/* The well-behaved client: STATUS on fresh connections, and creations. */
static __attribute__((noreturn)) void
good(const char *sock, pid_t agent, uint64_t until, int rfd)
{
	struct good_stats gs;
	struct nsclient *c = NULL;
	struct nsclient_ns ns;
	const char *const net[] = { "net" };
	char id[64];
	uint64_t start;
	ssize_t w;
	pid_t pid;
	int r;

	memset(&gs, 0, sizeof(gs));
	while (clock_mono_ms() < until) {
		start = clock_mono_ms();
		pid = -1;
		if (nsclient_open(sock, &c) == 0) {
			struct nsclient_status s;

			r = nsclient_status(c, &s);
			pid = r == 0 ? (pid_t)s.pid : r;
			if (r == 0 && !s.ready)
				pid = -1;
		}
		if (pid == agent) {
			gs.ok++;
		} else {
			gs.bad++;
			snprintf(gs.why, sizeof(gs.why), "status: %d after "
			    "%llu ms", (int)pid, (unsigned long long)
			    (clock_mono_ms() - start));
		}
		if (c && pid == agent && gs.ok % 40 == 1) {
			struct nsclient_req rq = { .allocation_id = id,
			    .namespaces = net, .n = 1 };

			snprintf(id, sizeof(id), "good-%lu", gs.creates);
			r = nsclient_request(c, &rq, &ns);
			if (r == 0 && ns.n == 1 && ns.kinds[0] == NSK_NET) {
				nsclient_ns_free(&ns);
				r = nsclient_release(c, id);
			} else if (r == 0) {
				nsclient_ns_free(&ns);
				r = -EPROTO;
			}
			if (r == 0) {
				gs.creates++;
			} else {
				gs.bad++;
				snprintf(gs.why, sizeof(gs.why), "create %s: %s",
				    id, strerror(-r));
			}
		}
		if (c)
			nsclient_close(c);
		c = NULL;
	}
	w = write(rfd, &gs, sizeof(gs));
	(void)w;
	_exit(0);
}

static int
count_fds_settled(pid_t pid, int want_max, int ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)ms;
	int n;

	for (;;) {
		n = it_count_fds(pid);
		if (n <= want_max || clock_mono_ms() > until)
			return n;
		usleep(50000);
	}
}

/* Open more than --max-conns connections; the excess gets limit_exceeded. */
static void
over_the_limit(const char *sock)
{
	static int fds[MAX_CONNS + 64];
	unsigned i, refused = 0, n = 0;
	struct frame f;

	for (i = 0; i < MAX_CONNS + 64; i++) {
		fds[i] = connect_ns(sock);
		if (fds[i] >= 0)
			n++;
	}
	for (i = 0; i < MAX_CONNS + 64; i++) {
		if (fds[i] < 0)
			continue;
		/* The backlog is FIFO: the excess is the last 64. */
		if (wire_recv(fds[i], i < MAX_CONNS ? 5 : 2000, &f) == 0) {
			if (f.m.type == MSG_NS_ERROR &&
			    strcmp(f.m.u.NS_ERROR.kind, "limit_exceeded") == 0)
				refused++;
			frame_release(&f);
		}
	}
	for (i = 0; i < MAX_CONNS + 64; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	tap_diag("%u connections at once: %u got limit_exceeded", n, refused);
	check(n == MAX_CONNS + 64, "every connect succeeded (backlog)");
	check(refused >= 56 && refused <= 64, "the excess over --max-conns "
	    "got limit_exceeded (%u)", refused);
}

TEST_T(hostile_clients, 90)
{
	static const char *const aargs[] = { "--max-conns", "256",
	    "--max-pending", "8", NULL };
	struct itest t;
	struct baton_paths bp;
	struct good_stats gs;
	struct rlimit rl = { 8192, 8192 };
	pid_t agent, hp[HOSTILE_PROCS], gp;
	int gpipe[2], hpipe[2], fds0, fds1, i, st;
	long rss0, rss1;
	unsigned long conns = 0, c;
	uint64_t until;

	(void)setrlimit(RLIMIT_NOFILE, &rl);
	it_setup(&t);
	paths_init(&bp, t.root);
	start_with(&t, NULL, aargs, NULL);
	agent = serving(&t);
	/* Warm up: the loop's and the allocator's first growth is not a leak. */
	for (i = 0; i < 300; i++)
		(void)it_ns_status(&t, NULL, NULL);
	over_the_limit(bp.ns_socket);
	usleep(500000);
	fds0 = count_fds_settled(agent, 0, 0);
	rss0 = tap_proc_status(agent, "VmRSS");

	require(pipe2(gpipe, O_CLOEXEC) == 0 && pipe2(hpipe, O_CLOEXEC) == 0,
	    "pipes");
	until = clock_mono_ms() + HOSTILE_S * 1000;
	for (i = 0; i < HOSTILE_PROCS; i++) {
		hp[i] = fork();
		if (hp[i] == 0)
			hostile(bp.ns_socket, 1234u + (unsigned)i, until,
			    hpipe[1]);
	}
	gp = fork();
	if (gp == 0)
		good(bp.ns_socket, agent, until, gpipe[1]);
	close(gpipe[1]);
	close(hpipe[1]);
	memset(&gs, 0, sizeof(gs));
	check(read(gpipe[0], &gs, sizeof(gs)) == (ssize_t)sizeof(gs),
	    "good client reported");
	for (i = 0; i < HOSTILE_PROCS; i++)
		if (read(hpipe[0], &c, sizeof(c)) == (ssize_t)sizeof(c))
			conns += c;
	for (i = 0; i < HOSTILE_PROCS; i++)
		waitpid(hp[i], &st, 0);
	waitpid(gp, &st, 0);
	close(gpipe[0]);
	close(hpipe[0]);

	fds1 = count_fds_settled(agent, fds0 + 2, 5000);
	rss1 = tap_proc_status(agent, "VmRSS");
	tap_diag("hostile connections %lu in %d s; good client: %lu ok, %lu "
	    "bad, %lu create+release", conns, HOSTILE_S, gs.ok, gs.bad,
	    gs.creates);
	tap_diag("agent fds %d -> %d, VmRSS %ld -> %ld kB", fds0, fds1, rss0,
	    rss1);
	check(conns >= 2000, "thousands of hostile connections (%lu)", conns);
	check(gs.bad == 0, "every good answer was right (%lu bad: %s)", gs.bad,
	    gs.why);
	check(gs.ok >= 100 && gs.creates >= 2, "the good client got served");
	check(it_ns_status(&t, NULL, NULL) == agent, "the same agent serves");
	check(it_alive(t.sup), "the supervisor is alive");
	check(fds1 <= fds0 + 2, "agent fds bounded (%d -> %d)", fds0, fds1);
	check(rss1 - rss0 < 24 * 1024, "agent RSS bounded (%ld -> %ld kB)",
	    rss0, rss1);
	it_teardown(&t);
}

/* ---- seccomp in every process ---- */

/* Pid of the process whose pid namespace is the one fd refers to. */
static pid_t
find_ns_init(int nsfd)
{
	struct stat want, st;
	char path[64], comm[32];
	pid_t pid;
	int fd;
	ssize_t n;

	if (fstat(nsfd, &want) < 0)
		return -1;
	for (pid = 2; pid < 4194304; pid++) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n <= 0 || strncmp(comm, "baton-nsinit", 12) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
		if (stat(path, &st) == 0 && st.st_ino == want.st_ino)
			return pid;
	}
	return -1;
}

TEST_T(seccomp_in_every_process, 60)
{
	static const char *const env[] = { "BATON_TEST_FORBIDDEN_SYSCALL=1",
	    NULL };
	const char *const kinds[] = { "pid", "net", "mount" };
	struct nsclient_req rq = { .allocation_id = "sec1",
	    .namespaces = kinds, .n = 3 };
	struct itest t;
	struct baton_paths bp;
	struct nsclient_ns ns;
	char out[2048];
	const char *log;
	pid_t agent, init, succ, sb, spawner = 0;
	int r, k;

	it_setup(&t);
	paths_init(&bp, t.root);
	start_with(&t, NULL, NULL, env);
	agent = serving(&t);
	check_eq(tap_proc_status(t.sup, "Seccomp"), 2);
	check_eq(tap_proc_status(t.sup, "Seccomp_filters"), 1);
	check_eq(tap_proc_status(agent, "Seccomp"), 2);
	check_eq(tap_proc_status(agent, "Seccomp_filters"), 2);

	r = nsclient_request_path(bp.ns_socket, &rq, NSCLIENT_NO_FALLBACK, &ns);
	require(r == 0, "namespaces created under seccomp: %s", strerror(-r));
	k = nsclient_ns_find(&ns, NSK_PID);
	init = k >= 0 ? find_ns_init(ns.fds[k]) : -1;
	check(init > 0, "found the pid namespace's init");
	/*
	 * Forked by the helper, which kept the spawner's filter: the
	 * supervisor's, the agent's and the spawner's apply.
	 */
	check_eq(tap_proc_status(init, "Seccomp"), 2);
	check_eq(tap_proc_status(init, "Seccomp_filters"), 3);
	check(it_find_procs(t.root, "baton-nsspawn", &spawner, 1) == 1,
	    "the agent's spawner");
	check_eq(tap_proc_status(spawner, "Seccomp_filters"), 3);
	nsclient_ns_free(&ns);

	r = it_ctl(&t, out, sizeof(out), (const char *[]){ "upgrade", "--json",
	    NULL });
	check(r == 0, "an upgrade commits under seccomp: %s", out);
	succ = it_ns_status(&t, NULL, NULL);
	check(succ > 0 && succ != agent, "the successor serves");
	check_eq(tap_proc_status(succ, "Seccomp_filters"), 2);
	/*
	 * The next successor, started ahead, waits under the agent's filter
	 * already: its building and loading are off the next handoff.
	 */
	sb = it_wait_standby(&t, 0, 5000);
	check(sb > 0, "a standby waits");
	check_eq(tap_proc_status(sb, "Seccomp_filters"), 2);

	log = read_log(&t);
	check(LOG_HAS(log, "role=supervisor", "event=sandbox.installed"),
	    "supervisor logs its filter");
	check(LOG_HAS(log, "role=agent", "event=sandbox.installed"),
	    "agent logs its filter");
	{
		static const char *const roles[] = { "role=supervisor",
		    "role=agent", "role=nshelper", "role=nsspawn" };
		static const char *const calls[] = { "syscall=ptrace ",
		    "syscall=bpf ", "syscall=keyctl ", "syscall=unshare_user " };
		unsigned i, j;

		for (i = 0; i < 4; i++)
			for (j = 0; j < 4; j++)
				check(LOG_HAS(log, roles[i], "event=sandbox.probe",
				    calls[j], "errno=EPERM"), "%s: %s blocked",
				    roles[i], calls[j]);
		for (i = 0; i < 4; i++)
			check(LOG_HAS(log, roles[i], "event=seccomp.denied",
			    "syscall=ptrace"), "%s logged the denial", roles[i]);
	}
	check(LOG_HAS(log, "role=agent", "event=sandbox.probe",
	    "syscall=execve", "errno=EPERM"), "agent: execve blocked");
	check(LOG_HAS(log, "role=nshelper", "event=sandbox.probe",
	    "syscall=socket_unix", "errno=EPERM"), "helper: unix socket "
	    "blocked");
	r = nsclient_request_path(bp.ns_socket, &rq, NSCLIENT_NO_FALLBACK, &ns);
	check(r == 0, "the successor still serves the allocation");
	if (r == 0)
		nsclient_ns_free(&ns);
	it_teardown(&t);
}

/* ---- what a spawned agent inherits ---- */

/*
 * The wrapper prints every fd that survives its exec (no O_CLOEXEC) and
 * the environment's fd numbers, then execs the real agent.
 */
static const char *
fd_wrapper(struct itest *t, const char *name, const char *outfile)
{
	static char body[PATH_MAX * 6 + 512];

	snprintf(body, sizeof(body),
	    "o=%s\n"
	    "[ -z \"$HANDOFF_STANDBY\" ] || o=$o.standby\n"
	    "for f in /proc/$$/fdinfo/*; do\n"
	    "  n=${f##*/}; fl=\n"
	    "  [ -e $f ] || continue\n"
	    "  while read k v; do [ $k = flags: ] && fl=$v; done < $f\n"
	    "  [ -n \"$fl\" ] || continue\n"
	    "  [ $(( 0$fl & 02000000 )) -ne 0 ] || printf '%%s ' $n\n"
	    "done > $o.tmp\n"
	    "echo \"| LISTEN_FDS=$LISTEN_FDS HANDOFF_SOCK_FD=$HANDOFF_SOCK_FD\" "
	    ">> $o.tmp\n"
	    "mv $o.tmp $o\n"
	    "exec %s \"$@\"\n", outfile, t->agent);
	return it_script(t, name, body);
}

static void
read_small(const char *path, char *buf, size_t len)
{
	uint64_t until = clock_mono_ms() + 10000;
	ssize_t n = -1;
	int fd;

	buf[0] = '\0';
	while (clock_mono_ms() < until) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, buf, len - 1);
			close(fd);
			break;
		}
		usleep(20000);
	}
	buf[n > 0 ? n : 0] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
}

TEST_T(spawned_fds, 60)
{
	struct itest t;
	char cold[PATH_MAX + 32], succ[PATH_MAX + 16], got[256],
	    out[2048], wrap_cold[PATH_MAX + 64], wrap_succ[PATH_MAX + 64];
	int r;

	it_setup(&t);
	snprintf(cold, sizeof(cold), "%s/fds-cold", t.root);
	snprintf(succ, sizeof(succ), "%s/fds-succ", t.root);
	snprintf(wrap_cold, sizeof(wrap_cold), "%s",
	    fd_wrapper(&t, "wrap-cold", cold));
	snprintf(wrap_succ, sizeof(wrap_succ), "%s",
	    fd_wrapper(&t, "wrap-succ", succ));
	start_with(&t, wrap_cold, NULL, NULL);
	(void)serving(&t);
	read_small(cold, got, sizeof(got));
	tap_diag("cold start inherits: %s", got);
	check(strcmp(got, "0 1 2 3 | LISTEN_FDS=1 HANDOFF_SOCK_FD=") == 0,
	    "cold start: exactly 0-2 and the listener (%s)", got);
	/* The standby started ahead (supervisor/standby.h): a successor's. */
	snprintf(cold + strlen(cold), sizeof(cold) - strlen(cold), ".standby");
	read_small(cold, got, sizeof(got));
	tap_diag("standby inherits: %s", got);
	check(strcmp(got, "0 1 2 3 4 | LISTEN_FDS=1 HANDOFF_SOCK_FD=4") == 0,
	    "standby: 0-2, the listener and the handoff socket (%s)", got);
	r = it_ctl(&t, out, sizeof(out), (const char *[]){ "upgrade",
	    "--binary", wrap_succ, NULL });
	check(r == 0, "upgrade through the wrapper committed: %s", out);
	read_small(succ, got, sizeof(got));
	tap_diag("successor inherits: %s", got);
	check(strcmp(got, "0 1 2 3 4 | LISTEN_FDS=1 HANDOFF_SOCK_FD=4") == 0,
	    "successor: 0-2, the listener and the handoff socket (%s)", got);
	it_teardown(&t);
}

/* ---- credentials ---- */

/* As nobody: connect to path, send m, return the reply's error text. */
static void
as_nobody(const char *path, const struct msg *m, char *ret, size_t len)
{
	int p[2], fd, r;
	struct frame f;
	char buf[256] = "";
	pid_t pid;
	ssize_t n;

	ret[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(1);
		fd = wire_connect(path, 2000);
		if (fd < 0) {
			snprintf(buf, sizeof(buf), "connect: %s", strerror(-fd));
		} else {
			/* The refusal may come (and the close) before we ask. */
			(void)wire_send(fd, m, NULL, 0, 2000);
			r = wire_recv(fd, 3000, &f);
			if (r < 0) {
				snprintf(buf, sizeof(buf), "recv: %s",
				    proto_strerror(r));
			} else {
				if (f.m.type == MSG_ERROR)
					snprintf(buf, sizeof(buf), "ERROR %s",
					    f.m.u.ERROR.code);
				else if (f.m.type == MSG_NS_ERROR)
					snprintf(buf, sizeof(buf), "NS_ERROR %s",
					    f.m.u.NS_ERROR.kind);
				else
					snprintf(buf, sizeof(buf), "type %u",
					    f.m.type);
				frame_release(&f);
			}
		}
		n = write(p[1], buf, strlen(buf));
		_exit(n < 0);
	}
	close(p[1]);
	n = read(p[0], ret, len - 1);
	ret[n > 0 ? n : 0] = '\0';
	close(p[0]);
	waitpid(pid, NULL, 0);
}

TEST_T(unprivileged_peer_refused, 60)
{
	struct itest t;
	struct baton_paths bp;
	struct msg st = { .type = MSG_STATUS }, cst = { .type = MSG_CTL_STATUS };
	char got[256];
	const char *log;

	it_setup(&t);
	paths_init(&bp, t.root);
	start_with(&t, NULL, NULL, NULL);
	(void)serving(&t);
	/* Let nobody reach the sockets: only SO_PEERCRED stands in the way. */
	chmod(t.root, 0755);
	chmod(bp.ns_socket, 0666);
	chmod(bp.supervisor_socket, 0666);
	as_nobody(bp.ns_socket, &st, got, sizeof(got));
	check(strstr(got, "NS_ERROR") != NULL, "namespace socket refuses "
	    "nobody with NS_ERROR (%s)", got);
	as_nobody(bp.supervisor_socket, &cst, got, sizeof(got));
	check(strstr(got, "ERROR") != NULL, "control socket refuses nobody "
	    "with ERROR (%s)", got);
	usleep(200000);
	log = read_log(&t);
	check(LOG_HAS(log, "event=ns.peer_refused", "uid=65534", "peer_pid="),
	    "refusal on the namespace socket logged with uid and pid");
	check(LOG_HAS(log, "event=control.denied", "peer_uid=65534",
	    "peer_pid="), "refusal on the control socket logged");
	check(it_ns_status(&t, NULL, NULL) > 0, "still serving");
	it_teardown(&t);
}

/* ---- modes ---- */

static unsigned
mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 01000;
}

TEST_T(socket_and_state_modes, 60)
{
	struct itest t;
	struct baton_paths bp;
	const char *const kinds[] = { "net" };
	struct nsclient_req rq = { .allocation_id = "m1", .namespaces = kinds,
	    .n = 1 };
	struct nsclient_ns ns;
	char p[PATH_MAX + 32];
	int r;

	it_setup(&t);
	paths_init(&bp, t.root);
	start_with(&t, NULL, NULL, NULL);
	(void)serving(&t);
	r = nsclient_request_path(bp.ns_socket, &rq, NSCLIENT_NO_FALLBACK, &ns);
	if (r == 0)
		nsclient_ns_free(&ns);
	check_eq(mode_of(bp.ns_socket), 0660);
	check_eq(mode_of(bp.supervisor_socket), 0600);
	check_eq(mode_of(bp.agent_socket), 0600);
	check_eq(mode_of(bp.state_dir), 0700);
	check_eq(mode_of(bp.allocations), 0600);
	snprintf(p, sizeof(p), "%s/baton.lock", bp.state_dir);
	check_eq(mode_of(p), 0600);
	snprintf(p, sizeof(p), "%s/baton.pid", bp.state_dir);
	check_eq(mode_of(p), 0600);
	it_teardown(&t);
}

TEST_T(unsafe_state_dir_refused, 60)
{
	struct itest t;
	struct baton_paths bp;
	const char *log;
	int st = 0;

	it_setup(&t);
	paths_init(&bp, t.root);
	paths_mkdirs(bp.state_dir, 0700);
	chmod(bp.state_dir, 0777);
	start_with(&t, NULL, NULL, NULL);
	waitpid(t.sup, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 78, "exit 78 (status %d)",
	    st);
	log = read_log(&t);
	check(LOG_HAS(log, "writable by group or others"), "says why");
	t.sup = -1;
	it_teardown(&t);
}

TEST_T(unsafe_agent_binary_refused, 60)
{
	struct itest t;
	char bin[PATH_MAX + 32];
	const char *log;
	int st = 0;

	it_setup(&t);
	snprintf(bin, sizeof(bin), "%s", it_script(&t, "agent-o+w",
	    "exec true"));
	chmod(bin, 0777);
	start_with(&t, bin, NULL, NULL);
	waitpid(t.sup, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 78, "exit 78 (status %d)",
	    st);
	log = read_log(&t);
	check(LOG_HAS(log, "event=supervisor.agent_binary",
	    "writable by others"), "says why");
	t.sup = -1;
	it_teardown(&t);
}

/*
 * One good client's STATUS load (a new connection per request) for secs
 * seconds, through baton-load: answered, failed and refused.
 */
static void
good_load(struct itest *t, const char *sock, int secs, uint64_t *ok,
    uint64_t *failed, uint64_t *refused)
{
	char cmd[PATH_MAX * 2 + 64], out[1024];
	size_t n;
	FILE *p;

	*ok = *failed = *refused = 0;
	snprintf(cmd, sizeof(cmd), "%s/baton-load --socket %s --seconds %d "
	    "--workers 1 --json", t->bin, sock, secs);
	p = popen(cmd, "r");
	require(p != NULL, "baton-load");
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	pclose(p);
	check(json_get_u64(out, "requests_ok", ok) &&
	    json_get_u64(out, "requests_failed", failed) &&
	    json_get_u64(out, "refused", refused), "baton-load output: %s", out);
}

/*
 * As nobody, for secs seconds: connect as fast as possible and hold up to
 * `hold` connections.  Writes "<connects> <held> <closed by the agent>"
 * to fd out.
 */
static __attribute__((noreturn)) void
flood_held(const char *path, int secs, unsigned hold, int out)
{
	struct rlimit rl = { hold + 64, hold + 64 };
	uint64_t until = clock_mono_ms() + (uint64_t)secs * 1000;
	unsigned long connects = 0, closed = 0;
	unsigned nh = 0, i;
	struct pollfd pf;
	char line[96];
	int *held = calloc(hold, sizeof(int)), fd, n;

	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (!held || setgid(65534) < 0 || setuid(65534) < 0)
		_exit(2);
	while (clock_mono_ms() < until) {
		fd = wire_connect(path, 1000);
		if (fd < 0)
			continue;
		connects++;
		if (nh < hold)
			held[nh++] = fd;
		else
			close(fd);
	}
	/* The agent answered the excess with NS_ERROR and closed it. */
	for (i = 0; i < nh; i++) {
		pf.fd = held[i];
		pf.events = POLLIN;
		if (poll(&pf, 1, 0) == 1)
			closed++;
	}
	n = snprintf(line, sizeof(line), "%lu %u %lu\n", connects, nh, closed);
	if (write(out, line, (size_t)n) != n)
		_exit(3);
	_exit(0);
}

/*
 * Fairness: one uid holding as many connections as it can get must not
 * take the slots of others.  The good client (root) is measured alone,
 * then during the flood; nothing of it may fail or be refused.
 */
TEST_T(uid_flood_fair, 90)
{
	struct itest t;
	struct baton_paths bp;
	uint64_t ok0, f0, r0, ok1, f1, r1;
	unsigned long connects = 0, closed = 0;
	unsigned held = 0;
	char buf[128];
	int p[2], st = 0;
	ssize_t n;
	pid_t fl;

	it_setup(&t);
	paths_init(&bp, t.root);
	start_with(&t, NULL, (const char *[]){ "--allow-uid", "65534", NULL },
	    NULL);
	(void)serving(&t);
	chmod(t.root, 0755);
	chmod(bp.ns_socket, 0666);
	good_load(&t, bp.ns_socket, 2, &ok0, &f0, &r0);
	require(pipe(p) == 0, "pipe");
	fl = fork();
	require(fl >= 0, "fork");
	if (fl == 0) {
		close(p[0]);
		flood_held(bp.ns_socket, 4, 3000, p[1]);
	}
	close(p[1]);
	usleep(500000);	/* the flood holds what it can get */
	good_load(&t, bp.ns_socket, 2, &ok1, &f1, &r1);
	waitpid(fl, &st, 0);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	buf[n > 0 ? n : 0] = '\0';
	check(sscanf(buf, "%lu %u %lu", &connects, &held, &closed) == 3,
	    "flooder reported (%s, status %d)", buf, st);
	tap_diag("good client alone %.0f/s, during the flood %.0f/s; flood: %lu "
	    "connects, %u held, %lu of them closed by the agent",
	    ok0 / 2.0, ok1 / 2.0, connects, held, closed);
	check(f0 == 0 && r0 == 0 && f1 == 0 && r1 == 0, "no good request "
	    "failed or was refused (%llu/%llu alone, %llu/%llu in the flood)",
	    (unsigned long long)f0, (unsigned long long)r0,
	    (unsigned long long)f1, (unsigned long long)r1);
	check(closed > 0 && held - closed <= 512, "the flood got at most its "
	    "share (max-conns / 2 = 512) of connections (%u held, %lu closed)",
	    held, closed);
	/*
	 * The flood's excess is closed at once, so it reconnects as fast as
	 * it can: the good client still queues behind it in the kernel's
	 * FIFO backlog, which no per-uid rule can reorder.  It must keep
	 * being served (before per-uid limits it got nothing but errors).
	 */
	check(ok1 >= 20, "the good client is served throughout the flood "
	    "(%llu answers in 2 s)", (unsigned long long)ok1);
	it_teardown(&t);
}

/* Variables that steer the handoff, the service manager or the loader. */
static const char *const refused_env[] = {
	"LD_PRELOAD=/tmp/evil.so", "LD_LIBRARY_PATH=/tmp", "LISTEN_FDS=7",
	"LISTEN_PID=1", "HANDOFF_SOCK_FD=3", "HANDOFF_ROLE=successor",
	"HANDOFF_DEADLINE_MS=1", "NOTIFY_SOCKET=/tmp/x", "GLIBC_TUNABLES=x",
	"GCONV_PATH=/tmp", "1BAD=x", "=x", "NOEQUALS", NULL,
};

/* Each refused variable: a clear error, no handoff, the agent unchanged. */
static void
check_env_refused(struct itest *t, const char *build)
{
	char out[2048];
	pid_t agent = it_ns_status(t, NULL, NULL);
	int i, rc;

	for (i = 0; refused_env[i]; i++) {
		rc = it_upgrade(t, out, sizeof(out),
		    (const char *[]){ "--env", refused_env[i], NULL });
		check(rc != 0 && rc != 1, "%s: --env %s refused (exit %d): %s",
		    build, refused_env[i], rc, out);
	}
	check(LOG_HAS(read_log(t), "event=control.env_refused",
	    "variable=LD_PRELOAD"), "%s: the refusal is logged", build);
	check(it_ns_status(t, NULL, NULL) == agent, "%s: the same agent "
	    "serves", build);
}

TEST_T(upgrade_env_refused, 60)
{
	const char *rb = getenv("BATON_RELEASE_BIN");
	struct itest t;
	char out[2048];
	int rc;

	/* Crash-point build: refused, except the test hooks. */
	it_setup(&t);
	start_with(&t, NULL, NULL, NULL);
	require(it_wait_serving(&t, 10000) > 0, "serving");
	check_env_refused(&t, "test build");
	rc = it_upgrade(&t, out, sizeof(out), (const char *[]){ "--env",
	    "HANDOFF_STALL_AT=no-such-point", NULL });
	check(rc == 0, "test build: a crash-point hook is accepted (exit %d): "
	    "%s", rc, out);
	it_teardown(&t);

	/* Release build: the hooks are refused too. */
	it_setup(&t);
	require(realpath(rb ? rb : "build", t.bin) != NULL,
	    "release binaries built (BATON_RELEASE_BIN)");
	snprintf(t.agent, sizeof(t.agent), "%s/baton-agent", t.bin);
	start_with(&t, NULL, NULL, NULL);
	require(it_wait_serving(&t, 10000) > 0, "release serving");
	check_env_refused(&t, "release build");
	rc = it_upgrade(&t, out, sizeof(out), (const char *[]){ "--env",
	    "HANDOFF_CRASH_AT=s-after-begin-sent", NULL });
	check(rc != 0 && rc != 1 && LOG_HAS(read_log(&t),
	    "event=control.env_refused", "variable=HANDOFF_CRASH_AT"),
	    "release build: HANDOFF_CRASH_AT refused (exit %d): %s", rc, out);
	rc = it_upgrade(&t, out, sizeof(out), (const char *[]){ "--env",
	    "JOB_TAG=ok", NULL });
	check(rc == 0, "release build: an ordinary variable passes (exit %d): "
	    "%s", rc, out);
	it_teardown(&t);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
