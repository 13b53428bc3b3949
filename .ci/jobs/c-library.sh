#!/usr/bin/env bash
# The C library without Python: `make -C csrc` builds libqcore.a and libqcore.so, the C
# tests pass, and the example links the static library and runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
make -s -C "$root/csrc" BUILD="$work" -j2 all
test -f "$work/libqcore.a" && test -f "$work/libqcore.so"
make -s -C "$root/csrc" BUILD="$work" -j2 check
make -s -C "$root/csrc" BUILD="$work" example
echo "c-library: libqcore.a, libqcore.so, C tests and example ok"
