#!/usr/bin/env bash
# Smoke test for `streamlm bench serve`: starts `streamlm run` with the tiny
# test model on a fresh store, reads its http address from the banner, runs
# two short levels against it and checks that both sent requests and none
# failed. Usage: bench/serve_smoke.sh [path/to/streamlm]
set -euo pipefail
src="${STREAMLM_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${1:-$src/build/apps/streamlm}"
tmp="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

mkfifo "$tmp/banner"
# A 128-token context: four corpus "words" can be 33 tokens of the tiny
# model's 400-piece vocabulary (numbers, punctuation in byte pieces), which
# the 32-token context of tests/data/tiny.yaml rightly refuses.
"$bin" run --config "$src/tests/data/tiny.yaml" --data-dir "$tmp/store" \
  --model.context-tokens 128 >"$tmp/banner" 2>"$tmp/stderr.log" &
server=$!
url=""
exec 3<"$tmp/banner"
# Bootstrapping the tiny model comes before the banner.
while IFS= read -r -t 300 line <&3; do
  if [[ "$line" =~ ^[[:space:]]+http[[:space:]]+(http://[^[:space:]]+) ]]; then
    url="${BASH_REMATCH[1]}"
    break
  fi
done
# Keep draining the server's stdout so it never blocks on a full pipe.
cat <&3 >/dev/null &
if [ -z "$url" ]; then
  echo "serve_smoke: no http address in the banner of streamlm run" >&2
  tail -n 30 "$tmp/stderr.log" >&2
  exit 1
fi
echo "serve_smoke: server at $url"

# Short prompts, few tokens: the point is that every request succeeds.
"$bin" bench serve --url "$url" --concurrency 1,2 --duration-s 3 --warmup-s 1 \
  --prompt-tokens 4 --max-tokens 8 >"$tmp/bench.json"
cat "$tmp/bench.json"

node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const levels = r.levels || [];
const bad = [];
if (r.bench !== "serve") bad.push("bench is not \"serve\"");
if (levels.length !== 2) bad.push(`expected 2 levels, got ${levels.length}`);
for (const l of levels) {
  if (!(l.requests > 0)) bad.push(`level ${l.concurrency}: no requests`);
  if (l.failures !== 0) bad.push(`level ${l.concurrency}: ${l.failures} failures ${JSON.stringify(l.failures_by)} ${l.first_error || ""}`);
  if (!(l.completion_tokens > 0)) bad.push(`level ${l.concurrency}: no completion tokens`);
}
if (bad.length) { console.error("serve_smoke: FAILED: " + bad.join("; ")); process.exit(1); }
console.log("serve_smoke: OK");
' "$tmp/bench.json"
