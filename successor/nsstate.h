/*
 * nsstate: the allocation table in memory and its msgpack form on disk
 * (the payload of an atomicfile).  Pure data: no syscalls.
 */
#ifndef BATON_NSSTATE_H
#define BATON_NSSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/nsvocab.h"

#define NSSTATE_VERSION 1

struct ns_alloc {
	char id[NSV_ID_MAX + 1];
	unsigned mask;			/* NSVM_* */
	char *image;			/* owned, NULL without uenv */
	pid_t reaper;			/* init of the pid namespace, or 0 */
	uint64_t ino[NSV_KINDS];	/* by kind; 0 for kinds not in mask */
	uint64_t created_ms;		/* wall clock */
	bool cg_seen;			/* its scope was seen populated */
	/* Runtime only, never persisted. */
	int cg_wd;			/* inotify watch on cgroup.events, -1 */
	bool dead;			/* pid namespace init died */
	struct ns_alloc *next;		/* the table's list */
	struct ns_alloc *hnext;		/* its hash bucket */
};

/* One ended allocation, for subscribers that reconnect (SUBSCRIBE since_seq). */
struct ns_event {
	uint64_t seq;			/* its own table seq, given by the write
					 * that ended it; 0 until encoded */
	char id[NSV_ID_MAX + 1];
};

#define NSSTATE_EVENTS_MAX 1024		/* the log keeps the newest ones */
/*
 * The most allocations a table file may hold (and --max-allocations may
 * ask for): that many of the largest entries (128-character id and image
 * name, three namespaces) stay inside ATOMICFILE_MAX (test_nsstate).
 */
#define NSSTATE_MAX_ALLOCS 131072

struct ns_table {
	uint64_t seq;			/* +1 per ended allocation, and +1 for
					 * a durable write that ended none */
	uint64_t generation;		/* +1 per handoff */
	/* Ended allocations, oldest first, a ring of NSSTATE_EVENTS_MAX. */
	struct ns_event *ev;
	unsigned ev_n, ev_first;
	uint64_t ev_floor;		/* newest seq dropped from the log */
	unsigned n;
	struct ns_alloc *head;
	/* Index by id: lookups stay O(1) with thousands of allocations. */
	struct ns_alloc **bucket;
	unsigned nbucket;		/* a power of two, or 0 */
};

/* A zeroed allocation with cg_wd -1.  NULL on ENOMEM. */
struct ns_alloc *nsstate_alloc_new(void);
void nsstate_alloc_free(struct ns_alloc *a);

struct ns_alloc *nsstate_find(const struct ns_table *t, const char *id);
/* Link a (taken) at the head.  0, or -ENOMEM (a is not linked). */
int nsstate_insert(struct ns_table *t, struct ns_alloc *a);
/* Unlink a (not freed). */
void nsstate_remove(struct ns_table *t, struct ns_alloc *a);
/* Free every allocation and the index; t is empty and reusable. */
void nsstate_clear(struct ns_table *t);

/* Append an event (seq 0: stamped by the next encode).  0 or -ENOMEM. */
int nsstate_event_add(struct ns_table *t, const char *id);
/* Drop the newest event for id (its release's write failed). */
void nsstate_event_undo(struct ns_table *t, const char *id);
/* The i-th event, oldest first (i < t->ev_n). */
const struct ns_event *nsstate_event(const struct ns_table *t, unsigned i);
/*
 * Give the events not yet stamped, oldest first, the sequences after+1,
 * after+2, ...: every ended allocation has its own seq, so a subscriber's
 * since_seq names exactly what it has seen.  Returns the last seq given
 * (after when there was none).
 */
uint64_t nsstate_event_stamp(struct ns_table *t, uint64_t after);
/* Take the stamps above seq off again (their write was not encoded). */
void nsstate_event_unstamp(struct ns_table *t, uint64_t above);
/* The seq of the newest event for id; 0 when none or not stamped. */
uint64_t nsstate_event_seq(const struct ns_table *t, const char *id);

/* Encode t into an owned buffer (free()).  0 or -ENOMEM. */
int nsstate_encode(const struct ns_table *t, uint8_t **ret_buf,
    size_t *ret_len);
/*
 * Decode strictly: the right version, every key, valid ids and images,
 * no duplicate ids.  0 and an owned table in *ret, or -EBADMSG/-ENOMEM.
 */
int nsstate_decode(const void *buf, size_t len, struct ns_table *ret);
/*
 * The table's seq from the start of its bytes (a prefix will do: the
 * encoder puts seq second), without decoding the rest or checking it.
 * 0, or -EBADMSG when no seq comes before the bytes end.
 */
int nsstate_peek_seq(const void *buf, size_t len, uint64_t *ret_seq);

#endif
