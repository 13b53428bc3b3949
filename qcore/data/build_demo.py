"""Rebuild the bundled demo files (development only; needs torch, scikit-learn, onnx).

    PYTHONPATH=. python qcore/data/build_demo.py

Trains the digits CNN of tests/digits_models.py (scikit-learn's bundled 8x8 digits,
PyTorch, exported to ONNX), imports it, and writes next to this file:

- ``digits_cnn.qcm``: the float model (graph + float32 weights), loadable without onnx;
- ``digits_data.npz``: ``calibration`` (200 training images) and ``test_images`` /
  ``test_labels`` (the 540 held-out images), pixels as uint8 0..16 (divide by 16).
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    """Train the digits CNN, export it and write the bundled demo model and data."""
    sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
    import digits_models as dm  # noqa: PLC0415

    from qcore.runtime.model import Model  # noqa: PLC0415

    data = dm.load_digits_split()
    with tempfile.TemporaryDirectory() as tmp:
        model = Model.from_onnx(dm.cnn_onnx(tmp, data))
    model.graph.metadata["producer"] = "qcore demo: digits CNN (PyTorch, scikit-learn digits)"
    model.save(os.path.join(HERE, "digits_cnn.qcm"))
    to_u8 = lambda x: np.rint(x * 16).astype(np.uint8).reshape(-1, 1, 8, 8)  # noqa: E731
    np.savez_compressed(os.path.join(HERE, "digits_data.npz"), calibration=to_u8(data.x_train[:200]),
                        test_images=to_u8(data.x_test), test_labels=data.y_test.astype(np.uint8))


if __name__ == "__main__":
    main()
