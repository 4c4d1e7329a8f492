#!/usr/bin/env bash
# The load test of docs/performance.md: a throw-away PostgreSQL cluster, then for each
# backend a fresh ferryd on 127.0.0.1 and bench/load_gen against it.
# Usage: bench/load.sh [BUILD_DIR] [load_gen flags...]   (BUILD_DIR: build/release)
#   BACKENDS="sqlite postgresql" (default both)
set -euo pipefail
build=${1:-build/release}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
ferryd="$build/src/server/ferryd"
load_gen="$build/bench/load_gen"
work=$(mktemp -d /tmp/ferry-load-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  bash "$here/../scripts/pg_cluster.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

for backend in ${BACKENDS:-sqlite postgresql}; do
  uri=sqlite
  if [ "$backend" = postgresql ]; then
    [ -f "$work/pg/url" ] || bash "$here/../scripts/pg_cluster.sh" start "$work/pg" >/dev/null
    cluster=$(cat "$work/pg/url")
    psql -q "$cluster" -c "CREATE DATABASE ferry_load" >/dev/null
    uri=${cluster/\/postgres\?/\/ferry_load?}
  fi
  "$ferryd" --data "$work/$backend" --listen 127.0.0.1:0 --log-level warn \
    --backend "$uri" ${FERRYD_FLAGS:-} >"$work/$backend.out" 2>"$work/$backend.log" &
  pid=$!
  for _ in $(seq 100); do grep -q '^fingerprint' "$work/$backend.out" && break; sleep 0.1; done
  address=$(awk '/listening on/ {print $4}' "$work/$backend.out")
  fingerprint=$(awk '/^fingerprint/ {print $2}' "$work/$backend.out")
  "$load_gen" --server "$address" --fingerprint "$fingerprint" --label "$backend" "$@" ||
    echo "load_gen exited with $?"
  kill "$pid"; wait "$pid" || true; pid=""
done
