/*
 * handoff_hook: the test hook test_handoff_table needs from
 * supervisor/handoff.c, to dispatch one event on a fake handoff and read
 * what the table did.  Declared here, implemented (by the handoff
 * module's owner) in handoff.c; until then test_handoff_table fails with
 * "not implemented" (a weak reference, never a skip).
 *
 * int handoff_test_step(unsigned st, unsigned ev, unsigned *next);
 *
 * Builds a fake handoff in state st (indices as handoff_state_name() and
 * handoff_event_name() number them) with no real peers or processes:
 * sends, spawns, kills, journal writes and timers are recorded, not done.
 * Before the event, the fake has what the state implies:
 *   o-hello  O connected and alive, no successor spawned;
 *   n-hello  ... and N spawned, alive, connected;
 *   drain, seal, begin  both alive and connected; SEAL_COMPLETE's state
 *            recorded in begin;
 *   commit   READY accepted, O alive and connected;
 *   kill-n   ABORT sent, N alive (being killed), O alive and connected;
 *   resume   N gone, O alive and connected, RESUME_AFTER_ABORT sent;
 *   o-lost   O's connection closed in drain (lost_in = drain), O's pid
 *            not yet exited, N alive;
 *   done     finished.
 * Then it dispatches ev as the event sources do: the message for a frame
 * event is well formed and right (this handoff's id, the spawned pid,
 * the right role, READY's state equal to SEAL_COMPLETE's); o-eof clears
 * the O connection (o_close_cb), o-exit / n-exit mark the process dead
 * (o_exit_cb, n_exit_cb), n-eof clears the N connection.
 *
 * Returns the HT_* bits of what the action did (>= 0) and the state the
 * table moved to in *next; -EINVAL when st or ev is out of range.
 */
#ifndef BATON_TESTS_HANDOFF_HOOK_H
#define BATON_TESTS_HANDOFF_HOOK_H

#define HT_HELLO_ACK	(1u << 0)	/* HELLO_ACK sent */
#define HT_SPAWN_N	(1u << 1)	/* successor spawned */
#define HT_PREPARE	(1u << 2)	/* PREPARE_HANDOFF sent to O */
#define HT_SEAL		(1u << 3)	/* SEAL_REQUEST sent to O */
#define HT_BEGIN	(1u << 4)	/* BEGIN sent to N */
#define HT_PROMOTE	(1u << 5)	/* ... with an empty digest: adopt the disk */
#define HT_COMMIT	(1u << 6)	/* COMMIT sent to O */
#define HT_ABORT_N	(1u << 7)	/* ABORT sent to N and SIGTERM */
#define HT_KILL_N	(1u << 8)	/* SIGKILL to N */
#define HT_RESUME	(1u << 9)	/* RESUME_AFTER_ABORT sent to O */
#define HT_KILL_O	(1u << 10)	/* SIGKILL to O */
#define HT_COMMITTED	(1u << 11)	/* finished: committed */
#define HT_ROLLED_BACK	(1u << 12)	/* finished: rolled back */

int handoff_test_step(unsigned st, unsigned ev, unsigned *next);

#endif
