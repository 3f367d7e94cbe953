#!/bin/bash
# timelimit.sh — run one test of `make check` under a time limit, so that a
# test that hangs fails, naming itself and its limit, instead of stalling
# make check (and CI) until something else kills it. Makefile.am runs every
# test through it (LOG_COMPILER, PY_LOG_COMPILER, SH_LOG_COMPILER):
#
#   tests/timelimit.sh PROGRAM [ARGS...] TEST
#
# The limit is FORESHOCK_TEST_TIMEOUT seconds when set, else the test's own
# from the table below, else 1200. The limits only catch a hang: each is about
# six times what the test took under ASan on a 2-core machine loaded twenty
# times over (README.md, "Building by hand"). At the limit
# the test and everything in its process group get SIGTERM (the Python tests
# then stop the daemons they started and print where they were waiting:
# tests/integration/fslib.py), and SIGKILL 60 s later.
set -u
[ $# -ge 1 ] || { echo "usage: tests/timelimit.sh PROGRAM [ARGS...] TEST" >&2; exit 99; }
test=${!#}
name=$(basename "$test")
case $name in
	# the longest: on a fresh Debian 12 machine at load 20 (2 cores), under ASan,
	# test_outage.py took 402 s, the others 64-132 s; every other test under 50 s
	test_outage.py | test_crash_loop.sh | test_ui.py | test_daemon.py | test_bench_quick.sh | \
	test_store | test_nab_floor.sh | test_prometheus.py) limit=2400 ;;
	*) limit=1200 ;;
esac
limit=${FORESHOCK_TEST_TIMEOUT:-$limit}
case $limit in
	'' | *[!0-9]*) echo "timelimit.sh: FORESHOCK_TEST_TIMEOUT must be a number of seconds, not '$limit'" >&2
	               exit 99 ;;
esac

# timeout(1) runs the test in a process group of its own and signals the whole
# group; a signal that interrupts make check is passed on to it
timeout --kill-after=60 "$limit" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM HUP
trap 'kill -INT "$pid" 2>/dev/null' INT
start=$SECONDS
wait "$pid"
rc=$?
while kill -0 "$pid" 2>/dev/null; do # a trapped signal ended wait early
	wait "$pid"
	rc=$?
done
elapsed=$((SECONDS - start))
if [ "$rc" = 124 ] || { [ "$rc" = 137 ] && [ "$elapsed" -ge "$limit" ]; }; then
	echo "FAIL: $test did not finish within its time limit of ${limit}s" \
	     "(tests/timelimit.sh; FORESHOCK_TEST_TIMEOUT sets another):" \
	     "stopped with SIGTERM$([ "$rc" = 137 ] && echo ", then SIGKILL 60 s later")"
	exit 1
fi
exit "$rc"
