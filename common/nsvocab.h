/*
 * nsvocab: the namespace vocabulary of SPEC §5, the one list of it: the
 * kinds (pid, net, mount) with their wire names, /proc/<pid>/ns names and
 * CLONE_NEW* types; allocation id and uenv image syntax; the default
 * paths and the uenv mount path of an image.  Plain strings and numbers,
 * no messages: the codec (proto/msg), the consumer library, the maker
 * (common/nsmake) and the provider all speak it.
 *
 * The consumer library's public header (client/nsclient.h) carries the
 * same numbers under its own names (NSK_*, NSM_*, NSCLIENT_*) because it
 * is installed alone; client/nsclient.c asserts at compile time that they
 * agree with these.
 */
#ifndef BATON_NSVOCAB_H
#define BATON_NSVOCAB_H

#include <stdbool.h>
#include <stddef.h>

/* Kinds, in index order; a set of kinds is a mask of NSVM_* bits. */
enum nsv_kind { NSV_PID = 0, NSV_NET = 1, NSV_MNT = 2 };
#define NSV_KINDS	3
#define NSVM_PID	(1u << NSV_PID)
#define NSVM_NET	(1u << NSV_NET)
#define NSVM_MNT	(1u << NSV_MNT)
#define NSVM_ALL	((1u << NSV_KINDS) - 1)

/* Longest allocation id or uenv image name, in bytes. */
#define NSV_ID_MAX	128

/* Default paths under root (SPEC §2). */
#define NSV_SOCK	"run/pact/handoff.sock"
#define NSV_UENV_DIR	"var/lib/pact/uenv"
#define NSV_UENV_BASE	"run/pact/uenv"

/* Wire name of a kind ("pid", "net", "mount"), "?" out of range. */
const char *nsvocab_kind_name(unsigned kind);
/* The kind of a wire name, or -1. */
int nsvocab_kind_parse(const char *name);
/* Its name under /proc/<pid>/ns ("pid", "net", "mnt"), "?" out of range. */
const char *nsvocab_kind_proc(unsigned kind);
/* Its CLONE_NEW* value, as NS_GET_NSTYPE reports it; 0 out of range. */
int nsvocab_kind_nstype(unsigned kind);

/* Allocation ids: 1-128 of [A-Za-z0-9._-], not starting with '.'. */
bool nsvocab_id_ok(const char *s);
/* Uenv images: an id-shaped plain file name ending in .sqfs. */
bool nsvocab_image_ok(const char *s);

/* "<base>/<image without .sqfs>" into buf.  0 or -ENAMETOOLONG. */
int nsvocab_uenv_path(const char *base, const char *image, char *buf,
    size_t len);

#endif
