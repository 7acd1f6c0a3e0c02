#!/bin/sh
# The footprint figures of issue 13: agent and supervisor RSS with N
# allocations held (default 10,000 {net}), the same after one upgrade,
# the agent's spawner (RSS, and the part not shared with the agent), and
# the supervisor's standby successor (RSS, its own part), and the
# wake-ups while idle: epoll_wait calls (the spawner: ppoll, the standby:
# read) that returned, over 10 s, counted with strace (each process,
# every thread).
#
#   scripts/bench-footprint.sh BUILD_DIR [N]      (root: namespaces)
set -eu
bin=$(cd "${1:-build}" && pwd)
n=${2:-10000}
[ "$(id -u)" = 0 ] || { echo "bench-footprint: needs root" >&2; exit 77; }
root=$(mktemp -d /tmp/baton-footprint.XXXXXX)
sup=""
cleanup() {
	[ -n "$sup" ] && kill -TERM "$sup" 2>/dev/null && wait "$sup" || true
	umount -l "$root/run/pact/ns" 2>/dev/null || true
	grep -o " $root/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r -u |
	    while read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$root"
}
trap cleanup EXIT
mkdir -p "$root/var/lib/pact/uenv"
"$bin/baton-supervisor" --root "$root" --agent "$bin/baton-agent" \
    --agent-arg "--max-allocations=$((n + 1000))" 2>"$root/sup.log" &
sup=$!
until "$bin/batonctl" --root "$root" status >/dev/null 2>&1; do sleep 0.05; done
"$bin/baton-load" --socket "$root/run/pact/handoff.sock" --mix create \
    --workers 4 --count "$n" --seconds 0 --id-prefix fp >/dev/null
agent() {
	"$bin/batonctl" --root "$root" status --json |
	    sed -n 's/.*"agent_pid":\([0-9]*\).*/\1/p'
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Loop wake-ups: epoll_wait calls that return within 10 s of idling (the
# one still blocked when strace detaches is not counted).
wakeups() {
	timeout -s INT 10 strace -f -qq -e trace="${2:-epoll_wait,epoll_pwait}" \
	    -p "$1" 2>&1 | grep -c ') = [0-9]' || true
}
# $1's child named $2: the agent's spawner (baton-nsspawn), the
# spawner's spare helper (baton-nsspare), the supervisor's standby
# (baton-standby).
child() {
	for c in $(cat "/proc/$1/task/$1/children"); do
		[ "$(cat "/proc/$c/comm")" = "$2" ] && echo "$c"
	done
}
# Pages only this process has (copied from, or never shared with, others).
private() {
	awk '/^Private_(Clean|Dirty):/ { k += $2 } END { print k }' \
	    "/proc/$1/smaps_rollup"
}
a=$(agent)
sp=$(child "$a" baton-nsspawn)
sleep 2
sv=$(child "$sp" baton-nsspare)
sb=$(child "$sup" baton-standby)
echo "allocations $n: agent RSS $(rss "$a") KiB, supervisor RSS $(rss "$sup") KiB"
if [ -n "$sb" ]; then
	echo "standby: RSS $(rss "$sb") KiB, of which $(private "$sb") KiB" \
	    "its own"
else
	echo "standby: none"
fi
echo "spawner: RSS $(rss "$sp") KiB, of which $(private "$sp") KiB its own" \
    "(the rest shared with the agent, copy-on-write)"
if [ -n "$sv" ]; then
	echo "spare helper: RSS $(rss "$sv") KiB, of which $(private "$sv")" \
	    "KiB its own"
else
	echo "spare helper: none"
fi
if command -v strace >/dev/null; then
	wakeups "$a" >"$root/wa" &
	w=$!
	wakeups "$sp" ppoll >"$root/wp" &
	wp=$!
	echo "-" >"$root/wv"
	if [ -n "$sv" ]; then
		wakeups "$sv" recvmsg >"$root/wv" &
		wv=$!
	fi
	echo "-" >"$root/wb"
	if [ -n "$sb" ]; then
		wakeups "$sb" read >"$root/wb" &
		wb=$!
	fi
	wakeups "$sup" >"$root/ws"
	wait "$w" "$wp" ${wv:+"$wv"} ${wb:+"$wb"}
	echo "idle 10 s: agent $(cat "$root/wa") loop wake-ups, supervisor $(cat "$root/ws"), spawner $(cat "$root/wp"), spare helper $(cat "$root/wv"), standby $(cat "$root/wb")"
else
	echo "idle 10 s: not measured (no strace)"
fi
t=$("$bin/batonctl" --root "$root" upgrade --json |
    sed -n 's/.*"total_ms":\([0-9]*\).*/\1/p')
sleep 1
echo "after one upgrade ($t ms): agent RSS $(rss "$(agent)") KiB"
