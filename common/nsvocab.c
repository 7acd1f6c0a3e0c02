/*
 * nsvocab: the namespace vocabulary (kinds, id and image syntax, uenv
 * paths).  Invariants: each kind is spelled out once, in kinds[] below;
 * every lookup is bounds-checked, so a kind index from a peer or a file
 * can never read past the table.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "common/nsvocab.h"

static const struct {
	const char *name;	/* on the wire and in the table file */
	const char *proc;	/* under /proc/<pid>/ns, and the pin file */
	int nstype;
} kinds[NSV_KINDS] = {
	[NSV_PID] = { "pid", "pid", CLONE_NEWPID },
	[NSV_NET] = { "net", "net", CLONE_NEWNET },
	[NSV_MNT] = { "mount", "mnt", CLONE_NEWNS },
};

const char *
nsvocab_kind_name(unsigned kind)
{
	return kind < NSV_KINDS ? kinds[kind].name : "?";
}

int
nsvocab_kind_parse(const char *name)
{
	int k;

	for (k = 0; k < NSV_KINDS; k++)
		if (strcmp(name, kinds[k].name) == 0)
			return k;
	return -1;
}

const char *
nsvocab_kind_proc(unsigned kind)
{
	return kind < NSV_KINDS ? kinds[kind].proc : "?";
}

int
nsvocab_kind_nstype(unsigned kind)
{
	return kind < NSV_KINDS ? kinds[kind].nstype : 0;
}

static bool
idchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool
nsvocab_id_ok(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= NSV_ID_MAX || !idchar(s[i]))
			return false;
	return true;
}

bool
nsvocab_image_ok(const char *s)
{
	size_t n;

	/* The charset has no '/', so an id-shaped name is a plain name. */
	if (!nsvocab_id_ok(s))
		return false;
	n = strlen(s);
	return n > 5 && strcmp(s + n - 5, ".sqfs") == 0;
}

int
nsvocab_uenv_path(const char *base, const char *image, char *buf,
    size_t len)
{
	size_t n = strlen(image);
	int w;

	if (n > 5 && strcmp(image + n - 5, ".sqfs") == 0)
		n -= 5;
	w = snprintf(buf, len, "%s/%.*s", base, (int)n, image);
	if (w < 0 || (size_t)w >= len)
		return -ENAMETOOLONG;
	return 0;
}
