#!/usr/bin/env bash
# Downloads a Debian source package (PACKAGE or PACKAGE=VERSION) into the
# current directory, adding bookworm's deb-src archive first if apt has none.
# Used by the scripts that build a library from Debian's own source for
# sanitized builds (tsan_rdkafka.sh, sanitizer_sentencepiece.sh).
# Usage: scripts/deb_source.sh PACKAGE[=VERSION]
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! apt-get source --download-only -qq "$1" >/dev/null 2>&1; then
  $SUDO tee /etc/apt/sources.list.d/streamlm-deb-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  $SUDO apt-get update -qq
  apt-get source --download-only -qq "$1"
fi
