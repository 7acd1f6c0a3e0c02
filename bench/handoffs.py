#!/usr/bin/env python3
"""One row of handoff figures from baton-reload's --out file.

    handoffs.py FILE

FILE has one line per upgrade: start_us end_us rc json (batonctl upgrade
--json).  Prints: p50, p99 and max duration in ms, the p50 of each phase
(spawn drain seal begin commit) and how many committed.
"""
import json
import sys


def pct(v, q):
    return v[int(q * (len(v) - 1) + 0.5)] if v else float('nan')


rows = [l.rstrip('\n').split(' ', 3) for l in open(sys.argv[1])]
d = sorted((int(r[1]) - int(r[0])) / 1000.0 for r in rows)
js = [json.loads(r[3]) for r in rows if len(r) == 4 and r[3].startswith('{')]
ph = ' '.join('%d' % pct(sorted(j[k + '_ms'] for j in js), .5)
              for k in ('spawn', 'drain', 'seal', 'begin', 'commit'))
ok = sum(1 for j in js if j.get('committed'))
print('%-8.1f %-8.1f %-8.1f %s  (%d/%d committed)' % (
    pct(d, .5), pct(d, .99), d[-1] if d else float('nan'), ph, ok, len(rows)))
