#!/usr/bin/env bash
# deps.sh — install the Debian packages foreshock needs, if any are missing.
#
#   scripts/deps.sh [build|test|bench|fuzz]...   (default: build)
#
# As root it runs apt-get; otherwise it prints the exact apt-get line and
# exits 1. Idempotent: does nothing when everything is installed.
set -euo pipefail

build_pkgs=(gcc make autoconf automake libtool pkg-config
  libmicrohttpd-dev libsqlite3-dev libgsl-dev libjansson-dev libyaml-dev
  zlib1g-dev libsnappy-dev libprotobuf-c-dev protobuf-c-compiler libcurl4-openssl-dev libpcre2-dev
  sqlite3 curl ca-certificates libjs-dygraphs)
test_pkgs=(libcmocka-dev python3 openssl prometheus prometheus-alertmanager victoria-metrics
  systemd e2fsprogs procps chromium)
bench_pkgs=(wrk victoria-metrics influxdb hyperfine)
fuzz_pkgs=(clang libclang-rt-14-dev)

want=()
[ $# -eq 0 ] && set -- build
for set in "$@"; do
  case "$set" in
    build) want+=("${build_pkgs[@]}") ;;
    test) want+=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
    bench) want+=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
    fuzz) want+=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
    *) echo "deps.sh: unknown package set '$set' (build, test, bench, fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    case " ${missing[*]-} " in *" $p "*) ;; *) missing+=("$p") ;; esac
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "foreshock needs these Debian packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Some services' packages start daemons at install time; we start our own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
