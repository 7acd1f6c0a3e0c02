/*
 * nsfile: the allocation table's files (nsfile.h).
 *
 * Why two slots: a table written to a new file and renamed costs two
 * flushes (the file's data, then the directory that names it), each a
 * journal commit on ext4 (baton-floor's `journal`, 518-659 us p50 on
 * the bench machine).  A slot that already exists at its size is
 * overwritten in place and made durable by one fdatasync, with no
 * metadata to commit (baton-floor's `slot`, 100 us in the same run;
 * docs/BENCH.md).  Two of them, so that the one being written never
 * holds the only durable copy: a crash mid-write leaves it failing its
 * checksum and the other slot, one write older, is the table.  That
 * older table is what the clients were answered from, since an answer
 * waits for the write.
 *
 * A slot grows ahead of need (zeros written once, flushed with the
 * write that needed them) and never shrinks: the header's length says
 * how much of it is the table.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/slotfile.h"
#include "common/log.h"
#include "crashpoints/crashpoint.h"
#include "successor/nsfile.h"
#include "successor/nsstate.h"

#define SLOT_MAGIC	"BTNS"
#define GROW_MIN	(64u << 10)	/* a slot grows by at least this */
#define PEEK_LEN	256		/* of <path>'s payload: holds its seq */

int
nsfile_init(struct nsfile *f, const char *path)
{
	unsigned i;
	int n;

	memset(f, 0, sizeof(*f));
	f->cur = -1;
	n = snprintf(f->path, sizeof(f->path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(f->path))
		return -ENAMETOOLONG;
	for (i = 0; i < 2; i++)
		if (slotfile_name(f->slot[i], sizeof(f->slot[i]), path, i) < 0)
			return -ENAMETOOLONG;
	return 0;
}

void
nsfile_locate(struct nsfile *f, uint64_t seq)
{
	struct slotfile_hdr h;
	unsigned i;
	int fd;

	f->cur = -1;
	for (i = 0; i < 2; i++) {
		f->cap[i] = 0;
		(void)slotfile_open(f->slot[i], SLOT_MAGIC, ATOMICFILE_MAX, &h,
		    &fd);
		if (fd < 0)
			continue;
		close(fd);
		f->cap[i] = h.size;
		if (h.ok && h.seq == seq && f->cur < 0)
			f->cur = (int)i;
	}
}

/* <path>'s seq, from its first bytes: 0, -ENOENT, -EBADMSG, -errno. */
static int
legacy_seq(const struct nsfile *f, uint64_t *ret)
{
	uint8_t b[PEEK_LEN];
	size_t n;
	int r;

	r = atomicfile_peek(f->path, b, sizeof(b), &n);
	if (r < 0)
		return r;
	return nsstate_peek_seq(b, n, ret);
}

/* <path> whole, as the table: its checksum must hold. */
static int
take_legacy(struct nsfile *f, size_t max, void **ret_buf, size_t *ret_len,
    uint8_t ret_sum[NSFILE_SUM_LEN], const char **ret_from)
{
	int r = atomicfile_read_sum(f->path, max, ret_buf, ret_len, ret_sum);

	if (r == 0 && ret_from)
		*ret_from = "legacy";
	return r;
}

int
nsfile_read(struct nsfile *f, size_t max, void **ret_buf, size_t *ret_len,
    uint8_t ret_sum[NSFILE_SUM_LEN], const char **ret_from)
{
	struct slotfile_scan sc;
	char *slot[2] = { f->slot[0], f->slot[1] };
	const struct slotfile_hdr *h = sc.h;
	int best, r, lr;
	unsigned i;
	uint64_t lseq = 0;
	void *buf = NULL;

	if (max > ATOMICFILE_MAX)
		max = ATOMICFILE_MAX;
	f->cur = -1;
	r = slotfile_scan(slot, SLOT_MAGIC, max, &sc, &buf);
	if (r < 0)
		return r;
	for (i = 0; i < 2; i++) {
		f->cap[i] = h[i].size;
		if (sc.torn & (1u << i))
			log_event(f->live ? LOG_DEBUG : LOG_WARN,
			    "ns.table_slot_damaged", f->live ? "being "
			    "written; the other copy is read" : "checksum does "
			    "not hold: a write that did not end; the other "
			    "copy is read", "path=%s seq=%" PRIu64, f->slot[i],
			    h[i].seq);
	}
	best = sc.best;
	f->cur = best;
	lr = legacy_seq(f, &lseq);
	if (best < 0) {
		/*
		 * No slot holds a table.  <path> is written after a slot, so
		 * without it no write ever ended: the table is empty.
		 */
		if (lr == -ENOENT && sc.nslots > 0)
			log_warn("ns.table_slot_damaged", "no write of the "
			    "table ever ended", "path=%s", f->path);
		r = lr == -ENOENT ? -ENOENT :
		    take_legacy(f, max, ret_buf, ret_len, ret_sum, ret_from);
		goto out;
	}
	/*
	 * <path> newer than the slots: a build without them wrote it last,
	 * flushed, and it is the table (damaged, it is an error: the slots
	 * are older than what was answered).
	 */
	if (lr == 0 && lseq > h[best].seq) {
		r = take_legacy(f, max, ret_buf, ret_len, ret_sum, ret_from);
		goto out;
	}
	if (lr < 0 && lr != -ENOENT && lr != -EBADMSG) {
		r = lr;		/* cannot tell whether it is newer */
		goto out;
	}
	if (lr == -EBADMSG)
		log_event(f->live ? LOG_DEBUG : LOG_WARN,
		    "ns.table_copy_damaged", "the slots hold the table",
		    "path=%s", f->path);
	*ret_buf = buf;
	*ret_len = (size_t)h[best].len;
	memcpy(ret_sum, h[best].sum, NSFILE_SUM_LEN);
	if (ret_from)
		*ret_from = "slot";
	buf = NULL;
	r = 0;
out:
	free(buf);
	return r;
}

/* Zeros to grow a slot with, without allocating. */
static const uint8_t zeros[GROW_MIN];

/* Grow the open slot from `from` to `to` bytes (flushed with the write). */
static int
grow(int fd, uint64_t from, uint64_t to)
{
	size_t n;
	int r;

	while (from < to) {
		n = to - from < sizeof(zeros) ? (size_t)(to - from) :
		    sizeof(zeros);
		r = slotfile_pwrite_all(fd, zeros, n, (off_t)from);
		if (r < 0)
			return r;
		from += n;
	}
	return 0;
}

int
nsfile_write(struct nsfile *f, const void *buf, size_t len, uint64_t seq,
    uint8_t ret_sum[NSFILE_SUM_LEN])
{
	unsigned i = f->cur == 0 ? 1 : 0;
	uint8_t hdr[NSFILE_HDR] = { 0 };
	uint64_t need = NSFILE_HDR + (uint64_t)len, cap = f->cap[i];
	bool created = false;
	size_t half = len / 2;
	int fd, r;

	if (len > ATOMICFILE_MAX)
		return -EFBIG;
	slotfile_hdr_fill(hdr, SLOT_MAGIC, seq, buf, len);
	fd = slotfile_open_write(f->slot[i], &created);
	if (fd < 0)
		return fd;
	if (created)
		cap = 0;
	if (need > cap) {
		/* Ahead of need: a growing table does not grow it each time. */
		uint64_t want = need + (need > GROW_MIN ? need : GROW_MIN);

		r = grow(fd, cap, want);
		if (r < 0)
			goto out;
		f->cap[i] = cap = want;
	}
	r = slotfile_pwrite_all(fd, hdr, sizeof(hdr), 0);
	if (r == 0)
		r = slotfile_pwrite_all(fd, buf, half, NSFILE_HDR);
	if (r < 0)
		goto out;
	CRASHPOINT(p_table_slot_torn);
	r = slotfile_pwrite_all(fd, (const uint8_t *)buf + half, len - half,
	    (off_t)(NSFILE_HDR + half));
	if (r < 0)
		goto out;
	r = slotfile_flush(fd, f->slot[i], created, true);
	if (r < 0)
		goto out;
	f->cur = (int)i;
	CRASHPOINT(j_after_tmp_fsync);
	/*
	 * The copy older builds read, current before anyone is answered.
	 * In place: a rename would cost as much as the flush (BENCH.md).
	 */
	r = atomicfile_overwrite(f->path, buf, len, 0600, hdr + 24);
	if (r < 0)
		goto out;
	CRASHPOINT(j_after_rename);
	memcpy(ret_sum, hdr + 24, NSFILE_SUM_LEN);
out:
	close(fd);
	return r;
}
