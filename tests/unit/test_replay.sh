#!/bin/bash
# test_replay.sh — `foreshock replay` through the real binary: output format,
# one row per input row, streaming on a pipe, errors with line numbers,
# dropped out-of-order rows, and prefix invariance on a shared NAB file.
set -u
BIN="${FORESHOCK_BUILDDIR:-.}/src/foreshock"
[ -x "$BIN" ] || { echo "skip: $BIN not built"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# --help
"$BIN" replay --help >"$T/help" 2>&1 && grep -q "usage: foreshock replay" "$T/help" && ok || bad "--help"

# a small synthetic series, epoch timestamps, with one step
{
	echo "timestamp,value"
	for i in $(seq 0 399); do
		v=$(( (i * 7919) % 13 ))
		[ "$i" -ge 300 ] && v=$((v + 60))
		echo "$((1396310400 + i * 300)),$v"
	done
} >"$T/s.csv"
"$BIN" replay "$T/s.csv" >"$T/s.out" 2>"$T/s.err" || bad "replay exit status"
head -1 "$T/s.out" | grep -qx "timestamp,value,anomaly_score,expected,lower,upper,direction,component" \
	&& ok || bad "header: $(head -1 "$T/s.out")"
[ "$(wc -l <"$T/s.out")" -eq 401 ] && ok || bad "row count $(wc -l <"$T/s.out")"
awk -F, 'NR > 1 { if (NF != 8 || $3 < 0 || $3 > 1) exit 1 }' "$T/s.out" && ok || bad "columns/score range"
awk -F, 'NR > 301 && NR < 306 && $3 >= 0.45 { f = 1 } END { exit !f }' "$T/s.out" && ok || bad "step not detected"
# the same through a pipe, with the 'YYYY-MM-DD HH:MM:SS' form of the first rows
cat "$T/s.csv" | "$BIN" replay - >"$T/p.out" 2>/dev/null && cmp -s "$T/s.out" "$T/p.out" && ok || bad "pipe output differs"

# bad value: exit 1 naming the line
printf 'timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n' >"$T/bad.csv"
"$BIN" replay "$T/bad.csv" >/dev/null 2>"$T/bad.err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "line 3" "$T/bad.err" && grep -q "abc" "$T/bad.err" && ok || bad "bad value: rc=$rc $(cat "$T/bad.err")"
printf 'timestamp,value\nyesterday,1\n' >"$T/badts.csv"
"$BIN" replay "$T/badts.csv" >/dev/null 2>"$T/badts.err"
[ $? -eq 1 ] && grep -q "line 2" "$T/badts.err" && ok || bad "bad timestamp"
printf 'time,value\n' >"$T/badh.csv"
"$BIN" replay "$T/badh.csv" >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "bad header accepted"

# out-of-order and duplicate timestamps are dropped like the daemon drops them
printf 'timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n2014-04-01 00:05:00,3\n2014-04-01 00:01:00,4\n2014-04-01 00:10:00,5\n' >"$T/ooo.csv"
"$BIN" replay "$T/ooo.csv" >"$T/ooo.out" 2>"$T/ooo.err" || bad "ooo exit status"
[ "$(grep -c ',dropped$' "$T/ooo.out")" -eq 2 ] && grep -q "line 4" "$T/ooo.err" && grep -q "line 5" "$T/ooo.err" \
	&& ok || bad "dropped rows: $(cat "$T/ooo.out")"
[ "$(wc -l <"$T/ooo.out")" -eq 6 ] && ok || bad "ooo row count"
grep -q "2 of 5 rows dropped (non_finite 0, duplicate 1, out_of_order 1)" "$T/ooo.err" && ok || bad "drop counts: $(cat "$T/ooo.err")"
# a missing value is a gap (dropped, counted), not an error
printf 'timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,\n2014-04-01 00:10:00,NaN\n2014-04-01 00:15:00,5\n' >"$T/gap.csv"
"$BIN" replay "$T/gap.csv" >"$T/gap.out" 2>"$T/gap.err" && ok || bad "missing value: exit status $(cat "$T/gap.err")"
[ "$(grep -c ',dropped$' "$T/gap.out")" -eq 2 ] && grep -q "non_finite 2" "$T/gap.err" && ok || bad "missing values: $(cat "$T/gap.out" "$T/gap.err")"

# unknown option / bad model
"$BIN" replay --bogus "$T/s.csv" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "unknown option"
printf 'components:\n  - kind: level\n    halflif: 3\n' >"$T/m.yml"
"$BIN" replay --model "$T/m.yml" "$T/s.csv" >/dev/null 2>"$T/m.err"
[ $? -eq 1 ] && grep -q "m.yml:3: unknown key 'halflif'" "$T/m.err" && ok || bad "model error: $(cat "$T/m.err")"

# prefix invariance on a shared NAB file
NAB="${FORESHOCK_SHARED_DATA:-}/nab/data/realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv"
if [ -f "$NAB" ]; then
	"$BIN" replay "$NAB" >"$T/full.out" 2>/dev/null || bad "replay NAB"
	for k in 500 2000 3500; do
		head -n $((k + 1)) "$NAB" | "$BIN" replay - >"$T/pre.out" 2>/dev/null
		cmp -s "$T/pre.out" <(head -n $((k + 1)) "$T/full.out") && ok || bad "prefix $k differs"
	done
	if [ -n "${FORESHOCK_SRCDIR:-}" ]; then
		"$BIN" replay --model "$FORESHOCK_SRCDIR/models/default.yml" "$NAB" >"$T/file.out" 2>/dev/null
		cmp -s "$T/full.out" "$T/file.out" && ok || bad "models/default.yml differs from the built-in default"
	fi
else
	echo "note: shared NAB data not found, prefix check skipped"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
