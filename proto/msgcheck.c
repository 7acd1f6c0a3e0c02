/*
 * msgcheck: msg_validate(), the semantic checks beyond a body's shape,
 * and the one validation of every message a peer sends (transport/conn
 * and the blocking readers call it before handing a frame on; handlers
 * rely on it).  Checks keyed by field name (handoff_id, allocation_id,
 * uenv_image, namespaces...) apply to every message carrying the field;
 * the syntax itself is common/nsvocab's.
 *
 * Invariants: validation only reads the message; a message that passes
 * has well-formed ids, a non-empty set of distinct namespace kinds and,
 * with an image, the mount namespace.
 */
#include <stdbool.h>
#include <string.h>

#include "common/nsvocab.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/msgdesc.h"

bool
msg_uuid_ok(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;	/* also stops at an early NUL */
		}
	}
	return s[36] == '\0';
}

/* A non-empty set of namespace names without repeats. */
static bool
nsset_ok(const struct strarr *sa)
{
	unsigned seen = 0, bit;
	uint32_t i;
	int k;

	if (sa->n == 0)
		return false;
	for (i = 0; i < sa->n; i++) {
		if ((k = nsvocab_kind_parse(sa->v[i])) < 0)
			return false;
		bit = 1u << k;
		if (seen & bit)
			return false;
		seen |= bit;
	}
	return true;
}

static bool
ns_has(const struct strarr *sa, const char *name)
{
	uint32_t i;

	for (i = 0; i < sa->n; i++)
		if (strcmp(sa->v[i], name) == 0)
			return true;
	return false;
}

static bool
ns_error_kind_ok(const char *s)
{
	static const char *const kinds[] = {
		"invalid_request", "creation_failed", "allocation_not_found",
		"fd_passing", "unsupported_version", "limit_exceeded",
		"too_old",
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(s, kinds[i]) == 0)
			return true;
	return false;
}

static const char *
nslist_check(const struct nslist *l)
{
	uint32_t i;

	for (i = 0; i < l->n; i++) {
		if (!nsvocab_id_ok(l->v[i].allocation_id))
			return "allocations: bad allocation_id";
		if (!nsset_ok(&l->v[i].namespaces))
			return "allocations: bad namespaces";
		if (l->v[i].uenv_image && !nsvocab_image_ok(l->v[i].uenv_image))
			return "allocations: bad uenv_image";
	}
	return NULL;
}

/*
 * Checks keyed by field name, so that every message carrying a
 * handoff_id or allocation_id is checked the same way.  NSTR fields are
 * only checked when present.
 */
static const char *
check_field(const struct field *f, const void *p)
{
	const char *s = NULL;

	if (f->kind == K_STR || f->kind == K_NSTR) {
		s = *(const char *const *)p;
		if (s == NULL)
			return NULL;
	}
	if (strcmp(f->key, "handoff_id") == 0 && !msg_uuid_ok(s))
		return "handoff_id is not a canonical lower-case UUID";
	if (strcmp(f->key, "allocation_id") == 0 && !nsvocab_id_ok(s))
		return "allocation_id is not 1-128 of [A-Za-z0-9._-] "
		    "starting with no '.'";
	if (strcmp(f->key, "uenv_image") == 0 && !nsvocab_image_ok(s))
		return "uenv_image is not a plain file name ending in .sqfs";
	if (strcmp(f->key, "namespaces") == 0 && !nsset_ok(p))
		return "namespaces is not a non-empty set of pid, net, mount";
	if (strcmp(f->key, "fd_types") == 0 && !nsset_ok(p))
		return "fd_types is not a non-empty set of pid, net, mount";
	if (f->kind == K_NSLIST)
		return nslist_check(p);
	if (strcmp(f->key, "state_digest") == 0 &&
	    ((const struct bin *)p)->len > 64)
		return "state_digest is longer than 64 bytes";
	return NULL;
}

int
msg_validate(const struct msg *m, const char **ret_why)
{
	const struct field *fs;
	const struct desc *d;
	const char *why = NULL;
	size_t i, n;

	if ((d = msg_desc_of(m->type)) == NULL) {
		why = "unknown message type";
		goto out;
	}
	fs = d->fields(&n);
	for (i = 0; i < n && why == NULL; i++)
		why = check_field(&fs[i], (const char *)&m->u + fs[i].off);
	if (why != NULL)
		goto out;
	switch (m->type) {
	case MSG_HELLO:
		if (strcmp(m->u.HELLO.role, "incumbent") != 0 &&
		    strcmp(m->u.HELLO.role, "successor") != 0)
			why = "role is neither incumbent nor successor";
		else if (m->u.HELLO.proto_min > m->u.HELLO.proto_max)
			why = "proto_min is above proto_max";
		break;
	case MSG_NS_ERROR:
		if (!ns_error_kind_ok(m->u.NS_ERROR.kind))
			why = "kind is not an error kind of SPEC 5";
		break;
	case MSG_NS_REQUEST:
		if (m->u.NS_REQUEST.uenv_image &&
		    !ns_has(&m->u.NS_REQUEST.namespaces,
		    nsvocab_kind_name(NSV_MNT)))
			why = "uenv_image needs the mount namespace";
		break;
	default:
		break;
	}
out:
	if (ret_why != NULL)
		*ret_why = why;
	return why == NULL ? 0 : -PROTO_EINVAL;
}
