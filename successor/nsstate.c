/*
 * nsstate: the allocation table and its on-disk form.
 *
 *   { "v": 1, "seq": u64, "generation": u64,
 *     "allocations": [ { "id": str, "ns": [str], "image": str|nil,
 *                        "reaper": u32, "ino": [u64 pid, net, mnt],
 *                        "created_at_ms": u64, "cg_seen": bool } ],
 *     "events": [ [seq u64, id str] ],      (optional: ended allocations)
 *     "events_floor": u64 }                 (optional: newest seq dropped)
 *
 * Invariants: ids in a table are unique and valid (SPEC §5); an inode is
 * non-zero exactly for the kinds in the mask; a reaper is set exactly
 * when the mask has pid.  The decoder enforces all of it, so a table that
 * loads is one the server can act on.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"
#include "successor/nsstate.h"

struct ns_alloc *
nsstate_alloc_new(void)
{
	struct ns_alloc *a = calloc(1, sizeof(*a));

	if (a)
		a->cg_wd = -1;
	return a;
}

void
nsstate_alloc_free(struct ns_alloc *a)
{
	if (!a)
		return;
	free(a->image);
	free(a);
}

/* FNV-1a: ids are short, and this only spreads them over buckets. */
static unsigned
hash_id(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h;
}

struct ns_alloc *
nsstate_find(const struct ns_table *t, const char *id)
{
	struct ns_alloc *a;

	if (!t->nbucket)
		return NULL;
	for (a = t->bucket[hash_id(id) & (t->nbucket - 1)]; a; a = a->hnext)
		if (strcmp(a->id, id) == 0)
			return a;
	return NULL;
}

/* An index of at least `want` buckets (a power of two, 64 or more). */
static int
grow_to(struct ns_table *t, unsigned want)
{
	unsigned n = t->nbucket ? t->nbucket : 64, i;
	struct ns_alloc **b, *a;

	while (n < want)
		n *= 2;
	if (n == t->nbucket)
		return 0;
	b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	free(t->bucket);
	t->bucket = b;
	t->nbucket = n;
	for (a = t->head; a; a = a->next) {
		i = hash_id(a->id) & (n - 1);
		a->hnext = b[i];
		b[i] = a;
	}
	return 0;
}

int
nsstate_insert(struct ns_table *t, struct ns_alloc *a)
{
	unsigned i;

	/* Double the index when it is full. */
	if (t->n >= t->nbucket && grow_to(t, t->nbucket * 2) < 0)
		return -ENOMEM;
	a->next = t->head;
	t->head = a;
	t->n++;
	i = hash_id(a->id) & (t->nbucket - 1);
	a->hnext = t->bucket[i];
	t->bucket[i] = a;
	return 0;
}

void
nsstate_remove(struct ns_table *t, struct ns_alloc *a)
{
	struct ns_alloc **pp;

	if (t->nbucket)
		for (pp = &t->bucket[hash_id(a->id) & (t->nbucket - 1)]; *pp;
		    pp = &(*pp)->hnext)
			if (*pp == a) {
				*pp = a->hnext;
				a->hnext = NULL;
				break;
			}
	for (pp = &t->head; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			a->next = NULL;
			t->n--;
			return;
		}
	}
}

void
nsstate_clear(struct ns_table *t)
{
	struct ns_alloc *a;

	while ((a = t->head)) {
		t->head = a->next;
		nsstate_alloc_free(a);
	}
	t->n = 0;
	free(t->bucket);
	t->bucket = NULL;
	t->nbucket = 0;
	free(t->ev);
	t->ev = NULL;
	t->ev_n = t->ev_first = 0;
	t->ev_floor = 0;
}


static void
pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static int
ev_alloc(struct ns_table *t)
{
	if (!t->ev)
		t->ev = calloc(NSSTATE_EVENTS_MAX, sizeof(*t->ev));
	return t->ev ? 0 : -ENOMEM;
}

const struct ns_event *
nsstate_event(const struct ns_table *t, unsigned i)
{
	return &t->ev[(t->ev_first + i) % NSSTATE_EVENTS_MAX];
}

int
nsstate_event_add(struct ns_table *t, const char *id)
{
	struct ns_event *e;

	if (ev_alloc(t) < 0)
		return -ENOMEM;
	if (t->ev_n == NSSTATE_EVENTS_MAX) {
		/* The oldest goes: who asks for it learns it is too old. */
		if (t->ev[t->ev_first].seq > t->ev_floor)
			t->ev_floor = t->ev[t->ev_first].seq;
		t->ev_first = (t->ev_first + 1) % NSSTATE_EVENTS_MAX;
		t->ev_n--;
	}
	e = &t->ev[(t->ev_first + t->ev_n) % NSSTATE_EVENTS_MAX];
	e->seq = 0;
	snprintf(e->id, sizeof(e->id), "%s", id);
	t->ev_n++;
	return 0;
}

void
nsstate_event_undo(struct ns_table *t, const char *id)
{
	unsigned i, j;

	for (i = t->ev_n; i-- > 0;) {
		if (strcmp(nsstate_event(t, i)->id, id) != 0)
			continue;
		for (j = i; j + 1 < t->ev_n; j++)
			t->ev[(t->ev_first + j) % NSSTATE_EVENTS_MAX] =
			    *nsstate_event(t, j + 1);
		t->ev_n--;
		return;
	}
}

uint64_t
nsstate_event_stamp(struct ns_table *t, uint64_t after)
{
	unsigned i, first = t->ev_n;

	/* The unstamped ones are the newest: find the oldest of them. */
	while (first > 0 && nsstate_event(t, first - 1)->seq == 0)
		first--;
	for (i = first; i < t->ev_n; i++)
		t->ev[(t->ev_first + i) % NSSTATE_EVENTS_MAX].seq = ++after;
	return after;
}

void
nsstate_event_unstamp(struct ns_table *t, uint64_t above)
{
	unsigned i;

	for (i = t->ev_n; i-- > 0;) {
		struct ns_event *e = &t->ev[(t->ev_first + i) %
		    NSSTATE_EVENTS_MAX];

		if (e->seq <= above)
			break;
		e->seq = 0;
	}
}

uint64_t
nsstate_event_seq(const struct ns_table *t, const char *id)
{
	unsigned i;

	for (i = t->ev_n; i-- > 0;)
		if (strcmp(nsstate_event(t, i)->id, id) == 0)
			return nsstate_event(t, i)->seq;
	return 0;
}

int
nsstate_encode(const struct ns_table *t, uint8_t **ret_buf, size_t *ret_len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const struct ns_alloc *a;
	unsigned k, nk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	pack_str(&pk, "v");
	msgpack_pack_uint64(&pk, NSSTATE_VERSION);
	pack_str(&pk, "seq");
	msgpack_pack_uint64(&pk, t->seq);
	pack_str(&pk, "generation");
	msgpack_pack_uint64(&pk, t->generation);
	pack_str(&pk, "allocations");
	msgpack_pack_array(&pk, t->n);
	for (a = t->head; a; a = a->next) {
		msgpack_pack_map(&pk, 7);
		pack_str(&pk, "id");
		pack_str(&pk, a->id);
		pack_str(&pk, "ns");
		for (k = nk = 0; k < NSV_KINDS; k++)
			nk += !!(a->mask & (1u << k));
		msgpack_pack_array(&pk, nk);
		for (k = 0; k < NSV_KINDS; k++)
			if (a->mask & (1u << k))
				pack_str(&pk, nsvocab_kind_name(k));
		pack_str(&pk, "image");
		if (a->image)
			pack_str(&pk, a->image);
		else
			msgpack_pack_nil(&pk);
		pack_str(&pk, "reaper");
		msgpack_pack_uint32(&pk, (uint32_t)a->reaper);
		pack_str(&pk, "ino");
		msgpack_pack_array(&pk, NSV_KINDS);
		for (k = 0; k < NSV_KINDS; k++)
			msgpack_pack_uint64(&pk, a->ino[k]);
		pack_str(&pk, "created_at_ms");
		msgpack_pack_uint64(&pk, a->created_ms);
		pack_str(&pk, "cg_seen");
		if (a->cg_seen)
			msgpack_pack_true(&pk);
		else
			msgpack_pack_false(&pk);
	}
	pack_str(&pk, "events");
	msgpack_pack_array(&pk, t->ev_n);
	for (k = 0; k < t->ev_n; k++) {
		const struct ns_event *e = nsstate_event(t, k);

		msgpack_pack_array(&pk, 2);
		msgpack_pack_uint64(&pk, e->seq);
		pack_str(&pk, e->id);
	}
	pack_str(&pk, "events_floor");
	msgpack_pack_uint64(&pk, t->ev_floor);
	if (!sb.data) {
		msgpack_sbuffer_destroy(&sb);
		return -ENOMEM;
	}
	*ret_len = sb.size;
	*ret_buf = (uint8_t *)msgpack_sbuffer_release(&sb);
	return 0;
}

/* A map key and its length, known at compile time: KEY("id"). */
struct key {
	const char *s;
	uint32_t len;
};
#define KEY(str) { str, sizeof(str) - 1 }

/* The first value under each of keys[0..n) in map o, in one pass. */
static void
get_fields(const msgpack_object *o, const struct key *keys, unsigned n,
    const msgpack_object **fields)
{
	const msgpack_object_kv *kv;
	uint32_t i;
	unsigned k;

	memset(fields, 0, n * sizeof(*fields));
	if (o->type != MSGPACK_OBJECT_MAP)
		return;
	for (i = 0; i < o->via.map.size; i++) {
		kv = &o->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		for (k = 0; k < n; k++)
			if (!fields[k] && kv->key.via.str.size == keys[k].len &&
			    memcmp(kv->key.via.str.ptr, keys[k].s,
			    keys[k].len) == 0) {
				fields[k] = &kv->val;
				break;
			}
	}
}

/* The value under key in map o, or NULL. */
static const msgpack_object *
get(const msgpack_object *o, const char *key)
{
	const struct key k = { key, (uint32_t)strlen(key) };
	const msgpack_object *v;

	get_fields(o, &k, 1, &v);
	return v;
}

/* A positive integer value: 0, or -EBADMSG (missing or another type). */
static int
u64_of(const msgpack_object *v, uint64_t *ret)
{
	if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EBADMSG;
	*ret = v->via.u64;
	return 0;
}

static int
get_u64(const msgpack_object *o, const char *key, uint64_t *ret)
{
	return u64_of(get(o, key), ret);
}

/* Copy a msgpack string into buf (NUL-terminated); -EBADMSG if too long. */
static int
get_str(const msgpack_object *v, char *buf, size_t len)
{
	if (!v || v->type != MSGPACK_OBJECT_STR || v->via.str.size >= len ||
	    memchr(v->via.str.ptr, '\0', v->via.str.size))
		return -EBADMSG;
	memcpy(buf, v->via.str.ptr, v->via.str.size);
	buf[v->via.str.size] = '\0';
	return 0;
}

static int
decode_alloc(const msgpack_object *o, struct ns_alloc **ret)
{
	enum { F_ID, F_NS, F_IMAGE, F_REAPER, F_INO, F_CREATED, F_CG, F_N };
	static const struct key keys[F_N] = { KEY("id"), KEY("ns"),
	    KEY("image"), KEY("reaper"), KEY("ino"), KEY("created_at_ms"),
	    KEY("cg_seen") };
	const msgpack_object *f[F_N];
	struct ns_alloc *a = nsstate_alloc_new();
	const msgpack_object *v;
	char name[16], img[NSV_ID_MAX + 1];
	uint64_t u;
	uint32_t i;
	int r, k;

	if (!a)
		return -ENOMEM;
	/* One pass over the entry's keys: 10,000 entries at every start. */
	get_fields(o, keys, F_N, f);
	r = -EBADMSG;
	if (get_str(f[F_ID], a->id, sizeof(a->id)) < 0 ||
	    !nsvocab_id_ok(a->id))
		goto out;
	v = f[F_NS];
	if (!v || v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0 ||
	    v->via.array.size > NSV_KINDS)
		goto out;
	for (i = 0; i < v->via.array.size; i++) {
		if (get_str(&v->via.array.ptr[i], name, sizeof(name)) < 0)
			goto out;
		k = nsvocab_kind_parse(name);
		if (k < 0 || (a->mask & (1u << k)))
			goto out;
		a->mask |= 1u << k;
	}
	v = f[F_IMAGE];
	if (!v)
		goto out;
	if (v->type != MSGPACK_OBJECT_NIL) {
		if (get_str(v, img, sizeof(img)) < 0 ||
		    !nsvocab_image_ok(img) || !(a->mask & NSVM_MNT))
			goto out;
		a->image = strdup(img);
		if (!a->image) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (u64_of(f[F_REAPER], &u) < 0 || u > INT32_MAX ||
	    (u != 0) != !!(a->mask & NSVM_PID))
		goto out;
	a->reaper = (pid_t)u;
	v = f[F_INO];
	if (!v || v->type != MSGPACK_OBJECT_ARRAY ||
	    v->via.array.size != NSV_KINDS)
		goto out;
	for (i = 0; i < NSV_KINDS; i++) {
		if (v->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			goto out;
		a->ino[i] = v->via.array.ptr[i].via.u64;
		if ((a->ino[i] != 0) != !!(a->mask & (1u << i)))
			goto out;
	}
	if (u64_of(f[F_CREATED], &a->created_ms) < 0)
		goto out;
	v = f[F_CG];
	if (!v || v->type != MSGPACK_OBJECT_BOOLEAN)
		goto out;
	a->cg_seen = v->via.boolean;
	*ret = a;
	a = NULL;
	r = 0;
out:
	nsstate_alloc_free(a);
	return r;
}

/* The optional event log: stamped, in order, ids valid. */
static int
decode_events(const msgpack_object *root, struct ns_table *t)
{
	const msgpack_object *arr = get(root, "events"), *e;
	struct ns_event *ev;
	uint64_t prev = 0;
	uint32_t i;

	if (get(root, "events_floor") &&
	    get_u64(root, "events_floor", &t->ev_floor) < 0)
		return -EBADMSG;
	if (!arr)
		return 0;
	if (arr->type != MSGPACK_OBJECT_ARRAY ||
	    arr->via.array.size > NSSTATE_EVENTS_MAX)
		return -EBADMSG;
	for (i = 0; i < arr->via.array.size; i++) {
		e = &arr->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
		    e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    e->via.array.ptr[1].type != MSGPACK_OBJECT_STR ||
		    e->via.array.ptr[1].via.str.size > NSV_ID_MAX ||
		    e->via.array.ptr[0].via.u64 < prev ||
		    e->via.array.ptr[0].via.u64 == 0)
			return -EBADMSG;
		prev = e->via.array.ptr[0].via.u64;
		if (nsstate_event_add(t, "") < 0)
			return -ENOMEM;
		ev = &t->ev[(t->ev_first + t->ev_n - 1) % NSSTATE_EVENTS_MAX];
		ev->seq = prev;
		memcpy(ev->id, e->via.array.ptr[1].via.str.ptr,
		    e->via.array.ptr[1].via.str.size);
		ev->id[e->via.array.ptr[1].via.str.size] = '\0';
		if (!nsvocab_id_ok(ev->id))
			return -EBADMSG;
	}
	return 0;
}

int
nsstate_decode(const void *buf, size_t len, struct ns_table *ret)
{
	msgpack_unpacked up;
	struct ns_table t = { 0 };
	struct ns_alloc *a = NULL;
	const msgpack_object *root, *arr;
	size_t off = 0;
	uint64_t v;
	uint32_t i;
	int r;

	msgpack_unpacked_init(&up);
	r = -EBADMSG;
	if (msgpack_unpack_next(&up, buf, len, &off) !=
	    MSGPACK_UNPACK_SUCCESS || off != len)
		goto out;
	root = &up.data;
	if (get_u64(root, "v", &v) < 0 || v != NSSTATE_VERSION ||
	    get_u64(root, "seq", &t.seq) < 0 ||
	    get_u64(root, "generation", &t.generation) < 0)
		goto out;
	arr = get(root, "allocations");
	if (!arr || arr->type != MSGPACK_OBJECT_ARRAY ||
	    arr->via.array.size > NSSTATE_MAX_ALLOCS)
		goto out;
	r = decode_events(root, &t);
	if (r < 0)
		goto out;
	/* Sized once, not doubled all the way up while inserting. */
	if (grow_to(&t, arr->via.array.size) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = -EBADMSG;
	/* Walk backwards so head insertion keeps the file's order. */
	for (i = arr->via.array.size; i-- > 0;) {
		r = decode_alloc(&arr->via.array.ptr[i], &a);
		if (r < 0)
			goto out;
		if (nsstate_find(&t, a->id)) {
			nsstate_alloc_free(a);
			r = -EBADMSG;
			goto out;
		}
		if (nsstate_insert(&t, a) < 0) {
			nsstate_alloc_free(a);
			r = -ENOMEM;
			goto out;
		}
	}
	*ret = t;
	memset(&t, 0, sizeof(t));	/* ownership went to *ret */
	r = 0;
out:
	nsstate_clear(&t);
	msgpack_unpacked_destroy(&up);
	return r;
}
