#!/bin/bash
# test_am_config.sh — the shipped Alertmanager configuration
# (deploy/alertmanager/alertmanager.yml) is valid for amtool and routes
# foreshock's alerts as docs/outage-prediction.md says: a critical service
# incident pages, its warning and per-series anomalies go to the tickets.
# A broken copy must be refused (so the check itself can fail). Skips (77)
# without amtool (Debian: prometheus-alertmanager).
set -u
cfg="${FORESHOCK_SRCDIR:-.}/deploy/alertmanager/alertmanager.yml"
command -v amtool >/dev/null || { echo "no amtool: skipped"; exit 77; }
[ -f "$cfg" ] || { echo "FAIL: no $cfg"; exit 1; }
work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fail=0
amtool check-config "$cfg" || { echo "FAIL: amtool check-config $cfg"; fail=1; }
route() { # expected-receiver label=value...
  local want=$1; shift
  if ! amtool config routes test --config.file="$cfg" --verify.receivers="$want" "$@" \
       >/dev/null 2>&1; then
    echo "FAIL: $* -> $(amtool config routes test --config.file="$cfg" "$@" 2>/dev/null), want $want"
    fail=1
  fi
}
route pager alertname=OverloadRisk severity=critical service=checkout
route tickets alertname=OverloadRisk severity=warning service=checkout
route pager alertname=SLOBurnRate action=page service=checkout severity=critical
route tickets alertname=SLOBurnRate action=ticket service=checkout
route tickets alertname=ErrorRatio service=checkout severity=warning
route tickets alertname=ForeshockAnomaly job=checkout instance=a severity=warning
# the inhibition that makes one page per incident is there
grep -A3 -- "- source_matchers: \['alertname=\"OverloadRisk\"', 'severity=\"critical\"'\]" "$cfg" |
  grep -q "equal: \[service\]" || { echo "FAIL: no critical-inhibits-warning rule"; fail=1; }
# a broken copy is refused
sed 's/^receivers:/receivers_typo:/' "$cfg" > broken.yml
if amtool check-config broken.yml >/dev/null 2>&1; then
  echo "FAIL: amtool accepted a configuration without receivers"; fail=1
fi
[ $fail = 0 ] && echo "ok: $cfg"
exit $fail
