"""Element-wise throughput: qcore's C kernels on every available ISA, beside the NumPy
reference and a plain NumPy float expression of the same formula, in the same run.

Run (about a minute on 2 cores)::

    PYTHONPATH=$PWD pytest bench/bench_elementwise.py --benchmark-enable \
        --benchmark-json=/tmp/elementwise.json
    python bench/bench_elementwise.py /tmp/elementwise.json   # markdown table, GB/s

Throughput is (bytes read + bytes written) / best time. Every entry records
``extra_info``: the operation, implementation, ISA, bytes moved, GB/s and whether its
output equals :mod:`qcore.reference` bit for bit ("exact"). The plain NumPy expressions are
the formula written the obvious way in float32; they are exact here only because these
inputs contain no NaN and stay in range -- they are a speed baseline, not an oracle. The
GELU's baseline is the unfused export it replaces (Div, Erf, Add, Mul, Mul on qcore's
float32 erf), a different float32 formula, so never "exact".
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np
import pytest

from qcore import _activation as act
from qcore import _elementwise as ew
from qcore import reference as ref
from qcore._native import available_isas
from qcore.reference import activation as ref_act
from qcore.reference import fixedpoint

N = 1 << 20  # elements per call: 4 MiB of float32 / int32, larger than L2
ROWS, COLS = 1024, 1024  # the per-channel case: one scale per row (axis 0) or column (axis 1)
ISAS = available_isas()

_rng = np.random.default_rng(0)
X = (_rng.standard_normal(N) * 3).astype(np.float32)
SCALE = np.float32(0.0237)
ZP8 = np.int8(-3)
Q8 = _rng.integers(-128, 128, N, dtype=np.int8)
ACC = _rng.integers(-(1 << 20), 1 << 20, N, dtype=np.int32)
MULT = np.float32(3.1e-5)
QMULT, SHIFT = fixedpoint.quantize_multiplier(3.1e-5)
ROW_SCALES = np.linspace(0.01, 0.05, COLS, dtype=np.float32)


def _record(benchmark, op: str, impl: str, isa: str, nbytes: int, exact: bool) -> None:
    benchmark.extra_info.update(op=op, impl=impl, isa=isa, bytes=nbytes, exact=bool(exact))
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["gbps"] = nbytes / stats.stats.min / 1e9


def _run(benchmark, fn, expected, op: str, impl: str, isa: str, nbytes: int) -> None:
    benchmark.group = op
    out = benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=2)
    if isinstance(expected, tuple):
        exact = all(np.array_equal(o, e) and np.asarray(o).dtype == np.asarray(e).dtype for o, e in zip(out, expected))
    else:
        exact = np.array_equal(out, expected) and out.dtype == expected.dtype
    _record(benchmark, op, impl, isa, nbytes, exact)


def _impls(qcore_fn, reference_fn, numpy_fn):
    """(name, isa, callable) for every ISA of the C path, the reference and NumPy."""
    rows = [(f"qcore-{isa}", isa, (lambda isa=isa: qcore_fn(isa))) for isa in ISAS]
    rows.append(("reference", "numpy", reference_fn))
    rows.append(("numpy-expression", "numpy", numpy_fn))
    return rows


QUANTIZE = _impls(
    lambda isa: ew.quantize_linear(X, SCALE, ZP8, isa=isa),
    lambda: ref.quantize_linear(X, SCALE, ZP8),
    lambda: np.clip(np.rint(X / SCALE) + np.float32(ZP8), -128, 127).astype(np.int8),
)


@pytest.mark.parametrize("impl, isa, fn", QUANTIZE, ids=[r[0] for r in QUANTIZE])
def test_quantize_per_tensor(benchmark, impl, isa, fn):
    _run(benchmark, fn, ref.quantize_linear(X, SCALE, ZP8), "quantize f32->s8", impl, isa, N * 5)


X2 = X.reshape(ROWS, COLS)
QUANTIZE_AXIS = _impls(
    lambda isa: ew.quantize_linear(X2, ROW_SCALES, axis=1, isa=isa),
    lambda: ref.quantize_linear(X2, ROW_SCALES, axis=1),
    lambda: np.clip(np.rint(X2 / ROW_SCALES), 0, 255).astype(np.uint8),
)


@pytest.mark.parametrize("impl, isa, fn", QUANTIZE_AXIS, ids=[r[0] for r in QUANTIZE_AXIS])
def test_quantize_per_channel_last_axis(benchmark, impl, isa, fn):
    expected = ref.quantize_linear(X2, ROW_SCALES, axis=1)
    _run(benchmark, fn, expected, "quantize f32->u8 per-channel (last axis)", impl, isa, N * 5)


DEQUANTIZE = _impls(
    lambda isa: ew.dequantize_linear(Q8, SCALE, ZP8, isa=isa),
    lambda: ref.dequantize_linear(Q8, SCALE, ZP8),
    lambda: (Q8.astype(np.float32) - np.float32(ZP8)) * SCALE,
)


@pytest.mark.parametrize("impl, isa, fn", DEQUANTIZE, ids=[r[0] for r in DEQUANTIZE])
def test_dequantize_per_tensor(benchmark, impl, isa, fn):
    _run(benchmark, fn, ref.dequantize_linear(Q8, SCALE, ZP8), "dequantize s8->f32", impl, isa, N * 5)


REQUANTIZE = _impls(
    lambda isa: ew.requantize(ACC, MULT, 5, isa=isa),
    lambda: ref.requantize_float(ACC, MULT, 5, -128, 127).astype(np.int8),
    lambda: np.clip(np.rint(ACC.astype(np.float32) * MULT) + np.float32(5), -128, 127).astype(np.int8),
)


@pytest.mark.parametrize("impl, isa, fn", REQUANTIZE, ids=[r[0] for r in REQUANTIZE])
def test_requantize_float(benchmark, impl, isa, fn):
    expected = ref.requantize_float(ACC, MULT, 5, -128, 127).astype(np.int8)
    _run(benchmark, fn, expected, "requantize s32->s8 (ONNX float)", impl, isa, N * 5)


def _fixed_reference():
    scaled = fixedpoint.multiply_by_quantized_multiplier(ACC, QMULT, SHIFT).astype(np.int64) + 5
    return np.clip(scaled, -128, 127).astype(np.int8)


REQUANTIZE_FIXED = [
    (f"qcore-{isa}", isa, (lambda isa=isa: ew.requantize_fixedpoint(ACC, QMULT, SHIFT, 5, isa=isa))) for isa in ISAS
] + [("reference", "numpy", _fixed_reference)]


@pytest.mark.parametrize("impl, isa, fn", REQUANTIZE_FIXED, ids=[r[0] for r in REQUANTIZE_FIXED])
def test_requantize_fixedpoint(benchmark, impl, isa, fn):
    _run(benchmark, fn, _fixed_reference(), "requantize s32->s8 (TFLite fixed point)", impl, isa, N * 5)


def _dynamic_numpy():
    lo = np.minimum(np.float32(0), X.min())
    hi = np.maximum(np.float32(0), X.max())
    scale = (hi - lo) / np.float32(255)
    zp = np.rint(np.clip(-lo / scale, 0, 255))
    return np.clip(np.rint(X / scale) + zp, 0, 255).astype(np.uint8), scale, zp.astype(np.uint8)


DYNAMIC = _impls(
    lambda isa: ew.dynamic_quantize_linear(X, isa=isa),
    lambda: ref.dynamic_quantize_linear(X),
    _dynamic_numpy,
)


@pytest.mark.parametrize("impl, isa, fn", DYNAMIC, ids=[r[0] for r in DYNAMIC])
def test_dynamic_quantize(benchmark, impl, isa, fn):
    # Two passes over x (range, then quantize) plus the output.
    _run(benchmark, fn, ref.dynamic_quantize_linear(X), "dynamic quantize f32->u8", impl, isa, N * 9)


GELU_X = (np.random.default_rng(1).standard_normal((128, 1536)) * 2).astype(np.float32)  # one MiniLM GELU
_GELU_OUT = np.empty_like(GELU_X)


def _gelu_erf_chain():
    """The unfused ONNX export (Div, Erf, Add, Mul, Mul) on qcore's accurate float32 erf."""
    return (GELU_X * (np.float32(1) + act.erf(GELU_X / np.float32(np.sqrt(2))))) * np.float32(0.5)


GELU = [(f"qcore-{isa}", isa, (lambda isa=isa: act.gelu(GELU_X, out=_GELU_OUT, isa=isa))) for isa in ISAS] + [
    ("reference", "numpy", lambda: ref_act.gelu(GELU_X)), ("erf-chain", "numpy+qcore-erf", _gelu_erf_chain)]


@pytest.mark.parametrize("impl, isa, fn", GELU, ids=[r[0] for r in GELU])
def test_gelu(benchmark, impl, isa, fn):
    # The erf chain is a different float32 formula (five roundings): never "exact".
    _run(benchmark, fn, ref_act.gelu(GELU_X), "gelu f32 (128 x 1536)", impl, isa, GELU_X.size * 8)


def report(path: str) -> None:
    """Print a markdown table (GB/s and speed-up over the reference) from a benchmark JSON."""
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    table: dict[str, dict[str, tuple[float, bool]]] = defaultdict(dict)
    for run in runs:
        info = run["extra_info"]
        table[info["op"]][info["impl"]] = (info["bytes"] / run["stats"]["min"] / 1e9, info["exact"])
    impls = sorted({impl for row in table.values() for impl in row}, key=lambda s: (not s.startswith("qcore"), s))
    print("| operation | " + " | ".join(f"{i} GB/s" for i in impls) + " | best qcore / reference |")
    print("|---|" + "---|" * (len(impls) + 1))
    for op, row in table.items():
        cells = [f"{row[i][0]:.2f}{'' if row[i][1] else ' (inexact)'}" if i in row else "" for i in impls]
        best = max((v[0] for k, v in row.items() if k.startswith("qcore")), default=float("nan"))
        print(f"| {op} | " + " | ".join(cells) + f" | {best / row['reference'][0]:.1f}x |")


if __name__ == "__main__":
    report(sys.argv[1])
