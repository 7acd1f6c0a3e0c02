/*
 * sandbox: the seccomp filters of baton's processes (libseccomp).
 *
 * One allowlist per role.  A daemon installs its filter as the last step
 * of start-up (a successor agent as the first, off the handoff); a
 * namespace helper forked by a sandboxed agent installs
 * the narrower helper filter right after fork.  A call outside the list
 * fails with EPERM and is logged (event=seccomp.denied) by a SIGSYS
 * handler; the process goes on.  See docs/SECURITY.md for each policy.
 */
#ifndef BATON_SANDBOX_H
#define BATON_SANDBOX_H

#include <stdbool.h>

enum sandbox_role {
	SANDBOX_SUPERVISOR,	/* baton-supervisor (and what it spawns) */
	SANDBOX_AGENT,		/* baton-agent: serve, fork helpers */
	SANDBOX_NSHELPER,	/* namespace creation helper and its children */
	SANDBOX_NSSPAWN,	/* the agent's spawner: forks helpers (nsspawn) */
	SANDBOX_NROLES,
};

/*
 * The nice value a namespace helper gives itself (setpriority(2) on
 * itself, with exactly this value, is the one setpriority the filters
 * allow): creation is bulk work, the loop that answers comes first.
 */
#define SANDBOX_HELPER_NICE	10

/* "supervisor", "agent", "nshelper". */
const char *sandbox_role_name(enum sandbox_role role);

/*
 * Install role's filter in this process (and its future children).
 * Sets no_new_privs.  Logs sandbox.installed.  0 or -errno.
 */
int sandbox_install(enum sandbox_role role);

/*
 * Start-up step of a daemon: install role's filter, or, when off (the
 * --no-seccomp flag), log that the process runs without one.  In test
 * builds (CRASHPOINTS) BATON_TEST_FORBIDDEN_SYSCALL=1 then makes the
 * process try forbidden calls and log what they returned.  0 or -errno.
 */
int sandbox_start(enum sandbox_role role, bool off);

/*
 * In a freshly forked child: when this process runs under a filter
 * installed by sandbox_install() (the flag survives fork), install
 * role's (narrower) filter and the SIGSYS handler again (the child may
 * have reset every signal disposition).  No-op otherwise.  A helper
 * forked by a process that loaded SANDBOX_NSSPAWN keeps that filter (it
 * holds nshelper's rules): it is only named nshelper and gets the
 * handler.  0 or -errno.
 */
int sandbox_enter_child(enum sandbox_role role);

/*
 * Under a filter (sandbox_active()): compile role's filter now, so that
 * sandbox_enter_child(role) in children forked later loads it with one
 * system call instead of building it.  Call it in the process that forks
 * them (the spawner does, once).  A failure is logged
 * (event=sandbox.prepare) and children build their filter as before.
 * 0 or -errno; 0 without a filter.
 */
int sandbox_prepare(enum sandbox_role role);
/* Whether role's filter is compiled (sandbox_prepare) in this process. */
bool sandbox_prepared(enum sandbox_role role);

/* Whether sandbox_install() succeeded in this process or an ancestor. */
bool sandbox_active(void);

/*
 * Policy of role for one syscall, by name: 1 allowed without condition,
 * 2 allowed only for some arguments, 0 denied, -EINVAL unknown name.
 */
int sandbox_policy(enum sandbox_role role, const char *syscall_name);

/*
 * Refuse an unsafe directory for state or sockets: 0 when dir (or, with
 * parent_of, the directory holding that path) is a directory owned by
 * root or our euid and not writable by group or others; else -EPERM
 * (or -errno) and a log line naming what is wrong.
 */
int sandbox_check_dir(const char *path, bool parent_of);

/* Test builds: the BATON_TEST_FORBIDDEN_SYSCALL probe (see above). */
void sandbox_test_forbidden(enum sandbox_role role);

/*
 * True in sanitizer builds, whose filters also allow what LeakSanitizer's
 * exit check needs (ptrace, PR_SET_PTRACER, PR_SET_DUMPABLE).
 */
bool sandbox_sanitizer_rules(void);

#endif
