#!/usr/bin/env python3
"""Generate foreshock's demo data set: six hours of one HTTP service
("checkout", two instances) scraped every 30 seconds, written as InfluxDB line
protocol with second precision, in the shape of the usual Prometheus client
metrics, so that the example service model (models/http-service.yml, job
"checkout") binds to it:

    http_requests,job,instance,code total=N         -> http_requests_total (counter)
    http_request_duration_seconds,job,instance,le bucket=N
                                                  -> ..._bucket (histogram)
    process_cpu_seconds,job,instance total=S        -> process_cpu_seconds_total
    process_resident_memory_bytes,job,instance value=B
    up,job,instance value=1

The story: a quiet morning with a gentle traffic ramp and a benign one-minute
burst at 02:00; at 04:00 a traffic surge ramps the load to about 2.3x over 40
minutes, beyond the two instances' capacity (100 requests/s each): latency
bends upward as utilisation grows (queueing factor 1 + 0.3 u / (1 - u)), and
past capacity the excess is answered with 503. The surge ebbs from 04:45 and
is over by 05:00. foreshock should warn (OverloadRisk) while the load climbs,
before the latency SLO (500 ms p99) and the error budget burn.

Deterministic (fixed seed): `python3 scripts/gen-demo.py > data/demo/checkout.lp`.
"""
import math
import random

START = 1768456800  # 2026-01-15T06:00:00Z
STEP = 30
HOURS = 6
INSTANCES = ("checkout-1", "checkout-2")
CAP = 100.0  # requests/s per instance
LE = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MEDIAN = 0.045
SIGMA = 0.45

rng = random.Random(20260115)


def phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def surge(h):
    """Multiplier of the traffic at hour h of the demo."""
    if 2.0 <= h < 2.0 + 60 / 3600:
        return 1.3
    if h < 4.0:
        return 1.0
    if h < 4.0 + 40 / 60:
        return 1.0 + 1.3 * (h - 4.0) / (40 / 60)
    if h < 4.75:
        return 2.3
    if h < 5.0:
        return 2.3 - 1.3 * (h - 4.75) / 0.25
    return 1.0


out = []
cnt = {i: {"200": 0.0, "500": 0.0, "503": 0.0} for i in INSTANCES}
buckets = {i: [0.0] * (len(LE) + 1) for i in INSTANCES}
cpu = {i: 0.0 for i in INSTANCES}
mem = {i: 620e6 + 40e6 * k for k, i in enumerate(INSTANCES)}
for step in range(HOURS * 3600 // STEP):
    t = START + step * STEP
    h = step * STEP / 3600.0
    total = (90 + 25 * h / HOURS + 8 * math.sin(2 * math.pi * h / 1.5)) * surge(h)
    for k, inst in enumerate(INSTANCES):
        offered = total / len(INSTANCES) * (1 + rng.gauss(0, 0.03))
        served = min(offered, CAP)
        u = min(served / CAP, 0.97)
        n = served * STEP
        err = n * max(0.0, 0.001 + rng.gauss(0, 0.0004))
        cnt[inst]["500"] += round(err)
        cnt[inst]["200"] += round(n - err)
        cnt[inst]["503"] += round((offered - served) * STEP)
        med = MEDIAN * (1 + 0.3 * u / (1 - u)) * (1 + abs(rng.gauss(0, 0.04)))
        cum = [n * phi((math.log(le) - math.log(med)) / SIGMA) for le in LE] + [n]
        for b in range(len(cum)):
            buckets[inst][b] += round(cum[b])
        cpu[inst] += STEP * (0.05 + 0.008 * served + rng.gauss(0, 0.01))
        mem[inst] += rng.gauss(0, 2e6)
        lab = "job=checkout,instance=%s" % inst
        for code in ("200", "500", "503"):
            out.append("http_requests,%s,code=%s total=%di %d" % (lab, code, cnt[inst][code], t))
        for b, le in enumerate(list(LE) + ["+Inf"]):
            out.append("http_request_duration_seconds,%s,le=%s bucket=%di %d"
                       % (lab, le, buckets[inst][b], t))
        out.append("process_cpu_seconds,%s total=%.3f %d" % (lab, cpu[inst], t))
        out.append("process_resident_memory_bytes,%s value=%di %d" % (lab, mem[inst], t))
        out.append("up,%s value=1i %d" % (lab, t))
print("\n".join(out))
