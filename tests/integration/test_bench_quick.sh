#!/usr/bin/env bash
# test_bench_quick.sh — CI smoke test of the benchmark suite: runs
# `bench/run.sh --quick` against the already built tree, only the phases
# whose numbers it checks (the engine alone; ingest of line protocol and
# remote_write; query latency idle and under load), and checks that they
# came out: a results file with a positive engine rate, positive foreshock
# ingest rates with the samples read back, and answered latency probes.
# Never asserts timings. The work is small (about 11 CPU-seconds here) and
# the timeout only catches a hang: at load 20 on 2 cores a process gets a
# tenth of a core. Skips (77) when curl is missing.
set -euo pipefail
src=${FORESHOCK_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FORESHOCK_BUILDDIR:-$src/build}
command -v curl >/dev/null || { echo "SKIP: curl missing"; exit 77; }
[ -x "$build/src/foreshockd" ] || { echo "SKIP: $build/src/foreshockd not built"; exit 77; }
out=$(mktemp -d /tmp/foreshock-bench-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
BENCH_BUILDDIR=$build BENCH_OUTDIR=$out BENCH_NO_INSTALL=1 \
	timeout 900 bash "$src/bench/run.sh" --quick --foreshock-only --phases engine,ingest,latency \
	--shapes single,prw > "$out/stdout" 2>&1 || {
	cat "$out/stdout"; echo "FAIL: bench/run.sh --quick failed"; exit 1; }
res=$(ls "$out"/results-*.json 2>/dev/null | head -1)
[ -n "$res" ] || { cat "$out/stdout"; echo "FAIL: no results file"; exit 1; }
python3 - "$res" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ing = {x["shape"]: x for x in r["ingest"] if x["target"] == "foreshock"}
for shape in ("single", "prw"):
    assert shape in ing and ing[shape]["samples_per_s"] > 0, "no foreshock ingest figure (%s)" % shape
    assert ing[shape]["stored"] > 0, "nothing read back from foreshock (%s)" % shape
eng = r["engine"]
assert eng and all(e["samples_per_s"] > 0 for e in eng), "no engine figure"
lat = r["latency"]
assert len(lat) == 3, "latency: idle, API only and with /metrics: %r" % [x.get("load") for x in lat]
for x in lat:
    assert x["get"]["paths"] and all(p["2xx"] > 0 for p in x["get"]["paths"]), "latency %s: %r" % (x["load"], x["get"])
print("bench quick: ingest %.0f (line protocol) and %.0f (remote_write) samples/s, engine %.0f samples/s (not asserted)"
      % (ing["single"]["samples_per_s"], ing["prw"]["samples_per_s"], eng[0]["samples_per_s"]))
PY
echo "1 passed, 0 failed"
