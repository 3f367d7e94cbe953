#!/usr/bin/env python3
"""Generate foreshock's demo data set: six hours of telemetry of one HTTP
service ("checkout") at 10-second resolution, in InfluxDB line protocol with
second precision, with one incident: at 04:00 the p99 latency bends upward,
errors follow at 04:05, and both recover at 04:40. A brief benign traffic
burst at 02:00 is included too.

Deterministic (fixed seed): `python3 scripts/gen-demo.py > data/demo/checkout.lp`.
"""
import math
import random

START = 1768456800  # 2026-01-15T06:00:00Z
STEP = 10
HOURS = 6

rng = random.Random(20260115)
out = []
for i in range(HOURS * 3600 // STEP):
    t = START + i * STEP
    h = i * STEP / 3600.0
    # traffic: morning ramp with a gentle wave and noise
    rate = 800 + 250 * h / HOURS + 60 * math.sin(2 * math.pi * h / 1.5) + rng.gauss(0, 15)
    if 2.0 <= h < 2.0 + 60 / 3600:
        rate *= 1.3  # benign one-minute burst
    p99 = 0.120 + 0.00002 * (rate - 800) + abs(rng.gauss(0, 0.006))
    err = max(0.0, 0.002 + rng.gauss(0, 0.0005))
    cpu = 0.35 + 0.25 * (rate - 800) / 400 + rng.gauss(0, 0.01)
    if 4.0 <= h < 4 + 40 / 60:
        k = min(1.0, (h - 4.0) * 60 / 5)  # 5-minute bend
        p99 += 0.33 * k
        cpu += 0.25 * k
        if h >= 4 + 5 / 60:
            err += 0.04
    out.append(f"http_requests,service=checkout rate={rate:.2f} {t}")
    out.append(f"http_latency,service=checkout p99={p99:.5f} {t}")
    out.append(f"http_errors,service=checkout ratio={err:.5f} {t}")
    out.append(f"cpu,host=checkout-1 usage={cpu:.4f} {t}")
print("\n".join(out))
