#!/bin/sh
# Namespace figures of issue 13, in one short run (root only):
#   floor      baton-floor --ns: fork + unshare + pin + unpin, the bare cost
#   1 client   {net} create+release, a new connection each (baton-load --mix ns)
#   8 clients  the same with 8 clients
#   STATUS     p99 idle, then p99 while 8 clients create and release
#   kernel     the machine's share, nothing of baton in it: 8 bare
#              processes creating and releasing (baton-floor --ns-workers
#              8), their rate, and STATUS p99 while they run, at nice 0
#              and at the helpers' nice 10
#
#   scripts/bench-ns.sh BUILD_DIR [SECONDS]
#
# Extra supervisor arguments: BENCH_NS_SUP_ARGS (e.g. "--agent-arg
# --alloc-cgroup --agent-arg none").
set -eu

bin=$(cd "${1:-build}" && pwd)
secs=${2:-4}
root=""
sup=""

cleanup() {
	if [ -n "$sup" ]; then
		kill -TERM "$sup" 2>/dev/null || true
		wait "$sup" 2>/dev/null || true
	fi
	if [ -n "$root" ]; then
		umount -l "$root/run/pact/ns" 2>/dev/null || true
		rm -rf "$root"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "bench-ns: needs root" >&2; exit 77; }
echo "bench-ns: $(uname -r), $(nproc) cores, load average at start" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
fdir=$(mktemp -d /tmp/baton-bench-ns-floor.XXXXXX)
"$bin/baton-floor" --agent "$bin/baton-agent" --dir "$fdir" --ns \
    --runs 200 | sed 's/^/  /'
rm -rf "$fdir"

root=$(mktemp -d /tmp/baton-bench-ns.XXXXXX)
mkdir -p "$root/var/lib/pact/uenv"
# shellcheck disable=SC2086
"$bin/baton-supervisor" --root "$root" --agent "$bin/baton-agent" \
    ${BENCH_NS_SUP_ARGS:-} 2>"$root/sup.log" &
sup=$!
i=0
until "$bin/batonctl" --root "$root" status >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 200 ] && { cat "$root/sup.log" >&2; exit 1; }
	sleep 0.05
done
sock=$root/run/pact/handoff.sock
load() { "$bin/baton-load" --socket "$sock" --seconds "$secs" "$@"; }

echo "== STATUS idle"
load --workers 1 | sed 's/^/  /'
echo "== {net} create+release, 1 client"
load --workers 1 --mix ns --id-prefix one | sed 's/^/  /'
echo "== {net} create+release, 8 clients"
load --workers 8 --mix ns --id-prefix eight | sed 's/^/  /'
echo "== STATUS while 8 clients create and release"
# The background runs a second longer: it covers the whole measurement.
"$bin/baton-load" --socket "$sock" --seconds $((secs + 1)) --workers 8 \
    --mix ns --id-prefix bg >/dev/null &
bg=$!
sleep 0.5
load --workers 1 | sed 's/^/  /'
wait "$bg" || true
echo "== the kernel alone: 8 bare processes create and release {net}" \
    "(baton-floor --ns-workers 8, nothing of baton in their path)"
kdir=$(mktemp -d /tmp/baton-bench-ns-kernel.XXXXXX)
"$bin/baton-floor" --ns-workers 8 --seconds "$secs" --dir "$kdir" |
    sed 's/^/  /'
echo "== STATUS while 8 bare processes create and release, nice 0"
"$bin/baton-floor" --ns-workers 8 --seconds $((secs + 1)) --dir "$kdir" \
    >/dev/null &
bg=$!
sleep 0.5
load --workers 1 | sed 's/^/  /'
wait "$bg" || true
echo "== STATUS while 8 bare processes create and release, nice 10" \
    "(as baton's helpers)"
nice -n 10 "$bin/baton-floor" --ns-workers 8 --seconds $((secs + 1)) \
    --dir "$kdir" >/dev/null &
bg=$!
sleep 0.5
load --workers 1 | sed 's/^/  /'
wait "$bg" || true
rmdir "$kdir"
echo "== where creation time goes (ns.create, us; undo_us: ns.release), p50 / p90 over the run"
python3 - "$root/sup.log" <<'PY'
import re, sys
keys = ("us wait_us fork_us start_us setup_us dir_us cgroup_us make_us "
        "pin_us report_us write_us").split()
v = {k: [] for k in keys}
v["undo_us"] = []
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"ns.release.*\bundo_us=(\d+)", line)
    if m:
        v["undo_us"].append(int(m.group(1)))
    if "ns.create" not in line:
        continue
    for k in keys:
        m = re.search(r"\b%s=(\d+)" % k, line)
        if m:
            v[k].append(int(m.group(1)))
for k in keys + ["undo_us"]:
    x = sorted(v[k])
    if x:
        print("  %-10s p50 %6d  p90 %6d  (n=%d)" % (k, x[len(x) // 2],
              x[int(len(x) * 0.9)], len(x)))
PY
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
