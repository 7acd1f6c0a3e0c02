#!/bin/sh
# remote.sh LOG DELAY BIN BASE HOST COMMAND...
#
# The --remote-cmd of it_rollout's simulated fleet: reach "host" HOST (a
# network namespace with its own root BASE/HOST) the way `ssh HOST
# batonctl` reaches a real one, and append "start_ns end_ns host command"
# to LOG so the test can measure how many hosts ran at once.  DELAY (in
# seconds, 0 for none) is slept first, standing for a connection set-up
# round trip; it is the only modelled part, and it_rollout reports runs
# with and without it.
set -u
log=$1 delay=$2 bin=$3 base=$4 host=$5
shift 5
start=$(date +%s%N)
[ "$delay" = 0 ] || sleep "$delay"
ip netns exec "$host" "$bin/batonctl" --root "$base/$host" "$@"
rc=$?
echo "$start $(date +%s%N) $host $1" >> "$log"
exit $rc
