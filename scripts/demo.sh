#!/usr/bin/env bash
# make demo: ferry for real on its embedded default (SQLite). Starts ferryd on a fresh
# store, creates an account, logs two devices in, syncs a real tree from this machine
# from one folder to another, edits one file on both devices at once, syncs again,
# shows that the folders are equal and where the conflict copy is, checks the server
# holds no plaintext, and stops ferryd. The folders are left in place.
set -euo pipefail
build=${1:-build/debug}
ferryd="$build/src/server/ferryd"
ferry="$build/src/cli/ferry"
demo=$(mktemp -d /tmp/ferry-demo-XXXXXX)
pid=""
cleanup() { if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "start ferryd on a fresh embedded store"
"$ferryd" --data "$demo/server" --listen 127.0.0.1:0 >"$demo/ferryd.out" 2>"$demo/ferryd.log" &
pid=$!
for _ in $(seq 100); do  # bounded: 10 s
  grep -q '^fingerprint ' "$demo/ferryd.out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$demo/ferryd.log"; exit 1; }
  sleep 0.1
done
cat "$demo/ferryd.out"
address=$(awk '/listening on/ {print $4}' "$demo/ferryd.out")
fingerprint=$(awk '/^fingerprint/ {print $2}' "$demo/ferryd.out")
[ -n "$fingerprint" ] || { echo "ferryd did not start"; cat "$demo/ferryd.log"; exit 1; }

printf 'a demo passphrase, not a good one\n' >"$demo/passphrase"
chmod 600 "$demo/passphrase"

step "create an account from the first device (pins the certificate)"
run "$ferry" --home "$demo/laptop" account create --server "$address" --user demo \
  --passphrase-file "$demo/passphrase" --fingerprint "$fingerprint" --device-name laptop

step "log a second device in"
run "$ferry" --home "$demo/phone" login --server "$address" --user demo \
  --passphrase-file "$demo/passphrase" --device-name phone

step "list the devices"
run "$ferry" --home "$demo/laptop" devices

step "laptop: sync a folder holding a real tree from this machine"
mkdir -p "$demo/laptop-docs"
for d in $(ls /usr/share/doc | head -n 80); do cp -a "/usr/share/doc/$d" "$demo/laptop-docs/" 2>/dev/null || true; done
echo "$(find "$demo/laptop-docs" | wc -l) entries, $(du -sh "$demo/laptop-docs" | cut -f1)"
run "$ferry" --home "$demo/laptop" add Docs --path "$demo/laptop-docs"
run "$ferry" --home "$demo/laptop" sync

step "phone: join the same collection with its own folder, and sync"
run "$ferry" --home "$demo/phone" add Docs --path "$demo/phone-docs"
run "$ferry" --home "$demo/phone" sync
diff -r --no-dereference "$demo/laptop-docs" "$demo/phone-docs" && echo "the two folders are equal"

step "both devices edit one file while apart"
file=$(cd "$demo/laptop-docs" && find . -type f -name 'copyright' | head -n 1)
echo "edited on the laptop" >>"$demo/laptop-docs/$file"
echo "edited on the phone, a little later" >>"$demo/phone-docs/$file"
touch -d '+2 seconds' "$demo/phone-docs/$file"
run "$ferry" --home "$demo/laptop" sync
run "$ferry" --home "$demo/phone" sync || [ $? -eq 4 ]   # 4: synced, with new conflicts
run "$ferry" --home "$demo/laptop" sync

step "both folders are equal again, and nothing was lost"
diff -r --no-dereference "$demo/laptop-docs" "$demo/phone-docs" && echo "the two folders are equal"
run "$ferry" --home "$demo/phone" conflicts
echo "the conflict copy:"
find "$demo/laptop-docs" -name '*.conflict-*'
run "$ferry" --home "$demo/laptop" status
run "$ferry" --home "$demo/laptop" log Docs

step "the server holds only ciphertext"
if grep -rqa "edited on the laptop" "$demo/server"; then
  echo "plaintext found in $demo/server"; exit 1
fi
echo "'edited on the laptop' appears nowhere in $demo/server"

step "stop ferryd"
kill -TERM "$pid"
wait "$pid"
pid=""
cat "$demo/ferryd.log"

cat <<MSG

Everything is in $demo:
  laptop-docs/, phone-docs/  the two synced folders (left in place: look around)
  server/          ferryd's data: ferry.db (SQLite), packs/ (chunk data), tls/ (certificate, fingerprint)
  laptop/, phone/  the two devices' state (device.toml, pinned server.pem, collections/)
  ferryd.log       the server's log
Start the server again with:  $ferryd --data $demo/server --listen $address
MSG
