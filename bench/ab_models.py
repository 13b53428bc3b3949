"""Interleaved comparison of `qcore` int8 and onnxruntime float32 on the digits CNN.

On a shared machine one benchmark can land in a busy moment and the next in a quiet one.
This calls qcore's static int8 model and onnxruntime's float32 session in turn for a few
seconds per batch size and reports each one's best and median time, so both see the same
conditions (one thread each)::

    OPENBLAS_NUM_THREADS=1 QCORE_NUM_THREADS=1 PYTHONPATH=$PWD python bench/ab_models.py 4 \
        [CACHE_DIR]     # seconds per batch size; the digits models' pytest cache directory

The CNN comes from tests/digits_models.py (trained once with torch, cached in CACHE_DIR,
default .pytest_cache/d/qcore_digits_models); the int8 model is quantized statically with
per-channel weights on 300 training images, as bench_models.py does, saved and reopened.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def main(seconds: float, cache: str) -> None:
    import digits_models as dm
    import onnxruntime as ort

    import qcore
    import qcore.graph.quantize as q
    from qcore.runtime import Model

    data = dm.load_digits_split()
    os.makedirs(cache, exist_ok=True)
    onnx_path = dm.cnn_onnx(cache, data)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "cnn_int8.qcm")
        q.quantize_static(Model.from_onnx(onnx_path), {"image": data.x_train[:300].reshape(-1, 1, 8, 8)}).save(path)
        model = qcore.load(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        images = data.x_test.reshape(-1, 1, 8, 8)
        print("| batch | qcore int8 best ms | median ms | onnxruntime float32 best ms | median ms | "
              "ratio of bests | ratio of medians | calls |")
        print("|---|---|---|---|---|---|---|---|")
        for batch in (1, 64, 540):
            feeds = {"image": images[:batch]}
            times_q, times_o = [], []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                start = time.perf_counter()
                model.run(feeds)
                times_q.append(time.perf_counter() - start)
                start = time.perf_counter()
                session.run(None, feeds)
                times_o.append(time.perf_counter() - start)
            bq, mq, bo, mo = min(times_q), np.median(times_q), min(times_o), np.median(times_o)
            print(f"| {batch} | {bq * 1e3:.3f} | {mq * 1e3:.3f} | {bo * 1e3:.3f} | {mo * 1e3:.3f} | "
                  f"{bo / bq:.2f}x | {mo / mq:.2f}x | {len(times_q)} |")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 4.0,
         sys.argv[2] if len(sys.argv) > 2 else os.path.join(".pytest_cache", "d", "qcore_digits_models"))
