/*
 * nsmake: make namespaces and mount a uenv image in them, for the
 * consumer library's local fallback and the provider's helper process.
 * Kinds and masks are those of common/nsvocab.h.
 */
#ifndef BATON_NSMAKE_H
#define BATON_NSMAKE_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/nsvocab.h"

struct nsmake_opts {
	unsigned mask;		/* NSVM_* */
	int image_fd;		/* borrowed; -1 for none */
	const char *uenv_base;
	const char *uenv_path;
	const char *hide_dir;
	/*
	 * The caller is a throwaway process of its own (the provider's
	 * helper): a net namespace alone is then made by the caller itself,
	 * which saves the child's fork and exit (~0.3 ms of a creation).
	 * The caller ends up in that namespace; its mounts are unchanged.
	 */
	bool in_place;
	/*
	 * The caller already sits in a new net namespace of its own, lo up,
	 * made ahead for this creation (nsmake_net_ahead()): with NSVM_NET
	 * in mask that one is used, not another made.
	 */
	bool net_made;
};

/*
 * Put the calling process into a new net namespace with lo up, ahead of
 * a creation it is to serve (the provider's spare helper).  0 or -errno.
 */
int nsmake_net_ahead(void);

/*
 * Create the namespaces in o->mask in a forked child and return fds to
 * them (owned, indexed by kind, -1 for kinds not in mask) and, with
 * NSVM_PID, the pid of the new namespace's init (a reaper that lives
 * until SIGKILL; it is not the caller's child).  Conventions: the mount
 * namespace gets MS_REC|MS_PRIVATE propagation, hide_dir (if set)
 * detached from it, its own /proc when pid is also new; with image_fd >=
 * 0 a tmpfs on uenv_base and the image mounted read-only, nosuid, nodev
 * at uenv_path below it; a new net namespace has lo up.  Everything made
 * is undone on failure.  Not for threaded callers.  Returns 0 or -errno
 * with the failed step in errbuf.
 */
int nsmake(const struct nsmake_opts *o, int ret_fds[NSV_KINDS],
    pid_t *ret_init, char *errbuf, size_t errlen);

/* Loop-mount a squashfs image fd (borrowed) read-only at target.
 * 0 or -errno. */
int nsmake_uenv_mount(int image_fd, const char *target);

/*
 * Open name inside dir_path safely: a uenv image name (nsvocab_image_ok),
 * no symlink, a regular file.  Returns an owned O_RDONLY|O_CLOEXEC fd or
 * -errno (-EINVAL for a bad name or not a regular file).
 */
int nsmake_open_image(const char *dir_path, const char *name);

#endif
