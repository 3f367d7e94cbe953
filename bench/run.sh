#!/usr/bin/env bash
# bench/run.sh — foreshock's benchmark suite: foreshockd side by side with
# VictoriaMetrics (single node) and InfluxDB 1.x on this machine, plus the
# detector engine alone. See docs/performance.md for what each part measures.
#
#   bench/run.sh [--quick] [--foreshock-only] [--reps N] [--duration S] [--no-profile]
#                [--warm K] [--phases LIST] [--shapes LIST] [--targets LIST]
#
#   --quick           small sizes (1k series), 1 repetition, ~1 s per step; checks
#                     that numbers come out (CI runs it); never installs packages
#   --foreshock-only  skip VictoriaMetrics and InfluxDB
#   --reps N          repetitions per ingest measurement (default 3; medians reported)
#   --duration S      seconds per ingest repetition (default 10)
#   --no-profile      skip the perf profile of foreshockd under ingest
#   --warm K          untimed rounds (samples per series) sent before the timed
#                     ingest repetitions and the latency probe, so the detectors
#                     are past their warm-up (default 160, the default model's
#                     warm-up is 150 samples); skipped where it would take more
#                     than 20M samples (1M series are measured in warm-up)
#   --phases LIST     comma-separated subset of engine,ingest,batch,memory,latency,
#                     restart,overload,metrics (default: all; restart and
#                     overload need latency)
#   --shapes LIST     what the ingest phase sends, comma-separated (default
#                     single,multi,prw): single = line protocol, one field per
#                     line; multi = line protocol as Telegraf sends it (cpu, mem
#                     and net lines, 4 tags, 10/3/8 fields); prw = Prometheus
#                     remote_write (snappy protobuf, 2,000 samples per request).
#                     InfluxDB gets the single shape only.
#   --targets LIST    which of foreshock,vm,influx to run where installed
#                     (default all three)
#
# Environment: BENCH_BUILDDIR (default <top>/build, built with scripts/build.sh),
# BENCH_OUTDIR (default <top>/bench/out), BENCH_NO_INSTALL=1 (never apt-get),
# BENCH_SIZES (ingest series counts, default "10000 100000 1000000"),
# BENCH_SHAPES (as --shapes), BENCH_METRICS_SIZES (series counts of the
# metrics phase, default "100000 1000000"), BENCH_MAX_RATE (samples/s taken as 100% for the
# latency phase when it runs without ingest).
#
# In the ingest phase the targets of one size and shape run at the same time
# and take turns: every target is created and warmed up, then the timed
# repetitions alternate (foreshockd, VictoriaMetrics, InfluxDB, foreshockd,
# ...), and the targets not being measured are paused (SIGSTOP), so a drift in
# the machine's load hits every target alike and an idle target's background
# work does not run during another's repetition.
#
# Every target listens on 127.0.0.1 only (foreshockd on port 0, the port it
# got read from its log; the others on free ports, checked in /proc to be
# held by the server itself, and started again on other ports when a port
# was taken between the pick and the bind), with a temporary data
# dir; every loop is bounded in count and time; everything this script starts
# is killed on exit (trap). Output: $BENCH_OUTDIR/results-DATE.json and .md,
# and the table on stdout.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
orig_args="$*"
quick=0
fs_only=0
reps=3
dur=10
profile=1
warm=160
phases=engine,ingest,batch,memory,latency,restart,overload,metrics
shapes=${BENCH_SHAPES:-single,multi,prw}
want_targets=foreshock,vm,influx
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--foreshock-only) fs_only=1 ;;
	--reps) reps=$2; shift ;;
	--duration) dur=$2; shift ;;
	--no-profile) profile=0 ;;
	--warm) warm=$2; shift ;;
	--phases) phases=$2; shift ;;
	--shapes) shapes=$2; shift ;;
	--targets) want_targets=$2; shift ;;
	-h|--help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option '$1'" >&2; exit 2 ;;
	esac
	shift
done
if [ "$quick" = 1 ]; then
	reps=1; dur=1; profile=0; warm=0
fi
case "$warm" in ''|*[!0-9]*) echo "run.sh: invalid --warm '$warm'" >&2; exit 2 ;; esac
phase() { case ",$phases," in *",$1,"*) return 0 ;; esac; return 1; }
shapes=${shapes//,/ }
for sh in $shapes; do
	case "$sh" in single|multi|prw) ;; *) echo "run.sh: unknown shape '$sh'" >&2; exit 2 ;; esac
done
case "$reps" in ''|*[!0-9]*) echo "run.sh: invalid --reps '$reps'" >&2; exit 2 ;; esac
[ "$reps" -ge 1 ] && [ "$reps" -le 9 ] || { echo "run.sh: --reps must be 1..9" >&2; exit 2; }

builddir=${BENCH_BUILDDIR:-$top/build}
outdir=${BENCH_OUTDIR:-$top/bench/out}
mkdir -p "$outdir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$(mktemp -d /tmp/foreshock-bench.XXXXXX)
# raw records go straight to the output dir, so a run that dies keeps them
steps=$outdir/steps-$stamp.jsonl
: > "$steps"
log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ---- cleanup: every process we start is recorded in $pids ------------------
pids=()
# ours PID: still our own child (guards against a recycled pid)
ours() { [ -n "$1" ] && [ "$(awk '{print $4}' "/proc/$1/stat" 2>/dev/null)" = "$$" ]; }
cleanup() {
	local p
	for p in "${pids[@]-}"; do
		ours "$p" && { kill "$p" 2>/dev/null; kill -CONT "$p" 2>/dev/null; } || true
	done
	sleep 0.5
	for p in "${pids[@]-}"; do
		ours "$p" && kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- dependencies -----------------------------------------------------------
have_vm=0; have_influx=0
command -v victoria-metrics >/dev/null && have_vm=1
command -v influxd >/dev/null && have_influx=1
if [ "$fs_only" = 0 ] && [ "$quick" = 0 ] && { [ $have_vm = 0 ] || [ $have_influx = 0 ]; }; then
	missing=()
	[ $have_vm = 0 ] && missing+=(victoria-metrics)
	[ $have_influx = 0 ] && missing+=(influxdb)
	if [ "$(id -u)" = 0 ] && [ "${BENCH_NO_INSTALL:-0}" != 1 ]; then
		log "installing ${missing[*]} (daemons kept from autostarting by policy-rc.d)"
		made_policy=0
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
			chmod +x /usr/sbin/policy-rc.d
			made_policy=1
		fi
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq || true
		apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null ||
			log "apt-get failed: comparing with what is installed"
		[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
		command -v victoria-metrics >/dev/null && have_vm=1
		command -v influxd >/dev/null && have_influx=1
	else
		log "not installed: ${missing[*]}; to compare with them, run as root:"
		log "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
	fi
fi
[ "$fs_only" = 1 ] && { have_vm=0; have_influx=0; }
case ",$want_targets," in *,vm,*) ;; *) have_vm=0 ;; esac
case ",$want_targets," in *,influx,*) ;; *) have_influx=0 ;; esac
for t in curl python3; do
	command -v $t >/dev/null || { echo "run.sh: '$t' is required" >&2; exit 1; }
done

# ---- build ---------------------------------------------------------------------
if [ -z "${BENCH_BUILDDIR:-}" ] || [ ! -x "$builddir/src/foreshockd" ]; then
	log "building foreshock in $builddir"
	"$top/scripts/build.sh" "$builddir"
fi
make -C "$builddir" -s bench/loadgen bench/engine_bench > "$work/make.log" 2>&1 ||
	{ cat "$work/make.log" >&2; exit 1; }
fsd=$builddir/src/foreshockd
# The model is copied once, next to nothing else, and foreshockd runs in its
# data dir: files that appear in the tree's models/ during a run (service
# models are read from ./models) cannot change what is measured.
mkdir -p "$work/model"
cp "$top/models/default.yml" "$work/model/default.yml"
model=$work/model/default.yml
"$fsd" --check-config --model "$model" > /dev/null 2>&1 ||
	(cd "$work/model" && "$fsd" --check-config --model "$model") ||
	{ echo "run.sh: foreshockd rejects $top/models/default.yml: rebuild $builddir" >&2; exit 1; }
loadgen=$builddir/bench/loadgen
engbench=$builddir/bench/engine_bench

# ---- helpers ---------------------------------------------------------------------
# rec KIND JSON: append one result record
rec() { printf '{"kind":"%s","data":%s}\n' "$1" "$2" >> "$steps"; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
# holds_ports PID PORT...: PID itself has a listening socket on every PORT
# (tests/integration/fslib.py listening_ports: from /proc), not another
# process that took a port between free_port and the bind
holds_ports() {
	FORESHOCK_SRCDIR=$top python3 -c 'import sys
sys.path.insert(0, sys.argv[1])
import fslib
want = set(int(p) for p in sys.argv[3:])
sys.exit(0 if want <= fslib.listening_ports([int(sys.argv[2])]) else 1)' \
		"$top/tests/integration" "$@"
}
# wait_ports PID SECONDS PORT...: until PID listens on every PORT (0), or
# PID exits or SECONDS pass (1)
wait_ports() {
	local pid=$1 limit=$2 i
	shift 2
	for ((i = 0; i < limit * 10; i++)); do
		holds_ports "$pid" "$@" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# port_taken LOG: the server said its address was in use
port_taken() { grep -qi 'address already in use' "$1" 2>/dev/null; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
clk=$(getconf CLK_TCK)
now() { date +%s.%N; }
# jget JSON KEY[.KEY...]: one value out of a JSON object
jget() { python3 -c 'import json,sys
v=json.loads(sys.argv[1])
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"; }

# wait_http URL SECONDS [PID]: until URL answers 2xx (bounded); fails at
# once if PID exits
wait_http() {
	local url=$1 limit=$2 pid=${3:-} i n
	n=$(python3 -c "print(int($limit*20))")
	for ((i = 0; i < n; i++)); do
		curl -sf -o /dev/null -m 2 "$url" && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid exited: $(tail -2 "$tdir/log" 2>/dev/null)"
			return 1
		fi
		sleep 0.05
	done
	return 1
}

# fs_port LOG PID: the port foreshockd (started with --listen 127.0.0.1:0)
# logged it listens on, once it has (up to 120 s; fails at once if PID exits)
fs_port() {
	local i p
	for ((i = 0; i < 2400; i++)); do
		p=$(sed -n 's/.*event=listening .*port=\([0-9]*\).*/\1/p' "$1" 2>/dev/null | head -1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		kill -0 "$2" 2>/dev/null || { log "foreshockd exited: $(tail -2 "$1")"; return 1; }
		sleep 0.05
	done
	return 1
}

# influx_conf RPCPORT: influxd's configuration (HTTP on $tport, data in $tdir)
influx_conf() {
	cat <<-EOF
	reporting-disabled = true
	bind-address = "127.0.0.1:$1"
	[meta]
	  dir = "$tdir/meta"
	[data]
	  dir = "$tdir/data"
	  wal-dir = "$tdir/wal"
	  max-series-per-database = 0
	  max-values-per-tag = 0
	  query-log-enabled = false
	[coordinator]
	  query-timeout = "120s"
	[monitor]
	  store-enabled = false
	[http]
	  bind-address = "127.0.0.1:$tport"
	  log-enabled = false
	[logging]
	  level = "error"
	[continuous_queries]
	  enabled = false
	EOF
}

tpid=""; tport=""; tdir=""; target=""
start_target() { # start_target NAME MAXSERIES
	target=$1
	tdir=$work/data-$1-$RANDOM
	mkdir -p "$tdir"
	case "$1" in
	foreshock) # port 0: the port it got is in its log, no other process can take it first
		(cd "$tdir" && exec "$fsd" --listen 127.0.0.1:0 --data-dir "$tdir" --model "$model" \
			--max-series "$2" --log-level info > "$tdir/log" 2>&1) &
		tpid=$!; pids+=("$tpid")
		tport=$(fs_port "$tdir/log" "$tpid") &&
			wait_http "http://127.0.0.1:$tport/readyz" 120 "$tpid" ;;
	vm|influx) # free ports, then checked: another process may take one
		# between free_port and the bind; then again on other ports
		local attempt rpc=""
		for attempt in 1 2 3 4 5; do
			tport=$(free_port)
			if [ "$1" = vm ]; then
				victoria-metrics -httpListenAddr="127.0.0.1:$tport" -storageDataPath="$tdir" \
					-retentionPeriod=12 -loggerLevel=ERROR > "$tdir/log" 2>&1 &
			else
				rpc=$(free_port)
				influx_conf "$rpc" > "$tdir/influxdb.conf"
				influxd -config "$tdir/influxdb.conf" > "$tdir/log" 2>&1 &
			fi
			tpid=$!; pids+=("$tpid")
			wait_ports "$tpid" 60 "$tport" $rpc && break
			port_taken "$tdir/log" || { log "$1 did not start: $(tail -2 "$tdir/log")"; return 1; }
			log "$1: port $tport${rpc:+,$rpc} was taken, again on other ports"
			kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null
			[ "$attempt" = 5 ] && return 1
			rm -rf "$tdir"; mkdir -p "$tdir"
		done
		if [ "$1" = vm ]; then
			wait_http "http://127.0.0.1:$tport/health" 60 "$tpid"
		else
			wait_http "http://127.0.0.1:$tport/ping" 60 "$tpid" &&
				curl -sf -m 10 -XPOST "http://127.0.0.1:$tport/query" \
					--data-urlencode 'q=CREATE DATABASE bench' >/dev/null
		fi ;;
	esac
}
stop_target() {
	[ -n "$tpid" ] || return 0
	kill "$tpid" 2>/dev/null || true
	local i
	for ((i = 0; i < 600; i++)); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$tpid" 2>/dev/null || true
	wait "$tpid" 2>/dev/null || true
	rm -rf "$tdir"
	tpid=""
}
# the shape being sent (ingest phase; every other phase sends single)
shape=single
write_path() {
	if [ "$shape" = prw ]; then
		echo "/api/v1/write"
		return
	fi
	case "$target" in
	influx) echo "/write?db=bench&precision=ms" ;;
	*) echo "/write?precision=ms" ;;
	esac
}
# loadgen write options for the shape: Telegraf sends up to metric_batch_size
# lines (default 1,000; 5,000 here, as for single), Prometheus up to
# max_samples_per_send samples per request (2,000 in recent releases)
shape_lines() { [ "$shape" = prw ] && echo 2000 || echo $lines; }
# accepted: the target's own count of samples it accepted and stored
accepted() {
	case "$target" in
	foreshock)
		curl -sf -m 30 "http://127.0.0.1:$tport/metrics" |
			awk '/^foreshock_samples_accepted_total / {printf "%d\n", $2; f=1} END {if (!f) print 0}' ;;
	vm) # rows (samples: one per field) accepted by the handler of the shape
		# (stored: see stored_count)
		local vt=influx
		[ "$shape" = prw ] && vt=promremotewrite
		curl -sf -m 30 "http://127.0.0.1:$tport/metrics" |
			awk -v t="$vt" '$1 == "vm_rows_inserted_total{type=\"" t "\"}" {printf "%d\n", $2; f=1} END {if (!f) print 0}' ;;
	influx)
		curl -sf -m 120 -G "http://127.0.0.1:$tport/query" --data-urlencode db=bench \
			--data-urlencode 'q=SELECT count(value) FROM bench_cpu' |
			python3 -c 'import json,sys
try:
    print(json.load(sys.stdin)["results"][0]["series"][0]["values"][0][1])
except Exception:
    print(0)' ;;
	esac
}
# stored_count: what a reader would find (VictoriaMetrics: rows in storage
# parts after a forced flush; the others count stored samples already)
stored_count() {
	if [ "$target" = vm ]; then
		curl -sf -m 60 "http://127.0.0.1:$tport/internal/force_flush" >/dev/null || true
		sleep 1
		curl -sf -m 30 "http://127.0.0.1:$tport/metrics" |
			awk '/^vm_rows\{type="storage\// {s += $2} END {printf "%d\n", s}'
	else
		accepted
	fi
}
series_count() {
	case "$target" in
	foreshock)
		curl -sf -m 30 "http://127.0.0.1:$tport/metrics" |
			awk '/^foreshock_series / {printf "%d\n", $2; f=1} END {if (!f) print 0}' ;;
	vm)
		curl -sf -m 60 "http://127.0.0.1:$tport/api/v1/series/count" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0])' 2>/dev/null || echo 0 ;;
	influx)
		curl -sf -m 120 -G "http://127.0.0.1:$tport/query" --data-urlencode db=bench \
			--data-urlencode 'q=SHOW SERIES CARDINALITY' |
			python3 -c 'import json,sys
try:
    print(json.load(sys.stdin)["results"][0]["series"][0]["values"][0][0])
except Exception:
    print(0)' ;;
	esac
}

targets=(foreshock)
[ $have_vm = 1 ] && targets+=(vm)
[ $have_influx = 1 ] && targets+=(influx)
lines=5000
conns=2
day=86400000
# One timeline per target: starts 20 days ago at 01:00 UTC and every write
# continues where the previous ended (loadgen's next_t0), 10 s per round, so
# day-partitioned stores (VictoriaMetrics' per-day index, InfluxDB's shard
# groups) see the same day changes a live feed would, not extra ones.
base_t0=$(( (($(date +%s) / 86400 - 20) * 86400 + 3600) * 1000 ))

# ---- 2. detector engine alone ------------------------------------------------------
bench_engine() {
	local series=$1 secs=$2 warm=$3 model=$4 extra=${5:-} r out
	for ((r = 1; r <= ${6:-1}; r++)); do
		if [ -n "$model" ]; then
			out=$(timeout 300 "$engbench" --series "$series" --seconds "$secs" --warm "$warm" \
				--model "$model" $extra)
		else
			out=$(timeout 300 "$engbench" --series "$series" --seconds "$secs" --warm "$warm" $extra)
		fi
		rec engine "$out"
	done
}
phase engine && log "engine benchmark (no HTTP, no store)"
if ! phase engine; then
	:
elif [ "$quick" = 1 ]; then
	bench_engine 1 0.3 160 "" "" 1
	bench_engine 1000 0.3 160 "" "" 1
	bench_engine 1000 0.3 160 "" --engine 1
else
	bench_engine 1 3 160 "" "" "$reps"
	bench_engine 100000 3 160 "" "" "$reps"
	# the states in a random order: without, then with the engine's prefetch
	bench_engine 100000 3 160 "" --shuffle "$reps"
	bench_engine 100000 3 160 "" "--shuffle --prefetch" "$reps"
	bench_engine 1 3 160 "" --engine "$reps"
	bench_engine 100000 3 160 "" --engine "$reps"
	for m in "$top/models/default.yml" "$top"/bench/models/*.yml; do
		bench_engine 10000 2 160 "$m" "" 1
	done
	# the engine path as the batch (request body) grows
	for b in 100 1000 5000 20000 100000; do
		bench_engine 100000 2 160 "" "--engine --batch $b" 1
	done
fi

# ---- 1. ingest throughput (+ 3. memory from the same runs) -------------------------
if [ -n "${BENCH_SIZES:-}" ]; then
	read -r -a sizes <<< "$BENCH_SIZES"
elif [ "$quick" = 1 ]; then
	sizes=(1000)
else
	sizes=(10000 100000 1000000)
fi
# warm_rounds SERIES: --warm, or 0 when that would take more than 20M samples
# (the run would not fit its time; such sizes are measured in warm-up)
warm_rounds() {
	if [ $((warm * $1)) -gt 20000000 ]; then echo 0; else echo "$warm"; fi
}
# timed_write KIND LINES SECONDS JSON_FIELDS: one timed loadgen run of $s series
# against the running target from $t0 (both the caller's; t0 moves on), recorded
# as KIND with JSON_FIELDS and what was accepted; sets last_rate (samples/s)
timed_write() {
	local kind=$1 L=$2 secs=$3 fields=$4 out a0 a1 c0 c1 w
	a0=$(accepted); c0=$(cpu_ticks "$tpid")
	out=$("$loadgen" write --port "$tport" --path "$(write_path)" --shape "$shape" --series "$s" \
		--lines "$L" --conns $conns --duration "$secs" --t0 "$t0")
	a1=$(accepted); c1=$(cpu_ticks "$tpid")
	t0=$(jget "$out" next_t0)
	w=$(jget "$out" wall_s)
	rec "$kind" "{$fields,\"accepted\":$((a1 - a0)),\"wall_s\":$w,\"samples_per_s\":$(python3 -c "print(($a1-$a0)/$w)"),\"target_cpu_s\":$(python3 -c "print(($c1-$c0)/$clk)"),\"loadgen\":$out}"
	last_rate=$(python3 -c "print(round(($a1-$a0)/$w))")
}
# ingest_setup TARGET SERIES: a fresh target, its state kept in the T_* arrays;
# one untimed round creates the series (timed separately: "create"), then
# the warm-up rounds. Leaves the target paused.
declare -A T_pid T_port T_dir T_t0 T_rss0
ingest_setup() {
	local tg=$1 s=$2 maxs
	maxs=$(( s * 2 > 2000000 ? s * 2 : 2000000 ))
	start_target "$tg" "$maxs" || { log "$tg failed to start"; stop_target; return 1; }
	sleep 1
	local rss0; rss0=$(rss_kb "$tpid")
	local t0=$base_t0 out a0 a1 c0 c1 L; L=$(shape_lines)
	# series creation: one sample per series
	a0=$(accepted); c0=$(cpu_ticks "$tpid")
	out=$("$loadgen" write --port "$tport" --path "$(write_path)" --shape "$shape" --series "$s" \
		--lines "$L" --conns $conns --rounds 1 --duration 600 --t0 "$t0")
	a1=$(accepted); c1=$(cpu_ticks "$tpid")
	rec create "{\"target\":\"$tg\",\"series\":$s,\"shape\":\"$shape\",\"accepted\":$((a1 - a0)),\"target_cpu_s\":$(python3 -c "print(($c1-$c0)/$clk)"),\"loadgen\":$out}"
	t0=$(jget "$out" next_t0)
	local wr; wr=$(warm_rounds "$s")
	if [ "$wr" -gt 0 ]; then
		out=$("$loadgen" write --port "$tport" --path "$(write_path)" --shape "$shape" \
			--series "$s" --lines "$L" --conns $conns --rounds "$wr" --duration 600 --t0 "$t0")
		rec warm "{\"target\":\"$tg\",\"series\":$s,\"shape\":\"$shape\",\"rounds\":$wr,\"loadgen\":$out}"
		t0=$(jget "$out" next_t0)
	fi
	T_pid[$tg]=$tpid; T_port[$tg]=$tport; T_dir[$tg]=$tdir; T_t0[$tg]=$t0; T_rss0[$tg]=$rss0
	kill -STOP "$tpid"
	tpid=""
}
# use_target TARGET: make a set-up target current and resume it (the caller
# pauses it again)
use_target() {
	target=$1; tpid=${T_pid[$1]}; tport=${T_port[$1]}; tdir=${T_dir[$1]}
	kill -CONT "$tpid"
	sleep 0.2
}
# ingest_runs SERIES: every target of the shape set up, then $reps timed
# repetitions of $dur seconds, alternating between the targets; then the
# stored count and memory of each, and stop.
ingest_runs() {
	local s=$1 tg r t0 tgs=() up=()
	for tg in "${targets[@]}"; do
		[ "$shape" != single ] && [ "$tg" = influx ] && continue
		tgs+=("$tg")
	done
	for tg in "${tgs[@]}"; do
		log "ingest $tg series=$s shape=$shape: create and warm up"
		ingest_setup "$tg" "$s" && up+=("$tg")
	done
	[ ${#up[@]} -gt 0 ] || return 0
	for ((r = 1; r <= reps; r++)); do
		for tg in "${up[@]}"; do
			use_target "$tg"
			t0=${T_t0[$tg]}
			timed_write ingest "$(shape_lines)" "$dur" "\"target\":\"$tg\",\"series\":$s,\"shape\":\"$shape\",\"rep\":$r"
			T_t0[$tg]=$t0
			kill -STOP "$tpid"
			log "  $tg series=$s shape=$shape rep=$r: $last_rate samples/s accepted"
		done
	done
	for tg in "${up[@]}"; do
		use_target "$tg"
		sleep 1
		local stored nser hwm rss
		stored=$(stored_count); nser=$(series_count)
		hwm=$(hwm_kb "$tpid"); rss=$(rss_kb "$tpid")
		rec stored "{\"target\":\"$tg\",\"series\":$s,\"shape\":\"$shape\",\"stored\":$stored,\"series_seen\":$nser,\"rss_empty_kb\":${T_rss0[$tg]},\"hwm_kb\":$hwm,\"rss_kb\":$rss}"
		stop_target
		unset "T_pid[$tg]"
	done
}
phase ingest && log "ingest throughput: sizes ${sizes[*]}, shapes $shapes, targets ${targets[*]}, $reps x ${dur}s"
phase ingest || sizes=()
for s in "${sizes[@]}"; do
	for shape in $shapes; do
		ingest_runs "$s"
	done
done
shape=single

# ---- 6b. throughput as the body (batch) size varies, 100k series -------------------
batch_run() { # batch_run TARGET SERIES
	local tg=$1 s=$2
	start_target "$tg" 2000000 || { log "$tg failed to start"; stop_target; return 0; }
	sleep 1
	local t0=$base_t0 out wr L
	out=$("$loadgen" write --port "$tport" --path "$(write_path)" --series "$s" --lines 5000 \
		--conns $conns --rounds 1 --duration 600 --t0 "$t0")
	t0=$(jget "$out" next_t0)
	wr=$(warm_rounds "$s")
	if [ "$wr" -gt 0 ]; then
		out=$("$loadgen" write --port "$tport" --path "$(write_path)" --series "$s" --lines 5000 \
			--conns $conns --rounds "$wr" --duration 600 --t0 "$t0")
		t0=$(jget "$out" next_t0)
	fi
	for L in $batch_sizes; do
		timed_write batch "$L" "$bdur" "\"target\":\"$tg\",\"series\":$s,\"lines\":$L"
		log "  $tg series=$s lines=$L: $last_rate samples/s accepted"
	done
	stop_target
}
if phase batch; then
	if [ "$quick" = 1 ]; then
		batch_sizes="100 1000"; bdur=1; bs=1000
	else
		batch_sizes="100 500 1000 5000 20000"; bdur=6; bs=100000
	fi
	log "throughput vs body size: $bs series, lines per body: $batch_sizes"
	for tg in "${targets[@]}"; do
		[ "$tg" = influx ] && continue
		batch_run "$tg" "$bs"
	done
fi

# ---- 3b. GET /metrics: how long a scrape takes to build ------------------------
# foreshockd with S series (3 samples each), idle: 5 scrapes in a row (the
# first builds everything; the others find nothing changed), then one more
# round of samples (every series changed) and one scrape
metrics_run() { # metrics_run SERIES
	local s=$1 out t i times=() body=0 reused
	start_target foreshock $(( s * 2 > 2000000 ? s * 2 : 2000000 )) ||
		{ log "foreshockd failed to start"; stop_target; return 0; }
	out=$("$loadgen" write --port "$tport" --series "$s" --lines $lines --conns $conns --rounds 3 \
		--duration 600 --t0 "$base_t0")
	local tl; tl=$(jget "$out" next_t0)
	scrape() { # prints "seconds bytes shards_reused"
		curl -sf -m 120 -o "$work/metrics.txt" -w '%{time_total} %{size_download}' \
			"http://127.0.0.1:$tport/metrics"
		printf ' %s\n' "$(awk '/^foreshock_metrics_shards_reused / {print $2; f=1} END {if (!f) print "null"}' "$work/metrics.txt")"
	}
	for ((i = 0; i < 5; i++)); do
		read -r t body reused < <(scrape)
		times+=("$t")
	done
	"$loadgen" write --port "$tport" --series "$s" --lines $lines --conns $conns --rounds 1 \
		--duration 600 --t0 "$tl" > /dev/null
	local ta ba ra
	read -r ta ba ra < <(scrape)
	rec metrics "{\"series\":$s,\"idle_s\":[$(IFS=,; echo "${times[*]}")],\"body_bytes\":$body,\"reused_idle\":$reused,\"after_change_s\":$ta,\"after_change_body_bytes\":$ba,\"reused_after_change\":$ra}"
	log "  /metrics at $s series: idle ${times[*]} s; after a round of samples $ta s"
	stop_target
}
if phase metrics; then
	if [ "$quick" = 1 ]; then msizes="1000"; else msizes=${BENCH_METRICS_SIZES:-"100000 1000000"}; fi
	log "GET /metrics build time: sizes $msizes"
	for s in $msizes; do metrics_run "$s"; done
fi

# max ingest rate of foreshock at SIZE (median of the reps), for pacing
fs_max_rate() {
	python3 - "$steps" "$1" <<-'EOF'
	import json, sys, statistics
	v = [json.loads(l)["data"] for l in open(sys.argv[1])]
	r = [d["samples_per_s"] for d in v if "samples_per_s" in d and d.get("target") == "foreshock"
	     and d.get("series") == int(sys.argv[2]) and "rep" in d]
	print(int(statistics.median(r)) if r else 100000)
	EOF
}

# ---- 3. memory at 10k series (few samples, and the history ring full) ----------
mem_run() { # mem_run TARGET SERIES ROUNDS
	local tg=$1 s=$2 rounds=$3
	start_target "$tg" 2000000 || { log "$tg failed to start"; stop_target; return 0; }
	sleep 1
	local rss0; rss0=$(rss_kb "$tpid")
	local out
	out=$("$loadgen" write --port "$tport" --path "$(write_path)" --series "$s" --lines $lines \
		--conns $conns --rounds "$rounds" --duration 300 --t0 "$base_t0")
	[ "$tg" = vm ] && curl -sf -m 60 "http://127.0.0.1:$tport/internal/force_flush" >/dev/null
	sleep 2
	rec memory "{\"target\":\"$tg\",\"series\":$s,\"rounds\":$rounds,\"samples_sent\":$(jget "$out" samples_2xx),\"rss_empty_kb\":$rss0,\"hwm_kb\":$(hwm_kb "$tpid"),\"rss_kb\":$(rss_kb "$tpid")}"
	stop_target
}
phase memory && log "memory per series"
if ! phase memory; then
	:
elif [ "$quick" = 1 ]; then
	mem_run foreshock 1000 5
else
	for tg in "${targets[@]}"; do
		[ "$tg" = influx ] && continue
		mem_run "$tg" 10000 10
		mem_run "$tg" 10000 370
	done
fi

# ---- 4. query latency under load, 5. restart, 6. overload, profile (foreshock) ----
ls=$([ "$quick" = 1 ] && echo 1000 || echo 100000)
if phase latency; then
log "query latency under ~80% load (foreshock, $ls series, $(warm_rounds "$ls") warm-up rounds first)"
start_target foreshock 2000000 || { log "foreshockd failed to start: no latency, restart, overload"; phases=engine; }
fi
if phase latency; then
out=$("$loadgen" write --port "$tport" --series "$ls" --lines $lines --conns $conns \
	--rounds "$(( $(warm_rounds "$ls") + 3 ))" --duration 600 --t0 "$base_t0")
tl=$(jget "$out" next_t0)
maxr=${BENCH_MAX_RATE:-$(fs_max_rate "$ls")}
rate=$((maxr * 8 / 10))
ldur=$([ "$quick" = 1 ] && echo 2 || echo 20)
sel=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("bench_cpu{host=\"h0000042\"}"))')
qpaths=(--path /api/v1/alerts --path "/api/v1/anomalies?series=$sel" --path /metrics)
# idle first (no ingest), then under load
out=$("$loadgen" get --port "$tport" "${qpaths[@]}" --interval-ms 20 --duration "$ldur")
nalerts=$(curl -sf -m 30 "http://127.0.0.1:$tport/api/v1/alerts" | python3 -c 'import json,sys
d=json.load(sys.stdin); a=d.get("data",d); a=a.get("alerts",a) if isinstance(a,dict) else a
print(len(a) if isinstance(a,list) else 0)' 2>/dev/null || echo 0)
rec latency "{\"load\":\"idle\",\"series\":$ls,\"rate\":0,\"alerts\":$nalerts,\"get\":$out}"
# under load: first the API alone (alerts, anomalies), then with /metrics,
# which formats every series under the engine lock and so stalls ingest
"$loadgen" write --port "$tport" --series "$ls" --lines $lines --conns $conns --rate "$rate" \
	--duration "$((2 * ldur + 3))" --t0 "$tl" > "$work/lat-write.json" &
lw=$!; pids+=("$lw")
sleep 1
c0=$(cpu_ticks "$tpid"); a0=$(accepted)
out=$("$loadgen" get --port "$tport" "${qpaths[@]:0:4}" --interval-ms 20 --duration "$ldur")
a1=$(accepted); c1=$(cpu_ticks "$tpid")
rec latency "{\"load\":\"80%, API only\",\"series\":$ls,\"rate\":$rate,\"max_rate\":$maxr,\"accepted_per_s\":$(python3 -c "print(($a1-$a0)/$ldur)"),\"get\":$out}"
out=$("$loadgen" get --port "$tport" "${qpaths[@]}" --interval-ms 20 --duration "$ldur")
wait "$lw" || true
tl=$(jget "$(cat "$work/lat-write.json")" next_t0)
rec latency "{\"load\":\"80%, with /metrics\",\"series\":$ls,\"rate\":$rate,\"max_rate\":$maxr,\"get\":$out,\"write\":$(cat "$work/lat-write.json")}"

if [ "$profile" = 1 ] && command -v perf >/dev/null; then
	log "profile: perf record of foreshockd under unpaced ingest ($ls series, 10 s)"
	"$loadgen" write --port "$tport" --series "$ls" --lines $lines --conns $conns --duration 12 \
		--t0 "$tl" > "$work/prof-write.json" &
	lw=$!; pids+=("$lw")
	sleep 1
	timeout 30 perf record -F 499 -g -p "$tpid" -o "$work/perf.data" -- sleep 10 >/dev/null 2>&1 || true
	wait "$lw" || true
	tl=$(jget "$(cat "$work/prof-write.json")" next_t0)
	if [ -s "$work/perf.data" ]; then
		perf report -i "$work/perf.data" --no-children --percent-limit 0.7 --stdio \
			--sort symbol -g none 2>/dev/null | grep -v '^$' > "$outdir/profile-$stamp.txt" || true
	fi
fi

fi # latency
if phase latency && phase restart; then
log "restart with $ls series checkpointed"
a_before=$(accepted)
t_a=$(now); kill -TERM "$tpid"
for ((i = 0; i < 1200; i++)); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.05; done
t_b=$(now)
ckpt_ms=$(grep -o 'event=checkpoint series=[0-9]* ms=[0-9]*' "$tdir/log" | tail -1 | sed 's/.*ms=//' || true)
# keep the data dir: restart on it
(cd "$tdir" && exec "$fsd" --listen 127.0.0.1:0 --data-dir "$tdir" --model "$model" \
	--max-series 2000000 --log-level info > "$tdir/log2" 2>&1) &
t_c=$(now); tpid=$!; pids+=("$tpid")
{ tport=$(fs_port "$tdir/log2" "$tpid") && wait_http "http://127.0.0.1:$tport/readyz" 120; } ||
	log "foreshockd not ready after 120 s"
t_d=$(now)
restored=$(grep -o 'series_restored=[0-9]*' "$tdir/log2" | tail -1 | sed 's/.*=//' || true)
rec restart "{\"series\":$ls,\"samples_before\":$a_before,\"shutdown_s\":$(python3 -c "print($t_b-$t_a)"),\"checkpoint_ms\":${ckpt_ms:-null},\"ready_s\":$(python3 -c "print($t_d-$t_c)"),\"series_restored\":${restored:-0},\"rss_after_restore_kb\":$(rss_kb "$tpid")}"

fi # restart
if phase latency && phase overload; then
log "overload: 32, then 256 connections unpaced; a small write queue; a 20 MB body"
odur=$([ "$quick" = 1 ] && echo 2 || echo 15)
overload() { # PROBE_PATH CONNS BIG_BODY(0/1) [SETUP], on the running target
	local ocon=$2 rss_max=0 r setup=${4:-defaults}
	"$loadgen" write --port "$tport" --path "$(write_path)" --series "$ls" --lines $lines \
		--conns $ocon --duration "$odur" --t0 "$tl" > "$work/ov-write.json" &
	lw=$!; pids+=("$lw")
	"$loadgen" get --port "$tport" --path "$1" --interval-ms 100 --duration "$odur" \
		> "$work/ov-get.json" &
	local lg=$!; pids+=("$lg")
	local i
	for ((i = 0; i < odur * 4 + 40; i++)); do
		kill -0 "$lw" 2>/dev/null || break
		r=$(rss_kb "$tpid"); [ "$r" -gt "$rss_max" ] && rss_max=$r
		sleep 0.25
	done
	wait "$lw" || true; wait "$lg" || true
	tl=$(jget "$(cat "$work/ov-write.json")" next_t0)
	local big=null
	[ "$3" = 1 ] && big=$("$loadgen" write --port "$tport" --path "$(write_path)" --series 300000 \
		--lines 300000 --conns 1 --rounds 1 --duration 60 --t0 "$tl")
	local alive=0
	kill -0 "$tpid" 2>/dev/null && alive=1
	rec overload "{\"target\":\"$target\",\"setup\":\"$setup\",\"series\":$ls,\"conns\":$ocon,\"rss_max_kb\":$rss_max,\"rss_after_kb\":$(rss_kb "$tpid"),\"alive\":$alive,\"write\":$(cat "$work/ov-write.json"),\"probe\":$(cat "$work/ov-get.json"),\"big_body\":$big}"
}
# with the defaults (8 writes in flight, up to 1024 waiting for up to 2 s) both
# fit in the write queue
overload /readyz 32 0
overload /readyz 256 0
# the shed path: the same daemon, restarted on its data dir with a small queue
kill -TERM "$tpid"
for ((i = 0; i < 1200; i++)); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.05; done
printf 'http:\n  max_queued_writes: 16\n  queue_timeout: 200ms\n' > "$tdir/small-queue.yml"
(cd "$tdir" && exec "$fsd" --config "$tdir/small-queue.yml" --listen 127.0.0.1:0 \
	--data-dir "$tdir" --model "$model" --max-series 2000000 --log-level info > "$tdir/log3" 2>&1) &
tpid=$!; pids+=("$tpid")
if tport=$(fs_port "$tdir/log3" "$tpid") && wait_http "http://127.0.0.1:$tport/readyz" 120 "$tpid"; then
	overload /readyz 256 1 "queue 16, 200 ms"
else
	log "foreshockd with a small write queue did not start"
fi
stop_target
if [ $have_vm = 1 ] && [ "$quick" = 0 ]; then
	start_target vm 2000000
	out=$("$loadgen" write --port "$tport" --series "$ls" --lines $lines --conns $conns --rounds 3 \
		--duration 600 --t0 "$base_t0")
	tl=$(jget "$out" next_t0)
	overload /health 32 0
	overload /health 256 1
	stop_target
fi
fi # overload
stop_target

# ---- report -------------------------------------------------------------------------
meta=$(python3 - <<-EOF
import json, os, platform
mem = open("/proc/meminfo").read().split("\n")[0].split()[1]
cpu = [l.split(":")[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][:1]
print(json.dumps({"date": "$stamp", "nproc": os.cpu_count(), "mem_kb": int(mem),
  "cpu": cpu[0] if cpu else "", "kernel": platform.release(), "quick": $quick,
  "reps": $reps, "duration_s": $dur, "command": "bench/run.sh $orig_args".strip(),
  "loadavg_end": open("/proc/loadavg").read().split()[:3],
  "foreshock_version": "$("$fsd" --version 2>/dev/null | head -1)",
  "git": "$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)",
  "victoria_metrics_version": "$( [ $have_vm = 1 ] && victoria-metrics -version 2>/dev/null | head -1 || true)",
  "influxdb_version": "$( [ $have_influx = 1 ] && influxd version 2>/dev/null | head -1 || true)"}))
EOF
)
rec meta "$meta"
python3 "$top/bench/report.py" "$steps" "$outdir/results-$stamp.json" "$outdir/results-$stamp.md"
cat "$outdir/results-$stamp.md"
log "results: $outdir/results-$stamp.json, $outdir/results-$stamp.md"
