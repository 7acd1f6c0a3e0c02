/*
 * baton-reload: run a reload command K times back to back and record when
 * each one started and ended, on the clock baton-load's --trace uses
 * (CLOCK_MONOTONIC microseconds), so a benchmark can tell the requests
 * served during a handoff from those served outside one.
 *
 * The command is run directly (no shell), its stdout captured (the first
 * line is kept: `batonctl upgrade --json` prints its phases there), its
 * stderr passed through.  One line per run goes to --out:
 *
 *	start_us end_us exit_status first_line_of_stdout
 *
 * Runs stop after --count, after --max-seconds, or on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/version.h"

#define OUT_LINE 4096

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Run argv once; first stdout line into line.  Exit status or -errno. */
static int
run_once(char **argv, char *line, size_t len)
{
	char buf[OUT_LINE];
	size_t got = 0;
	ssize_t n;
	pid_t pid;
	int p[2], st, r;
	char *nl;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "baton-reload: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		if (got < sizeof(buf) - 1)
			n = read(p[0], buf + got, sizeof(buf) - 1 - got);
		else {
			char sink[512];

			n = read(p[0], sink, sizeof(sink));
			if (n > 0)
				continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	buf[got] = '\0';
	if ((nl = strchr(buf, '\n')))
		*nl = '\0';
	snprintf(line, len, "%s", buf[0] ? buf : "-");
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: baton-reload --count K --out FILE [--pause-ms N] [--max-seconds N]\n"
"                    -- COMMAND [ARG]...\n"
"\n"
"Run COMMAND K times, one after the other, with N ms (default 0) between\n"
"the end of one run and the start of the next, and stop early after\n"
"--max-seconds (default 600) or on SIGINT/SIGTERM.  Each run appends\n"
"\"start_us end_us status first-stdout-line\" to FILE (CLOCK_MONOTONIC\n"
"microseconds, the clock of baton-load --trace).  Prints how many runs\n"
"exited 0.  Exit status 0 when every run exited 0, 1 otherwise.\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },
		{ "pause-ms", required_argument, NULL, 'p' },
		{ "max-seconds", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	long count = 0, pause_ms = 0, max_s = 600, i, good = 0;
	char line[OUT_LINE];
	uint64_t t0, t1, begin;
	FILE *f;
	int c, r;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'c': count = atol(optarg); break;
		case 'o': out = optarg; break;
		case 'p': pause_ms = atol(optarg); break;
		case 'm': max_s = atol(optarg); break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("baton-reload %s\n", baton_version); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (!out || count < 1 || pause_ms < 0 || max_s < 1 || max_s > 86400 ||
	    optind >= argc) {
		usage(stderr);
		return 64;
	}
	f = fopen(out, "we");
	if (!f) {
		fprintf(stderr, "baton-reload: open %s: %s\n", out,
		    strerror(errno));
		return 73;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	begin = clock_mono_ms();
	for (i = 0; i < count && !stop; i++) {
		if (clock_mono_ms() - begin > (uint64_t)max_s * 1000) {
			fprintf(stderr, "baton-reload: --max-seconds %ld reached "
			    "after %ld runs\n", max_s, i);
			break;
		}
		t0 = clock_mono_us();
		r = run_once(argv + optind, line, sizeof(line));
		t1 = clock_mono_us();
		fprintf(f, "%" PRIu64 " %" PRIu64 " %d %s\n", t0, t1, r, line);
		fflush(f);
		good += r == 0;
		if (pause_ms)
			usleep((useconds_t)pause_ms * 1000);
	}
	fclose(f);
	printf("reloads   %ld run, %ld exited 0\n", i, good);
	return good == i ? 0 : 1;
}
