"""``qcore demo``: quantize the bundled digits CNN, run it, report accuracy, size, latency.

The bundled files (see build_demo.py) are a float .qcm model and a small .npz of digits
images, so the demo needs neither a download nor the onnx package.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_PATH = os.path.join(HERE, "digits_cnn.qcm")
DATA_PATH = os.path.join(HERE, "digits_data.npz")


def _images(u8: np.ndarray) -> np.ndarray:
    return (u8.astype(np.float32) / np.float32(16)).reshape(-1, 1, 8, 8)


def _latency(model, feeds: dict[str, np.ndarray], repeats: int) -> float:
    model.run(feeds)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(feeds)
        best = min(best, time.perf_counter() - start)
    return best


def run_demo(emit: Callable[[str], None] = print, workdir: str | None = None) -> dict[str, float]:
    """Run the demo, emitting report lines; returns the figures."""
    from ..api import load  # noqa: PLC0415
    from ..graph.quantize import quantize_static  # noqa: PLC0415

    with np.load(DATA_PATH, allow_pickle=False) as data:
        calibration = _images(data["calibration"])
        test_images = _images(data["test_images"])
        labels = data["test_labels"].astype(np.int64)
    float_model = load(MODEL_PATH)
    name = float_model.input_names[0]
    out = float_model.output_names[0]

    with tempfile.TemporaryDirectory() as tmp:
        folder = workdir or tmp
        os.makedirs(folder, exist_ok=True)
        int8_path = os.path.join(folder, "digits_cnn_int8.qcm")
        start = time.perf_counter()
        quantized = quantize_static(float_model, {name: calibration}, method="minmax", per_channel=True)
        quantized.save(int8_path)
        quantize_seconds = time.perf_counter() - start
        int8_model = load(int8_path)

        acc_float = 100 * float((float_model.run({name: test_images})[out].argmax(1) == labels).mean())
        acc_int8 = 100 * float((int8_model.run({name: test_images})[out].argmax(1) == labels).mean())
        batch = {name: test_images}
        one = {name: test_images[:1]}
        figures = {
            "accuracy_float": acc_float,
            "accuracy_int8": acc_int8,
            "size_float": os.path.getsize(MODEL_PATH),
            "size_int8": os.path.getsize(int8_path),
            "latency_float_batch": _latency(float_model, batch, 5),
            "latency_int8_batch": _latency(int8_model, batch, 5),
            "latency_float_one": _latency(float_model, one, 20),
            "latency_int8_one": _latency(int8_model, one, 20),
            "quantize_seconds": quantize_seconds,
        }
    f = figures
    emit("qcore demo: digits CNN (scikit-learn's 8x8 digits), static int8, per-channel weights")
    emit(f"  quantized in {f['quantize_seconds']:.2f} s from {len(calibration)} calibration images")
    emit(f"  accuracy on {len(labels)} held-out images: float {f['accuracy_float']:.2f} %  "
         f"int8 {f['accuracy_int8']:.2f} %  ({f['accuracy_int8'] - f['accuracy_float']:+.2f} points)")
    emit(f"  file size: float {f['size_float'] / 1024:.1f} KiB  int8 {f['size_int8'] / 1024:.1f} KiB  "
         f"({f['size_int8'] / f['size_float']:.2f}x)")
    emit(f"  latency, batch {len(labels)}: float {f['latency_float_batch'] * 1e3:.2f} ms  "
         f"int8 {f['latency_int8_batch'] * 1e3:.2f} ms")
    emit(f"  latency, batch 1: float {f['latency_float_one'] * 1e3:.3f} ms  int8 {f['latency_int8_one'] * 1e3:.3f} ms")
    return figures
