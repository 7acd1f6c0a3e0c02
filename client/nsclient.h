/*
 * nsclient: the consumer side of the namespace socket (SPEC §5), for a
 * workload manager, batonctl and tests.  Blocking I/O (transport/wire.h);
 * one request in flight per connection.
 *
 * Every namespace fd handed to the caller has been checked with
 * ioctl(NS_GET_NSTYPE) against the type the provider announced for it.
 * A persistent connection that closes before answering is reconnected
 * and the request sent once more (requests are idempotent by allocation
 * id, and a handoff closes idle consumer connections on purpose).
 *
 * When the provider cannot be reached within NSCLIENT_CONNECT_MS,
 * nsclient_request_path() returns that error (-ENOENT, -ECONNREFUSED,
 * -ETIMEDOUT...).  Only with NSCLIENT_LOCAL_FALLBACK (opt-in) does it
 * create the namespaces itself with the same conventions (nsclient_make(),
 * the maker the provider's helper uses too) and say so in the result
 * (hpc-node WI4); such namespaces are not tracked by any provider.
 *
 * Installed as <baton/nsclient.h> with libbaton-nsclient.so.0
 * (pkg-config baton-nsclient); the library exports the nsclient_*
 * functions below and nothing else.  The wire protocol is in
 * docs/PROTOCOL.md.
 */
#ifndef BATON_NSCLIENT_H
#define BATON_NSCLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif
/* The shared library is built with -fvisibility=hidden: this is its API. */
#pragma GCC visibility push(default)

#define NSCLIENT_CONNECT_MS	1000
#define NSCLIENT_REPLY_MS	30000	/* creation may take a while */
#define NSCLIENT_MAX_NS		3
#define NSCLIENT_ID_MAX		128

/* Namespace kinds, as bits; index order pid, net, mount. */
enum nsclient_kind { NSK_PID = 0, NSK_NET = 1, NSK_MNT = 2 };
#define NSM_PID (1u << NSK_PID)
#define NSM_NET (1u << NSK_NET)
#define NSM_MNT (1u << NSK_MNT)

/* Wire name of a kind ("pid", "net", "mount"); parse one (-EINVAL). */
const char *nsclient_kind_name(unsigned kind);
int nsclient_kind_parse(const char *name);
/* CLONE_NEW* value of a kind, as NS_GET_NSTYPE reports it. */
int nsclient_kind_nstype(unsigned kind);

/* Default paths under root (SPEC §2). */
#define NSCLIENT_SOCK		"run/pact/handoff.sock"
#define NSCLIENT_UENV_DIR	"var/lib/pact/uenv"
#define NSCLIENT_UENV_BASE	"run/pact/uenv"

struct nsclient_req {
	const char *allocation_id;
	const char *const *namespaces;	/* "pid", "net", "mount" */
	unsigned n;
	const char *uenv_image;		/* NULL or "name.sqfs" */
	/* Used by the local fallback only; NULL = the SPEC default. */
	const char *uenv_dir;
	const char *uenv_mount_base;
};

/* Namespaces handed to the caller.  Free with nsclient_ns_free(). */
struct nsclient_ns {
	unsigned n;
	int fds[NSCLIENT_MAX_NS];	/* owned, in request order */
	unsigned kinds[NSCLIENT_MAX_NS];
	char *uenv_mount_path;		/* owned, NULL without an image */
	bool fallback;			/* created locally, not by a provider */
	pid_t fallback_init;		/* fallback with pid: its init, or 0 */
};

/* Close the fds and free the path.  Leaves fallback_init running. */
void nsclient_ns_free(struct nsclient_ns *r);
/* Fallback only: kill its init (SIGKILL).  Idempotent. */
void nsclient_ns_kill_fallback(struct nsclient_ns *r);
/* Index of kind in r, or -1. */
int nsclient_ns_find(const struct nsclient_ns *r, unsigned kind);

struct nsclient;

/* Connect within NSCLIENT_CONNECT_MS.  0 or -errno. */
int nsclient_open(const char *sock_path, struct nsclient **ret);
void nsclient_close(struct nsclient *c);

/*
 * Request namespaces.  0 and *ret filled (owned by the caller), -errno on
 * I/O failure, or for an NS_ERROR: -EINVAL invalid_request, -ENOENT
 * allocation_not_found, -EAGAIN limit_exceeded, -EIO creation_failed,
 * -EPROTO anything else; nsclient_error() then has the kind and message.
 */
int nsclient_request(struct nsclient *c, const struct nsclient_req *req,
    struct nsclient_ns *ret);

/* ALLOCATION_ENDED → ALLOCATION_RELEASED.  0, -ENOENT, -errno. */
int nsclient_release(struct nsclient *c, const char *allocation_id);

struct nsclient_status {
	uint32_t pid;
	char build_id[128];
	uint64_t generation;
	uint64_t allocations;
	bool ready;
};
int nsclient_status(struct nsclient *c, struct nsclient_status *ret);

/*
 * How many times c had to connect again (the connection was gone: an
 * agent crashed).  An upgrade moves the connection and costs none.
 */
unsigned nsclient_reconnects(const struct nsclient *c);

/* Kind and message of the last NS_ERROR on c ("" when none). */
const char *nsclient_error(const struct nsclient *c, const char **ret_msg);

/*
 * Subscribe: returns an owned connected fd (CLOEXEC) that receives
 * ALLOCATION_ENDED events; read them with nsclient_next_event().
 */
int nsclient_subscribe(const char *sock_path, int *ret_fd);
/*
 * Subscribe and first receive every release after table sequence
 * since_seq (the last seq a subscriber saw), oldest first, then the live
 * ones.  When the agent's event log no longer reaches back that far, the
 * first nsclient_next_event_seq() returns -ESTALE: list the allocations
 * and subscribe again.
 */
int nsclient_subscribe_since(const char *sock_path, uint64_t since_seq,
    int *ret_fd);
/* 0 and the id, -ETIMEDOUT, -ECONNRESET when the provider went away. */
int nsclient_next_event(int fd, int timeout_ms,
    char ret_id[NSCLIENT_ID_MAX + 1]);
/*
 * The same with the table sequence at which the allocation ended (0 from
 * an agent that does not send it); -ESTALE for NS_ERROR too_old.
 */
int nsclient_next_event_seq(int fd, int timeout_ms,
    char ret_id[NSCLIENT_ID_MAX + 1], uint64_t *ret_seq);

/* The default: an unreachable provider is an error (kept for callers). */
#define NSCLIENT_NO_FALLBACK	1u
/* Opt-in: create the namespaces locally when the provider is unreachable. */
#define NSCLIENT_LOCAL_FALLBACK	2u
/*
 * One-shot request on sock_path.  When the provider cannot be reached in
 * NSCLIENT_CONNECT_MS, returns that -errno; only with
 * NSCLIENT_LOCAL_FALLBACK in flags are the namespaces created locally
 * instead (ret->fallback is set and a warning is logged).
 */
int nsclient_request_path(const char *sock_path,
    const struct nsclient_req *req, unsigned flags, struct nsclient_ns *ret);

/*
 * Low level: the maker the provider's helper process uses too.  Create the
 * namespaces in mask in a forked child and return fds to them (indexed
 * by kind, -1 for kinds not in mask) and, with NSM_PID, the pid of the
 * new namespace's init (a reaper that lives until SIGKILL; it is not the
 * caller's child).  Conventions: the mount namespace gets MS_REC|
 * MS_PRIVATE propagation, hide_dir (if set) detached from it, its own
 * /proc when pid is also new; with image_fd >= 0 a tmpfs on uenv_base and
 * the image mounted read-only, nosuid, nodev at uenv_path below it; a new
 * net namespace has lo up.  Everything made is undone on failure.  Not
 * for threaded callers.  Returns 0 or -errno with the failed step in
 * errbuf.
 */
struct nsclient_make_opts {
	unsigned mask;
	int image_fd;
	const char *uenv_base;
	const char *uenv_path;
	const char *hide_dir;
};
int nsclient_make(const struct nsclient_make_opts *o,
    int ret_fds[NSCLIENT_MAX_NS], pid_t *ret_init, char *errbuf,
    size_t errlen);

/* Loop-mount a squashfs image fd read-only at target.  0 or -errno. */
int nsclient_uenv_mount(int image_fd, const char *target);

/*
 * Open name inside dir_path safely: a plain .sqfs name, no symlink, a
 * regular file.  Returns an owned O_RDONLY|O_CLOEXEC fd or -errno
 * (-EINVAL for a bad name or not a regular file).
 */
int nsclient_open_image(const char *dir_path, const char *name);

/* "<base>/<name without .sqfs>" into buf.  0 or -ENAMETOOLONG. */
int nsclient_uenv_path(const char *base, const char *image, char *buf,
    size_t len);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
