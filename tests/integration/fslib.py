"""fslib — helpers for foreshock's integration tests: start the real daemon
on a free loopback port in a temporary directory, talk HTTP to it, stop it.

Standard library only. The daemon comes from $FORESHOCK_BUILDDIR/src/foreshockd
and models from $FORESHOCK_SRCDIR/models (both set by `make check`).
"""
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SRCDIR = os.environ.get("FORESHOCK_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILDDIR = os.environ.get("FORESHOCK_BUILDDIR", os.path.join(SRCDIR, "build"))
DAEMON = os.path.join(BUILDDIR, "src", "foreshockd")
CLI = os.path.join(BUILDDIR, "src", "foreshock")
SHARED = os.environ.get("FORESHOCK_SHARED_DATA", os.path.join(SRCDIR, "..", "shared", "data"))
VMAGENT = os.environ.get("VMAGENT_BIN", "/usr/bin/vmagent")


class Failed(Exception):
    pass


class Terminated(BaseException):
    """SIGTERM reached the test: make check's time limit ran out
    (tests/timelimit.sh) or the run was stopped. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` in a test takes it for
    one of its own failures; the finally blocks on its way out stop the
    daemons and helpers the test started, and its traceback says where the
    test was waiting."""


def _on_sigterm(signum, frame):
    if getattr(_on_sigterm, "seen", False):
        return  # timeout(1) signals the test and then its whole process group
    _on_sigterm.seen = True
    raise Terminated("stopped by SIGTERM (the test's time limit, tests/timelimit.sh, or the run was stopped)")


# Every test that imports fslib fails this way on SIGTERM instead of dying
# at once with its daemons, Prometheus or Chromium left running.
signal.signal(signal.SIGTERM, _on_sigterm)


def check(cond, msg):
    if not cond:
        raise Failed(msg)


class Daemon:
    """A foreshockd process. `args` are extra flags."""

    # Per-series alerts that fire on the detection (the detector model's own
    # alert settings): what the tests of alert mechanics (life cycle,
    # durability, notification) drive with short shifts. The daemon's default
    # pages only on sustained anomalies 2x off the expected value
    # (docs/detectors.md); series_alerts=None keeps that default.
    DETECTION_ALERTS = "alerts:\n  threshold: 0.49\n  for: 0s\n  min_factor: 1\n"

    def __init__(self, datadir=None, args=(), config=None, series_alerts=DETECTION_ALERTS):
        self.own_dir = datadir is None
        self.dir = datadir or tempfile.mkdtemp(prefix="foreshock-it-")
        self.args = list(args)
        if series_alerts:
            config = (config + "\n" if config else "") + series_alerts
        self.config = config
        self.proc = None
        self.port = None
        self.logpath = None
        self.log = None  # stop() and cleanup() work on a daemon that never started

    def start(self, timeout=20):
        cmd = [DAEMON, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "var"),
               "--model", os.path.join(SRCDIR, "models", "default.yml"), "--log-level", "info"]
        if self.config:
            path = os.path.join(self.dir, "foreshock.yml")
            with open(path, "w") as f:
                f.write(self.config)
            cmd += ["--config", path]
        cmd += self.args
        n = len([p for p in os.listdir(self.dir) if p.startswith("daemon")])
        self.logpath = os.path.join(self.dir, "daemon%d.log" % n)
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failed("foreshockd exited with %s:\n%s" % (self.proc.returncode, self.logtext()))
            m = re.search(r"event=listening .*port=(\d+)", self.logtext())
            if m:
                self.port = int(m.group(1))
                try:
                    if self.get("/readyz")[0] == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise Failed("foreshockd did not become ready:\n" + self.logtext())

    def logtext(self):
        with open(self.logpath) as f:
            return f.read()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def request(self, method, path, body=None, headers=None, timeout=30):
        if isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(self.url(path), data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get(self, path):
        return self.request("GET", path)

    def get_json(self, path):
        status, body = self.get(path)
        check(status == 200, "GET %s -> %d %s" % (path, status, body[:300]))
        return json.loads(body)

    def write(self, lines, precision="s", gzip_body=False):
        body = lines if isinstance(lines, (bytes, str)) else "\n".join(lines) + "\n"
        if isinstance(body, str):
            body = body.encode()
        headers = {"Content-Type": "text/plain"}
        if gzip_body:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return self.request("POST", "/write?precision=" + precision, body, headers)

    def alerts(self, state=None):
        q = "?state=" + state if state else ""
        return self.get_json("/api/v1/alerts" + q)["data"]["alerts"]

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failed("foreshockd did not stop within %ds" % timeout)
        if self.log:
            self.log.close()
            self.log = None
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()
        self.log = None

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class Skip(Exception):
    pass


def need(path, package):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise Skip("%s not installed (Debian package %s)" % (path, package))


def free_port():
    """A 127.0.0.1 port free now. Another process may take it before the
    caller binds it: servers started on it go through start_server() or
    on_free_ports(), which try other ports then; a port the test itself binds
    later is held with reserve_port() instead."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def reserve_port():
    """A socket bound to a free 127.0.0.1 port and not listening: connections
    to the port are refused (as to a receiver that is down), and no other
    process can take the port until the test listens on it (socket.listen(),
    or ThreadingHTTPServer with this socket). Returns (socket, port)."""
    s = socket.socket()  # no SO_REUSEADDR: with it, another such socket could bind the port too
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


class PortTaken(Failed):
    """A server could not bind the port it was given: another process took it
    after free_port() chose it."""


PORT_TAKEN = re.compile(r"address already in use", re.I)


def on_free_ports(what, start, n=1, attempts=5):
    """start(ports) with n ports from free_port(); when it raises PortTaken,
    again with other ports, up to `attempts` times. Returns what start returns."""
    for attempt in range(attempts):
        ports = [free_port() for _ in range(n)]
        try:
            return start(ports)
        except PortTaken as e:
            if attempt == attempts - 1:
                raise
            why = [ln for ln in str(e).splitlines() if PORT_TAKEN.search(ln)] or str(e).splitlines() or [""]
            print("  %s: port %s was taken (%s), again on other ports"
                  % (what, ",".join(map(str, ports)), why[0].strip()[:200]), flush=True)


def session_pids(sid):
    """The pids of the processes in session sid (a process started with
    start_new_session=True and its children)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getsid(int(p)) == sid:
                    out.append(int(p))
            except OSError:
                pass
    return out


def listening_ports(pids):
    """The TCP ports (IPv4 and IPv6) on which one of pids has a listening
    socket, from /proc: whether a server holds its port itself, or another
    process that took the port answers in its place."""
    inodes = set()
    for pid in pids:
        fd_dir = "/proc/%d/fd" % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    col = line.split()
                    if col[3] == "0A" and col[9] in inodes:  # 0A: TCP_LISTEN
                        ports.add(int(col[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def wait_for(what, fn, timeout, interval=0.25):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
        except OSError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise Failed("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


class Proc:
    """A helper program with its output in a log file; killed by stop()."""

    def __init__(self, name, cmd, tmp, cwd=None):
        self.name = name
        self.logpath = os.path.join(tmp, name + ".log")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd or tmp)

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def check_alive(self):
        if self.proc.poll() is not None:
            raise Failed("%s exited with %s:\n%s" % (self.name, self.proc.returncode, self.text()[-3000:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_server(name, tmp, procs, cmd, ready_path, n=1, timeout=30):
    """A third-party server (Prometheus, Alertmanager, VictoriaMetrics,
    vmagent) on n free 127.0.0.1 ports: cmd(ports) is its command line, its
    output goes to tmp/NAME.log. It is ready when it still runs, itself holds
    a listening socket on every one of the ports (not another process that
    took a port after free_port() chose it) and GET ready_path on the first
    port answers 200. When it exits saying the address is in use, it is
    started again on other ports (on_free_ports). The Proc is appended to
    procs, for the caller to stop, before it is waited for. Returns (Proc,
    ports)."""
    tries = []

    def start(ports):
        p = Proc(name if not tries else "%s.%d" % (name, len(tries)), cmd(ports), tmp)
        tries.append(p)
        procs.append(p)

        def ready():
            if p.proc.poll() is not None:
                p.stop()
                procs.remove(p)
                text = p.text()
                err = PortTaken if PORT_TAKEN.search(text) else Failed
                raise err("%s exited with %s:\n%s" % (name, p.proc.returncode, text[-3000:]))
            return (set(ports) <= listening_ports([p.proc.pid]) and
                    http_ok("http://127.0.0.1:%d%s" % (ports[0], ready_path)))
        wait_for("%s ready on 127.0.0.1:%s" % (name, ",".join(map(str, ports))), ready, timeout)
        return p, ports
    return on_free_ports(name, start, n)


def start_vmagent(tmp, args, procs, flush="200ms", log_level="WARN", queue="rw"):
    """vmagent (Debian package victoria-metrics) on a free 127.0.0.1 port
    (start_server), its queue in tmp/queue, flushing every flush, with args
    (-remoteWrite.url and the like, in their order). The Proc is appended to
    procs, for the caller to stop. Returns the Proc and its port."""
    vm, ports = start_server("vmagent", tmp, procs, lambda ports: [
        VMAGENT, "-httpListenAddr=127.0.0.1:%d" % ports[0],
        "-remoteWrite.tmpDataPath=" + os.path.join(tmp, queue),
        "-remoteWrite.flushInterval=" + flush, "-loggerLevel=" + log_level] + args, "/health")
    return vm, ports[0]


def demo_lines(cut_s=None, shift_s=0):
    """The demo's line-protocol lines (data/demo/checkout.lp, second
    precision), those before START + cut_s when cut_s is given, with every
    timestamp moved by shift_s seconds."""
    path = os.path.join(SRCDIR, "data", "demo", "checkout.lp")
    out = []
    start = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            head, ts = line.rsplit(" ", 1)
            ts = int(ts)
            if start is None:
                start = ts
            if cut_s is not None and ts >= start + cut_s:
                break
            out.append("%s %d" % (head, ts + shift_s))
    return out


def post_lines(d, lines, chunk=4000):
    """POST line-protocol lines (second precision) in chunks; every chunk must be accepted."""
    for i in range(0, len(lines), chunk):
        status, body = d.write(lines[i:i + chunk])
        check(status in (200, 204), "write -> %d %s" % (status, body[:300]))


def run_tests(tests):
    """Run test functions; print a line per test and a summary; exit 1 on
    failure, 77 when every test was skipped (raised Skip)."""
    if not os.path.exists(DAEMON):
        print("SKIP: %s not built" % DAEMON)
        sys.exit(77)
    failed = skipped = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            print("ok %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (t.__name__, e), flush=True)
        except Terminated as e:
            failed += 1
            print("FAIL %s after %.0fs: %s" % (t.__name__, time.time() - t0, e), flush=True)
            import traceback
            traceback.print_exc(file=sys.stdout)
            print("not run: %s" % (", ".join(x.__name__ for x in tests[tests.index(t) + 1:]) or "none"))
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 — report every failure
            failed += 1
            print("FAIL %s: %s: %s" % (t.__name__, type(e).__name__, e), flush=True)
            import traceback
            traceback.print_exc(file=sys.stdout)
    print("%d passed, %d failed, %d skipped" % (len(tests) - failed - skipped, failed, skipped))
    if skipped == len(tests):
        sys.exit(77)
    sys.exit(1 if failed else 0)
