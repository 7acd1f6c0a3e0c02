/*
 * sdnotify: sd_notify(3) for baton-supervisor (Type=notify units).
 *
 * What it sends and when:
 * - READY=1 + MAINPID + STATUS once the agent serves (cold start,
 *   adoption, the end of a handoff);
 * - RELOADING=1 + MONOTONIC_USEC when a handoff starts (systemd >= 253
 *   wants the timestamp; older ones ignore it), and EXTEND_TIMEOUT_USEC
 *   every EXTEND_EVERY_MS while it runs: `systemctl reload` (ExecReload=
 *   batonctl upgrade) then waits for the handoff's end however long its
 *   deadline, without systemd timing the reload out;
 * - WATCHDOG=1 every WATCHDOG_USEC/2 when the unit sets WatchdogSec= (and
 *   WATCHDOG_PID, if set, is ours): the timer runs on the supervisor's
 *   loop, so a stuck loop stops the pings;
 * - STOPPING=1, STATUS=.
 * One datagram per call; errors are ignored (systemd may be gone).
 * Never blocks the loop: a notify socket whose queue is full drops the
 * datagram (MSG_DONTWAIT) instead of stalling handoffs and the watchdog.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/sdnotify.h"

#define EXTEND_EVERY_MS		5000
#define EXTEND_BY_USEC		(3 * EXTEND_EVERY_MS * 1000ULL)

static struct {
	bool inited;
	uv_timer_t watchdog;		/* WATCHDOG=1 */
	uv_timer_t extend;		/* EXTEND_TIMEOUT_USEC while reloading */
	uint64_t extend_until_ms;	/* loop time; 0 = not reloading */
} sdn;

int
sdnotify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd, r = 0;

	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return 0;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
	    (struct sockaddr *)&sa, len) < 0)
		r = -errno;
	close(fd);
	return r;
}

static uint64_t
mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static void
watchdog_cb(uv_timer_t *t)
{
	(void)t;
	(void)sdnotify_send("WATCHDOG=1");
}

static void
extend_cb(uv_timer_t *t)
{
	char msg[64];

	if (sdn.extend_until_ms == 0 || uv_now(t->loop) > sdn.extend_until_ms) {
		uv_timer_stop(t);
		return;
	}
	snprintf(msg, sizeof(msg), "EXTEND_TIMEOUT_USEC=%llu",
	    (unsigned long long)EXTEND_BY_USEC);
	(void)sdnotify_send(msg);
}

void
sdnotify_init(uv_loop_t *loop)
{
	const char *us = getenv("WATCHDOG_USEC"), *wp = getenv("WATCHDOG_PID");
	unsigned long long usec;
	char *end;

	if (!getenv("NOTIFY_SOCKET") || sdn.inited)
		return;
	sdn.inited = true;
	uv_timer_init(loop, &sdn.extend);
	uv_unref((uv_handle_t *)&sdn.extend);
	uv_timer_init(loop, &sdn.watchdog);
	uv_unref((uv_handle_t *)&sdn.watchdog);
	if (!us || (wp && strtol(wp, NULL, 10) != (long)getpid()))
		return;
	errno = 0;
	usec = strtoull(us, &end, 10);
	if (errno || *end || usec < 2000)
		return;
	uv_timer_start(&sdn.watchdog, watchdog_cb, 0, usec / 2000);
}

void
sdnotify_ready(const char *status)
{
	char msg[512];

	sdn.extend_until_ms = 0;
	if (sdn.inited)
		uv_timer_stop(&sdn.extend);
	snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d\nSTATUS=%s",
	    (int)getpid(), status);
	(void)sdnotify_send(msg);
}

void
sdnotify_reloading(const char *status, uint64_t deadline_ms)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64
	    "\nEXTEND_TIMEOUT_USEC=%llu\nSTATUS=%s", mono_usec(),
	    (unsigned long long)EXTEND_BY_USEC, status);
	(void)sdnotify_send(msg);
	if (!sdn.inited)
		return;
	/* Past the deadline the handoff aborts by itself: a margin, then stop. */
	sdn.extend_until_ms = uv_now(sdn.extend.loop) + deadline_ms + 30000;
	uv_timer_start(&sdn.extend, extend_cb, EXTEND_EVERY_MS,
	    EXTEND_EVERY_MS);
}

void
sdnotify_status(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	(void)sdnotify_send(msg);
}

void
sdnotify_stopping(void)
{
	sdn.extend_until_ms = 0;
	if (sdn.inited)
		uv_timer_stop(&sdn.extend);
	(void)sdnotify_send("STOPPING=1");
}
