#!/usr/bin/env bash
# Builds Debian's SentencePiece (the same version as libsentencepiece-dev) as
# static, position-independent libraries into PREFIX, for
# scripts/test.sh --sanitize KIND.
#
# Debian's libsentencepiece exports the protobuf-lite it carries, and those
# symbols collide with libtorch's libprotobuf. A normal build keeps the two
# apart by loading the SentencePiece module with RTLD_DEEPBIND, which the
# sanitizer runtimes refuse. A sanitized build instead links these static
# libraries into the module with --exclude-libs, so the module's copy of
# protobuf is private to it and nothing needs RTLD_DEEPBIND. Like every
# other library but librdkafka under TSan, it is not instrumented.
# Usage: scripts/sanitizer_sentencepiece.sh PREFIX   (a no-op when PREFIX has it)
set -euo pipefail
prefix=$(realpath -m "$1")
scripts=$(cd "$(dirname "$0")" && pwd)
[ -f "$prefix/lib/libsentencepiece_train.a" ] && exit 0
version=$(dpkg-query -W -f='${source:Version}' libsentencepiece-dev)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# The source package comes from the Debian archive (deb-src).
bash "$scripts/deb_source.sh" "sentencepiece=$version"
tar xzf sentencepiece_*.orig.tar.gz
tar xJf sentencepiece_*.debian.tar.xz
cd sentencepiece-*/
# Debian's patches change the public headers (absl::string_view becomes
# std::string_view, ...), so the module must compile against the same
# source. All but the one that removes the static libraries.
while read -r p; do
  [ -z "$p" ] || [ "${p#\#}" != "$p" ] || [ "$p" = disable-static-library.patch ] || patch -s -p1 < "../debian/patches/$p"
done < ../debian/patches/series
echo "streamlm: building $(basename "$PWD") as static PIC libraries into $prefix"
# The bundled protobuf-lite (SPM_USE_BUILTIN_PROTOBUF) is the copy Debian's
# library carries too.
cmake -S . -B out -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DSPM_ENABLE_SHARED=OFF \
  -DSPM_USE_BUILTIN_PROTOBUF=ON -DSPM_ENABLE_TCMALLOC=OFF >/dev/null
# Its bundled protobuf warns a lot under GCC 12: show the log only on failure.
cmake --build out -j "$(nproc)" --target sentencepiece-static sentencepiece_train-static \
  > "$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
mkdir -p "$prefix/lib" "$prefix/include"
cp out/src/libsentencepiece.a out/src/libsentencepiece_train.a "$prefix/lib/"
cp src/sentencepiece_processor.h src/sentencepiece_trainer.h "$prefix/include/"
