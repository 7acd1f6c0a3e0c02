#!/bin/sh
# The demo behind `make demo`: start baton-supervisor and baton-agent under
# a temporary root, create real namespace allocations (one with a squashfs
# uenv image), keep a client querying the namespace socket, perform live
# upgrades (one made to fail and roll back), and show what happened.
#
#   scripts/demo.sh BUILD_DIR [UPGRADES]
set -eu

bin=$(cd "${1:-build}" && pwd)
n_up=${2:-5}
root=$(mktemp -d /tmp/baton-demo.XXXXXX)
ctl="$bin/batonctl --root $root"
sup_pid=""
load_pid="" held_pid=""

say() { printf '\n== %s\n' "$*"; }

cleanup() {
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
	[ -n "$held_pid" ] && kill "$held_pid" 2>/dev/null || true
	if [ -n "$sup_pid" ] && kill -0 "$sup_pid" 2>/dev/null; then
		kill -TERM "$sup_pid"
		wait "$sup_pid" 2>/dev/null || true
	fi
	# Pins and their private mount live under the root; detach them.
	if [ "$(id -u)" = 0 ]; then
		grep -o " $root[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r |
		    while read -r m; do umount -l "$m" 2>/dev/null || true; done
	fi
	if [ -z "${BATON_KEEP_ROOT:-}" ]; then
		rm -rf "$root"
	else
		echo "root kept at $root"
	fi
}
trap cleanup EXIT INT TERM

say "baton demo under $root"
"$bin/baton-supervisor" --version
mkdir -p "$root/var/lib/pact/uenv"
"$bin/baton-supervisor" --root "$root" --agent "$bin/baton-agent" \
    2>"$root/supervisor.log" &
sup_pid=$!

i=0
until $ctl status >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 200 ]; then
		echo "supervisor did not come up; log:" >&2
		cat "$root/supervisor.log" >&2
		exit 1
	fi
	sleep 0.05
done
say "status after cold start"
$ctl status

allocs=0
if [ "$(id -u)" = 0 ]; then
	say "allocations: namespaces for two compute jobs"
	img=""
	if command -v mksquashfs >/dev/null 2>&1; then
		mkdir -p "$root/uenv-src/bin"
		echo "gcc 13.2 (uenv demo image)" >"$root/uenv-src/VERSION"
		mksquashfs "$root/uenv-src" "$root/var/lib/pact/uenv/tools.sqfs" \
		    -quiet -noappend >/dev/null
		img="--uenv tools.sqfs"
	fi
	$ctl ns create job-1 --pid --net --mount
	# shellcheck disable=SC2086
	$ctl ns create job-2 --pid --net --mount $img
	allocs=2
	say "inside job-2: only lo, and the uenv mount"
	$ctl ns run job-2 -- sh -c 'cat /proc/net/dev | tail -n +3 | cut -d: -f1;
	    [ -f /run/pact/uenv/tools/VERSION ] 2>/dev/null; grep -h uenv /proc/self/mountinfo | cut -d" " -f5,9 || true'
	ino_before=$($ctl ns create job-1 --pid --net --mount | grep -E '^(pid|net|mount) ' | tr -s ' ' | tr '\n' ' ')
	echo "host mount table has the uenv image: $(grep -c 'uenv/tools' /proc/self/mountinfo || true) entries (it lives only inside job-2)"
else
	say "not root: skipping namespace allocations (they need CAP_SYS_ADMIN)"
fi

say "client load on the namespace socket during $n_up live upgrades"
"$bin/baton-load" --socket "$root/run/pact/handoff.sock" --seconds 0 \
    --workers 2 >"$root/load.out" 2>&1 &
load_pid=$!
# A persistent client, and 100 connections held open and idle: they move
# from each agent to the next (docs/PROTOCOL.md, "Moving connections").
"$bin/baton-load" --socket "$root/run/pact/handoff.sock" --seconds 0 \
    --persistent --hold 100 >"$root/held.out" 2>&1 &
held_pid=$!
sleep 0.5

printf '%-4s %-36s %-11s %8s %8s %6s %6s %6s %6s %7s\n' "#" handoff outcome \
    old_pid new_pid spawn drain seal begin total_ms
k=1
while [ $k -le "$n_up" ]; do
	out=$($ctl upgrade --json || true)
	echo "$out" | sed -E 's/.*"handoff_id":"([^"]*)".*"committed":([a-z]*).*"old_pid":([0-9]*),"new_pid":([0-9]*).*"spawn_ms":([0-9]*),"drain_ms":([0-9]*),"seal_ms":([0-9]*),"begin_ms":([0-9]*).*"total_ms":([0-9]*).*/\1 \2 \3 \4 \5 \6 \7 \8 \9/' |
	    while read -r id c o nw sp dr se be to; do
		[ "$c" = true ] && c=committed || c=rolled-back
		printf '%-4s %-36s %-11s %8s %8s %6s %6s %6s %6s %7s\n' "$k" "$id" \
		    "$c" "$o" "$nw" "$sp" "$dr" "$se" "$be" "$to"
	done
	k=$((k + 1))
done

say "an upgrade made to fail: the new binary forks instead of exec'ing, so its HELLO comes from the wrong pid; baton rolls back"
cat >"$root/bad-agent" <<EOF
#!/bin/sh
sh -c 'LISTEN_PID=\$\$ exec $bin/baton-agent "\$@"' sh "\$@"
EOF
chmod 755 "$root/bad-agent"
$ctl upgrade --binary "$root/bad-agent" || echo "(exit $? = rolled back, as intended)"

say "one more upgrade after the rollback"
$ctl upgrade | head -1

sleep 0.3
kill -INT "$load_pid" "$held_pid"
wait "$load_pid" 2>/dev/null || true
wait "$held_pid" 2>/dev/null || true
load_pid="" held_pid=""
say "client results (requests sent throughout every upgrade)"
cat "$root/load.out"
say "one persistent client and 100 idle connections kept through every upgrade (none may be retried or closed)"
cat "$root/held.out"

if [ "$allocs" -gt 0 ]; then
	say "allocations survived every handoff (same namespace inodes)"
	ino_after=$($ctl ns create job-1 --pid --net --mount | grep -E '^(pid|net|mount) ' | tr -s ' ' | tr '\n' ' ')
	echo "before: $ino_before"
	echo "after:  $ino_after"
	if [ "$ino_before" = "$ino_after" ]; then echo "=> identical"; else echo "=> DIFFERENT"; fi
	$ctl ns release job-1
	$ctl ns release job-2
fi

say "the supervisor's processes: the agent, and the next upgrade's successor already started (baton-standby; docs/PROTOCOL.md, \"A successor started ahead\")"
sleep 0.2
ps -o pid=,comm= --ppid "$sup_pid" | sed 's/^ */  /'
grep -c 'event=handoff.standby ' "$root/supervisor.log" |
    sed 's/^/  upgrades that took the standby: /'

say "status and journal"
$ctl status
$ctl journal

say "metrics ($root/var/lib/prometheus/node-exporter/baton.prom)"
grep -E '^baton_(handoffs_total|agent_restarts_total|handoff_duration_seconds_(sum|count))' \
    "$root/var/lib/prometheus/node-exporter/baton.prom"

say "stopping (SIGTERM)"
kill -TERM "$sup_pid"
wait "$sup_pid" && echo "supervisor exited 0"
sup_pid=""
say "supervisor log (last 8 lines)"
tail -n 8 "$root/supervisor.log" | cut -c1-200
