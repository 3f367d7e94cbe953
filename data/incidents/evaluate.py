#!/usr/bin/env python3
"""evaluate.py — replay the labelled incident sets of gen_incidents.py through
the real daemon and score what it alerts (score.py).

Each service of a set is generated, then replayed through a fresh foreshockd
(tests/integration/fslib.py: free loopback port, temporary data directory)
with the default detector model and one service model written the way an
operator would (operator_model(): the roles, an error SLO of 5% and a p99
SLO of 1 s, the container's memory limit, no capacity figure), through
POST /api/v1/import/prometheus in chunks; then every firing transition the
daemon served (/api/v1/alerts/history: service alerts and per-series alerts
alike) is collected and scored.

Usage (from the source tree, with a built daemon):
  FORESHOCK_BUILDDIR=build python3 data/incidents/evaluate.py --seed 101 --seed 102 \
      [--service NAME ...] [--kind KIND ...] [--json FILE] [--keep DIR]
Tuning sets: 1 and 2; report sets: 101 and 102 (gen_incidents.py).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
import fslib  # noqa: E402
import gen_incidents  # noqa: E402
import score as scoring  # noqa: E402

CHUNK = 6 * 1024 * 1024  # bytes per POST (the default max_body is 16 MiB)


def operator_model(spec):
    """The service model an operator would write for this service."""
    job = spec["name"]
    if spec["errors"] == "ratio":
        errors = "  error_ratio: 'http_request_error_ratio{job=\"%s\"}'\n" % job
    else:
        errors = "  errors: 'foreshock:rate:http_requests_total{job=\"%s\",code=~\"5..\"}'\n" % job
    return ("kind: service\n"
            "name: %(job)s\n"
            "signals:\n"
            "  requests: 'foreshock:rate:http_requests_total{job=\"%(job)s\"}'\n"
            "%(errors)s"
            "  latency: 'foreshock:p99:http_request_duration_seconds{job=\"%(job)s\"}'\n"
            "  saturation:\n"
            "    - name: memory\n"
            "      selector: 'process_resident_memory_bytes{job=\"%(job)s\"}'\n"
            "      limit: 2GiB\n"
            "  instances: 'up{job=\"%(job)s\"}'\n"
            "slos:\n"
            "  availability:\n"
            "    objective: 95%%\n"
            "  latency:\n"
            "    threshold: 1s\n" % {"job": job, "errors": errors})


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
                                     {"Content-Type": "text/plain"}, timeout=600)
            fslib.check(status in (200, 204), "import %s -> %d %s" % (path, status, body[:300]))
            n += 1
    return n


def parse_ms(rfc3339):
    import calendar
    date, clock = rfc3339.rstrip("Z").split("T")
    y, mo, dd = (int(x) for x in date.split("-"))
    hh, mi, ss = clock.split(":")
    return calendar.timegm((y, mo, dd, int(hh), int(mi), 0)) * 1000 + int(round(float(ss) * 1000))


def firings_of(d, service):
    """Every firing transition the daemon served, per-series alerts included."""
    hist = d.get_json("/api/v1/alerts/history?limit=0")["data"]["events"]
    out = []
    for ev in hist:
        if ev["state"] != "firing":
            continue
        lab = ev["labels"]
        owner = lab.get("service") or lab.get("job") or ""
        out.append({"service": service, "key": ev["series"], "alertname": lab.get("alertname", ""),
                    "group": "%s/%s" % (lab.get("alertname", ""), owner),
                    "severity": lab.get("severity", ""), "firing_at": parse_ms(ev["at"]),
                    "score": ev.get("score"),
                    "summary": ev.get("annotations", {}).get("summary", "")})
    return out


def replay(spec, work, use_ratio=True, keep=False, model=True):
    """Generate one service, replay it through a fresh daemon; (truth, firings, seconds).
    model=False: no service model at all (every series alerts on its own)."""
    data = os.path.join(work, "data")
    models = os.path.join(work, "models-" + spec["name"])
    os.makedirs(data, exist_ok=True)
    os.makedirs(models, exist_ok=True)
    t0 = time.time()
    truth = gen_incidents.generate(spec, data)
    if not model:
        text = None
    elif spec["errors"] != "ratio" or use_ratio:
        text = operator_model(spec)
    else:  # a daemon without error-ratio gauges: the model has no error signal
        text = "\n".join(ln for ln in operator_model(spec).split("\n") if "error_ratio" not in ln)
    if text is not None:
        with open(os.path.join(models, spec["name"] + ".yml"), "w") as f:
            f.write(text)
    # the history of a week of ~40 series can exceed the default 64 MiB response
    # the daemon's defaults for per-series alerts (series_alerts=None)
    d = fslib.Daemon(args=["--models-dir", models], config="http:\n  max_response: 1GiB\n",
                     series_alerts=None)
    try:
        d.start()
        post_file(d, os.path.join(data, truth["file"]))
        firings = firings_of(d, spec["name"])
    finally:
        d.stop()
        d.cleanup()
        if not keep:
            os.remove(os.path.join(data, truth["file"]))
    return truth, firings, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, action="append", help="set(s) to replay")
    ap.add_argument("--service", action="append", help="only these services")
    ap.add_argument("--kind", action="append", help="only these kinds")
    ap.add_argument("--no-error-ratio", action="store_true",
                    help="leave error-ratio gauges out of the service models")
    ap.add_argument("--no-model", action="store_true",
                    help="replay with no service model: every series alerts on its own "
                    "(the daemon's defaults for unmodelled series)")
    ap.add_argument("--json", help="write the labels and firings here")
    ap.add_argument("--keep", help="keep the generated data in this directory")
    args = ap.parse_args()
    if not os.path.exists(fslib.DAEMON):
        sys.exit("error: daemon not built: '%s' (set FORESHOCK_BUILDDIR)" % fslib.DAEMON)
    work = args.keep or tempfile.mkdtemp(prefix="foreshock-eval-")
    truths, firings = [], []
    try:
        for seed in args.seed or list(gen_incidents.TUNING_SEEDS):
            for spec in gen_incidents.plan_set(seed):
                if args.service and spec["name"] not in args.service:
                    continue
                if args.kind and spec["kind"] not in args.kind:
                    continue
                t, fs, secs = replay(spec, work, not args.no_error_ratio, bool(args.keep),
                                      not args.no_model)
                truths.append(t)
                firings += fs
                print("%s: %d firings (%.0f s)" % (spec["name"], len(fs), secs), file=sys.stderr,
                      flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"incidents": truths, "firings": firings}, f, indent=1)
    scoring.report(scoring.score(truths, firings))


if __name__ == "__main__":
    main()
