#!/bin/sh
# nested-cv.sh — cross-validation with the spike settings chosen inside the folds.
#
# The default model's `spike` settings (direct, memory) were picked from a grid
# looked at on all of NAB-42 and cloudmon. This script makes the grid's
# neighbourhood into candidate models (the default with those two lines
# changed, plus the model before `spike`) and lets `foreshock backtest --cv`
# choose model and threshold on the training folds only, so the scores it
# prints are out-of-fold for the choice of settings too.
#
# With GRID=single (third argument) the candidates are instead the default
# with the likelihood stage's `single_for` / `single_floor` changed (0 = the
# model without it, and the neighbourhood of the default 800 / 0.26).
#
# usage: scripts/nested-cv.sh [BUILDDIR] [CV_SEED] [spike|single]   (defaults: build, 0, spike)
# Reads ../shared/data/{nab,cloudmon} relative to the source tree.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-build}
seed=${2:-0}
grid=${3:-spike}
data=${FORESHOCK_SHARED_DATA:-$src/../shared/data}
bin=$builddir/src/foreshock
[ -x "$bin" ] || { echo "nested-cv: no '$bin' (build first)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# candidate NAME KEY1 VALUE1 KEY2 VALUE2: the default with two settings
# (indented keys, as written in models/default.yml) changed, added to args
candidate() {
	sed -e "s/^\( *\)$2: [^ ]*/\1$2: $3/" -e "s/^\( *\)$4: [^ ]*/\1$4: $5/" \
	    -e "s/^name: default/name: $1/" "$src/models/default.yml" > "$tmp/$1.yml"
	args="$args --model $tmp/$1.yml"
}

args=""
case "$grid" in
single)
	for nf in 0:0.26 600:0.26 800:0.2 800:0.23 800:0.26 800:0.3 1000:0.23 1000:0.26; do
		candidate "n${nf%%:*}f${nf#*:}" single_for "${nf%%:*}" single_floor "${nf#*:}"
	done ;;
spike)
	# the default without spike: level in its place (the model of the fifth session)
	sed -e '/^  - kind: spike/,/^    direct:/d' -e 's/^name: default/name: level/' \
	    "$src/models/default.yml" > "$tmp/level.yml"
	printf '  - kind: level\n    log: true\n' > "$tmp/level_comp"
	awk -v f="$tmp/level_comp" '/^combine:/ { while ((getline l < f) > 0) print l } { print }' \
	    "$tmp/level.yml" > "$tmp/level2.yml"
	args="--model $tmp/level2.yml"
	for dm in 1:1d 1.25:1d 1.5:1d 0.75:2d 1:2d 1.25:2d 1:36h; do
		candidate "d${dm%%:*}m${dm#*:}" direct "${dm%%:*}" memory "${dm#*:}"
	done ;;
*)
	echo "nested-cv: unknown grid '$grid' (spike, single)" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
exec "$bin" backtest --corpus "$data/nab" --corpus "$data/cloudmon" \
	--cv 5 --cv-seed "$seed" --quiet $args
