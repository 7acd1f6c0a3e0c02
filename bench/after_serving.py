#!/usr/bin/env python3
"""Requests by how long after a successor started serving they began.

    after_serving.py TRACE LOG [BIN_MS]

TRACE is baton-load's --trace file (start_us end_us ... per request,
CLOCK_MONOTONIC); LOG is the supervisor's log, whose agent.serving lines
carry accept_start_us on the same clock.  Each request between the second
and the last handoff is put in the bin of its start after the last
accept_start_us before it.  Prints, per bin: the count and the p50, p90,
p99 and p99.9 latency in us (benchstat's trace reader and percentile
rule).  Shows what the requests just after a handoff see against those a
while later (docs/BENCH.md, ninth session).
"""
import bisect
import re
import sys

from benchstat import pct, read_trace

trace, log = sys.argv[1], sys.argv[2]
width = int(sys.argv[3]) if len(sys.argv) > 3 else 5
pat = re.compile(r"event=agent\.serving .*\baccept_start_us=(\d+)")
starts = sorted(int(m.group(1)) for m in
                (pat.search(l) for l in open(log, errors='replace'))
                if m and int(m.group(1)) > 0)
if len(starts) < 3:
    sys.exit('after_serving: fewer than 3 handoffs in %s' % log)
bins = {}
for s, e, _, _ in read_trace(trace):
    if s < starts[1] or s >= starts[-1]:
        continue
    last = starts[bisect.bisect_right(starts, s) - 1]
    bins.setdefault((s - last) // 1000 // width * width, []).append(e - s)
print('%-18s %8s %6s %6s %6s %7s' % ('ms after serving', 'requests', 'p50',
                                     'p90', 'p99', 'p99.9'))
for k in sorted(bins):
    v = sorted(bins[k])
    print('%4d-%-4d          %8d %6d %6d %6d %7d' % (
        k, k + width, len(v), pct(v, .5), pct(v, .9), pct(v, .99),
        pct(v, .999)))
