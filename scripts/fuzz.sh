#!/usr/bin/env bash
# Fuzzes at depth: builds every libFuzzer target (tests/fuzz/*_fuzz.cc, with
# tests/fuzz/run.sh's clang + ASan + UBSan recipe) and runs each, one after
# the other, for SECONDS on its kept corpus tests/fuzz/corpus/NAME. Inputs
# that reach new code are merged into that corpus, minimized (libFuzzer
# -merge=1; hand-written seeds always stay), so a later run starts where
# this one stopped. Crashes, leaks, timeouts and
# out-of-memory inputs are saved under BUILD/fuzz/crashes/STAMP/.
#
# Usage: scripts/fuzz.sh SECONDS [TARGET...]
#   TARGET: names such as `record` or `http_body` (default: every
#   tests/fuzz/NAME_fuzz.cc). Env FUZZ_BUILD_DIR (default build/),
#   FUZZ_TIMEOUT_S (an input running longer is a finding; default 25).
# Prints one JSON line per target:
#   {"target", "status" (ok|crash|build_failed|skipped), "seconds",
#    "executions", "exec_per_sec", "new_corpus_entries" (found inputs added
#    to the corpus), "dropped_corpus_entries" (found inputs another one now
#    covers), "corpus_size" (files), "corpus_bytes", "crashes": [paths]}
# and exits 1 when any target crashed or failed to build (listing them),
# 0 otherwise. Without clang's libFuzzer a target is "skipped" (a failure
# under CI, as tests/fuzz/run.sh decides).
set -uo pipefail
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [TARGET...]" >&2
  exit 2
fi
seconds=$1
shift
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(mkdir -p "${FUZZ_BUILD_DIR:-$src/build}" && cd "${FUZZ_BUILD_DIR:-$src/build}" && pwd)
timeout_s=${FUZZ_TIMEOUT_S:-25}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
crash_root=$build/fuzz/crashes/$stamp

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$src"/tests/fuzz/*_fuzz.cc; do
    n=$(basename "$f" .cc)
    targets+=("${n%_fuzz}")
  done
fi

failed=()
for t in "${targets[@]}"; do
  log=$build/fuzz/$t.log
  mkdir -p "$build/fuzz"
  if ! FUZZ_BUILD_ONLY=1 bash "$src/tests/fuzz/run.sh" "$t" 0 "$build" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "{\"target\": \"$t\", \"status\": \"build_failed\", \"log\": \"$log\"}"
    failed+=("$t: build failed ($log)")
    continue
  fi
  if grep -q '^SKIPPED' "$log"; then
    echo "{\"target\": \"$t\", \"status\": \"skipped\", \"reason\": \"$(head -n 1 "$log")\"}"
    continue
  fi
  corpus=$src/tests/fuzz/corpus/$t
  mkdir -p "$corpus"
  work=$build/fuzz/work/$t
  rm -rf "$work"
  mkdir -p "$work" "$crash_root/$t"
  # Inputs stay near the size of real ones, which keeps the corpus small.
  case $t in
    tokenizer_json) max_len=12288 ;;
    *) max_len=65536 ;;
  esac
  # New inputs land in $work (the first directory); the corpus is read only.
  "$build/fuzz/${t}_fuzz" -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=1024 \
    -timeout="$timeout_s" -print_final_stats=1 -artifact_prefix="$crash_root/$t/" \
    "$work" "$corpus" >"$log" 2>&1
  rc=$?
  # Keep what adds coverage, minimized. The corpus holds hand-written seeds
  # (any name; never touched here) and found inputs (named by the SHA-1 of
  # their content, as libFuzzer names them). A -merge=1 of the corpus and
  # this run's inputs into an empty directory picks a small set with the
  # same coverage: found inputs in it are kept or added, the others go.
  # A crash stops libFuzzer early; what it found before that is kept too.
  added=0 removed=0
  if [ -n "$(ls -A "$work")" ]; then
    min=$build/fuzz/min/$t
    rm -rf "$min"
    mkdir -p "$min"
    if "$build/fuzz/${t}_fuzz" -merge=1 -max_len="$max_len" -rss_limit_mb=1024 \
         -timeout="$timeout_s" "$min" "$corpus" "$work" >"$build/fuzz/$t.merge.log" 2>&1; then
      seeds=$(find "$corpus" -type f -regextype posix-extended ! -regex '.*/[0-9a-f]{40}' \
                -exec sha1sum {} + | cut -d' ' -f1)
      for f in "$min"/*; do
        h=$(basename "$f")
        if ! grep -qx "$h" <<<"$seeds" && [ ! -e "$corpus/$h" ]; then
          cp "$f" "$corpus/$h"
          added=$((added + 1))
        fi
      done
      while IFS= read -r -d '' f; do
        if [ ! -e "$min/$(basename "$f")" ]; then
          rm -f "$f"
          removed=$((removed + 1))
        fi
      done < <(find "$corpus" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -print0)
    else
      echo "warning: merge of $t failed (see $build/fuzz/$t.merge.log); corpus unchanged" >&2
    fi
  fi
  after=$(find "$corpus" -type f | wc -l)
  fuzz_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
  execs=$(fuzz_stat number_of_executed_units)
  rate=$(fuzz_stat average_exec_per_sec)
  crashes=()
  while IFS= read -r -d '' f; do crashes+=("$f"); done < \
    <(find "$crash_root/$t" -type f -print0)
  status=ok
  if [ ${#crashes[@]} -gt 0 ] || { [ $rc -ne 0 ] && [ -z "$execs" ]; }; then
    status=crash
    failed+=("$t: rc $rc, ${crashes[*]:-no artifact} (log $log)")
    grep -m 3 -E 'ERROR: |runtime error|SUMMARY' "$log" >&2 || true
  fi
  list=""
  [ ${#crashes[@]} -gt 0 ] && list=$(printf '"%s", ' "${crashes[@]}")
  echo "{\"target\": \"$t\", \"status\": \"$status\", \"seconds\": $seconds," \
    "\"executions\": ${execs:-0}, \"exec_per_sec\": ${rate:-0}," \
    "\"new_corpus_entries\": $added, \"dropped_corpus_entries\": $removed," \
    "\"corpus_size\": $after, \"corpus_bytes\": $(du -sb "$corpus" | cut -f1)," \
    "\"crashes\": [${list%, }]}"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED fuzz targets:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
