#!/usr/bin/env bash
# The load test of docs/performance.md: a throw-away PostgreSQL cluster, then for each
# backend a fresh ferryd on 127.0.0.1 and bench/load_gen against it.
# Usage: bench/load.sh [BUILD_DIR] [load_gen flags...]   (BUILD_DIR: build/release)
#   BACKENDS="sqlite postgresql" (default both); FERRYD_FLAGS="..." extra ferryd flags
# After each run it prints the CPU seconds ferryd, load_gen and PostgreSQL (the
# postmaster and every backend it reaped) used, setup included.
set -euo pipefail
build=${1:-build/release}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
ferryd="$build/src/server/ferryd"
load_gen="$build/bench/load_gen"
[ -x /usr/bin/time ] || { echo "load.sh needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d /tmp/ferry-load-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    pkill -TERM -P "$pid" -x ferryd 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  bash "$here/../scripts/pg_cluster.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# CPU seconds of the cluster's postmaster and its reaped children; 0 without a cluster.
pg_cpu() {
  local cluster pid
  cluster=$(cat "$work/pg/cluster" 2>/dev/null) || { echo 0; return; }
  pid=$(head -n 1 "$cluster/data/postmaster.pid" 2>/dev/null) || { echo 0; return; }
  # Fields 14-17 of /proc/PID/stat: utime stime cutime cstime, in clock ticks.
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15 + $16 + $17) / hz}' "/proc/$pid/stat"
}

for backend in ${BACKENDS:-sqlite postgresql}; do
  uri=sqlite
  if [ "$backend" = postgresql ]; then
    [ -f "$work/pg/url" ] || bash "$here/../scripts/pg_cluster.sh" start "$work/pg" >/dev/null
    cluster=$(cat "$work/pg/url")
    psql -q "$cluster" -c "CREATE DATABASE ferry_load" >/dev/null
    uri=${cluster/\/postgres\?/\/ferry_load?}
  fi
  pg_cpu_before=$(pg_cpu)
  /usr/bin/time -f "%U %S" -o "$work/ferryd.time" \
    "$ferryd" --data "$work/$backend" --listen 127.0.0.1:0 --log-level warn \
    --backend "$uri" ${FERRYD_FLAGS:-} >"$work/$backend.out" 2>"$work/$backend.log" &
  pid=$!
  for _ in $(seq 100); do grep -q '^fingerprint' "$work/$backend.out" && break; sleep 0.1; done
  address=$(awk '/listening on/ {print $4}' "$work/$backend.out")
  fingerprint=$(awk '/^fingerprint/ {print $2}' "$work/$backend.out")
  /usr/bin/time -f "%U %S" -o "$work/load_gen.time" \
    "$load_gen" --server "$address" --fingerprint "$fingerprint" --label "$backend" "$@" ||
    echo "load_gen exited with $?"
  pkill -TERM -P "$pid" -x ferryd || true
  wait "$pid" || true
  pid=""
  sleep 0.5  # the database's backends for ferryd exit and are reaped
  printf '  CPU seconds: ferryd %s  load_gen %s  postgresql %s\n' \
    "$(awk '{print $1 + $2}' "$work/ferryd.time")" \
    "$(awk '{print $1 + $2}' "$work/load_gen.time")" \
    "$(echo "$(pg_cpu) - $pg_cpu_before" | bc)"
done
