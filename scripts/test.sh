#!/usr/bin/env bash
# test.sh — install what is missing, build, and run every test: the unit,
# conformance, fuzz-replay and integration tests (`make check`), first in a
# normal build (build/), then again under AddressSanitizer and
# UndefinedBehaviorSanitizer (build-asan/). Prints one summary line
# "N passed, N failed" and exits non-zero if anything failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh test || exit 1
total_pass=0 total_fail=0 total_skip=0 status=0
run_suite() {
  local dir=$1; shift
  echo "== $dir: build" >&2
  if ! scripts/build.sh "$dir" "$@"; then
    echo "== $dir: build failed" >&2
    total_fail=$((total_fail + 1)); status=1; return
  fi
  echo "== $dir: make check ($(date -u +%H:%M:%S) UTC; each test's result as it ends)" >&2
  # make's output goes to a file, not a pipe (a process a test leaves behind
  # cannot hold the pipe open); each result is shown as soon as it is written,
  # with the time, so a slow run can be told from a stuck one
  : >"$dir/check.out"
  make -C "$dir" -j"$(nproc)" check >>"$dir/check.out" 2>&1 &
  local mk=$! rc
  tail -n +1 -f --pid="$mk" "$dir/check.out" | while IFS= read -r line; do
    case $line in
      PASS:* | FAIL:* | SKIP:* | ERROR:* | XFAIL:* | XPASS:*) echo "$(date -u +%H:%M:%S) $line" >&2 ;;
    esac
  done &
  local shown=$!
  wait "$mk"
  rc=$?
  wait "$shown"
  [ "$rc" = 0 ] || status=1
  # show the logs of failures
  for log in $(grep -lE '^:test-result: (FAIL|ERROR)' $(find "$dir" -name '*.trs') 2>/dev/null); do
    echo "---- ${log%.trs}.log" >&2; tail -40 "${log%.trs}.log" >&2
  done
  local p f s
  p=$(grep -cE '^(PASS|XFAIL):' "$dir/check.out" || true)
  f=$(grep -cE '^(FAIL|ERROR|XPASS):' "$dir/check.out" || true)
  s=$(grep -cE '^SKIP:' "$dir/check.out" || true)
  if [ "$p" = 0 ] && [ "$f" = 0 ]; then
    tail -30 "$dir/check.out" >&2; f=1; status=1
  fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
}
run_suite build
run_suite build-asan --enable-sanitizers
[ "$total_fail" -gt 0 ] && status=1
echo "tests: $total_pass passed, $total_fail failed, $total_skip skipped"
exit $status
