#!/usr/bin/env bash
# soak.sh — the compressed 24-hour soak: a day of event time for 10,000 host
# series (plus four services with their models, incidents, and scrapes of
# /metrics and the API every 20 steps) replayed into one foreshockd as fast
# as it takes it, sampling its RSS after every step. Fails on a write or a
# scrape that is not answered 200/204, an error line in the daemon's log, or
# RSS still rising in the last quarter of the day (least-squares fit; see
# tests/integration/soak.py for the bound).
#
#   scripts/soak.sh [--series N] [--step S] [--hours H] [--csv FILE]
#   BUILD=build-asan scripts/soak.sh --series 2000      (another build dir)
#
# Needs a built tree (scripts/build.sh). Runs niced; a few minutes at the
# defaults. make check runs a short version (tests/integration/test_soak.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
[ -x "$build/src/foreshockd" ] || { echo "soak.sh: $build/src/foreshockd not built (scripts/build.sh)" >&2; exit 2; }
export FORESHOCK_SRCDIR="$top" FORESHOCK_BUILDDIR="$build"
exec nice python3 "$top/tests/integration/soak.py" "$@"
