#!/usr/bin/env bash
# ARM job: every csrc/tests/test_*.c built natively and cross-compiled for aarch64 and
# armv7, run under qemu-user on several CPU models (docs/C-API.md, "Testing on ARM"):
#   aarch64: cortex-a72 (NEON, no dotprod), cortex-a76 (dotprod), max (dotprod + i8mm);
#   armv7:   cortex-a7 (NEON), cortex-a15 with NEON switched off (scalar fallback).
# Each program compares every ISA it can run with its scalar path in-process and prints
# "checksum <name> <hex>" lines of scalar results on fixed inputs; every emulated run must
# print exactly the checksum lines of the native x86 run. Fails on any mismatch or
# non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

missing=()
for tool in aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc qemu-aarch64 qemu-arm; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -d /usr/aarch64-linux-gnu/lib ] || missing+=(libc6-dev-arm64-cross)
[ -d /usr/arm-linux-gnueabihf/lib ] || missing+=(libc6-dev-armhf-cross)
if [ ${#missing[@]} -gt 0 ]; then
    echo "arm: installing cross compilers and qemu-user (missing: ${missing[*]})"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
        gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)

echo "arm: building native, aarch64 and armv7 test programs"
make -s -C csrc -j"$jobs" BUILD="$work/x86_64" tests
make -s -C csrc -j"$jobs" BUILD="$work/aarch64" CC=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar tests
make -s -C csrc -j"$jobs" BUILD="$work/armv7" CC=arm-linux-gnueabihf-gcc AR=arm-linux-gnueabihf-ar tests

failures=0
fail() {
    echo "arm: FAIL: $*"
    failures=$((failures + 1))
}

# run <label> <output file> <command...>: runs a test program with QCORE_ISA unset, so
# each program enumerates every ISA the (emulated) CPU offers.
run() {
    local label=$1 out=$2
    shift 2
    if ! (cd "$root/csrc" && env -u QCORE_ISA timeout 300 "$@") >"$out" 2>"$out.err"; then
        cat "$out.err"
        fail "$label exited non-zero"
    fi
    local isas summary
    isas=$(grep -m1 '^isas:' "$out" || true)
    summary=$(tail -n 1 "$out")
    printf '  %-42s %s\n' "$label" "${isas:-$summary}"
}

for test_src in csrc/tests/test_*.c; do
    name=$(basename "$test_src" .c)
    echo "arm: $name"
    native="$work/$name.x86_64.out"
    run "x86_64 (native)" "$native" "$work/x86_64/tests/$name"
    grep '^checksum ' "$native" >"$native.sums" || true
    echo "    $(wc -l <"$native.sums") checksum lines from x86_64"

    targets=(
        "aarch64 cortex-a72|qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu $work/aarch64/tests/$name"
        "aarch64 cortex-a76|qemu-aarch64 -cpu cortex-a76 -L /usr/aarch64-linux-gnu $work/aarch64/tests/$name"
        "aarch64 max|qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu $work/aarch64/tests/$name"
        "armv7 cortex-a7|qemu-arm -cpu cortex-a7 -L /usr/arm-linux-gnueabihf $work/armv7/tests/$name"
        "armv7 cortex-a15,neon=off|qemu-arm -cpu cortex-a15,neon=off -L /usr/arm-linux-gnueabihf $work/armv7/tests/$name"
    )
    for target in "${targets[@]}"; do
        label=${target%%|*}
        read -r -a cmd <<<"${target#*|}"
        out="$work/$name.${label// /_}.out"
        run "$label" "$out" "${cmd[@]}"
        grep '^checksum ' "$out" >"$out.sums" || true
        if ! diff -u "$native.sums" "$out.sums" >"$out.diff"; then
            cat "$out.diff"
            fail "$name on $label: checksums differ from x86_64"
        fi
    done
done

if [ "$failures" -ne 0 ]; then
    echo "arm: $failures failure(s)"
    exit 1
fi
echo "arm: every run passed and matched the x86_64 checksums"
