/*
 * nsfile: the allocation table's files.  A change is made durable with
 * one flush, and every build that may read the table finds it current.
 *
 *   <path>.0, <path>.1   two slots, written in turn and in place: a
 *                        64-byte header ("BTNS", version, seq, length,
 *                        SHA-256 of the payload) and the payload.  A
 *                        write goes to the slot that does not hold the
 *                        newest durable table and ends with one
 *                        fdatasync; a slot torn by a crash fails its
 *                        checksum and the other one is read.
 *   <path>               the atomicfile copy that builds before the
 *                        slots read, renamed into place (not flushed)
 *                        after every slot write, before any answer: a
 *                        downgrade, or a handoff to an older build,
 *                        loses nothing a process crash can take.
 *
 * The reader takes the copy with the highest table seq whose checksum
 * holds (every write raises seq): the newest slot, or <path> when an
 * older build wrote it last.  docs/PROTOCOL.md, "The table's files".
 *
 * nsfile_write makes system calls and hashes, and never allocates: the
 * table's writer thread calls it (nswriter.c).
 */
#ifndef BATON_NSFILE_H
#define BATON_NSFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/slotfile.h"

#define NSFILE_SUM_LEN	SLOTFILE_SUM_LEN	/* SHA-256 of the payload */
#define NSFILE_HDR	SLOTFILE_HDR	/* a slot's header */

struct nsfile {
	char path[PATH_MAX];		/* the atomicfile copy */
	char slot[2][PATH_MAX];		/* <path>.0, <path>.1 */
	int cur;			/* slot holding the newest durable
					 * table, -1: neither (none yet, or
					 * <path> is newer) */
	uint64_t cap[2];		/* each slot file's size */
	bool live;			/* read while a writer may write (a
					 * head start): a copy that fails is
					 * being rewritten, not damaged */
};

/* 0, or -ENAMETOOLONG.  f->cur is -1 until a read or a write. */
int nsfile_init(struct nsfile *f, const char *path);

/*
 * Read the newest copy whose checksum holds: the payload (owned, free())
 * and its SHA-256, and set f->cur and f->cap for the writes that follow.
 * *ret_from (may be NULL) names the copy: "slot" or "legacy".
 * -ENOENT when no copy exists; -EBADMSG when none holds, or when the
 * copy that claims the highest seq does not (an older one would lose
 * what it holds); -EFBIG over max.
 */
int nsfile_read(struct nsfile *f, size_t max, void **ret_buf,
    size_t *ret_len, uint8_t ret_sum[NSFILE_SUM_LEN], const char **ret_from);

/*
 * Set f->cur and f->cap without reading payloads, for a table known to
 * be the one last written with seq `seq` (a sealed handoff: its writer
 * wrote nothing after, so the slot whose header names that seq holds
 * it; -1 when none does, e.g. an older build wrote only <path>).
 */
void nsfile_locate(struct nsfile *f, uint64_t seq);

/*
 * Write payload (table seq `seq`) durably: the slot after f->cur, one
 * fdatasync, then the atomicfile copy.  0 and ret_sum, or -errno (the
 * slot may hold it anyway; the next write goes elsewhere then).
 */
int nsfile_write(struct nsfile *f, const void *buf, size_t len, uint64_t seq,
    uint8_t ret_sum[NSFILE_SUM_LEN]);

#endif
