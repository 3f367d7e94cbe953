#!/usr/bin/env python3
"""gen_incidents.py — deterministic generator of service telemetry with
labelled incidents, for foreshock's outage-prediction evaluation
(data/incidents/evaluate.py, tests/integration/test_outage.py,
docs/outage-prediction.md).

A *set* is drawn from one seed: 26 services (one Prometheus `job` each, three
instances a, b, c), 20 with one incident and 6 healthy controls that run a
week. Every service's parameters (resolution, error signal, size, timing and
strength of its incident, which benign events it has) come from the seed, so
`--seed N` gives a different set of the same composition:

    kind          n  incident                                      precursor
    surge         4  traffic ramps to 1.3-1.5x the capacity         the ramp
                     over 30-60 min
    leak          4  one instance's memory grows linearly to its    the growth
                     2 GiB limit over 3-8 h; OOM kill, errors
    deploy        4  canary on instance a (8-15% errors) for 10-20  the canary
                     min, then all instances; rollback 20-40 min later
    retrystorm    4  a dependency fails slowly (errors 0.3% -> 4%   the rising errors
                     over 15-40 min), then clients retry: errors
                     10-25%, load x1.8, latency x2
    depfail       4  a dependency fails at once: 10-50% errors, or  none (sudden)
                     timeouts (p99 2.5-4 s), for 10-30 min
    control       6  none, seven days                               -

Series (Prometheus text format, millisecond timestamps, ordered by time):

    http_requests_total{job,instance,code}                counter (200, 404, 500, 503)
    http_request_duration_seconds_bucket{job,instance,le} histogram (12 buckets)
    process_cpu_seconds_total{job,instance}               counter
    process_resident_memory_bytes{job,instance}           gauge
    up{job,instance}                                      gauge (0 while down)

A service with `errors: ratio` exports no status code: `http_requests_total`
without `code`, and a gauge `http_request_error_ratio{job,instance}` (failed
requests / requests in the last scrape interval, 0 when there were none).

Traffic: a daily cycle (low at 04:00, peak mid-afternoon), weekends 0.8x,
Poisson noise. Latency: log-normal per request (median 80 ms at no load, p99
about 230 ms) times a queueing factor 1 + 0.3 u / (1 - u) of the load per
instance u; above the capacity the excess is answered with 503. Sizes: most
services peak at 180 requests/s (capacity 100/s per instance); "small"
services peak at 6-12/s (capacity scaled alike), so at night a scrape holds a
handful of requests and their error ratio is noisy.

Benign events (each service gets a random subset; none within two hours of
its incident): bursts (1.5-2x for 1-3 min, below 70% of capacity), night
retry blips (a client's 2-4 failing retries), marketing campaigns (+35% for
30-60 min, ramped over 5 min), hour-long load bumps (+30-60%), a daily batch
job (20-40 min at a fixed night hour: +40% load, latency x1.5), deploy blips
on working days (30-90 s of 0.5-3% errors on all instances), GC pauses (one
instance 2.5x slower for 1-2 min), rolling restarts at night (each instance
down for a minute, counters reset), and a holiday (one weekday at 0.55x).
Resolutions: 30 s, 10 s or 60 s scrapes.

Outage (the SLO the evaluation's service model states): a scrape interval in
which the noise-free p99 latency exceeds 1 s or more than 5% of requests
fail. The onset is the first such interval from the incident's start; the
precursor is the phase from the start to the onset (none for a sudden
failure).

Seeds: the evaluation is tuned on sets 1 and 2 and reported on sets 101 and
102 (docs/outage-prediction.md); never tune on the report sets.

Usage: gen_incidents.py [--seed N] [--out DIR] [--service NAME ...] [--list]
Writes DIR/<service>.prom and DIR/incidents.json (the labels: kind,
precursor start, onset, end, step, error mode, size). The output is a pure
function of the arguments: two runs give byte-identical files.
"""
import argparse
import json
import math
import os
import random
import sys

T0 = 1793577600  # 2026-11-02T00:00:00Z, a Monday
INSTANCES = ("a", "b", "c")
LE = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 10.0)
LE_TXT = ("0.05", "0.1", "0.15", "0.2", "0.3", "0.4", "0.5", "0.75", "1", "1.5", "2.5", "10",
          "+Inf")
SIGMA = 0.45                  # log-normal spread of request latency
MEDIAN0 = 0.080               # median latency at no load (s)
Z99 = 2.3263478740408408
SLO_LATENCY_S = 1.0
SLO_ERRORS = 0.05
MEM_LIMIT = 2 * 1024 ** 3
MEM_BASE = 600 * 1024 ** 2
BASE_ERR = 0.0005

# composition of a set: (kind, count)
COMPOSITION = (("surge", 4), ("leak", 4), ("deploy", 4), ("retrystorm", 4), ("depfail", 4),
               ("control", 6))
PRECURSOR_KINDS = ("surge", "leak", "deploy", "retrystorm")
TUNING_SEEDS = (1, 2)
REPORT_SEEDS = (101, 102)


def plan_set(seed):
    """The scenario specs of set `seed` (a list of dicts, one per service)."""
    rng = random.Random(7919 * seed + 17)
    specs = []
    n = 0
    for kind, count in COMPOSITION:
        for i in range(count):
            n += 1
            s = {"kind": kind, "name": "s%d-%s-%d" % (seed, kind, i + 1),
                 "seed": rng.randrange(1 << 30)}
            # resolution: mostly 30 s; some 10 s and 60 s
            s["step_s"] = rng.choice((30, 30, 30, 10, 60, 60))
            s["errors"] = rng.choice(("counts", "counts", "ratio"))
            small = kind in ("deploy", "depfail", "retrystorm", "control") and rng.random() < 0.3
            s["peak"] = round(rng.uniform(6, 12), 1) if small else round(rng.uniform(150, 190), 1)
            s["cap_per_instance"] = s["peak"] * 100.0 / 180.0
            s["start_dow"] = rng.choice((0, 0, 3, 4))      # Monday, Thursday, Friday
            # incidents on the fifth day (the fourth at 10 s, to keep the file small)
            s["days"] = 7.0 if kind == "control" else 5.0
            if s["step_s"] == 10 and kind != "control":
                s["days"] -= 1.0
            s["inc_day"] = None if kind == "control" else int(s["days"]) - 1
            s["benign"] = sorted(b for b in ("bursts", "blips", "campaigns", "bumps", "batch",
                                             "deployblips", "gcs", "restarts", "holiday")
                                 if rng.random() < 0.6)
            p = {}
            if kind == "surge":
                p["start_h"] = rng.uniform(9.0, 13.0)
                p["ramp_min"] = rng.uniform(30, 60)
                p["final_u"] = rng.uniform(1.3, 1.5)
                p["hold_min"] = rng.uniform(20, 40)
            elif kind == "leak":
                p["hours"] = rng.uniform(3, 8)
                p["start_h"] = rng.uniform(1.0, 14.0 - p["hours"])
                p["instance"] = rng.choice(INSTANCES)
            elif kind == "deploy":
                p["start_h"] = rng.uniform(9.0, 16.0)
                p["err"] = rng.uniform(0.08, 0.15)
                p["canary_min"] = rng.uniform(10, 20)
                p["full_min"] = rng.uniform(20, 40)
            elif kind == "retrystorm":
                p["start_h"] = rng.uniform(8.0, 16.0)
                p["ramp_min"] = rng.uniform(15, 40)
                p["storm_err"] = rng.uniform(0.10, 0.25)
                p["storm_min"] = rng.uniform(20, 40)
            elif kind == "depfail":
                p["start_h"] = rng.uniform(0.0, 20.0)
                p["mode"] = rng.choice(("errors", "errors", "timeouts"))
                p["err"] = rng.uniform(0.10, 0.50)
                p["timeout_s"] = rng.uniform(2.5, 4.0)
                p["min"] = rng.uniform(10, 30)
            s["incident"] = p
            specs.append(s)
    return specs


def daily(t, holiday_day=None):
    """Daily traffic shape in [0.3, 1]: low at 04:00, peak at 16:00; weekends 0.8x."""
    day = (t - T0) / 86400.0
    h = (day % 1.0) * 24
    x = (0.5 - 0.5 * math.cos(2 * math.pi * (h - 4) / 24)) ** 1.3
    wd = int(day) % 7
    wk = 0.8 if wd >= 5 else 1.0
    if holiday_day is not None and int(day) == holiday_day:
        wk = 0.55
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

    def __init__(self, spec):
        self.spec = spec
        self.name = spec["name"]
        self.kind = spec["kind"]
        self.step = spec["step_s"]
        self.peak = spec["peak"]
        self.cap = spec["cap_per_instance"]
        self.rng = random.Random(spec["seed"])
        self.t0 = T0 + spec["start_dow"] * 86400
        self.end = self.t0 + int(spec["days"] * 86400)
        self.counts = {}
        self.buckets = {i: [0] * len(LE_TXT) for i in INSTANCES}
        self.cpu = {i: 0.0 for i in INSTANCES}
        self.mem_extra = {i: 0.0 for i in INSTANCES}
        self.down_until = {i: 0 for i in INSTANCES}
        self.onset = None
        self.precursor = None
        self.truth_end = None
        self.oom_at = None
        self.inc = spec["incident"]
        if spec["inc_day"] is not None:
            d0 = self.t0 + spec["inc_day"] * 86400
            p = self.inc
            st = d0 + int(p["start_h"] * 3600)
            st -= st % self.step
            self.precursor = st
            if self.kind == "surge":
                self.truth_end = st + int((p["ramp_min"] + p["hold_min"] + 20) * 60)
            elif self.kind == "leak":
                self.truth_end = st + int(p["hours"] * 3600) + 900
            elif self.kind == "deploy":
                self.truth_end = st + int((p["canary_min"] + p["full_min"]) * 60)
            elif self.kind == "retrystorm":
                self.truth_end = st + int((p["ramp_min"] + p["storm_min"]) * 60)
            elif self.kind == "depfail":
                self.truth_end = st + int(p["min"] * 60)
        self._plan()

    def _plan(self):
        br = random.Random(self.spec["seed"] + 1)
        ben = set(self.spec["benign"])
        self.bursts, self.blips, self.campaigns, self.bumps = [], [], [], []
        self.gcs, self.restarts, self.deployblips, self.batches = [], [], [], []
        self.holiday = None
        day = 0
        ndays = int(math.ceil(self.spec["days"]))
        batch_h = br.uniform(0.5, 3.0)
        batch_len = br.randint(20, 40) * 60
        if "holiday" in ben:
            # a weekday after the first two days
            cands = [d for d in range(2, ndays) if (self.t0 - T0) // 86400 + d not in (5, 6, 12, 13)
                     and (self.spec["inc_day"] is None or d != self.spec["inc_day"])]
            if cands:
                self.holiday = (self.t0 - T0) // 86400 + br.choice(cands)
        while day < ndays:
            d0 = self.t0 + day * 86400
            if "bursts" in ben:
                for _ in range(br.randint(2, 5)):
                    a = d0 + br.randint(0, 86399)
                    self.bursts.append((a, a + br.randint(1, 3) * 60, br.uniform(1.5, 2.0)))
            if "blips" in ben and br.random() < 0.7:
                self.blips.append(d0 + br.randint(1 * 3600, 5 * 3600))
            if "campaigns" in ben and br.random() < 0.5:
                a = d0 + br.randint(9 * 3600, 17 * 3600)
                self.campaigns.append((a, a + br.randint(1800, 3600)))
            if "bumps" in ben and br.random() < 0.5:
                a = d0 + br.randint(7 * 3600, 19 * 3600)
                self.bumps.append((a, a + 3600, br.uniform(1.3, 1.6)))
            if "batch" in ben:
                a = d0 + int(batch_h * 3600)
                self.batches.append((a, a + batch_len))
            wd = ((self.t0 - T0) // 86400 + day) % 7
            if "deployblips" in ben and wd < 5:
                for _ in range(br.randint(1, 2)):
                    a = d0 + br.randint(9 * 3600, 17 * 3600)
                    self.deployblips.append((a, a + br.randint(30, 90), br.uniform(0.005, 0.03)))
            if "gcs" in ben:
                for _ in range(br.randint(1, 3)):
                    a = d0 + br.randint(0, 86399)
                    self.gcs.append((a, a + br.randint(60, 120), br.choice(INSTANCES)))
            if "restarts" in ben and br.random() < 0.4:
                self.restarts.append(d0 + br.randint(1 * 3600, 5 * 3600))
            day += 1
        if self.precursor is not None:
            lo, hi = self.precursor - 2 * 3600, self.truth_end + 2 * 3600

            def away(ev):
                return ev[1] < lo or ev[0] > hi
            self.bursts = [e for e in self.bursts if away(e)]
            self.campaigns = [e for e in self.campaigns if away(e)]
            self.bumps = [e for e in self.bumps if away(e)]
            self.batches = [e for e in self.batches if away(e)]
            self.deployblips = [e for e in self.deployblips if away(e)]
            self.gcs = [e for e in self.gcs if away(e)]
            self.blips = [b for b in self.blips if b < lo or b > hi]
            self.restarts = [r for r in self.restarts if r + 600 < lo or r > hi]

    # --- the incident's effect at time t --------------------------------
    def since(self, t):
        return None if self.precursor is None or t < self.precursor else t - self.precursor

    def base_load(self, t):
        return self.peak * daily(t, self.holiday)

    def traffic_factor(self, t):
        f = 1.0
        dt = self.since(t)
        p = self.inc
        if self.kind == "surge" and dt is not None:
            base = self.base_load(self.precursor)
            top = p["final_u"] * self.cap * len(INSTANCES) / base
            ramp, hold = p["ramp_min"] * 60, p["hold_min"] * 60
            if dt < ramp:
                f = 1 + (top - 1) * dt / ramp
            elif dt < ramp + hold:
                f = top
            elif dt < ramp + hold + 1200:
                f = top - (top - 1) * (dt - ramp - hold) / 1200
        if self.kind == "retrystorm" and dt is not None:
            r = p["ramp_min"] * 60
            if r <= dt < r + p["storm_min"] * 60:
                f *= 1.8
        cap = self.cap * len(INSTANCES)
        for (a, b) in self.campaigns:
            if a <= t < b:
                ramp_in = min(1.0, (t - a) / 300.0, (b - t) / 300.0)
                f *= max(1.0, min(1 + 0.35 * ramp_in, 0.7 * cap / (self.base_load(t) * f)))
        for (a, b, k) in self.bumps:
            if a <= t < b:
                ramp_in = min(1.0, (t - a) / 120.0, (b - t) / 120.0)
                f *= max(1.0, min(1 + (k - 1) * ramp_in, 0.7 * cap / (self.base_load(t) * f)))
        for (a, b) in self.batches:
            if a <= t < b:
                f *= max(1.0, min(1.4, 0.7 * cap / (self.base_load(t) * f)))
        for (a, b, k) in self.bursts:
            if a <= t < b:
                f *= max(1.0, min(k, 0.7 * cap / (self.base_load(t) * f)))
        return f

    def restarting(self, inst, t):
        j = INSTANCES.index(inst)
        return any(r + 150 * j <= t < r + 150 * j + 60 for r in self.restarts)

    def alive(self, inst, t):
        if self.restarting(inst, t):
            return False
        return t >= self.down_until[inst]

    def gc_mult(self, inst, t):
        for (a, b, i) in self.gcs:
            if i == inst and a <= t < b:
                return 2.5
        return 1.0

    def lat_mult(self, t):
        m = 1.0
        for (a, b) in self.batches:
            if a <= t < b:
                m *= 1.5
        dt = self.since(t)
        p = self.inc
        if dt is not None:
            if self.kind == "retrystorm":
                r = p["ramp_min"] * 60
                if r <= dt < r + p["storm_min"] * 60:
                    m *= 2.0
        return m

    def timeout_p99(self, t):
        """depfail with timeouts: requests wait for the dependency's timeout."""
        dt = self.since(t)
        if self.kind == "depfail" and self.inc["mode"] == "timeouts" and dt is not None \
                and dt < self.inc["min"] * 60:
            return self.inc["timeout_s"]
        return None

    def err_extra(self, inst, t):
        """Extra failing fraction of instance inst's requests at t."""
        e = 0.0
        for (a, b, k) in self.deployblips:
            if a <= t < b:
                e += k
        dt = self.since(t)
        p = self.inc
        if dt is None:
            return e
        if self.kind == "deploy":
            c, f = p["canary_min"] * 60, p["full_min"] * 60
            if dt < c and inst == "a":
                e += p["err"]
            elif c <= dt < c + f:
                e += p["err"]
        elif self.kind == "retrystorm":
            r, s = p["ramp_min"] * 60, p["storm_min"] * 60
            if dt < r:
                e += 0.003 + (0.04 - 0.003) * dt / r
            elif dt < r + s:
                e += p["storm_err"]
        elif self.kind == "depfail" and p["mode"] == "errors" and dt < p["min"] * 60:
            e += p["err"]
        elif self.kind == "leak" and self.oom_at is not None and t < self.oom_at + 240:
            e += 0.3 if inst != p["instance"] else 0.0
        return e

    def leak_step(self, t):
        if self.kind != "leak":
            return
        inst = self.inc["instance"]
        dt = self.since(t)
        if dt is not None and self.oom_at is None:
            self.mem_extra[inst] = (MEM_LIMIT - MEM_BASE) * dt / (self.inc["hours"] * 3600)
            if MEM_BASE + self.mem_extra[inst] >= MEM_LIMIT:
                self.oom_at = t
                self.mem_extra[inst] = 0
                self.down_until[inst] = t + 90   # killed; restarts after 90 s

    # --- one scrape -----------------------------------------------------
    def step_at(self, t, out):
        rng = self.rng
        step = self.step
        total = self.base_load(t) * self.traffic_factor(t)
        self.leak_step(t)
        alive = [i for i in INSTANCES if self.alive(i, t)]
        share = total / max(1, len(alive))
        u = share / self.cap
        lm = self.lat_mult(t)
        # noise-free truth for the outage label
        med = MEDIAN0 * lat_factor(u) * lm * max([self.gc_mult(i, t) for i in alive] or [1.0])
        p99 = med * math.exp(Z99 * SIGMA) if u < 1 else 10.0
        tp = self.timeout_p99(t)
        if tp is not None:
            p99 = max(p99, tp)
        over = 1 - 1 / u if u > 1 else 0.0
        err = BASE_ERR + over
        if alive:
            err += sum(self.err_extra(i, t) for i in alive) / len(alive) * (1 - over)
        if self.kind == "leak" and self.oom_at is not None and t < self.oom_at + 240:
            err = max(err, 0.2)
        outage = p99 > SLO_LATENCY_S or err > SLO_ERRORS
        if outage and self.onset is None and self.precursor is not None and t >= self.precursor:
            self.onset = t
        ts = "%d" % (t * 1000)
        job = self.name
        ratio_mode = self.spec["errors"] == "ratio"
        for inst in INSTANCES:
            lab = 'job="%s",instance="%s"' % (job, inst)
            if inst not in alive:
                out.append('up{%s} 0 %s\n' % (lab, ts))
                if self.kind == "leak" or self.restarting(inst, t):
                    self.counts = {k: v for k, v in self.counts.items() if k[0] != inst}
                    self.buckets[inst] = [0] * len(LE_TXT)
                    self.cpu[inst] = 0.0
                continue
            n = poisson(rng, share * step)
            n503 = binom(rng, n, over)
            n500 = binom(rng, n - n503, BASE_ERR + self.err_extra(inst, t))
            for bt in self.blips:
                if bt <= t < bt + step and inst == "a":
                    n500 = min(n - n503, n500 + 2 + (bt // 3600) % 3)  # a client's retries
            n404 = binom(rng, n - n503 - n500, 0.01)
            n200 = n - n503 - n500 - n404
            if ratio_mode:
                key = (inst, "")
                self.counts[key] = self.counts.get(key, 0) + n
                out.append('http_requests_total{%s} %d %s\n' % (lab, self.counts[key], ts))
                out.append('http_request_error_ratio{%s} %.6g %s\n' % (
                    lab, (n500 + n503) / n if n else 0.0, ts))
            else:
                for code, k in (("200", n200), ("404", n404), ("500", n500), ("503", n503)):
                    key = (inst, code)
                    if k == 0 and key not in self.counts and code == "503":
                        continue  # clients create a code's series on first use
                    self.counts[key] = self.counts.get(key, 0) + k
                    out.append('http_requests_total{code="%s",%s} %d %s\n' % (
                        code, lab, self.counts[key], ts))
            served = n - n503
            b = self.buckets[inst]
            if served > 0:
                mu = math.log(MEDIAN0 * lat_factor(u) * lm * self.gc_mult(inst, t))
                tps = self.timeout_p99(t)
                if tps is not None:
                    # 5% of the requests wait for the timeout
                    mu_t = math.log(tps)
                if served <= 40:
                    inc = [0] * len(LE)
                    for _ in range(served):
                        x = rng.lognormvariate(mu, SIGMA)
                        if tps is not None and rng.random() < 0.05:
                            x = rng.lognormvariate(mu_t, 0.05)
                        for j, le in enumerate(LE):
                            if x <= le:
                                inc[j] += 1
                else:
                    inc = []
                    acc = 0
                    for le in LE:
                        c = ncdf((math.log(le) - mu) / SIGMA)
                        if tps is not None:
                            c = 0.95 * c + 0.05 * ncdf((math.log(le) - mu_t) / 0.05)
                        k = binom(rng, served, c) if c < 1 else served
                        acc = max(acc, k)
                        inc.append(acc)
                for j in range(len(LE)):
                    b[j] += inc[j]
            b[-1] += n  # +Inf: every request (503s waited past the last bound)
            for j in range(len(LE)):
                b[j] = min(b[j], b[-1])
            for j, le in enumerate(LE_TXT):
                out.append('http_request_duration_seconds_bucket{%s,le="%s"} %d %s\n' % (
                    lab, le, b[j], ts))
            self.cpu[inst] += step * (0.05 + 0.004 * n / step) * (1 + 0.05 * rng.random())
            out.append('process_cpu_seconds_total{%s} %.3f %s\n' % (lab, self.cpu[inst], ts))
            gc = 40 * 1024 ** 2 * ((t // 30) % 20) / 20.0
            mem = MEM_BASE + gc + self.mem_extra[inst] + rng.gauss(0, 5 * 1024 ** 2)
            out.append('process_resident_memory_bytes{%s} %d %s\n' % (lab, mem, ts))
            out.append('up{%s} 1 %s\n' % (lab, ts))


def generate(spec, outdir):
    """Write outdir/<name>.prom; return the labels of the service."""
    sc = Scenario(spec)
    path = os.path.join(outdir, spec["name"] + ".prom")
    with open(path, "wb") as f:
        t = sc.t0
        buf = []
        while t < sc.end:
            sc.step_at(t, buf)
            if len(buf) > 20000:
                f.write("".join(buf).encode())
                buf = []
            t += sc.step
        f.write("".join(buf).encode())
    truth = {
        "service": spec["name"], "kind": spec["kind"], "start": sc.t0 * 1000,
        "end": sc.end * 1000, "step_s": sc.step, "errors": spec["errors"],
        "peak": spec["peak"], "benign": spec["benign"],
        "precursor_start": sc.precursor * 1000 if sc.precursor else None,
        "onset": sc.onset * 1000 if sc.onset else None,
        "incident_end": sc.truth_end * 1000 if sc.truth_end else None,
        "file": os.path.basename(path),
    }
    if spec["kind"] not in PRECURSOR_KINDS:
        truth["precursor_start"] = None
    if truth["onset"] is not None and truth["precursor_start"] == truth["onset"]:
        truth["precursor_start"] = None
    return truth


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="the set to generate (default 1)")
    ap.add_argument("--out", default=".")
    ap.add_argument("--service", action="append", help="only these services of the set")
    ap.add_argument("--list", action="store_true", help="print the set's specs and exit")
    args = ap.parse_args()
    specs = plan_set(args.seed)
    if args.service:
        specs = [s for s in specs if s["name"] in args.service]
    if args.list:
        json.dump(specs, sys.stdout, indent=1, sort_keys=True)
        print()
        return
    os.makedirs(args.out, exist_ok=True)
    truths = []
    for s in specs:
        truths.append(generate(s, args.out))
        print("%s: onset %s" % (s["name"], truths[-1]["onset"]), file=sys.stderr)
    with open(os.path.join(args.out, "incidents.json"), "w") as f:
        json.dump(truths, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
