#!/usr/bin/env bash
# Builds Debian's librdkafka (the same version as librdkafka-dev) with
# ThreadSanitizer into PREFIX, for scripts/test.sh --sanitize thread.
# Debian's own build starts its threads with C11 thrd_create, which
# ThreadSanitizer does not intercept (every Kafka test crashes at once);
# this one uses pthreads (--disable-c11threads) and is instrumented, so TSan
# sees librdkafka's threads and their synchronization.
# Usage: scripts/tsan_rdkafka.sh PREFIX   (a no-op when PREFIX has it)
set -euo pipefail
prefix=$(realpath -m "$1")
scripts=$(cd "$(dirname "$0")" && pwd)
[ -f "$prefix/lib/librdkafka.so" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# The source package comes from the Debian archive (deb-src).
bash "$scripts/deb_source.sh" librdkafka
tar xzf librdkafka_*.orig.tar.gz
cd librdkafka-*/
echo "streamlm: building $(basename "$PWD") with ThreadSanitizer into $prefix"
CFLAGS="-fsanitize=thread -g -O1" LDFLAGS="-fsanitize=thread" ./configure --prefix="$prefix" \
  --disable-c11threads --disable-ssl --disable-gssapi --disable-zstd --disable-curl >/dev/null
make -C src -j "$(nproc)" librdkafka.so.1 >/dev/null
mkdir -p "$prefix/lib" "$prefix/include/librdkafka"
cp src/librdkafka.so.1 "$prefix/lib/"
ln -sf librdkafka.so.1 "$prefix/lib/librdkafka.so"
cp src/rdkafka.h src/rdkafka_mock.h "$prefix/include/librdkafka/"
