#!/bin/sh
# fuzz.sh BUILD_DIR SECONDS: run every libFuzzer target in BUILD_DIR
# (fuzz_*) for SECONDS each, on a scratch copy of its seed corpus
# (tests/fuzz/corpus/<target>/) so the repository is never modified.
# Prints TAP, one line per target with its execution count; fails if a
# target crashed, leaked, timed out or left a crash artifact.
set -u

bdir=${1:?usage: fuzz.sh BUILD_DIR SECONDS}
secs=${2:?usage: fuzz.sh BUILD_DIR SECONDS}
src=$(cd "$(dirname "$0")/.." && pwd)

targets=$(ls "$bdir"/fuzz_* 2>/dev/null | grep -v '\.' || true)
if [ -z "$targets" ]; then
	echo "1..0 # SKIP no fuzz targets in $bdir (make fuzz-build)"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/baton-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

set -- $targets
echo "1..$#"
n=0 failed=0
for t in "$@"; do
	n=$((n + 1))
	name=$(basename "$t")
	corpus="$work/$name/corpus"
	arts="$work/$name/artifacts"
	mkdir -p "$corpus" "$arts"
	if [ -d "$src/tests/fuzz/corpus/$name" ]; then
		cp "$src/tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
	fi
	log="$work/$name/log"
	"$t" -max_total_time="$secs" -print_final_stats=1 -max_len=8192 \
	    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$arts/" \
	    "$corpus" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
	    tail -n 1)
	[ -n "$execs" ] || execs=0
	if [ $rc -ne 0 ] || [ -n "$(ls "$arts")" ]; then
		failed=$((failed + 1))
		echo "not ok $n - $name: $execs execs, exit $rc"
		grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -n 5 |
		    sed 's/^/# /'
		for a in "$arts"/*; do
			[ -e "$a" ] || continue
			keep="${TMPDIR:-/tmp}/$name-$(basename "$a")"
			cp "$a" "$keep"
			echo "# artifact kept: $keep"
		done
	else
		echo "ok $n - $name: $execs execs"
	fi
done
[ $failed -eq 0 ]
