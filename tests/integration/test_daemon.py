#!/usr/bin/env python3
"""End-to-end tests of foreshockd through its HTTP API: ingest, detection,
alert life cycle, persistence across restart, kill -9 durability, bad input,
and agreement of `foreshock replay` with the daemon, and HTTP concurrency
(one thread per connection) and shutdown with open connections."""
import http.client
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fslib import CLI, Daemon, Failed, check, run_tests  # noqa: E402

T0 = 1767225600  # 2026-01-01T00:00:00Z
STEP = 10


def normal_lines(name, tags, n, start=T0, mean=100.0, sd=2.0, seed=1):
    rng = random.Random(seed)
    return ["%s,%s value=%.4f %d" % (name, tags, rng.gauss(mean, sd), start + i * STEP) for i in range(n)]


def drive_to_firing(d, name, tags, series_label, start_i, n_max=200, shift=40.0, seed=2):
    """Push shifted samples one request at a time; return the states seen."""
    rng = random.Random(seed)
    seen = []
    for i in range(start_i, start_i + n_max):
        status, body = d.write(["%s,%s value=%.4f %d" % (name, tags, rng.gauss(100 + shift, 2.0), T0 + i * STEP)])
        check(status == 204, "write -> %d %s" % (status, body))
        for a in d.alerts():
            if a["labels"].get("__name__") == name and a["labels"].get(series_label[0]) == series_label[1]:
                if not seen or seen[-1] != a["state"]:
                    seen.append(a["state"])
        if seen and seen[-1] == "firing":
            return seen, i
    raise Failed("alert never fired; states seen: %s" % seen)


def test_alert_lifecycle_and_restart():
    d = Daemon().start()
    try:
        status, body = d.write(normal_lines("api_latency", "service=checkout", 720))
        check(status == 204, "baseline write -> %d %s" % (status, body))
        check(d.alerts() == [], "no alert on a quiet baseline: %s" % d.alerts())
        seen, last_i = drive_to_firing(d, "api_latency", "service=checkout", ("service", "checkout"), 720)
        check(seen[0] == "pending" or len(seen) == 1, "pending comes first: %s" % seen)
        fired = [a for a in d.alerts() if a["state"] == "firing"][0]
        for k in ("labels", "annotations", "state", "activeAt", "firingAt", "value"):
            check(k in fired, "alert has %s: %s" % (k, fired))
        check(fired["labels"]["service"] == "checkout", "series labels on the alert")
        check("alertname" in fired["labels"] and "summary" in fired["annotations"], "alertname/summary")
        # event time, not wall clock: activeAt lies in 2026-01-01
        check(fired["activeAt"].startswith("2026-01-0"), "activeAt follows sample time: %s" % fired["activeAt"])
        # back to normal: the alert resolves (event time) after enough quiet samples
        rng = random.Random(3)
        for i in range(last_i + 1, last_i + 400, 20):
            d.write(["api_latency,service=checkout value=%.4f %d" % (rng.gauss(140, 2.0), T0 + (i + k) * STEP) for k in range(20)])
        hist = d.get_json("/api/v1/alerts/history")["data"]["events"]
        states = [h["state"] for h in hist]
        check(states[:3] == ["resolved", "firing", "pending"] or states[:2] == ["resolved", "firing"],
              "history has the transitions, newest first: %s" % states)
        before = d.alerts(state="all")
        check(d.stop() == 0, "clean shutdown exit code 0")
        check("event=checkpoint" in d.logtext(), "checkpoint written at shutdown")

        d2 = Daemon(datadir=d.dir).start()
        try:
            check("series_restored=1" in d2.logtext(), "detector state restored: " + d2.logtext()[-500:])
            after = d2.alerts(state="all")
            key = lambda a: (a["labels"].get("__name__"), a["activeAt"], a["state"])
            check(sorted(map(key, before)) == sorted(map(key, after)),
                  "alerts survive restart:\n%s\n%s" % (before, after))
            hist2 = d2.get_json("/api/v1/alerts/history")["data"]["events"]
            check([(h["state"], h["at"]) for h in hist2] == [(h["state"], h["at"]) for h in hist],
                  "history survives restart")
            # no re-learning: a normal sample right after restart scores low
            s, _ = d2.write(["api_latency,service=checkout value=140.1 %d" % (T0 + (last_i + 500) * STEP)])
            check(s == 204, "write after restart")
            series = d2.get_json("/api/v1/series?match[]=api_latency")["data"]
            check(len(series) == 1, "one series after restart: %s" % series)
        finally:
            d2.stop()
    finally:
        d.cleanup()


def test_kill9_durability():
    d = Daemon().start()
    served = set()
    stop = threading.Event()

    def writer():
        rng = random.Random(9)
        i = 0
        while not stop.is_set():
            lines = []
            for s in range(20):
                # every series shifts at a different time, so transitions keep coming
                shift = 60 if (i // 50) % 2 == 1 and (s + i // 100) % 3 == 0 else 0
                lines.append("svc_load,shard=s%d value=%.3f %d" % (s, rng.gauss(100 + shift, 2), T0 + i * STEP))
            try:
                d.write(lines)
            except OSError:
                return
            i += 1

    t = threading.Thread(target=writer, daemon=True)
    try:
        t.start()
        deadline = time.time() + random.uniform(4, 8)
        while time.time() < deadline:
            try:
                for a in d.alerts(state="all"):
                    served.add((a["labels"].get("shard"), a["activeAt"]))
            except (OSError, Failed):
                pass
            time.sleep(0.05)
        d.kill9()
        stop.set()
        t.join(5)
        db = os.path.join(d.dir, "var", "foreshock.db")
        con = sqlite3.connect(db)
        check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check ok after kill -9")
        con.close()
        d2 = Daemon(datadir=d.dir).start()
        try:
            have = {(a["labels"].get("shard"), a["activeAt"]) for a in d2.alerts(state="all")}
            missing = served - have
            check(not missing, "alerts served before kill -9 are still there; missing %s" % sorted(missing)[:5])
            print("  kill -9: %d served alerts all present after restart" % len(served))
            # no alert is left stuck open: after quiet data every alert resolves
            rng = random.Random(11)
            t_next = T0 + 100000 * STEP
            for k in range(60):
                d2.write(["svc_load,shard=s%d value=%.3f %d" % (s, rng.gauss(100, 2), t_next + k * STEP) for s in range(20)])
            open_alerts = d2.alerts()
            check(open_alerts == [], "every alert resolves after restart and quiet data: %s" %
                  [(a["labels"].get("shard"), a["state"]) for a in open_alerts])
        finally:
            d2.stop()
    finally:
        stop.set()
        d.cleanup()


def test_bad_input():
    d = Daemon(args=["--max-series", "5"], config="http:\n  max_body: 64KiB\n").start()
    try:
        body = "\n".join([
            "cpu,host=a usage=1 %d" % T0,
            "cpu,host=a usage=oops %d" % (T0 + 10),
            "cpu,host=a usage=3 %d" % (T0 + 20),
            "this is not line protocol",
        ]) + "\n"
        status, resp = d.write(body)
        check(status == 400, "partial write -> 400, got %d" % status)
        r = json.loads(resp)
        check(r["accepted"] == 2 and r["rejected"] == 2, "counts: %s" % r)
        lines = sorted(e["line"] for e in r["errors"])
        check(lines == [2, 4], "line numbers of the bad lines: %s" % r["errors"])
        pts = d.get_json("/api/v1/anomalies?series=cpu_usage&start=0&end=9999999999")
        check(len(pts["data"]) == 1 and len(pts["data"][0]["points"]) == 2, "valid lines kept: %s" % pts)
        # out of order and duplicate: counted and skipped, not an error
        status, resp = d.write(["cpu,host=a usage=5 %d" % (T0 + 5), "cpu,host=a usage=6 %d" % (T0 + 20)])
        check(status in (200, 204), "out-of-order is skipped, not failed: %d %s" % (status, resp))
        # oversized body
        big = ("cpu,host=a usage=1 %d\n" % T0) * 5000
        status, resp = d.write(big)
        check(status == 413, "oversized body -> 413, got %d" % status)
        # cardinality limit names the metric
        status, resp = d.write(["conn_count,pod=p%d value=1 %d" % (i, T0) for i in range(10)])
        check(status == 400 and b"conn_count" in resp, "cardinality error names the metric: %d %s" % (status, resp[:300]))
        series = d.get_json("/api/v1/series?match[]=" + urllib.parse.quote('{__name__=~".+"}'))["data"]
        check(len(series) == 5, "series limit holds: %d" % len(series))
        m = d.get("/metrics")[1].decode()
        check("foreshock_samples_rejected_total" in m and "foreshock_anomaly_score" in m, "/metrics content")
        check('reason="cardinality_limit"' in m and 'reason="out_of_order"' in m, "reject reasons counted")
        # gzip body
        status, _ = d.write(["cpu,host=a usage=1 %d" % (T0 + 30)], gzip_body=True)
        check(status == 204, "gzip write -> %d" % status)
        # JSON import
        doc = {"series": [{"labels": {"__name__": "cpu_usage", "host": "a"},
                           "samples": [[(T0 + 40) * 1000, 1], ["2026-01-01T00:00:50Z", 2]]}]}
        status, resp = d.request("POST", "/api/v1/import", json.dumps(doc), {"Content-Type": "application/json"})
        check(status in (200, 204), "json import -> %d %s" % (status, resp))
        # still alive and healthy
        check(d.get("/healthz")[0] == 200, "healthz after bad input")
    finally:
        d.stop()
        d.cleanup()


def test_replay_matches_daemon():
    n = 1500
    rng = random.Random(5)
    rows = []
    for i in range(n):
        v = 50 + 10 * ((i // 100) % 2) + rng.gauss(0, 1.5)
        if i in (400, 900):
            v += 30
        rows.append((T0 + i * 60, v))
    d = Daemon(config="history:\n  points: 2000\n").start()
    try:
        csv = os.path.join(d.dir, "series.csv")
        with open(csv, "w") as f:
            f.write("timestamp,value\n")
            for t, v in rows:
                f.write("%d,%.6f\n" % (t, v))
        out = subprocess.run([CLI, "replay", "--model", os.path.join(os.environ.get("FORESHOCK_SRCDIR", "."), "models", "default.yml"), csv],
                             capture_output=True, text=True, check=True).stdout.strip().split("\n")
        check(out[0].startswith("timestamp,value,anomaly_score"), "replay header: %s" % out[0])
        replay_scores = [float(l.split(",")[2]) for l in out[1:]]
        check(len(replay_scores) == n, "one output row per input row")
        for k in range(0, n, 250):
            d.write(["replayed value=%.6f %d" % (v, t) for t, v in rows[k:k + 250]])
        pts = d.get_json("/api/v1/anomalies?series=replayed&start=0&end=9999999999")["data"][0]["points"]
        check(len(pts) == n, "daemon kept all points: %d" % len(pts))
        worst = max(abs(p["score"] - s) for p, s in zip(pts, replay_scores))
        check(worst < 1e-5, "replay and daemon scores agree (max diff %g)" % worst)
        # prefix invariance through the CLI
        cut = os.path.join(d.dir, "cut.csv")
        with open(cut, "w") as f:
            f.write("timestamp,value\n")
            for t, v in rows[:700]:
                f.write("%d,%.6f\n" % (t, v))
        out2 = subprocess.run([CLI, "replay", "--model", os.path.join(os.environ.get("FORESHOCK_SRCDIR", "."), "models", "default.yml"), cut],
                              capture_output=True, text=True, check=True).stdout.strip().split("\n")
        check(out2[1:] == out[1:701], "prefix invariance: first 700 rows identical")
    finally:
        d.stop()
        d.cleanup()


def test_cli_flags():
    for args in (["--help"], ["--version"]):
        r = subprocess.run([os.path.join(os.path.dirname(CLI), "foreshockd")] + args, capture_output=True, text=True)
        check(r.returncode == 0 and r.stdout, "foreshockd %s" % args)
    r = subprocess.run([os.path.join(os.path.dirname(CLI), "foreshockd"), "--config", "/nonexistent.yml"],
                       capture_output=True, text=True)
    check(r.returncode == 2 and "nonexistent" in r.stderr, "missing config is a clear error: %s" % r.stderr)
    d = Daemon()
    bad = os.path.join(d.dir, "bad.yml")
    with open(bad, "w") as f:
        f.write("listen: 127.0.0.1:0\nlimits:\n  max_series: many\n")
    r = subprocess.run([os.path.join(os.path.dirname(CLI), "foreshockd"), "--config", bad, "--check-config"],
                       capture_output=True, text=True)
    check(r.returncode == 2 and "bad.yml:3" in r.stderr and "max_series" in r.stderr,
          "config error names file, line and key: %s" % r.stderr)
    d.cleanup()


def test_sighup_reload():
    d = Daemon()
    try:
        model = os.path.join(d.dir, "model.yml")
        src = open(os.path.join(os.environ.get("FORESHOCK_SRCDIR", "."), "models", "default.yml")).read()
        with open(model, "w") as f:
            f.write(src)
        d.args = ["--model", model]
        d.start()
        d.write(normal_lines("reload_probe", "k=v", 50))
        with open(model, "w") as f:
            f.write(src + "\nthis_key_does_not_exist: 1\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "event=reload_failed" not in d.logtext() and time.time() < deadline:
            time.sleep(0.1)
        log = d.logtext()
        check("event=reload_failed" in log and "model.yml:" in log, "bad model rejected with file:line: %s" % log[-600:])
        check(d.get("/healthz")[0] == 200, "still serving after a bad reload")
        s1, _ = d.write(["reload_probe,k=v value=100 %d" % (T0 + 60 * STEP)])
        check(s1 == 204, "still ingesting with the previous model")
        with open(model, "w") as f:
            f.write(src)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "event=model_unchanged" not in d.logtext() and time.time() < deadline:
            time.sleep(0.1)
        check("event=model_unchanged" in d.logtext(), "good reload of the same model keeps state")
    finally:
        d.stop()
        d.cleanup()


def test_overload_sheds_writes():
    # no queue: a write past the in-flight limit is shed at once
    d = Daemon(config="http:\n  max_inflight_writes: 1\n  max_queued_writes: 0\n").start()
    try:
        import socket
        body = ("shed_probe value=1 %d\n" % T0).encode()
        slow = socket.create_connection(("127.0.0.1", d.port))
        slow.sendall(b"POST /write?precision=s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body)
                     + body[:5])
        time.sleep(0.3)  # the first write is now in flight, holding the only slot
        status, resp = d.write(["shed_probe2 value=1 %d" % T0])
        check(status == 503, "second write is shed with 503 while the first is in flight: %d %s" % (status, resp))
        check(b"overloaded" in resp, "503 says why: %s" % resp)
        check(d.get("/api/v1/alerts")[0] == 200, "reads are still served")
        slow.sendall(body[5:])
        reply = slow.recv(4096)
        slow.close()
        check(reply.startswith(b"HTTP/1.1 204"), "the admitted write completes: %r" % reply[:40])
        for _ in range(50):  # the slot is released when MHD completes the request
            status, _ = d.write(["shed_probe2 value=1 %d" % T0])
            if status != 503:
                break
            time.sleep(0.02)
        check(status == 204, "after the slot frees, writes are accepted again: %d" % status)
        m = d.get("/metrics")[1].decode()
        shed = re.search(r"^foreshock_writes_shed_total (\d+)", m, re.M)
        check(shed and int(shed.group(1)) >= 1, "shed writes are counted")
    finally:
        d.stop()
        d.cleanup()


def hold_write_slot(d, name):
    """Open a write whose body is half sent: it holds a write slot until
    finish() sends the rest. Returns finish, which returns the reply."""
    body = ("%s value=1 %d\n" % (name, T0)).encode()
    c = socket.create_connection(("127.0.0.1", d.port))
    c.sendall(b"POST /write?precision=s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body)
              + body[:5])
    time.sleep(0.3)  # admitted: its body is being read

    def finish():
        c.sendall(body[5:])
        reply = c.recv(4096)
        c.close()
        return reply
    return finish


def test_overload_queues_writes():
    """Past max_inflight_writes a write waits (before its body is read) for a
    free slot, up to queue_timeout, with at most max_queued_writes waiting;
    past either bound it is shed (503, Retry-After). A stop does not wait for
    queued writes' timeouts."""
    d = Daemon(config="http:\n  max_inflight_writes: 1\n  max_queued_writes: 1\n"
                      "  queue_timeout: 20s\n").start()
    try:
        finish = hold_write_slot(d, "queue_hold")
        result = {}
        started = threading.Event()

        def queued_write():
            t0 = time.monotonic()
            started.set()
            result["status"], result["body"] = d.write(["queue_waiter value=1 %d" % T0])
            result["took"] = time.monotonic() - t0
        th = threading.Thread(target=queued_write)
        th.start()
        # a loaded machine can start the thread late: the 0.5 s count from its write
        started.wait(10)
        time.sleep(0.5)
        check(th.is_alive(), "a write past the in-flight limit waits in the queue")
        t0 = time.monotonic()
        status, resp = d.write(["queue_third value=1 %d" % T0])
        check(status == 503 and b"queue" in resp, "with the queue full a write is shed: %d %s" % (status, resp))
        check(time.monotonic() - t0 < 2, "the shed answer does not wait")
        check(d.get("/api/v1/alerts")[0] == 200, "reads are served while writes queue")
        reply = finish()
        check(reply.startswith(b"HTTP/1.1 204"), "the admitted write completes: %r" % reply[:40])
        th.join(10)
        check(not th.is_alive() and result.get("status") == 204,
              "the queued write is accepted once the slot frees: %s" % result)
        check(result["took"] >= 0.4, "it waited: %.2fs" % result["took"])
        check(d.get_json("/api/v1/series?match[]=queue_waiter")["data"], "its sample was ingested")
        m = d.get("/metrics")[1].decode()
        q = re.search(r"^foreshock_writes_queued_total (\d+)", m, re.M)
        qs = re.search(r"^foreshock_write_queue_seconds_total ([0-9.]+)", m, re.M)
        check(q and int(q.group(1)) >= 1, "queued writes are counted")
        check(qs and float(qs.group(1)) >= 0.4, "and the time they waited: %s" % (qs and qs.group(1)))
    finally:
        d.stop()
        d.cleanup()

    # the timeout: a queued write is shed once it has waited queue_timeout
    d = Daemon(config="http:\n  max_inflight_writes: 1\n  queue_timeout: 300ms\n").start()
    try:
        finish = hold_write_slot(d, "queue_hold")
        t0 = time.monotonic()
        status, resp = d.write(["queue_late value=1 %d" % T0])
        took = time.monotonic() - t0
        check(status == 503 and b"no write slot free within" in resp,
              "a write that waited queue_timeout is shed, and the answer says so: %d %s" % (status, resp))
        check(0.25 <= took < 3, "after about the timeout: %.2fs" % took)
        check(finish().startswith(b"HTTP/1.1 204"), "the admitted write completes")
    finally:
        d.stop()
        d.cleanup()

    # stop with a write queued for up to a minute: the waiter gives up at once
    d = Daemon(config="http:\n  max_inflight_writes: 1\n  queue_timeout: 60s\n").start()
    try:
        finish = hold_write_slot(d, "queue_hold")
        def doomed_write():
            try:  # answered 503, or the connection closes: either way the stop goes on
                d.write(["queue_stop value=1 %d" % T0])
            except OSError:
                pass
        th = threading.Thread(target=doomed_write)
        th.daemon = True
        th.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        rc = d.stop(timeout=30)
        took = time.monotonic() - t0
        check(rc == 0 and took < 10, "stop with a queued write: rc %s in %.1fs" % (rc, took))
    finally:
        d.stop()
        d.cleanup()


def test_cli_parse():
    r = subprocess.run([CLI, "parse", "--format", "influx", "--precision", "s"], input="cpu,host=a usage=0.5,n=3i 1700000000\ncpu usage=\n",
                       capture_output=True, text=True)
    out = [json.loads(l) for l in r.stdout.splitlines()]
    check(r.returncode == 1, "a rejected line makes parse exit 1")
    check(out[0] == {"name": "cpu", "tags": [{"key": "host", "value": "a"}],
                     "fields": [{"key": "usage", "value": {"float": 0.5}}, {"key": "n", "value": {"int": 3}}],
                     "time": 1700000000000000000}, "influx point JSON: %s" % out[0])
    check(out[1]["line"] == 2 and out[1]["error"], "influx error names the line: %s" % out[1])
    r = subprocess.run([CLI, "parse", "--format", "prometheus"],
                       input='# TYPE x_total counter\nx_total{a="b"} 3 1700000000000\n', capture_output=True, text=True)
    out = [json.loads(l) for l in r.stdout.splitlines()]
    check(r.returncode == 0, "valid prometheus text exits 0: %s" % r.stderr)
    check(out == [{"family": "x_total", "type": "counter"},
                  {"name": "x_total", "labels": [{"key": "a", "value": "b"}], "value": 3, "time": 1700000000000, "line": 2}],
          "prometheus JSON: %s" % out)


def heavy_body(name, lines, fields=100):
    """Line protocol that keeps a handler busy: `fields` series per line."""
    fl = ",".join("f%d=%d" % (k, k % 10) for k in range(fields))
    return "".join("%s,s=a %s %d\n" % (name, fl, T0 + i * STEP) for i in range(lines)).encode()


def test_reader_not_stuck_behind_writer():
    """A read on a second connection is answered quickly while a long ingest
    request runs on the first. With one thread per connection the two run on
    different threads; with libmicrohttpd's thread pool and `threads: 1`
    (the old model, kept in the config: it is now ignored) the read waited
    for the whole write."""
    d = Daemon(config="http:\n  threads: 1\n  max_body: 256MiB\n").start()
    try:
        lines = 30000
        for attempt in range(3):
            body = heavy_body("heavy%d" % attempt, lines)
            w = socket.create_connection(("127.0.0.1", d.port))
            w.settimeout(300)
            res = {}

            def writer():
                w.sendall(b"POST /write?precision=s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
                res["sent"] = time.monotonic()
                reply = b""
                while b"\r\n\r\n" not in reply:
                    chunk = w.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
                res["reply"] = reply
                res["done"] = time.monotonic()

            t = threading.Thread(target=writer, daemon=True)
            t.start()
            while "sent" not in res and t.is_alive():
                time.sleep(0.002)
            probe = http.client.HTTPConnection("127.0.0.1", d.port, timeout=300)
            probes = []  # (start, end, path, status) on one keep-alive connection
            while "done" not in res and t.is_alive():
                path = ("/healthz", "/api/v1/alerts")[len(probes) % 2]
                p0 = time.monotonic()
                probe.request("GET", path)
                r = probe.getresponse()
                r.read()
                probes.append((p0, time.monotonic(), path, r.status))
                time.sleep(0.02)
            t.join(300)
            probe.close()
            w.close()
            check(res.get("reply", b"").startswith(b"HTTP/1.1 204"), "heavy write -> %r" % res.get("reply", b"")[:60])
            busy = res["done"] - res["sent"]
            during = [p for p in probes if p[0] < res["done"]]
            worst = max((p[1] - p[0] for p in during), default=0.0)
            print("  attempt %d: write of %.1f MB busy for %.2fs; %d reads meanwhile, slowest %.3fs"
                  % (attempt, len(body) / 1e6, busy, len(during), worst))
            check(all(p[3] == 200 for p in probes), "reads answered 200: %s" % [p[2:] for p in probes if p[3] != 200])
            check(worst < 1.0, "a read on another connection waited %.2fs behind a %.2fs write" % (worst, busy))
            if busy >= 2.0:
                inside = [p for p in during if p[1] < res["done"]]
                check(len(inside) >= 5, "reads completed while the write ran: %d" % len(inside))
                check("event=config_deprecated key=http.threads" in d.logtext(),
                      "http.threads is reported as ignored: " + d.logtext()[-600:])
                return
            lines *= 2  # too fast here to prove anything: a longer write
        raise Failed("could not make one write last 2s (last %.2fs)" % busy)
    finally:
        d.stop()
        d.cleanup()


def test_stop_with_open_connections():
    """SIGTERM with idle keep-alive connections and a half-sent body open:
    every connection has its own thread, and shutdown still ends promptly."""
    d = Daemon().start()
    conns = []
    try:
        task_dir = "/proc/%d/task" % d.proc.pid
        time.sleep(0.5)  # the thread of start()'s last /readyz connection has exited
        before = len(os.listdir(task_dir)) if os.path.isdir(task_dir) else None
        for _ in range(4):  # keep-alive connections, idle after one request
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            check(r.status == 200, "healthz -> %d" % r.status)
            conns.append(c)
        if before is not None:
            after = len(os.listdir(task_dir))
            check(after >= before + 4, "one thread per open connection: %d threads, %d before" % (after, before))
        half = socket.create_connection(("127.0.0.1", d.port))
        half.sendall(b"POST /write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nopen_body value=1")
        time.sleep(0.2)
        t0 = time.monotonic()
        rc = d.stop(timeout=15)
        took = time.monotonic() - t0
        check(rc == 0, "clean exit with open connections: %s" % rc)
        check(took < 10, "shutdown took %.1fs" % took)
        check("event=checkpoint" in d.logtext(), "checkpoint written at shutdown")
        half.close()
    finally:
        for c in conns:
            c.close()
        d.stop()
        d.cleanup()


def test_metrics_series_limit():
    """/metrics carries per-series gauges for every series up to
    metrics.series_limit; past it only series with an open alert; match[]
    picks series instead (up to the limit); a bad match[] is a 400."""
    def gauge(m, name):
        g = re.search(r"^%s (\d+)" % name, m, re.M)
        check(g, "%s in /metrics" % name)
        return int(g.group(1))

    def scored(m):
        return sorted(set(re.findall(r'^foreshock_anomaly_score\{series_name="(\w+)"', m, re.M)))

    d = Daemon(config="metrics:\n  series_limit: 3\n").start()
    try:
        status, body = d.write(["lim_a value=1 %d" % T0, "lim_b value=1 %d" % T0])
        check(status == 204, "write -> %d %s" % (status, body))
        m = d.get("/metrics")[1].decode()
        check(scored(m) == ["lim_a", "lim_b"], "both series under the limit: %s" % scored(m))
        check(gauge(m, "foreshock_metrics_series_exported") == 2, "exported count")
        check(gauge(m, "foreshock_metrics_series_omitted") == 0, "omitted count")
        status, body = d.write(["lim_%s value=1 %d" % (c, T0) for c in "cdef"])
        check(status == 204, "write -> %d %s" % (status, body))
        m = d.get("/metrics")[1].decode()
        check(scored(m) == [], "6 series > limit 3 and no alert: no per-series gauges: %s" % scored(m))
        check(gauge(m, "foreshock_metrics_series_omitted") == 6, "all 6 omitted")
        check(re.search(r"^foreshock_samples_accepted_total 6$", m, re.M), "own counters still there")
        st, body = d.get("/metrics?match[]=" + urllib.parse.quote('{__name__=~"lim_[ab]"}'))
        m = body.decode()
        check(st == 200 and scored(m) == ["lim_a", "lim_b"], "match[] picks series: %s" % scored(m))
        st, body = d.get("/metrics?match[]=" + urllib.parse.quote('{__name__=~"lim_.*"}'))
        m = body.decode()
        check(len(scored(m)) == 3 and gauge(m, "foreshock_metrics_series_omitted") == 3,
              "match[] stays within the limit: %s" % scored(m))
        st, body = d.get("/metrics?match[]=" + urllib.parse.quote("lim_a{"))
        check(st == 400 and b"match[]" in body, "bad match[] -> 400: %d %s" % (st, body[:200]))
        # past the limit, a series with an open alert is still exported
        d.write(normal_lines("lim_alert", "k=v", 720, start=T0 + 10))
        drive_to_firing(d, "lim_alert", "k=v", ("k", "v"), 721)
        m = d.get("/metrics")[1].decode()
        check(scored(m) == ["lim_alert"], "only the alerting series past the limit: %s" % scored(m))
    finally:
        d.stop()
        d.cleanup()


def metric(d, name):
    """The value of an unlabelled metric on /metrics."""
    m = re.search(r"^%s (\S+)$" % re.escape(name), d.get("/metrics")[1].decode(), re.M)
    check(m, "metric %s on /metrics" % name)
    return float(m.group(1))


def test_memory_budget():
    """limits.max_memory: series are accounted with their labels; past the
    budget new series are refused per line (naming the metric) and counted,
    while existing series keep taking samples."""
    d = Daemon(config="limits:\n  max_memory: 256KiB\n").start()
    try:
        check(metric(d, "foreshock_series_memory_limit_bytes") == 256 * 1024, "limit exported")
        status, _ = d.write(["mem_a,pod=p%d value=1 %d" % (i, T0) for i in range(20)])
        check(status == 204, "20 thin series -> %d" % status)
        thin = metric(d, "foreshock_series_memory_bytes") / 20
        check(thin > 500, "a series costs its state and history: %.0f bytes" % thin)
        labels = ",".join("l%02d=%s" % (k, "v" * 100) for k in range(20))
        before = metric(d, "foreshock_series_memory_bytes")
        status, _ = d.write(["mem_fat,%s value=1 %d" % (labels, T0)])
        check(status == 204, "fat series -> %d" % status)
        fat = metric(d, "foreshock_series_memory_bytes") - before
        check(fat > thin + 2000, "labels are accounted: fat %.0f vs thin %.0f bytes" % (fat, thin))
        status, resp = d.write(["mem_b,pod=p%d value=1 %d" % (i, T0) for i in range(1000)])
        check(status == 400, "past the budget -> 400, got %d" % status)
        r = json.loads(resp)
        check(r["rejected"] > 0 and r["accepted"] > 0, "some accepted, the rest refused: %s" % {k: r[k] for k in ("accepted", "rejected")})
        e = r["errors"][0]
        check("memory limit 262144 bytes reached" in e["error"] and "'mem_b'" in e["error"] and e["line"] >= 1,
              "per-line error names the limit and the metric: %s" % e)
        used = metric(d, "foreshock_series_memory_bytes")
        check(262144 <= used < 262144 + 2 * thin, "the budget holds: %.0f bytes" % used)
        m = d.get("/metrics")[1].decode()
        c = re.search(r'foreshock_samples_rejected_total\{reason="memory_limit"\} (\d+)', m)
        check(c and int(c.group(1)) == r["rejected"], "refusals counted: %s" % (c and c.group(0)))
        status, resp = d.write(["mem_a,pod=p%d value=2 %d" % (i, T0 + 10) for i in range(20)])
        check(status == 204, "existing series keep working: %d %s" % (status, resp[:200]))
        status, _ = d.write(["mem_c,pod=x value=1 %d" % T0])
        check(status == 400, "a new series is still refused: %d" % status)
        check(d.get("/healthz")[0] == 200, "healthz")
    finally:
        d.stop()
        d.cleanup()


if __name__ == "__main__":
    run_tests([test_cli_flags, test_cli_parse, test_sighup_reload, test_overload_sheds_writes,
               test_overload_queues_writes,
               test_reader_not_stuck_behind_writer, test_stop_with_open_connections, test_bad_input, test_alert_lifecycle_and_restart, test_kill9_durability,
               test_replay_matches_daemon, test_metrics_series_limit, test_memory_budget])
