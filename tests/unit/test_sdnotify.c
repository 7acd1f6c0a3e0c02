/*
 * test_sdnotify: what baton-supervisor tells systemd.  READY carries
 * MAINPID, RELOADING carries MONOTONIC_USEC (near now) and
 * EXTEND_TIMEOUT_USEC, WATCHDOG=1 comes every half WATCHDOG_USEC from the
 * loop, and nothing is sent or armed without NOTIFY_SOCKET.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "supervisor/sdnotify.h"
#include "tests/lib/tap.h"

static int
listen_notify(char *path, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	int fd;

	snprintf(path, len, "/tmp/baton-sdn-%d.sock", (int)getpid());
	unlink(path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	require(fd >= 0, "socket");
	require(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setenv("NOTIFY_SOCKET", path, 1);
	return fd;
}

static const char *
next(int fd)
{
	static char buf[1024];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void
stop_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void
close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

TEST(messages_and_watchdog)
{
	char path[108], want[64];
	const char *m, *p;
	struct timespec ts;
	unsigned long long mono, now;
	uv_loop_t loop;
	uv_timer_t stop;
	int fd, watchdogs = 0;

	fd = listen_notify(path, sizeof(path));
	setenv("WATCHDOG_USEC", "100000", 1);
	unsetenv("WATCHDOG_PID");
	uv_loop_init(&loop);
	sdnotify_init(&loop);
	uv_timer_init(&loop, &stop);
	uv_timer_start(&stop, stop_cb, 260, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	while (strcmp(next(fd), "WATCHDOG=1") == 0)
		watchdogs++;
	check(watchdogs >= 4 && watchdogs <= 7, "WATCHDOG=1 every 50 ms "
	    "for 260 ms: %d", watchdogs);

	sdnotify_ready("agent serving");
	m = next(fd);
	snprintf(want, sizeof(want), "MAINPID=%d\n", (int)getpid());
	check(strncmp(m, "READY=1\n", 8) == 0 && strstr(m, want) &&
	    strstr(m, "STATUS=agent serving"), "READY: %s", m);

	sdnotify_reloading("handoff in progress", 1000);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000;
	m = next(fd);
	p = strstr(m, "MONOTONIC_USEC=");
	mono = p ? strtoull(p + 15, NULL, 10) : 0;
	check(strncmp(m, "RELOADING=1\n", 12) == 0 && p &&
	    mono <= now && now - mono < 1000000, "RELOADING with "
	    "MONOTONIC_USEC near now: %s", m);
	check(strstr(m, "EXTEND_TIMEOUT_USEC=") != NULL, "and extends: %s", m);

	sdnotify_stopping();
	check(strcmp(next(fd), "STOPPING=1") == 0, "STOPPING=1");

	uv_walk(&loop, close_cb, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	check_eq(uv_loop_close(&loop), 0);
	close(fd);
	unlink(path);
}

TEST(silent_without_notify_socket)
{
	char path[108];
	int fd = listen_notify(path, sizeof(path));

	unsetenv("NOTIFY_SOCKET");
	check_eq(sdnotify_send("READY=1"), 0);
	sdnotify_ready("x");
	check(next(fd)[0] == '\0', "nothing sent");
	close(fd);
	unlink(path);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
