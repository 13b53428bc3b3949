"""Interleaved best-of comparison of the GEMM implementations in bench_gemm.py.

On a shared machine a benchmark run can land in a busy moment for one implementation
and a quiet one for the next. This calls qcore (packed), numpy float32 and onnxruntime
in turn for a few seconds per shape and reports each one's best time, so all three see
the same conditions::

    PYTHONPATH=$PWD python bench/ab_gemm.py 1 1x4096x4096 64x768x768   # threads, shapes
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_gemm  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

IMPLS = ("qcore-packed", "numpy-fp32", "onnxruntime-MatMulInteger")


def compare(m: int, k: int, n: int, threads: int, seconds: float = 6.0) -> dict[str, float]:
    """GOP/s (2 M N K per call, best time) of each implementation, called in turn."""
    data = bench_gemm._data(m, k, n)
    with threadpool_limits(threads, user_api="blas"):
        runs = {name: bench_gemm.IMPLS[name](data, threads)[0] for name in IMPLS}
        best = dict.fromkeys(runs, float("inf"))
        end = time.time() + seconds
        while time.time() < end:
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: 2.0 * m * k * n / t / 1e9 for name, t in best.items()}


def main(argv: list[str]) -> None:
    threads = int(argv[0])
    for spec in argv[1:]:
        m, k, n = (int(v) for v in spec.split("x"))
        gops = compare(m, k, n, threads)
        ratios = (f"q/np {gops['qcore-packed'] / gops['numpy-fp32']:.2f} "
                  f"q/ort {gops['qcore-packed'] / gops['onnxruntime-MatMulInteger']:.2f}")
        print(f"threads={threads} {m}x{k}x{n}: " + "  ".join(f"{name} {v:.1f}" for name, v in gops.items())
              + "  " + ratios)


if __name__ == "__main__":
    main(sys.argv[1:])
