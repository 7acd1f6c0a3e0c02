/*
 * atomicfile: durable, atomic, checksummed small files (journal, state).
 * write: temp file in the same directory, write, fsync, rename, fsync the
 * directory.  The file carries a header (magic, length, SHA-256) so a
 * reader rejects a torn or corrupted file instead of trusting it.
 * Crash points j-* sit between the steps.
 */
#ifndef BATON_ATOMICFILE_H
#define BATON_ATOMICFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ATOMICFILE_MAX (64u << 20)
#define ATOMICFILE_SUM_LEN 32	/* SHA-256 of the payload, in the header */

/* Returns 0 or -errno (-EFBIG over ATOMICFILE_MAX).  mode e.g. 0600. */
int atomicfile_write(const char *path, const void *data, size_t len,
    mode_t mode);

/* atomicfile_write, and the payload's SHA-256 (ret_sum may be NULL). */
int atomicfile_write_sum(const char *path, const void *data, size_t len,
    mode_t mode, uint8_t ret_sum[ATOMICFILE_SUM_LEN]);

/*
 * The same file, atomic (a reader sees the old one or the new one, whole
 * and checksummed) but not waited to the disk: survives the crash of any
 * process, not a power loss.  For records no recovery decision after a
 * power loss depends on (a power loss ends every process anyway).
 */
int atomicfile_write_nosync(const char *path, const void *data, size_t len,
    mode_t mode);

/*
 * The same container, rewritten in place (no temp file, no rename, no
 * flush; truncated when shorter), with the payload's checksum given (the
 * caller computed it for another copy of the same bytes).  NOT atomic: a
 * reader that runs meanwhile, or the writer killed mid-write, leaves a
 * file whose length or checksum fails, never a wrong payload.  For a
 * copy read only while its writer is gone, where a rename's cost is not
 * wanted (the table's copy for older builds, successor/nsfile.c).  It
 * allocates nothing.
 */
int atomicfile_overwrite(const char *path, const void *data, size_t len,
    mode_t mode, const uint8_t sum[ATOMICFILE_SUM_LEN]);

/* The checksum a header holds for this payload (SHA-256). */
void atomicfile_sum(const void *data, size_t len,
    uint8_t ret[ATOMICFILE_SUM_LEN]);

/*
 * Up to cap bytes from the start of path's payload, NOT verified (the
 * checksum covers the whole payload): to choose between copies before
 * reading one whole.  Checks magic, version and length against the
 * file's size.  0 and *ret_n, or -errno (-EBADMSG for a damaged header).
 */
int atomicfile_peek(const char *path, void *buf, size_t cap, size_t *ret_n);

/*
 * A small text file readers take as it is (pidfile, readiness file,
 * metrics textfile): atomic like the others (temp file, rename), but
 * neither checksummed nor waited to the disk, since each describes
 * processes a power loss ends anyway.  No crash points.
 */
int atomicfile_write_plain(const char *path, const void *data, size_t len,
    mode_t mode);

/*
 * Whether a write that failed with r (-errno) may succeed if simply tried
 * again: I/O error, full disk, interrupted, try again, out of fds.  For
 * callers that must not give up on one failed write (the readiness file,
 * the lock's pidfile).
 */
bool atomicfile_transient(int r);

/*
 * Read and verify.  Returns 0 with an owned buffer (free()), -ENOENT,
 * -EBADMSG for a bad magic/length/checksum, -EFBIG over max, or -errno.
 * max is capped at ATOMICFILE_MAX.  An empty payload still gets a buffer.
 */
int atomicfile_read(const char *path, size_t max, void **ret_data,
    size_t *ret_len);
/* atomicfile_read, and the verified SHA-256 of the payload. */
int atomicfile_read_sum(const char *path, size_t max, void **ret_data,
    size_t *ret_len, uint8_t ret_sum[ATOMICFILE_SUM_LEN]);

/* Unlink and fsync the directory; a missing file is not an error. */
int atomicfile_remove(const char *path);

/* fsync the directory holding path (a name just made); no allocation. */
int atomicfile_sync_dir(const char *path);

/*
 * Remove leftover temp files of path (after a crash mid-write): every
 * <path>.tmp.<pid> whose pid is not a running process (ours is kept: a
 * thread of ours may be mid-write; our next write replaces it anyway).
 * Returns how many were removed (>= 0) or -errno.
 */
int atomicfile_cleanup(const char *path);

#endif
