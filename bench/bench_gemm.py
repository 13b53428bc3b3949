"""int8 GEMM benchmarks: qcore beside numpy float32 matmul (OpenBLAS) and onnxruntime's
MatMulInteger, same shapes, same run, one thread and two.

Run (full, a few minutes on 2 cores)::

    PYTHONPATH=$PWD pytest bench/bench_gemm.py --benchmark-enable --benchmark-json=/tmp/gemm.json
    python bench/report_gemm.py /tmp/gemm.json        # markdown table with the ratios

``QCORE_BENCH_QUICK=1`` keeps M in {1, 64} and K = N in {768, 4096}. Every entry records
``extra_info``: the ISA, the thread count, GOP/s (2 M N K per call) and whether its result
was exact (equal to qcore.reference). onnxruntime's u8 x s8 kernel saturates int16 on AVX2
without VNNI, so it is not exact on full-range inputs (CONVENTIONS.md).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from qcore import _gemm
from qcore import reference as ref
from qcore._native import default_isa

QUICK = os.environ.get("QCORE_BENCH_QUICK", "") not in ("", "0")
MS = (1, 64) if QUICK else (1, 8, 64, 256)
KNS = ((768, 768), (4096, 4096)) if QUICK else (
    (384, 384), (768, 768), (1536, 1536), (4096, 4096), (384, 1536), (1536, 384))
SHAPES = [(m, k, n) for m in MS for k, n in KNS]
THREADS = (1, 2)


def _rounds(m: int, k: int, n: int) -> int:
    # The minimum over the rounds is what the report uses: on a shared machine it needs
    # enough rounds to catch a quiet moment.
    ops = 2.0 * m * k * n
    return 50 if ops < 1e8 else (15 if ops < 1e9 else 6)


_DATA: dict[tuple[int, int, int], dict] = {}


def _data(m: int, k: int, n: int) -> dict:
    """Full-range operands, their exact product and the packed weights, made once per shape."""
    key = (m, k, n)
    if key not in _DATA:
        rng = np.random.default_rng(0)
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        a_zp, b_zp = np.uint8(128), np.int8(0)
        _DATA.clear()
        _DATA[key] = {
            "a": a, "b": b, "a_zp": a_zp, "b_zp": b_zp,
            "exact": ref.matmul_integer(a, b, a_zp, b_zp),
            "packed": _gemm.PackedWeights(b, b_zp),
            "a_f": a.astype(np.float32), "b_f": b.astype(np.float32),
        }
    return _DATA[key]


def _record(benchmark, impl: str, m: int, k: int, n: int, threads: int, exact: bool, isa: str) -> None:
    benchmark.group = f"M={m} K={k} N={n} threads={threads}"
    benchmark.extra_info.update({"impl": impl, "m": m, "k": k, "n": n, "threads": threads, "isa": isa,
                                 "exact": bool(exact)})


def _gops(benchmark, m: int, k: int, n: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["gops"] = 2.0 * m * k * n / stats.stats.min / 1e9


def _qcore_packed(d: dict, threads: int):
    """qcore int8 GEMM, int32 output, weights packed once (the runtime's path)."""
    return (lambda: _gemm.matmul_integer_packed(d["a"], d["a_zp"], d["packed"], num_threads=threads)), default_isa()


def _qcore_matmul_integer(d: dict, threads: int):
    """qcore matmul_integer: packs B on every call."""
    return (lambda: _gemm.matmul_integer(d["a"], d["b"], d["a_zp"], d["b_zp"], num_threads=threads)), default_isa()


def _numpy_fp32(d: dict, threads: int):
    """numpy float32 matmul (OpenBLAS) of the same zero-point-shifted values."""
    a_f = d["a_f"] - np.float32(128)
    b_f = d["b_f"]
    return (lambda: a_f @ b_f), "openblas"


def _onnxruntime(d: dict, threads: int):
    """onnxruntime MatMulInteger, B a constant initializer (pre-packed by onnxruntime)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    b = d["b"]
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "a_zp", "b_zp"], ["Y"])],
        "mm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, b.shape[0]])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, b.shape[1]])],
        initializer=[numpy_helper.from_array(b, "B"), numpy_helper.from_array(np.array(128, np.uint8), "a_zp"),
                     numpy_helper.from_array(np.array(0, np.int8), "b_zp")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    del onnx
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"A": d["a"]}
    return (lambda: session.run(None, feeds)[0]), f"onnxruntime {ort.__version__}"


IMPLS = {"qcore-packed": _qcore_packed, "qcore-matmul_integer": _qcore_matmul_integer,
         "numpy-fp32": _numpy_fp32, "onnxruntime-MatMulInteger": _onnxruntime}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_gemm(benchmark, m, k, n, threads, impl):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    d = _data(m, k, n)
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        run, isa = IMPLS[impl](d, threads)
        out = run()
        exact = np.array_equal(np.asarray(out).astype(np.int64), d["exact"])
        _record(benchmark, impl, m, k, n, threads, exact, isa)
        if impl == "numpy-fp32":
            info = threadpoolctl.threadpool_info()
            benchmark.extra_info["blas"] = ";".join(
                f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in info
                if i.get("user_api") == "blas")
            benchmark.extra_info["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE", "")
        benchmark.pedantic(run, rounds=_rounds(m, k, n), warmup_rounds=1)
    _gops(benchmark, m, k, n)
