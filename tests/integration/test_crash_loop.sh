#!/bin/sh
# The short kill -9 loop of make check: 20 cycles of crash_loop.py (feed,
# kill -9 at a random moment, check the store, restart, check what came
# back). scripts/crash-loop.sh N runs the long one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/crash_loop.py" "${CRASH_LOOP_CYCLES:-20}"
