#!/usr/bin/env bash
# crash-loop.sh — kill -9 foreshockd N times at random moments, at default
# settings (checkpoint.interval set to 2 s), and check each time that no served alert transition was lost,
# that the restart closed no open alert, and that the series registry and
# learned state came back (tests/integration/crash_loop.py says exactly what
# is checked).
#
#   scripts/crash-loop.sh [N] [--seed S] [--keep DIR]   (default N = 20)
#   BUILD=build-asan scripts/crash-loop.sh 100          (another build dir)
#
# Needs a built tree (scripts/build.sh). Runs niced; about 3 s per cycle.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
[ -x "$build/src/foreshockd" ] || { echo "crash-loop.sh: $build/src/foreshockd not built (scripts/build.sh)" >&2; exit 2; }
export FORESHOCK_SRCDIR="$top" FORESHOCK_BUILDDIR="$build"
exec nice python3 "$top/tests/integration/crash_loop.py" "$@"
