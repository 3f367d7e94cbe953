#!/usr/bin/env python3
"""test_outage.py — outage prediction end to end: generate the labelled
incident telemetry (data/incidents/gen_incidents.py), replay it through the
real daemon's Prometheus-text ingest (POST /api/v1/import/prometheus) with
one service model per scenario (models/http-service.yml with the scenario's
job), read the service alerts back from the store (/api/v1/alerts/history)
and score them (data/incidents/score.py):

  * every incident with a precursor is warned before its outage onset;
  * surges and leaks are warned at least 10 minutes ahead;
  * quiet data raise no alert; at most one false alarm per service-week
    overall (after the two warm-up days the forecasters need);
  * the OverloadRisk alert explains itself (summary, structured evidence);
  * GET /api/v1/services shows the services' state.

Environment: OUTAGE_REPORT=FILE also writes the scoring report there;
OUTAGE_KEEP=DIR keeps the generated data and the alert list in DIR;
OUTAGE_SEED=N generates with other seeds (gen_incidents.py --seed N), for a
sensitivity check (the thresholds were chosen on seed 0).
"""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fslib  # noqa: E402
from fslib import Daemon, check  # noqa: E402

INC_DIR = os.path.join(fslib.SRCDIR, "data", "incidents")
sys.path.insert(0, INC_DIR)
import gen_incidents  # noqa: E402
import score as scoring  # noqa: E402

CHUNK = 6 * 1024 * 1024  # bytes per POST (the default max_body is 16 MiB)


def model_for(job):
    with open(os.path.join(fslib.SRCDIR, "models", "http-service.yml")) as f:
        text = f.read()
    check('job="checkout"' in text and "\nname: checkout\n" in text,
          "models/http-service.yml no longer has the checkout job this test rewrites")
    return text.replace('job="checkout"', 'job="%s"' % job).replace("\nname: checkout\n", "\nname: %s\n" % job)


def post_file(d, path):
    """POST a time-ordered Prometheus text file in chunks cut at line ends."""
    n = 0
    with open(path, "rb") as f:
        rest = b""
        while True:
            block = f.read(CHUNK)
            if not block and not rest:
                break
            data = rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
            else:
                rest = b""
            status, body = d.request("POST", "/api/v1/import/prometheus", data,
                                     {"Content-Type": "text/plain"}, timeout=300)
            check(status in (200, 204), "import %s -> %d %s" % (path, status, body[:300]))
            n += 1
    return n


def service_firings(d):
    hist = d.get_json("/api/v1/alerts/history?limit=0")["data"]["events"]
    out = []
    for ev in hist:
        if not ev.get("series", "").startswith("service:") or ev["state"] != "firing":
            continue
        lab = ev["labels"]
        out.append({"service": lab["service"], "alertname": lab["alertname"],
                    "severity": lab.get("severity", ""), "key": ev["series"],
                    "firing_at": parse_ms(ev["at"]), "summary": ev["annotations"].get("summary", ""),
                    "annotations": ev["annotations"]})
    return out


def parse_ms(rfc3339):
    # 2026-11-06T10:48:00.000Z
    import calendar
    date, clock = rfc3339.rstrip("Z").split("T")
    y, mo, dd = (int(x) for x in date.split("-"))
    hh, mi, ss = clock.split(":")
    sec = float(ss)
    return (calendar.timegm((y, mo, dd, int(hh), int(mi), 0)) * 1000 + int(round(sec * 1000)))


def test_outage_prediction():
    keep = os.environ.get("OUTAGE_KEEP")
    work = keep or tempfile.mkdtemp(prefix="foreshock-outage-")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "data")
    models = os.path.join(work, "models")
    os.makedirs(data, exist_ok=True)
    os.makedirs(models, exist_ok=True)
    t0 = time.time()
    seed = int(os.environ.get("OUTAGE_SEED", "0"))
    truths = [gen_incidents.generate(n, data, False, seed) for n in gen_incidents.SCENARIOS]
    with open(os.path.join(data, "incidents.json"), "w") as f:
        json.dump(truths, f, indent=1, sort_keys=True)
    for t in truths:
        with open(os.path.join(models, t["service"] + ".yml"), "w") as f:
            f.write(model_for(t["service"]))
    t_gen = time.time() - t0
    d = Daemon(args=["--models-dir", models])
    try:
        d.start()
        svcs = d.get_json("/api/v1/services")["data"]
        check(len(svcs) == len(truths), "services loaded: %s" % [s["name"] for s in svcs])
        t1 = time.time()
        posts = 0
        for t in truths:
            posts += post_file(d, os.path.join(data, t["file"]))
        t_ingest = time.time() - t1
        firings = service_firings(d)
        svcs = d.get_json("/api/v1/services")["data"]
    finally:
        d.stop()
        if not keep:
            d.cleanup()
    if keep:
        with open(os.path.join(work, "firings.json"), "w") as f:
            json.dump(firings, f, indent=1)
    res = scoring.score(truths, firings)
    import io
    buf = io.StringIO()
    scoring.report(res, buf)
    report = buf.getvalue()
    report += "generation %.1fs, ingest %.1fs (%d posts)\n" % (t_gen, t_ingest, posts)
    print(report, end="")
    if os.environ.get("OUTAGE_REPORT"):
        with open(os.environ["OUTAGE_REPORT"], "w") as f:
            f.write(report)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)

    # every service evaluated its grid and saw its members
    for s in svcs:
        check(s["steps"] > 1000 and s["members"] >= 9, "service %s: %s" % (s["name"], s))
        check(s["late_dropped"] < s["samples"] / 1000, "service %s dropped %d late samples" %
              (s["name"], s["late_dropped"]))
    # warned before every onset that has a precursor
    for r in res["incidents"]:
        check(r["lead_min"] is not None, "%s (%s): no alert" % (r["service"], r["kind"]))
        if r["precursor_min"] > 0:
            check(r["lead_min"] > 0, "%s (%s): alert %.1f min after the onset" %
                  (r["service"], r["kind"], -r["lead_min"]))
        if r["kind"] in ("traffic surge", "memory leak"):
            check(r["lead_min"] >= 10, "%s: lead %.1f min < 10" % (r["service"], r["lead_min"]))
    # quiet data: no alert at all; elsewhere at most one per service-week
    quiet = [f for f in firings if f["service"] == "quiet"]
    check(not quiet, "alerts on quiet data: %s" % [(f["key"], f["summary"]) for f in quiet])
    fa = len(res["false_alarms"])
    check(fa * 7 <= res["service_days"], "%d false alarms in %.1f service-days" % (fa, res["service_days"]))
    # the overload alert explains itself
    risk = [f for f in firings if f["alertname"] == "OverloadRisk" and f["service"] == "surge"]
    check(risk, "no OverloadRisk for the surge")
    a = risk[0]["annotations"]
    check("heading for an outage" in a["summary"] and "seasonal forecast" in a["summary"], a["summary"])
    for k in ("risk", "risk_load", "risk_capacity", "risk_latency", "load_vs_forecast",
              "capacity_utilization", "latency_s", "burn_rates"):
        check(k in a, "annotation %s missing: %s" % (k, sorted(a)))


if __name__ == "__main__":
    fslib.run_tests([test_outage_prediction])
