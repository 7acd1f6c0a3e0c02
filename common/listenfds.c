/*
 * listenfds: inherit listeners the systemd way (sd_listen_fds(3)).
 *
 * Invariants:
 *  - Nothing is handed to the caller unless the whole set checks out:
 *    every fd from 3 is an open socket and the names match the count.
 *  - LISTEN_* are removed from the environment whatever the outcome, so
 *    a child we spawn later never sees a stale LISTEN_PID.
 *  - Accepted listeners are CLOEXEC: the only way one reaches a child is
 *    the spawn path placing it explicitly.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/listenfds.h"

/* Strict decimal: digits only, no sign, no spaces, no overflow. */
static int
parse_ulong(const char *s, unsigned long lim, unsigned long *ret)
{
	unsigned long v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (lim - (unsigned long)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*ret = v;
	return 0;
}

static void
unset_all(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/* Split "a:b:c" into out[i].name; the count must be exactly n. */
static int
parse_names(const char *s, struct listenfd *out, unsigned n)
{
	unsigned i = 0;

	for (;;) {
		const char *end = strchr(s, ':');
		size_t len = end ? (size_t)(end - s) : strlen(s);

		if (i == n)
			return -EINVAL;
		if (len >= LISTENFDS_NAME_MAX)
			return -ENAMETOOLONG;
		if (len == 0)
			snprintf(out[i].name, sizeof(out[i].name), "unknown");
		else {
			memcpy(out[i].name, s, len);
			out[i].name[len] = '\0';
		}
		i++;
		if (!end)
			break;
		s = end + 1;
	}
	return i == n ? 0 : -EINVAL;
}

int
listenfds_parse(struct listenfd *out, unsigned max, unsigned *ret_n)
{
	struct listenfd tmp[LISTENFDS_MAX];
	const char *e;
	unsigned long pid, n;
	unsigned i;
	int r;

	e = getenv("LISTEN_PID");
	if (e) {
		r = parse_ulong(e, INT_MAX, &pid);
		if (r < 0)
			goto out;
		if ((pid_t)pid != getpid()) {
			n = 0;
			goto done;
		}
	}
	e = getenv("LISTEN_FDS");
	if (!e) {
		n = 0;
		goto done;
	}
	r = parse_ulong(e, INT_MAX - LISTENFDS_START, &n);
	if (r < 0)
		goto out;
	if (n > max || n > LISTENFDS_MAX) {
		r = -E2BIG;
		goto out;
	}
	if (n > 0 && !out) {
		r = -EINVAL;
		goto out;
	}

	for (i = 0; i < n; i++) {
		struct stat st;

		tmp[i].fd = LISTENFDS_START + (int)i;
		snprintf(tmp[i].name, sizeof(tmp[i].name), "unknown");
		if (fstat(tmp[i].fd, &st) < 0) {
			r = -errno;
			goto out;
		}
		if (!S_ISSOCK(st.st_mode)) {
			r = -ENOTSOCK;
			goto out;
		}
	}
	e = getenv("LISTEN_FDNAMES");
	if (e && n > 0) {
		r = parse_names(e, tmp, (unsigned)n);
		if (r < 0)
			goto out;
	} else if (e && *e) {
		/* Names without fds: the count cannot match. */
		r = -EINVAL;
		goto out;
	}
	for (i = 0; i < n; i++) {
		int fl = fcntl(tmp[i].fd, F_GETFD);

		if (fl < 0 || fcntl(tmp[i].fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
			r = -errno;
			goto out;
		}
		out[i] = tmp[i];
	}
done:
	*ret_n = (unsigned)n;
	r = 0;
out:
	unset_all();
	return r;
}

const struct listenfd *
listenfds_find(const struct listenfd *l, unsigned n, const char *name)
{
	unsigned i;

	if (!l || !name)
		return NULL;
	for (i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0)
			return &l[i];
	return NULL;
}

void
listenfds_format(pid_t pid, const char *const *names, unsigned n,
    char *fds_var, char *names_var, char *pid_var)
{
	char *p;
	unsigned i;

	snprintf(fds_var, 32, "LISTEN_FDS=%u", n);
	snprintf(pid_var, 32, "LISTEN_PID=%ld", (long)pid);
	p = names_var + sprintf(names_var, "LISTEN_FDNAMES=");
	for (i = 0; i < n; i++) {
		const char *nm = names && names[i] && *names[i] ?
		    names[i] : "unknown";
		size_t len = strnlen(nm, LISTENFDS_NAME_MAX - 1);

		if (i > 0)
			*p++ = ':';
		memcpy(p, nm, len);
		p += len;
	}
	*p = '\0';
}
