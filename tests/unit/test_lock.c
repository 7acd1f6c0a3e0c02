/*
 * test_lock: one owner per data dir.  A live holder is refused and named,
 * a SIGKILLed holder's lock is taken over and its stale pidfile replaced,
 * a waiter gets the lock when the holder lets go, and lock_probe reports
 * all of it without taking anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/lock.h"
#include "tests/lib/tap.h"

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/baton-lock-XXXXXX");
	require(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void
teardown(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/baton.lock", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/baton.pid", dir);
	unlink(p);
	rmdir(dir);
}

/* The pid in the pidfile, 0 when missing. */
static long
pidfile(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/baton.pid", dir);
	return tap_read_long(p);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * Fork a holder: it takes the lock, writes one byte to the returned fd's
 * peer, then keeps the lock until *ret_go is closed (or for hold_ms when
 * hold_ms > 0).  Returns its pid once it holds the lock.
 */
static pid_t
spawn_holder(int *ret_go, int hold_ms)
{
	int ready[2], go[2];
	char c;
	pid_t pid;

	require(pipe2(ready, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0,
	    "pipe");
	fflush(stdout);
	pid = fork();
	require(pid >= 0, "fork");
	if (pid == 0) {
		struct dirlock *l = NULL;

		close(ready[0]);
		close(go[1]);
		if (lock_acquire(dir, &l, NULL) != 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		if (hold_ms > 0) {
			struct timespec ts = { hold_ms / 1000,
			    (hold_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		} else if (read(go[0], &c, 1) < 0) {
			_exit(1);
		}
		lock_release(l);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	require(read(ready[0], &c, 1) == 1, "holder did not take the lock");
	close(ready[0]);
	*ret_go = go[1];
	return pid;
}

TEST(acquire_release)
{
	struct dirlock *l = NULL;
	char p[128];
	struct stat st;
	pid_t who = -1;
	int r, fl;

	setup();
	r = lock_probe(dir, &who);
	check_eq(r, 0);
	snprintf(p, sizeof(p), "%s/baton.lock", dir);
	check(access(p, F_OK) < 0, "probe does not create the lock file");

	r = lock_acquire(dir, &l, &who);
	require(r == 0, "lock_acquire: %d", r);
	check_eq(pidfile(), getpid());
	check(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600,
	    "lock file mode 0600");
	fl = fcntl(lock_fd(l), F_GETFD);
	check(fl >= 0 && (fl & FD_CLOEXEC), "lock fd is CLOEXEC");

	/* Held, even against ourselves through another open. */
	r = lock_probe(dir, &who);
	check_eq(r, 1);
	check_eq(who, getpid());
	r = lock_acquire(dir, &(struct dirlock *){ NULL }, &who);
	check_eq(r, -EWOULDBLOCK);

	lock_release(l);
	check_eq(pidfile(), 0);
	check(access(p, F_OK) == 0, "lock file stays after release");
	r = lock_probe(dir, &who);
	check_eq(r, 0);
	lock_release(NULL);

	r = lock_acquire(dir, &l, NULL);
	check_eq(r, 0);
	lock_release(l);
	teardown();
}

TEST(bad_dir)
{
	struct dirlock *l = NULL;
	pid_t who;
	int r;

	r = lock_acquire("/nonexistent/baton-dir", &l, &who);
	check_eq(r, -ENOENT);
	r = lock_probe("/nonexistent/baton-dir", &who);
	check_eq(r, 0);
}

TEST(live_holder_is_refused_and_named)
{
	struct dirlock *l = NULL;
	pid_t holder, who = -1;
	int go, status, r, before = tap_count_fds();

	setup();
	holder = spawn_holder(&go, 0);
	r = lock_acquire(dir, &l, &who);
	check_eq(r, -EWOULDBLOCK);
	check_eq(who, holder);
	check(l == NULL, "no lock handed out");
	r = lock_probe(dir, &who);
	check_eq(r, 1);
	check_eq(who, holder);
	check_eq(pidfile(), holder);
	/* Refusal and probe leak nothing. */
	check_eq(tap_count_fds(), before + 1);

	close(go);
	require(waitpid(holder, &status, 0) == holder, "waitpid");
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "holder ok");
	r = lock_acquire(dir, &l, &who);
	check_eq(r, 0);
	check_eq(pidfile(), getpid());
	lock_release(l);
	teardown();
}

TEST(dead_holder_is_taken_over)
{
	struct dirlock *l = NULL;
	pid_t holder, who = -1;
	int go, status, r;

	setup();
	holder = spawn_holder(&go, 0);
	kill(holder, SIGKILL);
	require(waitpid(holder, &status, 0) == holder, "waitpid");
	check(WIFSIGNALED(status), "holder killed");
	/* Its pidfile survived: stale, but it must not block anyone. */
	check_eq(pidfile(), holder);
	r = lock_probe(dir, &who);
	check_eq(r, 0);
	r = lock_acquire(dir, &l, &who);
	check_eq(r, 0);
	check_eq(pidfile(), getpid());
	lock_release(l);
	close(go);
	teardown();
}

TEST(acquire_wait_gets_released_lock)
{
	struct dirlock *l = NULL;
	pid_t holder, who = -1;
	long t0, dt;
	int go, r;

	setup();
	holder = spawn_holder(&go, 300);
	t0 = now_ms();
	r = lock_acquire_wait(dir, 5000, &l, &who);
	dt = now_ms() - t0;
	check_eq(r, 0);
	check(dt >= 200 && dt < 4000, "waited %ld ms", dt);
	check_eq(pidfile(), getpid());
	lock_release(l);
	waitpid(holder, NULL, 0);
	close(go);
	teardown();
}

TEST(acquire_wait_times_out)
{
	struct dirlock *l = NULL;
	pid_t holder, who = -1;
	long t0, dt;
	int go, r;

	setup();
	holder = spawn_holder(&go, 0);
	t0 = now_ms();
	r = lock_acquire_wait(dir, 200, &l, &who);
	dt = now_ms() - t0;
	check_eq(r, -EWOULDBLOCK);
	check_eq(who, holder);
	check(dt >= 200 && dt < 2000, "gave up after %ld ms", dt);
	close(go);
	waitpid(holder, NULL, 0);
	teardown();
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
