#!/usr/bin/env python3
"""test_tsdb.py — foreshock's outputs in a real time-series database: the
remote_write exporter (export: in foreshock.yml) against VictoriaMetrics
single-node (/usr/bin/victoria-metrics, Debian package victoria-metrics),
both on free loopback ports.

1. The demo (data/demo/checkout.lp, six hours, shifted to end a minute ago)
   is written to foreshockd in three parts (the exporter reaches
   VictoriaMetrics through a relay the test holds). After the first,
   VictoriaMetrics is stopped cleanly (exit status 0: a forced exit
   loses acknowledged samples) for TSDB_OUTAGE_S seconds (default 8; the documented
   five-minute run sets 300) while the second part is ingested in ten
   slices spread over the outage; VictoriaMetrics is started again on the
   same data directory, and the third part follows. Checks: the exporter retried and
   dropped nothing (foreshock_export_samples_dropped_total 0); every sample
   it was handed was acknowledged; VictoriaMetrics holds exactly that many
   samples; the latency signal's score series has one sample per scrape
   across the outage (no gap); every series carries the external label
   shard="t1" (--shard).
2. Grafana-style queries return data on scores, bands, forecasts, service
   outputs and alerts: rate(), sum by, avg_over_time, max_over_time,
   histogram_quantile (on foreshock_anomaly_score_bucket), offset.
3. Every panel query and annotation query of the shipped Grafana dashboards
   (grafana/dashboards/*.json), with the template variables resolved the way
   Grafana does (label_values() against the TSDB) and Grafana's interval
   variables substituted, returns data over the demo's time range.
Skips (77) when victoria-metrics is not installed."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fslib  # noqa: E402
from fslib import Daemon, check, demo_lines, need, post_lines, start_server, wait_for  # noqa: E402

VM = os.environ.get("VICTORIA_METRICS_BIN", "/usr/bin/victoria-metrics")
OUTAGE_S = float(os.environ.get("TSDB_OUTAGE_S", "8"))
VM_STOP_S = 120
FAMILIES = r"foreshock_.+|ALERTS|ALERTS_FOR_STATE"


class Proxy:
    """A TCP relay on a port the test holds for its whole run, to the
    current VictoriaMetrics (each start gets a fresh port: a port released
    during the outage could be taken by another test running in parallel).
    While VictoriaMetrics is down, connections are closed at once."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.backend = None
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.backend), timeout=5) if self.backend else None
            except OSError:
                b = None
            if b is None:
                c.close()
                continue
            b.settimeout(None)
            for x, y in ((c, b), (b, c)):
                threading.Thread(target=self.pump, args=(x, y), daemon=True).start()

    @staticmethod
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


class Stack:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="foreshock-it-tsdb-")
        self.proxy = Proxy()
        self.vm_port = None
        self.vm_dir = os.path.join(self.tmp, "vm")
        self.vm = None
        self.procs = []  # every VictoriaMetrics started, for cleanup()
        self.d = None

    def vm_start(self):
        n = len(glob.glob(os.path.join(self.tmp, "vm*.log")))
        # a restart may get another port: the daemon exports through the proxy
        self.vm, (self.vm_port,) = start_server("vm%d" % n, self.tmp, self.procs, lambda ports: [
            VM, "-httpListenAddr=127.0.0.1:%d" % ports[0], "-storageDataPath=" + self.vm_dir,
            "-retentionPeriod=1", "-search.latencyOffset=0s", "-search.disableCache",
            "-http.maxGracefulShutdownDuration=%ds" % VM_STOP_S, "-loggerLevel=WARN"], "/health")
        self.proxy.backend = self.vm_port

    def vm_stop(self):
        # a clean stop (SIGTERM: VictoriaMetrics flushes what it buffers). Past
        # -http.maxGracefulShutdownDuration with a request still in flight it
        # exits 255 without flushing and loses samples it already acknowledged
        # (the default 7 s is reached on a loaded machine), hence VM_STOP_S and
        # the exit status check.
        self.proxy.backend = None
        self.vm.proc.terminate()
        rc = self.vm.proc.wait(VM_STOP_S + 60)
        self.vm.log.close()
        check(rc == 0, "victoria-metrics did not stop cleanly (exit %d), acknowledged samples are lost:\n%s"
              % (rc, self.vm.text()[-2000:]))

    def q(self, path, **params):
        url = "http://127.0.0.1:%d%s?%s" % (self.vm_port, path, urllib.parse.urlencode(params, doseq=True))
        with urllib.request.urlopen(url, timeout=60) as r:
            j = json.loads(r.read())
        check(j.get("status") == "success", "%s %r: %r" % (path, params, j))
        return j["data"]

    def flush(self):
        urllib.request.urlopen("http://127.0.0.1:%d/internal/force_flush" % self.vm_port, timeout=30).read()

    def cleanup(self):
        for p in self.procs:
            p.stop()
        self.proxy.close()
        if self.d:
            self.d.stop()
            self.d.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


def metrics(d, *names):
    """The values of names from one /metrics scrape (one consistent reading)."""
    status, body = d.get("/metrics")
    check(status == 200, "/metrics -> %d" % status)
    out = []
    for name in names:
        m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), body.decode(), re.M)
        check(m, "/metrics has no %s" % name)
        out.append(float(m.group(1)))
    return out


def metric(d, name):
    return metrics(d, name)[0]


def drained(d):
    queued, sent, dropped, total = metrics(d, "foreshock_export_queue_samples", "foreshock_export_samples_sent_total",
                                           "foreshock_export_samples_dropped_total", "foreshock_export_samples_total")
    return queued == 0 and sent + dropped == total


def substitute(expr, values, t0, t1):
    rng = "%ds" % int(t1 - t0)
    for k, v in (("$__rate_interval", "2m"), ("$__interval", "1m"), ("$__range", rng)):
        expr = expr.replace(k, v)
    for k, v in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${%s}" % k, v).replace("$" + k, v)
    check("$" not in expr, "unresolved variable in %r" % expr)
    return expr


def resolve_vars(st, dash, t0, t1):
    """Template variables as Grafana resolves them: label_values(selector, label)
    against the datasource; the first value (or '.*' for 'All')."""
    values = {}
    for v in dash.get("templating", {}).get("list", []):
        q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        q = substitute(q, values, t0, t1)
        m = re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", q.strip())
        check(m, "variable %s: unsupported query %r" % (v["name"], q))
        params = {"start": t0, "end": t1}
        if m.group(1):
            params["match[]"] = m.group(1)
        vals = st.q("/api/v1/label/%s/values" % m.group(2), **params)
        check(vals, "variable %s: %s has no values" % (v["name"], q))
        values[v["name"]] = ".*" if v.get("includeAll") and v.get("multi") else vals[0]
        if v["name"] == "service":
            check("checkout" in vals, "service variable lacks checkout: %r" % vals)
            values["service"] = "checkout"
    return values


def run_queries(st, t0, t1):
    step = 60
    queries = [
        # scores, bands, forecasts
        "sum by (series_name) (foreshock_anomaly_score)",
        "avg_over_time(foreshock_anomaly_score[15m])",
        "avg_over_time(foreshock_expected_upper[10m]) - avg_over_time(foreshock_expected_lower[10m])",
        "max_over_time(foreshock_forecast_upper[10m])",
        'foreshock_forecast_value{series_name="foreshock:p99:http_request_duration_seconds"} offset 15m',
        'histogram_quantile(0.9, sum by (le) (rate(foreshock_anomaly_score_bucket[10m])))',
        'histogram_quantile(0.99, sum by (le, foreshock_service) (rate(foreshock_anomaly_score_bucket{foreshock_service="checkout"}[10m])))',
        # services
        "rate(foreshock_service_requests_total[5m])",
        "sum by (service) (rate(foreshock_service_errors_total[5m])) / sum by (service) (rate(foreshock_service_requests_total[5m]))",
        "max_over_time(foreshock_service_risk[10m])",
        "min by (service, breach) (foreshock_service_time_to_breach_seconds)",
        'foreshock_service_burn_rate{window="long"}',
        # alerts
        'sum by (alertname, alertstate) (ALERTS)',
        'count by (alertname) (ALERTS{alertstate="firing", service="checkout"})',
        "avg_over_time(ALERTS_FOR_STATE[10m])",
    ]
    for q in queries:
        r = st.q("/api/v1/query_range", query=q, start=t0, end=t1, step=step)
        check(r["result"] and any(s["values"] for s in r["result"]), "no data for %s" % q)
    return len(queries)


def run_dashboards(st, t0, t1):
    n = 0
    files = sorted(glob.glob(os.path.join(fslib.SRCDIR, "grafana", "dashboards", "*.json")))
    check(len(files) >= 3, "dashboards missing: %r" % files)
    for path in files:
        with open(path) as f:
            dash = json.load(f)
        check(dash["uid"].startswith("foreshock-") and dash["panels"], "%s: no uid or panels" % path)
        values = resolve_vars(st, dash, t0, t1)
        exprs = []
        for p in dash["panels"]:
            check(p["datasource"]["uid"] == "foreshock-tsdb", "%s: panel %r uses another datasource" % (path, p["title"]))
            for t in p.get("targets", []):
                exprs.append((p["title"], t["expr"], t.get("instant", False)))
        for a in dash.get("annotations", {}).get("list", []):
            if a.get("expr"):
                exprs.append(("annotation " + a["name"], a["expr"], False))
        for title, expr, instant in exprs:
            e = substitute(expr, values, t0, t1)
            if instant:
                r = st.q("/api/v1/query", query=e, time=t1)
                ok = bool(r["result"])
            else:
                r = st.q("/api/v1/query_range", query=e, start=t0, end=t1, step=60)
                ok = any(s["values"] for s in r["result"])
            check(ok, "%s: panel %r: no data for %s" % (os.path.basename(path), title, e))
            n += 1
    return n


def test_export_outage_queries_dashboards():
    need(VM, "victoria-metrics")
    st = Stack()
    try:
        st.vm_start()
        config = ("history:\n  points: 1500\n"
                  "export:\n  url: http://127.0.0.1:%d/api/v1/write\n  flush_interval: 200ms\n"
                  "  max_backoff: 2s\n" % st.proxy.port)
        st.d = d = Daemon(config=config, args=["--models-dir", os.path.join(fslib.SRCDIR, "models"),
                                               "--shard", "t1"])
        d.start()
        raw = demo_lines()
        last = int(raw[-1].rsplit(" ", 1)[1])
        shift = int(time.time()) - 60 - last
        lines = demo_lines(shift_s=shift)
        stamps = sorted({int(x.rsplit(" ", 1)[1]) for x in lines})
        t0, t1 = stamps[0], stamps[-1]
        a, b = len(lines) // 2, len(lines) * 4 // 5

        post_lines(d, lines[:a])
        wait_for("the first part exported", lambda: drained(d), 60)
        check(metric(d, "foreshock_export_samples_sent_total") > 0, "nothing exported")

        st.vm_stop()
        failed_before = metric(d, "foreshock_export_requests_failed_total")
        # ingest the middle part spread over the outage
        t_down = time.time()
        slices = 10
        for i in range(slices):
            post_lines(d, lines[a + (b - a) * i // slices:a + (b - a) * (i + 1) // slices])
            while time.time() - t_down < OUTAGE_S * (i + 1) / slices:
                time.sleep(0.2)
        queued = metric(d, "foreshock_export_queue_samples")
        check(queued > 0, "nothing queued while the TSDB was down")
        check(metric(d, "foreshock_export_requests_failed_total") > failed_before, "no failed attempt while down")
        print("outage: %.0fs, %d samples queued, %d bytes" % (time.time() - t_down, queued,
                                                             metric(d, "foreshock_export_queue_bytes")))
        st.vm_start()
        post_lines(d, lines[b:])
        wait_for("the queue drained after the outage", lambda: drained(d), 120)
        handed, sent, dropped = metrics(d, "foreshock_export_samples_total", "foreshock_export_samples_sent_total",
                                        "foreshock_export_samples_dropped_total")
        check(dropped == 0, "%d samples dropped" % dropped)
        check(sent == handed, "sent %d of %d" % (sent, handed))

        def count_stored():
            st.flush()
            r = st.q("/api/v1/query", query='sum(count_over_time({__name__=~"%s"}[%ds]))' % (FAMILIES, t1 - t0 + 600),
                         time=t1 + 1)["result"]
            return float(r[0]["value"][1]) if r else 0

        # /internal/force_flush can return while VictoriaMetrics' own periodic
        # flush still holds a batch it acknowledged (seen under load: one batch
        # missing right after a flush, there a moment later): re-read for a
        # bounded while; a sample still missing then, or one too many, fails
        deadline = time.time() + 30
        stored = count_stored()
        while stored < sent and time.time() < deadline:
            time.sleep(1)
            stored = count_stored()
        if stored != sent:
            parts = []
            for lo, hi in ((t0, int(lines[a].rsplit(" ", 1)[1])), (int(lines[a].rsplit(" ", 1)[1]), int(lines[b].rsplit(" ", 1)[1])),
                           (int(lines[b].rsplit(" ", 1)[1]), t1 + 1)):
                r = st.q("/api/v1/query", query='sum(count_over_time({__name__=~"%s"}[%ds]))' % (FAMILIES, hi - lo), time=hi - 1)["result"]
                parts.append(r[0]["value"][1] if r else "0")
            print("VictoriaMetrics log:\n" + "".join(open(p).read()[-2000:] for p in glob.glob(os.path.join(st.tmp, "vm*.log"))))
            check(False, "VictoriaMetrics holds %d samples (by part: %s), the exporter sent %d" % (stored, parts, sent))
        # the p99 signal of one instance: one score per scrape from its first quantile on, through the outage
        sel = 'foreshock_anomaly_score{series_name="foreshock:p99:http_request_duration_seconds",instance="checkout-1"}'
        cnt = st.q("/api/v1/query", query="count_over_time(%s[%ds])" % (sel, t1 - t0 + 600), time=t1 + 1)["result"]
        check(cnt and int(float(cnt[0]["value"][1])) == len(stamps) - 1,
              "p99 score samples: %r, want %d" % (cnt, len(stamps) - 1))
        # the external labels (--shard) are on every exported series
        for sel in ('{__name__=~"%s",shard="t1"}' % FAMILIES, '{__name__=~"%s",shard=""}' % FAMILIES):
            r = st.q("/api/v1/query", query="count(last_over_time(%s[%ds]))" % (sel, t1 - t0 + 600), time=t1 + 1)["result"]
            n = int(float(r[0]["value"][1])) if r else 0
            check((n > 0) == ('"t1"' in sel), "%s: %d series" % (sel, n))
        print("exported %d samples, %d in VictoriaMetrics, none dropped" % (sent, stored))

        nq = run_queries(st, t0, t1)
        nd = run_dashboards(st, t0, t1)
        print("%d queries and %d dashboard queries returned data" % (nq, nd))
    finally:
        st.cleanup()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    fslib.run_tests([test_export_outage_queries_dashboards])
