#!/usr/bin/env bash
# Set up, build, and run every test.
#
#   scripts/test.sh [CTEST ARGS...]
#   scripts/test.sh --sanitize address|thread|undefined [CTEST ARGS...]
#
# With --sanitize the unit and integration tests (not the fuzz targets, which
# have their own ASan+UBSan build, nor the benchmarks) run on a build with
# that sanitizer in build-KIND/; a finding fails its test (halt_on_error).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=""
if [ "${1:-}" = "--sanitize" ]; then
  sanitize=${2:-}
  case "$sanitize" in
    address|thread|undefined) ;;
    *) echo "usage: $0 --sanitize address|thread|undefined [CTEST ARGS...]" >&2; exit 2 ;;
  esac
  shift 2
fi
bash scripts/setup.sh
bash scripts/npm_deps.sh
if [ -z "$sanitize" ]; then
  cd build
  exec ctest --output-on-failure -j 2 --timeout 900 "$@"
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
dir=build-$sanitize
rdkafka=""
if [ "$sanitize" = thread ]; then
  # Debian's librdkafka starts threads TSan cannot see: use one built for it.
  rdkafka=$PWD/$dir/rdkafka-tsan
  bash scripts/tsan_rdkafka.sh "$rdkafka"
fi
# Debian's SentencePiece needs RTLD_DEEPBIND, which sanitizers refuse: link
# a static one whose protobuf stays private.
sentencepiece=$PWD/$dir/sentencepiece-static
bash scripts/sanitizer_sentencepiece.sh "$sentencepiece"
if [ ! -f "$dir/build.ninja" ] ||
   ! grep -q "STREAMLM_SENTENCEPIECE_PREFIX:PATH=$sentencepiece\$" "$dir/CMakeCache.txt" ||
   { [ -n "$rdkafka" ] && ! grep -q "STREAMLM_RDKAFKA_PREFIX:PATH=$rdkafka\$" "$dir/CMakeCache.txt"; }; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTREAMLM_SANITIZE="$sanitize" \
    -DSTREAMLM_SENTENCEPIECE_PREFIX="$sentencepiece" ${rdkafka:+-DSTREAMLM_RDKAFKA_PREFIX="$rdkafka"}
fi
cmake --build "$dir" -j "$(nproc)"
# The npm packages the parity tests read live in build/npm.
if [ -d build/npm ] && [ ! -e "$dir/npm" ]; then ln -s "$PWD/build/npm" "$dir/npm"; fi
supp=$PWD/tests/sanitizers
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
cd "$dir"
# Sanitized code runs 2-10x slower: one test at a time, longer timeouts.
exec ctest --output-on-failure -j 1 --timeout 2700 -LE 'fuzz|bench' "$@"
