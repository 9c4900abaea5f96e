#!/bin/sh
# Rebuilds the verifier's object fixtures (src: *.c here) with relative paths, like tests/testdata/build.sh.
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang-14}"
for src in *.c; do
	"$CLANG" -O2 -g -target bpf -fdebug-compilation-dir=. -Wall -Werror \
		-I/usr/include/x86_64-linux-gnu -c "$src" -o "$(basename "$src" .c).o"
done
