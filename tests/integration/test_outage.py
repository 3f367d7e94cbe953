#!/usr/bin/env python3
"""test_outage.py — outage prediction end to end, on a small part of report
set 101 of data/incidents (never tuned on): each service is generated
(gen_incidents.py), replayed through a fresh daemon with the service model an
operator would write (evaluate.py: SLO 5% errors, p99 1 s, no capacity), and
every alert the daemon fired is scored (score.py).

The services: in set 101, the first service of each incident kind that is
not scraped every 10 s (to keep the test short), and the first two such
healthy controls. What is asserted (docs/outage-prediction.md has the full
sets and the figures):

  * every incident is alerted in its window (the baseline: per-series
    anomalies on every series; the ratio-only retry storm is warned only
    at its onset, its model having no error signal).

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


def chosen():
    specs, kinds, controls = [], set(), 0
    for s in gen_incidents.plan_set(SET):
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
            t, fs, secs = evaluate.replay(spec, work, use_ratio=False)
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
    # the figures the scorer reports are computed
    for k in ("false_alarms_per_week", "max_groups", "median_lead_min"):
        check(s[k] is not None, "%s missing: %s" % (k, s))


if __name__ == "__main__":
    fslib.run_tests([test_outage_prediction])
