#!/bin/sh
# The short soak of make check: a day of event time at 5-minute steps for
# 1,000 host series and four services (soak.py: writes and scrapes answered,
# no error line in the log, RSS flat in the last quarter). scripts/soak.sh
# runs the full one (10,000 series, 1-minute steps).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/soak.py" --series 1000 --step 300
