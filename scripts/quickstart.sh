#!/usr/bin/env bash
# quickstart.sh — install what is missing, build, and start foreshockd in the
# foreground on 127.0.0.1:9790, replaying the bundled demo (data/demo/
# checkout.lp: six hours of a service heading into overload) through its own
# HTTP API at 360x, shifted so that the six hours end now. Within a minute the
# page at http://127.0.0.1:9790/ shows the checkout service heading for
# trouble (OverloadRisk), its signals with bands and forecasts, and the alerts.
#
#   scripts/quickstart.sh [--with-victoriametrics] [foreshockd options...]
#
# Every run starts from a clean demo state in ./var/demo (the demo's
# timeline is new each time, so state from an earlier run would make its
# samples look out of order). With --with-victoriametrics it also starts
# VictoriaMetrics (Debian package victoria-metrics) on 127.0.0.1:8428 with
# its data in ./var/victoria-metrics (also cleaned), and foreshockd
# remote_writes its outputs there (export.url): query them with PromQL /
# MetricsQL at http://127.0.0.1:8428/vmui or from Grafana with the shipped
# dashboards (grafana/). Extra arguments go to foreshockd (e.g. --listen
# 127.0.0.1:9999). Environment: VAR_DIR (default ./var), VM_PORT (8428),
# BUILD_DIR (build), QUICKSTART_NO_BUILD=1 to use an existing build.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
with_vm=0
if [ "${1-}" = --with-victoriametrics ]; then
  with_vm=1
  shift
fi
var=${VAR_DIR:-./var}
build=${BUILD_DIR:-build}
vm_port=${VM_PORT:-8428}
if [ "${QUICKSTART_NO_BUILD:-0}" != 1 ]; then
  scripts/deps.sh build
  scripts/build.sh "$build"
fi
if [ $with_vm = 1 ] && ! command -v victoria-metrics >/dev/null; then
  echo "quickstart.sh: --with-victoriametrics needs VictoriaMetrics:" >&2
  echo "  apt-get install -y victoria-metrics" >&2
  exit 1
fi
rm -rf "$var/demo"
mkdir -p "$var"
args=(--config data/demo/foreshock.yml --data-dir "$var/demo" --models-dir models
  --replay data/demo/checkout.lp --replay-precision s --replay-speed 360 --replay-now)
if [ $with_vm = 0 ]; then
  echo "foreshockd: open http://127.0.0.1:9790/ (Ctrl-C stops it)" >&2
  exec "$build/src/foreshockd" "${args[@]}" "$@"
fi
# a port someone else listens on would answer our health check (and take
# our samples) while our VictoriaMetrics exits on "address already in use"
if (exec 3<>"/dev/tcp/127.0.0.1/$vm_port") 2>/dev/null; then
  echo "quickstart.sh: port $vm_port is in use: address already in use (set VM_PORT)" >&2
  exit 1
fi
rm -rf "$var/victoria-metrics"
victoria-metrics -httpListenAddr="127.0.0.1:$vm_port" -storageDataPath="$var/victoria-metrics" \
  -search.latencyOffset=0s -loggerLevel=WARN &
vm=$!
trap 'kill "$vm" 2>/dev/null; wait "$vm" 2>/dev/null || true' EXIT
# Another process may still take the port between the check above and
# VictoriaMetrics binding it: ours is ready only once it holds the listening
# socket itself (the socket's inode in /proc/net/tcp is one of its open files) and
# answers there; an answer on the port while it holds none is someone else's.
vm_holds_port() {
  local inode fd
  for inode in $(awk -v p="$(printf ':%04X' "$vm_port")" \
      'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
    for fd in /proc/"$vm"/fd/*; do
      [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$inode]" ] && return 0
    done
  done
  return 1
}
health() { curl -fs --max-time 2 "http://127.0.0.1:$vm_port/health" >/dev/null 2>&1; }
# up to a minute on a busy machine
for i in $(seq 600); do
  kill -0 "$vm" 2>/dev/null || { echo "quickstart.sh: victoria-metrics did not start" >&2; exit 1; }
  if vm_holds_port; then
    health && break
  elif health && ! vm_holds_port; then
    echo "quickstart.sh: port $vm_port is in use: address already in use (another process took it" \
      "before VictoriaMetrics could; set VM_PORT)" >&2
    exit 1
  fi
  [ "$i" -lt 600 ] || { echo "quickstart.sh: victoria-metrics did not answer on 127.0.0.1:$vm_port within about a minute" >&2; exit 1; }
  sleep 0.1
done
echo "foreshockd: open http://127.0.0.1:9790/; VictoriaMetrics: http://127.0.0.1:$vm_port/vmui (Ctrl-C stops both)" >&2
"$build/src/foreshockd" "${args[@]}" --export-url "http://127.0.0.1:$vm_port/api/v1/write" "$@" &
fs=$!
trap 'kill "$fs" 2>/dev/null; wait "$fs" 2>/dev/null; kill "$vm" 2>/dev/null; wait "$vm" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
wait "$fs"
