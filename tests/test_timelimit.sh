#!/bin/bash
# test_timelimit.sh — make check's time limit (tests/timelimit.sh) works:
#  1. a test that outlives its limit fails (exit 1) with a message naming it
#     and the limit, soon after the limit;
#  2. one that ignores SIGTERM is killed 60 s later (only when
#     FORESHOCK_TEST_SLOW=1: it takes a minute);
#  3. a Python integration test stuck waiting (fslib.wait_for) and stopped
#     by SIGTERM fails with a traceback that says where it waited, its finally
#     blocks run (the process it started is gone), and its remaining tests
#     are not started;
#  4. exit statuses pass through: 0, 1, 77 (skip), 99 (hard error);
#  5. a limit that is not a number is refused.
set -u
src=${FORESHOCK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
tl="$src/tests/timelimit.sh"
py=${PYTHON3:-python3}
tmp=$(mktemp -d /tmp/foreshock-timelimit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# 1. a hang
start=$SECONDS
out=$(FORESHOCK_TEST_TIMEOUT=2 bash "$tl" /bin/bash -c 'sleep 600' "$tmp/hang.sh" 2>&1)
rc=$?
took=$((SECONDS - start))
[ "$rc" = 1 ] || bad "a hanging test exits $rc, not 1: $out"
echo "$out" | grep -q "FAIL: $tmp/hang.sh did not finish within its time limit of 2s" ||
	bad "no message naming the test and its limit: $out"
[ "$took" -lt 30 ] || bad "a 2 s limit took ${took}s to stop the test"

# 2. a hang that ignores SIGTERM
if [ "${FORESHOCK_TEST_SLOW:-0}" = 1 ]; then
	out=$(FORESHOCK_TEST_TIMEOUT=2 bash "$tl" /bin/bash -c 'trap "" TERM; sleep 600' "$tmp/deaf.sh" 2>&1)
	rc=$?
	[ "$rc" = 1 ] && echo "$out" | grep -q "then SIGKILL 60 s later" ||
		bad "a test that ignores SIGTERM: exit $rc: $out"
fi

# 3. a Python test stuck in fslib.wait_for
cat > "$tmp/test_stuck.py" <<EOF
import os, subprocess, sys
sys.path.insert(0, "$src/tests/integration")
import fslib
fslib.DAEMON = "/bin/true"  # run_tests skips when the daemon is not built

def test_stuck():
    p = subprocess.Popen(["sleep", "600"])

    def never():  # says, once it is called, that the test waits
        with open("$tmp/child.pid", "w") as f:
            f.write(str(p.pid))
        return False
    try:
        fslib.wait_for("a thing that never happens", never, 600)
    finally:
        p.kill()
        p.wait()
        print("cleanup ran")

def test_after():
    print("test_after ran")

fslib.run_tests([test_stuck, test_after])
EOF
# The limit's SIGTERM comes once the test is waiting (not while a loaded
# machine still starts Python): the wrapper passes a SIGTERM on the way
# timeout(1) sends it at the limit, to the test and then to its group.
bash "$tl" "$py" "$tmp/test_stuck.py" > "$tmp/stuck.out" 2>&1 &
wrapper=$!
for _ in $(seq 1200); do [ -s "$tmp/child.pid" ] || ! kill -0 "$wrapper" 2>/dev/null && break; sleep 0.1; done
[ -s "$tmp/child.pid" ] || bad "the stuck Python test did not start within 120 s: $(cat "$tmp/stuck.out")"
kill -TERM "$wrapper"
wait "$wrapper"
rc=$?
out=$(cat "$tmp/stuck.out")
[ "$rc" = 1 ] || bad "a stuck Python test exits $rc, not 1: $out"
for want in "cleanup ran" "FAIL test_stuck after" "stopped by SIGTERM" "in wait_for" "not run: test_after"; do
	echo "$out" | grep -q -- "$want" || bad "stuck Python test: no '$want' in: $out"
done
echo "$out" | grep -q "test_after ran" && bad "the test after the stuck one ran: $out"
if [ -s "$tmp/child.pid" ] && kill -0 "$(cat "$tmp/child.pid")" 2>/dev/null; then
	bad "the stuck test's child process still runs"
	kill "$(cat "$tmp/child.pid")"
fi

# 4. statuses pass through
for want in 0 1 77 99; do
	bash "$tl" /bin/bash -c "exit $want" "$tmp/exit$want.sh" > /dev/null 2>&1
	rc=$?
	[ "$rc" = "$want" ] || bad "a test exiting $want: timelimit.sh exits $rc"
done

# 5. a bad limit
out=$(FORESHOCK_TEST_TIMEOUT=10m bash "$tl" /bin/true x 2>&1)
rc=$?
[ "$rc" = 99 ] && echo "$out" | grep -q "must be a number of seconds" || bad "FORESHOCK_TEST_TIMEOUT=10m: exit $rc: $out"

[ $fail = 0 ] && echo "ok: hangs fail with their name and limit, Python tests clean up, statuses pass through"
exit $fail
