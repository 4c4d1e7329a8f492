#!/usr/bin/env bash
# Whole-program measurements of file sync, reported in docs/performance.md:
#   1. a no-change `ferry sync` of a 100,000-file tree (time and peak RSS);
#   2. the initial sync of /usr/include + /usr/share/doc from device A to device B
#      through ferryd on loopback, next to `rsync -a` into an rsync daemon on loopback;
#   3. the bytes a 20-byte edit inside a 40 MB file puts on the wire.
# Usage: bench/sync_bench.sh [BUILD_DIR]   (a release build: make build PRESET=release)
set -euo pipefail
build=${1:-build/release}
ferryd="$build/src/server/ferryd"
ferry="$build/src/cli/ferry"
for tool in rsync /usr/bin/time; do
  command -v "$tool" >/dev/null || {
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rsync time >/dev/null
  }
done
work=$(mktemp -d /tmp/ferry-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$ferryd" --data "$work/server" --listen 127.0.0.1:0 --log-level warn >"$work/ferryd.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^fingerprint' "$work/ferryd.out" && break; sleep 0.1; done
address=$(awk '/listening on/ {print $4}' "$work/ferryd.out")
printf 'bench passphrase\n' >"$work/pass"
"$ferry" --home "$work/a" account create --server "$address" --user bench \
  --passphrase-file "$work/pass" --device-name a >/dev/null
"$ferry" --home "$work/b" login --server "$address" --user bench \
  --passphrase-file "$work/pass" --device-name b >/dev/null

# timed LABEL CMD...: prints "LABEL  wall_s  peak_rss_MB" and the command's last line.
timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || true
  read -r wall rss <"$work/time"
  printf '%-44s %8.2f s %8.1f MB   %s\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)" \
    "$(tail -n 1 "$work/out")"
}

echo "== 1. no-change sync of a 100,000-file tree"
mkdir -p "$work/tree"
for d in $(seq 0 99); do
  mkdir -p "$work/tree/d$d"
  (cd "$work/tree/d$d" && for f in $(seq 0 999); do printf '%s %s\n' "$d" "$f" >"f$f"; done)
done
"$ferry" --home "$work/a" add Tree --path "$work/tree" >/dev/null
timed "initial sync, 100k small files (push)" "$ferry" --home "$work/a" sync Tree
sync
timed "no-change sync, 100k files" "$ferry" --home "$work/a" sync Tree
timed "no-change sync, 100k files (again)" "$ferry" --home "$work/a" sync Tree

echo "== 2. initial sync of /usr/include + /usr/share/doc, A -> B"
mkdir -p "$work/src"
cp -a /usr/include /usr/share/doc "$work/src/"
echo "$(find "$work/src" | wc -l) entries, $(du -sh "$work/src" | cut -f1)"
"$ferry" --home "$work/a" add Usr --path "$work/src" >/dev/null
"$ferry" --home "$work/b" add Usr --path "$work/dst" >/dev/null
sync
start=$(date +%s.%N)
timed "ferry: A pushes" "$ferry" --home "$work/a" sync Usr
timed "ferry: B pulls" "$ferry" --home "$work/b" sync Usr
ferry_total=$(echo "$(date +%s.%N) - $start" | bc -l)
diff -r --no-dereference "$work/src" "$work/dst" >/dev/null && echo "B equals A"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/rsync-dst"
cat >"$work/rsyncd.conf" <<CONF
port = $port
address = 127.0.0.1
use chroot = no
[dst]
path = $work/rsync-dst
read only = no
uid = $(id -u)
gid = $(id -g)
CONF
rsync --daemon --no-detach --config="$work/rsyncd.conf" &
pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
# rsync three times into an emptied destination, each starting with nothing dirty in
# the page cache (`sync` first); then once more timed until its data is on disk too,
# which is what ferry's numbers include (ferry fsyncs before it acknowledges or renames).
for run in 1 2 3; do
  find "$work/rsync-dst" -mindepth 1 -delete
  sync
  timed "rsync -a into an rsync daemon (run $run)" \
    rsync -a --stats "$work/src/" "rsync://127.0.0.1:$port/dst/"
done
find "$work/rsync-dst" -mindepth 1 -delete
sync
timed "rsync -a, then sync (durable)" \
  sh -c "rsync -a --stats '$work/src/' 'rsync://127.0.0.1:$port/dst/' && sync"
printf 'ferry A->B total %.2f s\n' "$ferry_total"

echo "== 3. a 20-byte edit inside a 40 MB file"
mkdir -p "$work/big"
head -c $((40 << 20)) /dev/urandom >"$work/big/file.bin"
"$ferry" --home "$work/a" add Big --path "$work/big" >/dev/null
"$ferry" --home "$work/b" add Big --path "$work/big-b" >/dev/null
"$ferry" --home "$work/a" sync Big >/dev/null
"$ferry" --home "$work/b" sync Big >/dev/null
printf '0123456789abcdefghij' | dd of="$work/big/file.bin" bs=1 seek=$((17 << 20)) conv=notrunc status=none
timed "push of the edit" "$ferry" --home "$work/a" sync Big
timed "pull of the edit" "$ferry" --home "$work/b" sync Big
cmp "$work/big/file.bin" "$work/big-b/file.bin" && echo "B equals A"
