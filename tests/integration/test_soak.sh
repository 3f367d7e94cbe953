#!/bin/sh
# The short soak of make check: a day of event time at 5-minute steps for
# 1,000 host series and four services (soak.py: writes and scrapes answered,
# no error line in the log, RSS flat in the last quarter). scripts/soak.sh
# runs the full one (10,000 series, 1-minute steps).
#
# Paced to about 30 s of wall time so that the daemon's wall-clock work (the
# checkpoint rounds, every 2 s as soak.py sets) runs in the warm-up half too: unpaced, the day took
# 2 s and one round's allocations landed in the last quarter. At this size
# RSS moves in single steps of up to 2 MiB (malloc arenas, SQLite's page
# cache) that a fit over the last quarter's 72 points can catch whole, so the
# fixed part of the bound is 4 MiB, not 2: a leak of about 60 bytes per
# sample or more (72,576 samples in that quarter) still fails it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/soak.py" --series 1000 --step 300 --pace 0.1 --floor-mib 4
