#!/usr/bin/env python3
"""Messy input: `foreshock backtest`, `foreshock replay` and the daemon drop
the same samples (repeated timestamp: duplicate; timestamp before the last
accepted one: out_of_order; missing or NaN value: non_finite, a gap), count
them under the same names, and give the same scores to every other sample.
The series is synthetic, made here (a level with noise and a step)."""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fslib import CLI, Daemon, check, run_tests  # noqa: E402

T0 = 1767225600  # 2026-01-01T00:00:00Z
N = 1400
STEP = 60


def messy_rows():
    """[(epoch_s, value_text)] with repeated and backward timestamps and
    missing values; and the expected drop counts."""
    rng = random.Random(11)
    rows = []
    t = T0
    counts = {"duplicate": 0, "out_of_order": 0, "non_finite": 0}
    for i in range(N):
        v = 40 + rng.gauss(0, 1.0) + (25 if i >= 1000 else 0)
        rows.append((t, "%.4f" % v))
        if i % 97 == 50:    # the same timestamp again (a different value)
            rows.append((t, "%.4f" % (v + 1)))
            counts["duplicate"] += 1
        if i % 131 == 70:   # back by five minutes
            rows.append((t - 300, "%.4f" % v))
            counts["out_of_order"] += 1
        if i % 113 == 30:   # a row without a value, then one with NaN
            t += STEP
            rows.append((t, ""))
            t += STEP
            rows.append((t, "NaN"))
            counts["non_finite"] += 2
        t += STEP
    return rows, counts


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("timestamp,value\n")
        for t, v in rows:
            f.write("%d,%s\n" % (t, v))


def replay(csv):
    p = subprocess.run([CLI, "replay", csv], capture_output=True, text=True)
    check(p.returncode == 0, "replay exit %d: %s" % (p.returncode, p.stderr[-500:]))
    out = p.stdout.strip().split("\n")[1:]
    return out, p.stderr


def test_messy_agreement():
    rows, counts = messy_rows()
    tmp = tempfile.mkdtemp(prefix="foreshock-messy-")
    try:
        corpus = os.path.join(tmp, "corpus")
        os.makedirs(os.path.join(corpus, "data", "synthetic"))
        csv = os.path.join(corpus, "data", "synthetic", "messy.csv")
        write_csv(csv, rows)
        with open(os.path.join(corpus, "windows.json"), "w") as f:
            json.dump({"synthetic/messy.csv": []}, f)

        # replay: one output row per input row, dropped rows marked and counted
        out, err = replay(csv)
        check(len(out) == len(rows), "replay rows %d, want %d" % (len(out), len(rows)))
        dropped = [l.endswith(",dropped") for l in out]
        check(sum(dropped) == sum(counts.values()), "replay dropped %d, want %d" % (sum(dropped), sum(counts.values())))
        m = re.search(r"rows dropped \(non_finite (\d+), duplicate (\d+), out_of_order (\d+)\)", err)
        check(m is not None, "replay summary: %s" % err[-300:])
        check((int(m.group(1)), int(m.group(2)), int(m.group(3))) ==
              (counts["non_finite"], counts["duplicate"], counts["out_of_order"]), "replay counts: %s" % m.group(0))
        rscore = [None if d else float(l.split(",")[2]) for l, d in zip(out, dropped)]
        check(max(s for s in rscore if s is not None) >= 0.49, "the step is detected")

        # backtest: same counts, same scores, 0 for the dropped rows
        p = subprocess.run([CLI, "backtest", "--corpus", corpus, "--out", os.path.join(tmp, "bt"), "--quiet"],
                           capture_output=True, text=True)
        check(p.returncode == 0, "backtest exit %d: %s %s" % (p.returncode, p.stdout, p.stderr))
        want = "%d duplicate, %d out_of_order, %d non_finite" % (counts["duplicate"], counts["out_of_order"],
                                                                 counts["non_finite"])
        check(want in p.stdout, "backtest counts, want '%s': %s" % (want, p.stdout))
        with open(os.path.join(tmp, "bt", "synthetic", "messy.csv")) as f:
            bt = [l.rstrip("\n").split(",") for l in f.readlines()[1:]]
        check(len(bt) == len(rows), "backtest rows %d, want %d" % (len(bt), len(rows)))
        worst = 0.0
        for (t, v), b, r in zip(rows, bt, rscore):
            check(b[1] == ("" if v in ("", "NaN") else b[1]), "missing value written empty: %s" % b)
            if r is None:
                check(float(b[2]) == 0.0, "dropped row scores 0 in the backtest: %s" % b)
            else:
                worst = max(worst, abs(float(b[2]) - r))
        check(worst < 2e-6, "backtest and replay scores agree (max diff %g)" % worst)

        # the daemon: the same rows through the JSON import ("NaN" for a missing value)
        d = Daemon(config="history:\n  points: 3000\n").start()
        try:
            samples = [[t * 1000, "NaN" if v in ("", "NaN") else float(v)] for t, v in rows]
            for k in range(0, len(samples), 300):
                body = json.dumps({"labels": {"__name__": "messy"}, "samples": samples[k:k + 300]})
                d.request("POST", "/api/v1/import", body.encode(), {"Content-Type": "application/json"})
            pts = d.get_json("/api/v1/anomalies?series=messy&start=0&end=9999999999")["data"][0]["points"]
            kept = [s for s in rscore if s is not None]
            check(len(pts) == len(kept), "daemon kept %d points, replay %d" % (len(pts), len(kept)))
            worst = max(abs(p_["score"] - s) for p_, s in zip(pts, kept))
            check(worst < 1e-5, "daemon and replay scores agree (max diff %g)" % worst)
            status, metrics = d.get("/metrics")
            text = metrics.decode() if isinstance(metrics, bytes) else metrics
            for reason, n in counts.items():
                m = re.search(r'foreshock_samples_rejected_total\{reason="%s"\} (\d+)' % reason, text)
                check(m is not None and int(m.group(1)) == n,
                      "daemon rejected %s: %s, want %d" % (reason, m.group(1) if m else None, n))
        finally:
            d.stop()
            d.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_messy_agreement])
