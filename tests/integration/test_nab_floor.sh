#!/bin/bash
# test_nab_floor.sh — the default model's NAB scores on the shared corpus must
# not fall below the floors below (a few points under what the model reaches,
# see docs/detectors.md, so that noise does not flap CI), and two runs must
# print identical results (determinism). Skips (77) without the corpus.
set -u
data="${FORESHOCK_SHARED_DATA:-$(dirname "$0")/../../../shared/data}/nab"
bin="${FORESHOCK_BUILDDIR:-.}/src/foreshock"
model="${FORESHOCK_SRCDIR:-.}/models/default.yml"
[ -f "$data/windows.json" ] || { echo "no NAB corpus at $data: skipped"; exit 77; }
[ -x "$bin" ] || { echo "no $bin: skipped"; exit 77; }

# floors: standard, reward_low_FP_rate, reward_low_FN_rate
FLOOR_STANDARD=73
FLOOR_LOW_FP=65
FLOOR_LOW_FN=78

out1=$("$bin" backtest --corpus "$data" --model "$model" --quiet 2>&1) || { echo "$out1"; exit 1; }
out2=$("$bin" backtest --corpus "$data" --model "$model" --quiet 2>&1) || { echo "$out2"; exit 1; }
echo "$out1"
strip() { grep -E '^(standard|reward_low_FP_rate|reward_low_FN_rate) '; }
if [ "$(echo "$out1" | strip)" != "$(echo "$out2" | strip)" ]; then
  echo "FAIL: two backtests of the same model differ"; exit 1
fi
fail=0
check() { # profile floor
  local score
  score=$(echo "$out1" | awk -v p="$1" '$1 == p { print $2; exit }')
  if [ -z "$score" ]; then echo "FAIL: no score for $1"; fail=1; return; fi
  if awk -v s="$score" -v f="$2" 'BEGIN { exit !(s >= f) }'; then
    echo "ok: $1 $score >= floor $2"
  else
    echo "FAIL: $1 $score is below the floor $2"; fail=1
  fi
}
check standard "$FLOOR_STANDARD"
check reward_low_FP_rate "$FLOOR_LOW_FP"
check reward_low_FN_rate "$FLOOR_LOW_FN"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
