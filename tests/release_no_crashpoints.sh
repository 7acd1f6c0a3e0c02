#!/bin/sh
# release_no_crashpoints.sh [BUILD_DIR]
#
# A release build must not carry crash points (SPEC §7): none of the names
# in crashpoints/crashpoints.def may appear in baton-supervisor, baton-agent
# or batonctl built without CRASHPOINTS=1.  Prints TAP.  As a control, when
# a crash-point build sits next to it, checks that the same grep does find
# the names there (so an empty name list or a broken grep cannot pass).
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
def="$here/crashpoints/crashpoints.def"
bins="baton-supervisor baton-agent batonctl"

case "$build" in
*-cp|*-cp/)
	echo "1..0 # SKIP $build is a crash-point build"
	exit 0 ;;
esac
for b in $bins; do
	if [ ! -x "$build/$b" ]; then
		echo "1..0 # SKIP $build/$b not built (make bins)"
		exit 0
	fi
done

names=$(mktemp)
trap 'rm -f "$names"' EXIT
sed -n 's/^CP([a-z0-9_]*, *"\([^"]*\)").*/\1/p' "$def" >"$names"
count=$(wc -l <"$names")

# The control build, if any: same flavour plus -cp.
control=""
for c in "${build%/}-cp" build-cp build-san-cp; do
	if [ -x "$c/baton-supervisor" ]; then
		control=$c
		break
	fi
done

echo "1..5"
n=1
fail=0
if [ "$count" -ge 20 ]; then
	echo "ok $n - $count names read from crashpoints.def"
else
	echo "not ok $n - only $count names read from crashpoints.def"
	fail=1
fi
for b in $bins; do
	n=$((n + 1))
	found=$(strings -a "$build/$b" | grep -F -o -f "$names" | sort -u)
	if [ -z "$found" ]; then
		echo "ok $n - $b has no crash-point names"
	else
		echo "not ok $n - $b contains crash-point names"
		fail=1
		echo "$found" | sed 's/^/#   /'
	fi
done
n=$((n + 1))
if [ -z "$control" ]; then
	echo "ok $n - control # SKIP no crash-point build next to $build"
elif strings -a "$control/baton-supervisor" | grep -q -F -x -f "$names"; then
	echo "ok $n - control: $control/baton-supervisor does contain them"
else
	echo "not ok $n - control: no names found in $control/baton-supervisor"
	fail=1
fi
exit $fail
