#!/usr/bin/env bash
# Builds one libFuzzer target with clang (ASan + UBSan) and runs it for a
# bounded time on its seed corpus. Usage: run.sh NAME SECONDS BUILD_DIR
# Skips (exit 0 with a message) when clang's libFuzzer runtime is missing,
# or fails under CI.
set -euo pipefail
# FUZZ_BUILD_ONLY=1: build $3/fuzz/NAME_fuzz and stop (scripts/fuzz.sh runs it).
name=$1 seconds=$2 out=$3/fuzz
src=$(cd "$(dirname "$0")/../.." && pwd)
CXX=$(command -v clang++-14 || command -v clang++ || true)
if [ -z "$CXX" ] || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  msg="clang with libFuzzer (clang-14, libclang-rt-14-dev) is not installed"
  # Under CI (CI set, not 0/false) a missing dependency fails (tests/util/skip.h).
  if [ -n "${CI:-}" ] && [ "${CI}" != 0 ] && [ "${CI}" != false ]; then
    echo "FAILED: $msg (CI is set)"
    exit 1
  fi
  echo "SKIPPED: $msg"
  exit 0
fi
mkdir -p "$out"
case $name in
  record) srcs=("$src/tests/fuzz/record_fuzz.cc" "$src/ingest/record.cc" "$src/common/json_util.cc"); libs=() ;;
  config) srcs=("$src/tests/fuzz/config_fuzz.cc" "$src/common/config.cc"); libs=(-lyaml-cpp) ;;
  safetensors) srcs=("$src/tests/fuzz/safetensors_fuzz.cc" "$src/model/safetensors_header.cc"
                     "$src/common/json_util.cc"); libs=() ;;
  clean) srcs=("$src/tests/fuzz/clean_fuzz.cc" "$src/ingest/normalize.cc" "$src/ingest/quality.cc"
               "$src/ingest/pii.cc" "$src/ingest/pipeline.cc" "$src/ingest/dedup.cc"
               "$src/ingest/record.cc" "$src/common/json_util.cc" "$src/common/metrics.cc"
               "$src/common/log.cc")
         libs=(-I/usr/include/libxml2 -lxml2 -lutf8proc -lpcre2-8 -labsl_hash -labsl_city
               -labsl_low_level_hash -labsl_raw_hash_set -lcld2) ;;
  chat_template) srcs=("$src/tests/fuzz/chat_template_fuzz.cc" "$src/serving/chat_template.cc"
                       "$src/serving/internal/jinja_parser.cc"
                       "$src/serving/internal/jinja_interpreter.cc" "$src/common/json_util.cc")
                 libs=(-lutf8proc) ;;
  tokenizer_json) srcs=("$src/tests/fuzz/tokenizer_json_fuzz.cc" "$src/model/bpe_tokenizer.cc"
                        "$src/model/sp_bpe_tokenizer.cc" "$src/model/internal/added_tokens.cc"
                        "$src/common/json_util.cc")
                  libs=(-lutf8proc -lpcre2-8 -labsl_hash -labsl_city -labsl_low_level_hash
                        -labsl_raw_hash_set) ;;
  http_body) srcs=("$src/tests/fuzz/http_body_fuzz.cc" "$src/serving/request_parse.cc"
                   "$src/common/config.cc" "$src/common/json_util.cc")
             libs=($(pkg-config --cflags --libs cpp-httplib) -lyaml-cpp) ;;
  checkpoint_state) srcs=("$src/tests/fuzz/checkpoint_state_fuzz.cc"
                          "$src/learner/checkpoint_state.cc" "$src/common/json_util.cc")
                    libs=(-labsl_strings -labsl_strings_internal -labsl_throw_delegate) ;;
  *) echo "unknown fuzz target $name (add its sources to tests/fuzz/run.sh)"; exit 2 ;;
esac
absl=(-labsl_statusor -labsl_status -labsl_cord -labsl_str_format_internal -labsl_strings -labsl_strings_internal -labsl_int128
      -labsl_throw_delegate -labsl_raw_logging_internal)
# Rebuilt unless the binary is newer than its sources, every header of the
# repository and this script.
bin=$out/${name}_fuzz
if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" "$0" -newer "$bin" 2>/dev/null | head -n 1)" ] ||
   [ -n "$(find "$src" -path "$src/build" -prune -o -name '*.h' -newer "$bin" -print | head -n 1)" ]; then
  "$CXX" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src" "${srcs[@]}" -o "$bin.tmp" "${libs[@]}" "${absl[@]}"
  mv "$bin.tmp" "$bin"
fi
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src/tests/fuzz/corpus/$name/"* "$work/"
"$out/${name}_fuzz" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024 \
  -print_final_stats=1 -artifact_prefix="$out/${name}-" "$work" 2>&1 | tail -n 25
