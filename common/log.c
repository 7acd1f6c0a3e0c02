/*
 * log: logfmt lines on stderr, one write(2) per event so lines from
 * several processes sharing stderr do not interleave mid-line.  The
 * message value is quoted and escaped; key=value pairs from kvfmt are
 * the caller's and written as given.  When stderr is the journal
 * (JOURNAL_STREAM names its device and inode, systemd.exec(5)), each
 * line starts with its syslog priority, "<6>", as sd-daemon(3) says.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static const char *log_role = "baton";
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };
/* sd-daemon(3) prefixes: SD_DEBUG, SD_INFO, SD_WARNING, SD_ERR. */
static const int level_prio[] = { 7, 6, 4, 3 };
static bool journal_prefix;
static int fallback_fd = -1;	/* log_set_fallback() */

static void put_line(const char *buf, size_t len);

/* Is stderr the stream JOURNAL_STREAM=<dev>:<ino> names? */
static bool
stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *role)
{
	const char *e = getenv("BATON_LOG_LEVEL");

	log_role = role;
	journal_prefix = stderr_is_journal();
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
	len = 0;
	if (journal_prefix)
		len = (size_t)snprintf(buf, sizeof(buf), "<%d>", level_prio[lvl]);
	n = snprintf(buf + len, sizeof(buf) - len,
	    "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s role=%s pid=%d "
	    "event=%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl],
	    log_role, (int)getpid(), event);
	len += n > 0 ? (size_t)n : 0;
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
	put_line(buf, len);
	errno = saved;
}

void
log_set_fallback(int fd)
{
	fallback_fd = fd;
}

/*
 * One line, one write(2).  When stderr is a relay pipe whose reader is
 * stopped (full: EAGAIN) or gone (EPIPE), the line goes to the fallback
 * instead, and after EPIPE for good (it becomes stderr): a supervisor
 * that stalls or restarts costs no log line.
 */
static void
put_line(const char *buf, size_t len)
{
	ssize_t n = write(STDERR_FILENO, buf, len);

	if (n >= 0 || fallback_fd < 0 || (errno != EPIPE && errno != EAGAIN))
		return;
	if (errno == EPIPE && dup2(fallback_fd, STDERR_FILENO) >= 0)
		fallback_fd = -1;
	n = write(fallback_fd >= 0 ? fallback_fd : STDERR_FILENO, buf, len);
	(void)n;
}

void
log_relay(const char *line)
{
	static const char *const keys[] = { " level=debug ", " level=info ",
	    " level=warn ", " level=error " };
	char buf[4096];
	size_t n = strlen(line);
	int saved = errno, lvl = LOG_INFO, i, k = 0;

	for (i = 0; i < 4; i++)
		if (strstr(line, keys[i]))
			lvl = i;
	if (lvl < (int)log_min)
		return;
	if (journal_prefix)
		k = snprintf(buf, sizeof(buf), "<%d>", level_prio[lvl]);
	if (n > sizeof(buf) - (size_t)k - 1)
		n = sizeof(buf) - (size_t)k - 1;
	memcpy(buf + k, line, n);
	buf[k + (int)n] = '\n';
	put_line(buf, (size_t)k + n + 1);
	errno = saved;
}
