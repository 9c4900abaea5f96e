#!/bin/sh
# Rebuilds the BPF test fixtures: every src/*.c becomes <name>.o here (or in the directory given as $1).
# Run from anywhere; it compiles from tests/testdata with relative paths and -fdebug-compilation-dir=. so the
# objects embed no machine paths and are byte-for-byte reproducible with the same clang.
set -eu
cd "$(dirname "$0")"
out="${1:-.}"
mkdir -p "$out"
CLANG="${CLANG:-clang-14}"
for src in src/*.c; do
	name="$(basename "$src" .c)"
	"$CLANG" -O2 -g -target bpf -fdebug-compilation-dir=. -Wall -Werror \
		-I/usr/include/x86_64-linux-gnu -c "$src" -o "$out/$name.o"
done
