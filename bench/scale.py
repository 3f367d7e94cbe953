#!/usr/bin/env python3
"""scale.py — throughput of 1, 2 and 4 foreshockd behind vmagent on this
machine, and what the relay costs per sample (bench/scale.sh runs it;
docs/scaling.md has the results and the model built on them).

Configurations, interleaved so that a change in the machine's load hits all
of them alike, each repeated --reps times:
  direct  bench/loadgen -> one foreshockd /write (no relay)
  vmN     bench/loadgen -> vmagent /write -> N foreshockd, one
          -remoteWrite.url each with the -remoteWrite.urlRelabelConfig of
          deploy/sharding/shard-K-of-2.yml rewritten for N shards, and
          -remoteWrite.queues=1 (docs/scaling.md: more queues reorder samples)

Each run: --series series of loadgen's `single` shape (line protocol, one
sample per series per body, so vmagent cannot reorder a series) in bodies of
--lines lines over --conns connections; one round creates the series, then
--rounds timed rounds. A run ends when every daemon has accepted its share
(foreshock_samples_accepted_total). loadgen's series all have job=node, so
the relabel files here hash `host` instead of `job`/`service`: the same rules,
so the same relabelling cost.

Measured per run: samples/s (wall clock, loadgen's start to the last sample
accepted), CPU seconds of vmagent and of the daemons per sample (utime +
stime from /proc), bytes vmagent wrote to the daemons per sample
(vmagent_remotewrite_conn_bytes_written_total: snappy protobuf plus HTTP),
line-protocol bytes loadgen sent per sample, peak RSS (VmHWM) of each daemon
and of vmagent. Output: one JSON line per run, then a table of medians.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Daemon:
    def __init__(self, builddir, tmp, k, max_series):
        self.dir = os.path.join(tmp, "d%d" % k)
        os.makedirs(self.dir)
        self.logpath = os.path.join(self.dir, "log")
        cfg = os.path.join(self.dir, "foreshock.yml")
        with open(cfg, "w") as f:
            f.write("metrics:\n  series_limit: 0\n")  # the bench polls /metrics: keep it cheap
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(
            [os.path.join(builddir, "src", "foreshockd"), "--listen", "127.0.0.1:0", "--data-dir", self.dir,
             "--model", os.path.join(TOP, "models", "default.yml"), "--models-dir", self.dir,
             "--max-series", str(max_series), "--config", cfg], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        self.port = None
        while time.time() < deadline and not self.port:
            with open(self.logpath) as f:
                m = re.search(r"event=ready", f.read())
            if m:
                with open(self.logpath) as f:
                    self.port = int(re.search(r"event=listening .*port=(\d+)", f.read()).group(1))
            elif self.proc.poll() is not None:
                sys.exit("foreshockd exited: " + open(self.logpath).read())
            else:
                time.sleep(0.05)
        if not self.port:
            sys.exit("foreshockd not ready")

    def accepted(self):
        return metric(get("http://127.0.0.1:%d/metrics" % self.port), "foreshock_samples_accepted_total")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def relabel_files(tmp, n):
    with open(os.path.join(TOP, "deploy", "sharding", "shard-0-of-2.yml")) as f:
        text = f.read()
    text = text.replace("source_labels: [job]", "source_labels: [host]")
    text = re.sub(r"(?m)^(\s+)modulus: 2$", r"\g<1>modulus: %d" % n, text)
    paths = []
    for k in range(n):
        p = os.path.join(tmp, "shard-%d-of-%d.yml" % (k, n))
        with open(p, "w") as f:
            f.write(text.replace("regex: '0'", "regex: '%d'" % k))
        paths.append(p)
    return paths


def loadgen(args, port, path, rounds, t0=None):
    cmd = [os.path.join(args.builddir, "bench", "loadgen"), "write", "--port", str(port), "--path", path,
           "--shape", "single", "--series", str(args.series), "--lines", str(args.lines),
           "--conns", str(args.conns), "--rounds", str(rounds), "--duration", "300"]
    if t0 is not None:
        cmd += ["--t0", str(t0)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit("loadgen failed: " + out.stderr)
    return json.loads(out.stdout)


def run(args, config):
    n = 1 if config == "direct" else int(config[2:])
    tmp = tempfile.mkdtemp(prefix="foreshock-scale-")
    daemons, vm, vmlog = [], None, None
    try:
        daemons = [Daemon(args.builddir, tmp, k, args.series + 1000) for k in range(n)]
        if config == "direct":
            port, path = daemons[0].port, "/write?precision=ms"
        else:
            port = free_port()
            cmd = [args.vmagent, "-httpListenAddr=127.0.0.1:%d" % port, "-remoteWrite.queues=1",
                   "-remoteWrite.tmpDataPath=" + os.path.join(tmp, "vmagent"), "-loggerLevel=ERROR"]
            for d, rl in zip(daemons, relabel_files(tmp, n)):
                cmd += ["-remoteWrite.url=http://127.0.0.1:%d/api/v1/write" % d.port,
                        "-remoteWrite.urlRelabelConfig=" + rl]
            vmlog = open(os.path.join(tmp, "vmagent.log"), "w")
            vm = subprocess.Popen(cmd, stdout=vmlog, stderr=subprocess.STDOUT)
            deadline = time.time() + 30
            while True:
                try:
                    get("http://127.0.0.1:%d/health" % port)
                    break
                except OSError:
                    if time.time() > deadline or vm.poll() is not None:
                        sys.exit("vmagent did not start")
                    time.sleep(0.1)
            path = "/write?precision=ms"

        def accepted():
            return sum(d.accepted() for d in daemons)

        def wait_accepted(target, timeout=300):
            deadline = time.time() + timeout
            while time.time() < deadline:
                a = accepted()
                if a >= target:
                    return time.time()
                time.sleep(0.05)
            sys.exit("%s: only %d of %d samples accepted" % (config, accepted(), target))

        warm = loadgen(args, port, path, 1)
        wait_accepted(args.series)
        pids = [d.proc.pid for d in daemons]
        c0 = [cpu_s(p) for p in pids]
        v0 = cpu_s(vm.pid) if vm else 0.0
        m0 = get("http://127.0.0.1:%d/metrics" % port) if vm else ""
        t0 = time.time()
        lg = loadgen(args, port, path, args.rounds, warm["next_t0"])
        total = args.series * args.rounds
        t1 = wait_accepted(args.series + total)
        c1 = [cpu_s(p) for p in pids]
        v1 = cpu_s(vm.pid) if vm else 0.0
        rec = {"config": config, "daemons": n, "samples": total, "wall_s": round(t1 - t0, 3),
               "samples_per_s": round(total / (t1 - t0)),
               "daemon_cpu_us_per_sample": round(1e6 * (sum(c1) - sum(c0)) / total, 3),
               "vmagent_cpu_us_per_sample": round(1e6 * (v1 - v0) / total, 3),
               "loadgen_cpu_s": lg.get("cpu_s"),
               "lp_bytes_per_sample": round(lg["bytes_sent"] / max(1, lg["samples_sent"]), 1),
               "daemon_hwm_mib": [round(hwm_mib(p), 1) for p in pids]}
        if vm:
            m1 = get("http://127.0.0.1:%d/metrics" % port)
            rec["wire_bytes_per_sample"] = round(
                (metric(m1, "vmagent_remotewrite_conn_bytes_written_total")
                 - metric(m0, "vmagent_remotewrite_conn_bytes_written_total")) / total, 2)
            rec["vmagent_hwm_mib"] = round(hwm_mib(vm.pid), 1)
        return rec
    finally:
        if vm:
            vm.terminate()
            vm.wait(60)
            vmlog.close()
        for d in daemons:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builddir", default=os.path.join(TOP, "build"))
    ap.add_argument("--vmagent", default="/usr/bin/vmagent")
    ap.add_argument("--series", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--conns", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--configs", default="direct,vm1,vm2,vm4")
    ap.add_argument("--out", help="also append the JSON lines to this file")
    args = ap.parse_args()
    configs = args.configs.split(",")
    results = {c: [] for c in configs}
    for rep in range(args.reps):
        for c in configs:
            rec = run(args, c)
            rec["rep"] = rep
            results[c].append(rec)
            line = json.dumps(rec)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")
    print("\nmedians of %d runs; %d series x %d rounds; loadgen %d conns x %d lines; load: %s"
          % (args.reps, args.series, args.rounds, args.conns, args.lines, os.getloadavg()))
    print("%-7s %12s %15s %12s %12s %10s %10s %10s" % ("config", "samples/s", "per daemon/s", "fs us/smpl",
                                                        "vm us/smpl", "wire B/s.", "fs MiB", "vm MiB"))
    base = None
    for c in configs:
        rs = results[c]

        def med(k):
            vals = [r[k] for r in rs if k in r]
            return statistics.median(vals) if vals else float("nan")
        sps = med("samples_per_s")
        if c == "direct":
            base = sps
        print("%-7s %12.0f %15.0f %12.2f %12.2f %10.1f %10.1f %10.1f"
              % (c, sps, sps / rs[0]["daemons"], med("daemon_cpu_us_per_sample"), med("vmagent_cpu_us_per_sample"),
                 med("wire_bytes_per_sample"), statistics.median(max(r["daemon_hwm_mib"]) for r in rs),
                 med("vmagent_hwm_mib")))
    if base:
        print("throughput relative to direct: " + ", ".join(
            "%s %.2f" % (c, statistics.median(r["samples_per_s"] for r in results[c]) / base) for c in configs))


if __name__ == "__main__":
    main()
