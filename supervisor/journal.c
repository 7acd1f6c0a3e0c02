/*
 * journal: JOURNAL_RECORD bodies in atomicfile containers.  The codec is
 * the wire codec (proto/msg.c), so the on-disk record is checked as
 * strictly as a frame: a record that decodes wrong is -EBADMSG, never a
 * half-trusted journal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/clock.h"
#include "proto/frame.h"
#include "supervisor/journal.h"

#define JOURNAL_MAX 65536

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
	rc = sync ? atomicfile_write(path, buf, len, 0600) :
	    atomicfile_write_nosync(path, buf, len, 0600);
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
	if (rc < 0)
		return rc;
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
	return atomicfile_remove(path);
}

int
journal_drop(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}
