"""Weight-only int4 linear layer: the runtime's Int4Linear beside the C kernel alone and a
numpy float32 matmul of the dequantized weight, MiniLM shapes, one thread.

Run (under a minute)::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=$PWD pytest bench/bench_int4_linear.py --benchmark-enable

int4 weights blocked by 32 along K with int8 zero points. ``Int4Linear.run`` uses the C
kernel below ``PANEL_MIN_ROWS`` rows and bounded dequantized panels times sgemm from there.
Every entry records ``extra_info``: impl, shape, isa, and ``exact``, whether its result
equals bit for bit the C kernel's documented order (float32 sum in increasing k, no FMA);
``max_rel_error`` is the largest ``|y - y64| / (|x| @ |W|)`` against a float64 matmul of
the same dequantized weight.
"""

from __future__ import annotations

import numpy as np
import pytest

from qcore._native import default_isa
from qcore.reference.quantize import quantize_tensor
from qcore.runtime import kernels

SHAPES = [(m, k, n) for m in (1, 16, 128) for k, n in ((384, 384), (384, 1536), (1536, 384))]
_DATA: dict[tuple[int, int, int], dict] = {}


def _data(m: int, k: int, n: int) -> dict:
    key = (m, k, n)
    if key not in _DATA:
        rng = np.random.default_rng(0)
        qw = quantize_tensor(rng.normal(size=(k, n)).astype(np.float32), "int4", granularity="per_block", axis=0,
                             block_size=32)
        x = rng.normal(size=(m, k)).astype(np.float32)
        linear = kernels.Int4Linear(qw, None)
        w = kernels.dequantize_weight(qw)
        _DATA.clear()
        _DATA[key] = {"x": x, "linear": linear, "w": w,
                      "c": linear._linear(x, linear._weights, None),
                      "y64": x.astype(np.float64) @ w.astype(np.float64),
                      "mag": np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)}
    return _DATA[key]


IMPLS = {
    "qcore-Int4Linear": lambda d: (lambda: d["linear"].run(d["x"])),
    "qcore-linear_int4": lambda d: (lambda: d["linear"]._linear(d["x"], d["linear"]._weights, None)),
    "numpy-fp32-dequantized": lambda d: (lambda: d["x"] @ d["w"]),
}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_int4_linear(benchmark, m, k, n, impl):
    d = _data(m, k, n)
    run = IMPLS[impl](d)
    out = run()
    benchmark.group = f"M={m} K={k} N={n}"
    benchmark.extra_info.update({
        "impl": impl, "m": m, "k": k, "n": n, "threads": 1,
        "isa": "openblas" if impl.startswith("numpy") else default_isa(),
        "path": ("panels+sgemm" if m >= kernels.Int4Linear.PANEL_MIN_ROWS else "C") if impl == "qcore-Int4Linear"
        else impl,
        "exact": bool(np.array_equal(out, d["c"])),
        "max_rel_error": float(np.max(np.abs(out - d["y64"]) / d["mag"])),
    })
    benchmark.pedantic(run, rounds=20 if m * k * n < 1e7 else 8, warmup_rounds=1)
