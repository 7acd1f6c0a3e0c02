/*
 * log: one logfmt line per event on stderr.
 *   ts=2026-11-24T09:15:22.123Z level=info role=supervisor pid=42
 *   event=handoff.commit handoff_id=... msg="..."
 */
#ifndef BATON_LOG_H
#define BATON_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* role is borrowed and must outlive the process ("supervisor", "agent"). */
void log_init(const char *role);
void log_set_role(const char *role);
void log_set_level(enum log_level lvl);

/*
 * Log one event.  kvfmt (printf format, may be NULL) produces extra
 * key=value pairs written as given; msg (may be NULL) is quoted and
 * escaped.  errno is preserved.
 */
void log_event(enum log_level lvl, const char *event, const char *msg,
    const char *kvfmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Write another process's logfmt line (no newline) as it is, with the
 * journald priority of its level= when stderr is the journal.
 */
void log_relay(const char *line);
/*
 * Where lines go when stderr is a pipe nobody reads any more (EPIPE) or
 * right now (EAGAIN): e.g. an agent whose stderr is its supervisor's relay
 * falls back to its stdout, the supervisor's own output.  -1: none.
 */
void log_set_fallback(int fd);

#define log_debug(ev, msg, ...) log_event(LOG_DEBUG, ev, msg, __VA_ARGS__)
#define log_info(ev, msg, ...) log_event(LOG_INFO, ev, msg, __VA_ARGS__)
#define log_warn(ev, msg, ...) log_event(LOG_WARN, ev, msg, __VA_ARGS__)
#define log_error(ev, msg, ...) log_event(LOG_ERROR, ev, msg, __VA_ARGS__)

#endif
