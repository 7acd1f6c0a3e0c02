#!/bin/sh
# leakcheck.sh [RELEASE_BUILD] [SAN_BUILD] [UPGRADES]: N upgrades (default
# 100) with a namespace request and release around each, then a stop, and
# report the bytes "definitely lost" by every process involved.
#
# - Every agent is the release build under valgrind --leak-check=full
#   (a wrapper execs valgrind, so the pid the supervisor spawned is the
#   agent's and HELLO's pid check holds).
# - The supervisor cannot run under valgrind 3.19, which lacks
#   pidfd_open (the supervisor watches agents through pidfds), so it is
#   the ASan build with LeakSanitizer on; LSan reports at exit.
# Both run with --no-seccomp: valgrind's and LSan's own syscalls (ptrace)
# would go through the filter, and memory is what is measured here.
# Exit 0 when nothing was definitely lost, 1 otherwise, 77 when it cannot
# run (not root, no valgrind).
set -u
B=$(cd "${1:-build}" && pwd)
S=$(cd "${2:-build-san-cp}" && pwd)
N=${3:-100}
command -v valgrind >/dev/null || { echo "leakcheck: no valgrind"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "leakcheck: needs root"; exit 77; }
ROOT=$(mktemp -d /tmp/baton-leak.XXXXXX)
LOGS=$ROOT/vg
mkdir -p "$LOGS"
cat > "$ROOT/agent-vg" <<EOS
#!/bin/sh
exec valgrind --leak-check=full --show-leak-kinds=definite \\
    --log-file=$LOGS/agent.%p $B/baton-agent --no-seccomp "\$@"
EOS
chmod 755 "$ROOT/agent-vg"
ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=log_path=$LOGS/sup-lsan \
    "$S/baton-supervisor" --root "$ROOT" --agent "$ROOT/agent-vg" \
    --no-seccomp --deadline-ms 120000 2>"$ROOT/supervisor.log" &
SUP=$!
C="$B/batonctl --root $ROOT"
i=0
until $C status 2>/dev/null | grep -q 'state *running'; do
	i=$((i + 1))
	[ $i -lt 600 ] || { echo "leakcheck: no agent"; kill $SUP; exit 1; }
	sleep 0.1
done
ok=0
i=1
while [ "$i" -le "$N" ]; do
	$C ns create "leak-$i" --net >/dev/null 2>&1 || true
	if $C upgrade >/dev/null 2>&1; then ok=$((ok + 1)); fi
	$C ns release "leak-$i" >/dev/null 2>&1 || true
	i=$((i + 1))
done
kill -TERM $SUP
wait $SUP
sup_rc=$?
sleep 1
total=0
agents=0
for f in "$LOGS"/agent.*; do
	[ -e "$f" ] || continue
	agents=$((agents + 1))
	b=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" |
	    tr -d , | tail -1)
	b=${b:-0}
	total=$((total + b))
	[ "$b" = 0 ] || echo "leakcheck: agent lost $b bytes ($f)"
done
sup=0
for f in "$LOGS"/sup-lsan*; do
	[ -e "$f" ] || continue
	b=$(sed -n 's/^SUMMARY: AddressSanitizer: \([0-9]*\) byte.*/\1/p' "$f")
	sup=$((sup + ${b:-0}))
	echo "leakcheck: supervisor report $f"
done
echo "leakcheck: $ok/$N upgrades committed; agents under valgrind: $agents," \
    "definitely lost $total bytes; supervisor (LSan, exit $sup_rc): leaked" \
    "$sup bytes"
umount -R "$ROOT/run/pact/ns" 2>/dev/null || true
[ -n "${KEEP:-}" ] || rm -rf "$ROOT"
[ "$total" = 0 ] && [ "$sup" = 0 ] && [ "$ok" = "$N" ]
