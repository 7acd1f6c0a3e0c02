/*
 * log: logfmt lines on stderr, one write(2) per event so lines from
 * several processes sharing stderr do not interleave mid-line.  The
 * message value is quoted and escaped; key=value pairs from kvfmt are
 * the caller's and written as given.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static const char *log_role = "baton";
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_init(const char *role)
{
	const char *e = getenv("BATON_LOG_LEVEL");

	log_role = role;
	if (e && strcmp(e, "debug") == 0)
		log_min = LOG_DEBUG;
	else if (e && strcmp(e, "warn") == 0)
		log_min = LOG_WARN;
	else if (e && strcmp(e, "error") == 0)
		log_min = LOG_ERROR;
}

void
log_set_role(const char *role)
{
	log_role = role;
}

void
log_set_level(enum log_level lvl)
{
	log_min = lvl;
}

static size_t
append_quoted(char *buf, size_t len, size_t cap, const char *s)
{
	if (len < cap)
		buf[len++] = '"';
	for (; *s && len + 2 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)ch;
		} else if (ch == '\n') {
			buf[len++] = '\\';
			buf[len++] = 'n';
		} else if (ch < 0x20) {
			buf[len++] = '?';
		} else {
			buf[len++] = (char)ch;
		}
	}
	if (len < cap)
		buf[len++] = '"';
	return len;
}

void
log_event(enum log_level lvl, const char *event, const char *msg,
    const char *kvfmt, ...)
{
	int saved = errno;
	char buf[2048];
	struct timespec ts;
	struct tm tm;
	size_t len;
	int n;
	va_list ap;

	if (lvl < log_min) {
		errno = saved;
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(buf, sizeof(buf),
	    "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s role=%s pid=%d "
	    "event=%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl],
	    log_role, (int)getpid(), event);
	len = n > 0 ? (size_t)n : 0;
	if (kvfmt && *kvfmt && len + 1 < sizeof(buf)) {
		buf[len++] = ' ';
		va_start(ap, kvfmt);
		n = vsnprintf(buf + len, sizeof(buf) - len, kvfmt, ap);
		va_end(ap);
		if (n > 0)
			len += (size_t)n;
		if (len >= sizeof(buf))
			len = sizeof(buf) - 1;
	}
	if (msg && len + 6 < sizeof(buf)) {
		memcpy(buf + len, " msg=", 5);
		len = append_quoted(buf, len + 5, sizeof(buf) - 1, msg);
	}
	buf[len++] = '\n';
	n = (int)write(STDERR_FILENO, buf, len);
	(void)n;
	errno = saved;
}
