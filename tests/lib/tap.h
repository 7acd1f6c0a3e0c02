/*
 * tap: a tiny TAP harness.  Each TEST() is one case, run in a forked
 * child with a timeout; the parent prints "ok"/"not ok" and the plan.
 * Inside a case, check() records a failure and goes on; skip() ends the
 * case as skipped with a reason (exit 77).
 *
 *   TEST(frame_roundtrip) { check(x == 1, "x is %d", x); }
 *   int main(int argc, char **argv) { return tap_main(argc, argv); }
 *
 * TAP_TIMEOUT (seconds, default 60) bounds each case; TAP_ONLY=name runs
 * one case.  A BENCH_T() case is a benchmark, not a test: it is not part
 * of a normal run (no skip is reported), only TAP_ONLY=name runs it.
 */
#ifndef BATON_TAP_H
#define BATON_TAP_H

#include <stdbool.h>
#include <sys/types.h>

typedef void (*tap_fn)(void);
void tap_register(const char *name, tap_fn fn, int timeout_s);

#define TEST_T(name, timeout) \
	static void test_##name(void); \
	__attribute__((constructor)) static void reg_##name(void) \
	{ tap_register(#name, test_##name, timeout); } \
	static void test_##name(void)
#define TEST(name) TEST_T(name, 0)
void tap_register_bench(const char *name, tap_fn fn, int timeout_s);
#define BENCH_T(name, timeout) \
	static void test_##name(void); \
	__attribute__((constructor)) static void reg_##name(void) \
	{ tap_register_bench(#name, test_##name, timeout); } \
	static void test_##name(void)

bool tap_check(bool cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define check(cond, ...) tap_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define check_eq(a, b) __extension__({ \
	long long ce_a_ = (long long)(a), ce_b_ = (long long)(b); \
	tap_check(ce_a_ == ce_b_, __FILE__, __LINE__, \
	    "%s == %s (%lld vs %lld)", #a, #b, ce_a_, ce_b_); })
/* Fail the case right away. */
#define require(cond, ...) do { if (!check(cond, __VA_ARGS__)) tap_bail(); } while (0)

__attribute__((noreturn)) void tap_bail(void);
__attribute__((noreturn, format(printf, 1, 2))) void tap_skip(const char *fmt, ...);
/* Diagnostic line ("# ...") on stdout. */
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int tap_main(int argc, char **argv);

/* Inside a case: its name (cases registered at run time share one fn). */
const char *tap_current(void);
/* Inside a case: checks failed so far. */
int tap_failures(void);

/* Number of open fds of this process (for leak checks). */
int tap_count_fds(void);

/* The number a small file starts with (a pid file, say); 0 if none. */
long tap_read_long(const char *path);

/* A number from /proc/PID/status ("Threads", "Seccomp_filters"), or -1. */
long tap_proc_status(pid_t pid, const char *key);

#endif
