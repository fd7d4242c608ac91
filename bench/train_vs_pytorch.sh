#!/usr/bin/env bash
# `streamlm bench train` against the same GPT in Python PyTorch eager
# (bench/train_reference.py: same libtorch, same batch, same threads, the
# learner's step), run alternately in one session so both see the same load.
# Prints one JSON object: each side's tokens/s and MFU per round, their
# medians, and ratio = StreamLM median tokens/s / PyTorch median tokens/s.
#
# Usage: bench/train_vs_pytorch.sh [--config small] [--rounds 3]
# Env: STREAMLM (default build/apps/streamlm), PYTHON (default: the first of
# python3 and /usr/bin/python3 that imports torch).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
config=small
rounds=3
# `streamlm bench train` computes on every core; so does the reference.
threads=$(nproc)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--config small|default|tiny] [--rounds N]" >&2; exit 2 ;;
  esac
done

streamlm=${STREAMLM:-$root/build/apps/streamlm}
if [[ ! -x $streamlm ]]; then
  echo "train_vs_pytorch: $streamlm not found; build it: cmake --build build --target streamlm" >&2
  exit 1
fi

python=${PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import torch' 2>/dev/null; then
      python=$candidate
      break
    fi
  done
fi
if [[ -z $python ]] || ! "$python" -c 'import torch' 2>/dev/null; then
  echo "train_vs_pytorch: no python3 with the 'torch' module (Debian: apt-get install python3-torch," \
       "the libtorch generation StreamLM links; or set PYTHON)" >&2
  exit 1
fi

# The learner's threading: OpenMP threads sleep when idle (apps/main.cc sets
# this for streamlm too).
export OMP_WAIT_POLICY=PASSIVE

cpp_runs=()
py_runs=()
for ((i = 0; i < rounds; i++)); do
  cpp_runs+=("$("$streamlm" bench train --config "$config" | tail -n 1)")
  py_runs+=("$("$python" "$root/bench/train_reference.py" --config "$config" --threads "$threads" | tail -n 1)")
done

printf '%s\n' "${cpp_runs[@]}" >/tmp/train_vs_pytorch.$$.cpp
printf '%s\n' "${py_runs[@]}" >/tmp/train_vs_pytorch.$$.py
trap 'rm -f /tmp/train_vs_pytorch.$$.cpp /tmp/train_vs_pytorch.$$.py' EXIT
"$python" - "$config" "$threads" /tmp/train_vs_pytorch.$$.cpp /tmp/train_vs_pytorch.$$.py <<'EOF'
import json, statistics, sys
config, threads, cpp_path, py_path = sys.argv[1:5]
def load(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    for r in runs:
        if "error" in r or "tokens_per_s" not in r:
            sys.exit(f"train_vs_pytorch: a run failed: {r}")
    return runs
cpp, py = load(cpp_path), load(py_path)
med = lambda runs, key: statistics.median(r[key] for r in runs)
out = {
    "config": config,
    "threads": int(threads),
    "rounds": len(cpp),
    "streamlm_tokens_per_s": [round(r["tokens_per_s"], 1) for r in cpp],
    "pytorch_tokens_per_s": [round(r["tokens_per_s"], 1) for r in py],
    "streamlm_mfu": [round(r["mfu"], 3) for r in cpp],
    "pytorch_mfu": [round(r["mfu"], 3) for r in py],
    "streamlm_tokens_per_s_median": round(med(cpp, "tokens_per_s"), 1),
    "pytorch_tokens_per_s_median": round(med(py, "tokens_per_s"), 1),
    "ratio": round(med(cpp, "tokens_per_s") / med(py, "tokens_per_s"), 3),
    "streamlm_mfu_median": round(med(cpp, "mfu"), 3),
    "pytorch_mfu_median": round(med(py, "mfu"), 3),
    "gemm_gflops_median": round(statistics.median([r["gemm_gflops"] for r in cpp + py]), 1),
    "pytorch_version": py[0].get("torch"),
}
print(json.dumps(out))
EOF
