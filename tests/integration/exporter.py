#!/usr/bin/env python3
"""exporter.py — a synthetic Prometheus exporter with an injected incident,
for tests/integration/test_prometheus.py (standard library only).

It serves /metrics (text format 0.0.4) with
  http_requests_total{code="200"|"500"}   counter
  http_request_duration_seconds           histogram (le 0.005 .. 10, +Inf)
Each scrape advances the counters by rate x elapsed time, so the per-second
rate Prometheus (and foreshock) computes is smooth: about --rate requests/s
with a few percent of noise, and a log-normal latency with median --median
seconds. Samples carry the time they were computed at, so rates are exact
whatever the scrape jitter. --incident-after seconds after start an incident
begins: the request rate is multiplied by --surge (errors by 10 x --surge)
and the latency median by --slowdown. The noise is deterministic given --seed.

  exporter.py --port 0 --incident-after 60     # prints "listening port=N"
Options can also come from the environment: EXPORTER_INCIDENT_AFTER,
EXPORTER_SURGE, EXPORTER_SLOWDOWN.
"""
import argparse
import http.server
import math
import os
import random
import sys
import threading
import time

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


def lognormal_cdf(x, median, sigma):
    if x <= 0:
        return 0.0
    return 0.5 * (1.0 + math.erf(math.log(x / median) / (sigma * math.sqrt(2.0))))


class State:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.start = time.time()
        self.last = self.start
        self.requests = {"200": 0.0, "500": 0.0}
        self.buckets = [0.0] * (len(BOUNDS) + 1)
        self.sum = 0.0
        self.lock = threading.Lock()

    def incident(self, now):
        return now - self.start >= self.args.incident_after

    def advance(self, now):
        dt = max(0.0, now - self.last)
        self.last = now
        inc = self.incident(now)
        noise = 1.0 + 0.03 * self.rng.gauss(0, 1)
        rate = self.args.rate * (self.args.surge if inc else 1.0) * max(0.5, noise)
        err_rate = self.args.rate * 0.01 * (10 * self.args.surge if inc else 1.0) * max(0.5, noise)
        self.requests["200"] += rate * dt
        self.requests["500"] += err_rate * dt
        n = (rate + err_rate) * dt
        median = self.args.median * (self.args.slowdown if inc else 1.0)
        median *= 1.0 + 0.03 * self.rng.gauss(0, 1)
        sigma = 0.5
        for i, le in enumerate(BOUNDS):
            self.buckets[i] += n * lognormal_cdf(le, median, sigma)
        self.buckets[-1] += n
        self.sum += n * median * math.exp(sigma * sigma / 2)

    def render(self):
        with self.lock:
            now = time.time()
            self.advance(now)
            out = [
                "# HELP http_requests_total Requests served.",
                "# TYPE http_requests_total counter",
            ]
            for code, v in sorted(self.requests.items()):
                out.append('http_requests_total{code="%s"} %.6f' % (code, v))
            out += [
                "# HELP http_request_duration_seconds Request latency.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            for le, v in zip(BOUNDS, self.buckets):
                out.append('http_request_duration_seconds_bucket{le="%g"} %.6f' % (le, v))
            out.append('http_request_duration_seconds_bucket{le="+Inf"} %.6f' % self.buckets[-1])
            out.append("http_request_duration_seconds_sum %.6f" % self.sum)
            out.append("http_request_duration_seconds_count %.6f" % self.buckets[-1])
            out += [
                "# HELP exporter_incident 1 while the injected incident runs.",
                "# TYPE exporter_incident gauge",
                "exporter_incident %d" % (1 if self.incident(now) else 0),
            ]
            # Explicit timestamps (Prometheus honours them by default): the
            # sample time is when the counters were advanced, so the rate a
            # reader computes does not depend on scrape scheduling jitter.
            ts = " %d" % int(now * 1000)
            out = [line if line.startswith("#") else line + ts for line in out]
            return ("\n".join(out) + "\n").encode()


def main():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--incident-after", type=float, default=float(env("EXPORTER_INCIDENT_AFTER", "60")))
    p.add_argument("--surge", type=float, default=float(env("EXPORTER_SURGE", "8")))
    p.add_argument("--slowdown", type=float, default=float(env("EXPORTER_SLOWDOWN", "20")))
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--median", type=float, default=0.04)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    state = State(args)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 — http.server's naming
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = state.render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer((args.listen, args.port), Handler)
    print("listening port=%d incident_after=%g" % (srv.server_address[1], args.incident_after), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
