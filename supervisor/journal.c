/*
 * journal: JOURNAL_RECORD bodies in slot pairs (common/slotfile.h).  The
 * codec is the wire codec (proto/msg.c), so the on-disk record is checked
 * as strictly as a frame: a record that decodes wrong is -EBADMSG, never
 * a half-trusted journal.
 *
 * A cleared record is an empty payload in the next slot, so clearing
 * writes in place too.  <path> itself, the atomicfile older builds wrote,
 * is read when present: an older build wrote it after our last write,
 * since every write of ours removes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/clock.h"
#include "common/slotfile.h"
#include "proto/frame.h"
#include "supervisor/journal.h"

#define JOURNAL_MAX 65536
#define JOURNAL_MAGIC "BTNJ"

/*
 * After a write of ours: an older build's <path> is stale, and would win
 * over the slots if left.  Its removal is flushed when the write was.
 */
static int
drop_legacy(const char *path, bool sync)
{
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return sync ? atomicfile_sync_dir(path) : 0;
}

static int
put(const char *path, const void *buf, size_t len, bool sync)
{
	int rc = slotfile_write(path, JOURNAL_MAGIC, buf, len, sync);

	return rc < 0 ? rc : drop_legacy(path, sync);
}

static int
write_rec(const char *path, struct journal_rec *r, bool sync)
{
	struct msg m = { .type = MSG_JOURNAL_RECORD };
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	r->updated_at_ms = clock_wall_ms();
	m.u.JOURNAL_RECORD.handoff_id = r->handoff_id;
	m.u.JOURNAL_RECORD.phase = r->phase;
	m.u.JOURNAL_RECORD.incumbent_pid = (uint32_t)r->incumbent_pid;
	m.u.JOURNAL_RECORD.successor_pid = (uint32_t)r->successor_pid;
	m.u.JOURNAL_RECORD.incumbent_binary = r->incumbent_binary;
	m.u.JOURNAL_RECORD.successor_binary = r->successor_binary;
	m.u.JOURNAL_RECORD.started_at_ms = r->started_at_ms;
	m.u.JOURNAL_RECORD.updated_at_ms = r->updated_at_ms;
	rc = msg_encode(&m, &buf, &len);
	if (rc < 0)
		return rc;
	rc = put(path, buf, len, sync);
	free(buf);
	return rc;
}

int
journal_write(const char *path, struct journal_rec *r)
{
	return write_rec(path, r, true);
}

int
journal_note(const char *path, struct journal_rec *r)
{
	return write_rec(path, r, false);
}

int
journal_read(const char *path, struct journal_rec *ret)
{
	struct msg m;
	void *data = NULL;
	size_t len;
	int rc;

	rc = atomicfile_read(path, JOURNAL_MAX, &data, &len);
	if (rc == -ENOENT)
		rc = slotfile_read(path, JOURNAL_MAGIC, JOURNAL_MAX, &data,
		    &len, NULL);
	if (rc < 0)
		return rc;
	if (len == 0) {
		free(data);
		return -ENOENT;		/* cleared */
	}
	rc = msg_decode(MSG_JOURNAL_RECORD, data, len, &m);
	free(data);
	if (rc < 0)
		return -EBADMSG;
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->handoff_id, sizeof(ret->handoff_id), "%s",
	    m.u.JOURNAL_RECORD.handoff_id);
	snprintf(ret->phase, sizeof(ret->phase), "%s", m.u.JOURNAL_RECORD.phase);
	ret->incumbent_pid = (pid_t)m.u.JOURNAL_RECORD.incumbent_pid;
	ret->successor_pid = (pid_t)m.u.JOURNAL_RECORD.successor_pid;
	snprintf(ret->incumbent_binary, sizeof(ret->incumbent_binary), "%s",
	    m.u.JOURNAL_RECORD.incumbent_binary);
	snprintf(ret->successor_binary, sizeof(ret->successor_binary), "%s",
	    m.u.JOURNAL_RECORD.successor_binary);
	ret->started_at_ms = m.u.JOURNAL_RECORD.started_at_ms;
	ret->updated_at_ms = m.u.JOURNAL_RECORD.updated_at_ms;
	msg_free(&m);
	return 0;
}

int
journal_clear(const char *path)
{
	return put(path, "", 0, true);
}

int
journal_drop(const char *path)
{
	return put(path, "", 0, false);
}
