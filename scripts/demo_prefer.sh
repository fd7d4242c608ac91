#!/usr/bin/env bash
# Asks the served model which of two answers it prefers after a prompt: the
# summed log-probability of each answer's tokens, scored through
# /v1/completions (echo + logprobs, max_tokens 0: the same numbers the
# evaluator's preference accuracy compares). For the README's quick start.
# Usage: scripts/demo_prefer.sh PROMPT ANSWER_A ANSWER_B [URL]
set -euo pipefail
prompt=$1 a=$2 b=$3 url=${4:-http://127.0.0.1:8080}
python3 - "$prompt" "$a" "$b" "$url" <<'PY'
import json, sys, urllib.request
prompt, answers, url = sys.argv[1], sys.argv[2:4], sys.argv[4]
scores, model = [], None
for answer in answers:
    text = prompt + " " + answer
    body = json.dumps({"prompt": text, "echo": True, "logprobs": 0, "max_tokens": 0}).encode()
    req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
    out = json.load(urllib.request.urlopen(req))
    model = out["model"]
    lp = out["choices"][0]["logprobs"]
    # Tokens that start at or after the answer (the first token has no logprob).
    scores.append(sum(l for l, o in zip(lp["token_logprobs"], lp["text_offset"])
                      if l is not None and o >= len(prompt)))
for answer, s in zip(answers, scores):
    print(f"{s:8.2f} nats  {answer}")
best = answers[0] if scores[0] > scores[1] else answers[1]
print(f"{model} prefers: {best}")
PY
