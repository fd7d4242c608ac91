#!/usr/bin/env bash
# Set up, build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/npm_deps.sh
cd build
ctest --output-on-failure -j 2 --timeout 900 "$@"
