#!/usr/bin/env python3
"""foreshock in the Prometheus ecosystem, against the real programs:

1. Prometheus (/usr/bin/prometheus) scrapes tests/integration/exporter.py
   every second and remote_writes (with metadata) to foreshockd; foreshockd
   lists foreshock:rate:http_requests_total and
   foreshock:p99:http_request_duration_seconds and raises an alert on a
   derived signal after the exporter's injected incident (firing on the
   detection: the default `for` is 0s). The daemon runs a copy of
   models/default.yml with a short warm-up (the default's 150 samples would
   take minutes at 1 s scrapes); everything else is the default.
2. promtool (`promtool query instant|range|series|labels`) reads foreshockd's
   Prometheus API: plain selectors, the virtual foreshock_anomaly_score
   family, and the error for unsupported PromQL.
3. vmagent (/usr/bin/vmagent) takes InfluxDB line protocol on its
   -httpListenAddr and forwards it with -remoteWrite.url to foreshockd,
   which then lists the series.

All on loopback, in temporary directories, with bounded waits. A sub-test
whose program is missing is skipped (with the reason printed); the script
exits 77 only if none could run. Every process started here is killed."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fslib import (DAEMON, SRCDIR, VMAGENT, Daemon, Failed, Proc, Skip, check,  # noqa: E402
                   need, start_server, start_vmagent, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("PROMTOOL_BIN", "/usr/bin/promtool")
INCIDENT_AFTER = float(os.environ.get("FORESHOCK_IT_INCIDENT_AFTER", "45"))


def test_model(tmp):
    """models/default.yml with a short warm-up and likelihood start."""
    with open(os.path.join(SRCDIR, "models", "default.yml")) as f:
        text = f.read()
    subs = [(r"(?m)^warmup: \d+", "warmup: 30"), (r"(?m)^(\s+)min_samples: \d+", r"\1min_samples: 20"),
            (r"(?m)^(\s+)for: \S+", r"\1for: 0s"), (r"(?m)^name: \S+", "name: default-it-fast")]
    for pat, rep in subs:
        text, n = re.subn(pat, rep, text)
        check(n == 1, "models/default.yml: cannot rewrite %r for the test model" % pat)
    path = os.path.join(tmp, "fast.yml")
    with open(path, "w") as f:
        f.write(text)
    return path


def series_names(d, match):
    q = urllib.parse.urlencode({"match[]": match})
    return {s.get("__name__") for s in d.get_json("/api/v1/series?" + q)["data"]}


# ---------------------------------------------------------------------------

def test_prometheus_remote_write():
    need(PROMETHEUS, "prometheus")
    tmp = tempfile.mkdtemp(prefix="foreshock-it-prom-")
    d = Daemon(args=["--model", test_model(tmp)])
    procs = []
    try:
        d.start()
        t_exporter = time.time()  # the incident starts INCIDENT_AFTER s after this (or a bit later)
        exp = Proc("exporter", [sys.executable, os.path.join(HERE, "exporter.py"), "--port", "0",
                                "--incident-after", str(INCIDENT_AFTER)], tmp)
        procs.append(exp)
        m = wait_for("the exporter's port", lambda: re.search(r"listening port=(\d+)", exp.text()), 10)
        eport = int(m.group(1))
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: exporter
    static_configs:
      - targets: ['127.0.0.1:%d']
remote_write:
  - url: http://127.0.0.1:%d/api/v1/write
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send: true
      send_interval: 2s
""" % (eport, d.port))
        prom, _ = start_server("prometheus", tmp, procs, lambda ports: [
            PROMETHEUS, "--config.file", os.path.join(tmp, "prometheus.yml"),
            "--storage.tsdb.path", os.path.join(tmp, "tsdb"),
            "--web.listen-address", "127.0.0.1:%d" % ports[0], "--log.level", "warn"], "/-/ready")
        t_start = time.time()

        def derived():
            names = series_names(d, '{__name__=~"foreshock:.*"}')
            return ("foreshock:rate:http_requests_total" in names and
                    "foreshock:p99:http_request_duration_seconds" in names) and names
        names = wait_for("derived series from remote_write", derived, 30)
        print("  derived series after %.1fs: %s" % (time.time() - t_start, sorted(names)))
        # metadata arrived: the counter family is typed as such
        meta = d.get_json("/api/v1/metadata")["data"]
        check(meta.get("http_requests_total", [{}])[0].get("type") == "counter",
              "metadata of http_requests_total: %r" % meta.get("http_requests_total"))
        check(meta.get("http_request_duration_seconds", [{}])[0].get("type") == "histogram",
              "metadata of http_request_duration_seconds: %r" % meta.get("http_request_duration_seconds"))

        def alert():
            exp.check_alive()
            prom.check_alive()
            for a in d.alerts(state="all"):
                if a["series"].startswith("foreshock:"):
                    return a
            return None
        a = wait_for("an alert on a derived series", alert, INCIDENT_AFTER + 60, interval=0.5)
        print("  alert after %.1fs: %s %s score=%s" % (time.time() - t_start, a["series"], a["state"], a["score"]))
        # event time of the alert (the exporter stamps its samples) against the incident
        active = datetime.fromisoformat(a["activeAt"].replace("Z", "+00:00")).timestamp()
        check(active >= t_exporter + INCIDENT_AFTER - 1,
              "alert %.1fs before the incident (a false positive): %r"
              % (t_exporter + INCIDENT_AFTER - active, a))
        # the alert fires on the detection (`for` 0s) and the hold keeps it firing
        def firing():
            return next((x for x in d.alerts(state="firing") if x["series"].startswith("foreshock:")), None)
        f = wait_for("a firing alert on a derived series", firing, 30, interval=0.5)
        print("  firing after %.1fs: %s" % (time.time() - t_start, f["series"]))
        # the alert's series is scored in the query API too
        sel = 'foreshock_anomaly_score{series_name=%s}' % json.dumps(a["series"].split("{")[0])
        r = d.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": sel}))
        check(r["data"]["resultType"] == "vector" and r["data"]["result"],
              "no anomaly score for %s: %r" % (sel, r))
    finally:
        for p in reversed(procs):
            p.stop()
        d.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def promtool(*args):
    r = subprocess.run([PROMTOOL, "query"] + list(args), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def test_promtool_queries():
    need(PROMTOOL, "prometheus")
    # the range query below reaches 30 s back over one sample a second: more
    # than the default in-memory history (history.points: 24)
    d = Daemon(config="history:\n  points: 64\n")
    try:
        d.start()
        now = int(time.time())
        lines = []
        for i in range(60):
            t = now - 60 + i
            lines.append("up,job=node,instance=a value=1 %d" % t)
            lines.append("up,job=node,instance=b value=%d %d" % (i % 2, t))
            lines.append("temperature,room=lab value=%.2f %d" % (20 + i / 10.0, t))
        status, body = d.write(lines)
        check(status == 204, "write: %d %s" % (status, body[:300]))
        url = d.url("")

        rc, out = promtool("instant", url, "up")
        check(rc == 0, "promtool query instant up: rc=%d\n%s" % (rc, out))
        check(re.search(r'up\{instance="a", job="node"\} => 1 @\[', out), "instant up:\n" + out)
        check(re.search(r'up\{instance="b", job="node"\} => 1 @\[', out), "instant up (b):\n" + out)

        rc, out = promtool("instant", url, 'temperature{room="lab"}')
        check(rc == 0 and 'temperature{room="lab"} => 25.9 @[' in out, "instant temperature:\n" + out)

        rc, out = promtool("range", "--start=%d" % (now - 30), "--end=%d" % (now - 1), "--step=10s",
                           url, 'up{instance="b"}')
        check(rc == 0, "promtool query range: rc=%d\n%s" % (rc, out))
        pts = re.findall(r"^\s*([01]) @\[(\d+)\]", out, re.M)
        check(len(pts) == 3, "range up{instance=b}: 3 points expected:\n" + out)
        for v, t in pts:
            check(int(v) == (int(t) - (now - 60)) % 2, "range value at %s: %s\n%s" % (t, v, out))

        rc, out = promtool("instant", url, 'foreshock_anomaly_score{series_name="temperature"}')
        check(rc == 0 and re.search(r'foreshock_anomaly_score\{room="lab", series_name="temperature"\} => ', out),
              "virtual family:\n" + out)

        rc, out = promtool("series", "--match=up", url)
        check(rc == 0 and out.count('__name__="up"') == 2, "promtool query series:\n" + out)
        rc, out = promtool("labels", url, "job")
        check(rc == 0 and out.split() == ["node"], "promtool query labels job:\n" + out)

        rc, out = promtool("instant", url, "rate(up[5m])")
        check(rc != 0 and "unsupported PromQL: only series selectors are supported" in out,
              "unsupported query must fail clearly:\n" + out)
        rc, out = promtool("instant", url, "1+1")
        check(rc == 0 and "2 @[" in out, "scalar 1+1:\n" + out)
    finally:
        d.stop()
        d.cleanup()


def test_vmagent_influx():
    need(VMAGENT, "victoria-metrics")
    tmp = tempfile.mkdtemp(prefix="foreshock-it-vmagent-")
    d = Daemon()
    procs = []
    try:
        d.start()
        _, vport = start_vmagent(tmp, ["-remoteWrite.url=http://127.0.0.1:%d/api/v1/write" % d.port], procs)
        now = int(time.time())
        body = "\n".join("cpu,host=web1 usage_idle=%d,usage_user=%d %d" % (90 - i % 3, 5 + i % 2, (now - 20 + i) * 10**9)
                         for i in range(20)) + "\n"
        req = urllib.request.Request("http://127.0.0.1:%d/write" % vport, data=body.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            check(r.status == 204, "vmagent /write: %d" % r.status)

        def listed():
            return series_names(d, '{__name__=~"cpu_.*",host="web1"}') >= {"cpu_usage_idle", "cpu_usage_user"}
        wait_for("cpu_usage_idle and cpu_usage_user in foreshockd", listed, 30)
        r = d.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": 'cpu_usage_idle{host="web1"}'}))
        res = r["data"]["result"]
        check(len(res) == 1 and res[0]["value"][1] in ("88", "89", "90"), "query cpu_usage_idle: %r" % r)
    finally:
        for p in procs:
            p.stop()
        d.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def run_with_skips(tests):
    """Run test functions; one that raises Skip (a program missing) is skipped.
    Returns the exit status: 77 if nothing ran, 1 on a failure, else 0."""
    if not os.path.exists(DAEMON):
        print("SKIP: %s not built" % DAEMON)
        return 77
    ran = failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            ran += 1
            print("ok %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except Skip as e:
            print("SKIP %s: %s" % (t.__name__, e), flush=True)
        except Exception as e:  # noqa: BLE001 — report every failure
            ran += 1
            failed += 1
            print("FAIL %s: %s: %s" % (t.__name__, type(e).__name__, e), flush=True)
            import traceback
            traceback.print_exc(file=sys.stdout)
    print("%d passed, %d failed, %d skipped" % (ran - failed, failed, len(tests) - ran))
    if ran == 0:
        return 77
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_with_skips([test_prometheus_remote_write, test_promtool_queries, test_vmagent_influx]))
