#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs every test, the real-programs
# tier included. Arguments go to `cargo test` (for one tier:
# `scripts/test.sh --test real_programs`).
set -euo pipefail
cd "$(dirname "$0")/.."

# The C cross compiler for the SQLite guest: clang and lld, wasi-libc, and
# compiler-rt's wasm32 builtins.
packages=(clang lld wasi-libc libclang-rt-14-dev-wasm32)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

rustup target add wasm32-wasip1 wasm32-wasip1-threads
cargo test --locked "$@"
