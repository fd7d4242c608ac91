#!/usr/bin/env bash
# Installs what StreamLM needs on Debian 12 (only what is missing) and builds
# it into build/. Safe to run again: a no-op install and an incremental build.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libgloo-dev libopenblas0-openmp
  librdkafka-dev librocksdb-dev libabsl-dev libgtest-dev libgmock-dev
  libsentencepiece-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libcpp-httplib-dev zlib1g-dev libpcre2-dev libutf8proc-dev libxml2-dev libcld2-dev
  kcat python3-confluent-kafka curl clang-14 libclang-rt-14-dev
  chromium
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the reference tokenizer (tiktoken) in tests and benchmarks; a
# machine may already have it from elsewhere, so look for the commands.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "streamlm setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's libtorch uses the reference BLAS unless told otherwise; OpenBLAS
# trains about 8x faster.
blas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [ -e "$blas" ] && command -v update-alternatives >/dev/null; then
  current=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  if [ "$current" != "$blas" ]; then
    ${SUDO:-} update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" || true
  fi
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# Paths relative to the checkout, so another clone (CI's) reuses the cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
# Precompiled headers and ccache need these to agree.
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build build -j "$(nproc)"
