#!/usr/bin/env python3
"""benchstat: turn one benchmark scenario's raw records into figures.

Inputs (all written by the same run, all on CLOCK_MONOTONIC microseconds):
  --trace FILE     baton-load --trace: "start_us end_us ok outcome" per request
  --handoffs FILE  baton-reload --out: "start_us end_us status stdout-line"
                   per reload; the stdout line is batonctl's JSON for baton
  --log FILE       optional baton supervisor log (agents log there too): the
                   accept gap from the incumbent's last accept (handoff.prepare,
                   or handoff.sealed when it accepts until the seal) to
                   agent.serving (the successor accepts), per handoff_id
  --reap FILE      optional baton-reap output: CPU of the server tree
  --floor FILE     optional baton-floor --json output
  --set KEY=VALUE  extra figures (RSS, fd counts) copied into the result

A request is "during" a handoff when [start, end] overlaps a reload window
[start, end] and "outside" otherwise.  The trace's accept-gap estimate for
one handoff is the longest interval, among those that overlap its window,
between two consecutive successful request completions (all workers
together): an upper bound on the time nobody accepted, since it also holds
one ordinary request latency.  The same figure over the steady load before
the first handoff is printed as the baseline.

Writes one flat JSON object (--out) and prints a readable summary.
  benchstat.py --table A.json B.json ...   prints the comparison tables.
"""
import argparse
import bisect
import json
import re
import statistics
import sys
from datetime import datetime


def pct(v, p):
    """Nearest-rank percentile of a sorted list (same rule as baton-load)."""
    if not v:
        return None
    return v[int(p * (len(v) - 1) + 0.5)]


def read_trace(path):
    reqs = []
    with open(path) as f:
        for line in f:
            if line.startswith('#'):
                continue
            p = line.split()
            if len(p) >= 3:
                reqs.append((int(p[0]), int(p[1]), p[2] == '1',
                             p[3] if len(p) > 3 else ''))
    return reqs


def read_handoffs(path):
    out = []
    with open(path) as f:
        for line in f:
            p = line.rstrip('\n').split(' ', 3)
            if len(p) < 3:
                continue
            js = None
            if len(p) == 4 and p[3].startswith('{'):
                try:
                    js = json.loads(p[3])
                except ValueError:
                    js = None
            out.append((int(p[0]), int(p[1]), int(p[2]), js))
    return out


TS = re.compile(r'^ts=(\S+) .*event=(handoff\.prepare|handoff\.sealed|'
                r'agent\.serving) .*handoff_id=([0-9a-f-]+)')
US = re.compile(r' accept_(stop|start)_us=(\d+)')


def log_gaps(path):
    """ms from the incumbent's last accept to the successor's first, per
    handoff_id: accept_stop_us (handoff.prepare, or handoff.sealed when the
    incumbent accepts until the seal and its prepare logs 0; the first
    non-zero one counts) to
    agent.serving's accept_start_us, both CLOCK_MONOTONIC.  Logs without
    those fields fall back to the millisecond timestamps of
    handoff.prepare and agent.serving."""
    stop_us, stop_ts, start_us, start_ts = {}, {}, {}, {}
    with open(path, errors='replace') as f:
        for line in f:
            m = TS.match(line)
            if not m:
                continue
            ev, hid = m.group(2), m.group(3)
            u = US.search(line)
            t = datetime.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S.%fZ')
            ts = t.timestamp() * 1000.0
            if ev == 'agent.serving':
                start_ts[hid] = ts
                if u:
                    start_us[hid] = int(u.group(2)) / 1000.0
            elif u and int(u.group(2)):     # 0: still accepting
                stop_us.setdefault(hid, int(u.group(2)) / 1000.0)
            elif ev == 'handoff.prepare':
                stop_ts[hid] = ts
    gaps = []
    for h in start_ts:
        if h in start_us and h in stop_us:
            gaps.append(start_us[h] - stop_us[h])
        elif h in stop_ts:
            gaps.append(start_ts[h] - stop_ts[h])
    return sorted(gaps)


def ms(us):
    return None if us is None else us / 1000.0


def summarize(a):
    reqs = read_trace(a.trace)
    hos = read_handoffs(a.handoffs) if a.handoffs else []
    r = {'name': a.name}
    if not reqs:
        sys.exit('benchstat: %s: no requests traced' % a.trace)
    t_first = min(q[0] for q in reqs)
    t_last = max(q[1] for q in reqs)
    span = (t_last - t_first) / 1e6
    wins = sorted((h[0], h[1]) for h in hos)
    starts = [w[0] for w in wins]

    def during(q):
        # Windows run one after another, so ends grow with starts: the
        # last window starting before the request ends is the only one
        # that can overlap it.
        i = bisect.bisect_left(starts, q[1])
        return i > 0 and wins[i - 1][1] > q[0]

    lat_in, lat_out = [], []
    fail = {'refused': 0, 'reset': 0, 'timeout': 0, 'error': 0}
    fail_during = 0
    for q in reqs:
        d = during(q) if wins else False
        if q[2]:
            (lat_in if d else lat_out).append(q[1] - q[0])
        else:
            fail[q[3] if q[3] in fail else 'error'] += 1
            fail_during += d
    lat_in.sort()
    lat_out.sort()
    ok = len(lat_in) + len(lat_out)
    r.update({
        'seconds': round(span, 3),
        'requests_ok': ok,
        'requests_failed': sum(fail.values()),
        'failed_during_handoff': fail_during,
        'refused': fail['refused'], 'reset': fail['reset'],
        'timeout': fail['timeout'], 'other_errors': fail['error'],
        'rps': round(ok / span, 1) if span > 0 else 0,
        'requests_during': len(lat_in), 'requests_outside': len(lat_out),
    })
    for tag, v in (('out', lat_out), ('in', lat_in)):
        for k, p in (('p50', .5), ('p99', .99), ('p999', .999),
                     ('max', 1.0)):
            x = pct(v, p)
            r['lat_%s_%s_ms' % (tag, k)] = None if x is None else \
                round(ms(x), 3)

    # The issue-13 windows: the steady load before the first reload, and
    # the whole stretch of back-to-back reloads, compared as a client sees
    # them (not only the requests that overlap a reload).
    if wins:
        w0, w1 = wins[0][0], wins[-1][1]
        st = sorted(q[1] - q[0] for q in reqs if q[2] and q[1] < w0)
        up = sorted(q[1] - q[0] for q in reqs if q[2] and q[0] >= w0 and
                    q[1] <= w1)
        for tag, v in (('steady', st), ('upgrading', up)):
            r['win_%s_n' % tag] = len(v)
            for k, p in (('p99', .99), ('p999', .999), ('max', 1.0)):
                x = pct(v, p)
                r['win_%s_%s_ms' % (tag, k)] = None if x is None else \
                    round(ms(x), 3)
        for k in ('p99', 'p999'):
            a0, a1 = r['win_steady_%s_ms' % k], r['win_upgrading_%s_ms' % k]
            r['win_%s_ratio' % k] = round(a1 / a0, 2) if a0 and a1 else None

    # Accept gap from the trace.
    comp = sorted(q[1] for q in reqs if q[2])
    gaps = []
    for a0, a1 in wins:
        i = max(bisect.bisect_left(comp, a0) - 1, 0)
        j = min(bisect.bisect_right(comp, a1), len(comp) - 1)
        g = max((comp[k + 1] - comp[k] for k in range(i, j)), default=0)
        gaps.append(g)
    gaps.sort()
    base = [comp[k + 1] - comp[k] for k in range(len(comp) - 1)
            if not wins or comp[k + 1] < wins[0][0]]
    r['gap_trace_p50_ms'] = round(ms(pct(gaps, .5)), 3) if gaps else None
    r['gap_trace_p99_ms'] = round(ms(pct(gaps, .99)), 3) if gaps else None
    r['gap_trace_max_ms'] = round(ms(gaps[-1]), 3) if gaps else None
    r['gap_baseline_max_ms'] = round(ms(max(base)), 3) if base else None
    if a.log:
        lg = log_gaps(a.log)
        r['gap_log_n'] = len(lg)
        r['gap_log_p50_ms'] = pct(lg, .5)
        r['gap_log_p99_ms'] = pct(lg, .99)
        r['gap_log_max_ms'] = lg[-1] if lg else None

    # Handoff (reload) durations, measured around the reload command.
    dur = sorted(h[1] - h[0] for h in hos)
    r['handoffs'] = len(hos)
    r['handoffs_ok'] = sum(1 for h in hos if h[2] == 0)
    r['handoff_p50_ms'] = round(ms(pct(dur, .5)), 2) if dur else None
    r['handoff_p99_ms'] = round(ms(pct(dur, .99)), 2) if dur else None
    r['handoff_max_ms'] = round(ms(dur[-1]), 2) if dur else None
    r['handoff_mean_ms'] = round(ms(statistics.mean(dur)), 2) if dur else None
    # Phases as the supervisor measured them (batonctl upgrade --json).
    js = [h[3] for h in hos if h[3]]
    if js:
        r['committed'] = sum(1 for j in js if j.get('committed'))
        for ph in ('hello', 'spawn', 'drain', 'seal', 'begin', 'commit',
                   'total'):
            v = sorted(j[ph + '_ms'] for j in js if ph + '_ms' in j)
            if v:
                r['phase_%s_p50_ms' % ph] = pct(v, .5)
                r['phase_%s_p99_ms' % ph] = pct(v, .99)
                r['phase_%s_max_ms' % ph] = v[-1]
    if a.reap:
        with open(a.reap) as f:
            for line in f:
                k, _, v = line.partition(' ')
                if k in ('cpu_s', 'cpu_user_s', 'cpu_sys_s'):
                    r['server_' + k] = float(v)
        if ok:
            r['server_cpu_us_per_req'] = round(
                r['server_cpu_s'] * 1e6 / ok, 1)
    if a.floor:
        with open(a.floor) as f:
            fl = json.load(f)
        r.update({'floor_' + k: v for k, v in fl.items()})
        floor_us = fl['exec_p50_us'] + fl['journal_p50_us'] + \
            6 * fl['rtt_p50_us']
        r['floor_us'] = floor_us
        if dur:
            r['handoff_p50_x_floor'] = round(pct(dur, .5) / floor_us, 1)
        if js and 'phase_total_p50_ms' in r:
            r['phase_total_p50_x_floor'] = round(
                r['phase_total_p50_ms'] * 1000.0 / floor_us, 1)
    for kv in a.set or []:
        k, _, v = kv.partition('=')
        try:
            r[k] = float(v) if '.' in v else int(v)
        except ValueError:
            r[k] = v
    return r


def f3(x, nd=2):
    if x is None:
        return '-'
    if isinstance(x, float):
        return ('%.' + str(nd) + 'f') % x
    return str(x)


def readable(r):
    print('== %s' % r['name'])
    print('requests   %d ok in %.1f s = %.0f req/s; failed %d '
          '(refused %d, reset %d, timeout %d, other %d; %d during '
          'handoffs)' % (r['requests_ok'], r['seconds'], r['rps'],
                         r['requests_failed'], r['refused'], r['reset'],
                         r['timeout'], r['other_errors'],
                         r['failed_during_handoff']))
    for tag, lab in (('out', 'outside'), ('in', 'during')):
        print('latency    %-8s p50 %s  p99 %s  p99.9 %s  max %s ms  (%d req)'
              % (lab, f3(r['lat_%s_p50_ms' % tag], 3),
                 f3(r['lat_%s_p99_ms' % tag], 3),
                 f3(r['lat_%s_p999_ms' % tag], 3),
                 f3(r['lat_%s_max_ms' % tag], 3),
                 r['requests_during' if tag == 'in' else 'requests_outside']))
    if r['handoffs']:
        print('handoffs   %d run, %d ok; duration p50 %s  p99 %s  max %s ms'
              % (r['handoffs'], r['handoffs_ok'], f3(r['handoff_p50_ms']),
                 f3(r['handoff_p99_ms']), f3(r['handoff_max_ms'])))
        if r.get('win_upgrading_n'):
            print('windows    steady (%d req) p99 %s p99.9 %s max %s ms; '
                  'upgrading (%d req) p99 %s (%sx) p99.9 %s (%sx) max %s ms'
                  % (r['win_steady_n'], f3(r['win_steady_p99_ms'], 3),
                     f3(r['win_steady_p999_ms'], 3),
                     f3(r['win_steady_max_ms'], 3), r['win_upgrading_n'],
                     f3(r['win_upgrading_p99_ms'], 3),
                     f3(r['win_p99_ratio']),
                     f3(r['win_upgrading_p999_ms'], 3),
                     f3(r['win_p999_ratio']),
                     f3(r['win_upgrading_max_ms'], 3)))
        print('accept gap (trace) p50 %s  p99 %s  max %s ms; steady-load '
              'baseline max %s ms' % (f3(r['gap_trace_p50_ms'], 3),
                                      f3(r['gap_trace_p99_ms'], 3),
                                      f3(r['gap_trace_max_ms'], 3),
                                      f3(r['gap_baseline_max_ms'], 3)))
    if 'gap_log_n' in r:
        print('accept gap (log, last accept->first accept) p50 %s  p99 %s  '
              'max %s ms (%d handoffs)' % (f3(r['gap_log_p50_ms'], 3),
                                           f3(r['gap_log_p99_ms'], 3),
                                           f3(r['gap_log_max_ms'], 3),
                                           r['gap_log_n']))
    if 'phase_total_p50_ms' in r:
        print('phases ms  ' + '  '.join(
            '%s %s/%s/%s' % (ph, f3(r.get('phase_%s_p50_ms' % ph)),
                             f3(r.get('phase_%s_p99_ms' % ph)),
                             f3(r.get('phase_%s_max_ms' % ph)))
            for ph in ('hello', 'spawn', 'drain', 'seal', 'begin', 'commit',
                       'total')) + '  (p50/p99/max)')
    if 'server_cpu_s' in r:
        print('cpu        server tree %.2f s (user %.2f, sys %.2f), '
              '%s us per request' % (r['server_cpu_s'], r['server_cpu_user_s'],
                                     r['server_cpu_sys_s'],
                                     f3(r.get('server_cpu_us_per_req'), 1)))
    res = [k for k in sorted(r) if k.startswith(('rss_', 'fds_'))]
    if res:
        print('resources  ' + '  '.join('%s %s' % (k, r[k]) for k in res))
    if 'floor_us' in r:
        print('floor      exec %d us + journal write %d us + 6 x rtt %d us '
              '= %d us; handoff p50 = %s x floor' % (
                  r['floor_exec_p50_us'], r['floor_journal_p50_us'],
                  r['floor_rtt_p50_us'], r['floor_us'],
                  f3(r.get('handoff_p50_x_floor'), 1)))


def table(files):
    rows = []
    for p in files:
        with open(p) as f:
            rows.append(json.load(f))
    print('| system | K | reloads ok | req/s | failed | refused | reset '
          '| p50 out | p99 out | p99.9 out | max out | p50 during '
          '| p99 during | p99.9 during | max during |')
    print('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
    for r in rows:
        print('| %s | %d | %d | %.0f | %d | %d | %d | %s | %s | %s | %s '
              '| %s | %s | %s | %s |' % (
                  r['name'], r['handoffs'], r['handoffs_ok'], r['rps'],
                  r['requests_failed'], r['refused'], r['reset'],
                  *(f3(r['lat_%s_%s_ms' % (t, k)], 3)
                    for t in ('out', 'in')
                    for k in ('p50', 'p99', 'p999', 'max'))))
    print()
    print('| system | p99 steady | p99 upgrading | ratio | p99.9 steady '
          '| p99.9 upgrading | ratio | max upgrading |')
    print('|---|--:|--:|--:|--:|--:|--:|--:|')
    for r in rows:
        print('| %s | %s | %s | %s | %s | %s | %s | %s |' % (
            r['name'], f3(r.get('win_steady_p99_ms'), 3),
            f3(r.get('win_upgrading_p99_ms'), 3), f3(r.get('win_p99_ratio')),
            f3(r.get('win_steady_p999_ms'), 3),
            f3(r.get('win_upgrading_p999_ms'), 3),
            f3(r.get('win_p999_ratio')), f3(r.get('win_upgrading_max_ms'), 3)))
    print()
    print('| system | reload p50 ms | p99 ms | max ms | p50 x floor '
          '| accept gap p50 ms '
          '| gap max ms | baseline gap ms | server CPU s | CPU us/req '
          '| RSS before→after KiB | fds before→after |')
    print('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
    for r in rows:
        print('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s→%s '
              '| %s→%s |'
              % (r['name'], f3(r['handoff_p50_ms']), f3(r['handoff_p99_ms']),
                 f3(r['handoff_max_ms']), f3(r.get('handoff_p50_x_floor'), 1), f3(r['gap_trace_p50_ms'], 3),
                 f3(r['gap_trace_max_ms'], 3),
                 f3(r['gap_baseline_max_ms'], 3),
                 f3(r.get('server_cpu_s')),
                 f3(r.get('server_cpu_us_per_req'), 1),
                 r.get('rss_kb_before', '-'), r.get('rss_kb_after', '-'),
                 r.get('fds_before', '-'), r.get('fds_after', '-')))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--name', default='scenario')
    ap.add_argument('--trace')
    ap.add_argument('--handoffs')
    ap.add_argument('--log')
    ap.add_argument('--reap')
    ap.add_argument('--floor')
    ap.add_argument('--set', action='append')
    ap.add_argument('--out')
    ap.add_argument('--table', nargs='+')
    a = ap.parse_args()
    if a.table:
        table(a.table)
        return
    if not a.trace:
        ap.error('--trace is required')
    r = summarize(a)
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(r, f, indent=1, sort_keys=True)
            f.write('\n')
    readable(r)


if __name__ == '__main__':
    main()
