#!/bin/sh
# The benchmark behind `make bench`: baton's zero-downtime figures on this
# machine, measured in one run, never as a timed unit test.
#
#   1. floor     baton-floor: fork+exec of the agent, a durable journal
#                write, a socketpair round trip, a one-flush slot write,
#                a handoff's journal record renamed (before) and in place,
#                and as root a bare {net} allocation (the creation goal
#                printed after the create throughput is against it)
#   2. handoffs  steady closed-loop load on the namespace socket (STATUS, a
#                new connection per request), then K back-to-back upgrades
#                under that load; every request and every upgrade window is
#                recorded and bench/benchstat.py computes the figures
#   3. ns        the same with NS_REQUEST+ALLOCATION_ENDED on persistent
#                connections (root only; NS_K upgrades)
#   4. moving    upgrade duration with 0, 100 and 1000 connections held
#                open (they move to each successor; none may close)
#   5. scaling   upgrade duration with 0, 100, 1000 and 10000 allocations
#                held (root only), and create throughput with 1..8 clients
#
#   scripts/bench.sh BUILD_DIR
#
# Environment: K (200) upgrades, NS_K (50), WORKERS (2) load clients,
# PAUSE_MS (20) between upgrades, WARM_S (3) and COOL_S (2) seconds of load
# before and after, SCALE ("0 100 1000 10000") allocation counts, SCALE_K
# (10) upgrades per count, MOVE ("0 100 1000") connections held open and
# MOVE_K (20) upgrades each, OUT (BUILD_DIR/bench) for the results,
# BENCH_SUP_ARGS extra supervisor arguments (e.g. "--no-standby"),
# SERVER_CPUS and LOAD_CPUS (taskset CPU lists; unset: no pinning) to run
# the server tree and the load clients on CPUs of their own.
set -eu

bin=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
K=${K:-200}
NS_K=${NS_K:-50}
WORKERS=${WORKERS:-2}
PAUSE_MS=${PAUSE_MS:-20}
WARM_S=${WARM_S:-3}
COOL_S=${COOL_S:-2}
SCALE=${SCALE-"0 100 1000 10000"}
SCALE_K=${SCALE_K:-10}
MOVE=${MOVE-"0 100 1000"}
MOVE_K=${MOVE_K:-20}
OUT=${OUT:-$bin/bench}
stat="python3 $here/bench/benchstat.py"
srv_pin="" load_pin=""
[ -n "${SERVER_CPUS:-}" ] && srv_pin="taskset -c $SERVER_CPUS"
[ -n "${LOAD_CPUS:-}" ] && load_pin="taskset -c $LOAD_CPUS"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
root=""
reap_pid=""
load_pid=""

cleanup() {
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
	stop_supervisor
	[ -n "$root" ] && drop_root "$root"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Pins are bind mounts under the root; detach them before removing it.
drop_root() {
	if [ "$(id -u)" = 0 ]; then
		# The pin directory is a mount of its own: detaching it lazily
		# takes every pin under it along in one call.
		umount -l "$1/run/pact/ns" 2>/dev/null || true
		grep -o " $1/[^ ]*" /proc/self/mountinfo 2>/dev/null |
		    sort -r -u | while read -r m; do
			umount -l "$m" 2>/dev/null || true
		done
	fi
	rm -rf "$1" 2>/dev/null || true
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
json_num() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"; }

# start_supervisor NAME [SUPERVISOR-ARG...]: a fresh root, the supervisor
# under baton-reap.
# shellcheck disable=SC2086
start_supervisor() {
	sname=$1
	shift
	root=$(mktemp -d /tmp/baton-bench.XXXXXX)
	mkdir -p "$root/var/lib/pact/uenv"
	$srv_pin "$bin/baton-reap" --out "$OUT/$sname.reap" \
	    --pidfile "$root/sup.pid" \
	    --max-seconds 1800 -- "$bin/baton-supervisor" --root "$root" \
	    --agent "$bin/baton-agent" ${BENCH_SUP_ARGS:-} "$@" \
	    2>"$OUT/$sname.log" &
	reap_pid=$!
	i=0
	until "$bin/batonctl" --root "$root" status >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 200 ]; then
			echo "bench: supervisor did not come up; log:" >&2
			cat "$OUT/$sname.log" >&2
			exit 1
		fi
		sleep 0.05
	done
	sup_pid=$(cat "$root/sup.pid")
}

stop_supervisor() {
	if [ -n "$reap_pid" ]; then
		[ -f "$root/sup.pid" ] && kill -TERM "$(cat "$root/sup.pid")" \
		    2>/dev/null || true
		wait "$reap_pid" 2>/dev/null || true
		reap_pid=""
	fi
	if [ -n "$root" ]; then
		drop_root "$root"
		root=""
	fi
}

agent_pid() {
	"$bin/batonctl" --root "$root" status --json >"$OUT/.status.json"
	json_num "$OUT/.status.json" agent_pid
}

# proc_snapshot TAG: RSS and fds of the supervisor and the current agent.
proc_snapshot() {
	a=$(agent_pid)
	echo "--set rss_kb_sup_$1=$(rss_kb "$sup_pid")" \
	    "--set rss_kb_agent_$1=$(rss_kb "$a")" \
	    "--set rss_kb_$1=$(($(rss_kb "$sup_pid") + $(rss_kb "$a")))" \
	    "--set fds_sup_$1=$(nfds "$sup_pid")" \
	    "--set fds_agent_$1=$(nfds "$a")" \
	    "--set fds_$1=$(($(nfds "$sup_pid") + $(nfds "$a")))"
}

# handoff_scenario NAME UPGRADES LOAD-ARGS...
handoff_scenario() {
	name=$1 k=$2
	shift 2
	start_supervisor "$name"
	before=$(proc_snapshot before)
	$load_pin "$bin/baton-load" --socket "$root/run/pact/handoff.sock" \
	    --workers "$WORKERS" --seconds 900 --trace "$OUT/$name.trace" \
	    --json "$@" >"$OUT/$name.load.json" &
	load_pid=$!
	sleep "$WARM_S"
	"$bin/baton-reload" --count "$k" --pause-ms "$PAUSE_MS" \
	    --max-seconds 600 --out "$OUT/$name.handoffs" -- \
	    "$bin/batonctl" --root "$root" upgrade --json >/dev/null || true
	sleep "$COOL_S"
	kill -TERM "$load_pid"
	wait "$load_pid" || true
	load_pid=""
	after=$(proc_snapshot after)
	stop_supervisor
	# shellcheck disable=SC2086
	$stat --name "$name" --trace "$OUT/$name.trace" \
	    --handoffs "$OUT/$name.handoffs" --log "$OUT/$name.log" \
	    --reap "$OUT/$name.reap" --floor "$OUT/floor.json" \
	    $before $after --out "$OUT/$name.json" | tee "$OUT/$name.txt"
	echo
}

echo "baton bench: $(uname -srm), $(nproc) cores, $("$bin/baton-agent" --version)," \
    "K=$K, $WORKERS clients, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "$srv_pin$load_pin" ] &&
    echo "pinned: server tree on CPUs ${SERVER_CPUS:-any}, load on ${LOAD_CPUS:-any}"
echo "results in $OUT"
echo

# 1. The floor, on the file system the state directory lives on.
# As root also a bare {net} allocation's (--ns), for the create goal below.
fdir=$(mktemp -d /tmp/baton-bench-floor.XXXXXX)
fns=""
[ "$(id -u)" = 0 ] && fns=--ns
# shellcheck disable=SC2086
"$bin/baton-floor" --agent "$bin/baton-agent" --dir "$fdir" --json $fns \
    >"$OUT/floor.json"
"$bin/baton-floor" --agent "$bin/baton-agent" --dir "$fdir" --runs 50 |
    sed 's/^/  /' | tee "$OUT/floor.txt" >/dev/null
rm -rf "$fdir"
echo "== floor (p50 of $(json_num "$OUT/floor.json" exec_runs) runs, us):" \
    "exec $(json_num "$OUT/floor.json" exec_p50_us)," \
    "journal $(json_num "$OUT/floor.json" journal_p50_us)," \
    "rtt $(json_num "$OUT/floor.json" rtt_p50_us)," \
    "slot $(json_num "$OUT/floor.json" slot_p50_us)," \
    "journal record renamed $(json_num "$OUT/floor.json" renamed_p50_us)," \
    "in place $(json_num "$OUT/floor.json" inplace_p50_us)${fns:+,}" \
    "${fns:+netns $(json_num "$OUT/floor.json" netns_p50_us)}"
echo

# 2. STATUS, a new connection per request, K upgrades.
handoff_scenario baton "$K" --mix status
set -- "$OUT/baton.json"

# 2b. Where a creation's time goes: bare unshare against the provider.
# After the STATUS scenario: the kernel tears the namespaces down for a
# while after they are released, which would be noise in that scenario.
# The test libraries need the crash-point build (make bench builds it).
if [ "$(id -u)" = 0 ] && [ -x "$bin-cp/tests/test_nsserver" ]; then
	echo "== create latency: bare unshare vs the provider"
	TAP_ONLY=bench_create_latency "$bin-cp/tests/test_nsserver" |
	    grep '^#' | tee "$OUT/create.txt"
	echo
fi

# 3 and 4 need root: namespaces are created for real.
if [ "$(id -u)" = 0 ] && [ "$NS_K" -gt 0 ]; then
	handoff_scenario baton-ns "$NS_K" --mix ns --persistent \
	    --id-prefix bench
	set -- "$@" "$OUT/baton-ns.json"
fi

# create N CLIENTS PREFIX: NS_REQUEST{net} without release.
create() {
	$load_pin "$bin/baton-load" --socket "$root/run/pact/handoff.sock" \
	    --mix create --count "$1" --workers "$2" --id-prefix "$3" --seconds 600 \
	    --json >"$OUT/create-$3.json" || true
}
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$OUT/create-$1.json"; }
held() {
	"$bin/batonctl" --root "$root" status --json >"$OUT/.status.json"
	sed -n 's/.*"allocations":\([0-9]*\).*/\1/p' "$OUT/.status.json"
}

# Handoff time by established connections moved (docs/PROTOCOL.md,
# "Moving connections"): N idle connections held open through MOVE_K
# upgrades, with a persistent STATUS load; none may be closed or retried.
if [ -n "$MOVE" ]; then
	echo "== moving connections: handoff duration by connections held open"
	start_supervisor move
	printf '%-12s %-8s %-8s %-8s %s\n' connections "p50 ms" "p99 ms" \
	    "max ms" "phases p50 ms: spawn drain seal begin commit" |
	    tee "$OUT/move.txt"
	for n in $MOVE; do
		$load_pin "$bin/baton-load" \
		    --socket "$root/run/pact/handoff.sock" --persistent \
		    --workers 2 --hold "$n" --seconds 0 --json \
		    >"$OUT/move-$n.json" 2>"$OUT/move-$n.err" &
		load_pid=$!
		sleep 1
		"$bin/baton-reload" --count "$MOVE_K" --pause-ms "$PAUSE_MS" \
		    --max-seconds 600 --out "$OUT/move-$n.handoffs" -- \
		    "$bin/batonctl" --root "$root" upgrade --json >/dev/null ||
		    true
		kill -TERM "$load_pid" 2>/dev/null || true
		wait "$load_pid" 2>/dev/null || true
		load_pid=""
		ld="$OUT/move-$n.json"
		printf '%-12s %s  closed %s retried %s failed %s\n' "$n" \
		    "$(python3 "$here/bench/handoffs.py" "$OUT/move-$n.handoffs")" \
		    "$(json_num "$ld" held_closed)" "$(json_num "$ld" retried)" \
		    "$(json_num "$ld" requests_failed)" | tee -a "$OUT/move.txt"
	done
	stop_supervisor
	echo
fi

if [ "$(id -u)" = 0 ] && [ -n "$SCALE" ]; then
	max=0
	for n in $SCALE; do [ "$n" -gt "$max" ] && max=$n; done
	echo "== scaling: upgrade duration by allocations held (net namespaces)"
	# The agent holds 4096 allocations by default; raise it for this run.
	start_supervisor scale --agent-arg "--max-allocations=$((max + 1000))"
	have=0 tput=""
	printf '%-12s %-10s %-8s %-8s %-8s %-8s %s\n' allocations \
	    "create/s" clients "p50 ms" "p99 ms" "max ms" \
	    "phases p50 ms: spawn drain seal begin commit" | tee "$OUT/scale.txt"
	for n in $SCALE; do
		crate="-" cw="-"
		if [ "$n" -gt "$have" ] && [ -z "$tput" ] && [ "$n" -gt 100 ]; then
			# Create throughput by concurrent clients; the runs also
			# fill the table towards this level.
			each=$(((n - have) / 4))
			for w in 1 2 4 8; do
				create "$each" "$w" "tput$w"
				tput="$tput
  $w clients: $(field "tput$w" rps) created/s, p50 $(field "tput$w" p50_ms) ms, p99 $(field "tput$w" p99_ms) ms, $(field "tput$w" requests_failed) failed"
			done
			tput="== create throughput (NS_REQUEST{net}, new connection each, $each per run, from $have held)$tput"
			# Issue 13's goal, against this run's floor.
			nf=$(json_num "$OUT/floor.json" netns_p50_us)
			p1=$(field tput1 p50_ms)
			[ -n "$nf" ] && [ -n "$p1" ] && tput="$tput
$(awk -v p="$p1" -v f="$nf" 'BEGIN { g = 1.5 * f / 1000 + 0.5;
    printf "  create p50 at 1 client %.3f ms; goal 1.5 x netns floor (%d us) + 0.5 ms = %.3f ms: %s",
    p, f, g, p <= g ? "met" : "not met" }')"
			have=$(held)
		fi
		if [ "$n" -gt "$have" ]; then
			cw=1
			[ "$n" -gt 100 ] && cw=4
			create "$((n - have))" "$cw" "s$n"
			crate=$(field "s$n" rps)
			fail=$(field "s$n" requests_failed)
			[ "${fail:-0}" -gt 0 ] && sed 's/^/  create: /' \
			    "$OUT/create-s$n.json"
		fi
		have=$(held)
		"$bin/baton-reload" --count "$SCALE_K" --pause-ms "$PAUSE_MS" \
		    --max-seconds 600 --out "$OUT/scale-$n.handoffs" -- \
		    "$bin/batonctl" --root "$root" upgrade --json >/dev/null ||
		    true
		printf '%-12s %-10s %-8s %s\n' "$have" "$crate" "$cw" \
		    "$(python3 "$here/bench/handoffs.py" "$OUT/scale-$n.handoffs")" |
		    tee -a "$OUT/scale.txt"
	done
	[ -n "$tput" ] && { echo; echo "$tput"; } | tee -a "$OUT/scale.txt"
	stop_supervisor
	echo
fi

echo "== summary (docs/BENCH.md explains each column); load average at end" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
$stat --table "$@" | tee "$OUT/summary.md"
if command -v gnuplot >/dev/null 2>&1; then
	"$here/scripts/plot" "$OUT" baton && echo "plot: $OUT/baton.png"
else
	echo "plot: gnuplot not installed (scripts/deps.sh --peers); skipped"
fi
