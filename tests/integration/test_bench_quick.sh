#!/usr/bin/env bash
# test_bench_quick.sh — CI smoke test of the benchmark suite: runs
# `bench/run.sh --quick` against the already built tree and checks that it
# produced numbers (a results file with a positive foreshock ingest rate and
# engine rate). Never asserts timings. Skips (77) when curl is missing.
set -euo pipefail
src=${FORESHOCK_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FORESHOCK_BUILDDIR:-$src/build}
command -v curl >/dev/null || { echo "SKIP: curl missing"; exit 77; }
[ -x "$build/src/foreshockd" ] || { echo "SKIP: $build/src/foreshockd not built"; exit 77; }
out=$(mktemp -d /tmp/foreshock-bench-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
BENCH_BUILDDIR=$build BENCH_OUTDIR=$out BENCH_NO_INSTALL=1 \
	timeout 300 bash "$src/bench/run.sh" --quick --foreshock-only > "$out/stdout" 2>&1 || {
	cat "$out/stdout"; echo "FAIL: bench/run.sh --quick failed"; exit 1; }
res=$(ls "$out"/results-*.json 2>/dev/null | head -1)
[ -n "$res" ] || { cat "$out/stdout"; echo "FAIL: no results file"; exit 1; }
python3 - "$res" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ing = [x for x in r["ingest"] if x["target"] == "foreshock"]
assert ing and ing[0]["samples_per_s"] > 0, "no foreshock ingest figure"
assert ing[0]["stored"] > 0, "nothing read back from foreshock"
eng = r["engine"]
assert eng and all(e["samples_per_s"] > 0 for e in eng), "no engine figure"
print("bench quick: ingest %.0f samples/s, engine %.0f samples/s (not asserted)"
      % (ing[0]["samples_per_s"], eng[0]["samples_per_s"]))
PY
echo "1 passed, 0 failed"
