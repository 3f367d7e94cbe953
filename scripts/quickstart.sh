#!/usr/bin/env bash
# quickstart.sh — install what is missing, build, and start foreshockd in the
# foreground on 127.0.0.1:9790 with its SQLite store under ./var, replaying
# the bundled demo data (data/demo/checkout.lp) through its own HTTP API so
# that alerts appear within a minute. Open http://127.0.0.1:9790/ or
#   curl -s http://127.0.0.1:9790/api/v1/alerts
# Extra arguments go to foreshockd (e.g. --listen 127.0.0.1:9999).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh build
scripts/build.sh build
echo "foreshockd: open http://127.0.0.1:9790/ (Ctrl-C stops it; state is kept in ./var)" >&2
exec build/src/foreshockd --data-dir ./var --replay data/demo/checkout.lp \
  --replay-precision s --replay-speed 360 "$@"
