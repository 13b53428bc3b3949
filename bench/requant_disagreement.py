"""How often TFLite-style (fixed point) and ONNX-style (float32) requantization disagree.

Simulates the int8 layers of a small network: int8 activations (asymmetric) times
per-channel symmetric int8 weights, int32 accumulation with bias, for several depths K;
the output scale is calibrated on the float result so the outputs span the int8 range.
Each accumulator is then requantized twice:

- ONNX / onnxruntime: ``clip(round_half_even(float32(acc) * float32(a_s * w_s / y_s)) + zp)``
  (``qcore.reference.requant.requantize_float``);
- TFLite: ``clip(MultiplyByQuantizedMultiplier(acc, quantize_multiplier(a_s * w_s / y_s)) + zp)``
  with the multiplier in float64 (``qcore.reference.tflite.requantize``);

and both are compared with the exactly rounded result ``round_half_even(acc * M)``
(``M`` the float64 multiplier, computed with Python integers).

Run: ``PYTHONPATH=$PWD python bench/requant_disagreement.py`` (about 20 s). The figures
are quoted in docs/ARITHMETIC.md, "Where the conventions disagree".
"""

from __future__ import annotations

import argparse

import numpy as np

from qcore.reference import tflite
from qcore.reference.requant import requantize_float
from qcore.reference.params import choose_qparams


def exact_round_half_even(acc: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    """``round_half_even(acc * multiplier)`` exactly, ``multiplier`` float64 (Python integers)."""
    mantissa, exponent = np.frexp(multiplier)
    m = (mantissa * 2.0**53).astype(np.int64).astype(object)  # multiplier = m * 2**(e - 53)
    shift = (53 - exponent).astype(object)
    num = acc.astype(object) * np.broadcast_to(m, acc.shape)
    den = np.left_shift(1, np.broadcast_to(shift, acc.shape))
    quotient = num // den  # floor division
    remainder = num - quotient * den
    twice = 2 * remainder
    up = (twice > den) | ((twice == den) & (quotient % 2 == 1))
    return (quotient + up).astype(np.int64)


def layer(rng: np.random.Generator, m: int, k: int, n: int):
    """One int8 layer: accumulators (m, n), float64 multipliers (n,), output zero point."""
    x = np.maximum(rng.standard_normal((m, k)), 0).astype(np.float32) * rng.uniform(0.5, 4)  # post-ReLU
    w = (rng.standard_normal((k, n)) * rng.uniform(0.02, 0.2, n)).astype(np.float32)
    bias = (rng.standard_normal(n) * 0.1).astype(np.float32)
    a_scale, a_zp = choose_qparams(x.min(), x.max(), "int8", symmetric=False, convention="tflite")
    xq = tflite.quantize(x, a_scale, a_zp)
    absmax = np.abs(w).max(axis=0)
    wq, w_scale = tflite.quantize_symmetric(w, absmax)
    bq, _ = tflite.quantize_bias(bias, a_scale, w_scale)
    acc = (xq.astype(np.int64) - int(a_zp)) @ wq.astype(np.int64) + bq
    y = x @ w + bias
    y_scale, y_zp = choose_qparams(y.min(), y.max(), "int8", symmetric=False, convention="tflite")
    return acc.astype(np.int32), a_scale, w_scale, y_scale, int(y_zp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=24, help="layers per depth K")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'K':>5} {'outputs':>9} {'onnx!=tflite':>13} {'max|diff|':>9} {'onnx!=exact':>12} {'tflite!=exact':>14}")
    totals = np.zeros(4, dtype=np.int64)
    worst = 0
    for k in (64, 256, 1024, 4096):
        counts = np.zeros(4, dtype=np.int64)
        for _ in range(args.layers):
            acc, a_scale, w_scale, y_scale, y_zp = layer(rng, 64, k, 64)
            m_float32 = (np.float32(a_scale) * w_scale) / np.float32(y_scale)
            onnx = requantize_float(acc, m_float32.astype(np.float32), y_zp, -128, 127).astype(np.int64)
            m64 = tflite.effective_multiplier(a_scale, w_scale, y_scale)
            mult, shift = tflite.multiplier_for(a_scale, w_scale, y_scale)
            lite = tflite.requantize(acc, mult, shift, y_zp).astype(np.int64)
            exact = np.clip(exact_round_half_even(acc, m64) + y_zp, -128, 127)
            counts += [acc.size, np.count_nonzero(onnx != lite), np.count_nonzero(onnx != exact),
                       np.count_nonzero(lite != exact)]
            worst = max(worst, int(np.abs(onnx - lite).max()))
        totals += counts
        n = counts[0]
        print(f"{k:>5} {n:>9} {counts[1] / n:>12.4%} {worst:>9} {counts[2] / n:>11.4%} {counts[3] / n:>13.4%}")
    n = totals[0]
    print(f"{'all':>5} {n:>9} {totals[1] / n:>12.4%} {worst:>9} {totals[2] / n:>11.4%} {totals[3] / n:>13.4%}")
    print(f"counts (all K): onnx!=tflite {totals[1]}, onnx!=exact {totals[2]}, tflite!=exact {totals[3]}")
    synthetic(rng)


def synthetic(rng: np.random.Generator, n: int = 1_000_000) -> None:
    """Uniform accumulators with log-uniform multipliers M in [2**-20, 2**-4], scaled so
    that acc * M spans the int8 range: every fractional position is equally likely."""
    m64 = np.exp2(rng.uniform(-20, -4, n))
    m32 = m64.astype(np.float32)
    m64 = m32.astype(np.float64)  # the same real multiplier on both sides
    acc = np.round(rng.uniform(-128, 128, n) / m64).clip(-(2**31), 2**31 - 1).astype(np.int32)
    onnx = requantize_float(acc, m32, 0, -128, 127).astype(np.int64)
    mult, shift = tflite.quantize_multiplier(m64)
    lite = tflite.requantize(acc, mult, shift, 0).astype(np.int64)
    exact = np.clip(exact_round_half_even(acc, m64), -128, 127)
    print(
        f"synthetic, {n} outputs: onnx!=tflite {np.count_nonzero(onnx != lite) / n:.4%} "
        f"(max |diff| {int(np.abs(onnx - lite).max())}), onnx!=exact {np.count_nonzero(onnx != exact) / n:.4%}, "
        f"tflite!=exact {np.count_nonzero(lite != exact) / n:.4%}"
    )


if __name__ == "__main__":
    main()
