/*
 * nsspawn: the spawner, a small single-threaded process that forks the
 * namespace helpers in the agent's stead.
 *
 * A helper forked by the agent copies the agent's page tables on the
 * loop, and every page the loop writes afterwards, while the helper
 * lives, is a copy-on-write fault plus a TLB flush on the other CPU: in
 * perf under 8 creating clients that was half of the loop thread's CPU
 * (docs/BENCH.md).  The spawner is forked from the agent once, on the
 * first creation; for each creation the loop sends it one datagram (the
 * request and, by SCM_RIGHTS, the helper's report pipe and uenv image)
 * and goes on.  The spawner forks the helper, which runs exactly as a
 * helper forked by the agent, and answers with its pid and a pidfd, so
 * the agent can kill a helper that is not its child without ever
 * signalling a recycled pid.
 *
 * Invariants:
 * - The report pipe stays the one truth about a creation (its EOF ends
 *   it); the answer only names the helper.  A spawner that cannot fork
 *   writes the failure on the report pipe itself.
 * - The spawner dies with the agent (PR_SET_PDEATHSIG, and EOF on its
 *   socket); helpers it forked live on and finish or undo by themselves,
 *   as helpers of a dead agent always did.  It reaps its helpers.
 * - A spawner that died answers every request left with -EPIPE; the next
 *   creation starts a new one.
 */
#ifndef BATON_NSSPAWN_H
#define BATON_NSSPAWN_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "successor/nsprov.h"

struct nsspawn;

/*
 * A request's answer: the helper's pid and a pidfd (the callee's to
 * close), or err < 0 with pid 0 and pidfd -1 (the spawner could not
 * fork, in which case it wrote FAILED on the report pipe, or it died).
 */
typedef void (*nsspawn_fn)(void *arg, pid_t pid, int pidfd, int err);

/*
 * Fork the spawner now (a fork of this process: the same rules as
 * forking a helper, nswriter_fork_lock()).  base's pin_dir, uenv_base
 * and cg stay valid in the spawner (its copy of this memory); every
 * request carries the rest.  0 or -errno.
 */
int nsspawn_start(uv_loop_t *loop, const struct nsprov_req *base,
    struct nsspawn **ret);

/* Whether it still answers (its socket open, no EOF seen). */
bool nsspawn_alive(const struct nsspawn *sp);

/*
 * Ask for a helper for rq (id, mask, image_fd, uenv_path, and whether it
 * goes into the cgroups: rq->cg NULL or not; the rest from base)
 * reporting on wfd (borrowed: sent, the caller closes its copy).
 * fn(arg, ...) runs on the loop with the answer.  0 or -errno (nothing
 * sent, fn never runs).
 */
int nsspawn_request(struct nsspawn *sp, const struct nsprov_req *rq,
    int wfd, nsspawn_fn fn, void *arg);

/*
 * Run the callbacks of the answers already received (non-blocking).  An
 * answer is sent before the spawner closes its copy of the report pipe:
 * at the pipe's EOF it has been received.
 */
void nsspawn_collect(struct nsspawn *sp);

/*
 * Drop the request made for arg without running its callback (its
 * answer, should it still come, is discarded: the pidfd closed).
 */
void nsspawn_forget(struct nsspawn *sp, void *arg);

/*
 * Wait (blocking) for every answer left and run its callback (shutdown:
 * before the helpers are killed and waited for).
 */
void nsspawn_flush(struct nsspawn *sp);

/*
 * Close the socket (the spawner exits) and free; answers still owed are
 * flushed first.  The spawner itself is reaped by the agent's SIGCHLD.
 */
void nsspawn_free(struct nsspawn *sp);

#endif
