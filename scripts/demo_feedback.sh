#!/usr/bin/env bash
# Prints N `streamlm.feedback` JSON lines for the README's quick start:
# people asking about the harbour prefer a helpful answer ("Gladly, the
# ferry is at pier 4.") to a curt one ("No, the ferry is gone."), from eight
# users. Of every 8 records 5 are preference pairs, one rates a helpful
# answer up, one a curt answer down, one corrects a curt answer. With
# --flip every record is a pair with chosen and rejected reversed, from
# three users: the poisoning the gate must not promote.
# Usage: scripts/demo_feedback.sh [N] [--flip]   (default 160)
set -euo pipefail
n=${1:-160}
flip=0
[[ "${2:-}" == "--flip" ]] && flip=1
awk -v n="$n" -v flip="$flip" 'BEGIN {
  split("ferry|grain ship|tugboat|cutter|cargo vessel|schooner|pilot boat|fishing boat|barge|dredger", what, "|")
  split("Where is the %s?|Can you find the %s?|Has the %s arrived?|Which pier has the %s?", ask, "|")
  for (i = 0; i < n; i++) {
    w = what[i % 10 + 1]; q = sprintf(ask[int(i / 10) % 4 + 1], w); pier = (i * 7) % 17 + 1
    good = sprintf("Gladly, the %s is at pier %d.", w, pier); bad = sprintf("No, the %s is gone.", w)
    if (flip) { t = good; good = bad; bad = t; user = "mallory" (i % 3) } else { user = "user" (i % 8) }
    k = flip ? 0 : i % 8
    if (k == 5) {
      printf "{\"prompt\": \"%s\", \"response\": \"%s\", \"rating\": 1, \"user\": \"%s\"}\n", q, good, user
    } else if (k == 6) {
      printf "{\"prompt\": \"%s\", \"response\": \"%s\", \"rating\": -1, \"user\": \"%s\"}\n", q, bad, user
    } else if (k == 7) {
      printf "{\"prompt\": \"%s\", \"response\": \"%s\", \"correction\": \"%s\", \"user\": \"%s\"}\n", q, bad, good, user
    } else {
      printf "{\"prompt\": \"%s\", \"chosen\": \"%s\", \"rejected\": \"%s\", \"user\": \"%s\"}\n", q, good, bad, user
    }
  }
}'
