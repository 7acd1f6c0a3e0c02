#!/bin/sh
# The test run behind `make check`: unit and integration tests from the
# sanitizer + crash-point build, the release-binary crash-point check and
# a bounded fuzz run, all through prove, which prints the summary.  Then
# how many cases ran and were skipped; as root (as CI runs it) a skipped
# integration case fails the check: root has everything they need.
#   scripts/check.sh TEST_BUILD_DIR RELEASE_BUILD_DIR
#   scripts/check.sh --run TEST    (prove's exec hook: run TEST, keep its TAP)
set -eu
if [ "${1:-}" = "--run" ]; then
	out="$BATON_CHECK_LOGS/$(basename "$2").tap"
	{ rc=0; "$2" || rc=$?; echo "$rc" >"$out.rc"; } | tee "$out"
	exit "$(cat "$out.rc")"
fi
tb=$1
rb=$2
fuzz_seconds=${FUZZ_SECONDS:-20}
# Daemons under test run under seccomp later; LeakSanitizer needs ptrace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export BATON_TEST_BIN="$tb"
export BATON_RELEASE_BIN="$rb"
export FUZZ_SECONDS="$fuzz_seconds"
# The crash matrix twice: a flaky recovery shows up (the load shape
# rotates, so each point runs under two of the three shapes).
export BATON_MATRIX_ROUNDS=${BATON_MATRIX_ROUNDS:-2}
# The stall matrix's short round (make stall-matrix runs every point).
export BATON_STALL_ROUNDS=${BATON_STALL_ROUNDS:-1}
tests=""
for t in "$tb"/tests/test_* "$tb"/tests/it_*; do
	[ -x "$t" ] && tests="$tests $t"
done
# The include rule: crashpoints < common < proto < transport < client < programs.
tests="$tests scripts/check-layers.sh"
[ -x tests/release_no_crashpoints.sh ] && tests="$tests tests/release_no_crashpoints.sh"
[ -x tests/deps_split.sh ] && tests="$tests tests/deps_split.sh"
[ -x tests/fuzz_smoke.sh ] && tests="$tests tests/fuzz_smoke.sh"
# The .debs built, lintianed, unpacked and run (issue 15).
[ -x scripts/check-packages.sh ] && tests="$tests scripts/check-packages.sh"
# Each test's full TAP (diagnostics included) stays here for reading.
BATON_CHECK_LOGS="$tb/check-logs"
export BATON_CHECK_LOGS
rm -rf "$BATON_CHECK_LOGS"
mkdir -p "$BATON_CHECK_LOGS"
rc=0
# shellcheck disable=SC2086
prove --timer -e "$(cd "$(dirname "$0")" && pwd)/check.sh --run" $tests ||
    rc=$?
all="$BATON_CHECK_LOGS/all"
cat "$BATON_CHECK_LOGS"/*.tap >"$all"
cases=$(grep -cE '^(not )?ok ' "$all" || true)
skips=$(grep -cE '^ok .*# SKIP' "$all" || true)
plan_skips=$(grep -cE '^1\.\.0 # SKIP' "$all" || true)
echo "make check: $((cases - skips)) cases ran," \
    "$((skips + plan_skips)) skipped; each test's TAP in $BATON_CHECK_LOGS"
if [ "$(id -u)" = 0 ]; then
	for f in "$BATON_CHECK_LOGS"/it_*.tap; do
		[ -e "$f" ] || continue
		if grep -qE '^ok .*# SKIP|^1\.\.0 # SKIP' "$f"; then
			echo "make check: skipped as root in $(basename "$f" .tap):"
			grep -E '^ok .*# SKIP|^1\.\.0 # SKIP' "$f" | sed 's/^/  /'
			rc=1
		fi
	done
fi
exit "$rc"
