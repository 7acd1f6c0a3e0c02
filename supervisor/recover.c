/*
 * recover: what baton-supervisor does at start-up about the agent and the
 * handoff a previous supervisor left: adopt the agent that holds the
 * data-dir lock (taking its listeners back), resolve and clear the
 * journal, kill the other agent of an interrupted handoff.
 *
 * Invariants kept here:
 * - it runs once, before the owner's loop runs, and blocks by design
 *   (connects and reads with timeouts, short sleeps while the lock
 *   settles): never call it from a loop callback;
 * - it never kills a process that holds or may hold the lock, and never
 *   leaves the owner to bind fresh listeners while a journaled agent may
 *   still take the lock: the holder is known from the kernel's lock
 *   table the instant it locks; a free lock with a live journaled agent
 *   is waited for; a holder that does not answer is retried, and killed
 *   only after ADOPT_GIVE_UP_MS of silence;
 * - a journal found is resolved (outcome kept as the last handoff) and
 *   cleared, whatever else fails;
 * - listeners are taken only while the owner holds none (*nl == 0).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/clock.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/proc.h"
#include "transport/wire.h"
#include "supervisor/journal.h"
#include "supervisor/listentake.h"
#include "supervisor/recover.h"

#define ADOPT_WAIT_MS		5000	/* one adopt() attempt */
#define ADOPT_GIVE_UP_MS	15000	/* a silent holder, then SIGKILL */
#define RELOCK_WAIT_MS		3000	/* lock free, no journaled agent alive */
#define JOURNALED_WAIT_MS	15000	/* lock free, a journaled agent alive */

/*
 * The path /proc/<pid>/exe names.  A binary replaced since the process
 * started (a package upgrade renames a new file over it) reads as
 * "PATH (deleted)": that is still the path the process was started from,
 * and the path the next upgrade should run, so the suffix is dropped.
 */
static int
proc_exe(pid_t pid, char *out, size_t len)
{
	static const char gone[] = " (deleted)";
	const size_t gl = sizeof(gone) - 1;
	char p[64];
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	n = readlink(p, out, len - 1);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	if ((size_t)n > gl && strcmp(out + n - gl, gone) == 0)
		out[n - gl] = '\0';
	return 0;
}

/*
 * Talk to the agent at the control socket: HELLO must come from `holder`.
 * When want_listeners, take its listener fds back.  Returns 0 or -errno.
 */
static int
adopt(struct recover *s, pid_t holder, bool want_listeners)
{
	struct msg ack = { .type = MSG_HELLO_ACK };
	struct msg get = { .type = MSG_GET_LISTENERS };
	struct frame f;
	uint64_t until = clock_mono_ms() + ADOPT_WAIT_MS;
	unsigned i;
	int fd = -1, r;

	for (;;) {
		fd = wire_connect(s->paths->agent_socket, 1000);
		if (fd >= 0) {
			r = wire_recv(fd, 2000, &f);
			if (r == 0 && f.m.type == MSG_HELLO &&
			    (pid_t)f.m.u.HELLO.pid == holder) {
				frame_release(&f);
				break;
			}
			if (r == 0)
				frame_release(&f);
			close(fd);
			fd = -1;
		}
		if (clock_mono_ms() > until)
			return -ETIMEDOUT;
		usleep(50000);
	}
	r = 0;
	if (!want_listeners)
		goto out;
	ack.u.HELLO_ACK.proto_version = PROTO_VERSION_MAX;
	ack.u.HELLO_ACK.handoff_id = "00000000-0000-4000-8000-000000000000";
	r = wire_send(fd, &ack, NULL, 0, 2000);
	if (r == 0)
		r = wire_send(fd, &get, NULL, 0, 2000);
	if (r == 0)
		r = wire_recv(fd, 5000, &f);
	if (r < 0)
		goto out;
	if (f.m.type != MSG_LISTENERS || f.m.u.LISTENERS.names.n != f.nfds ||
	    f.nfds == 0) {
		frame_release(&f);
		r = -EPROTO;
		goto out;
	}
	for (i = 0; i < f.nfds && i < LISTENFDS_MAX; i++) {
		snprintf(s->lnames[i], sizeof(s->lnames[i]), "%s",
		    f.m.u.LISTENERS.names.v[i]);
		s->lfds[i] = frame_take_fd(&f, i);
	}
	*s->nl = i;
	frame_release(&f);
out:
	close(fd);
	return r;
}

/* pid runs and is (still) running binary: an agent of ours. */
static bool
runs_binary(pid_t pid, const char *binary)
{
	char exe[PATH_MAX];

	return pid > 0 && proc_running(pid) &&
	    proc_exe(pid, exe, sizeof(exe)) == 0 && strcmp(exe, binary) == 0;
}

/* Signal pid and wait up to ms for it to be gone.  True when it is. */
static bool
signal_and_wait(pid_t pid, int sig, int ms)
{
	int i;

	kill(pid, sig);
	for (i = 0; i < ms / 20 && proc_running(pid); i++) {
		(void)waitpid(pid, NULL, WNOHANG);
		usleep(20000);
	}
	return !proc_running(pid);
}

static void
kill_stray(pid_t pid, const char *binary, pid_t keep)
{
	if (pid == keep || pid == getpid() || !runs_binary(pid, binary))
		return;
	log_warn("recover.kill", "agent left from the interrupted handoff",
	    "pid=%d", (int)pid);
	if (!signal_and_wait(pid, SIGTERM, 2000))
		kill(pid, SIGKILL);
}

/* A process of the interrupted handoff still runs its journaled binary. */
static bool
journaled_alive(const struct journal_rec *jr)
{
	return runs_binary(jr->incumbent_pid, jr->incumbent_binary) ||
	    runs_binary(jr->successor_pid, jr->successor_binary);
}

/*
 * Wait for the lock to settle.  A free lock while an agent of the
 * interrupted handoff lives is not "nobody serves": a sealed incumbent
 * retakes it when it sees us gone, a successor that got BEGIN takes it.
 * A held lock whose holder is not known yet (only possible without
 * /proc/locks) is "alive, wait" too.  Returns lock_probe's answer.
 */
static int
settle_lock(struct recover *s, const struct journal_rec *jr, bool have_j,
    pid_t *holder)
{
	uint64_t t0 = clock_mono_ms(), now;
	int held;

	for (;;) {
		*holder = 0;
		held = lock_probe(s->paths->state_dir, holder);
		now = clock_mono_ms();
		if (held == 1 && *holder > 0)
			return held;
		if (held == 1 && now - t0 < ADOPT_GIVE_UP_MS) {
			usleep(25000);	/* held, holder unknown: alive */
			continue;
		}
		if (held != 0 || !have_j)
			return held;
		if (now - t0 >= JOURNALED_WAIT_MS ||
		    (now - t0 >= RELOCK_WAIT_MS && !journaled_alive(jr)))
			return held;
		usleep(25000);
	}
}

/*
 * Before a live agent of the old generation is killed: take its listening
 * sockets, so the clients queued in their backlogs are served by the next
 * agent instead of being cut off by freshly bound sockets.
 */
static void
take_listeners(struct recover *s, pid_t pid)
{
	int fds[LISTENFDS_MAX];
	unsigned i;
	int r;

	if (*s->nl > 0 || pid <= 0 || !proc_running(pid))
		return;
	r = listen_take(pid, s->listen_paths, s->n_listen, fds);
	if (r < 0) {
		log_warn("recover.listeners", proto_strerror(r), "pid=%d "
		    "msg_detail=\"could not take its listening sockets\"",
		    (int)pid);
		return;
	}
	for (i = 0; i < s->n_listen; i++) {
		s->lfds[i] = fds[i];
		snprintf(s->lnames[i], sizeof(s->lnames[i]), "%s",
		    s->listen_names[i]);
	}
	*s->nl = s->n_listen;
	log_info("recover.listeners", "took the listening sockets of a live "
	    "agent: queued clients are kept", "pid=%d listeners=%u", (int)pid,
	    *s->nl);
}

/*
 * Adopt the lock holder, retrying while it lives and holds the lock: a
 * successor that has the lock but has not yet moved its control socket
 * into place answers a moment later.  Only a holder silent for
 * ADOPT_GIVE_UP_MS is killed.  Returns true when adopted.
 */
static bool
adopt_holder(struct recover *s, pid_t holder)
{
	uint64_t t0 = clock_mono_ms();
	pid_t now_holder = 0;
	int r;

	for (;;) {
		r = adopt(s, holder, !s->from_systemd);
		if (r == 0)
			return true;
		if (!proc_running(holder) ||
		    lock_probe(s->paths->state_dir, &now_holder) != 1 ||
		    now_holder != holder) {
			log_warn("recover.adopt", proto_strerror(r), "pid=%d "
			    "msg_detail=\"holder gone or lock moved\"",
			    (int)holder);
			return false;
		}
		if (clock_mono_ms() - t0 >= ADOPT_GIVE_UP_MS)
			break;
		log_warn("recover.adopt", proto_strerror(r), "pid=%d "
		    "msg_detail=\"lock holder does not answer yet; retrying\"",
		    (int)holder);
	}
	log_error("recover.adopt", proto_strerror(r), "pid=%d waited_ms=%d "
	    "msg_detail=\"lock holder silent; killing it\"", (int)holder,
	    ADOPT_GIVE_UP_MS);
	take_listeners(s, holder);
	(void)signal_and_wait(holder, SIGKILL, 2000);
	return false;
}

bool
recover_run(struct recover *s)
{
	struct journal_rec jr;
	bool have_j, adopted = false;
	pid_t holder = 0;
	int r, held;

	s->adopted = 0;
	s->outcome = RECOVER_NO_JOURNAL;
	/* Temp files of a write the previous supervisor did not finish. */
	(void)atomicfile_cleanup(s->paths->journal);
	(void)atomicfile_cleanup(s->paths->last_handoff);
	r = journal_read(s->paths->journal, &jr);
	have_j = r == 0;
	if (r < 0 && r != -ENOENT)
		log_warn("recover.journal", proto_strerror(r), "path=%s",
		    s->paths->journal);
	if (have_j)
		log_info("recover.journal", "found an interrupted handoff",
		    "handoff_id=%s phase=%s incumbent_pid=%d successor_pid=%d",
		    jr.handoff_id, jr.phase, (int)jr.incumbent_pid,
		    (int)jr.successor_pid);
	held = settle_lock(s, &jr, have_j, &holder);
	if (held == 1 && holder > 0) {
		adopted = adopt_holder(s, holder);
		if (adopted) {
			char exe[PATH_MAX];

			if (proc_exe(holder, exe, sizeof(exe)) == 0)
				snprintf(s->agent_binary, sizeof(s->agent_binary),
				    "%s", exe);
			log_info("recover.adopt", "adopted the running agent",
			    "pid=%d binary=%s listeners=%u", (int)holder,
			    s->agent_binary, *s->nl);
		}
	}
	if (have_j) {
		/* Never the lock holder, adopted or not (it may serve). */
		pid_t keep = adopted || (held == 1 && holder > 0 &&
		    proc_running(holder)) ? holder : 0;
		char tmp[PATH_MAX + 32];

		if (!adopted && !s->from_systemd) {
			take_listeners(s, jr.incumbent_pid);
			take_listeners(s, jr.successor_pid);
		}
		kill_stray(jr.incumbent_pid, jr.incumbent_binary, keep);
		kill_stray(jr.successor_pid, jr.successor_binary, keep);
		if (jr.successor_pid > 0 && jr.successor_pid != keep) {
			snprintf(tmp, sizeof(tmp), "%s.tmp.%d",
			    s->paths->agent_socket, (int)jr.successor_pid);
			(void)unlink(tmp);
		}
		snprintf(jr.phase, sizeof(jr.phase), "%s", !adopted ?
		    "recovered-none" : holder == jr.successor_pid ?
		    "recovered-committed" : "recovered-rolled-back");
		if (journal_write(s->paths->last_handoff, &jr) < 0)
			log_warn("recover.journal", "could not record outcome",
			    NULL);
		journal_clear(s->paths->journal);
		log_info("recover.done", NULL, "handoff_id=%s outcome=%s",
		    jr.handoff_id, jr.phase);
		s->outcome = adopted && holder == jr.successor_pid ?
		    RECOVER_COMMITTED : RECOVER_ROLLED_BACK;
	}
	s->adopted = adopted ? holder : 0;
	return adopted;
}
