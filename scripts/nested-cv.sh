#!/bin/sh
# nested-cv.sh — cross-validation with the settings of `changept` and `spike`
# chosen inside the folds.
#
# The default model's `changept` settings (direct, floor) and `spike` setting
# (direct) were picked from grids looked at on all of NAB-42 and cloudmon.
# This script makes their neighbourhood into candidate models (the default;
# without `changept`; `changept` direct 2 or 4, floor 1 or 3; `spike` direct
# 0.75 or 1.25: eight, the most `--model` takes) and lets `foreshock backtest
# --cv` choose model and threshold on the training folds only, so the scores
# it prints are out-of-fold for the choice of settings too.
#
# usage: scripts/nested-cv.sh [BUILDDIR] [CV_SEED]   (defaults: build, 0)
# Reads ../shared/data/{nab,cloudmon} relative to the source tree.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-build}
seed=${2:-0}
data=${FORESHOCK_SHARED_DATA:-$src/../shared/data}
bin=$builddir/src/foreshock
[ -x "$bin" ] || { echo "nested-cv: no '$bin' (build first)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

def="$src/models/default.yml"
args="--model $def"
# the default without changept
sed -e '/^  - kind: changept/,/^    direct:/d' -e 's/^name: default/name: nochangept/' \
    "$def" > "$tmp/nochangept.yml"
args="$args --model $tmp/nochangept.yml"
# changept: direct 2 or 4 (floor 2), floor 1 or 3 (direct 3)
for df in 2:2 4:2 3:1 3:3; do
	d=${df%%:*}; f=${df#*:}
	sed -e "/^  - kind: changept/,/^    direct:/s/^    direct: [^ ]*/    floor: $f\n    direct: $d/" \
	    -e "s/^name: default/name: cp_d${d}f${f}/" "$def" > "$tmp/cp_${d}_${f}.yml"
	args="$args --model $tmp/cp_${d}_${f}.yml"
done
# spike: direct 0.75 or 1.25
for d in 0.75 1.25; do
	sed -e "/^  - kind: spike/,/^    direct:/s/^    direct: [^ ]*/    direct: $d/" \
	    -e "s/^name: default/name: spike_d${d}/" "$def" > "$tmp/spike_${d}.yml"
	args="$args --model $tmp/spike_${d}.yml"
done
# shellcheck disable=SC2086
exec "$bin" backtest --corpus "$data/nab" --corpus "$data/cloudmon" \
	--cv 5 --cv-seed "$seed" --quiet $args
