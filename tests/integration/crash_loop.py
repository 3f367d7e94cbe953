#!/usr/bin/env python3
"""crash_loop — kill -9 foreshockd at random moments, N times, at default
settings except checkpoint.interval (2 s, CKPT_CONFIG, so that STATE_LAG
stays short), and check after each kill:

1. the database is intact (PRAGMA integrity_check);
2. no served alert transition is lost: every (alert id, state) event that
   /api/v1/alerts/history served before the kill is in the database;
3. the restart closes no open alert: the alerts open in the database right
   after the kill are exactly the open ones the restarted daemon serves;
4. the series registry and learned state are restored: every series seen
   at least STATE_LAG seconds before the kill is in the database with at
   least the samples it had then, the restarted daemon serves every stored
   series with at least the stored samples, and its restore log says
   relearning=0 unreadable=0;
5. the service model's learned state is restored: the grid steps the
   service `crashsvc` had evaluated STATE_LAG seconds before the kill are in
   the database, the restarted daemon's /api/v1/services starts from the
   stored count (it does not learn again from scratch), and its restore log
   says services=1 services_relearning=0.

Load: NSERIES series, one request per event-time step; each series jumps to
a new level every 150-400 steps, so transitions keep coming. Two more series
(requests and errors) feed the service model `crashsvc` (--models-dir). Each
cycle feeds for a random time (short: 0.2-2 s, or long enough for check 4:
STATE_LAG + 0.5-2.5 s), one in ten is killed during start-up instead.

  crash_loop.py [N] [--seed S] [--keep DIR]     (default N = 20)

Exit 0 if every cycle passed, 1 otherwise. Uses $FORESHOCK_BUILDDIR /
$FORESHOCK_SRCDIR like the other integration tests (fslib.py)."""
import argparse
import os
import random
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fslib import DAEMON, SRCDIR, Daemon, Failed, check  # noqa: E402

T0 = 1767225600
STEP = 10
NSERIES = 40
# checkpoint.interval (2 s, set by CKPT_CONFIG; the default is 30 s) + the housekeeping tick (1 s) + slack for a
# loaded machine (a 1,000-cycle run next to a make check and an ASan build saw
# a write round finish later than 4.5 s once): state older than this must
# have been written
STATE_LAG = 6.0
CKPT_CONFIG = "checkpoint:\n  interval: 2s\n"
MODELS = []  # --models-dir DIR, set in main()
RESTORE_RE = re.compile(r"event=restore series=(\d+) relearning=(\d+) unreadable=(\d+) services=(\d+) "
                        r"services_relearning=(\d+)")


SERVICE_MODEL = """kind: service
name: crashsvc
step: 30s
signals:
  requests: 'crash_req'
  errors: 'crash_req{code="500"}'
slos:
  availability:
    objective: 99%
"""


def level(s, i):
    """Series s's level at step i: a new level every 150-400 steps (a
    deterministic function of s and the step, so restarts continue it)."""
    r = random.Random(s * 7919 + (i + s * 37) // 150 * 104729)
    period = r.randint(150, 400)
    r = random.Random(s * 7919 + (i + s * 37) // period * 15485863)
    return 100.0 * r.choice((0.4, 0.7, 1.0, 1.0, 1.5, 2.5))


class Feeder(threading.Thread):
    """Writes one event-time step per request until stopped; records what
    the daemon served (history events, per-series samples) with wall times."""

    def __init__(self, d, step, rng):
        super().__init__(daemon=True)
        self.d, self.step, self.rng = d, step, rng
        self.stop = threading.Event()
        self.errors = []

    def run(self):
        while not self.stop.is_set():
            i = self.step
            lines = []
            for s in range(NSERIES):
                lv = level(s, i)
                lines.append("crash_load,shard=s%d value=%.3f %d" % (s, self.rng.gauss(lv, lv * 0.02), T0 + i * STEP))
            rate = level(NSERIES, i)
            lines.append("crash_req,code=200 value=%.3f %d" % (rate, T0 + i * STEP))
            lines.append("crash_req,code=500 value=%.3f %d" % (rate * 0.002, T0 + i * STEP))
            try:
                status, body = self.d.write(lines)
            except OSError:
                return
            if status != 204:
                self.errors.append("write -> %d %s" % (status, body[:200]))
                return
            self.step += 1


def service_steps(d):
    """Grid steps the service crashsvc has evaluated, from /api/v1/services."""
    for sv in d.get_json("/api/v1/services")["data"]:
        if sv["name"] == "crashsvc":
            return sv["steps"]
    raise Failed("service crashsvc not served")


def poll(d, served, snaps):
    """One poll: served history events, and a per-series samples snapshot
    (with the service's steps under the key None)."""
    t = time.time()
    for ev in d.get_json("/api/v1/alerts/history?limit=5000")["data"]["events"]:
        served.add((ev["id"], ev["state"]))
    counts = {a["series"]: a["samples"] for a in d.get_json("/api/v1/anomalies?points=0")["data"]}
    counts[None] = service_steps(d)
    snaps.append((t, counts))


def db_state(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check after kill -9")
        events = set(con.execute("SELECT alert_id, state FROM alert_events").fetchall())
        open_ids = {r[0] for r in con.execute("SELECT id FROM alerts WHERE state IN ('pending','firing')")}
        series = {}
        for key, blob in con.execute("SELECT series_key, state FROM series_state"):
            series[key] = struct.unpack_from("<IIQ", blob)[2]  # ckpt_head: magic, size, samples
        # the service's row: steps column, and the blob header (magic, format, steps)
        for name, steps, blob in con.execute("SELECT name, steps, state FROM service_state"):
            check(struct.unpack_from("<IIQ", blob)[2] == steps, "service_state.steps matches its blob")
            series[None] = steps
        return events, open_ids, series
    finally:
        con.close()


def cycle(n, dirpath, rng, step, served, log):
    """One start-feed-kill-check cycle; returns the next event-time step."""
    if rng.random() < 0.1:
        # killed during start-up (restore, reconciliation): the database checks
        logpath = os.path.join(dirpath, "early.log")
        with open(logpath, "w") as logf:
            p = subprocess.Popen([DAEMON, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(dirpath, "var"),
                                  "--model", os.path.join(SRCDIR, "models", "default.yml"),
                                  "--models-dir", os.path.join(dirpath, "models")],
                                 stdout=logf, stderr=subprocess.STDOUT)
            time.sleep(rng.uniform(0.0, 0.3))
            p.kill()
            p.wait()
        db = os.path.join(dirpath, "var", "foreshock.db")
        if served:  # else it may have died before the first migration committed
            events, _, _ = db_state(db)
            lost = served - events
            check(not lost, "served transitions lost: %s" % sorted(lost)[:5])
        log("cycle %d: killed during start-up" % n)
        return step
    d = Daemon(datadir=dirpath, args=MODELS, config=CKPT_CONFIG).start()
    snaps = []
    try:
        restored = RESTORE_RE.search(d.logtext())
        check(restored, "restore line in the log")
        check(restored.group(2) == "0" and restored.group(3) == "0" and restored.group(5) == "0",
              "learned state restored without re-learning: %s" % restored.group(0))
        feeder = Feeder(d, step, random.Random(rng.random()))
        duration = rng.uniform(0.2, 2.0) if rng.random() < 0.5 else STATE_LAG + rng.uniform(0.5, 2.5)
        t_end = time.time() + duration
        feeder.start()
        while time.time() < t_end:
            poll(d, served, snaps)
            time.sleep(0.25)
        d.kill9()
        t_kill = time.time()
        feeder.stop.set()
        feeder.join(5)
        check(not feeder.errors, "writes answered 204: %s" % feeder.errors[:2])
        events, open_ids, series = db_state(os.path.join(dirpath, "var", "foreshock.db"))
        lost = served - events
        check(not lost, "served transitions lost: %s" % sorted(lost)[:5])
        old = [c for t, c in snaps if t <= t_kill - STATE_LAG]
        if old:
            for key, samples in old[-1].items():
                if key is None:
                    check(series.get(None, 0) >= samples, "service state written: %s steps stored < %d seen "
                          "%.1fs before the kill" % (series.get(None), samples, STATE_LAG))
                    continue
                check(key in series, "series %s (seen %.1fs before the kill) was written" % (key, STATE_LAG))
                check(series[key] >= samples, "state of %s written: %d samples stored < %d seen %.1fs before the kill"
                      % (key, series[key], samples, STATE_LAG))
        # restart: open alerts carried over, registry and state restored
        d2 = Daemon(datadir=dirpath, args=MODELS, config=CKPT_CONFIG).start()
        try:
            open_now = {a["id"] for a in d2.alerts()}
            check(open_now == open_ids, "open alerts after restart %s == open in the store %s" %
                  (sorted(open_now), sorted(open_ids)))
            got = {a["series"]: a["samples"] for a in d2.get_json("/api/v1/anomalies?points=0")["data"]}
            got[None] = service_steps(d2)
            for key, samples in series.items():
                check(got.get(key, -1) >= samples, "%s restored with %s (stored %d)" %
                      ("service crashsvc's steps" if key is None else "series %s's samples" % key,
                       got.get(key), samples))
            r2 = RESTORE_RE.search(d2.logtext())
            check(r2 and r2.group(2) == "0" and r2.group(3) == "0" and r2.group(5) == "0" and
                  r2.group(4) == ("1" if None in series else "0"), "restore line: %s" % (r2 and r2.group(0)))
        finally:
            d2.stop()
        log("cycle %d: %.1fs fed to step %d, %d served events, %d open, %d series stored, service at step %s%s" %
            (n, duration, feeder.step, len(served), len(open_ids), len(series) - (None in series),
             series.get(None),
             ", state checked" if old else ""))
        return feeder.step + 1
    finally:
        d.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", help="data dir to use and keep (default: a temporary one)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    dirpath = a.keep or tempfile.mkdtemp(prefix="foreshock-crash-")
    os.makedirs(os.path.join(dirpath, "models"), exist_ok=True)
    with open(os.path.join(dirpath, "models", "crashsvc.yml"), "w") as f:
        f.write(SERVICE_MODEL)
    MODELS[:] = ["--models-dir", os.path.join(dirpath, "models")]
    print("crash_loop: %d cycles, seed %d, dir %s" % (a.n, seed, dirpath), flush=True)
    served = set()
    step = 0
    t0 = time.time()
    try:
        for n in range(1, a.n + 1):
            step = cycle(n, dirpath, rng, step, served, lambda m: print(m, flush=True))
    except Failed as e:
        print("FAIL after %d cycles (seed %d): %s" % (n - 1, seed, e), flush=True)
        print("data dir kept: %s" % dirpath)
        return 1
    print("ok: %d cycles in %.0fs, %d served transitions, none lost; no open alert closed by a restart; "
          "registry, learned and service state restored every time" % (a.n, time.time() - t0, len(served)), flush=True)
    if not a.keep:
        shutil.rmtree(dirpath, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
