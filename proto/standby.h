/*
 * standby: the one record a standby successor waits for.
 *
 * A standby is a successor the supervisor starts ahead of the next
 * upgrade (HANDOFF_ROLE=successor, HANDOFF_STANDBY=1, its end of the
 * socketpair in HANDOFF_SOCK_FD, the listeners in LISTEN_FDS).  It execs,
 * links and parses its configuration, then blocks reading its socketpair
 * before it reads anything that changes (the table) or says HELLO.  When
 * an upgrade starts, the supervisor writes this 16-byte record on the
 * socketpair, raw, before any frame:
 *
 *	"BTGO"  u32 version (1)  u64 deadline_ms (big-endian)
 *
 * The standby says first that it waits, with the 4 raw bytes "BTSB",
 * before it takes its name baton-standby.  The supervisor reads them
 * before it sends the start record: a build without standbys would have
 * sent a HELLO frame instead, and one still starting has sent nothing;
 * neither is taken.
 *
 * and from there on the successor runs exactly as a freshly spawned one
 * (SPEC §4: HELLO, HELLO_ACK, ...).  End of file instead of the record
 * dismisses it: it exits 0.  docs/PROTOCOL.md, "A successor started
 * ahead".
 */
#ifndef BATON_PROTO_STANDBY_H
#define BATON_PROTO_STANDBY_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/bytes.h"

#define STANDBY_READY		"BTSB"	/* the standby's 4 bytes */
#define STANDBY_READY_LEN	4
#define STANDBY_GO_LEN		16
#define STANDBY_GO_VERSION	1u

static inline void
standby_go_put(uint8_t b[STANDBY_GO_LEN], uint64_t deadline_ms)
{
	memcpy(b, "BTGO", 4);
	be_put32(b + 4, STANDBY_GO_VERSION);
	be_put64(b + 8, deadline_ms);
}

/* 0 and the deadline, or -EBADMSG. */
static inline int
standby_go_get(const uint8_t b[STANDBY_GO_LEN], uint64_t *ret_deadline_ms)
{
	if (memcmp(b, "BTGO", 4) != 0 || be_get32(b + 4) != STANDBY_GO_VERSION)
		return -EBADMSG;
	*ret_deadline_ms = be_get64(b + 8);
	return 0;
}

#endif
