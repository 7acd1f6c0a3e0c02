/*
 * hostlist: rollout's host lists, expanded by ClusterShell's nodeset(1)
 * (Debian package clustershell) instead of a parser of our own, with the
 * forms pdsh takes: ranges "node[001-128]", "user@host", "^FILE" (one
 * list a line, # comments), an exclude list (pdsh -x) and ClusterShell
 * groups "@group" (what `-g group` becomes).  The result is a set: sorted
 * by nodeset, duplicates merged.  Names are user@FQDN with the FQDN up to
 * 253 characters; up to HOSTLIST_MAX names.
 */
#ifndef BATON_HOSTLIST_H
#define BATON_HOSTLIST_H

#include <stdbool.h>
#include <stddef.h>

#define HOSTLIST_MAX 100000
#define HOSTLIST_NAME_MAX 288	/* user (32) @ FQDN (253) NUL, rounded */

struct hostlist {
	char **v;		/* owned names */
	size_t n;
	/* Index by name, for matching pdsh's "host: line" output. */
	size_t *slot;		/* open addressing: index + 1, 0 = empty */
	size_t nslot;
};

/*
 * Expand items (each a nodeset expression, or ^FILE), minus exclude
 * (NULL for none; ^FILE allowed too), with the nodeset program (NULL:
 * "nodeset" from PATH).  0 and *ret filled (hostlist_free), or -errno
 * after printing "batonctl: rollout: ..." on stderr: -ENOENT when nodeset
 * (or a ^FILE) is missing, -EINVAL for a bad list.
 */
int hostlist_expand(const char *nodeset, const char *const *items,
    size_t nitems, const char *exclude, struct hostlist *ret);
void hostlist_free(struct hostlist *l);

/* Append a name (checked, not expanded) and then index the list. */
int hostlist_push(struct hostlist *l, const char *name);
int hostlist_index(struct hostlist *l);

/* Index of name (len bytes) in l, or -1. */
long hostlist_find(const struct hostlist *l, const char *name, size_t len);

/* user@host or host, host a valid name of up to 253 characters. */
bool hostlist_valid(const char *name);

/* The host part of user@host (the name itself without '@'). */
const char *hostlist_host(const char *name);

#endif
