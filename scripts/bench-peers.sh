#!/bin/sh
# The comparison behind `make bench-peers`: baton's handoff scenario and
# the same load shape and reload cadence against what people use today,
# on this machine, in this run:
#
#   haproxy    HAProxy 2.6 master-worker, SIGUSR2 reload with socket
#              passing (sockpair@ / expose-fd listeners)
#   nginx      nginx 1.22 binary upgrade: USR2, WINCH, QUIT
#   tableflip  a small Go server (bench/tableflip) using Debian's
#              cloudflare/tableflip, SIGHUP -> Upgrade()
#
# Each serves "ok" on 127.0.0.1 and is driven by baton-load --http with a
# new connection per request (the baton scenario uses STATUS on the
# namespace socket, also a new connection per request), WORKERS clients,
# WARM_S seconds of steady load, K reloads PAUSE_MS apart, COOL_S more.
# A reload is timed by baton-peerctl, which returns when the old
# generation is gone, as batonctl upgrade returns when the handoff
# committed.  Missing peers (scripts/deps.sh --peers) are skipped.
# SERVER_CPUS and LOAD_CPUS (taskset CPU lists; unset: no pinning) run
# every server tree and every load on CPUs of their own, alike for all.
#
#   scripts/bench-peers.sh BUILD_DIR
set -eu

bin=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
K=${K:-200}
WORKERS=${WORKERS:-2}
PAUSE_MS=${PAUSE_MS:-20}
WARM_S=${WARM_S:-3}
COOL_S=${COOL_S:-2}
OUT=${OUT:-$bin/bench}
PEERS=${PEERS:-"haproxy nginx tableflip"}
stat="python3 $here/bench/benchstat.py"
srv_pin="" load_pin=""
[ -n "${SERVER_CPUS:-}" ] && srv_pin="taskset -c $SERVER_CPUS"
[ -n "${LOAD_CPUS:-}" ] && load_pin="taskset -c $LOAD_CPUS"
export K WORKERS PAUSE_MS WARM_S COOL_S

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
dir=""
reap_pid=""
load_pid=""
pidfile=""

cleanup() {
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
	stop_server
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# RSS (KiB) and fds of the pid in the pid file and its children.
tree_sum() {
	p=$(cat "$pidfile" 2>/dev/null || echo 0)
	for q in $p $(ps -o pid= --ppid "$p" 2>/dev/null); do
		if [ "$1" = rss ]; then
			awk '/^VmRSS:/ { print $2 }' "/proc/$q/status" 2>/dev/null
		else
			ls "/proc/$q/fd" 2>/dev/null | wc -l
		fi
	done | awk '{ s += $1 } END { print s + 0 }'
}

wait_http() {
	i=0
	until "$bin/baton-load" --http "127.0.0.1:$1" --count 1 --seconds 2 \
	    >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 100 ] && return 1
		sleep 0.05
	done
}

stop_server() {
	if [ -n "$reap_pid" ]; then
		[ -n "$pidfile" ] && kill -TERM "$(cat "$pidfile" 2>/dev/null)" \
		    2>/dev/null || true
		wait "$reap_pid" 2>/dev/null || true
		reap_pid=""
	fi
	[ -n "$dir" ] && rm -rf "$dir"
	dir=""
}

# peer_scenario NAME PORT RELOAD-KIND -- SERVER-COMMAND...
peer_scenario() {
	name=$1 port=$2 kind=$3
	shift 4
	$srv_pin "$bin/baton-reap" --out "$OUT/$name.reap" \
	    --max-seconds 1800 -- "$@" >"$OUT/$name.log" 2>&1 &
	reap_pid=$!
	if ! wait_http "$port"; then
		echo "bench-peers: $name did not answer on 127.0.0.1:$port;" \
		    "log:" >&2
		cat "$OUT/$name.log" >&2
		stop_server
		return 1
	fi
	sleep 0.2
	rb=$(tree_sum rss) fb=$(tree_sum fds)
	$load_pin "$bin/baton-load" --http "127.0.0.1:$port" \
	    --workers "$WORKERS" --seconds 900 --trace "$OUT/$name.trace" --json \
	    >"$OUT/$name.load.json" &
	load_pid=$!
	sleep "$WARM_S"
	"$bin/baton-reload" --count "$K" --pause-ms "$PAUSE_MS" \
	    --max-seconds 600 --out "$OUT/$name.handoffs" -- \
	    "$bin/baton-peerctl" reload "$kind" --pidfile "$pidfile" \
	    $peer_extra >/dev/null || true
	sleep "$COOL_S"
	kill -TERM "$load_pid"
	wait "$load_pid" || true
	load_pid=""
	ra=$(tree_sum rss) fa=$(tree_sum fds)
	stop_server
	$stat --name "$name" --trace "$OUT/$name.trace" \
	    --handoffs "$OUT/$name.handoffs" --reap "$OUT/$name.reap" \
	    --floor "$OUT/floor.json" --set "rss_kb_before=$rb" \
	    --set "rss_kb_after=$ra" --set "fds_before=$fb" \
	    --set "fds_after=$fa" --out "$OUT/$name.json" | tee "$OUT/$name.txt"
	echo
	results="$results $OUT/$name.json"
}

# baton first, the same shape, in the same run (no scaling here).
SCALE="" NS_K=0 OUT="$OUT" "$here/scripts/bench.sh" "$bin" |
    sed -n '/^== summary/q;p'
results="$OUT/baton.json"
echo "== baton: requests by their start after a successor began serving" \
    "(bench/after_serving.py, latency in us)"
python3 "$here/bench/after_serving.py" "$OUT/baton.trace" "$OUT/baton.log" \
    20 | sed 's/^/  /'

for p in $PEERS; do
	dir=$(mktemp -d /tmp/baton-peer.XXXXXX)
	peer_extra=""
	case $p in
	haproxy)
		if ! command -v haproxy >/dev/null 2>&1; then
			echo "== haproxy: not installed, skipped"; continue
		fi
		sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|18081|g" \
		    "$here/bench/haproxy.cfg.in" >"$dir/haproxy.cfg"
		pidfile=$dir/haproxy.pid
		peer_extra="--master-socket $dir/haproxy-master.sock"
		echo "== haproxy: $(haproxy -v | head -1)"
		peer_scenario haproxy 18081 haproxy -- haproxy -W \
		    -f "$dir/haproxy.cfg" -S "$dir/haproxy-master.sock" ||
		    true
		;;
	nginx)
		if ! command -v nginx >/dev/null 2>&1 &&
		    ! [ -x /usr/sbin/nginx ]; then
			echo "== nginx: not installed, skipped"; continue
		fi
		mkdir -p "$dir/tmp" "$dir/logs"
		sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|18082|g" \
		    "$here/bench/nginx.conf.in" >"$dir/nginx.conf"
		pidfile=$dir/nginx.pid
		echo "== nginx: $(/usr/sbin/nginx -v 2>&1)"
		peer_scenario nginx 18082 nginx -- /usr/sbin/nginx -p "$dir" \
		    -e "$dir/nginx-error.log" -c "$dir/nginx.conf" || true
		;;
	tableflip)
		src=/usr/share/gocode/src/github.com/cloudflare/tableflip
		if ! command -v go >/dev/null 2>&1 || ! [ -d "$src" ]; then
			echo "== tableflip: golang-go or" \
			    "golang-github-cloudflare-tableflip-dev missing, skipped"
			continue
		fi
		# Offline: GOPATH mode against Debian's /usr/share/gocode.
		mkdir -p "$OUT/go-cache"
		if ! (cd "$here/bench/tableflip" && HOME="$OUT" \
		    GOCACHE="$OUT/go-cache" GO111MODULE=off \
		    GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off \
		    go build -o "$OUT/tableflip-server" .); then
			echo "== tableflip: build failed, skipped"; continue
		fi
		pidfile=$dir/tableflip.pid
		echo "== tableflip: $(go version | cut -d' ' -f3)," \
		    "cloudflare/tableflip $(dpkg-query -W -f='${Version}' \
		    golang-github-cloudflare-tableflip-dev 2>/dev/null)"
		peer_scenario tableflip 18083 tableflip -- \
		    "$OUT/tableflip-server" --listen 127.0.0.1:18083 \
		    --pid-file "$pidfile" || true
		;;
	*)
		echo "bench-peers: unknown peer '$p'" >&2
		;;
	esac
	rm -rf "$dir"
	dir=""
done

echo "== summary: baton and peers, K=$K reloads, $WORKERS clients, new" \
    "connection per request (docs/BENCH.md explains each column)"
# shellcheck disable=SC2086
$stat --table $results | tee "$OUT/summary-peers.md"
if command -v gnuplot >/dev/null 2>&1; then
	for r in $results; do
		n=$(basename "$r" .json)
		"$here/scripts/plot" "$OUT" "$n" && echo "plot: $OUT/$n.png"
	done
fi
