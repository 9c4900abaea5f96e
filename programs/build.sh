#!/usr/bin/env bash
# Builds the project's BPF programs into objects beside their sources (programs/*.o, programs/bench/*.o).
# The objects are committed; tests/SharpBpf.Tests/Programs checks they are what this script builds.
# Paths are relative and the debug compilation directory is ".", so the objects embed no path of the machine
# that built them. Usage: programs/build.sh [OUTPUT_DIR]   (default: build in place)
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-.}"
clang="${CLANG:-clang-14}"
arch_include="/usr/include/$(uname -m)-linux-gnu"
sources=(xdp_filter.c xsk_redirect.c bench/*.c)
for src in "${sources[@]}"; do
    obj="$out/${src%.c}.o"
    mkdir -p "$(dirname "$obj")"
    "$clang" -O2 -g -target bpf -Wall -Werror -fdebug-compilation-dir=. -I"$arch_include" -c "$src" -o "$obj"
done
echo "built ${#sources[@]} objects in $out"
