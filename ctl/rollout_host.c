/*
 * rollout_host: the part of `batonctl rollout` that runs on each host
 * under pdsh.  The gate counts the failure marks other hosts left before
 * it (so no host starts once the budget is spent), runs the remote
 * command with a timeout, and ends with one trailer line the coordinator
 * matches to the host; the probe checks a binary exists and is executable.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"
#include "ctl/rollout.h"

static unsigned
count_failures(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	if (!d)
		return UINT32_MAX;	/* fail closed: no new host */
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "failed.", 7) == 0)
			n++;
	closedir(d);
	return n;
}

static int
map_lookup(const char *map, const char *host, char *out, size_t len)
{
	char line[HOST_MAX + BIN_MAX + 8], *tab;
	FILE *f = fopen(map, "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!(tab = strchr(line, '\t')))
			continue;
		*tab = '\0';
		if (strcmp(line, host) == 0) {
			snprintf(out, len, "%s", tab + 1);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

static void
trailer(bool skipped, const char *why, int code, bool timed_out, uint64_t ms)
{
	fflush(stdout);
	printf(TRAILER "{\"skipped\":%s,\"why\":\"%s\",\"exit\":%d,"
	    "\"timed_out\":%s,\"ms\":%" PRIu64 "}\n", skipped ? "true" : "false",
	    why, code, timed_out ? "true" : "false", ms);
	fflush(stdout);
}

/* Wait for pid up to ms; 1 exited (status filled), 0 timeout, -errno. */
static int
wait_child(pid_t pid, int pidfd, uint64_t ms, int *status)
{
	uint64_t until = clock_mono_ms() + ms;
	struct pollfd pf = { .fd = pidfd, .events = POLLIN };
	int r;

	for (;;) {
		r = (int)waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
		uint64_t now = clock_mono_ms();
		if (now >= until)
			return 0;
		if (pidfd >= 0)
			(void)poll(&pf, 1, (int)(until - now));
		else
			usleep(10000);
	}
}

/*
 * A template word with the host put in, as pdsh's exec module would:
 * %h the host as listed (user@host when given so), %u the user of
 * user@host or else ours, %% a '%'.  Owned, or NULL.
 */
static char *
subst(const char *word, const char *host)
{
	const char *at = strchr(host, '@'), *p;
	struct passwd *pw = getpwuid(getuid());
	char user[64];
	size_t cap = strlen(word) * 4 + strlen(host) * 4 + 128, o = 0;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	snprintf(user, sizeof(user), "%.*s", at ? (int)(at - host) : 63,
	    at ? host : pw ? pw->pw_name : "root");
	for (p = word; *p && o + 1 < cap; p++) {
		const char *add = NULL;

		if (p[0] == '%' && (p[1] == 'h' || p[1] == 'u' || p[1] == '%')) {
			add = p[1] == 'h' ? host : p[1] == 'u' ? user : "%";
			p++;
		}
		if (add) {
			if (o + strlen(add) + 1 >= cap)
				break;
			memcpy(out + o, add, strlen(add));
			o += strlen(add);
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	return out;
}

int
rollout_exec_host(const char *host, const char *gate, unsigned budget,
    uint64_t timeout_ms, const char *map, char **cmd, int ncmd)
{
	char *argv[MAX_TMPL + 16], binary[BIN_MAX], path[PATH_MAX + HOST_MAX];
	uint64_t t0 = clock_mono_ms();
	int i, k = 0, status = 0, code, pidfd = -1, w, fd;
	bool timed_out = false;
	pid_t pid;

	if (ncmd <= 0 || ncmd > MAX_TMPL + 8) {
		fprintf(stderr, "rollout: %s: no command\n", host);
		trailer(false, "", 64, false, 0);
		return 0;
	}
	if (gate) {
		snprintf(path, sizeof(path), "%s/stop", gate);
		if (access(path, F_OK) == 0) {
			trailer(true, "interrupted", 0, false, 0);
			return 0;
		}
		if (count_failures(gate) > budget) {
			trailer(true, "failure budget spent", 0, false, 0);
			return 0;
		}
	}
	for (i = 0; i < ncmd; i++)
		if (!(argv[k++] = subst(cmd[i], host))) {
			fprintf(stderr, "rollout: %s: out of memory\n", host);
			trailer(false, "", 71, false, 0);
			ncmd = i;
			goto out;
		}
	if (map) {
		if (map_lookup(map, host, binary, sizeof(binary)) < 0) {
			fprintf(stderr, "rollout: %s: not in the binary map\n",
			    host);
			trailer(false, "", 64, false, 0);
			goto out;
		}
		argv[k++] = binary;
	}
	argv[k] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "rollout: %s: fork: %s\n", host, strerror(errno));
		trailer(false, "", 71, false, 0);
		goto out;
	}
	if (pid == 0) {
		setpgid(0, 0);
		execvp(argv[0], argv);
		fprintf(stderr, "exec '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	w = wait_child(pid, pidfd, timeout_ms, &status);
	if (w == 0) {
		/* Only batonctl is killed; the supervisor finishes the handoff. */
		timed_out = true;
		fprintf(stderr, "timed out after %" PRIu64 " ms; stopping the "
		    "command\n", timeout_ms);
		kill(-pid, SIGTERM);
		if (wait_child(pid, pidfd, KILL_GRACE_MS, &status) == 0) {
			kill(-pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	code = WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status);
	if (gate && (code != 0 || timed_out)) {
		/* Before our exit: pdsh reuses this slot only after it. */
		snprintf(path, sizeof(path), "%s/failed.%s", gate, host);
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
	trailer(false, "", code, timed_out, clock_mono_ms() - t0);
out:
	for (i = 0; i < ncmd; i++)
		free(argv[i]);
	return 0;
}

int
rollout_probe_binary(const char *path)
{
	struct stat st;
	const char *err = NULL;

	if (stat(path, &st) < 0)
		err = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		err = "not a regular file";
	else if (access(path, X_OK) < 0)
		err = strerror(errno);
	printf("{\"binary\":");
	json_put_str(stdout, path);
	printf(",\"ok\":%s,\"error\":", err ? "false" : "true");
	json_put_str(stdout, err);
	printf("}\n");
	return err ? 1 : 0;
}

