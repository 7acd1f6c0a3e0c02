#!/bin/sh
# Handoffs between two builds, both ways, and a cold start of the older
# one after the newer one was killed: every allocation answered must be
# served by each next agent.  For a table format change (docs/PROTOCOL.md,
# "The table's files"): build the older commit in a worktree, then
#
#   git worktree add /tmp/old b56f0a8 && make -C /tmp/old bins
#   scripts/check-mixed-builds.sh /tmp/old/build build
#
# Root only (namespaces).  Exit 0 when every count matched, 1 otherwise,
# 77 when not root.
set -u

[ $# -eq 2 ] || { echo "usage: $0 OLD_BUILD_DIR NEW_BUILD_DIR" >&2; exit 64; }
[ "$(id -u)" = 0 ] || { echo "check-mixed-builds: needs root" >&2; exit 77; }
OLD=$(cd "$1" && pwd) NEW=$(cd "$2" && pwd)
root=$(mktemp -d /tmp/baton-mixed.XXXXXX)
mkdir -p "$root/var/lib/pact/uenv"
sup=""
fail=0

# shellcheck disable=SC2317 # called by the trap
cleanup() {
	[ -n "$sup" ] && kill -TERM "$sup" 2>/dev/null && wait "$sup" 2>/dev/null
	umount -l "$root/run/pact/ns" 2>/dev/null
	rm -rf "$root"
}
trap cleanup EXIT

start() {	# BUILD
	"$1/baton-supervisor" --root "$root" --agent "$1/baton-agent" \
	    2>>"$root/sup.log" &
	sup=$!
	i=0
	until ctl status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "no agent serves" >&2; exit 1; }
		sleep 0.1
	done
}
ctl() { "$NEW/batonctl" --root "$root" "$@"; }
n=0
create() {	# COUNT PREFIX
	for _ in $(seq 1 "$1"); do
		n=$((n + 1))
		ctl ns create "$2-$n" --net >/dev/null ||
		    { echo "create $2-$n failed"; fail=1; }
	done
}
expect() {	# COUNT WHAT: that many allocations listed, all alive
	got=$(ctl ns list --json | python3 -c 'import json, sys
d = json.load(sys.stdin)
a = d.get("allocations", d)
print(len(a), sum(1 for x in a if x.get("alive")))')
	if [ "$got" = "$1 $1" ]; then
		echo "ok: $2: $1 allocations, all alive"
	else
		echo "FAIL: $2: want $1 alive, listed/alive: $got"
		fail=1
	fi
}
upgrade() {	# BUILD WHAT
	if ctl upgrade --binary "$1/baton-agent" >/dev/null; then
		echo "ok: $2 committed"
	else
		echo "FAIL: $2 did not commit"
		fail=1
	fi
}

start "$OLD"
create 5 old
expect 5 "older build"
upgrade "$NEW" "handoff older -> newer"
expect 5 "newer build after the handoff"
create 5 new
ctl ns release old-1 >/dev/null || fail=1
expect 9 "newer build, 5 created, 1 released"
upgrade "$OLD" "handoff newer -> older"
expect 9 "older build after the handoff"
create 3 old
ctl ns release new-6 >/dev/null || fail=1
expect 11 "older build, 3 created, 1 released"
upgrade "$NEW" "handoff older -> newer again"
expect 11 "newer build again"
create 1 last
expect 12 "newer build, 1 more"
kill -9 "$sup" "$(cat "$root/var/lib/baton/baton.pid")"
wait "$sup" 2>/dev/null
sup=""
start "$OLD"
expect 12 "older build cold-started after the newer one was killed"
if grep -q "event=ns.allocation_dropped" "$root/sup.log"; then
	echo "FAIL: an agent dropped an allocation"
	grep "event=ns.allocation_dropped" "$root/sup.log"
	fail=1
fi
exit $fail
