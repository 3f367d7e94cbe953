#!/usr/bin/env bash
# bench/ab.sh — foreshockd ingest, two builds back to back (an A/B pair).
#
#   bench/ab.sh BUILD_A BUILD_B [--series N] [--rounds K] [--conns C] [--reps R] [--duration S]
#                               [--shape single|multi|prw]
#
# For a change's effect on a shared, noisy machine: the two builds (build
# directories made with scripts/build.sh) run alternately, A B A B ..., K
# rounds each, on the same load, and the medians are compared. Each run
# starts a fresh foreshockd on a free loopback port with an empty data dir,
# creates N series and warms them up 162 samples each (the default model
# does little in its 150-sample warm-up), then times R repetitions of S
# seconds with bench/loadgen (2 keep-alive connections, 5,000-line bodies,
# line protocol, or --shape: see bench/loadgen.c; prw sends 2,000 samples per
# request to /api/v1/write) and counts what the daemon accepted
# (foreshock_samples_accepted_total) and the CPU it used (/proc).
# Defaults: --series 100000 --rounds 2 --conns 2 --reps 3 --duration 8.
# Prints one line per repetition and the medians; bench/run.sh is the full
# suite (other targets, memory, latency, restart, overload).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,17p' "$0"; exit 2; }
A=$1; B=$2; shift 2
series=100000; rounds=2; conns=2; reps=3; duration=8; shape=single
while [ $# -gt 0 ]; do
	case "$1" in
	--series) series=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--conns) conns=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--shape) shape=$2; shift 2 ;;
	*) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
for b in "$A" "$B"; do
	[ -x "$b/src/foreshockd" ] || { echo "ab.sh: no $b/src/foreshockd (scripts/build.sh $b)" >&2; exit 1; }
done
make -C "$B" -s bench/loadgen >/dev/null
loadgen=$B/bench/loadgen
work=$(mktemp -d /tmp/foreshock-ab.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
accepted() { curl -sf "http://127.0.0.1:$port/metrics" | awk '/^foreshock_samples_accepted_total /{print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
clk=$(getconf CLK_TCK)
path=/write?precision=ms; lines=5000
[ "$shape" = prw ] && { path=/api/v1/write; lines=2000; }
lg() { "$loadgen" write --port "$port" --path "$path" --shape "$shape" --series "$series" \
	--lines "$lines" --conns "$conns" "$@"; }

one_run() { # build label -> appends "label rate cores" lines to $work/results
	local b=$1 label=$2 t0=1700000000000 out a0 a1 c0 c1 w
	rm -rf "$work/data" && mkdir -p "$work/data"
	(cd "$work/data" && exec "$b/src/foreshockd" --listen "127.0.0.1:$port" --data-dir "$work/data" \
		--model "$top/models/default.yml" --max-series $((series * 2)) --log-level warn \
		> "$work/log" 2>&1) &
	pid=$!
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
	out=$(lg --rounds 162 --duration 900 --t0 "$t0")
	t0=$(echo "$out" | field next_t0)
	for r in $(seq "$reps"); do
		a0=$(accepted); c0=$(cpu_ticks)
		out=$(lg --duration "$duration" --t0 "$t0")
		a1=$(accepted); c1=$(cpu_ticks)
		t0=$(echo "$out" | field next_t0)
		w=$(echo "$out" | field wall_s)
		python3 -c "print('%s %.0f %.2f' % ('$label', ($a1 - $a0) / $w, ($c1 - $c0) / $clk / $w))" |
			tee -a "$work/results"
	done
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

echo "# bench/ab.sh A=$A B=$B shape=$shape series=$series conns=$conns reps=$reps duration=${duration}s, $(date -u +%FT%TZ), nproc $(nproc)"
echo "# label samples/s-accepted daemon-cores"
for _ in $(seq "$rounds"); do
	one_run "$A" A
	one_run "$B" B
done
python3 - "$work/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for lab in ("A", "B"):
    r = [float(x[1]) for x in rows if x[0] == lab]
    c = [float(x[2]) for x in rows if x[0] == lab]
    med[lab] = statistics.median(r)
    print("median %s: %.0f samples/s (%d reps), %.2f cores" % (lab, med[lab], len(r), statistics.median(c)))
print("B/A: %.3f" % (med["B"] / med["A"]))
EOF
