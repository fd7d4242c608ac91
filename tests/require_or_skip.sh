#!/usr/bin/env bash
# Runs a test command that needs a file installed outside the build (an npm
# package under build/npm): usage require_or_skip.sh PATH COMMAND [ARG...].
# When PATH is missing the test prints "SKIPPED: ..." and exits 0 (CTest's
# SKIP_REGULAR_EXPRESSION marks it skipped), or, under CI (CI set, not 0 or
# false; .ci/run sets CI=true), prints "FAILED: ..." and exits 1: the same rule
# as tests/util/skip.h for GoogleTest binaries.
set -euo pipefail
need=$1
shift
if [ ! -e "$need" ]; then
  msg="$need is missing (bash scripts/npm_deps.sh installs it)"
  if [ -n "${CI:-}" ] && [ "${CI}" != 0 ] && [ "${CI}" != false ]; then
    echo "FAILED: $msg; CI is set, so a missing dependency fails"
    exit 1
  fi
  echo "SKIPPED: $msg"
  exit 0
fi
exec "$@"
