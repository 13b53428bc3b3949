"""File sizes of quantized models against the float ONNX file.

Targets: int8 at most 0.26x, int4 weight-only at most 0.15x. The overhead over the ideal
0.25x / 0.125x is the float biases, norms and per-channel (or per-block) scales: float16
scales without zero points (format version 2) cost ``16 / K`` bits per weight for blocks
or channels of K, 0.5 bit at blocks of 32 (4.5 bits = 0.141x). The tests use a
MiniLM-sized encoder block (hidden 384, FFN 1536) and the 164 kB digits CNN, whose int8
weights alone are 0.247x: it needs the small tensors packed with the structure (graph
schema 2) to stay under 0.26x.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
mb = pytest.importorskip("model_builders")
import onnx  # noqa: E402

import digits_models as dm  # noqa: E402
import qcore.graph.quantize as q  # noqa: E402
from qcore.runtime import Model  # noqa: E402


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("sizes") / "encoder.onnx"
    onnx.save(mb.transformer(np.random.default_rng(0), vocab=1000, hidden=384, heads=6, ffn=1536, layers=2,
                                   positions="gather"), path)
    return path, Model.from_onnx(path)


@pytest.mark.parametrize("label, make, limit", [
    ("dynamic int8", lambda m: q.quantize_dynamic(m), 0.26),
    ("weight-only int8", lambda m: q.quantize_weight_only(m), 0.26),
    ("weight-only int4 per channel", lambda m: q.quantize_weight_only(m, bits=4), 0.15),
    ("weight-only int4 block 128", lambda m: q.quantize_weight_only(m, bits=4, block_size=128), 0.15),
    ("weight-only int4 block 64", lambda m: q.quantize_weight_only(m, bits=4, block_size=64), 0.15),
    ("weight-only int4 block 32", lambda m: q.quantize_weight_only(m, bits=4, block_size=32), 0.15),
])
def test_quantized_file_size(encoder, tmp_path, label, make, limit):
    onnx_path, model = encoder
    out = tmp_path / "q.qcm"
    make(model).save(out)
    ratio = os.path.getsize(out) / os.path.getsize(onnx_path)
    assert ratio <= limit, f"{label}: {ratio:.4f}x of the float ONNX file"


@pytest.fixture(scope="module")
def digits_cnn(request):
    import importlib.util

    if importlib.util.find_spec("torch") is None:  # as tests/test_models_digits.py
        pytest.skip("PyTorch is not installed")
    data = dm.load_digits_split()
    path = dm.cnn_onnx(str(request.config.cache.mkdir("qcore_digits_models")), data)
    return path, Model.from_onnx(path), data


@pytest.mark.parametrize("label, make, limit", [
    ("static int8 per channel", lambda m, d: q.quantize_static(m, {"image": d.x_train[:128].reshape(-1, 1, 8, 8)}),
     0.26),
    ("weight-only int8", lambda m, d: q.quantize_weight_only(m), 0.26),
])
def test_digits_cnn_file_size(digits_cnn, tmp_path, label, make, limit):
    onnx_path, model, data = digits_cnn
    out = tmp_path / "cnn.qcm"
    make(model, data).save(out)
    ratio = os.path.getsize(out) / os.path.getsize(onnx_path)
    assert ratio <= limit, f"digits CNN {label}: {ratio:.4f}x of the float ONNX file"
