#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for tests and benchmarks, reachable only through a
# unix socket in a fresh folder under /tmp (no TCP port, so clusters never collide).
#
#   scripts/pg_cluster.sh start DIR     initdb + start; writes DIR/url, a postgresql://
#                                       URI of the "postgres" database (user postgres)
#   scripts/pg_cluster.sh restart DIR   pg_ctl restart (tests of a database restart)
#   scripts/pg_cluster.sh stop DIR      stop (fast, then immediate) and remove it all
#
# PostgreSQL refuses to run as root: as root the server runs as the "postgres" user
# (made by Debian's postgresql package) and owns the cluster folder; otherwise it runs
# as the calling user.
set -euo pipefail

usage() { echo "usage: $0 start|restart|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
command=$1
state=$2

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "pg_cluster: PostgreSQL server binaries not found (apt-get install postgresql," \
       "or run make deps)" >&2
  exit 1
fi

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cluster_dir() { cat "$state/cluster" 2>/dev/null || true; }

stop() {
  local cluster
  cluster=$(cluster_dir)
  if [ -n "$cluster" ] && [ -d "$cluster/data" ]; then
    as_server_user "$bindir/pg_ctl" -D "$cluster/data" -m fast -w -t 30 stop \
      >/dev/null 2>&1 ||
      as_server_user "$bindir/pg_ctl" -D "$cluster/data" -m immediate -w -t 30 stop \
        >/dev/null 2>&1 || true
  fi
  if [ -n "$cluster" ] && [[ "$cluster" == /tmp/ferry-pg-* ]]; then rm -rf "$cluster"; fi
  rm -rf "$state"
}

start() {
  stop  # a cluster left by an interrupted run
  mkdir -p "$state"
  local cluster
  cluster=$(mktemp -d /tmp/ferry-pg-XXXXXX)
  echo "$cluster" >"$state/cluster"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$cluster"; fi
  chmod 700 "$cluster"
  as_server_user "$bindir/initdb" -D "$cluster/data" -U postgres -A trust -E UTF8 \
    --no-instructions >"$cluster/initdb.log" 2>&1 ||
    { cat "$cluster/initdb.log" >&2; exit 1; }
  cat >>"$cluster/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$cluster'
max_connections = 300
shared_buffers = 128MB
fsync = on
synchronous_commit = on
CONF
  as_server_user "$bindir/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 60 \
    start >/dev/null || { cat "$cluster/server.log" >&2; exit 1; }
  echo "postgresql://postgres@/postgres?host=$cluster" >"$state/url"
  echo "PostgreSQL running: $(cat "$state/url")"
}

restart() {
  local cluster
  cluster=$(cluster_dir)
  [ -n "$cluster" ] || { echo "pg_cluster: no cluster in $state" >&2; exit 1; }
  as_server_user "$bindir/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -m fast \
    -w -t 60 restart >/dev/null
}

case "$command" in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  *) usage ;;
esac
