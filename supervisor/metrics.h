/*
 * metrics: Prometheus textfile-collector output (by default
 * var/lib/prometheus/node-exporter/baton.prom),
 * rewritten atomically after every handoff and agent restart.
 *
 * The module reads its owner only through a view callback: what the
 * supervisor counts and where it stands, as plain values.
 */
#ifndef BATON_METRICS_H
#define BATON_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct handoff_result;

struct metrics_view {
	uint64_t handoffs_committed, handoffs_rolled_back, agent_restarts;
	pid_t agent_pid;		/* 0 when none */
	bool agent_up;			/* an agent serves (running, handoff) */
	unsigned restarts_in_row;
	const char *const *state_names;	/* the supervisor's states */
	unsigned nstates, state;	/* how many; the current one */
};

struct metrics_opts {
	uv_loop_t *loop;
	const char *path;		/* the .prom file */
	const char *ns_socket;		/* STATUS probes of the agent */
	void (*view)(void *data, struct metrics_view *ret);
	void *data;
};

/* Remember opts (strings borrowed for the process's life). */
void metrics_init(const struct metrics_opts *o);
/* Record one finished handoff's phases, then write the file. */
void metrics_handoff(const struct handoff_result *r);
/* Write the file from the current view (starts the probe timer once). */
void metrics_write(void);

#endif
