/*
 * baton-reap: run a server and everything it ever forks as this process's
 * descendants (PR_SET_CHILD_SUBREAPER), wait until the last of them has
 * exited, and report the CPU time they used in total (getrusage
 * RUSAGE_CHILDREN: every descendant that was waited for, by us or by its
 * own parent).  This measures a supervisor and all its agents, or an nginx
 * whose new master outlived the old one, the same way.
 *
 * Signals: SIGTERM/SIGINT are passed on to the direct child while it
 * lives.  After --max-seconds the whole process group is killed, so a
 * benchmark never leaves a server behind.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/version.h"

static volatile sig_atomic_t child_pid, server_pgid, got_sig;

static void
on_signal(int sig)
{
	got_sig = sig;
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

static void
on_alarm(int sig)
{
	(void)sig;
	/* Bounded: take the server's whole process group down. */
	if (server_pgid > 0)
		kill(-(pid_t)server_pgid, SIGKILL);
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: baton-reap --out FILE [--pidfile FILE] [--max-seconds N]\n"
"                  -- COMMAND [ARG]...\n"
"\n"
"Run COMMAND as a child subreaper, wait for it and every process it left\n"
"behind, then write to FILE, one \"key value\" per line: cpu_user_s,\n"
"cpu_sys_s, cpu_s (all descendants together), maxrss_kb (largest single\n"
"process), exit (COMMAND's status) and seconds.  --pidfile gets COMMAND's\n"
"pid, which leads a process group of its own.  After --max-seconds\n"
"(default 1800) that process group is killed.\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "max-seconds", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL, *pidfile = NULL;
	long max_s = 1800;
	int c, st, ex = -1;
	struct rusage ru;
	uint64_t t0;
	pid_t pid, w;
	FILE *f;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'p': pidfile = optarg; break;
		case 'm': max_s = atol(optarg); break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("baton-reap %s\n", baton_version); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (!out || optind >= argc || max_s < 1 || max_s > 86400) {
		usage(stderr);
		return 64;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		fprintf(stderr, "baton-reap: PR_SET_CHILD_SUBREAPER: %s\n",
		    strerror(errno));
		return 69;
	}
	t0 = clock_mono_ms();
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "baton-reap: fork: %s\n", strerror(errno));
		return 71;
	}
	if (pid == 0) {
		setpgid(0, 0);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "baton-reap: exec %s: %s\n", argv[optind],
		    strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);	/* either side may win the race */
	child_pid = pid;
	server_pgid = pid;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)max_s);
	if (pidfile && (f = fopen(pidfile, "we"))) {
		fprintf(f, "%d\n", (int)pid);
		fclose(f);
	}
	for (;;) {
		w = waitpid(-1, &st, 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;	/* ECHILD: the last descendant is gone */
		if (w == pid) {
			child_pid = 0;
			ex = WIFEXITED(st) ? WEXITSTATUS(st) :
			    128 + WTERMSIG(st);
		}
	}
	getrusage(RUSAGE_CHILDREN, &ru);
	f = fopen(out, "we");
	if (!f) {
		fprintf(stderr, "baton-reap: open %s: %s\n", out,
		    strerror(errno));
		return 73;
	}
	fprintf(f, "cpu_user_s %.3f\ncpu_sys_s %.3f\ncpu_s %.3f\n"
	    "maxrss_kb %ld\nexit %d\nseconds %.3f\n",
	    (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
	    ru.ru_maxrss, ex, (double)(clock_mono_ms() - t0) / 1000.0);
	fclose(f);
	return 0;
}
