"""fleet — helpers for the tests of several foreshockd side by side
(tests/integration/test_scaling.py, test_determinism.py, bench/scale.sh):
small incident data for several services, service models for it, and the
helper programs (vmagent, an Alertmanager cluster, a webhook receiver).

Standard library only. Every port is chosen at run time on 127.0.0.1.
"""
import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

T0 = 1767225600  # 2026-01-01T00:00:00Z: event time far in the wall clock's past, as in a replay
STEP = 10        # seconds between samples
INSTANCES = ("i1", "i2")


def incident_data(services, incidents, n_base=720, n_inc=150, seed=1):
    """Line protocol for `services`, one list of lines per timestamp, in time order.

    Each service has two instances with the fields latency_ms (gauge ~100 ms),
    requests_total and errors_total (counters, ~50 requests/s, 0.1% errors), so
    the series are http_latency_ms, http_requests_total and http_errors_total
    with labels service and instance (the same names through foreshock's /write
    and through vmagent, which both name fields <measurement>_<field>).

    `incidents` maps a service to the index (0 .. n_inc) at which its incident
    starts after the n_base quiet samples: latency x1.6 and errors at 8% of
    requests from then on. Deterministic for a seed."""
    rng = random.Random(seed)
    counters = {(s, i): [0, 0] for s in services for i in INSTANCES}
    out = []
    for k in range(n_base + n_inc):
        ts = T0 + k * STEP
        lines = []
        for s in services:
            start = incidents.get(s)
            bad = start is not None and k >= n_base + start
            for i in INSTANCES:
                c = counters[(s, i)]
                req = max(0, int(rng.gauss(50 * STEP, 20)))
                err = sum(1 for _ in range(req) if rng.random() < (0.2 if bad else 0.001))
                c[0] += req
                c[1] += err
                lat = rng.gauss(160 if bad else 100, 3.0)
                lines.append("http,service=%s,instance=%s latency_ms=%.3f,requests_total=%di,errors_total=%di %d"
                             % (s, i, lat, c[0], c[1], ts))
        out.append(lines)
    return out


def service_model(name, step_s=STEP, alert_for="30s"):
    """A service model (kind: service) for one service of incident_data(), or
    of any data with the same series names (soak.py): a sample every step_s
    seconds; alerting.for is alert_for (None: the model's default)."""
    text = """kind: service
name: %(n)s
step: %(step)ds
lag: 1
signals:
  requests: 'foreshock:rate:http_requests_total{service="%(n)s"}'
  errors: 'foreshock:rate:http_errors_total{service="%(n)s"}'
  latency:
    selector: 'http_latency_ms{service="%(n)s"}'
    unit: ms
    aggregate: max
slos:
  availability:
    objective: 99%%
  latency:
    threshold: 500ms
""" % {"n": name, "step": step_s}
    if alert_for:
        text += "alerting:\n  for: %s\n" % alert_for
    return text


def write_models(directory, services):
    os.makedirs(directory, exist_ok=True)
    for s in services:
        with open(os.path.join(directory, s + ".yml"), "w") as f:
            f.write(service_model(s))
    return directory


def alert_key(a):
    """What must be identical between two daemons for one alert: everything but
    the store's row id."""
    return json.dumps({k: v for k, v in a.items() if k != "id"}, sort_keys=True)


def serve_in_thread(handler, port=0):
    """A ThreadingHTTPServer on 127.0.0.1:port (0: a free port) with handler,
    serving in a daemon thread; its port is server.server_address[1]. Stop it
    with shutdown() and then server_close()."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class OkHandler(BaseHTTPRequestHandler):
    """Answers every GET with 200 and an empty body; logs nothing."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class Webhook:
    """Alertmanager's webhook receiver: records every JSON document posted."""

    def __init__(self):
        self.lock = threading.Lock()
        self.docs = []  # (wall time, parsed body)
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with hook.lock:
                    hook.docs.append((time.time(), body))
                self.send_response(200 if body is not None else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = serve_in_thread(H)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port

    def documents(self):
        with self.lock:
            return list(self.docs)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
