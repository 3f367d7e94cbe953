#!/usr/bin/env python3
"""test_outage.py — outage prediction end to end, on a small part of report
set 101 of data/incidents (never tuned on): each service is generated
(gen_incidents.py), replayed through a fresh daemon with the service model an
operator would write (evaluate.py: SLO 5% errors, p99 1 s, no capacity), and
every alert the daemon fired is scored (score.py).

The services: in set 101, the first service of each incident kind that is
not scraped every 10 s (to keep the test short), and the first two such
healthy controls. Floors and ceilings (docs/outage-prediction.md has the
full sets):

  * every incident is alerted in its window; every incident with a
    precursor is warned before its onset, the bad deploy within 2.5 minutes
    of its canary's start;
  * the sudden failure is alerted within 2 minutes of its onset;
  * at most one alert group per incident;
  * at most one false alarm per service-week (after the two warm-up days),
    and no per-series alert from the services' member series;
  * the service alert explains itself (summary with the SLO and the
    evidence, structured annotations).

test_series_without_model replays the same choice of services of TUNING set
1 (the two controls and the sudden failure) with no service model
(evaluate.py --no-model): every series then alerts on its own with the
daemon's defaults for per-series alerts, and
  * the healthy controls give at most one false alarm per service-week;
  * the sudden failure (errors jumping to 24%) is alerted within 2 minutes
    of its onset (the hard break of per-series alerts).
It runs on a tuning set because on set 101 these defaults do not meet the
first floor (2 false alarms in 1.8 service-weeks: error-ratio gauges of a
small service reading 0 at night; docs/outage-prediction.md): a regression
guard, not a result.

Environment: OUTAGE_REPORT=FILE writes the scoring report there too.
"""
import io
import os
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fslib  # noqa: E402
from fslib import check  # noqa: E402

INC_DIR = os.path.join(fslib.SRCDIR, "data", "incidents")
sys.path.insert(0, INC_DIR)
import evaluate  # noqa: E402
import gen_incidents  # noqa: E402
import score as scoring  # noqa: E402

SET = 101


def chosen(seed=SET):
    specs, kinds, controls = [], set(), 0
    for s in gen_incidents.plan_set(seed):
        if s["step_s"] == 10:
            continue
        if s["kind"] == "control":
            if controls < 2:
                specs.append(s)
                controls += 1
        elif s["kind"] not in kinds:
            kinds.add(s["kind"])
            specs.append(s)
    return specs


def test_outage_prediction():
    work = tempfile.mkdtemp(prefix="foreshock-outage-")
    truths, firings = [], []
    try:
        for spec in chosen():
            t, fs, secs = evaluate.replay(spec, work)
            truths.append(t)
            firings += fs
            print("%s: %d firings (%.0f s)" % (spec["name"], len(fs), secs), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = scoring.score(truths, firings)
    buf = io.StringIO()
    scoring.report(res, buf)
    print(buf.getvalue(), end="")
    if os.environ.get("OUTAGE_REPORT"):
        with open(os.environ["OUTAGE_REPORT"], "w") as f:
            f.write(buf.getvalue())
    s = scoring.summary(res)
    check(s["incidents"] == 5 and s["precursor_incidents"] == 4 and s["sudden"] == 1,
          "the chosen services changed: %s" % s)
    for r in res["incidents"]:
        check(r["lead_min"] is not None, "%s (%s): no alert" % (r["service"], r["kind"]))
        if r["precursor_min"] > 0:
            check(r["lead_min"] > 0, "%s (%s): alert %.1f min after the onset" %
                  (r["service"], r["kind"], -r["lead_min"]))
        else:
            check(r["lead_min"] >= -2, "%s (%s): alert %.1f min after the onset" %
                  (r["service"], r["kind"], -r["lead_min"]))
        if r["kind"] == "deploy":
            # the canary's instance is above the error SLO: warned within
            # 2.5 minutes of the canary's start (the instance_errors component)
            check(r["lead_min"] >= r["precursor_min"] - 2.5,
                  "%s: canary warned %.1f min after its start" %
                  (r["service"], r["precursor_min"] - r["lead_min"]))
        check(len(r["groups"]) <= 1, "%s (%s): %d alert groups: %s" %
              (r["service"], r["kind"], len(r["groups"]), r["groups"]))
    check(s["false_alarms"] <= s["service_weeks"], "%d false alarms in %.1f service-weeks: %s" %
          (s["false_alarms"], s["service_weeks"],
           [(f["service"], f["summary"][:120]) for f in res["false_alarms"]]))
    # per-series anomalies of the services' members are evidence, not alerts
    check(not [f for f in firings if f["alertname"] == "ForeshockAnomaly"],
          "per-series alerts of service members: %s" %
          [f["key"] for f in firings if f["alertname"] == "ForeshockAnomaly"][:5])
    # the page explains itself: what is wrong, against which SLO
    first = [r["first_alert"] for r in res["incidents"]]
    for f in first:
        check(f["alertname"] == "OverloadRisk", "first alert %s" % f)
        check("SLO" in f["summary"] or "limit" in f["summary"], f["summary"])


def test_series_without_model():
    work = tempfile.mkdtemp(prefix="foreshock-outage-")
    truths, firings = [], []
    try:
        for spec in chosen(gen_incidents.TUNING_SEEDS[0]):
            if spec["kind"] not in ("control", "depfail"):
                continue
            t, fs, secs = evaluate.replay(spec, work, model=False)
            truths.append(t)
            firings += fs
            print("%s without a model: %d firings (%.0f s)" % (spec["name"], len(fs), secs),
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = scoring.score(truths, firings)
    buf = io.StringIO()
    scoring.report(res, buf)
    print(buf.getvalue(), end="")
    s = scoring.summary(res)
    check(s["incidents"] == 1 and s["sudden"] == 1, "the chosen services changed: %s" % s)
    lead = res["incidents"][0]["lead_min"]
    check(lead is not None, "the sudden failure was not alerted")
    check(lead >= -2, "the sudden failure was alerted %.1f min after its onset" % -lead)
    check(s["false_alarms"] <= s["service_weeks"], "%d false alarms in %.1f service-weeks: %s" %
          (s["false_alarms"], s["service_weeks"],
           [(f["service"], f["key"], f["summary"][:120]) for f in res["false_alarms"]]))


if __name__ == "__main__":
    fslib.run_tests([test_outage_prediction, test_series_without_model])
