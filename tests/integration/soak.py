#!/usr/bin/env python3
"""soak — a compressed day: replay 24 hours of event time for many series
into one foreshockd as fast as it takes them, with service models, incidents
and scrapes of /metrics and the API, while sampling the daemon's RSS.

Data (synthetic, deterministic for a seed): SERIES host gauges
(`soak_cpu` and `soak_mem`, half each, label host) with a daily cycle and
noise, one sample per STEP seconds; one host in 100 has an incident (its
level x2.5 for an hour, at a random hour), so alerts open and resolve all
day. Four services (`svc0`..`svc3`, two instances each: latency_ms,
requests_total and errors_total, so derived rate series too) with a service
model each (tests/integration/soak.py writes them); svc1 has an outage at
14:00 for 40 minutes (errors at 8%, latency x1.6). Every SCRAPE steps:
GET /metrics, /api/v1/alerts, /api/v1/alerts/history, /api/v1/services,
/api/v1/anomalies (one selector), /api/v1/series (one selector), /healthz;
every answer must be 200.

Judged (exit 1 on any):
- a write not answered 204, a scrape not 200, the daemon exiting;
- any line of level error in the daemon's log;
- RSS growth after warm-up: the RSS samples of the last quarter of the
  replay (by event time) are fitted with a least-squares line; its rise
  over that quarter must stay below GROWTH_PCT % of the quarter's mean
  RSS plus GROWTH_FLOOR_MIB MiB (the floor absorbs allocator noise in the
  short run). The first half is warm-up: the registry fills at the first
  step, the detectors warm up over their first 150 samples (2.5 h at 60 s),
  the daily bins and the service models' rings fill during the day.

  soak.py [--series N] [--step S] [--hours H] [--seed S] [--csv FILE]

Prints the RSS at the end of warm-up, the peak, the end, the fitted growth,
samples ingested per second and the counts of alerts and log lines. Uses
$FORESHOCK_BUILDDIR / $FORESHOCK_SRCDIR like the other integration tests.
"""
import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402
from fslib import Daemon, Failed, check  # noqa: E402

T0 = 1767225600  # 2026-01-01T00:00:00Z
GROWTH_PCT = 2.0
GROWTH_FLOOR_MIB = 2.0
SERVICES = 4
INSTANCES = ("i1", "i2")
CHUNK = 5000  # lines per write request


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failed("no VmRSS for pid %d" % pid)


class Data:
    """The lines of each step, generated on the fly (deterministic)."""

    def __init__(self, nseries, step, seed):
        rng = random.Random(seed)
        self.step = step
        self.hosts = nseries // 2
        self.base = [rng.uniform(20, 60) for _ in range(self.hosts)]
        self.phase = [rng.uniform(0, 2 * math.pi) for _ in range(self.hosts)]
        self.incident = {h: rng.randrange(3, 22) * 3600 for h in range(0, self.hosts, 100)}
        self.rng = random.Random(seed + 1)
        self.counters = {(s, i): [0, 0] for s in range(SERVICES) for i in INSTANCES}

    def lines(self, k):
        t = k * self.step
        ts = T0 + t
        day = 2 * math.pi * t / 86400.0
        g = self.rng.gauss
        out = []
        for h in range(self.hosts):
            v = self.base[h] * (1 + 0.3 * math.sin(day + self.phase[h]))
            inc = self.incident.get(h)
            if inc is not None and inc <= t < inc + 3600:
                v *= 2.5
            out.append("soak_cpu,host=h%d value=%.2f %d" % (h, v + g(0, 1), ts))
            out.append("soak_mem,host=h%d value=%.1f %d" % (h, 10 * v + g(0, 5), ts))
        for s in range(SERVICES):
            bad = s == 1 and 14 * 3600 <= t < 14 * 3600 + 2400
            for i in INSTANCES:
                c = self.counters[(s, i)]
                req = max(0, int(g(50 * self.step * (1 + 0.4 * math.sin(day)), 30)))
                c[0] += req
                c[1] += int(req * (0.08 if bad else 0.001) + self.rng.random())
                lat = g(160 if bad else 100, 3.0)
                out.append("http,service=svc%d,instance=%s latency_ms=%.3f,requests_total=%di,errors_total=%di %d"
                           % (s, i, lat, c[0], c[1], ts))
        return out


SCRAPES = ["/metrics", "/api/v1/alerts", "/api/v1/alerts/history?limit=200", "/api/v1/services",
           "/api/v1/anomalies?" + urllib.parse.urlencode({"series": 'soak_cpu{host="h0"}'}),
           "/api/v1/series?" + urllib.parse.urlencode({"match[]": 'soak_mem{host="h1"}'}),
           "/healthz"]


def fit_growth(points):
    """Least-squares slope of (x, y) times the x span: the fitted rise."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return 0.0, my
    slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx
    return slope * (points[-1][0] - points[0][0]), my


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=10000, help="host series (default 10000)")
    ap.add_argument("--step", type=int, default=60, help="seconds of event time per step (default 60)")
    ap.add_argument("--hours", type=float, default=24, help="event time replayed (default 24)")
    ap.add_argument("--scrape", type=int, default=20, help="scrape the API every N steps (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pace", type=float, default=0.0,
                    help="at least this many wall seconds per step (default 0: as fast as it goes); "
                         "a short soak needs it so that the daemon's wall-clock work (the 2 s "
                         "checkpoint rounds, SQLite's WAL) happens in the warm-up half as well")
    ap.add_argument("--floor-mib", type=float, default=GROWTH_FLOOR_MIB,
                    help="the fixed part of the growth bound, MiB (default %.1f)" % GROWTH_FLOOR_MIB)
    ap.add_argument("--csv", help="write the RSS samples (step, event hour, wall s, RSS KiB) here")
    a = ap.parse_args()
    steps = int(a.hours * 3600 / a.step)
    tmp = tempfile.mkdtemp(prefix="foreshock-soak-")
    models = os.path.join(tmp, "models")
    os.makedirs(models)
    for s in range(SERVICES):
        with open(os.path.join(models, "svc%d.yml" % s), "w") as f:
            f.write(fleet.service_model("svc%d" % s, step_s=a.step, alert_for=None))
    data = Data(a.series, a.step, a.seed)
    # checkpoint rounds every 2 s (the default is 30 s), so that they run many
    # times in both halves of the day
    d = Daemon(datadir=tmp, args=["--models-dir", models], config="checkpoint:\n  interval: 2s\n").start()
    samples = []  # (step, wall s, rss KiB)
    nlines = 0
    t0 = time.time()
    try:
        pid = d.proc.pid
        for k in range(steps):
            step_t0 = time.time()
            lines = data.lines(k)
            for j in range(0, len(lines), CHUNK):
                status, body = d.write(lines[j:j + CHUNK])
                check(status == 204, "write at step %d -> %d %s" % (k, status, body[:200]))
            nlines += len(lines)
            if k % a.scrape == 0:
                for path in SCRAPES:
                    status, body = d.get(path)
                    check(status == 200, "GET %s at step %d -> %d %s" % (path, k, status, body[:200]))
            check(d.proc.poll() is None, "foreshockd exited at step %d" % k)
            left = a.pace - (time.time() - step_t0)
            if left > 0:
                time.sleep(left)
            samples.append((k, time.time() - t0, rss_kib(pid)))
        wall = time.time() - t0
        alerts = d.get_json("/api/v1/alerts/history?limit=100000")["data"]["events"]
        services = d.get_json("/api/v1/services")["data"]
        check(d.stop() == 0, "foreshockd exited 0 on SIGTERM")
        log = d.logtext()
    finally:
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("step,event_hour,wall_s,rss_kib\n")
            for k, w, r in samples:
                f.write("%d,%.3f,%.2f,%d\n" % (k, k * a.step / 3600.0, w, r))
    errors = [ln for ln in log.splitlines() if " level=error " in ln]
    warns = sum(1 for ln in log.splitlines() if " level=warn " in ln)
    half, last_q = steps // 2, steps - steps // 4
    rise_kib, mean_kib = fit_growth([(k, r) for k, _, r in samples[last_q:]])
    bound_kib = mean_kib * GROWTH_PCT / 100 + a.floor_mib * 1024
    fired = sum(1 for e in alerts if e["state"] == "firing")
    svc_alerts = sum(1 for e in alerts if e["series"].startswith("service:") and e["state"] == "firing")
    print("soak: %d series, %d steps of %ds (%.1f h of event time), %d samples in %.0f s (%.0f samples/s)"
          % (a.series + 6 * SERVICES, steps, a.step, a.hours, nlines, wall, nlines / wall))
    print("rss: %.1f MiB after warm-up (step %d), peak %.1f MiB, end %.1f MiB; last-quarter fitted rise "
          "%+.2f MiB (bound %.2f MiB = %.1f%% of %.1f MiB + %.1f MiB)"
          % (samples[half][2] / 1024, half, max(r for _, _, r in samples) / 1024, samples[-1][2] / 1024,
             rise_kib / 1024, bound_kib / 1024, GROWTH_PCT, mean_kib / 1024, a.floor_mib))
    print("alerts: %d firing transitions (%d of services); services evaluated %s steps; log: %d error, %d warn lines"
          % (fired, svc_alerts, "/".join(str(s["steps"]) for s in services), len(errors), warns))
    ok = True
    if errors:
        print("FAIL: error lines in the log:\n  " + "\n  ".join(errors[:10]))
        ok = False
    if os.environ.get("FORESHOCK_SANITIZED"):
        # ASan's quarantine keeps freed memory (up to 256 MiB), so RSS rises
        # with every free; LeakSanitizer judges leaks when the daemon exits
        # (its report makes the exit status non-zero, which is checked above)
        print("rss: growth not judged in a sanitizer build (ASan's quarantine holds freed memory; "
              "LeakSanitizer checks leaks at exit)")
    elif rise_kib > bound_kib:
        print("FAIL: RSS still growing in the last quarter: %+.2f MiB > %.2f MiB" % (rise_kib / 1024, bound_kib / 1024))
        ok = False
    if fired == 0:
        print("FAIL: no alert fired (the incidents were not seen)")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        print("FAIL: %s" % e)
        sys.exit(1)
