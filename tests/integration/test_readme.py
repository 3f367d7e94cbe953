#!/usr/bin/env python3
"""test_readme.py — the README's commands, run as a new user would:

1. scripts/quickstart.sh (with the test's build, a temporary VAR_DIR and a
   free port; the replay at full speed instead of 360x): the demo's service
   model binds (members, burn rates) and the surge pages as one service
   alert (OverloadRisk warning, then critical, each firing once, held through
   the surge, explaining itself; no member series alerts on its own); then
   every command of the README's curl tour (the ```sh blocks of "A five-minute
   tour with curl"), with the port replaced, exits 0 and its answer has data
   (the active alerts may be empty: the surge ends before the demo does).
2. scripts/quickstart.sh again: a fresh demo timeline, nothing rejected as
   out of order (and the log says so when samples are rejected: a replay
   into the first run's state is logged with reason and count).
3. scripts/quickstart.sh --with-victoriametrics (VM_PORT free; another one
   when it was taken before VictoriaMetrics bound it): once every exported
   sample is acknowledged, the README's VictoriaMetrics queries return data;
   stopping the script stops both. Those queries are instant queries at the
   wall clock: they see the demo's last samples (at the replay's start) for
   about four minutes, so a failure says how long ago the replay started.
4. scripts/quickstart.sh --with-victoriametrics when another process takes
   VM_PORT after the script's check and answers there before VictoriaMetrics
   binds it: the script stops saying the address is in use, and foreshockd
   never starts exporting to that process.
Not run here: ./scripts/test.sh (it is what CI runs around this test) and
the "Building by hand" block (what scripts/build.sh does for every test).
Sub-tests skip when their program is missing (victoria-metrics)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402
import fslib  # noqa: E402
from fslib import Failed, check, need, wait_for  # noqa: E402

README = os.path.join(fslib.SRCDIR, "README.md")
QUICKSTART = os.path.join(fslib.SRCDIR, "scripts", "quickstart.sh")
VM = os.environ.get("VICTORIA_METRICS_BIN", "/usr/bin/victoria-metrics")


def readme_blocks(section):
    with open(README) as f:
        text = f.read()
    start = text.index("## " + section)
    end = text.index("\n## ", start + 3)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def commands(block):
    """Commands of a block, one per line unless a double-quoted string spans
    lines; comment lines dropped."""
    out, cur = [], []
    for line in block.split("\n"):
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur.append(line)
        if "\n".join(cur).count('"') % 2 == 0:
            out.append("\n".join(cur))
            cur = []
    return out


def default_sigint():
    # Ctrl-C at a terminal, whatever ran the tests: a shell that starts a job in
    # the background (`make check &` from a script) hands SIGINT down ignored,
    # and bash cannot trap a signal that was ignored when it started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Quickstart:
    def __init__(self, var, *args, env=None):
        self.logpath = os.path.join(var, "quickstart%d.log" % len([p for p in os.listdir(var) if p.startswith("quickstart")]))
        self.log = open(self.logpath, "w")
        e = dict(os.environ, QUICKSTART_NO_BUILD="1", BUILD_DIR=fslib.BUILDDIR, VAR_DIR=var)
        e.update(env or {})
        self.proc = subprocess.Popen(["bash", QUICKSTART] + list(args) + ["--listen", "127.0.0.1:0", "--replay-speed", "0"],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=e, cwd=var,
                                     start_new_session=True, preexec_fn=default_sigint)
        m = wait_for("foreshockd listening", lambda: self.alive() and re.search(r"event=listening .*port=(\d+)", self.text()), 30)
        self.port = int(m.group(1))
        wait_for("the demo replayed", lambda: self.alive() and "event=replay_done" in self.text(), 120)

    def alive(self):
        if self.proc.poll() is not None:
            raise Failed("quickstart.sh exited with %s:\n%s" % (self.proc.returncode, self.text()[-3000:]))
        return True

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def get_json(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=30) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise Failed("quickstart.sh did not stop on SIGINT")
        self.log.close()


def iso_ms(t):
    """Milliseconds since the epoch of an RFC 3339 UTC time ("...Z")."""
    import datetime
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000


def has_data(out):
    """A JSON answer with a non-empty data part, or any other non-empty output."""
    try:
        j = json.loads(out)
    except ValueError:
        return bool(out.strip())
    d = j.get("data") if isinstance(j, dict) and "data" in j else j
    if isinstance(d, dict):
        for k in ("result", "alerts", "events"):
            if k in d:
                return bool(d[k])
    return bool(d)


def run(cmd, port=None, vm_port=None):
    c = cmd
    if port:
        c = c.replace("127.0.0.1:9790", "127.0.0.1:%d" % port)
    if vm_port:
        c = c.replace("127.0.0.1:8428", "127.0.0.1:%d" % vm_port)
    c = c.replace("build/src/", os.path.join(fslib.BUILDDIR, "src") + "/").replace("../shared/data", fslib.SHARED)
    p = subprocess.run(["bash", "-c", c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_quickstart_and_tour():
    var = tempfile.mkdtemp(prefix="foreshock-it-readme-")
    q = None
    try:
        q = Quickstart(var)
        svc = q.get_json("/api/v1/services")["data"]
        check(svc and svc[0]["name"] == "checkout" and svc[0]["members"] >= 10, "service model not bound: %r" % svc)
        check(svc[0]["slo"]["burn_rates"] and svc[0]["slo"]["burn_rates"][0]["long"] is not None, "no burn rates")
        hist = q.get_json("/api/v1/alerts/history?limit=0")["data"]["events"]
        check(any(e["series"] == "service:checkout:OverloadRisk:warning" and e["state"] == "firing" for e in hist),
              "OverloadRisk never fired in the demo")
        # one incident, one alert: OverloadRisk warning then critical, each firing
        # once and held through the surge (04:00-05:00 of the demo) until the
        # service is back at its baseline; the member series do not page
        for sev in ("warning", "critical"):
            fired = [e for e in hist if e["series"] == "service:checkout:OverloadRisk:" + sev and e["state"] == "firing"]
            check(len(fired) == 1, "OverloadRisk %s fired %d times in the demo" % (sev, len(fired)))
        check(all(e["series"].startswith("service:checkout:") for e in hist),
              "member series paged on their own: %r" % sorted({e["series"] for e in hist if not e["series"].startswith("service:")}))
        ended = [e for e in hist if e["series"] == "service:checkout:OverloadRisk:critical" and e["state"] == "resolved"]
        if ended:
            held = (iso_ms(ended[0]["resolvedAt"]) - iso_ms(ended[0]["firingAt"])) / 60000
            check(held >= 40, "OverloadRisk critical closed %.0f min after firing, before the surge was over" % held)
        every = q.get_json("/api/v1/alerts?state=all")["data"]["alerts"]
        svc_alert = [a for a in every if a["labels"].get("alertname") == "OverloadRisk" and a["labels"].get("severity") == "critical"]
        check(svc_alert and "checkout" in svc_alert[0]["annotations"]["summary"] and
              "capacity" in svc_alert[0]["annotations"]["summary"] and "latency" in svc_alert[0]["annotations"]["summary"],
              "the OverloadRisk alert does not explain itself: %r" % svc_alert)
        cmds = [c for b in readme_blocks("A five-minute tour with curl") for c in commands(b) if "127.0.0.1:8428" not in c]
        check(len(cmds) >= 12, "README tour: only %d commands found" % len(cmds))
        for c in cmds:
            if "../shared/data" in c and not os.path.isdir(fslib.SHARED):
                print("skip (no shared data): " + c)
                continue
            rc, out, err = run(c, port=q.port)
            check(rc == 0, "README command failed (%d): %s\n%s%s" % (rc, c, out[-1000:], err[-1000:]))
            if "/write?precision=s" in c:  # 204, no body: the series must exist now
                d = q.get_json("/api/v1/series?match[]=api_latency")["data"]
                check(d and d[0].get("service") == "cart", "the tour's samples are not there: %r" % d)
                continue
            if c.endswith("/api/v1/alerts'"):
                # active alerts: the surge is over an hour before the demo ends,
                # so the service alert may have resolved; a member series never
                # has one of its own
                j = json.loads(out)
                check(j["status"] == "success" and isinstance(j["data"]["alerts"], list) and
                      all(a["labels"].get("alertname") == "OverloadRisk" for a in j["data"]["alerts"]),
                      "active alerts: %s" % out[:1000])
                continue
            check(has_data(out), "README command returned no data: %s\n%s" % (c, out[:1000]))
            if "oops" in c:
                check(" 400 " in out and '"line":2' in out, "the bad line is not named: " + out[:500])
        print("%d README commands ran" % len(cmds))
        q.stop()

        # again: a fresh timeline, nothing rejected
        q = Quickstart(var)
        check("reason=out_of_order" not in q.text(), "second run rejected samples as out of order:\n" + q.text()[-2000:])
        check(q.get_json("/api/v1/services")["data"][0]["members"] >= 10, "second run: service not bound")
        # and a replay into existing state says why its samples are rejected
        demo = os.path.join(fslib.SRCDIR, "data", "demo", "checkout.lp")
        with open(demo, "rb") as f:
            body = f.read(400000)
        body = body[:body.rindex(b"\n") + 1]
        req = urllib.request.Request("http://127.0.0.1:%d/write?precision=s" % q.port, data=body, method="POST")
        try:
            urllib.request.urlopen(req, timeout=30).read()
        except urllib.error.HTTPError:
            pass
        wait_for("the rejections logged", lambda: re.search(r"event=samples_rejected reason=out_of_order count=\d+", q.text()), 30)
        q.stop()
    finally:
        if q:
            q.stop()
        shutil.rmtree(var, ignore_errors=True)


def test_quickstart_victoriametrics():
    need(VM, "victoria-metrics")
    var = tempfile.mkdtemp(prefix="foreshock-it-readme-vm-")
    q = None
    try:
        # another process may take VM_PORT before VictoriaMetrics binds it:
        # quickstart.sh then says the address is in use, or the port is held
        # by a process that is not one of the script's: another port
        def start(ports):
            try:
                q = Quickstart(var, "--with-victoriametrics", env={"VM_PORT": str(ports[0])})
            except Failed as e:
                raise fslib.PortTaken(str(e)) if fslib.PORT_TAKEN.search(str(e)) else e
            if ports[0] not in fslib.listening_ports(fslib.session_pids(q.proc.pid)):
                q.stop()
                raise fslib.PortTaken("127.0.0.1:%d is not held by quickstart.sh's VictoriaMetrics" % ports[0])
            return q, ports[0]
        started = time.time()
        q, vm_port = fslib.on_free_ports("quickstart.sh's VM_PORT", start)

        def export_done():
            # every output sample handed to the exporter acknowledged by
            # VictoriaMetrics (not only an empty queue), none lost
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % q.port, timeout=10) as r:
                text = r.read().decode()
            v = {k: float(re.search(r"^foreshock_export_%s (\S+)" % k, text, re.M).group(1))
                 for k in ("samples_total", "samples_sent_total", "samples_dropped_total", "queue_samples")}
            check(v["samples_dropped_total"] == 0, "export dropped samples: %r" % v)
            return v["queue_samples"] == 0 and v["samples_sent_total"] == v["samples_total"] > 0 and v
        wait_for("the export drained", export_done, 60)
        urllib.request.urlopen("http://127.0.0.1:%d/internal/force_flush" % vm_port, timeout=30).read()
        cmds = [c for b in readme_blocks("A five-minute tour with curl") for c in commands(b) if "127.0.0.1:8428" in c]
        check(len(cmds) >= 3, "README: no VictoriaMetrics commands")
        for c in cmds:
            rc, out, err = run(c, vm_port=vm_port)
            check(rc == 0 and has_data(out), "README command: %s -> %d (%.0f s after the replay started)\n%s%s" %
                  (c, rc, time.time() - started, out[:1000], err[-500:]))
        q.stop()
        q = None
        check(not fslib.http_ok("http://127.0.0.1:%d/health" % vm_port), "victoria-metrics still runs after the script stopped")
    finally:
        if q:
            q.stop()
        shutil.rmtree(var, ignore_errors=True)


def test_quickstart_vm_port_taken_late():
    """Another process takes VM_PORT after quickstart.sh checked it was free
    and before VictoriaMetrics binds it, and answers /health there: the
    script stops with "address already in use" instead of taking that answer
    for VictoriaMetrics and pointing foreshockd's export at the other
    process. The VictoriaMetrics here is a stand-in on PATH that says it
    started and never binds the port; the other process is a Python server
    started then."""
    var = tempfile.mkdtemp(prefix="foreshock-it-readme-late-")
    started = os.path.join(var, "vm-started")
    bindir = os.path.join(var, "bin")
    os.makedirs(bindir)
    with open(os.path.join(bindir, "victoria-metrics"), "w") as f:
        f.write("#!/bin/sh\n: > '%s'\nexec sleep 300\n" % started)
    os.chmod(os.path.join(bindir, "victoria-metrics"), 0o755)
    sock, port = fslib.reserve_port()
    sock.close()  # free when the script checks it
    log = open(os.path.join(var, "quickstart.log"), "w")
    p = subprocess.Popen(["bash", QUICKSTART, "--with-victoriametrics", "--listen", "127.0.0.1:0", "--replay-speed", "0"],
                         stdout=log, stderr=subprocess.STDOUT, cwd=var, start_new_session=True,
                         env=dict(os.environ, QUICKSTART_NO_BUILD="1", BUILD_DIR=fslib.BUILDDIR, VAR_DIR=var,
                                  VM_PORT=str(port), PATH=bindir + os.pathsep + os.environ["PATH"]))
    imp = None
    try:
        wait_for("the stand-in VictoriaMetrics started", lambda: os.path.exists(started) or p.poll() is not None, 60)
        check(p.poll() is None, "quickstart.sh exited before VictoriaMetrics started:\n" + open(log.name).read())
        imp = fleet.serve_in_thread(fleet.OkHandler, port)
        wait_for("quickstart.sh to stop (or foreshockd to start)",
                 lambda: p.poll() is not None or "event=listening" in open(log.name).read(), 90)
        out = open(log.name).read()
        check("event=listening" not in out, "foreshockd started, exporting to another process:\n" + out[-2000:])
        check(p.returncode != 0 and fslib.PORT_TAKEN.search(out),
              "quickstart.sh exited %s without saying the port is taken:\n%s" % (p.returncode, out[-2000:]))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()
        if imp:
            imp.shutdown()
            imp.server_close()
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    fslib.run_tests([test_quickstart_and_tour, test_quickstart_victoriametrics, test_quickstart_vm_port_taken_late])
