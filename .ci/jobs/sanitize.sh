#!/usr/bin/env bash
# Sanitizer job (AddressSanitizer + UndefinedBehaviorSanitizer, any report is fatal):
#   (a) every csrc/tests/test_*.c built against an instrumented libqcore and run;
#   (b) the cffi extension built with the same flags in a temporary copy of the tree (not
#       the tree CI tested, not site-packages) and the Python tests that exercise C code
#       run against it, with libasan/libubsan preloaded into the uninstrumented python.
# Runs inside the virtual environment .ci/run created (python has qcore's dependencies).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

cc=${CC:-gcc}
san_flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "sanitize: (a) C tests with $san_flags"
make -s -C csrc -j"$(nproc 2>/dev/null || echo 2)" CC="$cc" BUILD="$work/csan" \
    CFLAGS="-O2 -g $san_flags" LDFLAGS="$san_flags" check

echo "sanitize: (b) Python tests against an instrumented extension"
copy="$work/tree"
mkdir -p "$copy"
# The sources only: no in-place build products of the tested tree.
tar -C "$root" --exclude='*.so' --exclude='__pycache__' --exclude='csrc/build' --exclude='.venv' \
    --exclude='.git' --exclude='.hypothesis' -cf - qcore csrc tests tools pyproject.toml | tar -C "$copy" -xf -
(cd "$copy" && QCORE_CFLAGS="-O1 -g $san_flags" QCORE_LDFLAGS="$san_flags" python csrc/ffi_build.py >"$work/build.log" 2>&1) || {
    cat "$work/build.log"
    echo "sanitize: building the instrumented extension failed"
    exit 1
}

tests=()
for t in tests/test_native.py tests/test_ops*.py tests/test_gemm.py tests/test_conv.py tests/test_elementwise.py tests/test_format*.py \
         tests/test_linear.py tests/test_activation.py tests/test_attention.py tests/test_runtime_fusion_encoder.py \
         tests/test_alignment.py; do
    [ -e "$copy/$t" ] && tests+=("$t")
done
preload="$("$cc" -print-file-name=libasan.so):$("$cc" -print-file-name=libubsan.so)"
cd "$copy"
# PYTHONPATH puts the instrumented copy ahead of any installed qcore; check that it did.
PYTHONPATH="$copy" python -c "import qcore, sys; sys.exit(0 if qcore.__file__.startswith('$copy') else 1)" || {
    echo "sanitize: the instrumented copy of qcore is not the one imported"
    exit 1
}
echo "sanitize: pytest ${tests[*]}"
PYTHONPATH="$copy" LD_PRELOAD="$preload" QCORE_HYPOTHESIS_PROFILE=dev \
    python -m pytest -q -p no:cacheprovider "${tests[@]}"
echo "sanitize: clean"
