#!/usr/bin/env bash
# build.sh — configure and build foreshock out of tree.
#
#   scripts/build.sh [DIR] [configure options...]   (default DIR: build)
#
# Runs autoreconf when configure is missing or older than configure.ac or a
# Makefile fragment, configures DIR once, then `make -j`.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
shift || true
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ] ||
   [ -n "$(find mk -name '*.am' -newer Makefile.in 2>/dev/null)" ]; then
  autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$dir"
cd "$dir"
if [ ! -f Makefile ] || [ "$top/configure" -nt config.status ]; then
  "$top/configure" -q "$@"
fi
make -j"$(nproc)" >/dev/null 2>build.log || { cat build.log >&2; exit 1; }
grep -E 'warning:' build.log >&2 || true
