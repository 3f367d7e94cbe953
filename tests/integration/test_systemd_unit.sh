#!/bin/sh
# The shipped systemd unit passes `systemd-analyze verify` (syntax, known
# options, an executable ExecStart) with ExecStart pointed at this build's
# foreshockd, and keeps its sandboxing options. Skips (77) without
# systemd-analyze.
set -eu
src=${FORESHOCK_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FORESHOCK_BUILDDIR:-$src/build}
unit=$src/deploy/foreshockd.service
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: no systemd-analyze"; exit 77; }
[ -x "$build/src/foreshockd" ] || { echo "SKIP: foreshockd not built"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|^ExecStart=/usr/local/bin/foreshockd|ExecStart=$build/src/foreshockd|" "$unit" > "$tmp/foreshockd.service"
grep -q "ExecStart=$build/src/foreshockd" "$tmp/foreshockd.service"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$tmp/foreshockd.service" 2>&1) || {
  echo "FAIL: systemd-analyze verify:"; echo "$out"; exit 1; }
# verify exits 0 on some warnings; none is acceptable for our unit
if echo "$out" | grep -i "foreshockd.service"; then
  echo "FAIL: systemd-analyze verify warned:"; echo "$out"; exit 1
fi
for opt in NoNewPrivileges=yes ProtectSystem=strict StateDirectory=foreshock ProtectHome=yes \
           PrivateTmp=yes CapabilityBoundingSet= RestrictAddressFamilies= SystemCallFilter=@system-service; do
  grep -q "^$opt" "$unit" || { echo "FAIL: $unit lacks $opt"; exit 1; }
done
# ExecStart's flags are ones foreshockd accepts
"$build/src/foreshockd" --help | grep -q -- "--data-dir" || { echo "FAIL: --data-dir"; exit 1; }
"$build/src/foreshockd" --help | grep -q -- "--config" || { echo "FAIL: --config"; exit 1; }
echo "ok: systemd-analyze verify clean, sandboxing options present"
