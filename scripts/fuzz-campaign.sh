#!/usr/bin/env bash
# fuzz-campaign.sh — run every libFuzzer target for N minutes and keep what it learns.
#
#   scripts/fuzz-campaign.sh [-m MINUTES] [-j JOBS] [TARGET...]
#
#   MINUTES  per target (default 10); TARGET: lineproto, prw, prom, promql,
#            selector, import_json, model (default: every fuzz/fuzz_*.c)
#   JOBS     targets run at once (default 1; each uses one core)
#
# Builds the libFuzzer binaries (clang, ASan + UBSan) in build-fuzz/, then for
# each target: fuzzes a scratch copy of fuzz/corpus/TARGET with inputs up to
# 64 KiB (-max_len=65536), merges the inputs that add coverage back into
# fuzz/corpus/TARGET (so `make check` replays them), and keeps crashes, leaks
# and timeouts in fuzz/crashes/TARGET/. Exits 1 if any target found one.
# Runs under `nice`: the machine may be shared.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
minutes=10
jobs=1
while getopts "m:j:h" o; do
  case "$o" in
    m) minutes=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$top"/fuzz/fuzz_*.c; do
    targets+=("$(basename "$f" .c | sed 's/^fuzz_//')")
  done
fi
"$top/scripts/deps.sh" fuzz || exit 1
command -v clang >/dev/null || { echo "fuzz-campaign: clang is needed" >&2; exit 2; }

build="$top/build-fuzz"
(
  cd "$top"
  if [ ! -x configure ] || [ configure.ac -nt configure ]; then autoreconf -fi >/dev/null 2>&1; fi
  mkdir -p "$build" && cd "$build"
  [ -f Makefile ] || "$top/configure" -q --enable-fuzzing CC=clang
  nice make -j2 fuzzers >/dev/null
)

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
run_one() {
  local t=$1 bin="$build/fuzz/fuzz_$1-libfuzzer"
  local corpus="$top/fuzz/corpus/$t" crashes="$top/fuzz/crashes/$t"
  local scratch
  scratch=$(mktemp -d)
  mkdir -p "$corpus" "$crashes"
  cp -r "$corpus"/. "$scratch"/ 2>/dev/null || true
  local rc=0
  nice "$bin" "$scratch" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
    -max_total_time=$((minutes * 60)) -print_final_stats=1 \
    -artifact_prefix="$crashes/" >"$results/$t.log" 2>&1 || rc=$?
  local before after
  before=$(ls "$corpus" | wc -l)
  nice "$bin" -merge=1 -max_len=65536 -timeout=20 "$corpus" "$scratch" \
    >>"$results/$t.log" 2>&1 || true
  after=$(ls "$corpus" | wc -l)
  rm -rf "$scratch"
  local runs found
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$results/$t.log" | tail -1)
  found=$(find "$crashes" -type f | wc -l)
  printf '%-12s %3d min  %12s runs  corpus %d -> %d  crashes/leaks/timeouts kept: %d  exit %d\n' \
    "$t" "$minutes" "${runs:-?}" "$before" "$after" "$found" "$rc" | tee "$results/$t.sum"
  cp "$results/$t.log" "$crashes/../$t.last.log" 2>/dev/null || true
  [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]
}

fail=0
running=0
for t in "${targets[@]}"; do
  [ -f "$top/fuzz/fuzz_$t.c" ] || { echo "fuzz-campaign: no target '$t'" >&2; exit 2; }
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || fail=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || fail=1
  running=$((running - 1))
done
exit $fail
