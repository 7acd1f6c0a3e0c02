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

#include "proto/mpread.h"
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

/*
 * The map at c, consumed whole: a cursor at the first value under each of
 * keys[0..n) (p NULL where the key is absent), in one pass.  Keys that
 * are not strings, and values of other keys, are skipped (checked as
 * msgpack all the same).  The value of keys[take] (take < n), instead of
 * being skipped and read again later, is read where it stands by
 * take_fn(c, arg), which must consume it: the table's allocations, most
 * of its bytes, are walked once (take >= n: none).  0, -EBADMSG, or
 * take_fn's error.
 */
static int
map_fields(struct mpread *c, const struct key *keys, unsigned n,
    struct mpread *fields, unsigned take,
    int (*take_fn)(struct mpread *c, void *arg), void *arg)
{
	const char *s;
	uint32_t m, i, len;
	unsigned k;
	int r;

	for (k = 0; k < n; k++)
		fields[k].p = NULL;
	if (mpread_map(c, &m) < 0)
		return -EBADMSG;
	for (i = 0; i < m; i++) {
		k = n;
		if (mpread_str(c, &s, &len) == 0) {
			for (k = 0; k < n; k++)
				if (!fields[k].p && len == keys[k].len &&
				    memcmp(s, keys[k].s, len) == 0)
					break;
		} else if (mpread_skip(c) < 0) {
			return -EBADMSG;
		}
		if (k < n)
			fields[k] = *c;
		if (k < n && k == take) {
			r = take_fn(c, arg);
			if (r < 0)
				return r;
		} else if (mpread_skip(c) < 0) {
			return -EBADMSG;
		}
	}
	return 0;
}

/* A non-negative integer at v (a field cursor): 0, or -EBADMSG. */
static int
u64_of(struct mpread *v, uint64_t *ret)
{
	return v->p ? mpread_u64(v, ret) : -EBADMSG;
}

/* Copy a string at v into buf (NUL-terminated); -EBADMSG if too long. */
static int
str_of(struct mpread *v, char *buf, size_t len)
{
	const char *s;
	uint32_t n;

	if (!v->p || mpread_str(v, &s, &n) < 0 || n >= len ||
	    memchr(s, '\0', n))
		return -EBADMSG;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

static int
decode_alloc(struct mpread *c, struct ns_alloc **ret)
{
	enum { F_ID, F_NS, F_IMAGE, F_REAPER, F_INO, F_CREATED, F_CG, F_N };
	static const struct key keys[F_N] = { KEY("id"), KEY("ns"),
	    KEY("image"), KEY("reaper"), KEY("ino"), KEY("created_at_ms"),
	    KEY("cg_seen") };
	struct mpread f[F_N];
	struct ns_alloc *a = nsstate_alloc_new();
	char name[16], img[NSV_ID_MAX + 1];
	uint64_t u;
	uint32_t i, n;
	int r, k, b;

	if (!a)
		return -ENOMEM;
	r = -EBADMSG;
	/* One pass over the entry's keys: 10,000 entries at every start. */
	if (map_fields(c, keys, F_N, f, F_N, NULL, NULL) < 0)
		goto out;
	if (str_of(&f[F_ID], a->id, sizeof(a->id)) < 0 ||
	    !nsvocab_id_ok(a->id))
		goto out;
	if (!f[F_NS].p || mpread_array(&f[F_NS], &n) < 0 || n == 0 ||
	    n > NSV_KINDS)
		goto out;
	for (i = 0; i < n; i++) {
		if (str_of(&f[F_NS], name, sizeof(name)) < 0)
			goto out;
		k = nsvocab_kind_parse(name);
		if (k < 0 || (a->mask & (1u << k)))
			goto out;
		a->mask |= 1u << k;
	}
	if (!f[F_IMAGE].p)
		goto out;
	if (mpread_nil(&f[F_IMAGE]) < 0) {
		if (str_of(&f[F_IMAGE], img, sizeof(img)) < 0 ||
		    !nsvocab_image_ok(img) || !(a->mask & NSVM_MNT))
			goto out;
		a->image = strdup(img);
		if (!a->image) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (u64_of(&f[F_REAPER], &u) < 0 || u > INT32_MAX ||
	    (u != 0) != !!(a->mask & NSVM_PID))
		goto out;
	a->reaper = (pid_t)u;
	if (!f[F_INO].p || mpread_array(&f[F_INO], &n) < 0 || n != NSV_KINDS)
		goto out;
	for (i = 0; i < NSV_KINDS; i++) {
		if (mpread_u64(&f[F_INO], &a->ino[i]) < 0 ||
		    (a->ino[i] != 0) != !!(a->mask & (1u << i)))
			goto out;
	}
	if (u64_of(&f[F_CREATED], &a->created_ms) < 0)
		goto out;
	if (!f[F_CG].p || mpread_bool(&f[F_CG], &b) < 0)
		goto out;
	a->cg_seen = b != 0;
	*ret = a;
	a = NULL;
	r = 0;
out:
	nsstate_alloc_free(a);
	return r;
}

/* The optional event log: stamped, in order, ids valid. */
static int
decode_events(struct mpread *arr, struct mpread *floor, struct ns_table *t)
{
	struct ns_event *ev;
	uint64_t prev = 0, seq;
	const char *id;
	uint32_t i, n, k, len;

	if (floor->p && u64_of(floor, &t->ev_floor) < 0)
		return -EBADMSG;
	if (!arr->p)
		return 0;
	if (mpread_array(arr, &n) < 0 || n > NSSTATE_EVENTS_MAX)
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		if (mpread_array(arr, &k) < 0 || k != 2 ||
		    mpread_u64(arr, &seq) < 0 ||
		    mpread_str(arr, &id, &len) < 0 || len > NSV_ID_MAX ||
		    seq < prev || seq == 0)
			return -EBADMSG;
		prev = seq;
		if (nsstate_event_add(t, "") < 0)
			return -ENOMEM;
		ev = &t->ev[(t->ev_first + t->ev_n - 1) % NSSTATE_EVENTS_MAX];
		ev->seq = seq;
		memcpy(ev->id, id, len);
		ev->id[len] = '\0';
		if (!nsvocab_id_ok(ev->id))
			return -EBADMSG;
	}
	return 0;
}

/* The allocations, decoded where they stand in the file (map_fields). */
struct allocs {
	struct ns_alloc **v;
	uint32_t n;
};

static int
take_allocs(struct mpread *c, void *arg)
{
	struct allocs *al = arg;
	uint32_t i, n;
	int r;

	if (mpread_array(c, &n) < 0 || n > NSSTATE_MAX_ALLOCS)
		return -EBADMSG;
	al->v = calloc(n ? n : 1, sizeof(*al->v));
	if (!al->v)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		r = decode_alloc(c, &al->v[i]);
		if (r < 0)
			return r;
		al->n = i + 1;
	}
	return 0;
}

/*
 * One pass over the bytes with mpread, no msgpack-c object tree: at
 * 10,000 entries the tree was ~5 MB of fresh zone memory, and a cold
 * decode (a successor's head start) was mostly its page faults.
 */
int
nsstate_decode(const void *buf, size_t len, struct ns_table *ret)
{
	enum { R_V, R_SEQ, R_GEN, R_ALLOCS, R_EVENTS, R_FLOOR, R_N };
	static const struct key keys[R_N] = { KEY("v"), KEY("seq"),
	    KEY("generation"), KEY("allocations"), KEY("events"),
	    KEY("events_floor") };
	struct mpread c, f[R_N];
	struct ns_table t = { 0 };
	struct allocs al = { NULL, 0 };
	struct ns_alloc *a;
	uint64_t ver;
	uint32_t i;
	int r;

	mpread_init(&c, buf, len);
	r = map_fields(&c, keys, R_N, f, R_ALLOCS, take_allocs, &al);
	if (r == 0 && mpread_left(&c) != 0)
		r = -EBADMSG;
	if (r < 0)
		goto out;
	r = -EBADMSG;
	if (u64_of(&f[R_V], &ver) < 0 || ver != NSSTATE_VERSION ||
	    u64_of(&f[R_SEQ], &t.seq) < 0 ||
	    u64_of(&f[R_GEN], &t.generation) < 0 || !f[R_ALLOCS].p)
		goto out;
	r = decode_events(&f[R_EVENTS], &f[R_FLOOR], &t);
	if (r < 0)
		goto out;
	/* Sized once, not doubled all the way up while inserting. */
	if (grow_to(&t, al.n) < 0) {
		r = -ENOMEM;
		goto out;
	}
	/* Backwards, so that head insertion keeps the file's order. */
	for (i = al.n; i-- > 0;) {
		a = al.v[i];
		al.v[i] = NULL;
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
	for (i = 0; i < al.n; i++)
		nsstate_alloc_free(al.v[i]);
	free(al.v);
	nsstate_clear(&t);
	return r;
}

int
nsstate_peek_seq(const void *buf, size_t len, uint64_t *ret_seq)
{
	struct mpread c;
	const char *s;
	uint32_t m, i, n;

	mpread_init(&c, buf, len);
	if (mpread_map(&c, &m) < 0)
		return -EBADMSG;
	for (i = 0; i < m; i++) {
		if (mpread_str(&c, &s, &n) < 0) {
			if (mpread_skip(&c) < 0)	/* a key of another type */
				return -EBADMSG;
		} else if (n == 3 && memcmp(s, "seq", 3) == 0) {
			return mpread_u64(&c, ret_seq);	/* the first one wins */
		}
		if (mpread_skip(&c) < 0)
			return -EBADMSG;
	}
	return -EBADMSG;
}
