/*
 * it_connmove: nothing a client holds notices an upgrade (issue 16).
 * Subscribers and persistent clients stay connected through back-to-back
 * upgrades under load: their connections move from each incumbent to its
 * successor (docs/PROTOCOL.md, "Moving connections").
 *
 * Asserted: every upgrade commits; no connection is closed by baton; no
 * request fails; every acknowledged release reaches every subscriber
 * exactly once, in seq order, and nothing else does; a subscriber that
 * drops its connection and subscribes again with since_seq receives
 * exactly what it missed.
 *
 * BATON_MOVE_UPGRADES (default 5; `make conn-move` runs 100),
 * BATON_MOVE_SUBS and BATON_MOVE_CLIENTS (default 50 each).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/nsclient.h"
#include "common/clock.h"
#include "common/paths.h"
#include "tests/lib/itcheck.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define MAX_SUBS	256
#define MAX_CLIENTS	256
#define MAX_EVENTS	20000
#define WORKERS		4

static const char *const net[] = { "net" };

struct ev {
	char id[NSCLIENT_ID_MAX + 1];
	uint64_t seq;
};

struct sub {
	int fd;
	struct ev *ev;
	unsigned n;
	bool closed;		/* baton closed it (EOF/reset) */
	int err;		/* first error other than a timeout */
};

struct client {
	struct nsclient *c;
	char live[NSCLIENT_ID_MAX + 1];	/* created, not yet released */
};

static struct {
	const char *sock;
	struct sub subs[MAX_SUBS];
	unsigned nsubs;
	struct client cl[MAX_CLIENTS];
	unsigned ncl;
	pthread_mutex_t mu;
	char (*released)[NSCLIENT_ID_MAX + 1];	/* acknowledged, in order */
	unsigned nreleased;
	atomic_uint ok, failed, next_id;
	char first_failure[256];		/* under mu */
	atomic_bool stop, subs_stop;
} g;

static unsigned
env_u(const char *name, unsigned def, unsigned max)
{
	const char *v = getenv(name);
	unsigned long n = v ? strtoul(v, NULL, 10) : def;

	return n == 0 ? def : n > max ? max : (unsigned)n;
}

static void
failed(struct client *c, const char *what, int r)
{
	const char *msg = "";
	const char *kind = c->c ? nsclient_error(c->c, &msg) : "";

	atomic_fetch_add(&g.failed, 1);
	pthread_mutex_lock(&g.mu);
	if (!g.first_failure[0])
		snprintf(g.first_failure, sizeof(g.first_failure), "%s: %s "
		    "(%s %s) at %llu ms", what, strerror(-r), kind, msg,
		    (unsigned long long)clock_mono_ms());
	pthread_mutex_unlock(&g.mu);
}

/* One operation on a persistent client: create, or release what it made. */
static void
client_step(struct client *c, unsigned w)
{
	struct nsclient_req req = { .namespaces = net, .n = 1 };
	struct nsclient_ns ns;
	char id[NSCLIENT_ID_MAX + 1];
	int r;

	if (c->live[0]) {
		r = nsclient_release(c->c, c->live);
		if (r < 0) {
			failed(c, "release", r);
			return;
		}
		pthread_mutex_lock(&g.mu);
		if (g.nreleased < MAX_EVENTS)
			memcpy(g.released[g.nreleased++], c->live, sizeof(id));
		pthread_mutex_unlock(&g.mu);
		c->live[0] = '\0';
		atomic_fetch_add(&g.ok, 1);
		return;
	}
	snprintf(id, sizeof(id), "mv-%u-%u", w,
	    atomic_fetch_add(&g.next_id, 1));
	req.allocation_id = id;
	r = nsclient_request(c->c, &req, &ns);
	if (r < 0) {
		failed(c, "create", r);
		return;
	}
	nsclient_ns_free(&ns);
	memcpy(c->live, id, sizeof(id));
	atomic_fetch_add(&g.ok, 1);
}

/* Worker w serves clients w, w+WORKERS, ... in turn, each persistent. */
static void *
worker(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg, i;
	struct nsclient_status st;

	while (!atomic_load(&g.stop)) {
		for (i = w; i < g.ncl && !atomic_load(&g.stop); i += WORKERS) {
			/* Every fourth client is mostly idle: a STATUS now and then. */
			if (i % 4 == 3) {
				int r = nsclient_status(g.cl[i].c, &st);

				if (r < 0)
					failed(&g.cl[i], "status", r);
				else
					atomic_fetch_add(&g.ok, 1);
				continue;
			}
			client_step(&g.cl[i], w);
		}
	}
	/* Leave nothing behind: release what is still live. */
	for (i = w; i < g.ncl; i += WORKERS)
		if (g.cl[i].live[0])
			client_step(&g.cl[i], w);
	return NULL;
}

static void
sub_read(struct sub *s)
{
	uint64_t seq = 0;
	char id[NSCLIENT_ID_MAX + 1];
	int r;

	r = nsclient_next_event_seq(s->fd, 2000, id, &seq);
	if (r == 0) {
		if (s->n < MAX_EVENTS) {
			memcpy(s->ev[s->n].id, id, sizeof(id));
			s->ev[s->n++].seq = seq;
		}
		return;
	}
	if (r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN)
		s->closed = true;
	else if (!s->err)
		s->err = r;
	close(s->fd);
	s->fd = -1;
}

/* Reads every subscriber as events come. */
static void *
sub_reader(void *arg)
{
	struct pollfd p[MAX_SUBS];
	unsigned i;

	(void)arg;
	while (!atomic_load(&g.subs_stop)) {
		for (i = 0; i < g.nsubs; i++) {
			p[i].fd = g.subs[i].fd;
			p[i].events = POLLIN;
			p[i].revents = 0;
		}
		if (poll(p, g.nsubs, 100) <= 0)
			continue;
		for (i = 0; i < g.nsubs; i++)
			if (p[i].revents && g.subs[i].fd >= 0)
				sub_read(&g.subs[i]);
	}
	return NULL;
}

/* Subscriber s's events are exactly the acknowledged releases, in order. */
static bool
sub_matches(const struct sub *s, unsigned k)
{
	unsigned i, j;

	if (!check(s->n == g.nreleased, "subscriber %u: %u events, %u releases "
	    "acknowledged", k, s->n, g.nreleased))
		return false;
	for (i = 1; i < s->n; i++)
		if (!check(s->ev[i].seq > s->ev[i - 1].seq, "subscriber %u: seq "
		    "%llu after %llu", k, (unsigned long long)s->ev[i].seq,
		    (unsigned long long)s->ev[i - 1].seq))
			return false;
	/* Same set: each acknowledged release once (ids are unique). */
	for (i = 0; i < g.nreleased; i++) {
		for (j = 0; j < s->n; j++)
			if (strcmp(s->ev[j].id, g.released[i]) == 0)
				break;
		if (!check(j < s->n, "subscriber %u: release %s never delivered",
		    k, g.released[i]))
			return false;
	}
	return true;
}

/*
 * The rejoiner: a subscriber that keeps dropping its connection and
 * subscribing again with since_seq = the last seq it saw, and must end
 * with exactly the events the others got.
 */
static struct sub rejoin;
static unsigned rejoins;

static void *
rejoiner(void *arg)
{
	uint64_t last = 0, seq;
	char id[NSCLIENT_ID_MAX + 1];
	unsigned k = 0;
	int fd = -1, r;

	(void)arg;
	while (!atomic_load(&g.subs_stop)) {
		if (fd < 0) {
			r = last ? nsclient_subscribe_since(g.sock, last, &fd) :
			    nsclient_subscribe(g.sock, &fd);
			if (r < 0) {
				rejoin.err = r;
				return NULL;
			}
			rejoins++;
		}
		r = nsclient_next_event_seq(fd, 100, id, &seq);
		if (r == 0) {
			if (rejoin.n < MAX_EVENTS) {
				memcpy(rejoin.ev[rejoin.n].id, id, sizeof(id));
				rejoin.ev[rejoin.n++].seq = seq;
			}
			last = seq;
		} else if (r != -ETIMEDOUT) {
			rejoin.err = r;
			break;
		}
		/* Drop the connection every few events (or idle reads). */
		if (++k % 7 == 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

struct run {
	struct itest t;
	pthread_t wt[WORKERS], rt, jt;
	pid_t before, after;
	uint64_t gen0, gen1;
	unsigned closed, errs;
};

/* Agent up, subscribers and persistent clients connected, load running. */
static void
run_start(struct run *u, const char *const *env)
{
	struct baton_paths bp;
	static char sock[PATH_MAX];
	uint64_t allocs;
	unsigned i;

	if (geteuid() != 0)
		tap_skip("needs root (namespaces)");
	memset(&g, 0, sizeof(g));
	memset(&rejoin, 0, sizeof(rejoin));
	pthread_mutex_init(&g.mu, NULL);
	g.released = calloc(MAX_EVENTS, sizeof(*g.released));
	rejoin.ev = calloc(MAX_EVENTS, sizeof(struct ev));
	require(g.released && rejoin.ev, "memory");
	it_setup(&u->t);
	require(it_start_supervisor(&u->t, env) > 0, "supervisor");
	require((u->before = it_wait_serving(&u->t, 15000)) > 0, "serving");
	paths_init(&bp, u->t.root);
	snprintf(sock, sizeof(sock), "%s", bp.ns_socket);
	g.sock = sock;
	g.nsubs = env_u("BATON_MOVE_SUBS", 50, MAX_SUBS);
	g.ncl = env_u("BATON_MOVE_CLIENTS", 50, MAX_CLIENTS);
	require(it_ns_status(&u->t, &u->gen0, &allocs) > 0, "status");
	for (i = 0; i < g.nsubs; i++) {
		g.subs[i].ev = calloc(MAX_EVENTS, sizeof(struct ev));
		require(g.subs[i].ev, "memory");
		require(nsclient_subscribe(g.sock, &g.subs[i].fd) == 0,
		    "subscriber %u", i);
	}
	for (i = 0; i < g.ncl; i++)
		require(nsclient_open(g.sock, &g.cl[i].c) == 0, "client %u", i);
	require(pthread_create(&u->rt, NULL, sub_reader, NULL) == 0, "reader");
	require(pthread_create(&u->jt, NULL, rejoiner, NULL) == 0, "rejoiner");
	for (i = 0; i < WORKERS; i++)
		require(pthread_create(&u->wt[i], NULL, worker,
		    (void *)(uintptr_t)i) == 0, "worker");
}

/* Stop the load, let every subscriber catch up, count what closed. */
static void
run_stop(struct run *u)
{
	uint64_t t0, allocs;
	unsigned i;

	atomic_store(&g.stop, true);
	for (i = 0; i < WORKERS; i++)
		pthread_join(u->wt[i], NULL);
	t0 = clock_mono_ms();
	for (;;) {
		unsigned behind = 0;

		pthread_mutex_lock(&g.mu);
		for (i = 0; i < g.nsubs; i++)
			behind += g.subs[i].fd >= 0 && g.subs[i].n < g.nreleased;
		behind += !rejoin.err && rejoin.n < g.nreleased;
		pthread_mutex_unlock(&g.mu);
		if (!behind || clock_mono_ms() - t0 > 10000)
			break;
		usleep(50000);
	}
	atomic_store(&g.subs_stop, true);
	pthread_join(u->rt, NULL);
	pthread_join(u->jt, NULL);
	u->after = it_ns_status(&u->t, &u->gen1, &allocs);
	for (i = 0; i < g.nsubs; i++) {
		u->closed += g.subs[i].closed;
		u->errs += g.subs[i].err != 0;
	}
	tap_diag("requests ok %u failed %u; releases acknowledged %u; "
	    "subscribers %u closed %u errors %u; rejoiner %u events over %u "
	    "subscriptions; generation %llu -> %llu", atomic_load(&g.ok),
	    atomic_load(&g.failed), g.nreleased, g.nsubs, u->closed, u->errs,
	    rejoin.n, rejoins, (unsigned long long)u->gen0,
	    (unsigned long long)u->gen1);
}

/* Nothing closed, nothing failed, every release to every subscriber once. */
static void
run_check_whole(struct run *u, pid_t serving)
{
	unsigned i;

	check(atomic_load(&g.failed) == 0, "no request failed (%u; first: %s)",
	    atomic_load(&g.failed), g.first_failure);
	check(atomic_load(&g.ok) > 0 && g.nreleased > 0, "load ran (%u ok, %u "
	    "released)", atomic_load(&g.ok), g.nreleased);
	check_eq(u->closed, 0);
	check_eq(u->errs, 0);
	for (i = 0; i < g.nsubs; i++)
		if (!sub_matches(&g.subs[i], i))
			break;
	check(rejoin.err == 0 && rejoins > 1, "rejoiner resubscribed %u times "
	    "(error %d)", rejoins, rejoin.err);
	(void)sub_matches(&rejoin, 999);
	/* The persistent clients are still connected, to the agent serving. */
	for (i = 0; i < g.ncl; i++)
		if (!check(nsclient_reconnects(g.cl[i].c) == 0, "client %u "
		    "never had to connect again (%u times)", i,
		    nsclient_reconnects(g.cl[i].c)))
			break;
	for (i = 0; i < g.ncl; i++) {
		struct nsclient_status st;

		if (!check(nsclient_status(g.cl[i].c, &st) == 0 &&
		    (pid_t)st.pid == serving, "client %u still served, by %d",
		    i, (int)serving))
			break;
	}
}

static void
run_end(struct run *u)
{
	unsigned i;

	for (i = 0; i < g.nsubs; i++) {
		if (g.subs[i].fd >= 0)
			close(g.subs[i].fd);
		free(g.subs[i].ev);
	}
	for (i = 0; i < g.ncl; i++)
		nsclient_close(g.cl[i].c);
	free(g.released);
	free(rejoin.ev);
	if (tap_failures())
		it_dump_log(&u->t);
	it_teardown(&u->t);
}

TEST_T(clients_and_subscribers_stay_connected_through_upgrades, 900)
{
	struct run u = { 0 };
	char out[4096];
	unsigned upgrades = env_u("BATON_MOVE_UPGRADES", 5, 1000);
	unsigned k, committed = 0;
	uint64_t t0;

	run_start(&u, NULL);
	t0 = clock_mono_ms();
	for (k = 0; k < upgrades; k++) {
		int rc = it_upgrade(&u.t, out, sizeof(out), NULL);

		if (rc == 0)
			committed++;
		else
			tap_diag("upgrade %u: rc %d %s", k, rc, out);
	}
	tap_diag("%u upgrades in %llu ms", upgrades,
	    (unsigned long long)(clock_mono_ms() - t0));
	run_stop(&u);
	check_eq(committed, upgrades);
	check(u.after > 0 && u.after != u.before, "a new agent serves");
	check(u.gen1 >= u.gen0 + upgrades, "generation counted every upgrade");
	run_check_whole(&u, u.after);
	run_end(&u);
}

/*
 * A process killed at a step of the move: every connection is served by
 * exactly one process.  Where the successor dies before it may serve
 * them, the incumbent serves them again and no client notices; where the
 * incumbent dies after sending them, the successor serves them and no
 * client notices either.  Only a successor that served them and died
 * takes them with it (those clients see a close, never two servers).
 * want_rc: the crashed upgrade's batonctl exit, 0 committed (the
 * successor was promoted, or had sent READY before it adopted them), 1
 * rolled back.
 */
static void
crash_case(const char *point, bool incumbent, bool whole, int want_rc)
{
	struct run u = { 0 };
	char out[4096], env[128], markers[PATH_MAX + 32], arm[4096];
	const char *args[] = { "--env", env, "--env", markers, NULL };
	int rc;

	snprintf(env, sizeof(env), "HANDOFF_CRASH_AT=%s", point);
	run_start(&u, NULL);
	snprintf(markers, sizeof(markers), "HANDOFF_CRASH_MARKER_DIR=%s",
	    u.t.markers);
	if (incumbent) {
		/* Arm the incumbent: an upgrade makes one with the point set. */
		rc = it_upgrade(&u.t, arm, sizeof(arm), args);
		check(rc == 0, "arming upgrade commits (%d): %s", rc, arm);
		rc = it_upgrade(&u.t, out, sizeof(out), NULL);
	} else {
		rc = it_upgrade(&u.t, out, sizeof(out), args);
	}
	check(itc_wait_crashed(&u.t, point, 5000), "%s: crashed there", point);
	check(rc == want_rc, "%s: the upgrade %s (exit %d): %s", point,
	    want_rc == 0 ? "commits" : "rolls back", rc, out);
	usleep(300000);
	/* Whoever serves now, one more upgrade carries everything on. */
	rc = it_upgrade(&u.t, out, sizeof(out), NULL);
	check(rc == 0, "%s: the next upgrade commits (%d): %s", point, rc, out);
	run_stop(&u);
	if (whole) {
		run_check_whole(&u, u.after);
	} else {
		/* Closed, not half-served: the served ones answer, no errors. */
		check_eq(u.errs, 0);
		check(atomic_load(&g.failed) <= g.ncl, "failed %u bounded by "
		    "the clients the dead successor held", atomic_load(&g.failed));
	}
	run_end(&u);
}

TEST_T(successor_dies_before_serving_moved, 300)
{
	crash_case("n-after-lock", false, true, 1);
}

TEST_T(successor_dies_before_drain_ends, 300)
{
	crash_case("n-after-handshake", false, true, 1);
}

TEST_T(incumbent_dies_after_sending, 300)
{
	crash_case("o-after-conns-sent", true, true, 0);
}

TEST_T(successor_dies_after_adopting, 300)
{
	crash_case("n-after-conns-adopted", false, false, 0);
}

/*
 * Held through the drain: an incumbent whose connections move keeps
 * accepting and answering reads until the seal, and holds change requests
 * unread; they move with their connections and the successor serves them
 * (commit), or the incumbent serves them itself when the handoff ends
 * without a successor (the supervisor killed while stopped after
 * DRAINED: the incumbent resumes on its own).
 */
struct held_req {
	struct nsclient *c;	/* opened before the upgrade, or NULL: new */
	const char *id;
	int err;
	unsigned long long ino;
	uint64_t done_ms;
	atomic_bool done;
};

static struct itest *held_t;	/* for a request on a new connection */

static void *
held_worker(void *arg)
{
	struct held_req *h = arg;
	int err = 0;

	h->ino = h->c ? itc_served_ino_on(h->c, h->id, &err) :
	    itc_served_ino(held_t, h->id, &err);
	h->err = -err;
	h->done_ms = clock_mono_ms();
	atomic_store(&h->done, true);
	return NULL;
}

static void
held_case(bool commit)
{
	static const char *const env[] = {
	    "HANDOFF_STALL_AT=s-after-drained-recv", NULL };
	struct baton_paths bp;
	struct held_req h[2] = { { .id = "held-persistent" },
	    { .id = "held-fresh" } };
	pthread_t th[2];
	struct itest t;
	char out[4096];
	uint64_t t0, allocs = 0;
	pid_t old, now, up, sup;
	int status = 0, err = 0, i;

	if (geteuid() != 0)
		tap_skip("needs root (namespaces)");
	it_setup(&t);
	held_t = &t;
	require((sup = it_start_supervisor(&t, env)) > 0, "supervisor");
	require((old = it_wait_serving(&t, 15000)) > 0, "serving");
	paths_init(&bp, t.root);
	require(nsclient_open(bp.ns_socket, &h[0].c) == 0, "client");
	up = fork();
	if (up == 0)
		_exit(it_upgrade(&t, out, sizeof(out), NULL));
	require(itc_wait_stalled(&t, "s-after-drained-recv", 10000) == sup,
	    "the supervisor stopped after DRAINED");
	/* Reads: answered by the draining incumbent, on a new connection. */
	t0 = clock_mono_ms();
	now = it_ns_status(&t, NULL, &allocs);
	check(now == old && clock_mono_ms() - t0 < 2000,
	    "STATUS answered by the draining incumbent (pid %d, %llu ms)",
	    (int)now, (unsigned long long)(clock_mono_ms() - t0));
	/* Changes: held, on an old connection and on one accepted now. */
	require(pthread_create(&th[0], NULL, held_worker, &h[0]) == 0, "t0");
	require(pthread_create(&th[1], NULL, held_worker, &h[1]) == 0, "t1");
	usleep(500000);
	check(!atomic_load(&h[0].done) && !atomic_load(&h[1].done),
	    "changes are held while the incumbent drains");
	t0 = clock_mono_ms();
	if (commit)
		kill(sup, SIGCONT);
	else
		kill(sup, SIGKILL);
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		check(h[i].err == 0 && h[i].ino > 0, "%s: created after the "
		    "%s (%d, %llu ms)", h[i].id, commit ? "move" : "resume",
		    h[i].err, (unsigned long long)(h[i].done_ms - t0));
	}
	waitpid(up, &status, 0);
	if (commit) {
		check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "the upgrade commits (status %d)", status);
		now = it_wait_serving(&t, 15000);
		check(now > 0 && now != old, "the successor serves (%d)",
		    (int)now);
	} else {
		t0 = clock_mono_ms();
		while (it_alive(sup) && clock_mono_ms() - t0 < 5000)
			usleep(10000);
		now = it_ns_status(&t, NULL, NULL);
		check(now == old, "the incumbent serves again (%d)", (int)now);
	}
	/* Each was created once: asking again hands back the same one. */
	for (i = 0; i < 2; i++)
		check(itc_served_ino(&t, h[i].id, &err) == h[i].ino,
		    "%s: the same namespace when asked again (%d)", h[i].id,
		    err);
	check(it_ns_status(&t, NULL, &allocs) > 0 && allocs == 2,
	    "two allocations served (%llu)", (unsigned long long)allocs);
	nsclient_close(h[0].c);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
}

TEST_T(changes_held_in_drain_move_to_successor, 120)
{
	held_case(true);
}

TEST_T(changes_held_in_drain_served_on_resume, 120)
{
	held_case(false);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
