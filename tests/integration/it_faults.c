/*
 * it_faults: system-call faults.  The supervisor (and through it every
 * agent it spawns: the preload and FIU_ENABLE are inherited) runs under
 * libfiu's POSIX preload (fiu-run -x) with random failures:
 *
 *   fsync, fdatasync
 *            EIO, then (half-way, via fiu-ctrl) ENOSPC: the allocation
 *            table's writes (a slot's fdatasync, the directory's fsync
 *            when a slot is made; a handoff's journal records, the
 *            pidfile and the readiness file are atomic but not fsynced:
 *            docs/PROTOCOL.md)
 *   write    EINTR; ENOSPC, then EIO with FAULTS_WRITE_ERR=1 (see below)
 *   pwrite   EINTR (a table slot's writes retry it)
 *   open     EMFILE                  (fd exhaustion; see accept below)
 *   writev   EAGAIN   read, recvmsg  EINTR   sendmsg  EAGAIN
 *   accept   EMFILE   (enabled, but baton calls accept4, which libfiu
 *                      does not wrap: it never fires)
 *
 * while a client load runs and FAULTS_N (default 12) upgrades run back to
 * back.  Then the daemons are stopped and the journal, last-handoff record
 * and allocation table must be readable as files; the daemons started
 * again without faults (seccomp on) must serve with exactly one agent
 * holding the lock, leave no temp files or active journal, keep every
 * acknowledged allocation (history check), commit three upgrades in a
 * row, and the faults must have fired (the ones that leave a trace in the
 * log: fsync EIO and ENOSPC, open EMFILE).  The supervisor must not
 * crash or leak fds under the faults.
 *
 * The daemons under fiu are the release binaries (BATON_RELEASE_BIN,
 * default build/): the ASan runtime does not start behind an LD_PRELOAD
 * library.  They run with --no-seccomp: the preload's control thread and
 * its FIFOs are not in the allowlists.  FAULTS_P (default 0.02) is the
 * probability per call.
 *
 * Why write(2) gets EINTR by default: libuv's signal handler takes a
 * process-wide lock by reading a byte from a pipe and gives it back by
 * writing it (uv__signal_unlock retries EINTR only).  An injected ENOSPC
 * or EIO on that write, which a kernel never returns for a pipe, loses
 * the byte and the next signal (SIGCHLD, after every creation helper)
 * blocks the agent forever.  The supervisor copes (it kills an incumbent
 * that does not answer and cold-starts a fresh agent, 15 s each), so
 * FAULTS_WRITE_ERR=1 still passes, but it takes minutes, not seconds.
 *
 * Needs root (the load creates namespaces) and
 * fiu-run (Debian fiu-utils).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/clock.h"
#include "common/paths.h"
#include "successor/nsstate.h"
#include "supervisor/journal.h"
#include "tests/lib/itcheck.h"
#include "tests/lib/itest.h"
#include "tests/lib/tap.h"

#define HELD		2
#define FIU_PRELOAD	"/usr/lib/fiu/fiu_posix_preload.so"

struct fault {
	const char *name;	/* libfiu failure point */
	int err1, err2;		/* errno before / after the switch */
	double pscale;		/* times FAULTS_P */
};

static struct fault faults[] = {
	{ "posix/io/rw/write", EINTR, EINTR, 1.0 },
	{ "posix/io/sync/fsync", EIO, ENOSPC, 2.0 },
	{ "posix/io/sync/fdatasync", EIO, ENOSPC, 2.0 },
	{ "posix/io/rw/pwrite", EINTR, EINTR, 1.0 },
	{ "posix/io/oc/open", EMFILE, EMFILE, 0.5 },
	{ "posix/io/rw/writev", EAGAIN, EAGAIN, 1.0 },
	{ "posix/io/rw/read", EINTR, EINTR, 1.0 },
	{ "posix/io/net/recvmsg", EINTR, EINTR, 1.0 },
	{ "posix/io/net/sendmsg", EAGAIN, EAGAIN, 1.0 },
	{ "posix/io/net/accept", EMFILE, EMFILE, 1.0 },
};
#define NFAULTS	(sizeof(faults) / sizeof(faults[0]))

static char cmds[NFAULTS][160];

static void
fault_cmds(double p, bool second)
{
	unsigned i;

	for (i = 0; i < NFAULTS; i++)
		snprintf(cmds[i], sizeof(cmds[i]), "enable_random name=%s,"
		    "probability=%.4f,failinfo=%d", faults[i].name,
		    p * faults[i].pscale, second ? faults[i].err2 :
		    faults[i].err1);
}

/* Switch a live process's faults (fiu-ctrl); exit code. */
static int
fiu_ctrl(struct itest *t, pid_t pid)
{
	const char *argv[2 * NFAULTS + 8];
	char prefix[PATH_MAX + 8], spid[16];
	int k = 0, status;
	unsigned i;
	pid_t c;

	snprintf(prefix, sizeof(prefix), "%s/fiu", t->root);
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	argv[k++] = "fiu-ctrl";
	argv[k++] = "-f";
	argv[k++] = prefix;
	for (i = 0; i < NFAULTS; i++) {
		argv[k++] = "-c";
		argv[k++] = cmds[i];
	}
	argv[k++] = spid;
	argv[k] = NULL;
	c = fork();
	if (c == 0) {
		dup2(t->sup_log_fd, 1);
		dup2(t->sup_log_fd, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (c < 0 || waitpid(c, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static bool
have_fiu(void)
{
	return system("command -v fiu-run >/dev/null 2>&1") == 0 &&
	    access(FIU_PRELOAD, R_OK) == 0;
}

/* SIGTERM the supervisor (it stops the agent), wait for both. */
static int
stop_all(struct itest *t)
{
	uint64_t until = clock_mono_ms() + 20000;
	pid_t holder;
	int status = -1;

	kill(t->sup, SIGTERM);
	while (clock_mono_ms() < until &&
	    waitpid(t->sup, &status, WNOHANG) == 0)
		usleep(20000);
	if (it_alive(t->sup)) {
		kill(t->sup, SIGKILL);
		waitpid(t->sup, &status, 0);
	}
	t->sup = -1;
	until = clock_mono_ms() + 10000;
	while (clock_mono_ms() < until && itc_count_agents(t) > 0)
		usleep(20000);
	while ((holder = it_lock_holder(t)) > 0 && it_alive(holder)) {
		kill(holder, SIGKILL);
		usleep(50000);
	}
	return status;
}

/* Lines of the log that carry msg. */
static unsigned
log_count(struct itest *t, const char *msg)
{
	char p[PATH_MAX + 32], line[2048];
	unsigned n = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/supervisor.log", t->root);
	f = fopen(p, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, msg))
			n++;
	fclose(f);
	return n;
}

/* The files the faults were aimed at, read offline. */
static void
check_files(struct itest *t, struct ns_table *tab)
{
	struct baton_paths p;
	struct journal_rec jr;
	void *buf = NULL;
	size_t len;
	int r;

	paths_init(&p, t->root);
	r = journal_read(p.journal, &jr);
	check(r == 0 || r == -ENOENT, "journal readable (%s)", strerror(-r));
	if (r == 0)
		tap_diag("faults: journal left at phase %s (handoff %s)",
		    jr.phase, jr.handoff_id);
	r = journal_read(p.last_handoff, &jr);
	check(r == 0 || r == -ENOENT, "last-handoff readable (%s)",
	    strerror(-r));
	if (r == 0)
		tap_diag("faults: last handoff %s %s", jr.handoff_id, jr.phase);
	r = atomicfile_read(p.allocations, ATOMICFILE_MAX, &buf, &len);
	check(r == 0, "allocation table readable (%s)", strerror(-r));
	if (r == 0) {
		r = nsstate_decode(buf, len, tab);
		check(r == 0, "allocation table decodes (%s)", strerror(-r));
		tap_diag("faults: table seq %llu generation %llu, %u allocations",
		    (unsigned long long)tab->seq,
		    (unsigned long long)tab->generation, tab->n);
	}
	free(buf);
}

TEST_T(faults_during_upgrades, 240)
{
	static const char *const extra[] = { "--no-seccomp", "--agent-arg",
	    "--no-seccomp", NULL };
	const char *pe = getenv("FAULTS_P"), *ne = getenv("FAULTS_N");
	const char *rb = getenv("BATON_RELEASE_BIN");
	const char *wrap[2 * NFAULTS + 8];
	char rel[PATH_MAX], prefix[PATH_MAX + 8], out[4096];
	unsigned n = ne ? (unsigned)atoi(ne) : 12, i, committed = 0;
	unsigned rolled = 0, unavailable = 0, switched = 0, eio, enospc, emfile;
	unsigned agent_ends;
	double p = pe ? atof(pe) : 0.02;
	struct ns_table tab = { 0 };
	struct itc_result res;
	struct itc_load l;
	struct itest t;
	int k = 0, fds0, fds1, status, rc;
	uint64_t t0;
	pid_t agent;

	if (geteuid() != 0)
		tap_skip("needs root: the load creates network namespaces");
	if (!have_fiu())
		tap_skip("fiu-run or " FIU_PRELOAD " missing (apt-get install "
		    "fiu-utils)");
	it_setup(&t);
	if (!realpath(rb ? rb : "build", rel) || strlen(rel) >= sizeof(t.bin))
		tap_skip("release binaries not built (BATON_RELEASE_BIN)");
	snprintf(t.bin, sizeof(t.bin), "%s", rel);
	snprintf(t.agent, sizeof(t.agent), "%s/baton-agent", t.bin);
	if (access(t.agent, X_OK) < 0)
		tap_skip("%s not built", t.agent);
	t0 = clock_mono_ms();
	if (getenv("FAULTS_WRITE_ERR")) {
		faults[0].err1 = ENOSPC;
		faults[0].err2 = EIO;
	}

	/* Held allocations (pid+net+mount and net) made without faults. */
	require(it_start_supervisor(&t, NULL) > 0, "supervisor");
	require(it_wait_serving(&t, 15000) > 0, "serving");
	itc_hold(&t, HELD);
	stop_all(&t);

	fault_cmds(p, false);
	snprintf(prefix, sizeof(prefix), "%s/fiu", t.root);
	wrap[k++] = "fiu-run";
	wrap[k++] = "-x";
	wrap[k++] = "-f";
	wrap[k++] = prefix;
	for (i = 0; i < NFAULTS; i++) {
		wrap[k++] = "-c";
		wrap[k++] = cmds[i];
		tap_diag("faults: %s", cmds[i]);
	}
	wrap[k] = NULL;
	require(it_start_supervisor_wrapped(&t, NULL, wrap, extra) > 0,
	    "supervisor under fiu-run");
	agent = it_wait_serving(&t, 30000);
	if (agent <= 0)
		it_dump_log(&t);
	require(agent > 0, "serving under faults");
	fds0 = it_count_fds(t.sup);
	itc_load_start(&t, &l, ITC_BOTH);
	for (i = 0; i < n; i++) {
		if (i == n / 2) {
			/* Live processes switch errnos; new ones start as before. */
			fault_cmds(p, true);
			if (fiu_ctrl(&t, t.sup) == 0)
				switched++;
			agent = it_ns_status(&t, NULL, NULL);
			if (agent > 0 && fiu_ctrl(&t, agent) == 0)
				switched++;
			/*
			 * Only the agent's table writes fsync (a handoff's
			 * journal does not): give the switched agent's writes
			 * under the load time to meet the ENOSPC fault before
			 * the next upgrade replaces it.
			 */
			usleep(2000000);
		}
		rc = it_ctl(&t, out, sizeof(out), (const char *[]){ "upgrade",
		    "--json", NULL });
		if (rc == 0)
			committed++;
		else if (strstr(out, "\"committed\":false"))
			rolled++;
		else
			unavailable++;
		if (!check(it_alive(t.sup), "supervisor alive after upgrade %u "
		    "(rc %d): %s", i, rc, out))
			break;
		/* Whatever happened, an agent must serve again. */
		if (!check(it_wait_serving(&t, 15000) > 0, "serving after "
		    "upgrade %u (rc %d): %s", i, rc, out))
			break;
		usleep(150000);
	}
	usleep(300000);
	itc_load_stop(&l);
	usleep(300000);
	fds1 = it_alive(t.sup) ? it_count_fds(t.sup) : -1;
	check(fds1 >= 0 && fds1 <= fds0 + 1, "supervisor fds %d before the "
	    "faults, %d after", fds0, fds1);
	tap_diag("faults: %u upgrades: %u committed, %u rolled back, %u "
	    "unavailable; fiu-ctrl switched %u processes", i, committed, rolled,
	    unavailable, switched);
	/* Invariant 3: each ends committed or rolled back, and says which. */
	check(unavailable == 0, "every upgrade under faults answered "
	    "committed or rolled back (%u did not)", unavailable);
	eio = log_count(&t, "Input/output error");
	enospc = log_count(&t, "No space left on device");
	emfile = log_count(&t, "Too many open files");
	tap_diag("faults: surfaced in the log (log writes fail too, so a "
	    "lower bound): ENOSPC %u, EIO %u, EMFILE %u, EAGAIN %u, EINTR %u",
	    enospc, eio, emfile,
	    log_count(&t, "Resource temporarily unavailable"),
	    log_count(&t, "Interrupted system call"));
	tap_diag("faults: fault reports in the log: persist %u, "
	    "journal %u, lock %u, state mismatch %u",
	    log_count(&t, "event=ns.persist_failed"),
	    log_count(&t, "event=journal.write"),
	    log_count(&t, "could not take the data-dir lock"),
	    log_count(&t, "event=successor.state_mismatch"));
	/*
	 * The faults fired: those baton reports (fsync EIO before the
	 * switch, ENOSPC after it, open EMFILE) must show in the log.  The
	 * EINTR/EAGAIN ones are retried without a trace, so nothing outside
	 * the process can count them.
	 */
	check(eio > 0, "the fsync EIO fault fired (%u reports)", eio);
	check(switched == 0 || enospc > 0, "the fsync ENOSPC fault fired after "
	    "the switch (%u reports)", enospc);
	check(emfile > 0, "the open EMFILE fault fired (%u reports)", emfile);
	check(switched == 2, "fiu-ctrl switched the supervisor and the agent "
	    "(%u)", switched);

	agent_ends = log_count(&t, "event=agent.exited") +
	    log_count(&t, "event=handoff.abort") +
	    log_count(&t, "event=handoff.resume_timeout") +
	    log_count(&t, "event=handoff.commit_slow");
	status = stop_all(&t);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "supervisor "
	    "under faults stopped cleanly (status 0x%x)", status);
	check_files(&t, &tab);
	nsstate_clear(&tab);

	/* No faults, seccomp on: everything must be back in order. */
	require(it_start_supervisor(&t, NULL) > 0, "supervisor");
	agent = it_wait_serving(&t, 15000);
	check(agent > 0, "serving after the faults");
	check(itc_wait_one_agent(&t, 5000, NULL) >= 0, "one agent holds the "
	    "lock and serves");
	itc_check_clean(&t, "after faults", true);
	/*
	 * Under faults the agent may answer NS_ERROR (creation_failed); a
	 * request goes unanswered only when an agent holding the load's
	 * connections died or was killed: at most one per load worker for
	 * each agent exit, abort (the successor is killed) and kill the log
	 * reports.  None is refused, every acknowledged one is served.
	 */
	itc_verify_load(&t, &l, "faults", ITC_WORKERS * agent_ends, &res);
	itc_check_held(&t, HELD, "faults");
	for (i = 0; i < 3; i++) {
		rc = it_ctl(&t, out, sizeof(out), (const char *[]){ "upgrade",
		    NULL });
		check(rc == 0, "upgrade %u after the faults commits (%d): %s",
		    i, rc, out);
	}
	tap_diag("faults: requests answered %u, failed %u, refused %u; "
	    "%.1f s", res.answered, res.failed, res.refused,
	    (double)(clock_mono_ms() - t0) / 1000.0);
	if (tap_failures())
		it_dump_log(&t);
	it_teardown(&t);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
