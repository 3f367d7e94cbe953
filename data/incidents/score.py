#!/usr/bin/env python3
"""score.py — score the alerts a daemon fired against the labelled incidents
of gen_incidents.py.

Input: the labels (incidents.json) and the firing alerts (evaluate.py
--json writes both to one file: `score.py RUN.json`), each
{"service": NAME, "key": ALERT KEY, "alertname": A, "group": G,
 "severity": S, "firing_at": MS, "summary": TEXT}, where `service` is the
scenario the alert came from (evaluate.py replays one scenario per daemon, so
every alert of that daemon counts, per-series alerts included) and `group`
is the Alertmanager group the alert lands in with the shipped configuration
(group_by alertname and service, or job for an alert without a service).

Per incident, its window runs from the precursor start (or the onset, for a
sudden failure) to one hour after the incident's end; alerts that fire in
the window count for the incident:
  * warned: the first one fired before the onset (lead = onset - firing);
  * for a sudden failure: alerted within 2 minutes of the onset;
  * groups: the number of distinct alert groups that fired in the window.
Outside every window, firings of one service less than 30 minutes apart form
one episode and each episode is one false alarm; the first `warmup_days`
(2: the forecasters need two days to find the daily season) are counted
apart. Service-weeks are the observed time after warm-up minus the incident
windows.
"""
import json
import statistics
import sys

MIN = 60000
HOUR = 60 * MIN
DAY = 24 * HOUR
SUDDEN_MS = 2 * MIN


def score(incidents, firings, warmup_days=2):
    res = {"incidents": [], "false_alarms": [], "warmup_alarms": [], "service_days": 0.0,
           "warmup_days": 0.0}
    by_svc = {}
    for f in sorted(firings, key=lambda f: f["firing_at"]):
        by_svc.setdefault(f["service"], []).append(f)
    for inc in incidents:
        svc = inc["service"]
        fs = by_svc.get(svc, [])
        wins = []
        if inc.get("onset"):
            lo = inc["precursor_start"] or inc["onset"]
            hi = inc["incident_end"] + HOUR
            wins.append((lo, hi))
            hits = [f for f in fs if lo <= f["firing_at"] <= hi]
            first = hits[0] if hits else None
            lead = (inc["onset"] - first["firing_at"]) / MIN if first else None
            res["incidents"].append({
                "service": svc, "kind": inc["kind"], "onset": inc["onset"],
                "step_s": inc.get("step_s"), "errors": inc.get("errors"),
                "precursor_min": (inc["onset"] - inc["precursor_start"]) / MIN
                if inc["precursor_start"] else 0.0,
                "first_alert": first, "lead_min": lead,
                "groups": sorted({f["group"] for f in hits}),
                "alerts": sorted({f["key"] for f in hits}),
            })
        warm_end = inc["start"] + warmup_days * DAY
        res["warmup_days"] += (min(warm_end, inc["end"]) - inc["start"]) / DAY
        days = (inc["end"] - warm_end) / DAY
        for a, b in wins:
            days -= (min(b, inc["end"]) - max(a, warm_end)) / DAY
        res["service_days"] += max(0.0, days)
        last = None
        for f in fs:
            t = f["firing_at"]
            if any(a <= t <= b for a, b in wins):
                continue
            if last is not None and t - last < 30 * MIN:
                last = t
                continue
            last = t
            (res["warmup_alarms"] if t < warm_end else res["false_alarms"]).append(f)
    return res


def summary(res):
    """The headline figures of a scored run (a dict)."""
    inc = res["incidents"]
    pre = [r for r in inc if r["precursor_min"] > 0]
    sudden = [r for r in inc if r["precursor_min"] == 0]
    warned = [r for r in pre if r["lead_min"] is not None and r["lead_min"] > 0]
    fast = [r for r in sudden if r["lead_min"] is not None and -r["lead_min"] <= SUDDEN_MS / MIN]
    leads = [r["lead_min"] for r in warned]
    weeks = res["service_days"] / 7.0
    groups = [len(r["groups"]) for r in inc]
    return {
        "incidents": len(inc),
        "precursor_incidents": len(pre),
        "warned": len(warned),
        "warned_pct": 100.0 * len(warned) / len(pre) if pre else None,
        "median_lead_min": statistics.median(leads) if leads else None,
        "sudden": len(sudden),
        "sudden_within_2min": len(fast),
        "missed": sum(1 for r in inc if r["lead_min"] is None),
        "false_alarms": len(res["false_alarms"]),
        "service_weeks": weeks,
        "false_alarms_per_week": len(res["false_alarms"]) / weeks if weeks else None,
        "warmup_alarms": len(res["warmup_alarms"]),
        "max_groups": max(groups) if groups else 0,
        "incidents_over_one_group": sum(1 for g in groups if g > 1),
        "mean_alerts": statistics.mean([len(r["alerts"]) for r in inc]) if inc else 0,
    }


def report(res, out=sys.stdout):
    print("%-20s %-10s %4s %6s %9s %9s %6s  %s" % (
        "service", "kind", "step", "errors", "precursor", "lead", "groups", "first alert"),
        file=out)
    for r in res["incidents"]:
        f = r["first_alert"]
        print("%-20s %-10s %4s %6s %7.1f m %9s %6d  %s" % (
            r["service"], r["kind"], r["step_s"], r["errors"], r["precursor_min"],
            "%.1f m" % r["lead_min"] if r["lead_min"] is not None else "missed",
            len(r["groups"]), "%s/%s" % (f["alertname"], f["severity"]) if f else "-"),
            file=out)
    kinds = []
    for r in res["incidents"]:
        if r["kind"] not in kinds:
            kinds.append(r["kind"])
    print("\n%-10s %3s %8s %12s %11s %10s" % ("kind", "n", "warned", "median lead", "<=2 min",
                                              "max groups"), file=out)
    for k in kinds:
        rs = [r for r in res["incidents"] if r["kind"] == k]
        pre = [r for r in rs if r["precursor_min"] > 0]
        w = [r for r in pre if r["lead_min"] is not None and r["lead_min"] > 0]
        sud = [r for r in rs if r["precursor_min"] == 0]
        fast = [r for r in sud if r["lead_min"] is not None and r["lead_min"] >= -2]
        print("%-10s %3d %8s %12s %11s %10d" % (
            k, len(rs), "%d/%d" % (len(w), len(pre)) if pre else "-",
            "%.1f m" % statistics.median([r["lead_min"] for r in w]) if w else "-",
            "%d/%d" % (len(fast), len(sud)) if sud else "-",
            max(len(r["groups"]) for r in rs)), file=out)
    s = summary(res)
    print("\nwarned before onset: %d/%d (%s%%), median lead %s min; sudden failures alerted "
          "within 2 min: %d/%d; missed: %d" % (
              s["warned"], s["precursor_incidents"],
              "%.0f" % s["warned_pct"] if s["warned_pct"] is not None else "-",
              "%.1f" % s["median_lead_min"] if s["median_lead_min"] is not None else "-",
              s["sudden_within_2min"], s["sudden"], s["missed"]), file=out)
    print("false alarms: %d in %.1f service-weeks after warm-up (%.2f per service-week); "
          "%d in %.1f warm-up service-days" % (
              s["false_alarms"], s["service_weeks"], s["false_alarms_per_week"] or 0,
              s["warmup_alarms"], res["warmup_days"]), file=out)
    print("alert groups per incident: max %d, %d incidents with more than one; distinct "
          "alerts per incident: mean %.1f" % (s["max_groups"], s["incidents_over_one_group"],
                                              s["mean_alerts"]), file=out)
    for f in res["false_alarms"] + res["warmup_alarms"]:
        print("  false alarm %s %s/%s at %d: %s" % (f["service"], f["alertname"], f["severity"],
                                                    f["firing_at"], f.get("summary", "")[:200]),
              file=out)


def main():
    """score.py RUN.json: the labels and firings evaluate.py --json wrote."""
    if len(sys.argv) != 2:
        sys.exit("usage: score.py RUN.json (written by evaluate.py --json)")
    run = json.load(open(sys.argv[1]))
    report(score(run["incidents"], run["firings"]))


if __name__ == "__main__":
    main()
