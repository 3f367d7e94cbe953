#!/usr/bin/env python3
"""score.py — score service alerts against the labelled incidents of
gen_incidents.py: lead time (onset minus the first alert that fired during
the incident's window) per incident, and false alarms (alert episodes that
fired outside every incident window) per service-day.

Input: incidents.json and a list of firing alerts, each
{"service": NAME, "alertname": A, "severity": S, "firing_at": MS}.
Command line: score.py incidents.json transitions.jsonl, where each line is
{"key", "ev", "ts", "labels"} as tests/integration/test_outage.py writes it.

An incident's window runs from its precursor start (or its onset, when it
has no precursor) to one hour after its end; an alert that fires in it
counts for the incident. Firing alerts of one service less than 30 minutes
apart form one episode; an episode outside every window is one false alarm.
The first `warmup_days` (default 2: the forecasters need two days to find
the daily season) are reported separately.
"""
import json
import sys

HOUR = 3600 * 1000
DAY = 24 * HOUR


def score(incidents, firings, warmup_days=2):
    res = {"incidents": [], "false_alarms": [], "warmup_alarms": [], "service_days": 0.0}
    by_svc = {}
    for f in sorted(firings, key=lambda f: f["firing_at"]):
        by_svc.setdefault(f["service"], []).append(f)
    for inc in incidents:
        svc = inc["service"]
        fs = by_svc.get(svc, [])
        wins = []
        if inc.get("onset"):
            lo = inc["precursor_start"] or inc["onset"]
            wins.append((lo, inc["incident_end"] + HOUR))
            hits = [f for f in fs if lo <= f["firing_at"] <= inc["incident_end"] + HOUR]
            first = hits[0] if hits else None
            res["incidents"].append({
                "service": svc, "kind": inc["kind"], "onset": inc["onset"],
                "precursor_min": (inc["onset"] - inc["precursor_start"]) / 60000.0
                if inc["precursor_start"] else 0.0,
                "first_alert": first,
                "lead_min": (inc["onset"] - first["firing_at"]) / 60000.0 if first else None,
            })
        warm_end = inc["start"] + warmup_days * DAY
        res["service_days"] += (inc["end"] - warm_end) / DAY
        if inc.get("onset"):
            res["service_days"] -= (wins[0][1] - wins[0][0]) / DAY
        last = None
        for f in fs:
            t = f["firing_at"]
            if any(a <= t <= b for a, b in wins):
                continue
            if last is not None and t - last < 30 * 60000:
                last = t
                continue
            last = t
            (res["warmup_alarms"] if t < warm_end else res["false_alarms"]).append(f)
    return res


def firings_from_transitions(lines):
    out = []
    for ln in lines:
        ln = ln.strip()
        if not ln:
            continue
        tr = json.loads(ln)
        if tr["ev"] != "firing":
            continue
        lab = tr["labels"]
        out.append({"service": lab["service"], "alertname": lab["alertname"],
                    "severity": lab.get("severity", ""), "firing_at": tr["ts"],
                    "key": tr["key"], "summary": tr.get("annotations", {}).get("summary", "")})
    return out


def report(res, out=sys.stdout):
    print("%-14s %-20s %10s %10s  %s" % ("service", "incident", "precursor", "lead", "first alert"), file=out)
    for r in res["incidents"]:
        f = r["first_alert"]
        print("%-14s %-20s %8.1f m %8s  %s" % (
            r["service"], r["kind"], r["precursor_min"],
            "%.1f m" % r["lead_min"] if r["lead_min"] is not None else "missed",
            "%s/%s" % (f["alertname"], f["severity"]) if f else "-"), file=out)
    days = res["service_days"]
    n = len(res["false_alarms"])
    print("false alarms: %d in %.1f service-days after warm-up (%.2f per service-week); "
          "%d during warm-up" % (n, days, 7 * n / days if days else 0, len(res["warmup_alarms"])),
          file=out)
    for f in res["false_alarms"] + res["warmup_alarms"]:
        print("  %s %s/%s at %d: %s" % (f["service"], f["alertname"], f["severity"],
                                         f["firing_at"], f.get("summary", "")[:160]), file=out)


def main():
    incidents = json.load(open(sys.argv[1]))
    firings = []
    for p in sys.argv[2:]:
        firings += firings_from_transitions(open(p))
    report(score(incidents, firings))


if __name__ == "__main__":
    main()
