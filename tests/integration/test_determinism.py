#!/usr/bin/env python3
"""Replicas raise identical alerts: foreshockd fed the same data with
different arrival batching raise the same alerts (labels, annotations, state,
activeAt/firingAt/resolvedAt, value, score) and the same alert history.

- daemon 1: one connection, one request per timestamp, series in a fixed
  order: the reference;
- daemon 2: four connections at once, each carrying whole services, in
  bodies of random size (1 to 400 lines) with the series of one timestamp
  in random order: every alert identical, service models' included;
- daemon 3: four connections at once, each with its own share of the
  series (a series' samples stay in order, as one sender keeps them), same
  random bodies: every per-series alert identical. Its service models'
  alerts may differ and are not compared: a service's members then arrive
  with unbounded skew between connections, and a service model takes a
  member's sample only up to `lag` grid steps late
  (docs/outage-prediction.md); relays that send in order stay within it.

This is what docs/scaling.md's replicas rely on. The daemons share
`external_url` (the annotations link to it), as replicas of a shard should.
The data is fleet.incident_data() (six services, four incidents). Exit 1
on a difference, with the first differing alerts printed."""
import http.client
import os
import random
import shutil
import sys
import tempfile
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402
from fslib import Daemon, check, run_tests  # noqa: E402

SERVICES = ["checkout", "cart", "search", "auth", "payments", "shipping"]
INCIDENTS = {"checkout": 0, "search": 30, "payments": 60, "cart": 90}


def post(conn, lines):
    body = ("\n".join(lines) + "\n").encode()
    conn.request("POST", "/write?precision=s", body, {"Content-Type": "text/plain"})
    r = conn.getresponse()
    text = r.read()
    check(r.status == 204, "write -> %d %s" % (r.status, text[:200]))


def feed_sequential(d, data):
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    for lines in data:
        post(conn, lines)
    conn.close()


def feed_concurrent(d, data, key, nconn=4, seed=7):
    """nconn connections at once; key(line) picks a line's connection."""
    rng = random.Random(seed)
    shares = [[] for _ in range(nconn)]
    for lines in data:
        per = [[] for _ in range(nconn)]
        for line in lines:
            per[key(line) % nconn].append(line)
        for c in range(nconn):
            rng.shuffle(per[c])  # order within one timestamp
            shares[c].extend(per[c])
    errors = []

    def run(c):
        r = random.Random(seed + c)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
            lines = shares[c]
            i = 0
            while i < len(lines):
                n = r.randint(1, 400)
                post(conn, lines[i:i + n])
                i += n
            conn.close()
        except Exception as e:  # noqa: BLE001 — reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(nconn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    check(not errors, "concurrent feed failed: %s" % errors)


def tag(line, name):
    return line.split(name + "=", 1)[1].split(",", 1)[0].split(" ", 1)[0]


def outcome(d, series_only=False):
    """Sorted alert set and alert history; series_only: without the service
    models' alerts."""
    def keep(a):
        return not series_only or a["labels"].get("alertname") == "ForeshockAnomaly"
    alerts = sorted(fleet.alert_key(a) for a in d.alerts(state="all") if keep(a))
    hist = d.get_json("/api/v1/alerts/history?limit=0")["data"]["events"]
    history = sorted(fleet.alert_key(e) for e in hist if keep(e))
    return alerts, history


def compare(name, a, b):
    for what, x, y in (("alerts", a[0], b[0]), ("history", a[1], b[1])):
        if x != y:
            only_a = [s[:600] for s in x if s not in set(y)][:2]
            only_b = [s[:600] for s in y if s not in set(x)][:2]
            check(False, "%s: %s differ (%d vs %d); only in the sequential daemon: %s; only in %s: %s"
                  % (name, what, len(x), len(y), only_a, name, only_b))


def test_batching_does_not_change_alerts():
    tmp = tempfile.mkdtemp(prefix="foreshock-it-determinism-")
    models = fleet.write_models(os.path.join(tmp, "models"), SERVICES)
    data = fleet.incident_data(SERVICES, INCIDENTS)
    # replicas share external_url (the shard's address), which links in annotations use
    cfg = "external_url: http://foreshock-shard-a.example:9790\n"
    daemons = [Daemon(args=["--models-dir", models], config=cfg) for _ in range(3)]
    try:
        for d in daemons:
            d.start()
        feed_sequential(daemons[0], data)
        feed_concurrent(daemons[1], data, key=lambda l: SERVICES.index(tag(l, "service")))
        feed_concurrent(daemons[2], data, key=lambda l: zlib.crc32((tag(l, "service") + "/" + tag(l, "instance")).encode()))
        ref = outcome(daemons[0])
        firing = [a for a in ref[0] if '"firingAt"' in a]
        services = [a for a in ref[0] if '"alertname": "ForeshockAnomaly"' not in a]
        check(len(firing) >= 8, "the incidents fire alerts (%d fired)" % len(firing))
        check(services, "a service model alert is among them")
        compare("the daemon fed by service over 4 connections", ref, outcome(daemons[1]))
        compare("the daemon fed by series over 4 connections", outcome(daemons[0], True),
                outcome(daemons[2], True))
        print("identical: %d alerts (%d fired, %d of service models), %d history events"
              % (len(ref[0]), len(firing), len(services), len(ref[1])))
        for d in daemons:
            check(d.stop() == 0, "clean shutdown")
    finally:
        for d in daemons:
            d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_batching_does_not_change_alerts])
