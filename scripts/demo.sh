#!/usr/bin/env bash
# make demo: ferry for real on its embedded default (SQLite). Starts ferryd on a fresh
# store, creates an account, logs two devices in, appends a sealed transaction from one
# and reads it on the other, checks the server holds no plaintext, and stops ferryd.
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

step "create a collection and append a sealed transaction from the phone"
run "$ferry" --home "$demo/laptop" collection create Notes --kind files
run "$ferry" --home "$demo/phone" put Notes groceries "text=oat milk, eggs, saffron"

step "read it back, decrypted, on the laptop"
run "$ferry" --home "$demo/laptop" log Notes

step "the server holds only ciphertext"
if grep -rqa "saffron" "$demo/server"; then
  echo "plaintext found in $demo/server"; exit 1
fi
echo "'saffron' appears nowhere in $demo/server"

step "stop ferryd"
kill -TERM "$pid"
wait "$pid"
pid=""
cat "$demo/ferryd.log"

cat <<MSG

Everything is in $demo:
  server/          ferryd's data: ferry.db (SQLite), chunks/, tls/ (certificate, fingerprint)
  laptop/, phone/  the two devices' state (device.toml, pinned server.pem)
  ferryd.log       the server's log
Start the server again with:  $ferryd --data $demo/server --listen $address
MSG
