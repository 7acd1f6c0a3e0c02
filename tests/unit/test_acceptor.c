/*
 * test_acceptor: the one accept loop.  Allowed peers reach the callback
 * with their credentials; at most per_wake are taken per wake-up; when
 * accept fails with EMFILE the loop stops polling for the back-off
 * instead of spinning, and takes the waiting connection once fds are
 * free again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "common/usock.h"
#include "transport/acceptor.h"
#include "transport/wire.h"
#include "tests/lib/tap.h"

struct ctx {
	uv_loop_t loop;
	uv_check_t check;
	unsigned accepted, wakes;
	int fds[64];
	uid_t uid;
	pid_t pid;
};

static void
accept_cb(void *data, const struct acceptor_peer *p)
{
	struct ctx *x = data;

	x->uid = p->uid;
	x->pid = p->pid;
	if (x->accepted < 64)
		x->fds[x->accepted] = p->fd;
	else
		close(p->fd);
	x->accepted++;
}

static void
check_cb(uv_check_t *c)
{
	struct ctx *x = c->data;

	x->wakes++;
}

static void
setup(struct ctx *x, char *path, size_t len, int *lfd)
{
	char dir[] = "/tmp/baton-acc.XXXXXX";

	memset(x, 0, sizeof(*x));
	require(mkdtemp(dir) != NULL, "tmpdir");
	snprintf(path, len, "%s/s.sock", dir);
	*lfd = usock_listen(path, 0600, 64);
	require(*lfd >= 0, "listen");
	uv_loop_init(&x->loop);
	uv_check_init(&x->loop, &x->check);
	x->check.data = x;
	uv_check_start(&x->check, check_cb);
}

static void
teardown(struct ctx *x, struct acceptor *a, int lfd, const char *path)
{
	unsigned i;

	acceptor_stop(a);
	uv_close((uv_handle_t *)&x->check, NULL);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	uv_loop_close(&x->loop);
	for (i = 0; i < x->accepted && i < 64; i++)
		close(x->fds[i]);
	close(lfd);
	unlink(path);
}

/* uv_stop as a timer callback takes the loop, not the timer. */
static void
stop_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Run the loop for ms (the timer is closed before it goes out of scope). */
static void
run_for(struct ctx *x, unsigned ms)
{
	uv_timer_t t;

	uv_timer_init(&x->loop, &t);
	uv_timer_start(&t, stop_cb, ms, 0);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&x->loop, UV_RUN_NOWAIT);
}

TEST(allowed_peer_reaches_the_owner_with_credentials)
{
	struct ctx x;
	struct acceptor *a;
	char path[128];
	int lfd, c;

	setup(&x, path, sizeof(path), &lfd);
	require(acceptor_start(&x.loop, lfd, &(struct acceptor_opts){ 0 },
	    accept_cb, &x, &a) == 0, "start");
	c = wire_connect(path, 1000);
	require(c >= 0, "connect");
	run_for(&x, 200);
	check_eq(x.accepted, 1);
	check_eq(x.uid, geteuid());
	check_eq(x.pid, getpid());
	check(acceptor_active(a), "active");
	close(c);
	teardown(&x, a, lfd, path);
}

TEST(emfile_backs_off_instead_of_spinning)
{
	struct ctx x;
	struct acceptor *a;
	struct rlimit old, low;
	char path[128];
	int lfd, c, probe;
	unsigned wakes;

	setup(&x, path, sizeof(path), &lfd);
	require(acceptor_start(&x.loop, lfd, &(struct acceptor_opts){
	    .backoff_ms = 100 }, accept_cb, &x, &a) == 0, "start");
	c = wire_connect(path, 1000);
	require(c >= 0, "connect");
	/* No fd left for accept4: every further open fails with EMFILE. */
	require(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
	probe = dup(0);
	require(probe >= 0, "dup");
	close(probe);
	low = old;
	low.rlim_cur = (rlim_t)probe;
	require(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit");
	run_for(&x, 500);
	wakes = x.wakes;
	check_eq(x.accepted, 0);
	/* A spinning level-triggered loop wakes thousands of times in 500 ms. */
	check(wakes < 50, "the loop slept through the back-off (%u wakes)",
	    wakes);
	require(setrlimit(RLIMIT_NOFILE, &old) == 0, "restore");
	run_for(&x, 400);
	check_eq(x.accepted, 1);
	check(acceptor_active(a), "polling again after the back-off");
	close(c);
	teardown(&x, a, lfd, path);
}

TEST(per_wake_bounds_each_wakeup)
{
	struct ctx x;
	struct acceptor *a;
	char path[128];
	int lfd, c[10], i;

	setup(&x, path, sizeof(path), &lfd);
	require(acceptor_start(&x.loop, lfd, &(struct acceptor_opts){
	    .per_wake = 3 }, accept_cb, &x, &a) == 0, "start");
	for (i = 0; i < 10; i++)
		c[i] = wire_connect(path, 1000);
	uv_run(&x.loop, UV_RUN_ONCE);
	check(x.accepted == 3, "one wake-up takes per_wake (3), got %u",
	    x.accepted);
	run_for(&x, 200);
	check_eq(x.accepted, 10);
	for (i = 0; i < 10; i++)
		close(c[i]);
	teardown(&x, a, lfd, path);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
