#!/bin/bash
# test_nab_floor.sh — the default model's scores on the two shared labelled
# corpora (NAB's 42 series and cloudmon) must not fall below the floors below:
# the out-of-fold figures of the documented cross-validation command (threshold
# chosen on the other folds) and the in-sample ones (threshold chosen on the
# corpus), each a little under what the model reaches (docs/detectors.md), so
# that noise does not flap CI. Two runs must print identical results
# (determinism). Skips (77) without the corpora.
set -u
shared="${FORESHOCK_SHARED_DATA:-$(dirname "$0")/../../../shared/data}"
bin="${FORESHOCK_BUILDDIR:-.}/src/foreshock"
model="${FORESHOCK_SRCDIR:-.}/models/default.yml"
for c in nab cloudmon; do
  [ -f "$shared/$c/windows.json" ] || { echo "no corpus at $shared/$c: skipped"; exit 77; }
done
[ -x "$bin" ] || { echo "no $bin: skipped"; exit 77; }

# floors: corpus profile out-of-fold in-sample
FLOORS="
nab      standard            74 75.5
nab      reward_low_FP_rate  65 66.5
nab      reward_low_FN_rate  78 80
cloudmon standard            20 24
cloudmon reward_low_FP_rate  19 21.5
cloudmon reward_low_FN_rate  21 26
"

run() { "$bin" backtest --corpus "$shared/nab" --corpus "$shared/cloudmon" --cv 5 --model "$model" --quiet 2>&1; }
out1=$(run) || { echo "$out1"; exit 1; }
out2=$(run) || { echo "$out2"; exit 1; }
echo "$out1"
table() { awk '/^corpus +profile +out-of-fold/ { t = 1; next } t && NF == 6 { print $1, $2, $3, $4 }'; }
if [ -z "$(echo "$out1" | table)" ]; then echo "FAIL: no cross-validation table"; exit 1; fi
if [ "$(echo "$out1" | table)" != "$(echo "$out2" | table)" ]; then
  echo "FAIL: two backtests of the same model differ"; exit 1
fi
fail=0
while read -r corpus profile f_oof f_in; do
  [ -n "$corpus" ] || continue
  line=$(echo "$out1" | table | awk -v c="$corpus" -v p="$profile" '$1 == c && $2 == p')
  if [ -z "$line" ]; then echo "FAIL: no scores for $corpus $profile"; fail=1; continue; fi
  set -- $line
  for pair in "out-of-fold:$3:$f_oof" "in-sample:$4:$f_in"; do
    IFS=: read -r what score floor <<<"$pair"
    if awk -v s="$score" -v f="$floor" 'BEGIN { exit !(s >= f) }'; then
      echo "ok: $corpus $profile $what $score >= floor $floor"
    else
      echo "FAIL: $corpus $profile $what $score is below the floor $floor"; fail=1
    fi
  done
done <<<"$FLOORS"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
