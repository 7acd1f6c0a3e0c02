/*
 * journal: the supervisor's durable record of the handoff in progress
 * (var/lib/baton/journal.0, .1) and of the last one that ended
 * (var/lib/baton/last-handoff.0, .1).  Each is one JOURNAL_RECORD message
 * body in a slot pair written in place (common/slotfile.h): a reader sees
 * the newest whole record, never a torn one.  The path given is the
 * pair's base name, which is also the atomicfile older builds wrote and
 * read (journal.c).
 */
#ifndef BATON_JOURNAL_H
#define BATON_JOURNAL_H

#include <stdint.h>
#include <sys/types.h>

struct journal_rec {
	char handoff_id[40];
	char phase[32];
	pid_t incumbent_pid;
	pid_t successor_pid;
	char incumbent_binary[4096];
	char successor_binary[4096];
	uint64_t started_at_ms;		/* wall clock */
	uint64_t updated_at_ms;
};

/* Write durably (updated_at_ms is set here).  0 or -errno. */
int journal_write(const char *path, struct journal_rec *r);
/*
 * Write atomically without waiting for the disk: a handoff's records,
 * since recovery acts on the processes they name and a power loss ends
 * them all (PROTOCOL.md, "Journal phases").  0 or -errno.
 */
int journal_note(const char *path, struct journal_rec *r);
/*
 * 0, -ENOENT when there is none (or it was cleared), -EBADMSG when no
 * whole record is left, -errno.
 */
int journal_read(const char *path, struct journal_rec *ret);
/* Clear the record (an empty one in the next slot), durably. */
int journal_clear(const char *path);
/* Clear it without waiting for the disk (see journal_note). */
int journal_drop(const char *path);

#endif
