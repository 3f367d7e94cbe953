#!/usr/bin/env python3
"""Storage faults are loud, and backups restore: foreshockd on a data dir that
fills up, turns read-only (chattr +i), loses its database file, or starts on
a corrupt or missing one; `foreshock backup` of a live daemon restored into a
new data dir.

The disk-full case needs a small tmpfs (root); the read-only case needs
chattr +i on the file system of the data dir. Each of them is skipped, with
a line saying so, where the mechanism is missing."""
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fslib import CLI, Daemon, Failed, check, run_tests  # noqa: E402

T0 = 1767225600
STEP = 10
NSERIES = 20


class Load:
    """20 series; from sample 200 on, a rotating third of them shift up and
    back every 50 samples, so alert transitions keep coming."""

    def __init__(self, d):
        self.d = d
        self.i = 0
        self.rng = random.Random(5)

    def lines(self):
        out = []
        i = self.i
        for s in range(NSERIES):
            shift = 60 if i >= 200 and (i // 50) % 2 == 1 and (s + i // 100) % 3 == 0 else 0
            out.append("fault_load,shard=s%d value=%.3f %d" % (s, self.rng.gauss(100 + shift, 2), T0 + i * STEP))
        self.i += 1
        return out

    def warm(self, n=200):
        for _ in range(n):
            status, body = self.d.write(self.lines())
            check(status == 204, "warm-up write -> %d %s" % (status, body))

    def until(self, pred, n_max=600):
        """Write until pred(status, body) holds; return (status, body)."""
        for _ in range(n_max):
            status, body = self.d.write(self.lines())
            if pred(status, body):
                return status, body
        raise Failed("condition never met after %d writes" % n_max)


def metric(d, name):
    status, body = d.get("/metrics")
    m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
    return float(m.group(1)) if m else None


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise Failed("timed out waiting for " + what)


def tmpfs(size):
    """A fresh tmpfs of `size`, or None when mounting is not possible."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return None
    mnt = tempfile.mkdtemp(prefix="foreshock-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", mnt], capture_output=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        return None
    return mnt


def umount(mnt):
    subprocess.run(["umount", mnt], capture_output=True)
    os.rmdir(mnt)


def check_fault_then_recovery(d, load, make_fault, clear_fault, code):
    """Common part: a fault makes writes with transitions 503, /readyz 503,
    foreshock_store_healthy 0 and a store_fault log line naming the file and
    SQLite's code; clearing it brings all of that back."""
    load.warm()
    check(metric(d, "foreshock_store_healthy") == 1, "healthy before the fault")
    make_fault()
    status, body = load.until(lambda st, b: st == 503)
    check(b"could not be made durable" in body, "503 says why: %s" % body)
    check(d.get("/readyz")[0] == 503, "/readyz 503 during the fault")
    check(b"store unhealthy" in d.get("/readyz")[1], "/readyz names the fault")
    check(metric(d, "foreshock_store_healthy") == 0, "foreshock_store_healthy 0")
    check(metric(d, "foreshock_store_errors_total") > 0, "foreshock_store_errors_total counts")
    log = d.logtext()
    db = os.path.join(d.dir, "var", "foreshock.db")
    check(re.search(r"event=store_fault file=%s op=\S+ code=%s " % (re.escape(db), code), log),
          "store_fault log line with file and code=%s:\n%s" % (code, log[-2000:]))
    pending = metric(d, "foreshock_pending_transitions")
    check(pending > 0, "transitions stay queued: %s" % pending)
    clear_fault()
    wait_for(lambda: d.get("/readyz")[0] == 200, 10, "/readyz 200 after the fault cleared")
    check(metric(d, "foreshock_store_healthy") == 1, "healthy again")
    check("event=store_recovered" in d.logtext(), "store_recovered logged")
    load.until(lambda st, b: st == 204 and metric(d, "foreshock_pending_transitions") == 0, 200)
    served = {(a["labels"]["shard"], a["activeAt"]) for a in d.alerts(state="all")}
    check(d.stop() == 0, "clean stop after recovery")
    d2 = Daemon(datadir=d.dir).start()
    try:
        have = {(a["labels"]["shard"], a["activeAt"]) for a in d2.alerts(state="all")}
        check(served <= have, "every alert served survives restart; missing %s" % (served - have))
    finally:
        d2.stop()


def test_disk_full():
    mnt = tmpfs("6m")
    if not mnt:
        print("  skipped: cannot mount a tmpfs (needs root)")
        return
    d = Daemon(datadir=mnt)
    filler = os.path.join(mnt, "filler")
    try:
        d.start()
        load = Load(d)

        def fill():
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"\0" * 65536)
            except OSError:
                pass
            os.close(fd)

        check_fault_then_recovery(d, load, fill, lambda: os.unlink(filler), "full")
    finally:
        d.cleanup()
        umount(mnt)


def chattr(flag, *paths):
    return subprocess.run(["chattr", flag] + list(paths), capture_output=True).returncode == 0


def test_read_only():
    d = Daemon()
    try:
        d.start()
        db = os.path.join(d.dir, "var", "foreshock.db")
        files = [db, db + "-wal"]
        if not shutil.which("chattr") or not chattr("+i", *files):
            print("  skipped: chattr +i not supported here")
            return
        chattr("-i", *files)
        check_fault_then_recovery(d, Load(d),
                                  lambda: chattr("+i", *files), lambda: chattr("-i", *files),
                                  r"(ioerr|readonly|perm)")
    finally:
        chattr("-i", *[os.path.join(d.dir, "var", f) for f in ("foreshock.db", "foreshock.db-wal")])
        d.cleanup()


def test_deleted_while_running():
    """The database file is deleted under the daemon: it is noticed within
    seconds, written back from the open copy, and nothing is lost."""
    d = Daemon()
    try:
        d.start()
        load = Load(d)
        load.warm()
        load.until(lambda st, b: any(a["state"] == "firing" for a in d.alerts()))
        db = os.path.join(d.dir, "var", "foreshock.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        wait_for(lambda: "event=store_rewritten" in d.logtext(), 10, "store_rewritten")
        check(os.path.exists(db), "database file written back")
        check(re.search(r"event=store_fault file=\S+ op=check code=\S+ error=\"database file was deleted", d.logtext()),
              "the deletion is logged as a fault")
        wait_for(lambda: d.get("/readyz")[0] == 200, 5, "/readyz 200 after the rewrite")
        for _ in range(100):
            check(d.write(load.lines())[0] == 204, "writes keep working after the rewrite")
        served = {(a["labels"]["shard"], a["activeAt"]) for a in d.alerts(state="all")}
        check(served, "alerts were served")
        d.kill9()
        d2 = Daemon(datadir=d.dir).start()
        try:
            have = {(a["labels"]["shard"], a["activeAt"]) for a in d2.alerts(state="all")}
            check(served <= have, "alerts served before and after the deletion survive kill -9: missing %s" % (served - have))
        finally:
            d2.stop()
    finally:
        d.cleanup()


def start_fails(d, pattern):
    try:
        d.start(timeout=10)
    except Failed as e:
        check(re.search(pattern, str(e)), "start-up names the problem (%s):\n%s" % (pattern, e))
        return
    d.stop()
    raise Failed("foreshockd started although it should not have")


def test_corrupt_and_missing_at_start():
    d = Daemon()
    try:
        d.start()
        Load(d).warm(50)
        check(d.stop() == 0, "clean stop")
        db = os.path.join(d.dir, "var", "foreshock.db")
        keep = db + ".keep"
        shutil.copy(db, keep)
        # a missing database that had data before is refused, with what to do
        os.unlink(db)
        start_fails(Daemon(datadir=d.dir), r"database '.*foreshock\.db' is missing, but data dir .* held database [0-9a-f]{16}")
        # corrupt: garbage over the pages after the header page
        shutil.copy(keep, db)
        with open(db, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(8192))
        start_fails(Daemon(datadir=d.dir), r"database '.*foreshock\.db' is corrupt: ")
        # not foreshock's: tables without a version row
        os.unlink(db)
        import sqlite3
        con = sqlite3.connect(db)
        con.executescript("CREATE TABLE schema_version (version INTEGER); CREATE TABLE alerts (x);")
        con.close()
        start_fails(Daemon(datadir=d.dir), r"is corrupt or not foreshock's: table 'alerts' exists")
        # the original comes back: starts fine
        os.unlink(db)
        shutil.copy(keep, db)
        Daemon(datadir=d.dir).start().stop()
    finally:
        d.cleanup()


def test_backup_restore_live():
    """Back up a running daemon, restore into a new data dir, start a daemon
    there and find the alerts and the series."""
    d = Daemon(config="checkpoint:\n  interval: 2s\n")
    work = tempfile.mkdtemp(prefix="foreshock-backup-")
    try:
        d.start()
        load = Load(d)
        load.warm()
        load.until(lambda st, b: any(a["state"] == "firing" for a in d.alerts()))
        time.sleep(3.5)  # the series states have been written (checkpoint.interval 2 s, set above)
        out = os.path.join(work, "b.db")
        r = subprocess.run([CLI, "backup", "--data-dir", os.path.join(d.dir, "var"), "--out", out],
                           capture_output=True, text=True)
        check(r.returncode == 0, "backup of a live daemon: %s %s" % (r.stdout, r.stderr))
        check(re.search(r"backup '.*': schema \d+, id [0-9a-f]{16}, \d+ alerts", r.stdout), r.stdout)
        alerts = {(a["labels"]["shard"], a["activeAt"], a["state"]) for a in d.alerts(state="all")}
        # the backup is a single file
        check(not os.path.exists(out + "-wal"), "no -wal next to the backup")
        # a second backup to the same path needs --force
        r = subprocess.run([CLI, "backup", "--data-dir", os.path.join(d.dir, "var"), "--out", out],
                           capture_output=True, text=True)
        check(r.returncode == 1 and "exists" in r.stderr, "backup does not overwrite: %s" % r.stderr)
        # restore refuses a data dir in use
        r = subprocess.run([CLI, "restore", "--from", out, "--data-dir", os.path.join(d.dir, "var"), "--force"],
                           capture_output=True, text=True)
        check(r.returncode == 1 and "in use" in r.stderr, "restore refuses a running daemon's dir: %s" % r.stderr)
        nseries = len(d.get_json("/api/v1/series")["data"])
        load.warm(5)
        check(d.stop() == 0, "clean stop")
        newdir = os.path.join(work, "new")
        os.makedirs(newdir)
        r = subprocess.run([CLI, "restore", "--from", out, "--data-dir", os.path.join(newdir, "var")],
                           capture_output=True, text=True)
        check(r.returncode == 0, "restore: %s %s" % (r.stdout, r.stderr))
        check(re.search(r"restored '.*foreshock\.db': .* (\d+) series", r.stdout), r.stdout)
        d2 = Daemon(datadir=newdir).start()
        try:
            got = {(a["labels"]["shard"], a["activeAt"], a["state"]) for a in d2.alerts(state="all")}
            check(alerts <= got | {x for x in got}, "restored alerts: %s vs %s" % (alerts, got))
            check({(s, a) for s, a, _ in alerts} <= {(s, a) for s, a, _ in got},
                  "every alert of the backup is there")
            check(len(d2.get_json("/api/v1/series")["data"]) >= nseries,
                  "the series are restored (%d)" % nseries)
            check("relearning=0" in d2.logtext(), "learned state restored, no re-learning")
        finally:
            d2.stop()
    finally:
        d.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    tests = [test_disk_full, test_read_only, test_deleted_while_running,
             test_corrupt_and_missing_at_start, test_backup_restore_live]
    if len(sys.argv) > 1:
        tests = [t for t in tests if t.__name__ in sys.argv[1:]]
    run_tests(tests)
