#!/usr/bin/env python3
"""gen_incidents.py — deterministic generator of service telemetry with
labelled incidents, for foreshock's outage-prediction proof
(tests/integration/test_outage.py, docs/outage-prediction.md).

Each scenario is one service (a Prometheus `job`) with three instances
(a, b, c) scraped every 30 s, in the Prometheus text format with explicit
millisecond timestamps, ordered by time (POST it to
/api/v1/import/prometheus):

    http_requests_total{job,instance,code}              counter (code 200, 404, 500/503)
    http_request_duration_seconds_bucket{job,instance,le}  histogram buckets
    process_cpu_seconds_total{job,instance}             counter
    process_resident_memory_bytes{job,instance}         gauge
    up{job,instance}                                    gauge (0 while an instance is down)

Traffic follows a daily cycle (peak mid-afternoon, quieter weekends) with
Poisson noise; latency is log-normal per request with a queueing factor that
grows with the load per instance (1 + 0.3 u / (1 - u)); above capacity
(100 requests/s per instance) the excess is answered with 503 after a long
wait. Quiet stretches carry benign events: bursts (1.5-2x traffic for 1-3
minutes, never beyond 70% of capacity), night "blips" (a client's 2-4 failing
retries on one instance), marketing campaigns (+35% for 30-60 minutes), GC
pauses (one instance 2.5x slower for 1-2 minutes) and rolling restarts at
night (each instance down for a minute in turn, counters reset).

Scenarios (incidents on the last day, after four days to learn from):
    surge         traffic ramps to 2.6x over 50 minutes from 10:30
    leak          instance b leaks memory from 03:00; OOM-killed at its limit
    deploy        a bad build: canary on instance a at 13:00 (4% errors), all
                  instances at 13:15, rolled back at 13:45
    slowdown      a dependency slows down from 14:00: latency x4.5 over 45 min
    instanceloss  instance c dies at 10:30; the other two carry its load
    quiet         seven days without incident, with benign bursts

An outage is any 30-s step in which the noise-free p99 latency exceeds the
500 ms SLO or more than 2% of requests fail; its onset is the first such step
of the incident. The precursor is the phase between the incident's start
and the onset (none for an outage that starts at once).

Usage: gen_incidents.py [--out DIR] [--scenario NAME ...] [--gzip] [--seed N]
Writes DIR/NAME.prom (or .prom.gz with --gzip) and DIR/incidents.json. The
output is a pure function of the arguments (random.Random per scenario,
fixed seeds; --seed N shifts every seed, for a sensitivity check on other
noise and bursts), so two runs give byte-identical files.
"""
import argparse
import gzip
import json
import math
import os
import random
import sys

STEP_S = 30
T0 = 1793577600  # 2026-11-02T00:00:00Z, a Monday
INSTANCES = ("a", "b", "c")
CAP_PER_INSTANCE = 100.0      # requests/s an instance serves
LE = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 10.0)
LE_TXT = ("0.025", "0.05", "0.1", "0.15", "0.2", "0.3", "0.4", "0.5", "0.75", "1", "2.5", "10",
          "+Inf")
SIGMA = 0.45                  # log-normal spread of request latency
MEDIAN0 = 0.040               # median latency at no load (s)
Z99 = 2.3263478740408408
SLO_S = 0.5
OUTAGE_ERR = 0.02
MEM_LIMIT = 2 * 1024 ** 3
MEM_BASE = 600 * 1024 ** 2

SCENARIOS = {
    # name: (days, seed, peak req/s of the whole service)
    "surge": (4.75, 11, 180.0),
    "leak": (4.75, 12, 180.0),
    "deploy": (4.75, 13, 180.0),
    "slowdown": (4.75, 14, 180.0),
    "instanceloss": (4.75, 15, 200.0),
    "quiet": (7.0, 16, 180.0),
}


def daily(t):
    """Daily traffic shape in [0.3, 1]: low at 04:00, peak at 15:00; weekends 0.8x."""
    day = (t - T0) / 86400.0
    h = (day % 1.0) * 24
    x = 0.5 - 0.5 * math.cos(2 * math.pi * (h - 4) / 24)        # 0 at 04:00, 1 at 16:00
    x = x ** 1.3
    wd = int(day) % 7
    wk = 0.8 if wd >= 5 else 1.0
    return (0.3 + 0.7 * x) * wk


def ncdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))


def lat_factor(u):
    """Queueing: latency multiplier at utilisation u (per instance)."""
    u = min(u, 0.985)
    return 1 + 0.3 * u / (1 - u)


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam < 30:
        l, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= l:
                return k
            k += 1
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


def binom(rng, n, p):
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if n < 40:
        return sum(1 for _ in range(n) if rng.random() < p)
    m = n * p
    if m < 20:
        return min(n, poisson(rng, m))
    return min(n, max(0, int(round(rng.gauss(m, math.sqrt(m * (1 - p)))))))


class Scenario:
    """State of one service's generator."""

    def __init__(self, name, seed_shift=0):
        self.name = name
        self.days, seed, self.peak = SCENARIOS[name]
        self.seed = seed + 1000003 * seed_shift
        self.rng = random.Random(self.seed)
        self.end = T0 + int(self.days * 86400)
        self.inc_day = T0 + 4 * 86400
        self.counts = {}          # (instance, code) -> cumulative requests
        self.buckets = {i: [0] * len(LE_TXT) for i in INSTANCES}
        self.cpu = {i: 0.0 for i in INSTANCES}
        self.mem_extra = {i: 0.0 for i in INSTANCES}
        self.down_until = {i: 0 for i in INSTANCES}
        self.bursts = []          # (start, end, factor)
        self.blips = []           # night error blips: time
        self.onset = None
        self.precursor = None
        self.truth_end = None
        self.kind = None
        self._plan()

    def _plan(self):
        pr = random.Random(1000 + self.seed)
        t = T0 + 6 * 3600
        while t < self.end:
            # a benign burst every 4-10 hours: 1.5-2x for 1-3 minutes
            t += pr.randint(4 * 3600, 10 * 3600)
            dur = pr.randint(2, 6) * STEP_S
            self.bursts.append((t, t + dur, pr.uniform(1.5, 2.0)))
        t = T0 + 3600
        while t < self.end:
            t += pr.randint(12 * 3600, 30 * 3600)
            self.blips.append(t - (t % 86400) + pr.randint(1, 4) * 3600)  # at night
        d = self.inc_day
        n = self.name
        if n == "surge":
            self.kind, self.precursor, self.truth_end = "traffic surge", d + 10.5 * 3600, d + 12.5 * 3600
        elif n == "leak":
            self.kind, self.precursor, self.truth_end = "memory leak", d + 3 * 3600, d + 11.25 * 3600
        elif n == "deploy":
            self.kind, self.precursor, self.truth_end = "bad deploy", d + 13 * 3600, d + 14 * 3600
        elif n == "slowdown":
            self.kind, self.precursor, self.truth_end = "dependency slowdown", d + 14 * 3600, d + 15.5 * 3600
        elif n == "instanceloss":
            self.kind, self.precursor, self.truth_end = "instance loss", d + 10.5 * 3600, d + 16 * 3600
        else:
            self.kind = "quiet"
        # Other benign events, from their own generator (the bursts and blips
        # above do not change): marketing campaigns (+35% for 30-60 min),
        # GC pauses (one instance 2.5x slower for 1-2 min) and rolling
        # restarts at night (each instance down for a minute in turn). None
        # within two hours of an incident.
        br = random.Random(2000 + self.seed)
        self.campaigns, self.gcs, self.restarts = [], [], []
        day = 1
        while T0 + day * 86400 < self.end:
            d0 = T0 + day * 86400
            if br.random() < 0.5:
                a = d0 + br.randint(9 * 3600, 17 * 3600)
                self.campaigns.append((a, a + br.randint(1800, 3600)))
            for _ in range(br.randint(1, 3)):
                a = d0 + br.randint(0, 86399)
                self.gcs.append((a, a + br.randint(2, 4) * STEP_S, br.choice(INSTANCES)))
            if br.random() < 0.4:
                self.restarts.append(d0 + br.randint(1 * 3600, 5 * 3600))
            day += 1
        if self.precursor is not None:
            lo, hi = self.precursor - 2 * 3600, self.truth_end + 3600
            self.campaigns = [c for c in self.campaigns if c[1] < lo or c[0] > hi]
            self.gcs = [g for g in self.gcs if g[1] < lo or g[0] > hi]
            self.restarts = [r for r in self.restarts if r + 600 < lo or r > hi]

    # --- the incident's effect at time t --------------------------------
    def traffic_factor(self, t):
        f = 1.0
        if self.name == "surge" and self.precursor <= t:
            dt = t - self.precursor
            if dt < 3000:
                f = 1 + 1.6 * dt / 3000
            elif dt < 4800:
                f = 2.6
            elif dt < 6000:
                f = 2.6 - 1.6 * (dt - 4800) / 1200
        for (a, b) in self.campaigns:
            if a <= t < b:
                ramp_in = min(1.0, (t - a) / 300.0, (b - t) / 300.0)
                cap = CAP_PER_INSTANCE * len(INSTANCES)
                base = self.peak * daily(t) * f
                f *= max(1.0, min(1 + 0.35 * ramp_in, 0.7 * cap / base))
        for (a, b, k) in self.bursts:
            if a <= t < b:
                # benign: never beyond 70% of the service's capacity
                cap = CAP_PER_INSTANCE * len(INSTANCES)
                base = self.peak * daily(t) * f
                f *= max(1.0, min(k, 0.7 * cap / base))
        return f

    def restarting(self, inst, t):
        j = INSTANCES.index(inst)
        return any(r + 150 * j <= t < r + 150 * j + 60 for r in self.restarts)

    def alive(self, inst, t):
        if self.name == "instanceloss" and inst == "c" and self.precursor <= t < self.truth_end:
            return False
        if self.restarting(inst, t):
            return False
        return t >= self.down_until[inst]

    def gc_mult(self, inst, t):
        for (a, b, i) in self.gcs:
            if i == inst and a <= t < b:
                return 2.5
        return 1.0

    def err_extra(self, inst, t):
        if self.name == "deploy":
            d = self.precursor
            if d <= t < d + 900 and inst == "a":
                return 0.04
            if d + 900 <= t < d + 2700:
                return 0.04
        return 0.0

    def lat_mult(self, t):
        if self.name == "slowdown" and self.precursor <= t:
            dt = t - self.precursor
            if dt < 2700:
                return 1 + 3.5 * (dt / 2700) ** 2
            if dt < 4500:
                return 4.5
            if dt < 5400:
                return 4.5 - 3.5 * (dt - 4500) / 900
        return 1.0

    def leak_step(self, inst, t):
        """Memory leak of instance b: linear to the limit in 8 h; OOM kill."""
        if self.name != "leak" or inst != "b":
            return
        if self.precursor <= t and self.onset_leak is None:
            self.mem_extra[inst] = (MEM_LIMIT - MEM_BASE) * 1.0 * (t - self.precursor) / (8 * 3600)
            if MEM_BASE + self.mem_extra[inst] >= MEM_LIMIT:
                self.onset_leak = t
                self.mem_extra[inst] = 0
                self.down_until[inst] = t + 90   # killed; restarts after 90 s
                self.crash_errors_until = t + 240

    onset_leak = None
    crash_errors_until = 0

    # --- one scrape -----------------------------------------------------
    def step(self, t, out):
        rng = self.rng
        total = self.peak * daily(t) * self.traffic_factor(t)
        for inst in INSTANCES:
            self.leak_step(inst, t)
        alive = [i for i in INSTANCES if self.alive(i, t)]
        share = total / max(1, len(alive))
        u = share / CAP_PER_INSTANCE
        lm = self.lat_mult(t)
        # noise-free truth for the outage label
        med = MEDIAN0 * lat_factor(u) * lm * max([self.gc_mult(i, t) for i in alive] or [1.0])
        p99 = med * math.exp(Z99 * SIGMA) if u < 1 else 10.0
        err = 0.0005 + (1 - 1 / u if u > 1 else 0)
        errs = [self.err_extra(i, t) for i in alive]
        err += sum(errs) / max(1, len(alive))
        if self.name == "leak" and self.onset_leak is not None and t < self.crash_errors_until:
            err += 1.0 / 3
        outage = p99 > SLO_S or err > OUTAGE_ERR
        if outage and self.onset is None and self.precursor is not None and t >= self.precursor:
            self.onset = t
        ts = "%d" % (t * 1000)
        job = self.name
        for inst in INSTANCES:
            lab = 'job="%s",instance="%s"' % (job, inst)
            if inst not in alive:
                out.append('up{%s} 0 %s\n' % (lab, ts))
                if self.name == "leak" or self.restarting(inst, t):
                    # restarted process: counters start over
                    for code in ("200", "404", "500", "503"):
                        self.counts.pop((inst, code), None)
                    self.buckets[inst] = [0] * len(LE_TXT)
                    self.cpu[inst] = 0.0
                continue
            n = poisson(rng, share * STEP_S)
            over = 1 - 1 / u if u > 1 else 0.0
            n503 = binom(rng, n, over)
            p5 = 0.0005 + self.err_extra(inst, t)
            if self.name == "leak" and self.onset_leak is not None and t < self.crash_errors_until:
                p5 += 0.3
            n500 = binom(rng, n - n503, p5)
            for bt in self.blips:
                if bt <= t < bt + STEP_S and inst == "a":
                    n500 = min(n - n503, n500 + 2 + (bt // 3600) % 3)  # a client's retries
            n404 = binom(rng, n - n503 - n500, 0.01)
            n200 = n - n503 - n500 - n404
            for code, k in (("200", n200), ("404", n404), ("500", n500), ("503", n503)):
                key = (inst, code)
                if k == 0 and key not in self.counts and code in ("503",):
                    continue  # clients create a code's series on first use
                self.counts[key] = self.counts.get(key, 0) + k
                out.append('http_requests_total{code="%s",%s} %d %s\n' % (code, lab, self.counts[key], ts))
            # latency histogram of the served requests
            served = n - n503
            b = self.buckets[inst]
            if served > 0:
                mu = math.log(MEDIAN0 * lat_factor(u) * lm * self.gc_mult(inst, t))
                if served <= 40:
                    inc = [0] * len(LE)
                    for _ in range(served):
                        x = rng.lognormvariate(mu, SIGMA)
                        for j, le in enumerate(LE):
                            if x <= le:
                                inc[j] += 1
                else:
                    inc = []
                    left = served
                    prev = 0.0
                    acc = 0
                    for le in LE:
                        c = ncdf((math.log(le) - mu) / SIGMA)
                        p = (c - prev) / (1 - prev) if prev < 1 else 0
                        k = binom(rng, left, min(1.0, max(0.0, p)))
                        left -= k
                        acc += k
                        inc.append(acc)
                        prev = c
                for j in range(len(LE)):
                    b[j] += inc[j]
            b[-1] += n  # +Inf: every request (503s waited past the last bound)
            for j in range(len(LE)):
                b[j] = min(b[j], b[-1])
            for j, le in enumerate(LE_TXT):
                out.append('http_request_duration_seconds_bucket{%s,le="%s"} %d %s\n' % (lab, le, b[j], ts))
            self.cpu[inst] += STEP_S * (0.05 + 0.004 * n / STEP_S) * (1 + 0.05 * rng.random())
            out.append('process_cpu_seconds_total{%s} %.3f %s\n' % (lab, self.cpu[inst], ts))
            gc = 40 * 1024 ** 2 * ((t // STEP_S) % 20) / 20.0
            mem = MEM_BASE + gc + self.mem_extra[inst] + rng.gauss(0, 5 * 1024 ** 2)
            out.append('process_resident_memory_bytes{%s} %d %s\n' % (lab, mem, ts))
            out.append('up{%s} 1 %s\n' % (lab, ts))
        if self.name == "leak" and self.onset_leak is not None and self.onset is None:
            self.onset = self.onset_leak


def generate(name, outdir, use_gzip, seed_shift=0):
    sc = Scenario(name, seed_shift)
    path = os.path.join(outdir, name + (".prom.gz" if use_gzip else ".prom"))
    opener = (lambda p: gzip.GzipFile(p, "wb", mtime=0)) if use_gzip else (lambda p: open(p, "wb"))
    with opener(path) as f:
        t = T0
        buf = []
        while t < sc.end:
            sc.step(t, buf)
            if len(buf) > 20000:
                f.write("".join(buf).encode())
                buf = []
            t += STEP_S
        f.write("".join(buf).encode())
    truth = {
        "service": name,
        "kind": sc.kind,
        "start": T0 * 1000,
        "end": sc.end * 1000,
        "step_s": STEP_S,
        "precursor_start": int(sc.precursor * 1000) if sc.precursor else None,
        "onset": int(sc.onset * 1000) if sc.onset else None,
        "incident_end": int(sc.truth_end * 1000) if sc.truth_end else None,
        "file": os.path.basename(path),
    }
    if truth["onset"] is not None and truth["precursor_start"] == truth["onset"]:
        truth["precursor_start"] = None
    return truth


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help="shift every seed by this (default 0)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    truths = []
    for name in args.scenario or list(SCENARIOS):
        truths.append(generate(name, args.out, args.gzip, args.seed))
        print("%s: onset %s" % (name, truths[-1]["onset"]), file=sys.stderr)
    with open(os.path.join(args.out, "incidents.json"), "w") as f:
        json.dump(truths, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
