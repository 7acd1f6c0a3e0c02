/*
 * crashpoint: the injector behind CRASHPOINT() (SPEC §7).
 *
 * Invariants:
 *  - The names table exists only when BATON_CRASHPOINTS is defined, so a
 *    release binary carries no point name (tests/release_no_crashpoints.sh
 *    checks this); only crashpoint_set_role() is always built, because
 *    callers set their role unconditionally.
 *  - crashpoint_hit() reads HANDOFF_CRASH_AT every time: tests arm a point
 *    with setenv() after start-up, and a hit costs one getenv() only in
 *    test builds.
 *  - A hit does nothing but open/write/close and _exit(99): no atexit
 *    handlers, no stdio flush, no libuv teardown, which is what a crash
 *    looks like to everyone else.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crashpoints/crashpoint.h"

#define ROLE_MAX 32

static char role_buf[ROLE_MAX] = "unknown";

void
crashpoint_set_role(const char *role)
{
	/* Copied: the caller's string may not outlive a late crash. */
	snprintf(role_buf, sizeof(role_buf), "%s",
	    role && *role ? role : "unknown");
}

#ifdef BATON_CRASHPOINTS

static const char *const names[CP_COUNT] = {
#define CP(ident, name) [CP_##ident] = name,
#include "crashpoints/crashpoints.def"
#undef CP
};

const char *
crashpoint_name(enum crashpoint_id id)
{
	if ((unsigned)id >= CP_COUNT)
		return NULL;
	return names[id];
}

bool
crashpoint_armed(void)
{
	const char *at = getenv("HANDOFF_CRASH_AT");
	unsigned i;

	if (!at || !*at)
		return false;
	for (i = 0; i < CP_COUNT; i++)
		if (strcmp(at, names[i]) == 0)
			return true;
	return false;
}

static void
write_marker(const char *dir, const char *name)
{
	char path[4096];
	size_t len = strlen(name), off = 0;
	int fd, n;

	n = snprintf(path, sizeof(path), "%s/crashed-%s-%ld.marker", dir,
	    role_buf, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	while (off < len) {
		ssize_t w = write(fd, name + off, len - off);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
}

void
crashpoint_hit(enum crashpoint_id id)
{
	const char *at = getenv("HANDOFF_CRASH_AT");
	const char *stall = getenv("HANDOFF_STALL_AT");
	const char *dir;
	char line[160];
	int n;

	if ((unsigned)id >= CP_COUNT)
		return;
	if (stall && strcmp(stall, names[id]) == 0) {
		/*
		 * A hung process rather than a dead one: stop here until
		 * SIGCONT, with every fd still open (so peers see no EOF).
		 */
		n = snprintf(line, sizeof(line), "level=warn role=%s pid=%ld "
		    "event=crashpoint.stall point=%s\n", role_buf,
		    (long)getpid(), names[id]);
		if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
			/* Best effort. */
		}
		raise(SIGSTOP);
		return;
	}
	if (!at || strcmp(at, names[id]) != 0)
		return;
	dir = getenv("HANDOFF_CRASH_MARKER_DIR");
	if (dir && *dir)
		write_marker(dir, names[id]);
	/* One line for whoever reads the log; stdio could be mid-write. */
	n = snprintf(line, sizeof(line),
	    "level=error role=%s pid=%ld event=crashpoint.hit point=%s\n",
	    role_buf, (long)getpid(), names[id]);
	if (n > 0 && write(STDERR_FILENO, line,
	    (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0) {
		/* Nothing to do about it: we are crashing anyway. */
	}
	_exit(99);
}

#endif /* BATON_CRASHPOINTS */
