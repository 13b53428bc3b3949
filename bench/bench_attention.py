"""MiniLM's attention (scores, and scores with the context) and embedding gathers: qcore's C paths beside NumPy, same run.

Run (about 20 s)::

    PYTHONPATH=$PWD OPENBLAS_NUM_THREADS=1 pytest bench/bench_attention.py --benchmark-enable

- ``attention scores``: ``softmax(scale * (q @ k) + mask)`` at MiniLM's shape (12 heads,
  128 x 128 scores, depth 32; q and k the transposed views an export makes, the mask
  ``(1 - attention_mask) * finfo.min`` broadcast over rows), with every key real
  (``full``) or 19 real keys and 109 padded (``padded``): :func:`qcore.ops.attention_scores`
  on each ISA, beside NumPy's ``matmul``, scale, mask and a float32 softmax. Each entry
  records whether its output equals qcore's NumPy definition
  (:mod:`qcore.reference.attention`) bit for bit; the NumPy baseline sums in BLAS's order,
  so it is a speed baseline, not an oracle.
- ``attention``: the same scores and their product with the values ``v`` (also a view
  of the fused q / k / v output, as the runtime holds them), written in the layout the
  heads are joined in (:func:`qcore.ops.attention` on each ISA writes a contiguous
  ``(1, 12, 128, 32)`` instead): :func:`qcore.ops.attention` beside NumPy's scores as
  above, then ``matmul`` with ``v`` (OpenBLAS) into the same layout, and beside qcore's
  scores call followed by that NumPy ``matmul`` (the runtime's path before the one-call
  attention). ``exact`` compares with :func:`qcore.reference.attention.attention`.
- ``embedding rows``: 128 rows of an int8 table with one scale and zero point per row
  (30,522 x 384, as MiniLM's word embedding), gathered and dequantized the way the
  runtime's ``QGather`` does, beside the same formula in NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

from qcore import ops
from qcore._native import available_isas
from qcore.reference.attention import attention as reference_attention
from qcore.reference.attention import attention_scores as reference_scores
from qcore.reference.tensor import QuantizedTensor
from qcore.runtime.kernels import dequantize_rows

_rng = np.random.default_rng(0)
HEADS, SEQ, DEPTH = 12, 128, 32
Q = _rng.standard_normal((1, SEQ, HEADS * DEPTH), dtype=np.float32).reshape(1, SEQ, HEADS, DEPTH).transpose(0, 2, 1, 3)
K = _rng.standard_normal((1, SEQ, HEADS * DEPTH), dtype=np.float32).reshape(1, SEQ, HEADS, DEPTH).transpose(0, 2, 3, 1)
QKV = _rng.standard_normal((1, SEQ, 3 * HEADS * DEPTH), dtype=np.float32)  # q, k, v side by side, as fused
Q3 = QKV[..., :HEADS * DEPTH].reshape(1, SEQ, HEADS, DEPTH).transpose(0, 2, 1, 3)
K3 = QKV[..., HEADS * DEPTH:2 * HEADS * DEPTH].reshape(1, SEQ, HEADS, DEPTH).transpose(0, 2, 3, 1)
V3 = QKV[..., 2 * HEADS * DEPTH:].reshape(1, SEQ, HEADS, DEPTH).transpose(0, 2, 1, 3)
SCALE = np.float32(1 / np.sqrt(DEPTH))
MASKS = {}
for _name, _live in (("full", SEQ), ("padded", 19)):
    _mask = np.zeros((1, 1, 1, SEQ), np.float32)
    _mask[..., _live:] = np.finfo(np.float32).min
    MASKS[_name] = _mask

TABLE = QuantizedTensor(_rng.integers(-128, 128, (30522, 384), dtype=np.int8),
                        (_rng.random(30522) * 0.01 + 1e-3).astype(np.float32),
                        _rng.integers(-20, 20, 30522).astype(np.int8), "int8", axis=0)
IDS = _rng.integers(0, 30522, (1, SEQ))


def _numpy_scores(mask: np.ndarray) -> np.ndarray:
    s = np.matmul(Q, K) * SCALE + mask
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("case", sorted(MASKS))
@pytest.mark.parametrize("impl, isa", [("qcore", isa) for isa in available_isas()] + [("numpy", "")])
def test_attention_scores(benchmark, case, impl, isa):
    mask = MASKS[case]
    out = np.empty((1, HEADS, SEQ, SEQ), np.float32)
    if impl == "qcore":
        def fn():
            return ops.attention_scores(Q, K, SCALE, mask, out=out, isa=isa)
    else:
        def fn():
            return _numpy_scores(mask)
    benchmark.group = f"attention scores, {case}"
    got = benchmark.pedantic(fn, rounds=50, iterations=1, warmup_rounds=3)
    expected = reference_scores(Q, K, SCALE, mask)
    benchmark.extra_info.update(impl=impl, isa=isa, exact=bool(np.array_equal(got.view(np.uint32),
                                                                               expected.view(np.uint32))))


@pytest.mark.parametrize("case", sorted(MASKS))
@pytest.mark.parametrize("impl, isa", [("qcore", isa) for isa in available_isas()]
                         + [("qcore scores + numpy matmul", ""), ("numpy", "")])
def test_attention(benchmark, case, impl, isa):
    mask = MASKS[case]
    joined = np.empty((1, SEQ, HEADS, DEPTH), np.float32)  # the layout the heads are joined in
    out = joined.transpose(0, 2, 1, 3)
    scores = np.empty((1, HEADS, SEQ, SEQ), np.float32)
    if impl == "qcore":
        result = np.empty((1, HEADS, SEQ, DEPTH), np.float32)

        def fn():
            return ops.attention(Q3, K3, V3, SCALE, mask, out=result, isa=isa)
    elif impl == "numpy":
        def fn():
            s = np.matmul(Q3, K3) * SCALE + mask
            e = np.exp(s - s.max(axis=-1, keepdims=True))
            np.matmul(e / e.sum(axis=-1, keepdims=True), V3, out=out)
            return out
    else:
        def fn():
            ops.attention_scores(Q3, K3, SCALE, mask, out=scores)
            np.matmul(scores, V3, out=out)
            return out
    benchmark.group = f"attention, {case}"
    got = benchmark.pedantic(fn, rounds=50, iterations=1, warmup_rounds=3)
    expected = reference_attention(Q3, K3, V3, SCALE, mask)
    benchmark.extra_info.update(impl=impl, isa=isa, exact=bool(np.array_equal(np.ascontiguousarray(got).view(np.uint32),
                                                                               expected.view(np.uint32))))


@pytest.mark.parametrize("impl", ["qcore", "numpy"])
def test_embedding_rows(benchmark, impl):
    flat = IDS.reshape(-1)
    if impl == "qcore":
        def fn():
            return dequantize_rows(TABLE, IDS)
    else:
        def fn():
            rows = TABLE.data[flat].astype(np.float32)
            return ((rows - TABLE.zero_point[flat].astype(np.float32)[:, None])
                    * TABLE.scale[flat][:, None]).reshape(IDS.shape + (384,))
    benchmark.group = "embedding rows"
    got = benchmark.pedantic(fn, rounds=200, iterations=1, warmup_rounds=5)
    expected = TABLE.dequantize()[IDS]
    benchmark.extra_info.update(impl=impl, exact=bool(np.array_equal(got.view(np.uint32), expected.view(np.uint32))))
