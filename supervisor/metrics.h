/*
 * metrics: Prometheus textfile-collector output (by default
 * var/lib/prometheus/node-exporter/baton.prom),
 * rewritten atomically after every handoff and agent restart.
 */
#ifndef BATON_METRICS_H
#define BATON_METRICS_H

struct sup;
struct handoff_result;

/* Record one finished handoff's phases, then write the file. */
void metrics_handoff(struct sup *s, const struct handoff_result *r);
/* Write the file from the current counters. */
void metrics_write(struct sup *s);

#endif
