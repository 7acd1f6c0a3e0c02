#!/bin/sh
# deps_split: `make demo` installs only what building needs; the test
# tools come with `make check` (scripts/deps.sh --check).  TAP.
set -u
echo "1..4"
n=0
fail() { echo "not ok $1 - $2"; }
build=$(scripts/deps.sh --list) || { fail 1 "deps.sh --list runs"; exit 1; }
check=$(scripts/deps.sh --list --check)
bad=""
for p in clang python3 python3-msgpack pdsh clustershell openssh-server fiu-utils; do
	echo "$build" | grep -qx "$p" && bad="$bad $p"
done
if [ -z "$bad" ]; then echo "ok 1 - build deps hold no test tool"; else fail 1 "build deps hold:$bad"; n=1; fi
miss=""
for p in build-essential libuv1-dev libjansson-dev clang pdsh clustershell openssh-server fiu-utils; do
	echo "$check" | grep -qx "$p" || miss="$miss $p"
done
if [ -z "$miss" ]; then echo "ok 2 - check deps hold build and test packages"; else fail 2 "check deps lack:$miss"; n=1; fi
demo=$(make -n demo 2>/dev/null | grep deps.sh)
case "$demo" in
*--check*|"") fail 3 "make demo runs deps.sh without --check: [$demo]"; n=1 ;;
*) echo "ok 3 - make demo runs scripts/deps.sh (build deps only)" ;;
esac
if make -n check 2>/dev/null | grep -q "deps.sh --check"; then
	echo "ok 4 - make check installs the test tools"
else
	fail 4 "make check runs deps.sh --check"; n=1
fi
exit $n
