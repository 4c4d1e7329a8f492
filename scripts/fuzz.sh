#!/usr/bin/env bash
# make fuzz: runs every libFuzzer target for SECONDS each on a working copy of its seed
# corpus, and reports new inputs worth committing (fuzz/corpus/<target>/).
set -euo pipefail
build=${1:-build/fuzz}
seconds=${2:-60}
status=0
for binary in "$build"/fuzz/*_fuzz; do
  [ -x "$binary" ] || continue
  name=$(basename "$binary" _fuzz)
  work=$(mktemp -d "/tmp/ferry-fuzz-$name-XXXXXX")
  cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  echo "== $name: ${seconds}s, corpus $work"
  if ! "$binary" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="$work/crash-" "$work" 2>"$work.log"; then
    echo "$name FAILED: see $work.log and $work/crash-*"
    status=1
  fi
  tail -n 12 "$work.log" | grep -E 'stat::number_of_executed_units|cov:|ERROR' || true
done
exit $status
