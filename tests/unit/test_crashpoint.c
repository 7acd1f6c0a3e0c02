/*
 * test_crashpoint: the injector does what SPEC §7 promises: an armed point
 * exits 99 after leaving a marker that names it, an unarmed one is a
 * no-op, and the catalogue's names follow the naming rule.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crashpoints/crashpoint.h"
#include "tests/lib/tap.h"

#ifdef BATON_CRASHPOINTS

static char tmpdir[64];

static void
mktmp(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/baton-cp-XXXXXX");
	require(mkdtemp(tmpdir) != NULL, "mkdtemp: %s", strerror(errno));
}

/* Read a whole small file into buf; returns its length or -1. */
static ssize_t
slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* Fork; the child hits `id` (after the unarmed other) and exits 0. */
static int
run_child(const char *at, const char *dir, const char *role,
    enum crashpoint_id id, pid_t *ret_pid)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	require(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (at)
			setenv("HANDOFF_CRASH_AT", at, 1);
		else
			unsetenv("HANDOFF_CRASH_AT");
		if (dir)
			setenv("HANDOFF_CRASH_MARKER_DIR", dir, 1);
		else
			unsetenv("HANDOFF_CRASH_MARKER_DIR");
		if (role)
			crashpoint_set_role(role);
		crashpoint_hit(id == CP_s_after_o_hello ? CP_p_after_pin :
		    CP_s_after_o_hello);
		crashpoint_hit(id);
		_exit(0);
	}
	require(waitpid(pid, &status, 0) == pid, "waitpid");
	*ret_pid = pid;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(armed_point_exits_99_with_marker)
{
	char path[256], buf[128];
	pid_t pid;
	int rc;

	mktmp();
	rc = run_child("o-inside-seal", tmpdir, "incumbent",
	    CP_o_inside_seal, &pid);
	check_eq(rc, 99);
	snprintf(path, sizeof(path), "%s/crashed-incumbent-%ld.marker",
	    tmpdir, (long)pid);
	check(slurp(path, buf, sizeof(buf)) > 0, "marker %s missing", path);
	check(strcmp(buf, "o-inside-seal") == 0, "marker holds '%s'", buf);
	unlink(path);
	rmdir(tmpdir);
}

TEST(default_role_is_unknown)
{
	char path[256], buf[128];
	pid_t pid;
	int rc;

	mktmp();
	rc = run_child("p-after-pin", tmpdir, NULL, CP_p_after_pin,
	    &pid);
	check_eq(rc, 99);
	snprintf(path, sizeof(path), "%s/crashed-unknown-%ld.marker",
	    tmpdir, (long)pid);
	check(slurp(path, buf, sizeof(buf)) > 0, "marker %s missing", path);
	check(strcmp(buf, "p-after-pin") == 0, "marker holds '%s'", buf);
	unlink(path);
	rmdir(tmpdir);
}

TEST(no_marker_dir_still_exits_99)
{
	pid_t pid;
	int rc;

	rc = run_child("n-after-begin", NULL, "successor", CP_n_after_begin,
	    &pid);
	check_eq(rc, 99);
}

TEST(unarmed_points_do_nothing)
{
	unsigned i;
	pid_t pid;
	int rc;

	/* Not set, empty, unknown name, and another point's name. */
	rc = run_child(NULL, "/nonexistent", "x", CP_o_inside_seal, &pid);
	check_eq(rc, 0);
	rc = run_child("", "/nonexistent", "x", CP_o_inside_seal, &pid);
	check_eq(rc, 0);
	rc = run_child("no-such-point", "/nonexistent", "x",
	    CP_o_inside_seal, &pid);
	check_eq(rc, 0);
	rc = run_child("o-inside-drain", "/nonexistent", "x",
	    CP_o_inside_seal, &pid);
	check_eq(rc, 0);
	/* Prefix of a name is not the name. */
	rc = run_child("o-inside", "/nonexistent", "x", CP_o_inside_seal,
	    &pid);
	check_eq(rc, 0);
	unsetenv("HANDOFF_CRASH_AT");
	for (i = 0; i < CP_COUNT; i++)
		crashpoint_hit((enum crashpoint_id)i);
	check(!crashpoint_armed(), "nothing armed");
}

TEST(armed_reflects_environment)
{
	unsetenv("HANDOFF_CRASH_AT");
	check(!crashpoint_armed(), "unset");
	setenv("HANDOFF_CRASH_AT", "bogus", 1);
	check(!crashpoint_armed(), "unknown name");
	setenv("HANDOFF_CRASH_AT", "j-after-rename", 1);
	check(crashpoint_armed(), "known name");
	unsetenv("HANDOFF_CRASH_AT");
}

static bool
kebab(const char *s)
{
	size_t i, n = strlen(s);

	if (n < 3 || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9'))
			continue;
		if (s[i] == '-' && i > 0 && s[i - 1] != '-')
			continue;
		return false;
	}
	return true;
}

TEST(names_unique_kebab_with_role_prefix)
{
	static const char *const reference[] = {
		"s-after-o-hello", "s-after-journal-clear",
		"o-after-drained-sent", "o-after-seal-flock-released",
		"o-after-seal-complete-sent", "o-after-commit-recv",
		"o-inside-drain", "o-inside-seal", "n-before-handshake",
		"n-after-handshake", "n-after-begin",
		"n-before-announce-ready", NULL
	};
	unsigned i, j;

	check(crashpoint_name(CP_COUNT) == NULL, "out of range is NULL");
	for (i = 0; i < CP_COUNT; i++) {
		const char *n = crashpoint_name((enum crashpoint_id)i);

		require(n != NULL, "point %u has no name", i);
		check(kebab(n), "'%s' is not kebab-case", n);
		check(strchr("sonjp", n[0]) && n[1] == '-',
		    "'%s' has no role prefix", n);
		for (j = 0; j < i; j++)
			check(strcmp(n, crashpoint_name((enum crashpoint_id)j))
			    != 0, "'%s' listed twice", n);
	}
	for (i = 0; reference[i]; i++) {
		bool found = false;

		for (j = 0; j < CP_COUNT; j++)
			if (strcmp(reference[i],
			    crashpoint_name((enum crashpoint_id)j)) == 0)
				found = true;
		check(found, "reference point '%s' missing", reference[i]);
	}
}

#else

TEST(crashpoints_compiled_out)
{
	tap_skip("built without BATON_CRASHPOINTS (make CRASHPOINTS=1)");
}

#endif

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
