#!/usr/bin/env bash
# scale.sh — throughput of 1, 2 and 4 foreshockd behind vmagent, and the
# relay's cost per sample (bench/scale.py; results in docs/scaling.md).
#
#   bench/scale.sh [BUILDDIR] [scale.py options: --series N --rounds R --reps K ...]
#
# Needs vmagent (Debian package victoria-metrics) and a built tree (default
# build/); builds bench/loadgen. Runs with nice: the numbers are per sample
# and medians of interleaved runs, so a loaded machine shifts them less.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-$top/build}
[ $# -gt 0 ] && shift
[ -x /usr/bin/vmagent ] || { echo "scale.sh: /usr/bin/vmagent missing (apt-get install victoria-metrics)" >&2; exit 77; }
[ -x "$builddir/src/foreshockd" ] || { echo "scale.sh: $builddir/src/foreshockd not built" >&2; exit 1; }
make -C "$builddir" -s bench/loadgen >/dev/null
exec nice python3 "$top/bench/scale.py" --builddir "$builddir" "$@"
