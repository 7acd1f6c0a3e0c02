/*
 * tap: run each registered case in a forked child with a timeout and
 * print TAP.  A case fails when a check failed (child exit 1), it crashed
 * or timed out; exit 77 from the child is a skip with the reason the child
 * wrote to a pipe.  One process per case keeps cases from leaking state
 * (fds, signal handlers, children) into each other.
 */
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/tap.h"

#define MAX_CASES 256

/* Present only in sanitizer builds. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

struct tcase {
	const char *name;
	tap_fn fn;
	int timeout;
	bool bench;	/* runs only when TAP_ONLY names it */
};

static struct tcase cases[MAX_CASES];
static int ncases;
static int failures;	/* in the child: failed checks */
static int skip_fd = -1;	/* in the child: where the skip reason goes */
static const char *current;	/* in the child: the running case */

const char *
tap_current(void)
{
	return current;
}

int
tap_failures(void)
{
	return failures;
}

void
tap_register(const char *name, tap_fn fn, int timeout_s)
{
	if (ncases == MAX_CASES) {
		fprintf(stderr, "tap: too many cases\n");
		abort();
	}
	cases[ncases++] = (struct tcase){ name, fn, timeout_s, false };
}

void
tap_register_bench(const char *name, tap_fn fn, int timeout_s)
{
	tap_register(name, fn, timeout_s);
	cases[ncases - 1].bench = true;
}

/* A case of this run: the one TAP_ONLY names, else every non-bench one. */
static bool
selected(const struct tcase *c, const char *only)
{
	return only ? strcmp(only, c->name) == 0 : !c->bench;
}

bool
tap_check(bool cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		return true;
	failures++;
	printf("#   check failed at %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return false;
}

void
tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void
tap_bail(void)
{
	fflush(stdout);
	_exit(1);
}

void
tap_skip(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	ssize_t r;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (skip_fd >= 0)
		r = write(skip_fd, buf, strlen(buf));
	(void)r;
	fflush(stdout);
	_exit(77);
}

int
tap_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the DIR's own fd */
}

long
tap_read_long(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strtol(buf, NULL, 10);
}

long
tap_proc_status(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int
run_case(int idx, const struct tcase *c, char *why, size_t whylen)
{
	int p[2], status = 0, timeout = c->timeout;
	const char *env = getenv("TAP_TIMEOUT");
	pid_t pid;
	time_t start;
	ssize_t n;

	if (timeout <= 0)
		timeout = env ? atoi(env) : 60;
	if (timeout <= 0)
		timeout = 60;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		skip_fd = p[1];
		failures = 0;	/* the parent's count of failed cases is not ours */
		current = c->name;
		setpgid(0, 0);
		c->fn();
		/* _exit skips LeakSanitizer's exit hook: check for leaks here. */
		if (__lsan_do_recoverable_leak_check &&
		    __lsan_do_recoverable_leak_check() != 0) {
			printf("#   LeakSanitizer found leaks\n");
			failures++;
		}
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	close(p[1]);
	start = time(NULL);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (time(NULL) - start > timeout) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(why, whylen, "timed out after %d s", timeout);
			close(p[0]);
			return 1;
		}
		usleep(5000);
	}
	/* Whatever the case left behind in its process group goes too. */
	kill(-pid, SIGKILL);
	n = read(p[0], why, whylen - 1);
	why[n > 0 ? n : 0] = '\0';
	close(p[0]);
	(void)idx;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
		return 77;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		snprintf(why, whylen, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, whylen, "exit %d", WEXITSTATUS(status));
	return 1;
}

int
tap_main(int argc, char **argv)
{
	const char *only = getenv("TAP_ONLY");
	int i, n = 0, skipped = 0;
	char why[512];

	(void)argc;
	(void)argv;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < ncases; i++)
		if (selected(&cases[i], only))
			n++;
	printf("1..%d\n", n);
	n = 0;
	for (i = 0; i < ncases; i++) {
		int r;

		if (!selected(&cases[i], only))
			continue;
		n++;
		why[0] = '\0';
		r = run_case(n, &cases[i], why, sizeof(why));
		if (r == 0) {
			printf("ok %d - %s\n", n, cases[i].name);
		} else if (r == 77) {
			printf("ok %d - %s # SKIP %s\n", n, cases[i].name, why);
			skipped++;
		} else {
			printf("not ok %d - %s (%s)\n", n, cases[i].name, why);
			failures++;
		}
	}
	if (n > 0 && skipped == n)
		return 0;
	return failures ? 1 : 0;
}
