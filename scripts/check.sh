#!/bin/sh
# The test run behind `make check`: unit and integration tests from the
# sanitizer + crash-point build, the release-binary crash-point check and
# a bounded fuzz run, all through prove, which prints the summary.
#   scripts/check.sh TEST_BUILD_DIR RELEASE_BUILD_DIR
set -eu
tb=$1
rb=$2
fuzz_seconds=${FUZZ_SECONDS:-20}
# Daemons under test run under seccomp later; LeakSanitizer needs ptrace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export BATON_TEST_BIN="$tb"
export BATON_RELEASE_BIN="$rb"
export FUZZ_SECONDS="$fuzz_seconds"
# The crash matrix twice: a flaky recovery shows up.
export BATON_MATRIX_ROUNDS=${BATON_MATRIX_ROUNDS:-2}
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
# shellcheck disable=SC2086
exec prove --timer -e '' $tests
