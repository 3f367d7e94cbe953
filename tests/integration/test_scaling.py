#!/usr/bin/env python3
"""A sharded, replicated fleet on loopback (docs/scaling.md), with the
configuration files of deploy/sharding:

1. the files: `promtool check config deploy/sharding/prometheus.yml`,
   `amtool check-config deploy/sharding/alertmanager.yml`, vmagent's
   -dryRun over both relabel files, `foreshockd --check-config` on
   deploy/sharding/foreshock.yml;
2. the fleet: vmagent (one -remoteWrite.url per daemon, each with the
   -remoteWrite.urlRelabelConfig of its shard) in front of three foreshockd
   (shard a twice, shard b once), two Alertmanagers gossiping as a cluster,
   and a webhook receiver behind them. Line protocol for six services (four
   incidents, fleet.incident_data()) goes to vmagent's /write; the first
   replica of shard a is killed with SIGKILL as soon as the incident's first
   alert fires on it. Checked:
   - each service's series all landed on one shard (GET /api/v1/series on
     every daemon), both shards got some, and replicas hold the same series;
     the per-series gauges on /metrics carry the shard label;
   - every alert the surviving daemons fired during the incident reaches
     the webhook exactly once (one firing notification per alert: the
     shipped route groups by every label), with its shard's label; alerts
     fired both before and after the kill;
   - the killed replica, restarted on its data directory, restores its
     checkpoint and catches up from vmagent's on-disk queue (same series,
     same newest sample as its twin); what it notifies after its return
     (it lost the samples taken after its last checkpoint) is printed.
   Alertmanager's timers are shortened (group_wait 1s, group_interval 2s,
   peer timeout 3s); the wait after the last delivery covers a second
   peer's notification (group_wait + peer timeout) and a resend by foreshock.
3. vmagent's naming of line protocol: fields become <measurement>_<field>,
   as foreshock's /write names them, except a field called `value` (foreshock:
   <measurement>, vmagent: <measurement>_value).

Exit 77 when vmagent or prometheus-alertmanager is missing. Every process
started here is killed at the end; every wait is bounded."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402
from fslib import DAEMON, SRCDIR, VMAGENT, Daemon, Failed, check, need, start_server, start_vmagent, wait_for  # noqa: E402
from test_alertmanager import parse_ts  # noqa: E402
from test_prometheus import run_with_skips  # noqa: E402

ALERTMANAGER = os.environ.get("ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")
AMTOOL = os.environ.get("AMTOOL_BIN", "/usr/bin/amtool")
PROMTOOL = os.environ.get("PROMTOOL_BIN", "/usr/bin/promtool")
DEPLOY = os.path.join(SRCDIR, "deploy", "sharding")
SERVICES = ["checkout", "cart", "search", "auth", "payments", "shipping"]
# Incidents short enough that no incident alert resolves before the test
# ends (see the note on resolutions in test_fleet).
INCIDENTS = {"checkout": 0, "search": 20, "payments": 40, "cart": 60}
N_BASE, N_INC = 720, 100
PEER_TIMEOUT = 3


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def test_config_files():
    need(VMAGENT, "victoria-metrics")
    tmp = tempfile.mkdtemp(prefix="foreshock-it-deploy-")
    try:
        ran = 0
        if os.access(PROMTOOL, os.X_OK):
            r = run([PROMTOOL, "check", "config", os.path.join(DEPLOY, "prometheus.yml")], cwd=tmp)
            check(r.returncode == 0, "promtool check config:\n" + r.stdout + r.stderr)
            ran += 1
        if os.access(AMTOOL, os.X_OK):
            r = run([AMTOOL, "check-config", os.path.join(DEPLOY, "alertmanager.yml")], cwd=tmp)
            check(r.returncode == 0, "amtool check-config:\n" + r.stdout + r.stderr)
            ran += 1
        scrape = os.path.join(tmp, "scrape.yml")
        with open(scrape, "w") as f:
            f.write("scrape_configs: []\n")
        cmd = [VMAGENT, "-dryRun", "-promscrape.config=" + scrape, "-loggerLevel=ERROR"]
        for k in (0, 1):
            cmd += ["-remoteWrite.url=http://127.0.0.1:1/api/v1/write",
                    "-remoteWrite.urlRelabelConfig=" + os.path.join(DEPLOY, "shard-%d-of-2.yml" % k)]
        r = run(cmd, cwd=tmp)
        check(r.returncode == 0, "vmagent -dryRun with the relabel files:\n" + r.stdout + r.stderr)
        r = run([DAEMON, "--check-config", "--config", os.path.join(DEPLOY, "foreshock.yml"),
                 "--model", os.path.join(SRCDIR, "models", "default.yml"), "--models-dir", tmp], cwd=tmp)
        check(r.returncode == 0, "foreshockd --check-config deploy/sharding/foreshock.yml:\n" + r.stdout + r.stderr)
        print("  checked: vmagent relabel files, foreshock.yml, %d of promtool/amtool" % ran)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def post(url, body):
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=30) as r:
        check(r.status == 204, "POST %s -> %d" % (url, r.status))


def last_sample(d):
    status, body = d.get("/metrics")
    m = re.search(rb"^foreshock_last_sample_timestamp_seconds (\S+)$", body, re.M)
    return float(m.group(1)) if status == 200 and m else 0.0


def services_of(d):
    q = urllib.parse.urlencode({"match[]": '{__name__=~"http_.*"}'})
    series = d.get_json("/api/v1/series?" + q)["data"]
    return {s.get("service") for s in series}, {tuple(sorted(s.items())) for s in series}


def sent_labels(a, shard):
    """The labels foreshock sends for an alert of its API (notify.c)."""
    labels = dict(a["labels"])
    if "__name__" in labels and "metric" not in labels:
        labels["metric"] = labels["__name__"]
    labels.setdefault("shard", shard)
    return labels


def key(labels, starts):
    return tuple(sorted(labels.items())), round(parse_ts(starts))


class AlertmanagerCluster:
    def __init__(self, tmp, hook_url, procs, n=2):
        """n peers; their Procs are appended to procs (for the caller to stop)."""
        with open(os.path.join(DEPLOY, "alertmanager.yml")) as f:
            text = f.read()
        subs = [(r"url: http://127\.0\.0\.1:5001/foreshock", "url: " + hook_url),
                (r"group_wait: \S+", "group_wait: 1s"), (r"group_interval: \S+", "group_interval: 2s"),
                (r"repeat_interval: \S+", "repeat_interval: 1h")]
        for pat, rep in subs:
            text, k = re.subn(pat, rep, text)
            check(k == 1, "deploy/sharding/alertmanager.yml: cannot set %r for the test" % pat)
        cfg = os.path.join(tmp, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write(text)
        # one after another on ports that start_server() saw them take (web,
        # gossip), each later peer pointed at the ones before it: gossip
        # makes the membership mutual
        self.web, gossip, self.procs = [], [], []
        for i in range(n):
            def cmd(ports, i=i):
                return [ALERTMANAGER, "--config.file=" + cfg, "--storage.path=" + os.path.join(tmp, "am%d" % i),
                        "--web.listen-address=127.0.0.1:%d" % ports[0],
                        "--web.external-url=http://am%d.test:%d" % (i, ports[0]),
                        "--cluster.listen-address=127.0.0.1:%d" % ports[1],
                        "--cluster.peer-timeout=%ds" % PEER_TIMEOUT, "--cluster.gossip-interval=100ms",
                        "--cluster.pushpull-interval=1s", "--cluster.settle-timeout=10s", "--log.level=warn"
                        ] + ["--cluster.peer=127.0.0.1:%d" % g for g in gossip]
            p, ports = start_server("alertmanager%d" % i, tmp, procs, cmd, "/-/healthy", n=2)
            self.procs.append(p)
            self.web.append(ports[0])
            gossip.append(ports[1])
        self.urls = ["http://127.0.0.1:%d" % p for p in self.web]

    def ready(self):
        import json
        for p, u in zip(self.procs, self.urls):
            p.check_alive()
            try:
                with urllib.request.urlopen(u + "/api/v2/status", timeout=2) as r:
                    st = json.loads(r.read())
            except OSError:
                return False
            c = st.get("cluster", {})
            if c.get("status") != "ready" or len(c.get("peers") or []) != len(self.procs):
                return False
        return True

    def stop(self):
        for p in self.procs:
            p.stop()


def firing_notifications(hook):
    """(key, AM external URL) of every alert notified as firing, in order."""
    out = []
    for _, doc in hook.documents():
        if not doc:
            continue
        for a in doc.get("alerts", []):
            if a.get("status") == "firing":
                out.append((key(a["labels"], a["startsAt"]), doc.get("externalURL"), a.get("fingerprint")))
    return out


def test_fleet():
    need(VMAGENT, "victoria-metrics")
    need(ALERTMANAGER, "prometheus-alertmanager")
    tmp = tempfile.mkdtemp(prefix="foreshock-it-fleet-")
    hook = fleet.Webhook()
    procs, daemons = [], []
    try:
        ams = AlertmanagerCluster(tmp, hook.url, procs)
        wait_for("the Alertmanager cluster (2 peers, ready)", ams.ready, 60)

        models = fleet.write_models(os.path.join(tmp, "models"), SERVICES)
        with open(os.path.join(DEPLOY, "foreshock.yml")) as f:
            base = f.read()
        cfg = re.sub(r"(?m)^(listen|data_dir): .*\n", "", base)
        cfg = re.sub(r"(?ms)^notify:.*", "", cfg)
        cfg += ("notify:\n  alertmanagers: [%s]\n  resend_interval: 2s\n  poll_interval: 100ms\n"
                "  max_backoff: 2s\n" % ", ".join(ams.urls))
        cfg = cfg.replace("interval: 1m", "interval: 1s")
        check("shard: a" in cfg and "interval: 1s" in cfg, "test configuration from deploy/sharding/foreshock.yml")
        cfg_b = cfg.replace("foreshock-a.example", "foreshock-b.example")
        # shard a from the file; shard b: the same file, --shard b overrides
        a1 = Daemon(config=cfg, args=["--models-dir", models])
        a2 = Daemon(config=cfg, args=["--models-dir", models])
        b1 = Daemon(config=cfg_b, args=["--models-dir", models, "--shard", "b"])
        daemons = [a1, a2, b1]
        for d in daemons:
            d.start()
        for d, s in ((a1, "a"), (a2, "a"), (b1, "b")):
            check(('foreshock_shard_info{shard="%s"} 1' % s).encode() in d.get("/metrics")[1],
                  "foreshock_shard_info of shard %s" % s)

        args = ["-remoteWrite.queues=1"]
        for d, k in ((a1, 0), (a2, 0), (b1, 1)):
            args += ["-remoteWrite.url=http://127.0.0.1:%d/api/v1/write" % d.port,
                     "-remoteWrite.urlRelabelConfig=" + os.path.join(DEPLOY, "shard-%d-of-2.yml" % k)]
        _, vport = start_vmagent(tmp, args, procs, flush="100ms", log_level="ERROR", queue="vmagent")
        write = "http://127.0.0.1:%d/write?precision=s" % vport

        data = fleet.incident_data(SERVICES, INCIDENTS, n_base=N_BASE, n_inc=N_INC)
        t_start = time.time()
        # one timestamp per request: vmagent parses a large body in parallel
        # chunks, so several samples of a series in one body can leave it out
        # of order (and foreshock drops the late ones); so can -remoteWrite.queues > 1
        for k in range(N_BASE):
            post(write, "\n".join(data[k]) + "\n")
        base_end = fleet.T0 + (N_BASE - 1) * fleet.STEP
        wait_for("the quiet data on every daemon", lambda: all(last_sample(d) >= base_end for d in daemons), 60)

        # the incident, paced; kill -9 replica a1 once an incident alert fires on it
        def incident_firing(d):
            return [a for a in d.alerts(state="firing") if parse_ts(a["firingAt"]) > base_end]
        killed_with = None
        for k in range(N_BASE, len(data)):
            post(write, "\n".join(data[k]) + "\n")
            time.sleep(0.03)
            if killed_with is None:
                fired = incident_firing(a1)
                if fired:
                    killed_with = {key(sent_labels(a, "a"), a["firingAt"]) for a in fired}
                    a1.kill9()
        check(killed_with is not None, "an incident alert fired on replica a1 before the data ended")
        end = fleet.T0 + (len(data) - 1) * fleet.STEP
        wait_for("all data on a2 and b1", lambda: last_sample(a2) >= end and last_sample(b1) >= end, 60)

        for d in (a2, b1):
            m = re.search(rb'foreshock_samples_rejected_total\{reason="out_of_order"\} (\d+)', d.get("/metrics")[1])
            check(m and m.group(1) == b"0", "no sample reached a daemon out of order: %s" % (m and m.group(0)))
        # series: one shard per service
        sa, series_a = services_of(a2)
        sb, _ = services_of(b1)
        check(sa and sb, "both shards got services: a=%s b=%s" % (sorted(sa), sorted(sb)))
        check(not (sa & sb), "no service on two shards: a=%s b=%s" % (sorted(sa), sorted(sb)))
        check(sa | sb == set(SERVICES), "every service landed: %s" % sorted(sa | sb))
        # Prometheus' hashmod (MD5, its low 64 bits, modulo) on the same key:
        # not vmagent's, so the two relays must not feed one fleet (docs/scaling.md)
        prom = {s: int.from_bytes(hashlib.md5(s.encode()).digest()[8:], "big") % 2 for s in SERVICES}
        moved = sorted(s for s in SERVICES if (prom[s] == 0) != (s in sa))
        print("  shard a: %s; shard b: %s; Prometheus' hashmod would place %s on the other shard"
              % (sorted(sa), sorted(sb), moved or "none"))
        # the per-series gauges (what a Prometheus scraping the fleet stores) carry the shard
        m = a2.get("/metrics")[1].decode()
        for fam in ("foreshock_anomaly_score", "foreshock_forecast_value"):
            check(re.search(r'^%s\{series_name="http_latency_ms",[^}]*shard="a"\} ' % fam, m, re.M),
                  "%s of a2 with shard=\"a\": %s" % (fam, [l for l in m.splitlines() if l.startswith(fam)][:2]))

        # alerts: what the survivors have firing must reach the webhook once
        def fired(d, shard):  # fired during the incident, firing or resolved since
            return {key(sent_labels(a, shard), a["firingAt"]) for a in d.alerts(state="all")
                    if a.get("firingAt") and parse_ts(a["firingAt"]) > base_end}
        expected, expected_b = fired(a2, "a"), fired(b1, "b")
        check(expected and expected_b, "alerts fire on both shards: a=%d b=%d" % (len(expected), len(expected_b)))
        expected |= expected_b
        check(killed_with <= expected, "the alerts firing on a1 when it was killed fired on a2 too; "
              "missing: %s" % sorted(killed_with - expected)[:2])
        check(expected - killed_with, "alerts fired after the kill")
        resolved = [a["series"] for d in (a2, b1) for a in d.alerts(state="resolved")
                    if parse_ts(a["firingAt"]) > base_end]
        check(not resolved, "no incident alert resolved during the test: %s" % resolved)

        def delivered():
            got = {k for k, _, _ in firing_notifications(hook)}
            return expected <= got
        try:
            wait_for("every firing alert at the webhook", delivered, 60)
        except Failed:
            got = {k for k, _, _ in firing_notifications(hook)}
            raise Failed("not delivered: %s; delivered: %s; webhook documents: %d"
                         % (sorted(expected - got)[:2], sorted(got)[:2], len(hook.documents())))
        time.sleep(1 + PEER_TIMEOUT + 3)  # a second peer's turn, and a resend by foreshock
        # Exactly once is checked for the incident's alerts. Alerts of the quiet
        # data fire and resolve within a second of wall clock here (event time
        # runs ~300x faster than real time), and Alertmanager peers can then both
        # notify one: a peer takes its snapshot of a group, waits its turn
        # (peer timeout), and if the other peer has meanwhile notified the
        # resolution, the stale snapshot's firing alert looks new. docs/scaling.md.
        notes = firing_notifications(hook)
        counts = {}
        for k, _, _ in notes:
            if k[1] > base_end:
                counts[k] = counts.get(k, 0) + 1
        twice = {k: n for k, n in counts.items() if n > 1}
        if twice:
            k0 = next(iter(twice))
            seen = [(round(t - t_start, 2), doc.get("externalURL"), doc.get("status"), a["status"], a["endsAt"])
                    for t, doc in hook.documents() for a in doc.get("alerts", [])
                    if key(a["labels"], a["startsAt"]) == k0]
            check(False, "alerts notified firing more than once: %s; the first one's notifications: %s"
                  % (list(twice.items())[:3], seen))
        for k in expected:
            labels = dict(k[0])
            check(labels.get("shard") in ("a", "b"), "shard label on %s" % labels)
        by_am = {}
        for _, am, _ in notes:
            by_am[am] = by_am.get(am, 0) + 1
        print("  %d alerts fired in the incident (%d after the kill), each notified once; "
              "%d firing notifications in all, by peer: %s"
              % (len(expected), len(expected - killed_with), len(notes), by_am))

        # the killed replica comes back: checkpoint, then vmagent's queue
        a1.args += ["--listen", "127.0.0.1:%d" % a1.port]  # where vmagent sends it
        t_back = time.time()
        a1.start()
        restored = int(re.findall(r"series_restored=(\d+)", a1.logtext())[-1])
        check(restored > 0, "a1 restored its checkpoint (%d series)" % restored)
        wait_for("a1 caught up from vmagent's queue", lambda: last_sample(a1) >= end, 90, interval=0.5)
        caught_up_s = time.time() - t_back
        check(services_of(a1)[1] == series_a, "a1 holds the same series as a2")
        # What a1 announces after its return is reported, not checked: it lost
        # the samples it had taken after its last checkpoint, so until its
        # detectors converge it can raise alerts a2 did not (notified as new),
        # or resolve one that a2 still has firing (Alertmanager then takes the
        # resolution from one replica and the firing from the other, and
        # notifies the alert again). docs/scaling.md, failure behaviour.
        time.sleep(1 + PEER_TIMEOUT + 3)
        own = {key(sent_labels(a, "a"), a["firingAt"]) for a in a1.alerts(state="all")
               if a.get("firingAt") and parse_ts(a["firingAt"]) > base_end}
        again = {}
        for k, _, _ in firing_notifications(hook):
            if k[1] > base_end:
                again[k] = again.get(k, 0) + 1
        repeated = [k for k in expected if again.get(k, 0) > 1]
        extra = set(again) - expected
        print("  a1 restarted: %d series restored from its checkpoint, caught up to the newest sample in %.1fs; "
              "of its alerts %d are a2's, %d its own; after its return %d new alerts and %d of a2's were notified"
              % (restored, caught_up_s, len(own & expected), len(own - expected), len(extra), len(repeated)))
    finally:
        for d in daemons:
            d.cleanup()
        for p in procs:
            p.stop()
        hook.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_vmagent_naming():
    need(VMAGENT, "victoria-metrics")
    tmp = tempfile.mkdtemp(prefix="foreshock-it-naming-")
    d = Daemon()
    procs = []
    try:
        d.start()
        _, vport = start_vmagent(tmp, ["-remoteWrite.url=http://127.0.0.1:%d/api/v1/write" % d.port], procs,
                                 flush="100ms", log_level="ERROR")
        now = int(time.time())
        post("http://127.0.0.1:%d/write?precision=s" % vport,
             "viavm,host=h value=1,load=2 %d\nviavm_single,host=h rx=3 %d\n" % (now, now))
        status, _ = d.write(["direct,host=h value=1,load=2 %d" % now, "direct_single,host=h rx=3 %d" % now])
        check(status == 204, "direct write")

        def names():
            q = urllib.parse.urlencode({"match[]": '{host="h"}'})
            return {s["__name__"] for s in d.get_json("/api/v1/series?" + q)["data"]}
        want = {"viavm_value", "viavm_load", "viavm_single_rx", "direct", "direct_load", "direct_single_rx"}
        wait_for("the series of both paths", lambda: names() >= want, 30)
        check(names() == want, "names: %s" % sorted(names()))
    finally:
        for p in procs:
            p.stop()
        d.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_with_skips([test_config_files, test_vmagent_naming, test_fleet]))
