"""qcore.reference.fixedpoint against an independent exact model of TFLite's definitions.

The oracle below is written from the mathematical definitions with Python integers
(numpy object arrays, so it is vectorised yet exact): SRDHM is ``floor((a*b + 2**30) /
2**31)``; RoundingDivideByPOT is ``x / 2**e`` rounded half away from zero; the left
shift saturates to int32 (qcore's decision, docs/ARITHMETIC.md). The C helpers of
csrc/src/requant.h are checked against the same vectors through a small harness
compiled with gcc.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from qcore.errors import DTypeError, QuantParamError, ShapeError
from qcore.reference.fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    dequantize_multiplier,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    round_half_away,
    saturating_rounding_doubling_high_mul,
)

N_RANDOM = 1_000_000
EDGE_INT32 = np.array([INT32_MIN, INT32_MIN + 1, -(1 << 30), -2, -1, 0, 1, 2, 1 << 30, INT32_MAX - 1, INT32_MAX])


def oracle_srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a_o = a.astype(object)
    b_o = b.astype(object)
    high = (a_o * b_o + (1 << 30)) // (1 << 31)
    high = np.where(high > INT32_MAX, INT32_MAX, high)  # only INT32_MIN * INT32_MIN
    return high.astype(np.int64)


def oracle_rdbp(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    x_o = x.astype(object)
    e_o = np.broadcast_to(e, x.shape).astype(object)
    mag = np.abs(x_o)
    half = np.where(e_o > 0, np.left_shift(1, np.maximum(e_o - 1, 0)), 0)
    rounded = np.right_shift(mag + half, e_o)  # half away from zero on the magnitude
    return np.where(x_o < 0, -rounded, rounded).astype(np.int64)


def oracle_mbqm(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    left = np.maximum(shift, 0).astype(object)
    right = np.maximum(-shift, 0)
    shifted = acc.astype(object) * np.left_shift(1, left)
    shifted = np.clip(shifted, INT32_MIN, INT32_MAX).astype(np.int64)
    return oracle_rdbp(oracle_srdhm(shifted, mult.astype(np.int64)), right)


def oracle_quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier from exact rationals (no frexp)."""
    if real == 0:
        return 0, 0
    r = Fraction(real)
    # exponent e with r = m * 2**e, m in [1/2, 1)
    e = r.numerator.bit_length() - r.denominator.bit_length()
    while r >= Fraction(2) ** e:
        e += 1
    while r < Fraction(2) ** (e - 1):
        e -= 1
    scaled = r * Fraction(2) ** (31 - e)
    q = int(scaled)  # floor, scaled > 0
    if scaled - q >= Fraction(1, 2):
        q += 1
    if q == 1 << 31:
        q //= 2
        e += 1
    if e < -31:
        return 0, 0
    return q, e


def random_triples(rng: np.random.Generator, n: int):
    """Accumulators spread over every magnitude, multipliers of both kinds, shifts both sides."""
    bits = rng.integers(0, 32, n)
    acc = rng.integers(-(1 << 31), 1 << 31, n, dtype=np.int64) >> bits
    acc[: len(EDGE_INT32)] = EDGE_INT32
    acc[len(EDGE_INT32) : 2 * len(EDGE_INT32)] = INT32_MIN
    mult = rng.integers(1 << 30, 1 << 31, n, dtype=np.int64)
    any_mult = rng.random(n) < 0.1  # general int32 multipliers, INT32_MIN included
    mult[any_mult] = rng.integers(INT32_MIN, INT32_MAX + 1, any_mult.sum(), dtype=np.int64)
    mult[len(EDGE_INT32) : 2 * len(EDGE_INT32)] = EDGE_INT32
    shift = rng.integers(-31, 32, n)
    return acc.astype(np.int32), mult.astype(np.int32), shift.astype(np.int32)


@pytest.fixture(scope="module")
def triples():
    return random_triples(np.random.default_rng(20261126), N_RANDOM)


def test_mbqm_matches_oracle_on_a_million_triples(triples):
    acc, mult, shift = triples
    got = multiply_by_quantized_multiplier(acc, mult, shift)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.astype(np.int64), oracle_mbqm(acc, mult, shift), strict=True)
    assert (shift > 0).sum() > 400_000 and (shift < 0).sum() > 400_000


def test_srdhm_exhaustive_edges():
    a, b = np.meshgrid(EDGE_INT32, EDGE_INT32)
    got = saturating_rounding_doubling_high_mul(a.astype(np.int32), b.astype(np.int32))
    np.testing.assert_array_equal(got.astype(np.int64), oracle_srdhm(a, b), strict=True)
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    # half up, not away from zero: 2*a*b/2**32 = -0.5 rounds to 0, +0.5 to 1
    assert saturating_rounding_doubling_high_mul(-(1 << 15), 1 << 15) == 0
    assert saturating_rounding_doubling_high_mul(1 << 15, 1 << 15) == 1


def test_rounding_divide_by_pot_ties_away_from_zero():
    x = np.array([5, -5, 6, -6, 7, -7, INT32_MIN, INT32_MAX], dtype=np.int32)
    np.testing.assert_array_equal(
        rounding_divide_by_pot(x, 1), np.array([3, -3, 3, -3, 4, -4, -(1 << 30), 1 << 30], dtype=np.int32), strict=True
    )
    np.testing.assert_array_equal(rounding_divide_by_pot(x, 31), np.array([0, 0, 0, 0, 0, 0, -1, 1], dtype=np.int32))
    rng = np.random.default_rng(1)
    xs = rng.integers(INT32_MIN, INT32_MAX + 1, 100_000).astype(np.int32)
    es = rng.integers(0, 32, 100_000)
    np.testing.assert_array_equal(rounding_divide_by_pot(xs, es).astype(np.int64), oracle_rdbp(xs, es))


def test_left_shift_saturates_instead_of_wrapping():
    assert multiply_by_quantized_multiplier(INT32_MAX, 1 << 30, 1) == INT32_MAX // 2 + 1
    # INT32_MAX << 31 saturates to INT32_MAX, then * 0.5 (multiplier 2**30)
    assert multiply_by_quantized_multiplier(INT32_MAX, 1 << 30, 31) == (1 << 30)
    assert multiply_by_quantized_multiplier(INT32_MIN, 1 << 30, 31) == -(1 << 30)


def test_per_channel_broadcast():
    acc = np.arange(-600, 600, dtype=np.int32).reshape(100, 12)
    mult, shift = quantize_multiplier(np.linspace(0.001, 3.0, 12))
    got = multiply_by_quantized_multiplier(acc, mult, shift)
    for c in range(12):
        np.testing.assert_array_equal(got[:, c], multiply_by_quantized_multiplier(acc[:, c], int(mult[c]), int(shift[c])))


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.0, (0, 0)),
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.25, (1 << 30, -1)),
        (0.75, (3 << 29, 0)),
        (1.0 - 2.0**-31, ((1 << 31) - 1, 0)),
        # m * 2**31 = 2**31 - 1.5: a tie, away from zero gives 2**31 - 1 (half-even: - 2)
        (1.0 - 1.5 * 2.0**-31, ((1 << 31) - 1, 0)),
        (0.5 + 2.5 * 2.0**-31, ((1 << 30) + 3, 0)),
        # m * 2**31 = 2**31 - 0.25 rounds to 2**31: halve, shift + 1
        (1.0 - 2.0**-33, (1 << 30, 1)),
        # m * 2**31 = 2**31 - 0.5: a tie, rounds away to 2**31
        (1.0 - 2.0**-32, (1 << 30, 1)),
        (2.0**-32, (1 << 30, -31)),
        (2.0**-33, (0, 0)),  # exponent -32 < -31: flushed to zero
        (3.0e9, (round(3.0e9 / 2**32 * 2**31), 32)),
    ],
)
def test_quantize_multiplier_cases(real, expected):
    assert quantize_multiplier(real) == expected
    assert oracle_quantize_multiplier(real) == expected


def test_quantize_multiplier_matches_exact_rationals():
    rng = np.random.default_rng(7)
    reals = np.concatenate(
        [
            np.exp2(rng.uniform(-40, 10, 20_000)),
            # just below powers of two: the q == 2**31 carry
            np.nextafter(np.exp2(rng.integers(-30, 10, 2000).astype(float)), 0) * (1 - rng.random(2000) * 2.0**-31),
        ]
    )
    mult, shift = quantize_multiplier(reals)
    expected = np.array([oracle_quantize_multiplier(float(r)) for r in reals], dtype=np.int64)
    np.testing.assert_array_equal(mult.astype(np.int64), expected[:, 0], strict=True)
    np.testing.assert_array_equal(shift.astype(np.int64), expected[:, 1], strict=True)
    nonzero = mult != 0
    assert np.all((mult[nonzero] >= 1 << 30) & (mult[nonzero] <= INT32_MAX))
    rel = np.abs([dequantize_multiplier(m, s) for m, s in zip(mult[nonzero], shift[nonzero])] - reals[nonzero])
    assert np.all(rel <= reals[nonzero] * 2.0**-31)


@pytest.mark.parametrize("bad", [-1.0, -1e-30, float("nan"), float("inf")])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(QuantParamError):
        quantize_multiplier(bad)


def test_bad_arguments():
    with pytest.raises(QuantParamError, match="shift"):
        multiply_by_quantized_multiplier(np.int32(1), 1 << 30, 32)
    with pytest.raises(QuantParamError, match="shift"):
        multiply_by_quantized_multiplier(np.int32(1), 1 << 30, -32)
    with pytest.raises(DTypeError):
        multiply_by_quantized_multiplier(np.array([1.5]), 1 << 30, 0)
    with pytest.raises(QuantParamError, match="int32"):
        multiply_by_quantized_multiplier(np.array([1 << 31]), 1 << 30, 0)
    with pytest.raises(ShapeError):
        multiply_by_quantized_multiplier(np.zeros(3, np.int32), np.full(4, 1 << 30), 0)
    with pytest.raises(QuantParamError):
        rounding_divide_by_pot(np.int32(4), 32)


def test_round_half_away_exact():
    x = np.array([0.5, -0.5, 1.5, -2.5, 0.49999997, 8388609.0, -0.0, 2.5], dtype=np.float32)
    np.testing.assert_array_equal(round_half_away(x), np.array([1, -1, 2, -3, 0, 8388609, 0, 3], np.float32))
    assert round_half_away(np.float64(0.49999999999999994)) == 0.0


HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "requant.h"
int main(int argc, char **argv) {
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    long n = atol(argv[3]);
    int32_t *buf = malloc(sizeof(int32_t) * 3 * n), *res = malloc(sizeof(int32_t) * 3 * n);
    if (!in || !out || !buf || !res || fread(buf, sizeof(int32_t), 3 * n, in) != (size_t)(3 * n)) return 1;
    for (long i = 0; i < n; i++) {
        int32_t acc = buf[i], mult = buf[n + i], shift = buf[2 * n + i];
        res[i] = qc__multiply_by_quantized_multiplier(acc, mult, shift);
        res[n + i] = qc__srdhm(acc, mult);
        res[2 * n + i] = qc__rounding_divide_by_pot(acc, shift < 0 ? -shift : shift);
    }
    fwrite(res, sizeof(int32_t), 3 * n, out);
    fclose(out);
    return 0;
}
"""


def test_c_helpers_match_reference(tmp_path: Path, triples):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler")
    include = Path(__file__).resolve().parents[1] / "csrc" / "src"
    src = tmp_path / "harness.c"
    src.write_text(HARNESS)
    exe = tmp_path / "harness"
    base = [gcc, "-O2", "-std=c11", "-ffp-contract=off", f"-I{include}", str(src), "-o", str(exe), "-lm"]
    ubsan = ["-fsanitize=undefined", "-fno-sanitize-recover=all"]
    if subprocess.run(base + ubsan, capture_output=True).returncode != 0:  # no libubsan: plain build
        subprocess.run(base, check=True)
    acc, mult, shift = triples
    n = len(acc)
    np.concatenate([acc, mult, shift]).astype("<i4").tofile(tmp_path / "in.bin")
    subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin"), str(n)], check=True)
    out = np.fromfile(tmp_path / "out.bin", dtype="<i4").reshape(3, n)
    np.testing.assert_array_equal(out[0], multiply_by_quantized_multiplier(acc, mult, shift), strict=True)
    np.testing.assert_array_equal(out[1], saturating_rounding_doubling_high_mul(acc, mult), strict=True)
    np.testing.assert_array_equal(out[2], rounding_divide_by_pot(acc, np.abs(shift)), strict=True)
