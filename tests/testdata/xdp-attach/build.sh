#!/usr/bin/env bash
# Rebuilds the committed objects from their sources, from relative paths so no machine path is embedded.
set -euo pipefail
cd "$(dirname "$0")"
clang-14 -O2 -g -target bpf -fdebug-compilation-dir=. -I/usr/include/x86_64-linux-gnu -c xdp_count.c -o xdp_count.o
