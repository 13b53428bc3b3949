#!/usr/bin/env bash
# libFuzzer on the C .qcm reader under ASan + UBSan, seeded with the corrupt-file
# catalogue and a few valid files. Runs after the Python tests, inside the venv that
# .ci/run activated (the seed generator imports qcore). Fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
seconds=${QCORE_FUZZ_SECONDS:-60}

if ! command -v clang >/dev/null || ! clang -fsanitize=fuzzer -x c -o /dev/null - <<<'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' 2>/dev/null; then
    echo "installing clang and libFuzzer"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
python "$root/tests/make_corrupt_catalogue.py" "$work/corpus" --valid

clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root/csrc/include" -I"$root/csrc/src" \
    "$root/csrc/fuzz/fuzz_qcm.c" "$root/csrc/src/format.c" "$root/csrc/src/crc32c.c" "$root/csrc/src/status.c" \
    -o "$work/fuzz_qcm"

# -timeout: any single input taking over 10 s is a hang. -rss_limit_mb: the reader
# allocates nothing, so any growth is a leak or a bug.
set +e
"$work/fuzz_qcm" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=512 -max_len=65536 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$work/corpus" >"$work/log" 2>&1
status=$?
set -e
tail -n 20 "$work/log"
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
    echo "fuzz_qcm found a problem (exit $status):"
    grep -E "ERROR:|SUMMARY:|runtime error:|#[0-9]+ 0x" "$work/log" | head -n 30 || true
    echo "reproducer(s), base64:"
    for f in "$work"/artifacts/*; do
        [ -e "$f" ] || continue
        echo "--- $(basename "$f")"
        base64 "$f"
    done
    exit 1
fi
echo "fuzz_qcm: no findings in ${seconds} s"
