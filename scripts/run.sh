#!/usr/bin/env bash
# Quick start: set up, build, and run everything on the embedded broker.
# Extra arguments go to `streamlm run` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec build/apps/streamlm run "$@"
