#!/usr/bin/env bash
# Crash suite at length: `streamlm run` killed with SIGKILL N times at random
# moments against a separate `streamlm broker`, then the `learn`, `evaluate`
# and `serve` processes N times in all, one at a time (tests/crash_test.cc;
# CTest runs the short form, 10 kills each). The stream grows with N (200
# text and 10 feedback records per kill).
#
# Usage: scripts/crash_test.sh N [SEED]
#   SEED replays a run (each run prints its seed first). Builds what it needs
#   in build/ (scripts/setup.sh made it).
set -euo pipefail
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 4 ]; then
  echo "usage: $0 N [SEED]   (N >= 4 kills)" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
build=${STREAMLM_BUILD_DIR:-build}
cmake --build "$build" --target streamlm crash_test >/dev/null
export STREAMLM_SOURCE_DIR=$PWD STREAMLM_BINARY=$PWD/$build/apps/streamlm
export STREAMLM_CRASH_KILLS=$1
if [ $# -ge 2 ]; then export STREAMLM_CRASH_SEED=$2; fi
exec "$build/tests/crash_test"
