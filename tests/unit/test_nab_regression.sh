#!/bin/bash
# test_nab_regression.sh — end-to-end check of `foreshock backtest` on the
# shared NAB corpus: (1) --scores with a perfect result set (1 on the first row
# of every window) must score 100.00 on every profile, a null result set 0.00;
# (2) the built-in model runs, writes result CSVs + report, and re-scoring
# those CSVs with --scores reproduces the same scores.
# Skips (77) without the corpus, python3 or the foreshock binary.
set -u
data="${FORESHOCK_SHARED_DATA:-$(dirname "$0")/../../../shared/data}/nab"
bin="${FORESHOCK_BUILDDIR:-.}/src/foreshock"
[ -f "$data/windows.json" ] || { echo "no NAB corpus at $data: skipped"; exit 77; }
[ -x "$bin" ] || { echo "no $bin: skipped"; exit 77; }
command -v python3 >/dev/null || { echo "no python3: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

python3 - "$data" "$tmp" <<'PY' || exit 1
import csv, json, os, sys
data, tmp = sys.argv[1], sys.argv[2]
wins = json.load(open(os.path.join(data, "windows.json")))
for kind in ("perfect", "null"):
    for rel, ws in wins.items():
        starts = {w[0][:19] for w in ws}
        rows = list(csv.reader(open(os.path.join(data, "data", rel))))[1:]
        out = os.path.join(tmp, kind, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write("timestamp,value,anomaly_score\n")
            seen = set()
            for ts, v in rows:
                s = 1 if kind == "perfect" and ts in starts and ts not in seen else 0
                seen.add(ts)
                f.write("%s,%s,%d\n" % (ts, v, s))
PY

check() { # name expected-score output-file
	local n
	n=$(awk -v want="$2" '$1=="standard"||$1=="reward_low_FP_rate"||$1=="reward_low_FN_rate" { if ($2 != want) bad++; n++ } END { print (bad ? -1 : n) }' "$3")
	if [ "$n" != 3 ]; then echo "FAIL: $1: want $2 on 3 profiles"; cat "$3"; fail=1; else echo "ok: $1 = $2"; fi
}

"$bin" backtest --corpus "$data" --scores "$tmp/perfect" --quiet >"$tmp/p.txt" || { echo "FAIL: perfect run"; fail=1; }
check "perfect result set" 100.00 "$tmp/p.txt"
"$bin" backtest --corpus "$data" --scores "$tmp/null" --quiet >"$tmp/n.txt" || { echo "FAIL: null run"; fail=1; }
check "null result set" 0.00 "$tmp/n.txt"

"$bin" backtest --corpus "$data" --out "$tmp/out" >"$tmp/m.txt" || { echo "FAIL: model run"; cat "$tmp/m.txt"; fail=1; }
for f in index.html realTweets/Twitter_volume_AAPL.csv realTweets/Twitter_volume_AAPL.svg; do
	[ -s "$tmp/out/$f" ] || { echo "FAIL: missing $f"; fail=1; }
done
"$bin" backtest --corpus "$data" --scores "$tmp/out" --quiet >"$tmp/r.txt" || { echo "FAIL: rescoring"; fail=1; }
a=$(grep -E '^(standard|reward_)' "$tmp/m.txt" | awk '{print $1, $2, $3}')
b=$(grep -E '^(standard|reward_)' "$tmp/r.txt" | awk '{print $1, $2, $3}')
if [ "$a" != "$b" ]; then echo "FAIL: rescored results differ"; echo "$a"; echo "$b"; fail=1; else echo "ok: rescoring the written CSVs reproduces:"; echo "$a"; fi
exit $fail
