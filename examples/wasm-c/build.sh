#!/bin/sh
# Builds handler.wasm with Debian's clang and wasi-libc (apt: clang lld wasi-libc libclang-rt-14-dev-wasm32).
set -e
cd "$(dirname "$0")"
clang --target=wasm32-wasi -O2 -s handler.c -o handler.wasm
echo "built $(pwd)/handler.wasm ($(wc -c < handler.wasm) bytes)"
