/*
 * hostlist: host lists through ClusterShell's nodeset (see hostlist.h).
 *
 * nodeset reads the expressions on stdin, one a line, and prints the
 * expanded set one name a line (-e -S '\n'); stdin, stdout and stderr
 * are served by one poll loop, so no size of list or of complaint can
 * deadlock the two processes.  Every name that comes back is checked
 * again here before it reaches pdsh or a shell command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl/hostlist.h"

#define FILE_LINE_MAX 65536

struct buf {
	char *p;
	size_t len, cap;
};

static int
buf_add(struct buf *b, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(p = realloc(b->p, cap)))
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Append the expressions of item (or of the ^FILE it names), sep after each. */
static int
add_item(struct buf *b, const char *item, char sep)
{
	char *line = NULL, *s, *tok, *save;
	size_t cap = 0;
	FILE *f;
	int r = 0;

	if (item[0] != '^')
		return buf_add(b, item, strlen(item)) < 0 ||
		    buf_add(b, &sep, 1) < 0 ? -ENOMEM : 0;
	if (!(f = fopen(item + 1, "re"))) {
		r = -errno;
		fprintf(stderr, "batonctl: rollout: open '%s': %s\n", item + 1,
		    strerror(errno));
		return r;
	}
	while (r == 0 && getline(&line, &cap, f) > 0) {
		if ((s = strchr(line, '#')))
			*s = '\0';
		for (tok = strtok_r(line, " \t\r\n", &save); tok && r == 0;
		    tok = strtok_r(NULL, " \t\r\n", &save))
			if (buf_add(b, tok, strlen(tok)) < 0 ||
			    buf_add(b, &sep, 1) < 0)
				r = -ENOMEM;
	}
	free(line);
	fclose(f);
	return r;
}

bool
hostlist_valid(const char *name)
{
	const char *at = strchr(name, '@'), *host = at ? at + 1 : name, *p;
	size_t label = 0, i;

	if (at) {
		if (at == name || at - name > 32 || name[0] == '-')
			return false;
		for (p = name; p < at; p++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
			    "WXYZ0123456789._-", *p))
				return false;
	}
	if (!*host || strlen(host) > 253 || host[0] == '-' || host[0] == '.')
		return false;
	for (i = 0; host[i]; i++) {
		if (host[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789_-", host[i]) || ++label > 63)
			return false;
	}
	return true;
}

const char *
hostlist_host(const char *name)
{
	const char *at = strchr(name, '@');

	return at ? at + 1 : name;
}

static uint64_t
hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

long
hostlist_find(const struct hostlist *l, const char *name, size_t len)
{
	size_t i, k;

	if (!l->nslot)
		return -1;
	for (i = hash(name, len) & (l->nslot - 1); (k = l->slot[i]) != 0;
	    i = (i + 1) & (l->nslot - 1))
		if (strlen(l->v[k - 1]) == len &&
		    memcmp(l->v[k - 1], name, len) == 0)
			return (long)(k - 1);
	return -1;
}

int
hostlist_push(struct hostlist *l, const char *name)
{
	char **v;

	if (!hostlist_valid(name)) {
		fprintf(stderr, "batonctl: rollout: bad host name '%s' "
		    "([user@]host, host a name of up to 253 characters "
		    "of [A-Za-z0-9._-] in labels of up to 63)\n", name);
		return -EINVAL;
	}
	if (l->n == HOSTLIST_MAX) {
		fprintf(stderr, "batonctl: rollout: more than %d hosts\n",
		    HOSTLIST_MAX);
		return -E2BIG;
	}
	if (l->n % 1024 == 0) {
		if (!(v = realloc(l->v, (l->n + 1024) * sizeof(*v))))
			return -ENOMEM;
		l->v = v;
	}
	if (!(l->v[l->n] = strdup(name)))
		return -ENOMEM;
	l->n++;
	return 0;
}

int
hostlist_index(struct hostlist *l)
{
	size_t i, j;

	free(l->slot);
	for (l->nslot = 16; l->nslot < l->n * 2; l->nslot *= 2)
		;
	if (!(l->slot = calloc(l->nslot, sizeof(*l->slot))))
		return -ENOMEM;
	for (i = 0; i < l->n; i++) {
		for (j = hash(l->v[i], strlen(l->v[i])) & (l->nslot - 1);
		    l->slot[j]; j = (j + 1) & (l->nslot - 1))
			;
		l->slot[j] = i + 1;
	}
	return 0;
}

/* Feed in to prog's stdin, collect its stdout and stderr; wait status. */
static int
run_filter(char *const *argv, const struct buf *in, struct buf *out,
    struct buf *err, int *ret_status)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	size_t off = 0;
	char chunk[8192];
	struct pollfd pf[3];
	ssize_t n;
	pid_t pid;
	int r = 0, k;
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);

	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 ||
	    pipe2(perr, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0) {
		if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 ||
		    dup2(perr[1], 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	while (pout[0] >= 0 || perr[0] >= 0) {
		k = 0;
		pf[0] = (struct pollfd){ .fd = pin[1], .events = POLLOUT };
		pf[1] = (struct pollfd){ .fd = pout[0], .events = POLLIN };
		pf[2] = (struct pollfd){ .fd = perr[0], .events = POLLIN };
		if (poll(pf, 3, -1) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (pin[1] >= 0 && pf[0].revents) {
			n = write(pin[1], in->p + off, in->len - off);
			if (n > 0)
				off += (size_t)n;
			if ((n < 0 && errno != EAGAIN) || off == in->len) {
				close(pin[1]);
				pin[1] = -1;
			}
		}
		for (k = 1; k < 3; k++) {
			int *fd = k == 1 ? &pout[0] : &perr[0];

			if (*fd < 0 || !pf[k].revents)
				continue;
			n = read(*fd, chunk, sizeof(chunk));
			if (n > 0 && buf_add(k == 1 ? out : err, chunk,
			    (size_t)n) < 0)
				r = -ENOMEM;
			if (n == 0 || (n < 0 && errno != EINTR &&
			    errno != EAGAIN)) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	while (waitpid(pid, ret_status, 0) < 0 && errno == EINTR)
		;
out:
	for (k = 0; k < 2; k++) {
		if (pin[k] >= 0)
			close(pin[k]);
		if (pout[k] >= 0)
			close(pout[k]);
		if (perr[k] >= 0)
			close(perr[k]);
	}
	signal(SIGPIPE, old);
	return r;
}

int
hostlist_expand(const char *nodeset, const char *const *items,
    size_t nitems, const char *exclude, struct hostlist *ret)
{
	struct buf in = { 0 }, out = { 0 }, err = { 0 }, ex = { 0 };
	struct hostlist l = { 0 };
	char *argv[8], *save, *name;
	int r = 0, k = 0, status = 0;
	size_t i;

	for (i = 0; i < nitems && r == 0; i++)
		r = add_item(&in, items[i], '\n');
	if (r == 0 && exclude) {
		r = add_item(&ex, exclude, ',');
		if (r == 0 && ex.len)
			ex.p[--ex.len] = '\0';	/* the last ',' */
	}
	if (r < 0)
		goto out;
	argv[k++] = (char *)(nodeset ? nodeset : "nodeset");
	argv[k++] = (char *)"-e";
	argv[k++] = (char *)"-S";
	argv[k++] = (char *)"\n";
	if (ex.len) {
		argv[k++] = (char *)"-x";
		argv[k++] = ex.p;
	}
	argv[k] = NULL;
	r = run_filter(argv, &in, &out, &err, &status);
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (err.len && err.p[err.len - 1] == '\n')
			err.p[--err.len] = '\0';
		fprintf(stderr, "batonctl: rollout: nodeset (clustershell) "
		    "could not expand the host list: %s\n", r < 0 ?
		    strerror(-r) : WIFEXITED(status) && WEXITSTATUS(status) ==
		    127 ? "nodeset not found (apt-get install clustershell)" :
		    err.len ? err.p : "failed");
		r = r < 0 ? r : WIFEXITED(status) && WEXITSTATUS(status) == 127 ?
		    -ENOENT : -EINVAL;
		goto out;
	}
	for (name = out.p ? strtok_r(out.p, "\n", &save) : NULL; name;
	    name = strtok_r(NULL, "\n", &save))
		if ((r = hostlist_push(&l, name)) < 0)
			goto out;
	if ((r = hostlist_index(&l)) < 0)
		goto out;
	*ret = l;
	memset(&l, 0, sizeof(l));
out:
	hostlist_free(&l);
	free(in.p);
	free(out.p);
	free(err.p);
	free(ex.p);
	return r;
}

void
hostlist_free(struct hostlist *l)
{
	size_t i;

	for (i = 0; l->v && i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->slot);
	memset(l, 0, sizeof(*l));
}
