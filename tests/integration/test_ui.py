#!/usr/bin/env python3
"""test_ui.py — the dashboard at GET /, in headless Chromium, against a real
foreshockd fed with the demo data (data/demo/checkout.lp) up to 04:19 of its
timeline: the traffic surge is on its way, OverloadRisk is firing and the
load reaches the capacity knee in about 11 minutes.

Checks, on the DOM Chromium dumps after a virtual-time budget:
  * the services come first: the checkout card with its health badge, an
    overload risk, a time to breach ("in … min") and OverloadRisk firing;
  * the service's signals are plotted (dygraphs canvases, at least six
    charts) with the forecast legend, the alert timeline has rows, the series
    table lists the series;
  * the page and the charting library are served by the daemon itself and
    the page loads nothing from another host (no CDN).
The screenshot is kept as $FORESHOCK_BUILDDIR/tests/ui-screenshot.png (the
test artifact). test_dashboard_token: with a read token configured, the page
asks for it and, given it, sends it as a bearer token
(tests/ui-token-screenshot.png). Skips (77) when chromium is not installed."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fslib  # noqa: E402
from fslib import Daemon, Skip, check, demo_lines, post_lines  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
CUT_S = 4 * 3600 + 19 * 60  # 04:19 of the demo
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars"]


def chromium(url, *extra, timeout=120):
    prof = tempfile.mkdtemp(prefix="foreshock-chromium-")
    try:
        cmd = [CHROMIUM] + CHROME_FLAGS + ["--user-data-dir=" + prof, "--window-size=1400,1500",
                                          "--virtual-time-budget=15000"] + list(extra) + [url]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    finally:
        shutil.rmtree(prof, ignore_errors=True)


def test_dashboard_page():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        raise Skip("chromium not installed (Debian package chromium)")
    d = Daemon(config="history:\n  points: 1500\n",
               args=["--models-dir", os.path.join(fslib.SRCDIR, "models")])
    try:
        d.start()
        post_lines(d, demo_lines(cut_s=CUT_S))
        # served by the daemon: the page and the library, nothing from elsewhere
        status, page = d.get("/")
        check(status == 200, "GET / -> %d" % status)
        page = page.decode()
        for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
            check(not re.match(r"(?i)(https?:)?//", ref), "the page loads %r from another host" % ref)
        status, js = d.get("/ui/dygraph.min.js")
        check(status == 200 and b"Dygraph" in js, "GET /ui/dygraph.min.js -> %d" % status)
        status, _ = d.get("/ui/nope.js")
        check(status == 404, "GET /ui/nope.js -> %d" % status)

        rc, dom, err = chromium(d.url("/"), "--dump-dom")
        check(rc == 0 and "<body" in dom, "chromium --dump-dom failed (%d): %s" % (rc, err[-2000:]))
        check(re.search(r'data-loaded="\d+"', dom), "the page never finished loading its data:\n" + dom[-3000:])
        card = re.search(r'<div class="card[^"]*" data-svc="checkout">(.*?)<h2', dom, re.S)
        check(card, "no service card for checkout:\n" + dom[:4000])
        card = card.group(1)
        check(re.search(r'class="badge b-(warning|critical)"', card), "checkout is not shown in trouble: " + card[:2000])
        check(re.search(r">in [0-9.]+ min<", card), "no time to breach on the card: " + card[:2000])
        check(re.search(r"OverloadRisk warning: firing", card), "OverloadRisk warning is not shown firing: " + card[:2000])
        sig = dom[dom.index('id="signals"'):dom.index('id="timeline"')]
        charts = len(re.findall(r'<div class="panel">', sig))
        canvases = len(re.findall(r"<canvas", sig))
        check(charts >= 6 and canvases >= 2 * charts, "signals: %d charts, %d canvases" % (charts, canvases))
        check("p99 of http_request_duration_seconds" in sig, "the latency signal is not plotted")
        tl = dom[dom.index('id="timeline"'):]
        # one incident alert per service (stage B): the service's OverloadRisk
        # rows (warning firing, critical pending at this cut), and no row of
        # its own for any member series (their anomalies are evidence in it)
        tlrows = re.findall(r'<div class="tlrow"><div class="lab" title="([^"]*)">', tl.split("<script")[0])
        check(any(k.startswith("service:checkout:OverloadRisk:") for k in tlrows),
              "no OverloadRisk row on the alert timeline: %r" % tlrows)
        check(all(k.startswith("service:") for k in tlrows),
              "member series page on their own on the timeline: %r" % tlrows)
        check(re.search(r'class="seg firing"', tl), "no firing segment on the timeline")
        rows = len(re.findall(r'<tr data-k="', dom))
        check(rows >= 30, "series table: %d rows" % rows)

        out_dir = os.path.join(fslib.BUILDDIR, "tests")
        os.makedirs(out_dir, exist_ok=True)
        shot = os.path.join(out_dir, "ui-screenshot.png")
        if os.path.exists(shot):
            os.unlink(shot)
        rc, _, err = chromium(d.url("/"), "--screenshot=" + shot)
        check(rc == 0 and os.path.exists(shot) and os.path.getsize(shot) > 50000,
              "no screenshot (%d): %s" % (rc, err[-2000:]))
        print("screenshot: %s (%d bytes)" % (shot, os.path.getsize(shot)))
    finally:
        d.stop()
        d.cleanup()


def test_dashboard_token():
    """With read tokens configured: without a token the page asks for one
    (the field shows, nothing loads); given once as /#token=..., it is kept
    in localStorage and sent as Authorization: Bearer, and the page loads.
    The screenshot is kept as $FORESHOCK_BUILDDIR/tests/ui-token-screenshot.png."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        raise Skip("chromium not installed (Debian package chromium)")
    tmp = tempfile.mkdtemp(prefix="foreshock-uitok-")
    rtok = "ui" * 4 + os.urandom(12).hex()
    with open(os.path.join(tmp, "read.tokens"), "w") as f:
        f.write(rtok + "\n")
    d = Daemon(config="history:\n  points: 1500\n",
               args=["--models-dir", os.path.join(fslib.SRCDIR, "models"),
                     "--read-token-file", os.path.join(tmp, "read.tokens")])
    try:
        d.start()
        post_lines(d, demo_lines(cut_s=CUT_S))
        check(d.get("/api/v1/services")[0] == 401, "the API needs the read token")
        rc, dom, err = chromium(d.url("/"), "--dump-dom")
        check(rc == 0 and "<body" in dom, "chromium --dump-dom failed (%d): %s" % (rc, err[-2000:]))
        check(not re.search(r'data-loaded="\d+"', dom), "the page loaded without a token")
        check(re.search(r'<form class="tok" id="tokf">', dom), "the token field is not shown:\n" + dom[:3000])
        check("needs a read token" in dom, "the page does not say a token is needed:\n" + dom[:3000])
        url = d.url("/#token=" + rtok)
        rc, dom, err = chromium(url, "--dump-dom")
        check(rc == 0 and re.search(r'data-loaded="\d+"', dom), "the page did not load with the token:\n" + dom[-3000:])
        check(re.search(r'<div class="card[^"]*" data-svc="checkout">', dom), "no service card with the token")
        check(re.search(r'<form class="tok" id="tokf" hidden', dom), "the token field still shown")
        check(rtok not in dom, "the token is in the page")
        check(rtok not in d.logtext(), "the token was logged")
        out_dir = os.path.join(fslib.BUILDDIR, "tests")
        os.makedirs(out_dir, exist_ok=True)
        shot = os.path.join(out_dir, "ui-token-screenshot.png")
        if os.path.exists(shot):
            os.unlink(shot)
        rc, _, err = chromium(url, "--screenshot=" + shot)
        check(rc == 0 and os.path.exists(shot) and os.path.getsize(shot) > 50000,
              "no screenshot (%d): %s" % (rc, err[-2000:]))
        print("screenshot: %s (%d bytes)" % (shot, os.path.getsize(shot)))
    finally:
        d.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    fslib.run_tests([test_dashboard_page, test_dashboard_token])
