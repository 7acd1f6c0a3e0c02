/*
 * slotfile: a record kept in two files, <path>.0 and <path>.1, written in
 * turn and in place, never renamed.
 *
 * Each slot is a 64-byte header (a 4-byte magic the caller chooses,
 * version, seq, payload length, SHA-256 of the payload) and the payload.
 * A write goes to the slot that does not hold the newest whole record,
 * with the next seq, so a write torn by a crash (or a power loss, when
 * not flushed) fails its checksum and the other slot, one write older,
 * is read.  A slot keeps its size and is never truncated: the header
 * says how much of it is the record.
 *
 * Why: a temp file renamed over the old one costs a file creation and a
 * rename, metadata the file system journals (on ext4 also the flush of
 * the new file's data that replace-via-rename starts): baton-floor's
 * `renamed` row against its `inplace` row, 83-102 us against 4 us p50 on
 * the bench machine (docs/BENCH.md).
 *
 * The table's files (successor/nsfile.c) are built on the slot helpers
 * here; the supervisor's journal (supervisor/journal.c) on the whole
 * record API.
 */
#ifndef BATON_SLOTFILE_H
#define BATON_SLOTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SLOTFILE_HDR		64	/* a slot's header */
#define SLOTFILE_SUM_LEN	32	/* SHA-256 of the payload */
#define SLOTFILE_VERSION	1u

/* One slot's header, as found. */
struct slotfile_hdr {
	bool ok;		/* magic, version and length plausible */
	uint64_t seq, len;
	uint64_t size;		/* the file's size */
	uint8_t sum[SLOTFILE_SUM_LEN];
};

/* "<path>.<i>" into buf: 0 or -ENAMETOOLONG. */
int slotfile_name(char *buf, size_t cap, const char *path, unsigned i);

/*
 * Open a slot and read its header (h->ok false when it holds none yet or
 * a damaged one).  0 with the fd in *ret_fd (read-only, the caller
 * closes it), or -errno (-ENOENT: no such slot).
 */
int slotfile_open(const char *slot, const char magic[4], size_t max,
    struct slotfile_hdr *h, int *ret_fd);

/* The payload of an open slot, if its checksum holds: 0, -EBADMSG, -errno. */
int slotfile_payload(int fd, const struct slotfile_hdr *h, void **ret_buf);

/* A slot opened for writing, made (0600) when missing: the fd or -errno. */
int slotfile_open_write(const char *slot, bool *ret_created);

/*
 * A slot's bytes are written (crash point j-after-tmp-write): with sync,
 * make them durable with one fdatasync, and the slot's name with the
 * directory's fsync when the slot was just made.  0 or -errno.
 */
int slotfile_flush(int fd, const char *slot, bool created, bool sync);

/* A header for payload buf[0..len) with seq. */
void slotfile_hdr_fill(uint8_t hdr[SLOTFILE_HDR], const char magic[4],
    uint64_t seq, const void *buf, size_t len);

/* Both slots of a pair, as found. */
struct slotfile_scan {
	struct slotfile_hdr h[2];
	unsigned nslots;	/* slot files that exist */
	int best;		/* slot of the newest whole record, -1: none */
	uint64_t top;		/* the highest seq a plausible header claims */
	unsigned torn;		/* bit i: slot i was read and its checksum
				 * failed (a write that did not end, or one
				 * in progress) */
};

/*
 * Read both slots' headers, then the payloads newest first until one's
 * checksum holds: that one is *ret_buf (owned; may be NULL to check
 * only).  0, or -errno for a failure other than a missing slot or a
 * damaged one (those are in *sc).
 */
int slotfile_scan(char *const slot[2], const char magic[4], size_t max,
    struct slotfile_scan *sc, void **ret_buf);

/* pread/pwrite the whole range, retrying EINTR (a short read: -EBADMSG). */
int slotfile_pread_all(int fd, void *buf, size_t len, off_t off);
int slotfile_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/*
 * The whole-record API.  Read: the payload of the newest slot whose
 * checksum holds (owned, free()), and its seq.  -ENOENT when neither slot
 * exists; -EBADMSG when slots exist but none holds a whole record.
 */
int slotfile_read(const char *path, const char magic[4], size_t max,
    void **ret_buf, size_t *ret_len, uint64_t *ret_seq);

/*
 * Write payload into the slot that does not hold the newest whole record,
 * with the seq after the newest one found.  sync: one fdatasync (and the
 * directory's fsync when the slot file was made).  Crash points
 * j-after-tmp-write (written), j-after-tmp-fsync (flushed, or where the
 * flush would be) and j-after-rename (done) mark its steps, as they mark
 * an atomicfile write's.  0 or -errno.
 */
int slotfile_write(const char *path, const char magic[4], const void *buf,
    size_t len, bool sync);

#endif
