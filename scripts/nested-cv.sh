#!/bin/sh
# nested-cv.sh — cross-validation with a grid of settings chosen inside the folds.
#
# Some of the default model's settings were picked from grids looked at on all
# of NAB-42 and cloudmon. This script makes a grid's neighbourhood into
# candidate models and lets `foreshock backtest --cv` choose model and
# threshold on the training folds only, so the scores it prints are
# out-of-fold for the choice of settings too (at most 8 candidates, the most
# `--model` takes). The grids (third argument):
#
#   spike     `spike`'s direct and memory (and the model before `spike`:
#             `level` with log in its place)
#   single    the likelihood stage's `single_for` / `single_floor` (0 = the
#             model without it, and the neighbourhood of the default 800 / 0.26);
#             `single_for` is also how long a detection's refire bar is capped
#             at the alert threshold's z (docs/detectors.md, Refire)
#   changept  the default, the default without `changept`, `changept`'s
#             direct 2 or 4 (floor 2) and floor 1 or 3 (direct 3), and
#             `spike`'s direct 0.75 or 1.25
#   renew     the default and the default with `renew: false`, each also
#             without `changept` (renew's neighbourhood: the rule off)
#
# usage: scripts/nested-cv.sh [BUILDDIR] [CV_SEED] [spike|single|changept|renew]
#        (defaults: build, 0, spike)
# Reads ../shared/data/{nab,cloudmon} relative to the source tree.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-build}
seed=${2:-0}
grid=${3:-spike}
data=${FORESHOCK_SHARED_DATA:-$src/../shared/data}
bin=$builddir/src/foreshock
def="$src/models/default.yml"
[ -x "$bin" ] || { echo "nested-cv: no '$bin' (build first)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# candidate NAME SCOPE KEY1 VALUE1 KEY2 VALUE2: the default with two settings
# (indented keys, as written in models/default.yml) changed within the sed
# address SCOPE (e.g. the lines of one component), added to args; a KEY the
# scope lacks is left out
candidate() {
	sed -e "$2{/^ *$3: /s/^\( *\)$3: [^ ]*/\1$3: $4/}" \
	    -e "$2{/^ *$5: /s/^\( *\)$5: [^ ]*/\1$5: $6/}" \
	    -e "s/^name: default/name: $1/" "$def" > "$tmp/$1.yml"
	args="$args --model $tmp/$1.yml"
}
# the scope of one component's lines in models/default.yml
comp() { echo "/^  - kind: $1/,/^    direct:/"; }

args=""
case "$grid" in
single)
	for nf in 0:0.26 600:0.26 800:0.2 800:0.23 800:0.26 800:0.3 1000:0.23 1000:0.26; do
		candidate "n${nf%%:*}f${nf#*:}" '1,$' single_for "${nf%%:*}" single_floor "${nf#*:}"
	done ;;
spike)
	# the default without spike: level in its place (the model of the fifth session)
	sed -e '/^  - kind: spike/,/^    direct:/d' -e 's/^name: default/name: level/' \
	    "$def" > "$tmp/level.yml"
	printf '  - kind: level\n    log: true\n' > "$tmp/level_comp"
	awk -v f="$tmp/level_comp" '/^combine:/ { while ((getline l < f) > 0) print l } { print }' \
	    "$tmp/level.yml" > "$tmp/level2.yml"
	args="--model $tmp/level2.yml"
	for dm in 1:1d 1.25:1d 1.5:1d 0.75:2d 1:2d 1.25:2d 1:36h; do
		candidate "d${dm%%:*}m${dm#*:}" "$(comp spike)" direct "${dm%%:*}" memory "${dm#*:}"
	done ;;
changept)
	args="--model $def"
	sed -e '/^  - kind: changept/,/^    direct:/d' -e 's/^name: default/name: nochangept/' \
	    "$def" > "$tmp/nochangept.yml"
	args="$args --model $tmp/nochangept.yml"
	# changept has no floor line in the default: it is written before `direct`
	for df in 2:2 4:2 3:1 3:3; do
		d=${df%%:*}; f=${df#*:}
		sed -e "/^  - kind: changept/,/^    direct:/s/^    direct: [^ ]*/    floor: $f\n    direct: $d/" \
		    -e "s/^name: default/name: cp_d${d}f${f}/" "$def" > "$tmp/cp_${d}_${f}.yml"
		args="$args --model $tmp/cp_${d}_${f}.yml"
	done
	for d in 0.75 1.25; do
		candidate "spike_d$d" "$(comp spike)" direct "$d" direct "$d"
	done ;;
renew)
	args="--model $def"
	candidate norenew '1,$' renew false renew false
	sed -e '/^  - kind: changept/,/^    direct:/d' -e 's/^name: default/name: nochangept/' \
	    "$def" > "$tmp/nochangept.yml"
	args="$args --model $tmp/nochangept.yml"
	sed -e 's/^renew: [^ ]*/renew: false/' -e 's/^name: nochangept/name: nocp_norenew/' \
	    "$tmp/nochangept.yml" > "$tmp/nocp_norenew.yml"
	args="$args --model $tmp/nocp_norenew.yml" ;;
*)
	echo "nested-cv: unknown grid '$grid' (spike, single, changept, renew)" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
exec "$bin" backtest --corpus "$data/nab" --corpus "$data/cloudmon" \
	--cv 5 --cv-seed "$seed" --quiet $args
