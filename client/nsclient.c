/*
 * nsclient: the consumer library, blocking client of the namespace
 * socket.  The vocabulary it speaks is common/nsvocab, the namespaces of
 * its opt-in local fallback are made by common/nsmake; the nsclient_*
 * names of both below are the library's exported API (nsclient.h), kept
 * as thin wrappers.
 *
 * Invariants:
 * - A caller never owns a namespace fd whose NS_GET_NSTYPE differs from
 *   the type announced next to it; a mismatch closes the whole set.
 * - A request is sent at most twice: once, and once more on a fresh
 *   connection when the first closed without an answer.
 * - The public header's numbers (NSK_*, NSM_*, NSCLIENT_MAX_NS,
 *   NSCLIENT_ID_MAX) equal the vocabulary's: asserted below at compile
 *   time (the default paths: by test_nsclient).
 */
#include <errno.h>
#include <linux/nsfs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/log.h"
#include "common/nsmake.h"
#include "common/nsvocab.h"
#include "client/nsclient.h"
#include "proto/msg.h"
#include "transport/wire.h"

struct nsclient {
	char path[108];
	int fd;
	unsigned reconnects;
	char err_kind[32];
	char err_msg[256];
};

_Static_assert(NSCLIENT_MAX_NS == NSV_KINDS && (int)NSK_PID == (int)NSV_PID &&
    (int)NSK_NET == (int)NSV_NET && (int)NSK_MNT == (int)NSV_MNT &&
    NSM_PID == NSVM_PID &&
    NSM_NET == NSVM_NET && NSM_MNT == NSVM_MNT &&
    NSCLIENT_ID_MAX == NSV_ID_MAX, "one namespace vocabulary");

/* ---- the vocabulary and the maker, as exported ---- */

const char *
nsclient_kind_name(unsigned kind)
{
	return nsvocab_kind_name(kind);
}

int
nsclient_kind_parse(const char *name)
{
	int k = nsvocab_kind_parse(name);

	return k < 0 ? -EINVAL : k;
}

int
nsclient_kind_nstype(unsigned kind)
{
	return nsvocab_kind_nstype(kind);
}

int
nsclient_uenv_path(const char *base, const char *image, char *buf,
    size_t len)
{
	return nsvocab_uenv_path(base, image, buf, len);
}

int
nsclient_open_image(const char *dir_path, const char *name)
{
	return nsmake_open_image(dir_path, name);
}

int
nsclient_uenv_mount(int image_fd, const char *target)
{
	return nsmake_uenv_mount(image_fd, target);
}

int
nsclient_make(const struct nsclient_make_opts *o,
    int ret_fds[NSCLIENT_MAX_NS], pid_t *ret_init, char *errbuf,
    size_t errlen)
{
	const struct nsmake_opts mo = {
		.mask = o->mask, .image_fd = o->image_fd,
		.uenv_base = o->uenv_base, .uenv_path = o->uenv_path,
		.hide_dir = o->hide_dir,
	};

	return nsmake(&mo, ret_fds, ret_init, errbuf, errlen);
}

/* ---- results ---- */

void
nsclient_ns_free(struct nsclient_ns *r)
{
	unsigned i;

	for (i = 0; i < NSCLIENT_MAX_NS; i++) {
		if (i < r->n && r->fds[i] >= 0)
			close(r->fds[i]);
		r->fds[i] = -1;
	}
	r->n = 0;
	free(r->uenv_mount_path);
	r->uenv_mount_path = NULL;
}

void
nsclient_ns_kill_fallback(struct nsclient_ns *r)
{
	if (r->fallback && r->fallback_init > 0)
		(void)kill(r->fallback_init, SIGKILL);
	r->fallback_init = 0;
}

int
nsclient_ns_find(const struct nsclient_ns *r, unsigned kind)
{
	unsigned i;

	for (i = 0; i < r->n; i++)
		if (r->kinds[i] == kind)
			return (int)i;
	return -1;
}

static void
ns_init(struct nsclient_ns *r)
{
	memset(r, 0, sizeof(*r));
	r->fds[0] = r->fds[1] = r->fds[2] = -1;
}

/* ---- the socket side ---- */

static int
kind_errno(const char *kind)
{
	if (strcmp(kind, "invalid_request") == 0)
		return -EINVAL;
	if (strcmp(kind, "allocation_not_found") == 0)
		return -ENOENT;
	if (strcmp(kind, "limit_exceeded") == 0)
		return -EAGAIN;
	if (strcmp(kind, "creation_failed") == 0)
		return -EIO;
	return -EPROTO;
}

int
nsclient_open(const char *sock_path, struct nsclient **ret)
{
	struct nsclient *c;
	int fd;

	if (strlen(sock_path) >= sizeof(c->path))
		return -ENAMETOOLONG;
	fd = wire_connect(sock_path, NSCLIENT_CONNECT_MS);
	if (fd < 0)
		return fd;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	strcpy(c->path, sock_path);
	c->fd = fd;
	*ret = c;
	return 0;
}

void
nsclient_close(struct nsclient *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

const char *
nsclient_error(const struct nsclient *c, const char **ret_msg)
{
	if (ret_msg)
		*ret_msg = c->err_msg;
	return c->err_kind;
}

unsigned
nsclient_reconnects(const struct nsclient *c)
{
	return c->reconnects;
}

/*
 * Send m and read one answer.  A connection that is gone (before or
 * instead of the answer) is replaced once and the request repeated.
 */
static int
roundtrip(struct nsclient *c, const struct msg *m, struct frame *ret_f)
{
	int r, attempt, fd;

	c->err_kind[0] = c->err_msg[0] = '\0';
	for (attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0) {
			fd = wire_connect(c->path, NSCLIENT_CONNECT_MS);
			if (fd < 0)
				return fd;
			c->fd = fd;
			c->reconnects++;
		}
		r = wire_send(c->fd, m, NULL, 0, NSCLIENT_CONNECT_MS);
		if (r == 0)
			r = wire_recv(c->fd, NSCLIENT_REPLY_MS, ret_f);
		if (r == 0)
			break;
		close(c->fd);
		c->fd = -1;
		if (r != -ECONNRESET && r != -EPIPE)
			return r;
	}
	if (r < 0)
		return r;
	if (ret_f->m.type == MSG_NS_ERROR) {
		snprintf(c->err_kind, sizeof(c->err_kind), "%s",
		    ret_f->m.u.NS_ERROR.kind);
		snprintf(c->err_msg, sizeof(c->err_msg), "%s",
		    ret_f->m.u.NS_ERROR.message);
		frame_release(ret_f);
		return kind_errno(c->err_kind);
	}
	return 0;
}

static int
take_response(struct frame *f, const struct nsclient_req *req,
    struct nsclient_ns *ret)
{
	const msg_NS_RESPONSE_t *b = &f->m.u.NS_RESPONSE;
	struct nsclient_ns res;
	unsigned i;
	int k, t, r;

	ns_init(&res);
	if (f->m.type != MSG_NS_RESPONSE ||
	    strcmp(b->allocation_id, req->allocation_id) != 0 ||
	    b->fd_types.n != f->nfds || f->nfds != req->n ||
	    f->nfds > NSCLIENT_MAX_NS) {
		r = -EPROTO;
		goto out;
	}
	for (i = 0; i < f->nfds; i++) {
		k = nsclient_kind_parse(b->fd_types.v[i]);
		if (k < 0 || strcmp(b->fd_types.v[i],
		    req->namespaces[i]) != 0) {
			r = -EPROTO;
			goto out;
		}
		t = ioctl(f->fds[i], NS_GET_NSTYPE);
		if (t != nsclient_kind_nstype((unsigned)k)) {
			r = -EPROTO;
			goto out;
		}
		res.kinds[i] = (unsigned)k;
	}
	if (b->uenv_mount_path) {
		res.uenv_mount_path = strdup(b->uenv_mount_path);
		if (!res.uenv_mount_path) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < f->nfds; i++)
		res.fds[i] = frame_take_fd(f, i);
	res.n = f->nfds;
	*ret = res;
	ns_init(&res);
	r = 0;
out:
	nsclient_ns_free(&res);
	return r;
}

int
nsclient_request(struct nsclient *c, const struct nsclient_req *req,
    struct nsclient_ns *ret)
{
	struct msg m;
	struct frame f;
	int r;

	if (req->n == 0 || req->n > NSCLIENT_MAX_NS)
		return -EINVAL;
	memset(&m, 0, sizeof(m));
	m.type = MSG_NS_REQUEST;
	m.u.NS_REQUEST.allocation_id = req->allocation_id;
	m.u.NS_REQUEST.namespaces.n = req->n;
	m.u.NS_REQUEST.namespaces.v = (const char **)req->namespaces;
	m.u.NS_REQUEST.uenv_image = req->uenv_image;
	frame_init(&f);
	r = roundtrip(c, &m, &f);
	if (r < 0)
		return r;
	r = take_response(&f, req, ret);
	frame_release(&f);
	return r;
}

int
nsclient_release(struct nsclient *c, const char *allocation_id)
{
	struct msg m;
	struct frame f;
	int r;

	memset(&m, 0, sizeof(m));
	m.type = MSG_ALLOCATION_ENDED;
	m.u.ALLOCATION_ENDED.allocation_id = allocation_id;
	frame_init(&f);
	r = roundtrip(c, &m, &f);
	if (r < 0)
		return r;
	if (f.m.type != MSG_ALLOCATION_RELEASED ||
	    strcmp(f.m.u.ALLOCATION_RELEASED.allocation_id,
	    allocation_id) != 0)
		r = -EPROTO;
	frame_release(&f);
	return r;
}

int
nsclient_status(struct nsclient *c, struct nsclient_status *ret)
{
	struct msg m;
	struct frame f;
	int r;

	memset(&m, 0, sizeof(m));
	m.type = MSG_STATUS;
	frame_init(&f);
	r = roundtrip(c, &m, &f);
	if (r < 0)
		return r;
	if (f.m.type != MSG_STATUS_REPLY) {
		r = -EPROTO;
	} else {
		memset(ret, 0, sizeof(*ret));
		ret->pid = f.m.u.STATUS_REPLY.pid;
		snprintf(ret->build_id, sizeof(ret->build_id), "%s",
		    f.m.u.STATUS_REPLY.build_id);
		ret->generation = f.m.u.STATUS_REPLY.generation;
		ret->allocations = f.m.u.STATUS_REPLY.allocations;
		ret->ready = f.m.u.STATUS_REPLY.ready;
	}
	frame_release(&f);
	return r;
}

static int
subscribe(const char *sock_path, const struct optu64 *since, int *ret_fd)
{
	struct msg m;
	int fd, r;

	fd = wire_connect(sock_path, NSCLIENT_CONNECT_MS);
	if (fd < 0)
		return fd;
	memset(&m, 0, sizeof(m));
	m.type = MSG_SUBSCRIBE;
	m.u.SUBSCRIBE.since_seq = *since;
	r = wire_send(fd, &m, NULL, 0, NSCLIENT_CONNECT_MS);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int
nsclient_subscribe(const char *sock_path, int *ret_fd)
{
	const struct optu64 none = { false, 0 };

	return subscribe(sock_path, &none, ret_fd);
}

int
nsclient_subscribe_since(const char *sock_path, uint64_t since_seq,
    int *ret_fd)
{
	const struct optu64 since = { true, since_seq };

	return subscribe(sock_path, &since, ret_fd);
}

int
nsclient_next_event_seq(int fd, int timeout_ms,
    char ret_id[NSCLIENT_ID_MAX + 1], uint64_t *ret_seq)
{
	struct frame f;
	int r;

	frame_init(&f);
	r = wire_recv(fd, timeout_ms, &f);
	if (r < 0)
		return r;
	if (f.m.type == MSG_ALLOCATION_ENDED) {
		snprintf(ret_id, NSCLIENT_ID_MAX + 1, "%s",
		    f.m.u.ALLOCATION_ENDED.allocation_id);
		if (ret_seq)
			*ret_seq = f.m.u.ALLOCATION_ENDED.seq.v;
	} else if (f.m.type == MSG_NS_ERROR &&
	    strcmp(f.m.u.NS_ERROR.kind, "too_old") == 0) {
		r = -ESTALE;
	} else {
		r = -EPROTO;
	}
	frame_release(&f);
	return r;
}

int
nsclient_next_event(int fd, int timeout_ms, char ret_id[NSCLIENT_ID_MAX + 1])
{
	return nsclient_next_event_seq(fd, timeout_ms, ret_id, NULL);
}

/* ---- the local fallback ---- */

static int
fallback(const struct nsclient_req *req, struct nsclient_ns *ret)
{
	struct nsmake_opts o;
	struct nsclient_ns res;
	const char *udir = req->uenv_dir ? req->uenv_dir :
	    "/" NSV_UENV_DIR;
	const char *ubase = req->uenv_mount_base ? req->uenv_mount_base :
	    "/" NSV_UENV_BASE;
	char upath[4096], err[160];
	int fds[NSCLIENT_MAX_NS] = { -1, -1, -1 };
	pid_t init = 0;
	unsigned i, mask = 0;
	int r, k, img = -1;

	ns_init(&res);
	for (i = 0; i < req->n; i++) {
		k = nsclient_kind_parse(req->namespaces[i]);
		if (k < 0 || (mask & (1u << k))) {
			r = -EINVAL;
			goto out;
		}
		mask |= 1u << k;
		res.kinds[i] = (unsigned)k;
	}
	memset(&o, 0, sizeof(o));
	o.mask = mask;
	o.image_fd = -1;
	if (req->uenv_image) {
		if (!(mask & NSM_MNT)) {
			r = -EINVAL;
			goto out;
		}
		img = nsmake_open_image(udir, req->uenv_image);
		if (img < 0) {
			r = img;
			goto out;
		}
		r = nsvocab_uenv_path(ubase, req->uenv_image, upath,
		    sizeof(upath));
		if (r < 0)
			goto out;
		o.image_fd = img;
		o.uenv_base = ubase;
		o.uenv_path = upath;
		res.uenv_mount_path = strdup(upath);
		if (!res.uenv_mount_path) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = nsmake(&o, fds, &init, err, sizeof(err));
	if (r < 0) {
		log_error("ns.fallback_failed", err, "allocation_id=%s err=%d",
		    req->allocation_id, r);
		goto out;
	}
	for (i = 0; i < req->n; i++) {
		res.fds[i] = fds[res.kinds[i]];
		fds[res.kinds[i]] = -1;
	}
	res.n = req->n;
	res.fallback = true;
	res.fallback_init = init;
	*ret = res;
	ns_init(&res);
	r = 0;
out:
	for (i = 0; i < NSCLIENT_MAX_NS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (img >= 0)
		close(img);
	nsclient_ns_free(&res);
	return r;
}

int
nsclient_request_path(const char *sock_path,
    const struct nsclient_req *req, unsigned flags, struct nsclient_ns *ret)
{
	struct nsclient *c = NULL;
	int r;

	if (!nsvocab_id_ok(req->allocation_id) ||
	    (req->uenv_image && !nsvocab_image_ok(req->uenv_image)))
		return -EINVAL;
	r = nsclient_open(sock_path, &c);
	if (r < 0) {
		if (!(flags & NSCLIENT_LOCAL_FALLBACK))
			return r;
		log_warn("ns.fallback", "namespace provider unreachable; "
		    "creating namespaces locally", "allocation_id=%s "
		    "socket=%s err=%d", req->allocation_id, sock_path, r);
		return fallback(req, ret);
	}
	r = nsclient_request(c, req, ret);
	nsclient_close(c);
	return r;
}
